"""Which Nix the backend can talk to.

It reads `nix path-info --json` and realised flake outputs as Nix 2.8 and newer print them, and
passes `--extra-experimental-features`, which older versions reject.
"""

from __future__ import annotations

import re

MINIMUM = (2, 8)

_VERSION_RE = re.compile(r"\b(\d+)\.(\d+)(?:\.(\d+))?")


def parse_nix_version(version_output: str) -> tuple[int, ...] | None:
    """`nix --version` prints `nix (Nix) 2.8.0`; Lix and distributions add words around it."""
    match = _VERSION_RE.search(version_output)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def is_supported(version: tuple[int, ...]) -> bool:
    return version[:2] >= MINIMUM


def format_version(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
