"""`pants package` for `nix_docker_image`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.internals.session import RunId
from pants.engine.process import ProcessResultMetadata
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.report import human_size
from pants_backend_nix_docker.oci.customisation import Customisation
from pants_backend_nix_docker.oci.image_json import ContainerConfig
from pants_backend_nix_docker.target_types import (
    NixImageAppDirField,
    NixImageBaseImageField,
    NixImageBinShField,
    NixImageCaCertificatesField,
    NixImageClosureGraphField,
    NixImageCmdField,
    NixImageCreatedField,
    NixImageDependenciesField,
    NixImageDirectoriesField,
    NixImageEntrypointField,
    NixImageEnvField,
    NixImageExposedPortsField,
    NixImageForbiddenReferencesField,
    NixImageGroupsField,
    NixImageLabelsField,
    NixImageLayeringField,
    NixImageMaxImageSizeField,
    NixImageMaxLayersField,
    NixImageOutputFormatField,
    NixImageOutputPathField,
    NixImagePackagesField,
    NixImagePathsToLinkField,
    NixImageRepositoryField,
    NixImageTagsField,
    NixImageTmpDirField,
    NixImageUserField,
    NixImageUsersField,
    NixImageUsrBinEnvField,
    NixImageVolumesField,
    NixImageWorkingDirField,
)
from pants_backend_nix_docker.util_rules.image import NixImage, NixImageRequest
from pants_backend_nix_docker.util_rules.layers import BuiltLayer


@dataclass(frozen=True)
class NixDockerImageFieldSet(PackageFieldSet):
    required_fields = (NixImagePackagesField,)

    packages: NixImagePackagesField
    entrypoint: NixImageEntrypointField
    cmd: NixImageCmdField
    env: NixImageEnvField
    working_dir: NixImageWorkingDirField
    exposed_ports: NixImageExposedPortsField
    volumes: NixImageVolumesField
    user: NixImageUserField
    labels: NixImageLabelsField
    repository: NixImageRepositoryField
    image_tags: NixImageTagsField
    max_layers: NixImageMaxLayersField
    layering: NixImageLayeringField
    created: NixImageCreatedField
    output_path: NixImageOutputPathField
    output_format: NixImageOutputFormatField
    dependencies: NixImageDependenciesField
    base_image: NixImageBaseImageField
    forbidden_references: NixImageForbiddenReferencesField
    max_image_size: NixImageMaxImageSizeField
    closure_graph: NixImageClosureGraphField
    app_dir: NixImageAppDirField
    paths_to_link: NixImagePathsToLinkField
    users: NixImageUsersField
    groups: NixImageGroupsField
    directories: NixImageDirectoriesField
    tmp_dir: NixImageTmpDirField
    ca_certificates: NixImageCaCertificatesField
    usr_bin_env: NixImageUsrBinEnvField
    bin_sh: NixImageBinShField

    def image_request(self) -> NixImageRequest:
        return NixImageRequest(
            address=self.address,
            packages=self.packages.value or (),
            dependencies=self.dependencies,
            base_image=self.base_image.value,
            forbidden_references=self.forbidden_references.value or (),
            max_image_size=self.max_image_size.value,
            closure_graph=self.closure_graph.value,
            app_dir=self.app_dir.value,
            customisation=Customisation(
                users=self.users.parsed,
                groups=self.groups.parsed,
                directories=self.directories.parsed,
                tmp_dir=self.tmp_dir.value,
                paths_to_link=self.paths_to_link.value or (),
                usr_bin_env=self.usr_bin_env.value,
                bin_sh=self.bin_sh.value,
                ca_certificates=self.ca_certificates.value,
            ),
            container=ContainerConfig(
                entrypoint=self.entrypoint.value or (),
                cmd=self.cmd.value or (),
                env=tuple((self.env.value or {}).items()),
                working_dir=self.working_dir.value,
                exposed_ports=self.exposed_ports.value,
                volumes=self.volumes.value or (),
                user=self.user.value,
                labels=tuple((self.labels.value or {}).items()),
            ),
            repository=self.repository.value_or_default(self.address),
            tags=self.image_tags.value or (),
            max_layers=self.max_layers.value,
            layering=self.layering.value,
            created=self.created.value,
            output_format=self.output_format.value,
            output_path=self.output_path.value_or_default(
                file_ending="tar" if self.output_format.value == "archive" else None
            ),
        )


@dataclass(frozen=True)
class BuiltNixImage(BuiltPackageArtifact):
    """The archive or layout, with the names `pants publish` and `pants run` need."""

    repository: str = ""
    tags: tuple[str, ...] = ()


_SOURCE_WORDS = {
    ProcessResultMetadata.Source.RAN: "built",
    ProcessResultMetadata.Source.HIT_LOCALLY: "from the local cache",
    ProcessResultMetadata.Source.HIT_REMOTELY: "from the remote cache",
    ProcessResultMetadata.Source.MEMOIZED: "unchanged since the last run",
}


def layer_provenance(layers: tuple[BuiltLayer, ...], run_id: RunId, base_layers: int = 0) -> str:
    """'1 built, 17 from the local cache': how this run obtained the image's layers."""
    counts = Counter(layer.metadata.source(run_id) for layer in layers if layer.metadata is not None)
    said = [f"{counts[source]} {words}" for source, words in _SOURCE_WORDS.items() if counts[source]]
    return ", ".join(said + ([f"{base_layers} from the base image"] if base_layers else []))


@rule(desc="Packaging a Nix docker image", level=LogLevel.DEBUG)
async def package_nix_docker_image(field_set: NixDockerImageFieldSet, run_id: RunId) -> BuiltPackage:
    request = field_set.image_request()
    image = await Get(NixImage, NixImageRequest, request)
    names = ", ".join(f"{request.repository}:{tag}" for tag in image.tags)
    return BuiltPackage(
        image.digest,
        (
            BuiltNixImage(
                image.output_path,
                extra_log_lines=(
                    f"    image {names}: {image.manifest_digest}",
                    f"    {human_size(image.size)} in {len(image.layers) + image.base_layers} layers, "
                    f"{len(image.closure_paths)} store paths; layers: "
                    f"{layer_provenance(image.layers, run_id, image.base_layers)}",
                ),
                repository=request.repository,
                tags=image.tags,
            ),
            BuiltPackageArtifact(image.report_path),
            BuiltPackageArtifact(image.sbom_path),
            *(BuiltPackageArtifact(path) for path in image.graph_paths),
        ),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, NixDockerImageFieldSet)]
