"""Each tool PEX holds exactly the modules its entry point imports: nothing missing (it would fail
at run time) and nothing extra in the store-layer tool (it would be in every store layer's key)."""

from __future__ import annotations

import ast
import pkgutil

import pytest

from pants_backend_nix_docker.util_rules.tools import IMAGE_TOOL_MODULES, STORE_LAYER_TOOL_MODULES

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
