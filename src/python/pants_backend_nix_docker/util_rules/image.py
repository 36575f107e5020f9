"""From a `nix_docker_image` target to an image archive: realise, close, layer, assemble."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, cast

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix import report as report_lib
from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.installables import (
    PackageRefError,
    package_ref_table,
    parse_installable,
    substitute_package_refs,
)
from pants_backend_nix_docker.oci import layering
from pants_backend_nix_docker.oci import tags as tags_lib
from pants_backend_nix_docker.oci.base_image import BaseImageInfo, merge_config
from pants_backend_nix_docker.oci.compression import MEDIA_TYPES
from pants_backend_nix_docker.oci.customisation import CA_BUNDLE, Customisation, check_user, customisation_spec
from pants_backend_nix_docker.oci.image_json import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_BASE_NAME,
    ANNOTATION_SBOM_DIGEST,
    ANNOTATION_SBOM_MEDIA_TYPE,
    ContainerConfig,
    Descriptor,
    LayerInfo,
    blob_path,
    canonical_json,
    image_files,
    sha256_digest,
)
from pants_backend_nix_docker.oci.rootfs import RootfsError, RootfsSpec
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NixImageCmdField,
    NixImageDependenciesField,
    NixImageEntrypointField,
    NixImageEnvField,
    NixImageTagsField,
    NixImageWorkingDirField,
)
from pants_backend_nix_docker.util_rules.artifacts import ImageArtifacts, ImageArtifactsRequest
from pants_backend_nix_docker.util_rules.base_image import BaseImage, BaseImageRequest
from pants_backend_nix_docker.util_rules.closure_graph import ClosureGraph, ClosureGraphRequest
from pants_backend_nix_docker.util_rules.git import GitRevision
from pants_backend_nix_docker.util_rules.image_policy import (
    check_config_references,
    check_forbidden,
    check_layer_budget,
    check_size,
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

STORE_BLOBS_DIR = "store-layers"


@dataclass(frozen=True)
class NixImageRequest:
    """Everything an image is made of, already validated by the target's fields."""

    address: Address
    packages: tuple[str, ...]
    dependencies: NixImageDependenciesField
    base_image: str | None
    forbidden_references: tuple[str, ...]
    max_image_size: int | None
    closure_graph: bool
    app_dir: str
    customisation: Customisation
    container: ContainerConfig
    repository: str
    tags: tuple[str, ...]
    max_layers: int
    layering: str | None  # None: [nix-docker].layering
    created: str
    output_format: str  # "archive" or "layout"
    output_path: str


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
    report_path: str  # the JSON report next to the image (in `digest`)
    sbom_path: str  # the SPDX document next to the image (in `digest`)
    graph_paths: tuple[str, ...]  # the closure graph's .dot (and .svg), when asked for


def _substitute_config(
    address: Address, container: ContainerConfig, table: Mapping[str, str | None]
) -> ContainerConfig:
    """Replace `${pkgs.NAME}` everywhere a store path may be written."""

    def sub(field: str, text: str) -> str:
        try:
            return substitute_package_refs(text, dict(table))
        except PackageRefError as e:
            raise InvalidFieldException(
                f"The {field!r} field in target {address} has an invalid value {text!r}: {e}. "
                "Use the attribute name of one of the image's `packages`."
            )

    return dataclasses.replace(
        container,
        entrypoint=tuple(sub(NixImageEntrypointField.alias, s) for s in container.entrypoint),
        cmd=tuple(sub(NixImageCmdField.alias, s) for s in container.cmd),
        env=tuple((k, sub(NixImageEnvField.alias, v)) for k, v in container.env),
        working_dir=sub(NixImageWorkingDirField.alias, container.working_dir) if container.working_dir else None,
    )


def _created(value: str) -> str:
    if value == "now":
        return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return value


def _field_error(address: Address, error: RootfsError, value: object) -> InvalidFieldException:
    return InvalidFieldException(
        f"The {error.field!r} field in target {address} has an invalid value {value!r}: {error}."
    )


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


def _top_layer_requests(
    request: NixImageRequest, rootfs_spec: RootfsSpec, artifacts: ImageArtifacts, compression: str, level: int
) -> list[RootfsLayerRequest]:
    """Stable customisation below, the artifacts that change every commit on top: an app change
    rebuilds and re-ships one small layer."""
    requests = []
    if not rootfs_spec.is_empty():
        spec = canonical_json(rootfs_spec.to_json())
        requests.append(
            RootfsLayerRequest(request.address, spec, EMPTY_DIGEST, compression, level, "image root filesystem")
        )
    if not artifacts.is_empty:
        spec = canonical_json(RootfsSpec(nodes=artifacts.nodes).to_json())
        requests.append(
            RootfsLayerRequest(
                request.address, spec, artifacts.digest, compression, level, f"Pants artifacts in {request.app_dir}"
            )
        )
    return requests


def _sbom(request: NixImageRequest, closure: Closure, roots: tuple[str, ...]) -> bytes:
    return canonical_json(
        report_lib.spdx_document(
            # Not the address: two targets with the same inputs make the same image.
            name=request.repository,
            namespace=f"https://pants-nix-docker.invalid/spdx/{request.repository}/{tags_lib.closure_hash(closure.paths)}",
            created=_created(request.created),
            closure=closure,
            roots=roots,
        )
    )


def _annotations(sbom: bytes, base: BaseImage, base_info: BaseImageInfo | None) -> dict[str, str]:
    # The image says which SBOM describes it (the SBOM sits next to it in dist/), and what it is built on.
    annotations = {ANNOTATION_SBOM_DIGEST: sha256_digest(sbom), ANNOTATION_SBOM_MEDIA_TYPE: "application/spdx+json"}
    if base_info:
        annotations[ANNOTATION_BASE_DIGEST] = base_info.manifest_digest
        if base.name:
            annotations[ANNOTATION_BASE_NAME] = base.name
    return annotations


def _report_layers(base_info: BaseImageInfo | None, layers: tuple[BuiltLayer, ...]) -> list[report_lib.ReportLayer]:
    return [
        *(
            report_lib.ReportLayer(layer.digest, layer.size, None, "base image layer", layer.store_paths)
            for layer in (base_info.layers if base_info else ())
        ),
        *(
            report_lib.ReportLayer(
                layer.stats.digest, layer.stats.size, layer.stats.uncompressed_size, layer.created_by, layer.store_paths
            )
            for layer in layers
        ),
    ]


async def _render_tags(request: NixImageRequest, closure: Closure) -> tuple[str, ...]:
    values = {
        "closure_hash": tags_lib.closure_hash(closure.paths),
        "repository": tags_lib.repository_value(request.repository),
        "git_revision": "",
    }
    if any("git_revision" in tags_lib.placeholders_in(t) for t in request.tags):
        revision = await Get(GitRevision)
        if revision.value is None:
            raise InvalidFieldException(
                f"The {NixImageTagsField.alias!r} field in target {request.address} uses {{git_revision}}, but "
                f"{revision.problem}. Build from a git checkout, or drop the placeholder."
            )
        values["git_revision"] = revision.value
    try:
        return tuple(tags_lib.render(t, values) for t in request.tags)
    except tags_lib.TagError as e:
        raise InvalidFieldException(f"The {NixImageTagsField.alias!r} field in target {request.address}: {e}.")


@rule(desc="Building a Nix image", level=LogLevel.DEBUG)
async def build_nix_image(request: NixImageRequest, settings: NixDockerSubsystem, tool: ImageToolPex) -> NixImage:
    settings.validate()
    address, custom = request.address, request.customisation
    if request.base_image is None:
        # With a base image, the user may come from the base's /etc/passwd.
        try:
            check_user(request.container.user, custom)
        except RootfsError as e:
            raise _field_error(address, e, request.container.user)

    installables = [parse_installable(raw, address.spec_path) for raw in request.packages]
    # Relative flake references resolve against the BUILD file's directory; the option's
    # cacert installable against the build root.
    to_realise = [(installable, address.spec_path) for installable in installables]
    cacert = parse_installable(settings.cacert_package, "") if custom.ca_certificates else None
    if cacert:
        to_realise.append((cacert, ""))
    # One MultiGet of three kinds of answer; mypy cannot type its unpacking, the names do.
    fetched: tuple[Any, ...] = await MultiGet(
        *(
            Get(RealisedInstallable, RealiseRequest(installable, spec_path, address))
            for installable, spec_path in to_realise
        ),
        Get(ImageArtifacts, ImageArtifactsRequest(address, request.dependencies, request.app_dir)),
        Get(BaseImage, BaseImageRequest(address, request.base_image)),
    )
    *realised, artifacts, base = fetched
    base_info = base.info
    roots = tuple(path for r in realised for path in r.outputs)
    closure = await Get(Closure, ClosureRequest(roots, address))
    check_forbidden(address, closure, roots, request.forbidden_references)
    container = _substitute_config(
        address, request.container, package_ref_table([(r.installable, r.outputs) for r in realised])
    )
    check_config_references(address, container, closure)

    package_roots = [r.outputs[0] for r in realised[: len(installables)]]
    cacert_root = realised[-1].outputs[0] if cacert else None
    if cacert_root and not any(k == "SSL_CERT_FILE" for k, _ in container.env):
        container = dataclasses.replace(container, env=(*container.env, ("SSL_CERT_FILE", cacert_root + CA_BUNDLE)))
    if base_info:
        container = merge_config(base_info.config, container)
    try:
        rootfs_spec = customisation_spec(custom, package_roots, cacert_root)
    except RootfsError as e:
        raise _field_error(address, e, getattr(custom, e.field, None))

    compression, level = settings.compression.value, settings.level
    top_requests = _top_layer_requests(request, rootfs_spec, artifacts, compression, level)
    base_layers = base_info.layers if base_info else ()
    # What the base already ships is not shipped again: a store path is the same bytes anywhere.
    to_layer = closure.without(path for layer in base_layers for path in layer.store_paths)
    budget = check_layer_budget(address, request.max_layers, len(base_layers), len(top_requests), bool(to_layer.paths))
    plan = (
        layering.plan_store_layers(to_layer, budget, request.layering or settings.layering.value)
        if to_layer.paths
        else ()
    )
    sizes = {path: info.nar_size for path, info in closure.paths.items()}
    batches = layering.batch_layers(plan, sizes, settings.layer_buckets, settings.layer_alone_above)
    # The image's own layers build alongside the store's: on a cold build the app layer does not
    # wait for the big store layers.
    built: tuple[Any, ...] = await MultiGet(
        *(Get(StoreLayerBatch, StoreLayerBatchRequest(batch, compression, level)) for batch in batches),
        *(Get(BuiltLayer, RootfsLayerRequest, r) for r in top_requests),
    )
    built_batches = cast("tuple[StoreLayerBatch, ...]", built[: len(batches)])
    top_layers = cast("tuple[BuiltLayer, ...]", built[len(batches) :])
    by_paths = {layer.store_paths: layer for batch in built_batches for layer in batch.layers}
    layers: tuple[BuiltLayer, ...] = (*(by_paths[tuple(sorted(paths))] for paths in plan), *top_layers)

    tags = await _render_tags(request, closure)
    sbom = _sbom(request, closure, roots)
    files = image_files(
        [
            *(
                LayerInfo(Descriptor(layer.media_type, layer.digest, layer.size), layer.diff_id, None)
                for layer in base_layers
            ),
            *(
                LayerInfo(
                    Descriptor(MEDIA_TYPES[compression], layer.stats.digest, layer.stats.size),
                    layer.stats.diff_id,
                    layer.created_by,
                )
                for layer in layers
            ),
        ],
        container,
        _created(request.created),
        request.repository,
        tags,
        annotations=_annotations(sbom, base, base_info),
        base_history=base_info.history if base_info else (),
    )
    report = report_lib.image_report(
        address=str(address),
        repository=request.repository,
        tags=tags,
        manifest_digest=files.manifest_digest,
        config_size=len(files.files[blob_path(files.config_digest)]),
        manifest_size=len(files.files[blob_path(files.manifest_digest)]),
        layers=_report_layers(base_info, layers),
        closure=closure,
        roots=roots,
        referenced_by=report_lib.referenced_by(container.to_json(), rootfs_spec.store_links()),
    )
    check_size(address, report, request.max_image_size)

    stem = request.output_path[: -len(".tar")] if request.output_path.endswith(".tar") else request.output_path
    report_path, sbom_path = f"{stem}.report.json", f"{stem}.spdx.json"
    graph_request = (
        ClosureGraphRequest(report_lib.closure_dot(closure, roots), f"{stem}.closure.dot", f"{stem}.closure.svg")
        if request.closure_graph
        else ClosureGraphRequest("", "", "")
    )
    # Store layers are the bulk and are shared by many images, so they stay one digest: a layout
    # is made of them directly, an archive process gets them as an immutable input.
    own_files, store_blobs, side_files, graph = await MultiGet(
        Get(Digest, CreateDigest(FileContent(name, data) for name, data in files.files.items())),
        Get(
            Digest,
            MergeDigests([base.blobs, *(batch_layer.blob for batch in built_batches for batch_layer in batch.layers)]),
        ),
        Get(Digest, CreateDigest([FileContent(report_path, canonical_json(report)), FileContent(sbom_path, sbom)])),
        Get(ClosureGraph, ClosureGraphRequest, graph_request),
    )
    own = await Get(Digest, MergeDigests([own_files, *(layer.blob for layer in top_layers)]))
    if request.output_format == "layout":
        # Every blob is already a file in Pants' store: the layout is made of them, not copies.
        layout_dir = await Get(Digest, MergeDigests([own, store_blobs]))
        digest = await Get(Digest, AddPrefix(layout_dir, request.output_path))
    else:
        digest = await _write_archive(
            tool, await Get(Digest, AddPrefix(own, "layout")), store_blobs, request.output_path
        )
    digest = await Get(Digest, MergeDigests([digest, side_files, graph.digest]))
    return NixImage(
        digest=digest,
        output_path=request.output_path,
        manifest_digest=files.manifest_digest,
        config_digest=files.config_digest,
        size=files.total_size,
        layers=tuple(layers),
        base_layers=len(base_layers),
        closure_paths=tuple(sorted(closure.paths)),
        tags=tags,
        report_path=report_path,
        sbom_path=sbom_path,
        graph_paths=graph.paths,
    )


def rules():
    return collect_rules()
