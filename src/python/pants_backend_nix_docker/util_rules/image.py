"""From a `nix_docker_image` target to an image archive: fetch the facts, plan, build the layers,
assemble, write. The decisions are the pure functions of `image_plan.py`; these rules fetch what
they name. `build_nix_image` makes one platform's image; `build_image`, what the goals ask for,
makes the target's one image, or one per platform tied together by an image index."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, cast

from pants.engine.fs import EMPTY_DIGEST, AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.platform import Platform as PantsPlatform
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.installables import FILE_ATTR
from pants_backend_nix_docker.nix.report import ImageReport
from pants_backend_nix_docker.oci.image_json import (
    DEFAULT_PLATFORM,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    blob_path,
    canonical_json,
    index_files,
)
from pants_backend_nix_docker.oci.platforms import Platform, host_system, platform_of
from pants_backend_nix_docker.oci.referrers import Referrer, layout_index
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

__all__ = ["BuildImageRequest", "BuiltImage", "NixImage", "NixImageRequest"]

STORE_BLOBS_DIR = "store-layers"


@dataclass(frozen=True)
class NixImage:
    """One platform's image. Its blobs come in three digests (its own, the store's, the side files)
    so that a multi-platform image can store what platforms share once."""

    digest: Digest  # the archive (or layout directory) at output_path; empty when `in_index`
    output_path: str
    manifest_digest: str
    config_digest: str
    size: int
    layers: tuple[BuiltLayer, ...]  # the image's own, bottom to top
    base_layers: int  # how many layers of a base image lie below them
    closure_paths: tuple[str, ...]
    tags: tuple[str, ...]  # image_tags with their placeholders filled in
    report: ImageReport
    report_path: str  # the report as JSON next to the image (in `side`)
    sbom_path: str  # the SPDX document next to the image (in `side`)
    graph_paths: tuple[str, ...]  # the closure graph's .dot (and .svg), when asked for
    platform: Platform = DEFAULT_PLATFORM
    manifest_size: int = 0
    own_blobs: Digest = EMPTY_DIGEST  # config, manifest and own layers, as blobs/sha256/...
    store_blobs: Digest = EMPTY_DIGEST  # the base image's and the store's layers
    side: Digest = EMPTY_DIGEST  # report, SBOM and graph
    top_files: FrozenDict[str, bytes] = FrozenDict()  # oci-layout, index.json, manifest.json
    referrers: tuple[Referrer, ...] = ()  # artifacts about the image (its SBOM); blobs in own_blobs


async def _write_archive(tool: ImageToolPex, layout: Digest, store_blobs: Digest, output_path: str) -> Digest:
    """One deterministic .tar of the layout; the shared store blobs come in as an immutable input."""
    archive_process = tool.process(
        ("archive", "--layout", "layout", "--layout", STORE_BLOBS_DIR, "--output", output_path),
        input_digest=layout,
        output_files=(output_path,),
        immutable_input_digests={STORE_BLOBS_DIR: store_blobs},
        description=f"Writing image archive {output_path}",
        # A pure function of the layout's bytes, but never persisted: a cache entry would be
        # every layer's bytes again, uploaded to a remote cache for each image (Pants 2.17 has
        # no local-only scope), while writing it again from blobs already in the local store
        # costs about as much as fetching it. pantsd still memoises it between runs.
        cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
    )
    archive = await Get(ProcessResult, Process, archive_process)
    return archive.output_digest


async def _image_digests(
    plan: ImagePlan,
    image: AssembledImage,
    base: BaseImage,
    store_layers: tuple[BuiltLayer, ...],
    own_layers: tuple[BuiltLayer, ...],
    graph: ClosureGraph,
) -> tuple[Digest, Digest, Digest]:
    """(own blobs, store blobs, side files). Store layers are the bulk and are shared by many
    images, so they stay one digest: a layout is made of them directly, an archive process gets
    them as an immutable input."""
    side = [
        FileContent(plan.report_path, canonical_json(image.report.to_json())),
        FileContent(plan.sbom_path, plan.sbom),
    ]
    blob_files = {name: data for name, data in image.files.files.items() if name.startswith("blobs/")}
    blob_files.update(image.sbom.files)
    own_files, store_blobs, side_files = await MultiGet(
        Get(Digest, CreateDigest(FileContent(name, data) for name, data in blob_files.items())),
        Get(Digest, MergeDigests([base.blobs, *(layer.blob for layer in store_layers)])),
        Get(Digest, CreateDigest(side)),
    )
    own_blobs, side_all = await MultiGet(
        Get(Digest, MergeDigests([own_files, *(layer.blob for layer in own_layers)])),
        Get(Digest, MergeDigests([side_files, graph.digest])),
    )
    return own_blobs, store_blobs, side_all


async def _write_image(
    tool: ImageToolPex,
    output_format: str,
    output_path: str,
    top_files: Mapping[str, bytes],
    own_blobs: Digest,
    store_blobs: Digest,
    side: Digest,
    referrers: tuple[Referrer, ...],
) -> Digest:
    """The archive (or layout directory) at `output_path`, with the side files beside it.

    Both hold the referrers' blobs, but only a layout's `index.json` lists them: `podman load`
    takes an archive whose index names one image (with more, it falls back to `manifest.json` and
    changes the image's digest), and `ctr images import` would try to import an artifact as an
    image. Publishing reads them from the build, not from `index.json`."""
    if output_format == "layout" and referrers:
        index = layout_index(json.loads(top_files["index.json"]), referrers)
        top_files = {**top_files, "index.json": canonical_json(index)}
    top = await Get(Digest, CreateDigest(FileContent(name, data) for name, data in top_files.items()))
    own = await Get(Digest, MergeDigests([top, own_blobs]))
    if output_format == "layout":
        # Every blob is already a file in Pants' store: the layout is made of them, not copies.
        layout_dir = await Get(Digest, MergeDigests([own, store_blobs]))
        digest = await Get(Digest, AddPrefix(layout_dir, output_path))
    else:
        layout = await Get(Digest, AddPrefix(own, "layout"))
        digest = await _write_archive(tool, layout, store_blobs, output_path)
    return await Get(Digest, MergeDigests([digest, side]))


async def _rendered_tags(request: NixImageRequest, closure_paths: Iterable[str]) -> tuple[str, ...]:
    """`image_tags` with their placeholders filled in; git is asked only when a tag names it."""
    revision = await Get(GitRevision) if request.needs_git_revision else GitRevision(None)
    return render_tags(request, closure_paths, revision.value, revision.problem)


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
            Get(
                RealisedInstallable,
                RealiseRequest(
                    installable, spec_path, address, request.system_arg if installable.kind == FILE_ATTR else None
                ),
            )
            for installable, spec_path in wanted
        ),
        Get(ImageArtifacts, ImageArtifactsRequest(address, request.dependencies, request.app_dir)),
        Get(BaseImage, BaseImageRequest(address, request.base_image, request.platform)),
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
    tags = await _rendered_tags(request, closure.paths)
    store_layers = tuple(layer for batch in batches for layer in batch.layers)
    image = assemble_image(request, plan, facts, options, store_layers, own_layers, tags, base.name)
    own_blobs, store_blobs, side = await _image_digests(plan, image, base, store_layers, own_layers, graph)
    top_files = {name: data for name, data in image.files.files.items() if not name.startswith("blobs/")}
    digest = (
        EMPTY_DIGEST
        if request.in_index
        else await _write_image(
            tool, request.output_format, request.output_path, top_files, own_blobs, store_blobs, side, (image.sbom,)
        )
    )
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
        platform=request.platform,
        manifest_size=len(image.files.files[blob_path(image.files.manifest_digest)]),
        own_blobs=own_blobs,
        store_blobs=store_blobs,
        side=side,
        top_files=FrozenDict(top_files),
        referrers=(image.sbom,),
    )


@dataclass(frozen=True)
class BuildImageRequest:
    """What the goals ask for: the target's image, for one platform or as an index of several."""

    image: NixImageRequest


@dataclass(frozen=True)
class BuiltImage:
    digest: Digest  # the archive (or layout directory) at output_path, and the side files
    output_path: str
    image_digest: str  # what a registry names it by: the manifest's, or the index's digest
    tags: tuple[str, ...]
    size: int  # every blob once, as a registry would store them
    images: tuple[NixImage, ...]  # one per platform, in `platforms` order

    @property
    def is_index(self) -> bool:
        return len(self.images) > 1

    @property
    def referrers(self) -> tuple[Referrer, ...]:
        return tuple(referrer for image in self.images for referrer in image.referrers)


def image_platforms(request: NixImageRequest, host: PantsPlatform) -> tuple[Platform, ...]:
    return tuple(platform_of(s) for s in request.fields.platforms.value or (host_system(host.value),))


def _index_size(images: tuple[NixImage, ...], index_size: int) -> int:
    blobs = {layer.digest: layer.size for image in images for layer in image.report.layers}
    blobs.update((image.manifest_digest, image.manifest_size) for image in images)
    blobs.update((image.config_digest, image.report.config_size) for image in images)
    return index_size + sum(blobs.values())


@rule(desc="Building a Nix image for each platform", level=LogLevel.DEBUG)
async def build_image(request: BuildImageRequest, host: PantsPlatform, tool: ImageToolPex) -> BuiltImage:
    platforms = image_platforms(request.image, host)
    if len(platforms) == 1:
        image = await Get(NixImage, NixImageRequest, request.image.for_platform(platforms[0], in_index=False))
        return BuiltImage(image.digest, image.output_path, image.manifest_digest, image.tags, image.size, (image,))

    images = await MultiGet(
        Get(NixImage, NixImageRequest, request.image.for_platform(p, in_index=True)) for p in platforms
    )
    # One tag for every platform: `{closure_hash}` hashes the closures of all of them.
    tags = await _rendered_tags(request.image, {path for image in images for path in image.closure_paths})
    manifests = [
        (Descriptor(MEDIA_TYPE_MANIFEST, image.manifest_digest, image.manifest_size), image.platform)
        for image in images
    ]
    index, top_files = index_files(manifests, request.image.repository, tags, images[0].top_files["manifest.json"])
    own_blobs, store_blobs, side = await MultiGet(
        Get(Digest, MergeDigests(image.own_blobs for image in images)),
        Get(Digest, MergeDigests(image.store_blobs for image in images)),
        Get(Digest, MergeDigests(image.side for image in images)),
    )
    image = images[0]
    referrers = tuple(referrer for image in images for referrer in image.referrers)
    digest = await _write_image(
        tool, request.image.output_format, image.output_path, top_files, own_blobs, store_blobs, side, referrers
    )
    return BuiltImage(digest, image.output_path, index.digest, tags, _index_size(images, index.size), images)


def rules():
    return collect_rules()
