"""Each tool PEX holds exactly the modules its entry point imports: nothing missing (it would fail
at run time) and nothing extra in the store-layer tool (it would be in every store layer's key);
and a tool's processes hold nothing of the machine they run on."""

from __future__ import annotations

import ast
import pkgutil
from typing import Any, cast

import pytest
from pants.engine.fs import EMPTY_DIGEST, Digest
from pants.engine.process import ProcessCacheScope

from pants_backend_nix_docker.util_rules.tools import (
    IMAGE_TOOL_MODULES,
    STORE_LAYER_TOOL_MODULES,
    StoreLayerToolPex,
    launcher_path,
)

PACKAGE = "pants_backend_nix_docker"


def imported_modules(main: str) -> set[str]:
    """`main` and every module of this package it imports, transitively, as paths."""
    seen: set[str] = set()
    pending = [main]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        source = pkgutil.get_data(PACKAGE, module)
        assert source is not None, module
        for node in ast.walk(ast.parse(source)):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                if name.startswith(f"{PACKAGE}."):
                    pending.append(name[len(PACKAGE) + 1 :].replace(".", "/") + ".py")
    return seen


@pytest.mark.parametrize(
    "main, modules",
    [("oci/store_layer_tool.py", STORE_LAYER_TOOL_MODULES), ("oci/image_tool.py", IMAGE_TOOL_MODULES)],
)
def test_a_tool_holds_exactly_what_its_entry_point_imports(main: str, modules: tuple[str, ...]) -> None:
    packages = {"__init__.py", "oci/__init__.py"}
    assert imported_modules(main) | packages == set(modules)


def test_the_store_layer_tool_holds_no_image_code() -> None:
    for module in ("oci/rootfs.py", "oci/archive.py", "oci/base_image.py", "oci/image_json.py", "oci/registries.py"):
        assert module not in STORE_LAYER_TOOL_MODULES


def test_a_tool_process_is_keyed_by_the_tool_not_by_this_machine() -> None:
    """No PATH, no HOME, no interpreter path: the tool is named by its PEX's digest, and runs from
    the named cache where this machine keeps its venv."""
    pex_contents = Digest("a" * 64, 1234)
    tool = StoreLayerToolPex(pex=cast(Any, None), launcher=launcher_path(pex_contents))
    process = tool.process(
        ("layers", "--layer", "/nix/store/abc-hello"),
        description="Building layers: hello",
        output_directories=("blobs",),
        cache_scope=ProcessCacheScope.SUCCESSFUL,
    )
    assert process.argv == (f".nix-docker-tools/{'a' * 64}/pex", "layers", "--layer", "/nix/store/abc-hello")
    assert dict(process.env) == {}
    assert dict(process.append_only_caches) == {"nix_docker_tools": ".nix-docker-tools"}
    assert process.input_digest == EMPTY_DIGEST
    # Another build of the same PEX names the same launcher; another PEX, another one.
    assert launcher_path(Digest("a" * 64, 1234)) == tool.launcher
    assert launcher_path(Digest("b" * 64, 1234)) != tool.launcher
