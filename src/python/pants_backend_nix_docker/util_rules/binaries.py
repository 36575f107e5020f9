"""Finding an external program on [nix].executable_search_paths, each through its own request."""

from __future__ import annotations

from typing import Iterable

from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.rules import Get


async def first_on_search_path(name: str, search_path: Iterable[str]) -> str | None:
    """The first `name` on the search path that answers `--version`, or None."""
    paths = await Get(
        BinaryPaths,
        BinaryPathRequest(binary_name=name, search_path=tuple(search_path), test=BinaryPathTest(["--version"])),
    )
    return paths.first_path.path if paths.first_path else None
