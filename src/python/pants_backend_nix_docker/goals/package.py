"""`pants package` for `nix_docker_image`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.goal import CurrentExecutingGoals
from pants.engine.internals.session import RunId
from pants.engine.process import ProcessResultMetadata
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.sizes import human_size
from pants_backend_nix_docker.oci.referrers import Referrer
from pants_backend_nix_docker.target_types import NixImageFields
from pants_backend_nix_docker.util_rules.image import BuildImageRequest, BuiltImage, NixImage
from pants_backend_nix_docker.util_rules.image_plan import NixImageRequest
from pants_backend_nix_docker.util_rules.layers import BuiltLayer


@dataclass(frozen=True)
class NixDockerImageFieldSet(NixImageFields, PackageFieldSet):
    required_fields = NixImageFields.required_fields

    def image_request(self, layout_only: bool = False) -> NixImageRequest:
        return NixImageRequest.of(self, layout_only)


@dataclass(frozen=True)
class BuiltNixImage(BuiltPackageArtifact):
    """The archive or layout, with the names `pants publish` and `pants run` need."""

    repository: str = ""
    tags: tuple[str, ...] = ()
    transport: str = "oci-archive"  # how skopeo names it: "oci-archive" or "oci" (a layout)
    index: bool = False  # a multi-platform image: pushed with every platform's image
    referrers: tuple[Referrer, ...] = ()  # artifacts about the image (its SBOM), pushed with it


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
    # Small own layers are made by the rule, not a process (see `image_plan.IN_MEMORY_LAYER_BYTES`).
    in_memory = sum(1 for layer in layers if layer.metadata is None)
    said += [f"{in_memory} made in memory"] if in_memory else []
    return ", ".join(said + ([f"{base_layers} from the base image"] if base_layers else []))


def _image_lines(image: NixImage, run_id: RunId, platform_too: bool) -> tuple[str, ...]:
    platform = f" for {image.platform.oci_name} ({image.platform.system})" if platform_too else ""
    return (
        f"    {human_size(image.size)}{platform} in {len(image.layers) + image.base_layers} layers, "
        f"{len(image.closure_paths)} store paths; layers: {layer_provenance(image.layers, run_id, image.base_layers)}",
    )


@rule(desc="Packaging a Nix docker image", level=LogLevel.DEBUG)
async def package_nix_docker_image(field_set: NixDockerImageFieldSet, run_id: RunId) -> BuiltPackage:
    # Under `pants publish` nothing is written to dist/ and the push reads blobs: skip the archive.
    goals = await Get(CurrentExecutingGoals)
    request = field_set.image_request(layout_only=goals.is_running("publish"))
    built = await Get(BuiltImage, BuildImageRequest(request))
    names = ", ".join(f"{request.repository}:{tag}" for tag in built.tags)
    what = f"index of {len(built.images)} platforms" if built.is_index else "image"
    return BuiltPackage(
        built.digest,
        (
            BuiltNixImage(
                built.output_path,
                extra_log_lines=(
                    f"    {what} {names}: {built.image_digest}",
                    *(line for image in built.images for line in _image_lines(image, run_id, built.is_index)),
                ),
                repository=request.repository,
                tags=built.tags,
                transport="oci-archive" if request.output_format == "archive" else "oci",
                index=built.is_index,
                referrers=built.referrers,
            ),
            *(
                BuiltPackageArtifact(path)
                for image in built.images
                for path in (image.report_path, image.sbom_path, *image.graph_paths)
            ),
        ),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, NixDockerImageFieldSet)]
