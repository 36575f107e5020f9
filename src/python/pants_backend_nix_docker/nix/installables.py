"""What may stand in an image's `packages` field, and how Nix is asked to realise each kind.

- a store path: `/nix/store/<hash>-name` (a `.drv` is built), realised with `nix-store --realise`;
- an attribute of a `.nix` file in the repo: `path/to/file.nix#attr` (relative to the BUILD
  file's directory, or `//path/from/root.nix#attr`), built like `nix-build FILE -A ATTR`;
- a flake installable: `nixpkgs#hello`, `github:owner/repo#pkg`, `path:/abs#x`, `.#x`, built with
  `nix build`.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Iterable

from pants_backend_nix_docker.nix.closure import is_store_path, store_path_name
from pants_backend_nix_docker.oci.platforms import SYSTEM_PLACEHOLDER

STORE_PATH = "store-path"
FILE_ATTR = "file"
FLAKE = "flake"

_ATTR_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_\'-]*(\.[A-Za-z_][A-Za-z0-9_\'-]*|\."[^"]+")*$')
_FLAKE_SCHEMES = (
    "path:",
    "git+",
    "github:",
    "gitlab:",
    "sourcehut:",
    "flake:",
    "tarball+",
    "file+",
    "http://",
    "https://",
)
_FLAKE_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(/[^#]*)?$")


class InstallableError(ValueError):
    """A `packages` entry that is not any kind of installable we know."""


@dataclass(frozen=True)
class Installable:
    raw: str
    kind: str
    # store path, buildroot-relative .nix file, or flake reference (relative ones made absolute
    # by the rule, which knows the build root)
    ref: str
    attr: str | None
    # how `${pkgs.NAME}` in the image's strings refers to this package
    name: str


def parse_installable(raw: str, spec_path: str) -> Installable:
    """Parse one `packages` entry of a target whose BUILD file is in `spec_path`."""
    value = raw.strip()
    if not value:
        raise InstallableError("an empty string is not an installable")
    if value.startswith("/nix/store/"):
        top = "/".join(value.split("/")[:4])
        if top != value or not is_store_path(value):
            raise InstallableError(
                f"{raw!r} is not a top-level store path (expected /nix/store/<32-char hash>-<name>, "
                "with nothing after the name)"
            )
        name = store_path_name(value)
        return Installable(raw, STORE_PATH, value, None, name[: -len(".drv")] if name.endswith(".drv") else name)

    ref, hash_sign, attr = value.partition("#")
    if hash_sign and not attr:
        raise InstallableError(f"{raw!r} has a `#` but no attribute after it")
    if attr and not _ATTR_RE.match(attr):
        raise InstallableError(f"{raw!r}: {attr!r} is not a Nix attribute path")

    if ref.endswith(".nix"):
        file = _repo_path(ref, spec_path, raw)
        name = attr or posixpath.basename(file)[: -len(".nix")]
        return Installable(raw, FILE_ATTR, file, attr or None, name)

    if (
        ref.startswith(_FLAKE_SCHEMES)
        or ref.startswith(("./", "../", "/"))
        or ref == "."
        or (hash_sign and _FLAKE_ID_RE.match(ref))
    ):
        return Installable(raw, FLAKE, ref, attr or None, attr or "default")

    raise InstallableError(
        f"{raw!r} is neither a store path, a `FILE.nix#attr` nor a flake installable. "
        f"For a package of nixpkgs write `nixpkgs#{value}`; for a file in the repo, "
        f"`path/to/file.nix#{value}`"
    )


def for_system(raw: str, system: str) -> str:
    """A `packages` entry with `${system}` replaced: the installable of one platform's image."""
    return raw.replace(SYSTEM_PLACEHOLDER, system)


def image_installables(
    packages: Iterable[str], spec_path: str, cacert_package: str | None, system: str = "x86_64-linux"
) -> tuple[tuple[Installable, str], ...]:
    """An image's installables for one platform's `system`, each with the directory it is relative
    to: its `packages` (relative to its BUILD file's directory `spec_path`), then the CA bundle's
    package when the image wants CA certificates (`cacert_package`, relative to the build root)."""
    wanted = [(parse_installable(for_system(raw, system), spec_path), spec_path) for raw in packages]
    if cacert_package is not None:
        wanted.append((parse_installable(for_system(cacert_package, system), ""), ""))
    return tuple(wanted)


_LOCAL_FLAKE_RE = re.compile(r"^(?:path:)?(\.{1,2}(?:/.*)?)$")


def source_files(installable: Installable, spec_path: str) -> tuple[str, ...]:
    """The repository files (relative to the build root) an installable is evaluated from, as far
    as they are known without evaluating it: a `.nix` file, or a local flake's `flake.nix` and
    `flake.lock`. Store paths and remote flakes come from no file of the repository."""
    if installable.kind == FILE_ATTR:
        return (installable.ref,)
    if installable.kind == FLAKE:
        local = _LOCAL_FLAKE_RE.match(installable.ref)
        if local:
            directory = posixpath.normpath(posixpath.join(spec_path, local.group(1)))
            if directory != ".." and not directory.startswith("../"):
                return tuple(posixpath.normpath(posixpath.join(directory, f)) for f in ("flake.nix", "flake.lock"))
    return ()


def _repo_path(ref: str, spec_path: str, raw: str) -> str:
    if ref.startswith("//"):
        path = posixpath.normpath(ref[2:])
    elif ref.startswith("/"):
        raise InstallableError(
            f"{raw!r} names a .nix file by absolute path; name files in the repo relative to the "
            "BUILD file, or from the build root as `//path/to/file.nix#attr`"
        )
    else:
        path = posixpath.normpath(posixpath.join(spec_path, ref))
    if path == ".." or path.startswith("../") or os.path.isabs(path):
        raise InstallableError(f"{raw!r} points outside the repository")
    return path


def parse_realised_outputs(stdout: str) -> tuple[str, ...]:
    """Store paths from `nix-build`/`nix-store --realise` (one per line) or `nix build --json`.

    Nix 2.8's `nix build` has no `--print-out-paths`; its `--json` lists each derivation's outputs,
    and `out` comes first so `${pkgs.NAME}` means the main output.
    """
    text = stdout.strip()
    if text.startswith("["):
        paths: list[str] = []
        for built in json.loads(text):
            outputs = built.get("outputs", {})
            paths.extend(outputs[name] for name in sorted(outputs, key=lambda n: (n != "out", n)))
        return tuple(p for p in paths if is_store_path(p))
    return tuple(line for line in text.split() if is_store_path(line))


_PACKAGE_REF_RE = re.compile(r"\$\{pkgs\.([^}]*)\}")


class PackageRefError(ValueError):
    """A `${pkgs.NAME}` that names no package, or more than one."""


def package_ref_table(realised: list[tuple[Installable, tuple[str, ...]]]) -> dict[str, str | None]:
    """NAME -> store path for `${pkgs.NAME}`; None marks a name two packages share."""
    table: dict[str, str | None] = {}
    for installable, outputs in realised:
        path = outputs[0]
        previous = table.get(installable.name, path)
        table[installable.name] = path if previous == path else None
    return table


def substitute_package_refs(text: str, table: dict[str, str | None]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise PackageRefError(f"`${{pkgs.{name}}}` names no package (known names: {known})")
        path = table[name]
        if path is None:
            raise PackageRefError(
                f"`${{pkgs.{name}}}` is ambiguous: several packages are named {name!r}; "
                "refer to one of them by its store path instead"
            )
        return path

    return _PACKAGE_REF_RE.sub(replace, text)
