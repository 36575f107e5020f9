"""`build_nix_image` as orchestration: the rule runs with every fetch mocked (a closure and store
paths made by the test, layers that are only their stats), so what is checked is what it asks for
and how it puts the answers together. No Nix, no process."""

from __future__ import annotations

import hashlib
from typing import Any

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, CreateDigest, Digest, MergeDigests
from pants.engine.platform import Platform as PantsPlatform
from pants.engine.process import Process, ProcessResult
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from pants_backend_nix_docker.nix.closure import Closure, StorePath
from pants_backend_nix_docker.oci.compression import BlobStats
from pants_backend_nix_docker.subsystems.nix_docker import (
    GzipEncoder,
    LayerCompression,
    LayeringStrategy,
    NixDockerSubsystem,
)
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixImageFields
from pants_backend_nix_docker.util_rules.artifacts import ImageArtifacts, ImageArtifactsRequest
from pants_backend_nix_docker.util_rules.base_image import NO_BASE_IMAGE, BaseImage, BaseImageRequest
from pants_backend_nix_docker.util_rules.closure_graph import ClosureGraph, ClosureGraphRequest
from pants_backend_nix_docker.util_rules.git import GitRevision
from pants_backend_nix_docker.util_rules.image import (
    BuildImageRequest,
    BuiltImage,
    NixImage,
    build_image,
    build_nix_image,
)
from pants_backend_nix_docker.util_rules.image_plan import NixImageRequest
from pants_backend_nix_docker.util_rules.layers import (
    BuiltLayer,
    RootfsLayerRequest,
    StoreLayerBatch,
    StoreLayerBatchRequest,
)
from pants_backend_nix_docker.util_rules.nix import ClosureRequest
from pants_backend_nix_docker.util_rules.realise import RealisedInstallable, RealiseRequest
from pants_backend_nix_docker.util_rules.tools import ImageToolPex

ADDRESS = Address("app", target_name="image")
GLIBC = StorePath("/nix/store/" + "g" * 32 + "-glibc-2.36", 30_000_000, "sha256:" + "0" * 52, ())
HELLO = StorePath("/nix/store/" + "h" * 32 + "-hello-2.12", 200_000, "sha256:" + "1" * 52, (GLIBC.path,))
CLOSURE = Closure({p.path: p for p in (GLIBC, HELLO)})


def stats(what: str) -> BlobStats:
    digest = "sha256:" + hashlib.sha256(what.encode()).hexdigest()
    return BlobStats(digest, 1000, "sha256:" + hashlib.sha256(b"tar" + what.encode()).hexdigest(), 4000)


def unexpected(*_: Any) -> Any:
    raise AssertionError("the rule asked for something this image does not need")


# Writing the outputs, with digests standing in for files. A git revision (for tags naming
# {git_revision}) and processes (for archives) are never asked for here.
WRITING: list[MockGet] = [
    MockGet(Digest, (CreateDigest,), lambda _: EMPTY_DIGEST),
    MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
    MockGet(Digest, (AddPrefix,), lambda _: EMPTY_DIGEST),
    MockGet(GitRevision, (), unexpected),
    MockGet(ProcessResult, (Process,), unexpected),
]


def image_request(fields: dict[str, Any]) -> NixImageRequest:
    target = NixDockerImageTarget({"packages": ["//nix/pkgs.nix#hello"], **fields}, ADDRESS)
    return NixImageRequest.of(NixImageFields.create(target))


def build(fields: dict[str, Any], asked: list[Any]) -> NixImage:
    return build_request(image_request(fields), asked)


def build_request(request: NixImageRequest, asked: list[Any]) -> NixImage:
    settings = create_subsystem(
        NixDockerSubsystem,
        compression=LayerCompression.gzip,
        gzip_encoder=GzipEncoder.libdeflate,
        gzip_level=None,
        zstd_level=3,
        layering=LayeringStrategy.popularity,
        layer_buckets=4,
        layer_alone_above=10_000_000,
        cacert_package="//nix/pkgs.nix#cacert",
    )

    def realise(r: RealiseRequest) -> RealisedInstallable:
        asked.append(r)
        return RealisedInstallable(r.installable, (HELLO.path,))

    def closure(r: ClosureRequest) -> Closure:
        asked.append(r)
        return CLOSURE

    def store_layers(r: StoreLayerBatchRequest) -> StoreLayerBatch:
        asked.append(r)
        return StoreLayerBatch(
            tuple(BuiltLayer(EMPTY_DIGEST, stats(" ".join(paths)), "nix store paths", paths) for paths in r.layers)
        )

    def own_layer(r: RootfsLayerRequest) -> BuiltLayer:
        asked.append(r)
        return BuiltLayer(EMPTY_DIGEST, stats(r.created_by), r.created_by)

    return run_rule_with_mocks(
        build_nix_image,
        rule_args=[request, settings, ImageToolPex(pex=None, launcher="tool")],  # type: ignore[arg-type]
        mock_gets=[
            MockGet(RealisedInstallable, (RealiseRequest,), realise),
            MockGet(ImageArtifacts, (ImageArtifactsRequest,), lambda _: ImageArtifacts(EMPTY_DIGEST, ())),
            MockGet(BaseImage, (BaseImageRequest,), lambda _: NO_BASE_IMAGE),
            MockGet(Closure, (ClosureRequest,), closure),
            MockGet(StoreLayerBatch, (StoreLayerBatchRequest,), store_layers),
            MockGet(BuiltLayer, (RootfsLayerRequest,), own_layer),
            MockGet(ClosureGraph, (ClosureGraphRequest,), lambda r: ClosureGraph(EMPTY_DIGEST, ())),
            *WRITING,
        ],
    )


def test_the_rule_asks_for_the_closure_of_the_realised_packages_and_layers_all_of_it() -> None:
    asked: list[Any] = []
    image = build({"output_format": "layout", "entrypoint": ["${pkgs.hello}/bin/hello"]}, asked)
    closures = [r for r in asked if isinstance(r, ClosureRequest)]
    assert [c.roots for c in closures] == [(HELLO.path,)]
    batches = [r for r in asked if isinstance(r, StoreLayerBatchRequest)]
    layered = sorted(p for b in batches for layer in b.layers for p in layer)
    assert layered == sorted(CLOSURE.paths)
    # Store layers first (bottom), the root filesystem on top; each store layer once.
    assert [layer.created_by for layer in image.layers][-1] == "image root filesystem"
    assert sorted(p for layer in image.layers for p in layer.store_paths) == layered
    assert image.output_path == "app/image" and image.tags == ("latest",)
    assert image.closure_paths == tuple(sorted(CLOSURE.paths))
    # The report the goals read is the image's: its manifest, its layers.
    assert image.report.manifest_digest == image.manifest_digest
    assert [layer.digest for layer in image.report.layers] == [layer.stats.digest for layer in image.layers]


def test_the_same_request_gives_the_same_image() -> None:
    first = build({"output_format": "layout"}, [])
    again = build({"output_format": "layout"}, [])
    assert (first.manifest_digest, first.config_digest) == (again.manifest_digest, again.config_digest)
    other = build({"output_format": "layout", "env": {"A": "1"}}, [])
    assert other.config_digest != first.config_digest


def build_for_platforms(fields: dict[str, Any], asked: list[Any]) -> BuiltImage:
    def image(r: NixImageRequest) -> NixImage:
        asked.append(r)
        return build_request(r, asked)

    tool = ImageToolPex(pex=None, launcher="tool")  # type: ignore[arg-type]
    return run_rule_with_mocks(
        build_image,
        rule_args=[BuildImageRequest(image_request(fields)), PantsPlatform.linux_x86_64, tool],
        mock_gets=[
            MockGet(NixImage, (NixImageRequest,), image),
            *WRITING,
        ],
    )


def test_an_image_without_platforms_is_one_image_for_the_host() -> None:
    asked: list[Any] = []
    built = build_for_platforms({"output_format": "layout"}, asked)
    (request,) = [r for r in asked if isinstance(r, NixImageRequest)]
    # The host's system, with .nix functions left their default `system`: today's image.
    assert (request.platform.system, request.system_arg, request.in_index) == ("x86_64-linux", None, False)
    assert not built.is_index and built.image_digest == built.images[0].manifest_digest
    assert [r.system_arg for r in asked if isinstance(r, RealiseRequest)] == [None]


def test_two_platforms_make_an_index_of_an_image_each() -> None:
    asked: list[Any] = []
    built = build_for_platforms({"output_format": "layout", "platforms": ["x86_64-linux", "aarch64-linux"]}, asked)
    requests = [r for r in asked if isinstance(r, NixImageRequest)]
    assert [(r.platform.system, r.system_arg, r.in_index) for r in requests] == [
        ("x86_64-linux", "x86_64-linux", True),
        ("aarch64-linux", "aarch64-linux", True),
    ]
    # Each platform's packages are evaluated for its system.
    assert [r.system_arg for r in asked if isinstance(r, RealiseRequest)] == ["x86_64-linux", "aarch64-linux"]
    assert built.is_index and [i.platform.system for i in built.images] == ["x86_64-linux", "aarch64-linux"]
    assert built.image_digest not in {i.manifest_digest for i in built.images}
    # Reports and SBOMs side by side, one per platform; the layout is written once, by the index.
    assert [i.report_path for i in built.images] == [
        "app/image.x86_64-linux.report.json",
        "app/image.aarch64-linux.report.json",
    ]
    assert built.tags == ("latest",) and built.output_path == "app/image"
