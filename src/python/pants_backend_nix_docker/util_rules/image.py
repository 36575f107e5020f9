"""From a `nix_docker_image` target to an image archive: fetch the facts, plan, build the layers,
assemble, write. The decisions are the pure functions of `image_plan.py`; this rule fetches what
they name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.report import ImageReport
from pants_backend_nix_docker.oci.image_json import canonical_json
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.util_rules.artifacts import ImageArtifacts, ImageArtifactsRequest
from pants_backend_nix_docker.util_rules.base_image import BaseImage, BaseImageRequest
from pants_backend_nix_docker.util_rules.closure_graph import ClosureGraph, ClosureGraphRequest
from pants_backend_nix_docker.util_rules.git import GitRevision
from pants_backend_nix_docker.util_rules.image_plan import (
    AssembledImage,
    ImageFacts,
    ImagePlan,
    ImageSettings,
    NixImageRequest,
    Realised,
    assemble_image,
    check_request,
    installables_to_realise,
    plan_image,
    render_tags,
)
from pants_backend_nix_docker.util_rules.layers import (
    BuiltLayer,
    RootfsLayerRequest,
    StoreLayerBatch,
    StoreLayerBatchRequest,
)
from pants_backend_nix_docker.util_rules.nix import ClosureRequest
from pants_backend_nix_docker.util_rules.realise import RealisedInstallable, RealiseRequest
from pants_backend_nix_docker.util_rules.tools import ImageToolPex

__all__ = ["NixImage", "NixImageRequest"]

STORE_BLOBS_DIR = "store-layers"


@dataclass(frozen=True)
class NixImage:
    digest: Digest  # the archive (or layout directory) at output_path
    output_path: str
    manifest_digest: str
    config_digest: str
    size: int
    layers: tuple[BuiltLayer, ...]  # the image's own, bottom to top
    base_layers: int  # how many layers of a base image lie below them
    closure_paths: tuple[str, ...]
    tags: tuple[str, ...]  # image_tags with their placeholders filled in
    report: ImageReport
    report_path: str  # the report as JSON next to the image (in `digest`)
    sbom_path: str  # the SPDX document next to the image (in `digest`)
    graph_paths: tuple[str, ...]  # the closure graph's .dot (and .svg), when asked for


async def _write_archive(tool: ImageToolPex, layout: Digest, store_blobs: Digest, output_path: str) -> Digest:
    """One deterministic .tar of the layout; the shared store blobs come in as an immutable input."""
    archive_process = await Get(
        Process,
        VenvPexProcess(
            tool.pex,
            argv=("archive", "--layout", "layout", "--layout", STORE_BLOBS_DIR, "--output", output_path),
            input_digest=layout,
            output_files=(output_path,),
            description=f"Writing image archive {output_path}",
            level=LogLevel.DEBUG,
            # A pure function of the layout's bytes, but never persisted: a cache entry would be
            # every layer's bytes again, uploaded to a remote cache for each image (Pants 2.17
            # has no local-only scope), while writing it again from blobs already in the local
            # store costs about as much as fetching it. pantsd still memoises it between runs.
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
    )
    archive = await Get(
        ProcessResult,
        Process,
        dataclasses.replace(
            archive_process,
            immutable_input_digests=FrozenDict(
                {**archive_process.immutable_input_digests, STORE_BLOBS_DIR: store_blobs}
            ),
        ),
    )
    return archive.output_digest


async def _write_outputs(
    request: NixImageRequest,
    plan: ImagePlan,
    image: AssembledImage,
    base: BaseImage,
    store_layers: tuple[BuiltLayer, ...],
    own_layers: tuple[BuiltLayer, ...],
    graph: ClosureGraph,
    tool: ImageToolPex,
) -> Digest:
    """The archive (or layout directory) at `output_path`, with the report, SBOM and graph beside it."""
    # Store layers are the bulk and are shared by many images, so they stay one digest: a layout
    # is made of them directly, an archive process gets them as an immutable input.
    side = [
        FileContent(plan.report_path, canonical_json(image.report.to_json())),
        FileContent(plan.sbom_path, plan.sbom),
    ]
    own_files, store_blobs, side_files = await MultiGet(
        Get(Digest, CreateDigest(FileContent(name, data) for name, data in image.files.files.items())),
        Get(Digest, MergeDigests([base.blobs, *(layer.blob for layer in store_layers)])),
        Get(Digest, CreateDigest(side)),
    )
    own = await Get(Digest, MergeDigests([own_files, *(layer.blob for layer in own_layers)]))
    if request.output_format == "layout":
        # Every blob is already a file in Pants' store: the layout is made of them, not copies.
        layout_dir = await Get(Digest, MergeDigests([own, store_blobs]))
        digest = await Get(Digest, AddPrefix(layout_dir, request.output_path))
    else:
        layout = await Get(Digest, AddPrefix(own, "layout"))
        digest = await _write_archive(tool, layout, store_blobs, request.output_path)
    return await Get(Digest, MergeDigests([digest, side_files, graph.digest]))


def image_settings(settings: NixDockerSubsystem) -> ImageSettings:
    return ImageSettings(
        cacert_package=settings.cacert_package,
        codec=settings.codec,
        layering=settings.layering.value,
        layer_buckets=settings.layer_buckets,
        layer_alone_above=settings.layer_alone_above,
    )


@rule(desc="Building a Nix image", level=LogLevel.DEBUG)
async def build_nix_image(request: NixImageRequest, settings: NixDockerSubsystem, tool: ImageToolPex) -> NixImage:
    check_request(request)
    options, address = image_settings(settings), request.address
    wanted = installables_to_realise(request, options.cacert_package)
    # One MultiGet of three kinds of answer; mypy cannot type its unpacking, the names do.
    fetched: tuple[Any, ...] = await MultiGet(
        *(
            Get(RealisedInstallable, RealiseRequest(installable, spec_path, address))
            for installable, spec_path in wanted
        ),
        Get(ImageArtifacts, ImageArtifactsRequest(address, request.dependencies, request.app_dir)),
        Get(BaseImage, BaseImageRequest(address, request.base_image)),
    )
    *realised, artifacts, base = fetched
    outputs = tuple(Realised(r.installable, r.outputs) for r in realised)
    closure = await Get(Closure, ClosureRequest(tuple(p for r in outputs for p in r.outputs), address))
    facts = ImageFacts(outputs, len(wanted) > len(request.packages), closure, artifacts, base.info)
    plan = plan_image(request, facts, options, now=datetime.now(timezone.utc))

    # The image's own layers build alongside the store's: on a cold build the app layer does not
    # wait for the big store layers.
    built: tuple[Any, ...] = await MultiGet(
        *(Get(StoreLayerBatch, StoreLayerBatchRequest(b, options.codec)) for b in plan.batches),
        *(Get(BuiltLayer, RootfsLayerRequest, r) for r in plan.own_layers),
        Get(ClosureGraph, ClosureGraphRequest, plan.graph),
    )
    batches = cast("tuple[StoreLayerBatch, ...]", built[: len(plan.batches)])
    own_layers = cast("tuple[BuiltLayer, ...]", built[len(plan.batches) : -1])
    graph = cast(ClosureGraph, built[-1])
    revision = await Get(GitRevision) if plan.needs_git_revision else GitRevision(None)
    tags = render_tags(request, closure, revision.value, revision.problem)
    store_layers = tuple(layer for batch in batches for layer in batch.layers)
    image = assemble_image(request, plan, facts, options, store_layers, own_layers, tags, base.name)
    digest = await _write_outputs(request, plan, image, base, store_layers, own_layers, graph, tool)
    return NixImage(
        digest=digest,
        output_path=request.output_path,
        manifest_digest=image.files.manifest_digest,
        config_digest=image.files.config_digest,
        size=image.files.total_size,
        layers=image.layers,
        base_layers=len(facts.base_info.layers) if facts.base_info else 0,
        closure_paths=tuple(sorted(closure.paths)),
        tags=tags,
        report=image.report,
        report_path=plan.report_path,
        sbom_path=plan.sbom_path,
        graph_paths=graph.paths,
    )


def rules():
    return collect_rules()
