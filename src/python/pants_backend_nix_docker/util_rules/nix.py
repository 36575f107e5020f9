"""Realising installables and reading their runtime closure from the Nix store.

Both answer "what is in the store now": a realise may build, a garbage collection may delete.
So their processes are cached for one Pants run at most (`PER_SESSION`) and never persisted
locally or remotely. What comes after (layers keyed by store paths) is cached for good.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from pants.base.build_root import BuildRoot
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import Closure, ClosureError, parse_path_info
from pants_backend_nix_docker.nix.installables import FILE_ATTR, FLAKE, STORE_PATH, Installable, parse_realised_outputs
from pants_backend_nix_docker.nix.version import MINIMUM, format_version, is_supported, parse_nix_version
from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.target_types import NixImagePackagesField

_NIX_PROGRAMS = ("nix", "nix-build", "nix-store")
_EXPERIMENTAL = ("--extra-experimental-features", "nix-command flakes")
_STDERR_TAIL_LINES = 25


class NixNotFoundError(Exception):
    pass


class NixRealiseError(Exception):
    pass


@dataclass(frozen=True)
class NixBinaries:
    """Absolute paths of the Nix programs, or None for each one that is missing."""

    nix: str | None
    nix_build: str | None
    nix_store: str | None
    search_path: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    # What `nix --version` said, parsed; None when `nix` is missing or printed no version.
    version: tuple[int, ...] | None = None

    def require(self, address: Address) -> "NixBinaries":
        missing = [name for name, path in zip(_NIX_PROGRAMS, (self.nix, self.nix_build, self.nix_store)) if not path]
        wanted = format_version(MINIMUM)
        if missing:
            raise NixNotFoundError(
                f"{address} needs Nix to realise its `{NixImagePackagesField.alias}`, but "
                f"{', '.join(f'`{m}`' for m in missing)} {'was' if len(missing) == 1 else 'were'} not found on the "
                "search path "
                f"{list(self.search_path)} ([nix].executable_search_paths). Install Nix {wanted} or "
                "newer (on Debian `apt-get install nix-bin`, or run build-support/bootstrap/install-prerequisites.sh), "
                "or point [nix].executable_search_paths at it."
            )
        if self.version is not None and not is_supported(self.version):
            raise NixNotFoundError(
                f"{address} needs Nix {wanted} or newer to realise its `{NixImagePackagesField.alias}`, but "
                f"{self.nix} is Nix {format_version(self.version)}. Install a newer Nix, or point "
                "[nix].executable_search_paths at one."
            )
        return self

    def process(
        self,
        argv: tuple[str, ...],
        description: str,
        # The answer is about the store now: realising may build, a garbage collection may
        # delete. Reuse it within one run at most; never persist it, locally or remotely.
        cache_scope: ProcessCacheScope = ProcessCacheScope.PER_SESSION,
    ) -> Process:
        # Processes start with an empty environment; builders and `nix` itself need a PATH.
        path_dirs = sorted({os.path.dirname(p) for p in (self.nix, self.nix_build, self.nix_store) if p})
        return Process(
            argv=argv,
            env={"PATH": os.pathsep.join(path_dirs), **dict(self.env)},
            description=description,
            level=LogLevel.DEBUG,
            cache_scope=cache_scope,
        )


@rule(desc="Finding Nix", level=LogLevel.DEBUG)
async def find_nix(nix: NixSubsystem.EnvironmentAware) -> NixBinaries:
    search_path = nix.executable_search_path
    requests = [
        BinaryPathRequest(binary_name=name, search_path=search_path, test=BinaryPathTest(["--version"]))
        for name in _NIX_PROGRAMS
    ]
    paths = await MultiGet(Get(BinaryPaths, BinaryPathRequest, r) for r in requests)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(nix.env_vars))
    nix_path, nix_build, nix_store = (p.first_path.path if p.first_path else None for p in paths)
    binaries = NixBinaries(nix_path, nix_build, nix_store, tuple(search_path), tuple(sorted(env.items())))
    if binaries.nix is None:
        return binaries
    # The same path can hold another Nix after an upgrade: ask again whenever pantsd restarts.
    version_process = binaries.process(
        (binaries.nix, "--version"), "Reading the Nix version", ProcessCacheScope.PER_RESTART_SUCCESSFUL
    )
    result = await Get(FallibleProcessResult, Process, version_process)
    version = parse_nix_version(result.stdout.decode(errors="replace")) if result.exit_code == 0 else None
    return dataclasses.replace(binaries, version=version)


@dataclass(frozen=True)
class RealiseRequest:
    """Keyed by what Nix is asked, not by who asks, so images that share a package share one
    realise per run; `address` only names the first asker in messages and is not compared."""

    installable: Installable
    spec_path: str  # relative flake references resolve against it
    address: Address = field(compare=False)


@dataclass(frozen=True)
class RealisedInstallable:
    installable: Installable
    outputs: tuple[str, ...]  # store paths, in the order Nix printed them


def realise_argv(nix: NixBinaries, installable: Installable, build_root: str, spec_path: str) -> tuple[str, ...]:
    if installable.kind == STORE_PATH:
        return (nix.nix_store or "nix-store", "--realise", installable.ref)
    if installable.kind == FILE_ATTR:
        attr = ("-A", installable.attr) if installable.attr else ()
        return (nix.nix_build or "nix-build", "--no-out-link", os.path.join(build_root, installable.ref), *attr)
    assert installable.kind == FLAKE
    ref = installable.ref
    # Relative flake references mean the BUILD file's directory, not the process sandbox.
    for prefix in ("path:", ""):
        body = ref[len(prefix) :]
        if ref.startswith(prefix) and (body == "." or body.startswith(("./", "../"))):
            ref = prefix + os.path.normpath(os.path.join(build_root, spec_path, body))
            break
    target = f"{ref}#{installable.attr}" if installable.attr else ref
    return (nix.nix or "nix", *_EXPERIMENTAL, "build", "--no-link", "--json", target)


def _stderr_tail(result: FallibleProcessResult) -> str:
    lines = result.stderr.decode(errors="replace").rstrip().splitlines()
    return "\n".join(f"    {line}" for line in lines[-_STDERR_TAIL_LINES:]) or "    (no output)"


@rule(desc="Realising a Nix installable", level=LogLevel.DEBUG)
async def realise_installable(request: RealiseRequest, nix: NixBinaries, build_root: BuildRoot) -> RealisedInstallable:
    nix.require(request.address)
    installable = request.installable
    argv = realise_argv(nix, installable, build_root.path, request.spec_path)
    result = await Get(
        FallibleProcessResult, Process, nix.process(argv, f"Realising {installable.raw} for {request.address}")
    )
    outputs = parse_realised_outputs(result.stdout.decode()) if result.exit_code == 0 else ()
    if result.exit_code != 0 or not outputs:
        why = (
            f"`{' '.join(argv)}` exited with {result.exit_code}"
            if result.exit_code
            else f"`{' '.join(argv)}` printed no store path"
        )
        raise NixRealiseError(
            f"{request.address}: the `{NixImagePackagesField.alias}` entry {installable.raw!r} could "
            f"not be realised: {why}. Nix said:\n{_stderr_tail(result)}\n"
            "Fix the installable (does `nix build` of it work by hand?) or the Nix expression it "
            "names."
        )
    return RealisedInstallable(installable, outputs)


@dataclass(frozen=True)
class ClosureRequest:
    roots: tuple[str, ...]
    address: Address = field(compare=False)  # for messages only, like RealiseRequest's

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(sorted(set(self.roots))))


@rule(desc="Computing the runtime closure", level=LogLevel.DEBUG)
async def compute_closure(request: ClosureRequest, nix: NixBinaries) -> Closure:
    nix.require(request.address)
    argv = (nix.nix or "nix", *_EXPERIMENTAL, "path-info", "--recursive", "--json", *request.roots)
    result = await Get(
        FallibleProcessResult, Process, nix.process(argv, f"Computing the runtime closure of {request.address}")
    )
    if result.exit_code != 0:
        raise NixRealiseError(
            f"{request.address}: `nix path-info` failed for its realised packages:\n"
            f"{_stderr_tail(result)}\nWere store paths garbage-collected during the build? Run "
            "`pants package` again."
        )
    try:
        return parse_path_info(result.stdout.decode())
    except ClosureError as e:
        raise NixRealiseError(f"{request.address}: {e}")


def rules():
    return collect_rules()
