"""The store-layer tool and the image tool as runnable PEXes: our pure `oci` modules plus the
pinned wheels of the `[nix-docker-layer-tool]` resolve.

A cacheable process that runs a tool must have the same key on every machine, or a layer built
by CI is built again on each laptop. Pants' own way to run a PEX (`VenvPexProcess`) puts a shim
script in the sandbox that holds the user's PATH (from `[pex].executable_search_paths`) and the
path of the Python running Pants (under the user's HOME): both in the key. So a tool process runs
the venv Pants seeded for the PEX through a link in a named cache, whose contents Pants does not
hash: its argv names the link by the digest of the PEX (sources and wheels), so the key holds
what the tool is, not where it lives. A per-run process makes the link when it is missing (Pants'
shim seeds the venv again if the named caches were cleared).
"""

from __future__ import annotations

import dataclasses
import pkgutil
from dataclasses import dataclass
from typing import Iterable, Mapping

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.backend.python.util_rules.pex_environment import PexEnvironment
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

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


TOOLS_CACHE = "nix_docker_tools"
TOOLS_DIR = ".nix-docker-tools"

# For each (link, Python shim) pair: nothing when the link still leads to a venv and its
# interpreter; else the venv's Python, run through Pants' shim (which seeds the venv again if it is
# gone), links the venv by its real path.
_STAGE = (
    'code="$1"; shift; while [ "$#" -gt 0 ]; do link="$1"; python="$2"; shift 2; '
    'if [ -x "$link/pex" ] && [ -x "$link/bin/python" ]; then continue; fi; '
    '"$python" -c "$code" "$link" || exit 1; done'
)
# (The named cache's directory is made too: Pants makes it only once per pantsd.)
_LINK_VENV = (
    "import os, sys; link = sys.argv[1]; tmp = '%s.%d.tmp' % (link, os.getpid()); "
    "os.makedirs(os.path.realpath(os.path.dirname(link)), exist_ok=True); "
    "os.symlink(os.path.realpath(sys.prefix), tmp); os.replace(tmp, link)"
)


@dataclass(frozen=True)
class Tool:
    """A tool PEX, and the sandbox path of its venv's entry point (see the module docstring)."""

    # Seeds the venv, and runs pushes (interactive: never cached, and they need the user's PATH).
    pex: VenvPex
    launcher: str

    def process(
        self,
        argv: Iterable[str],
        *,
        description: str,
        cache_scope: ProcessCacheScope,
        input_digest: Digest = EMPTY_DIGEST,
        output_files: Iterable[str] = (),
        output_directories: Iterable[str] = (),
        immutable_input_digests: Mapping[str, Digest] = FrozenDict(),
        timeout_seconds: int | None = None,
    ) -> Process:
        """A process whose key is the tool's digest, `argv` and the inputs: no environment at all
        (the interpreter is named by the venv's own script)."""
        return Process(
            (self.launcher, *argv),
            description=description,
            level=LogLevel.DEBUG,
            input_digest=input_digest,
            immutable_input_digests=FrozenDict(immutable_input_digests),
            output_files=tuple(output_files),
            output_directories=tuple(output_directories),
            append_only_caches=FrozenDict({TOOLS_CACHE: TOOLS_DIR}),
            timeout_seconds=timeout_seconds,
            cache_scope=cache_scope,
        )


@dataclass(frozen=True)
class StoreLayerToolPex(Tool):
    """Writes the layers of store paths (`oci/store_layer_tool.py`)."""


@dataclass(frozen=True)
class ImageToolPex(Tool):
    """Writes root-filesystem layers and archives, reads base images, pushes
    (`oci/image_tool.py`); the same pinned wheels."""


def _module_source(module: str) -> bytes:
    data = pkgutil.get_data(_PACKAGE, module)
    assert data is not None, f"{_PACKAGE}/{module} is missing from the plugin's distribution"
    return data


def launcher_path(pex_contents: Digest) -> str:
    return f"{TOOLS_DIR}/{pex_contents.fingerprint}/pex"


@dataclass(frozen=True)
class _Tools:
    store_layer: StoreLayerToolPex
    image: ImageToolPex


def _pex_request(tool: NixDockerLayerTool, sources: Digest, main: str, filename: str) -> PexRequest:
    request = tool.to_pex_request(sources=sources, main=EntryPoint(f"{_PACKAGE}.oci.{main}"))
    # Named apart, so that one process can link both venvs (their shims are named after them).
    return dataclasses.replace(request, output_filename=filename)


@rule(desc="Preparing the layer and image tools", level=LogLevel.DEBUG)
async def build_tools(tool: NixDockerLayerTool, bash: BashBinary, pex_env: PexEnvironment) -> _Tools:
    """Both tool PEXes, with the links their processes run through made for this run: once, for
    both, since it runs again on every run (even a no-op one)."""
    store_sources, image_sources = await MultiGet(
        Get(Digest, CreateDigest(FileContent(f"{_PACKAGE}/{m}", _module_source(m)) for m in modules))
        for modules in (STORE_LAYER_TOOL_MODULES, IMAGE_TOOL_MODULES)
    )
    store_pex, image_pex = await MultiGet(
        Get(
            VenvPex,
            PexRequest,
            _pex_request(tool, store_sources, "store_layer_tool", "nix_docker_store_layer_tool.pex"),
        ),
        Get(VenvPex, PexRequest, _pex_request(tool, image_sources, "image_tool", "nix_docker_image_tool.pex")),
    )
    # Each PEX alone, without Pants' shims: its sources and wheels, the same on every machine.
    store_contents, image_contents, both = await MultiGet(
        *(
            Get(Digest, DigestSubset(pex.digest, PathGlobs([pex.pex_filename, f"{pex.pex_filename}/**"])))
            for pex in (store_pex, image_pex)
        ),
        Get(Digest, MergeDigests([store_pex.digest, image_pex.digest])),
    )
    store_tool = StoreLayerToolPex(store_pex, launcher_path(store_contents))
    image_tool = ImageToolPex(image_pex, launcher_path(image_contents))
    pairs = [(t.launcher.rsplit("/", 1)[0], t.pex.python.argv0) for t in (store_tool, image_tool)]
    await Get(
        ProcessResult,
        Process(
            (bash.path, "-c", _STAGE, "stage", _LINK_VENV, *(arg for pair in pairs for arg in pair)),
            input_digest=both,
            # Pants' shims need its PEX root (to seed a venv again); the links go in ours.
            append_only_caches=FrozenDict(
                {
                    **pex_env.in_sandbox(working_directory=None).append_only_caches,
                    **(store_pex.append_only_caches or {}),
                    TOOLS_CACHE: TOOLS_DIR,
                }
            ),
            description="Linking the layer and image tools' venvs into Pants' named caches",
            level=LogLevel.DEBUG,
            # This machine's paths, so never reused from another run: a named cache cleared since
            # the last run is noticed by the next one.
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    return _Tools(store_tool, image_tool)


@rule
async def store_layer_tool(tools: _Tools) -> StoreLayerToolPex:
    return tools.store_layer


@rule
async def image_tool(tools: _Tools) -> ImageToolPex:
    return tools.image


def rules():
    return collect_rules()
