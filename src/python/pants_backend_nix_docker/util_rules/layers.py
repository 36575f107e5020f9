"""Store layers: one cacheable process per set of store paths.

A store path's contents never change, so a layer is a pure function of its (sorted) store paths
and the compression settings; those, with the tool's own digest, are the whole cache key. The
layer is therefore built once per machine, once per fleet with a remote cache, and once per run
however many images share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.engine.fs import Digest
from pants.engine.process import ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import store_path_name
from pants_backend_nix_docker.oci.compression import BlobStats
from pants_backend_nix_docker.util_rules.layer_tool import LayerToolPex


@dataclass(frozen=True)
class StoreLayerRequest:
    store_paths: tuple[str, ...]
    compression: str
    level: int

    def __post_init__(self) -> None:
        # Equal sets must be equal requests, so the engine and the cache see one layer.
        object.__setattr__(self, "store_paths", tuple(sorted(set(self.store_paths))))


@dataclass(frozen=True)
class StoreLayer:
    store_paths: tuple[str, ...]
    blob: Digest  # holds blobs/sha256/<hex>
    stats: BlobStats


def describe_paths(store_paths: tuple[str, ...], limit: int = 3) -> str:
    names = [store_path_name(p) for p in store_paths]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@rule(desc="Building a store layer", level=LogLevel.DEBUG)
async def build_store_layer(request: StoreLayerRequest, tool: LayerToolPex) -> StoreLayer:
    result = await Get(
        ProcessResult,
        VenvPexProcess(
            tool.pex,
            argv=(
                "layer",
                "--compression",
                request.compression,
                "--level",
                str(request.level),
                "--",
                *request.store_paths,
            ),
            description=f"Building layer: {describe_paths(request.store_paths)}",
            output_directories=("blobs",),
            level=LogLevel.DEBUG,
            # Store paths are immutable, so the same paths give the same layer anywhere: cache it
            # locally and remotely (only successful runs; a GC'd path fails and is retried).
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    stats = BlobStats(**json.loads(result.stdout))
    return StoreLayer(request.store_paths, result.output_digest, stats)


def rules():
    return collect_rules()
