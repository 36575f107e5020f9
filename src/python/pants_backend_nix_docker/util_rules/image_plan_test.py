"""The image plan, from facts made by the test: no Nix, no Pants engine."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.target import InvalidFieldException

from pants_backend_nix_docker.nix.closure import Closure, StorePath
from pants_backend_nix_docker.nix.installables import parse_installable
from pants_backend_nix_docker.oci.compression import LayerCodec
from pants_backend_nix_docker.oci.customisation import CA_BUNDLE
from pants_backend_nix_docker.oci.layering import POPULARITY
from pants_backend_nix_docker.oci.rootfs import Node
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixImageFields
from pants_backend_nix_docker.util_rules.artifacts import ImageArtifacts
from pants_backend_nix_docker.util_rules.image_plan import (
    NO_GRAPH,
    ImageFacts,
    ImageSettings,
    NixImageRequest,
    Realised,
    installables_to_realise,
    plan_image,
    render_tags,
    resolve_created,
)

ADDRESS = Address("app", target_name="image")
NOW = datetime(2026, 12, 1, 5, 0, 0, 123456, tzinfo=timezone.utc)
SETTINGS = ImageSettings("//nix/pkgs.nix#cacert", LayerCodec.of("gzip"), POPULARITY, 4, 10_000_000)


def store_path(name: str, *refs: str, size: int = 1000) -> StorePath:
    return StorePath(f"/nix/store/{name[0] * 32}-{name}", size, "sha256:" + "0" * 52, tuple(sorted(refs)))


GLIBC = store_path("glibc-2.36", size=30_000_000)
HELLO = store_path("hello-2.12", GLIBC.path)
CACERT = store_path("cacert-3.9")


def request(**fields) -> NixImageRequest:
    """The request of a `nix_docker_image` target with these BUILD-file fields."""
    written = {"packages": ["//nix/pkgs.nix#hello"], "entrypoint": ["${pkgs.hello}/bin/hello"], **fields}
    return NixImageRequest.of(NixImageFields.create(NixDockerImageTarget(written, ADDRESS)))


def facts(req: NixImageRequest) -> ImageFacts:
    wanted = installables_to_realise(req, SETTINGS.cacert_package)
    by_name = {"hello": HELLO, "cacert": CACERT}
    realised = tuple(Realised(i, (by_name[i.name].path,)) for i, _ in wanted)
    paths = {p.path: p for p in (GLIBC, HELLO, *((CACERT,) if req.customisation.ca_certificates else ()))}
    app = (Node("/app/app.pex", "file", 0o555),)
    return ImageFacts(
        realised, len(wanted) > len(req.packages), Closure(paths), ImageArtifacts(EMPTY_DIGEST, app), None
    )


def test_a_plan_names_layers_batches_files_and_the_resolved_config() -> None:
    req = request()
    plan = plan_image(req, facts(req), SETTINGS, NOW)
    assert plan.roots == (HELLO.path,)
    assert plan.container.entrypoint == (f"{HELLO.path}/bin/hello",)
    # Every store path in a layer, each once; the big glibc alone in its batch.
    assert sorted(p for layer in plan.store_layers for p in layer) == sorted([GLIBC.path, HELLO.path])
    assert ((GLIBC.path,),) in plan.batches
    assert [r.created_by for r in plan.own_layers] == ["image root filesystem", "Pants artifacts in /app"]
    assert (plan.report_path, plan.sbom_path, plan.graph) == ("app/image.report.json", "app/image.spdx.json", NO_GRAPH)
    assert req.output_path == "app/image.tar"
    assert plan.created == "1970-01-01T00:00:01Z" and not plan.needs_git_revision


def test_now_is_resolved_once_for_config_and_sbom() -> None:
    req = request(created="now")
    plan = plan_image(req, facts(req), SETTINGS, NOW)
    assert plan.created == resolve_created("now", NOW) == "2026-12-01T05:00:00Z"
    assert b'"created":"2026-12-01T05:00:00Z"' in plan.sbom


def test_the_ca_bundle_package_sets_ssl_cert_file_unless_the_image_does() -> None:
    req = request(ca_certificates=True)
    assert installables_to_realise(req, SETTINGS.cacert_package)[-1] == (
        parse_installable(SETTINGS.cacert_package, ""),
        "",
    )
    plan = plan_image(req, facts(req), SETTINGS, NOW)
    assert ("SSL_CERT_FILE", CACERT.path + CA_BUNDLE) in plan.container.env
    own = request(ca_certificates=True, env={"SSL_CERT_FILE": "/etc/mine.pem"})
    assert dict(plan_image(own, facts(own), SETTINGS, NOW).container.env)["SSL_CERT_FILE"] == "/etc/mine.pem"


def test_policies_stop_the_plan_with_field_errors() -> None:
    forbidden = request(forbidden_references=["*-glibc-*"])
    with pytest.raises(InvalidFieldException, match="forbidden_references"):
        plan_image(forbidden, facts(forbidden), SETTINGS, NOW)
    unknown = request(entrypoint=["${pkgs.nope}/bin/x"])
    with pytest.raises(InvalidFieldException, match="names no package"):
        plan_image(unknown, facts(unknown), SETTINGS, NOW)
    tight = request(max_layers=2)  # the root filesystem and the app take both
    with pytest.raises(InvalidFieldException, match="max_layers"):
        plan_image(tight, facts(tight), SETTINGS, NOW)


def test_tags_render_and_need_a_revision_only_when_they_name_one() -> None:
    req = request(image_tags=["{git_revision}", "c-{closure_hash}"])
    plan = plan_image(req, facts(req), SETTINGS, NOW)
    assert plan.needs_git_revision
    tags = render_tags(req, facts(req).closure.paths, "3f2a9c1d0b4e", "")
    assert tags[0] == "3f2a9c1d0b4e" and tags[1].startswith("c-") and len(tags[1]) == 14
    with pytest.raises(InvalidFieldException, match="not a git checkout"):
        render_tags(req, facts(req).closure.paths, None, "the build root is not a git checkout")
