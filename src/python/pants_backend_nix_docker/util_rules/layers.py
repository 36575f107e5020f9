"""Layers: cacheable processes keyed by store paths, and one per root filesystem spec.

A store path's contents never change, so a layer is a pure function of its (sorted) store paths
and the codec; those, with the tool's own digest, are the whole cache key. The
layer is therefore built once per machine, once per fleet with a remote cache, and once per run
however many images share it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import store_path_name
from pants_backend_nix_docker.oci.blob import blob_in_memory
from pants_backend_nix_docker.oci.compression import BlobStats, LayerCodec
from pants_backend_nix_docker.oci.image_json import blob_path
from pants_backend_nix_docker.oci.rootfs import RootfsError, RootfsSpec, rootfs_nodes, tar_entries
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.util_rules.tools import ImageToolPex, StoreLayerToolPex


@dataclass(frozen=True)
class StoreLayerBatchRequest:
    """Layers of store paths to build in one process (see `layering.batch_layers`)."""

    layers: tuple[tuple[str, ...], ...]
    codec: LayerCodec

    def __post_init__(self) -> None:
        # Equal sets must be equal requests, so the engine and the cache see one batch.
        layers = sorted(tuple(sorted(set(layer))) for layer in self.layers)
        object.__setattr__(self, "layers", tuple(layers))


@dataclass(frozen=True)
class StoreLayerBatch:
    layers: tuple[BuiltLayer, ...]  # in the request's order


@dataclass(frozen=True)
class BuiltLayer:
    blob: Digest  # holds blobs/sha256/<hex>
    stats: BlobStats
    created_by: str  # the image history's account of what the layer holds
    store_paths: tuple[str, ...] = ()
    # Where the process result came from (built, a cache, or memoized), for the package log.
    # Not part of equality: a layer is the same layer however it was obtained.
    metadata: ProcessResultMetadata | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RootfsLayerRequest:
    """A layer of image-specific files: a `RootfsSpec` as JSON, plus any files its nodes carry."""

    address: Address
    spec_json: bytes
    inputs: Digest
    codec: LayerCodec
    created_by: str
    # Made in memory by the rule rather than by a process (see `image_plan.IN_MEMORY_LAYER_BYTES`).
    in_memory: bool = False


class RootfsLayerError(Exception):
    pass


class StoreLayerError(Exception):
    """A layer of store paths could not be written (the tool says why: e.g. a path was GC'd)."""


def describe_paths(store_paths: tuple[str, ...], limit: int = 3) -> str:
    names = [store_path_name(p) for p in store_paths]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _layer_process(process: Process, settings: NixDockerSubsystem) -> Process:
    # Layers are cheaper to fetch than to build: give a remote cache hit the time to win.
    return dataclasses.replace(process, remote_cache_speculation_delay_millis=settings.remote_cache_speculation_delay)


@rule(desc="Building store layers", level=LogLevel.DEBUG)
async def build_store_layers(
    request: StoreLayerBatchRequest, tool: StoreLayerToolPex, settings: NixDockerSubsystem
) -> StoreLayerBatch:
    argv = ["layers", *request.codec.argv]
    for layer in request.layers:
        argv += ["--layer", *layer]
    names = describe_paths(tuple(p for layer in request.layers for p in layer))
    process = _layer_process(
        tool.process(
            argv,
            description=f"Building layers: {names}",
            output_directories=("blobs",),
            # Store paths are immutable, so the same paths give the same layers anywhere: cache
            # them locally and remotely (only successful runs; a GC'd path fails and is retried).
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
        settings,
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise StoreLayerError(
            f"Building the layers of {names} failed: {result.stderr.decode(errors='replace').strip()}"
        )
    stats = [BlobStats(**s) for s in json.loads(result.stdout)]
    blobs = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([blob_path(s.digest)]))) for s in stats
    )
    return StoreLayerBatch(
        tuple(
            BuiltLayer(blob, s, f"nix store paths: {describe_paths(layer, limit=8)}", layer, result.metadata)
            for layer, s, blob in zip(request.layers, stats, blobs)
        )
    )


def _unsatisfiable(request: RootfsLayerRequest, field: str, message: str) -> InvalidFieldException:
    return InvalidFieldException(f"The {field!r} field in target {request.address} cannot be satisfied: {message}")


async def _rootfs_layer_in_memory(request: RootfsLayerRequest) -> BuiltLayer:
    """A small layer whose spec reads nothing from the store: a process would cost more than the
    layer (about 0.1 s each, for every image of a run), and its bytes are the same either way."""
    contents = await Get(DigestContents, Digest, request.inputs)
    spec = RootfsSpec.from_json(json.loads(request.spec_json))
    assert not spec.reads_store(), f"{request.created_by} of {request.address} reads the store"
    try:
        nodes = rootfs_nodes(spec.with_file_contents({c.path: c.content for c in contents}))
    except RootfsError as e:
        raise _unsatisfiable(request, e.field, str(e))
    blob, stats = blob_in_memory(tar_entries(nodes), request.codec)
    digest = await Get(Digest, CreateDigest([FileContent(blob_path(stats.digest), blob)]))
    return BuiltLayer(digest, stats, request.created_by)


@rule(desc="Building an image-specific layer", level=LogLevel.DEBUG)
async def build_rootfs_layer(
    request: RootfsLayerRequest, tool: ImageToolPex, settings: NixDockerSubsystem
) -> BuiltLayer:
    if request.in_memory:
        return await _rootfs_layer_in_memory(request)
    spec = await Get(Digest, CreateDigest([FileContent("rootfs-spec.json", request.spec_json)]))
    inputs = await Get(Digest, MergeDigests([spec, request.inputs]))
    process = _layer_process(
        tool.process(
            ("rootfs", "--spec", "rootfs-spec.json", *request.codec.argv),
            input_digest=inputs,
            description=f"Building layer: {request.created_by} of {request.address}",
            output_directories=("blobs",),
            # The spec names store paths (immutable) and carries every other byte: cacheable.
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
        settings,
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code == 2:
        field, _, message = result.stderr.decode().strip().partition("\t")
        raise _unsatisfiable(request, field, message)
    if result.exit_code != 0:
        raise RootfsLayerError(
            f"{request.address}: building its {request.created_by} layer failed:\n{result.stderr.decode()}"
        )
    stats = BlobStats(**json.loads(result.stdout))
    return BuiltLayer(result.output_digest, stats, request.created_by, metadata=result.metadata)


def rules():
    return collect_rules()
