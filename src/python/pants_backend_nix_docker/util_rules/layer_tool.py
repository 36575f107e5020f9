"""The layer tool as a runnable PEX: our pure `oci` modules plus the pinned compressor wheels."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass

from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.engine.fs import CreateDigest, Digest, FileContent
from pants.engine.rules import Get, collect_rules, rule

from pants_backend_nix_docker.subsystems.layer_tool import NixDockerLayerTool

_PACKAGE = "pants_backend_nix_docker"
# Everything the tool imports; it must stay free of Pants imports to run outside Pants.
_TOOL_MODULES = (
    "__init__.py",
    "oci/__init__.py",
    "oci/base_image.py",
    "oci/compression.py",
    "oci/image_json.py",
    "oci/registries.py",
    "oci/rootfs.py",
    "oci/tarball.py",
    "oci/tool.py",
)


@dataclass(frozen=True)
class LayerToolPex:
    pex: VenvPex


def _module_source(module: str) -> bytes:
    data = pkgutil.get_data(_PACKAGE, module)
    assert data is not None, f"{_PACKAGE}/{module} is missing from the plugin's distribution"
    return data


@rule
async def build_layer_tool(tool: NixDockerLayerTool) -> LayerToolPex:
    sources = await Get(
        Digest,
        CreateDigest(FileContent(f"{_PACKAGE}/{m}", _module_source(m)) for m in _TOOL_MODULES),
    )
    pex = await Get(VenvPex, PexRequest, tool.to_pex_request(sources=sources))
    return LayerToolPex(pex)


def rules():
    return collect_rules()
