"""The store-layer tool and the image tool as runnable PEXes: our pure `oci` modules plus the
pinned wheels of the `[nix-docker-layer-tool]` resolve."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.engine.fs import CreateDigest, Digest, FileContent
from pants.engine.rules import Get, collect_rules, rule

from pants_backend_nix_docker.subsystems.layer_tool import NixDockerLayerTool

_PACKAGE = "pants_backend_nix_docker"
# What each tool imports; both stay free of Pants imports to run outside Pants. Every store
# layer's cache key holds the store-layer tool's sources, so they are only what store layers need
# (a test checks its imports against this list).
STORE_LAYER_TOOL_MODULES = (
    "__init__.py",
    "oci/__init__.py",
    "oci/blob.py",
    "oci/compression.py",
    "oci/store_layer_tool.py",
    "oci/tarball.py",
)
IMAGE_TOOL_MODULES = (
    "__init__.py",
    "oci/__init__.py",
    "oci/archive.py",
    "oci/base_image.py",
    "oci/base_image_source.py",
    "oci/blob.py",
    "oci/compression.py",
    "oci/image_check_runner.py",
    "oci/image_checks.py",
    "oci/image_json.py",
    "oci/image_tool.py",
    "oci/platforms.py",
    "oci/push_plan.py",
    "oci/referrers.py",
    "oci/registries.py",
    "oci/registry_client.py",
    "oci/rootfs.py",
    "oci/tarball.py",
)


@dataclass(frozen=True)
class StoreLayerToolPex:
    """Writes the layers of store paths (`oci/store_layer_tool.py`)."""

    pex: VenvPex


@dataclass(frozen=True)
class ImageToolPex:
    """Writes root-filesystem layers and archives, reads base images, pushes
    (`oci/image_tool.py`); the same pinned wheels."""

    pex: VenvPex


def _module_source(module: str) -> bytes:
    data = pkgutil.get_data(_PACKAGE, module)
    assert data is not None, f"{_PACKAGE}/{module} is missing from the plugin's distribution"
    return data


async def _tool_pex(tool: NixDockerLayerTool, modules: tuple[str, ...], main: str) -> VenvPex:
    sources = await Get(Digest, CreateDigest(FileContent(f"{_PACKAGE}/{m}", _module_source(m)) for m in modules))
    return await Get(VenvPex, PexRequest, tool.to_pex_request(sources=sources, main=EntryPoint(main)))


@rule
async def build_store_layer_tool(tool: NixDockerLayerTool) -> StoreLayerToolPex:
    return StoreLayerToolPex(await _tool_pex(tool, STORE_LAYER_TOOL_MODULES, f"{_PACKAGE}.oci.store_layer_tool"))


@rule
async def build_image_tool(tool: NixDockerLayerTool) -> ImageToolPex:
    return ImageToolPex(await _tool_pex(tool, IMAGE_TOOL_MODULES, f"{_PACKAGE}.oci.image_tool"))


def rules():
    return collect_rules()
