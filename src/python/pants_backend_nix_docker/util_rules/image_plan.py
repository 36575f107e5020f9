"""What an image will be, decided by pure functions: `build_nix_image` fetches what they name and
writes what they return.

- `installables_to_realise`: the request's packages (and the CA bundle's package);
- `plan_image`: from the fetched facts (realised outputs, closure, artifacts, base image), the
  config, root filesystem, layers and their batches, file names, SBOM, with the policies checked;
- `assemble_image`: from the built layers and rendered tags, the OCI files and the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.target import InvalidFieldException

from pants_backend_nix_docker.nix import report as report_lib
from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.graph import closure_dot
from pants_backend_nix_docker.nix.installables import (
    Installable,
    PackageRefError,
    image_installables,
    package_ref_table,
    substitute_package_refs,
)
from pants_backend_nix_docker.nix.references import referenced_by, shortest_chains
from pants_backend_nix_docker.nix.sbom import spdx_document
from pants_backend_nix_docker.oci import layering
from pants_backend_nix_docker.oci import tags as tags_lib
from pants_backend_nix_docker.oci.base_image import BaseImageInfo
from pants_backend_nix_docker.oci.compression import LayerCodec
from pants_backend_nix_docker.oci.config_merge import merge_config
from pants_backend_nix_docker.oci.customisation import CA_BUNDLE, Customisation, check_user, customisation_spec
from pants_backend_nix_docker.oci.image_json import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_BASE_NAME,
    ANNOTATION_SBOM_DIGEST,
    ANNOTATION_SBOM_MEDIA_TYPE,
    DEFAULT_PLATFORM,
    MEDIA_TYPE_MANIFEST,
    ContainerConfig,
    Descriptor,
    ImageFiles,
    LayerInfo,
    blob_path,
    canonical_json,
    image_files,
    sha256_digest,
)
from pants_backend_nix_docker.oci.platforms import Platform
from pants_backend_nix_docker.oci.referrers import Referrer, sbom_referrer
from pants_backend_nix_docker.oci.rootfs import RootfsError, RootfsSpec
from pants_backend_nix_docker.target_types import (
    NixImageCmdField,
    NixImageDependenciesField,
    NixImageEntrypointField,
    NixImageEnvField,
    NixImageFields,
    NixImageTagsField,
    NixImageWorkingDirField,
)
from pants_backend_nix_docker.util_rules.artifacts import ImageArtifacts
from pants_backend_nix_docker.util_rules.closure_graph import ClosureGraphRequest
from pants_backend_nix_docker.util_rules.image_policy import (
    check_config_references,
    check_forbidden,
    check_layer_budget,
    check_size,
)
from pants_backend_nix_docker.util_rules.layers import BuiltLayer, RootfsLayerRequest

NO_GRAPH = ClosureGraphRequest("", "", "")

# An image's own layer whose spec reads nothing from the store and whose files are at most this
# many bytes is made in memory by the rule: a process costs about 0.1 s, more than compressing
# this much, and twenty images of a run would pay it twenty times. Larger ones (a PEX of heavy
# wheels) stay processes: cached locally and remotely, and compressed on every core.
IN_MEMORY_LAYER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class NixImageRequest:
    """An image's fields, as the plan reads them: each property says what one field (or a group
    of them) means. Made from the target's fields alone, so two goals asking for one image ask
    the same request."""

    fields: NixImageFields
    # A layout whatever `output_format` says: `pants publish` pushes from the blobs, so it needs
    # no archive (which would cost a process and a copy of every blob per image).
    layout_only: bool = False
    # Which of the target's platforms this image is for. `system_arg`: the `system` a `.nix` file
    # that is a function is called with; None (no `platforms` field) leaves the file's default.
    platform: Platform = DEFAULT_PLATFORM
    system_arg: str | None = None
    # One platform's image of a multi-platform one: its blobs, report and SBOM are made, the
    # layout or archive is not (`build_image` writes the index), and its side files are named
    # after the platform.
    in_index: bool = False

    @classmethod
    def of(cls, field_set: NixImageFields, layout_only: bool = False) -> NixImageRequest:
        # A goal's field set subclasses NixImageFields; the request holds the plain fields.
        fields = NixImageFields(**{f.name: getattr(field_set, f.name) for f in dataclasses.fields(NixImageFields)})
        return cls(fields, layout_only)

    def for_platform(self, platform: Platform, in_index: bool) -> NixImageRequest:
        explicit = self.fields.platforms.value is not None
        return dataclasses.replace(
            self, platform=platform, system_arg=platform.system if explicit else None, in_index=in_index
        )

    @property
    def address(self) -> Address:
        return self.fields.address

    @property
    def packages(self) -> tuple[str, ...]:
        return self.fields.packages.value or ()

    @property
    def dependencies(self) -> NixImageDependenciesField:
        return self.fields.dependencies

    @property
    def base_image(self) -> str | None:
        return self.fields.base_image.value

    @property
    def forbidden_references(self) -> tuple[str, ...]:
        return self.fields.forbidden_references.value or ()

    @property
    def max_image_size(self) -> int | None:
        return self.fields.max_image_size.value

    @property
    def closure_graph(self) -> bool:
        return self.fields.closure_graph.value

    @property
    def app_dir(self) -> str:
        return self.fields.app_dir.value

    @property
    def customisation(self) -> Customisation:
        f = self.fields
        return Customisation(
            users=f.users.parsed,
            groups=f.groups.parsed,
            directories=f.directories.parsed,
            tmp_dir=f.tmp_dir.value,
            paths_to_link=f.paths_to_link.value or (),
            usr_bin_env=f.usr_bin_env.value,
            bin_sh=f.bin_sh.value,
            ca_certificates=f.ca_certificates.value,
        )

    @property
    def container(self) -> ContainerConfig:
        f = self.fields
        return ContainerConfig(
            entrypoint=f.entrypoint.value or (),
            cmd=f.cmd.value or (),
            env=tuple((f.env.value or {}).items()),
            working_dir=f.working_dir.value,
            exposed_ports=f.exposed_ports.value,
            volumes=f.volumes.value or (),
            user=f.user.value,
            labels=tuple((f.labels.value or {}).items()),
        )

    @property
    def repository(self) -> str:
        return self.fields.repository.value_or_default(self.address)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.fields.image_tags.value or ()

    @property
    def needs_git_revision(self) -> bool:
        return any("git_revision" in tags_lib.placeholders_in(t) for t in self.tags)

    @property
    def max_layers(self) -> int:
        return self.fields.max_layers.value

    @property
    def layering(self) -> str | None:
        """None: [nix-docker].layering."""
        return self.fields.layering.value

    @property
    def created(self) -> str:
        return self.fields.created.value

    @property
    def output_format(self) -> str:
        """ "archive" or "layout"."""
        return "layout" if self.layout_only else self.fields.output_format.value

    @property
    def output_path(self) -> str:
        archive = self.output_format == "archive"
        return self.fields.output_path.value_or_default(file_ending="tar" if archive else None)


@dataclass(frozen=True)
class ImageSettings:
    """The `[nix-docker]` options an image's plan reads."""

    cacert_package: str
    codec: LayerCodec
    layering: str
    layer_buckets: int
    layer_alone_above: int


@dataclass(frozen=True)
class Realised:
    installable: Installable
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class ImageFacts:
    """What the rule fetched before planning: the packages' outputs (in `packages` order, then the
    CA bundle's package when there is one), the closure of all of them, the Pants artifacts and
    the base image."""

    realised: tuple[Realised, ...]
    has_cacert: bool
    closure: Closure
    artifacts: ImageArtifacts
    base_info: BaseImageInfo | None


@dataclass(frozen=True)
class ImagePlan:
    roots: tuple[str, ...]
    chains: Mapping[str, tuple[str, ...]]  # one shortest reference chain from a root to each path
    container: ContainerConfig
    rootfs_spec: RootfsSpec
    own_layers: tuple[RootfsLayerRequest, ...]  # root filesystem, then artifacts: the top layers
    store_layers: tuple[tuple[str, ...], ...]  # store paths of each layer, bottom to top
    batches: tuple[tuple[tuple[str, ...], ...], ...]  # the store layers grouped into processes
    created: str  # `now` resolved, once
    sbom: bytes
    report_path: str
    sbom_path: str
    graph: ClosureGraphRequest
    needs_git_revision: bool


@dataclass(frozen=True)
class AssembledImage:
    files: ImageFiles
    layers: tuple[BuiltLayer, ...]  # the image's own, bottom to top
    report: report_lib.ImageReport
    sbom: Referrer  # the SBOM as an artifact referring to the image


def field_error(address: Address, error: RootfsError, value: object) -> InvalidFieldException:
    return InvalidFieldException(
        f"The {error.field!r} field in target {address} has an invalid value {value!r}: {error}."
    )


def check_request(request: NixImageRequest) -> None:
    """What can be checked before anything is fetched."""
    if request.base_image is None:
        # With a base image, the user may come from the base's /etc/passwd.
        try:
            check_user(request.container.user, request.customisation)
        except RootfsError as e:
            raise field_error(request.address, e, request.container.user)


def installables_to_realise(request: NixImageRequest, cacert_package: str) -> tuple[tuple[Installable, str], ...]:
    cacert = cacert_package if request.customisation.ca_certificates else None
    return image_installables(request.packages, request.address.spec_path, cacert, request.platform.system)


def resolve_created(value: str, now: datetime) -> str:
    if value == "now":
        return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return value


def substitute_config(address: Address, container: ContainerConfig, table: Mapping[str, str | None]) -> ContainerConfig:
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


def _own_layers(
    request: NixImageRequest, rootfs_spec: RootfsSpec, artifacts: ImageArtifacts, codec: LayerCodec
) -> tuple[RootfsLayerRequest, ...]:
    """Stable customisation below, the artifacts that change every commit on top: an app change
    rebuilds and re-ships one small layer."""
    layers = []
    if not rootfs_spec.is_empty():
        spec = canonical_json(rootfs_spec.to_json())
        in_memory = not rootfs_spec.reads_store()
        layers.append(
            RootfsLayerRequest(request.address, spec, EMPTY_DIGEST, codec, "image root filesystem", in_memory)
        )
    if not artifacts.is_empty:
        spec = canonical_json(RootfsSpec(nodes=artifacts.nodes).to_json())
        in_memory = artifacts.size <= IN_MEMORY_LAYER_BYTES
        created_by = f"Pants artifacts in {request.app_dir}"
        layers.append(RootfsLayerRequest(request.address, spec, artifacts.digest, codec, created_by, in_memory))
    return tuple(layers)


def _sbom(
    request: NixImageRequest, closure: Closure, roots: tuple[str, ...], created: str, artifacts: ImageArtifacts
) -> bytes:
    return canonical_json(
        spdx_document(
            # Not the address: two targets with the same inputs make the same image.
            name=request.repository,
            namespace=f"https://pants-nix-docker.invalid/spdx/{request.repository}/{tags_lib.closure_hash(closure.paths)}",
            created=created,
            closure=closure,
            roots=roots,
            artifacts=artifacts.files,
        )
    )


def plan_image(request: NixImageRequest, facts: ImageFacts, settings: ImageSettings, now: datetime) -> ImagePlan:
    """Everything about the image that its built layers do not decide; raises the field errors of
    the policies that the facts can already break."""
    address, custom, closure, base_info = request.address, request.customisation, facts.closure, facts.base_info
    roots = tuple(path for r in facts.realised for path in r.outputs)
    chains = shortest_chains(closure, roots)
    check_forbidden(address, closure, chains, request.forbidden_references)
    container = substitute_config(
        address, request.container, package_ref_table([(r.installable, r.outputs) for r in facts.realised])
    )
    check_config_references(address, container, closure)

    packages = facts.realised[:-1] if facts.has_cacert else facts.realised
    cacert_root = facts.realised[-1].outputs[0] if facts.has_cacert else None
    if cacert_root and not any(k == "SSL_CERT_FILE" for k, _ in container.env):
        container = dataclasses.replace(container, env=(*container.env, ("SSL_CERT_FILE", cacert_root + CA_BUNDLE)))
    if base_info:
        container = merge_config(base_info.config, container)
    try:
        rootfs_spec = customisation_spec(custom, [r.outputs[0] for r in packages], cacert_root)
    except RootfsError as e:
        raise field_error(address, e, getattr(custom, e.field, None))

    own_layers = _own_layers(request, rootfs_spec, facts.artifacts, settings.codec)
    base_layers = base_info.layers if base_info else ()
    # What the base already ships is not shipped again: a store path is the same bytes anywhere.
    to_layer = closure.without(path for layer in base_layers for path in layer.store_paths)
    budget = check_layer_budget(address, request.max_layers, len(base_layers), len(own_layers), bool(to_layer.paths))
    store_layers = (
        layering.plan_store_layers(to_layer, budget, request.layering or settings.layering) if to_layer.paths else ()
    )
    sizes = {path: info.nar_size for path, info in closure.paths.items()}
    batches = layering.batch_layers(store_layers, sizes, settings.layer_buckets, settings.layer_alone_above)

    created = resolve_created(request.created, now)
    out = request.output_path
    stem = out[: -len(".tar")] if out.endswith(".tar") else out
    stem += f".{request.platform.system}" if request.in_index else ""
    return ImagePlan(
        roots=roots,
        chains=chains,
        container=container,
        rootfs_spec=rootfs_spec,
        own_layers=own_layers,
        store_layers=tuple(tuple(layer) for layer in store_layers),
        batches=batches,
        created=created,
        sbom=_sbom(request, closure, roots, created, facts.artifacts),
        report_path=f"{stem}.report.json",
        sbom_path=f"{stem}.spdx.json",
        graph=(
            ClosureGraphRequest(closure_dot(closure, roots), f"{stem}.closure.dot", f"{stem}.closure.svg")
            if request.closure_graph
            else NO_GRAPH
        ),
        needs_git_revision=request.needs_git_revision,
    )


def render_tags(
    request: NixImageRequest, closure_paths: Iterable[str], git_revision: str | None, git_problem: str
) -> tuple[str, ...]:
    values = {
        "closure_hash": tags_lib.closure_hash(closure_paths),
        "repository": tags_lib.repository_value(request.repository),
        "git_revision": git_revision or "",
    }
    if git_revision is None and any("git_revision" in tags_lib.placeholders_in(t) for t in request.tags):
        raise InvalidFieldException(
            f"The {NixImageTagsField.alias!r} field in target {request.address} uses {{git_revision}}, but "
            f"{git_problem}. Build from a git checkout, or drop the placeholder."
        )
    try:
        return tuple(tags_lib.render(t, values) for t in request.tags)
    except tags_lib.TagError as e:
        raise InvalidFieldException(f"The {NixImageTagsField.alias!r} field in target {request.address}: {e}.")


def _annotations(sbom: bytes, base_name: str | None, base_info: BaseImageInfo | None) -> dict[str, str]:
    # The image says which SBOM describes it (the SBOM sits next to it in dist/), and what it is built on.
    annotations = {ANNOTATION_SBOM_DIGEST: sha256_digest(sbom), ANNOTATION_SBOM_MEDIA_TYPE: "application/spdx+json"}
    if base_info:
        annotations[ANNOTATION_BASE_DIGEST] = base_info.manifest_digest
        if base_name:
            annotations[ANNOTATION_BASE_NAME] = base_name
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


def assemble_image(
    request: NixImageRequest,
    plan: ImagePlan,
    facts: ImageFacts,
    settings: ImageSettings,
    store_layers: tuple[BuiltLayer, ...],
    own_layers: tuple[BuiltLayer, ...],
    tags: tuple[str, ...],
    base_name: str | None,
) -> AssembledImage:
    """The OCI files (config, manifest, index) and the report; raises when the image is over its
    `max_image_size`."""
    base_info = facts.base_info
    by_paths = {layer.store_paths: layer for layer in store_layers}
    layers = (*(by_paths[tuple(sorted(paths))] for paths in plan.store_layers), *own_layers)
    media_type = settings.codec.media_type
    files = image_files(
        [
            *(
                LayerInfo(Descriptor(layer.media_type, layer.digest, layer.size), layer.diff_id, None)
                for layer in (base_info.layers if base_info else ())
            ),
            *(
                LayerInfo(
                    Descriptor(media_type, layer.stats.digest, layer.stats.size), layer.stats.diff_id, layer.created_by
                )
                for layer in layers
            ),
        ],
        plan.container,
        plan.created,
        request.repository,
        tags,
        annotations=_annotations(plan.sbom, base_name, base_info),
        base_history=base_info.history if base_info else (),
        platform=request.platform,
    )
    report = report_lib.image_report(
        address=str(request.address),
        repository=request.repository,
        tags=tags,
        manifest_digest=files.manifest_digest,
        config_size=len(files.files[blob_path(files.config_digest)]),
        manifest_size=len(files.files[blob_path(files.manifest_digest)]),
        layers=_report_layers(base_info, layers),
        closure=facts.closure,
        roots=plan.roots,
        chains=plan.chains,
        referenced_by=referenced_by(plan.container.to_json(), plan.rootfs_spec.store_links()),
    )
    check_size(request.address, report, request.max_image_size)
    manifest = Descriptor(MEDIA_TYPE_MANIFEST, files.manifest_digest, report.manifest_size)
    # Named after the repository, not the target's output file: equal images, equal artifacts.
    title = f"{request.repository.rsplit('/', 1)[-1]}.spdx.json"
    sbom = sbom_referrer(plan.sbom, title, manifest, plan.created)
    return AssembledImage(files, layers, report, sbom)
