"""The runtime closure of an image's packages, as `nix path-info --recursive --json` reports it."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

STORE_DIR = "/nix/store"
_STORE_PATH_RE = re.compile(r"^/nix/store/([0-9a-df-np-sv-z]{32})-([A-Za-z0-9+\-._?=]+)$")


class ClosureError(Exception):
    """Nix answered something we cannot use as a closure."""


@dataclass(frozen=True)
class StorePath:
    path: str
    nar_size: int
    nar_hash: str
    references: tuple[str, ...]  # sorted, without the path itself

    @property
    def name(self) -> str:
        """The part after the hash: `python3-3.11.2` of `/nix/store/<hash>-python3-3.11.2`."""
        return store_path_name(self.path)


def store_path_name(path: str) -> str:
    match = _STORE_PATH_RE.match(path)
    if not match:
        raise ClosureError(f"{path!r} is not a top-level Nix store path")
    return match.group(2)


def is_store_path(path: str) -> bool:
    return _STORE_PATH_RE.match(path) is not None


@dataclass(frozen=True)
class Closure:
    """Store paths closed under references, keyed by path."""

    paths: Mapping[str, StorePath]

    def __post_init__(self) -> None:
        for info in self.paths.values():
            missing = [ref for ref in info.references if ref not in self.paths]
            if missing:
                raise ClosureError(
                    f"{info.path} references {missing[0]}, which is not in the closure Nix "
                    "reported; the store may have changed underneath (garbage collection?)."
                )

    @property
    def total_nar_size(self) -> int:
        return sum(info.nar_size for info in self.paths.values())

    def without(self, paths: Iterable[str]) -> "Closure":
        """The closure minus `paths` (say, what a base image already has), references to them
        dropped: what is left to put in layers."""
        gone = set(paths)
        return Closure(
            {
                path: dataclasses.replace(info, references=tuple(r for r in info.references if r not in gone))
                for path, info in self.paths.items()
                if path not in gone
            }
        )

    def reachable_from(self, roots: Iterable[str]) -> frozenset[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            stack.extend(self.paths[path].references)
        return frozenset(seen)


def parse_path_info(text: str) -> Closure:
    """Parse `nix path-info --json` output: a list of objects (Nix <= 2.18) or a dict by path."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClosureError(f"`nix path-info --json` printed something that is not JSON: {e}")
    entries = [{"path": path, **(info or {})} for path, info in data.items()] if isinstance(data, dict) else data
    paths = {}
    for entry in entries:
        if not isinstance(entry, dict) or "path" not in entry:
            raise ClosureError(f"unexpected entry in `nix path-info --json` output: {entry!r}")
        if entry.get("valid") is False:
            raise ClosureError(f"{entry['path']} is not a valid path in the Nix store")
        path = entry["path"]
        paths[path] = StorePath(
            path=path,
            nar_size=int(entry["narSize"]),
            nar_hash=str(entry.get("narHash", "")),
            references=tuple(sorted(ref for ref in entry.get("references", ()) if ref != path)),
        )
    return Closure(paths)
