"""Issue #17: the referrers index the image tool keeps, against a real registry (TLS, htpasswd)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from nix_docker_e2e.harness import run
from nix_docker_e2e.registries import DockerRegistry, TestCA
from pants_backend_nix_docker.oci.image_json import (
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    ContainerConfig,
    Descriptor,
    LayerInfo,
    image_files,
)
from pants_backend_nix_docker.oci.referrers import publish_layout, sbom_referrer
from pants_backend_nix_docker.oci.registry_client import (
    Credentials,
    RegistryClient,
    RegistryClientError,
    add_referrer,
)

SBOM = json.dumps({"spdxVersion": "SPDX-2.3", "name": "tiny"}).encode()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[DockerRegistry]:
    workdir = tmp_path_factory.mktemp("registry")
    with DockerRegistry(workdir / "registry", tls=TestCA(workdir / "ca"), htpasswd=("ci", "pw-for-the-test")) as reg:
        yield reg


def tiny_image(layout: Path, repository: str) -> Descriptor:
    """A one-file image written as an OCI layout with our own JSON functions; its manifest."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    layer = gzip.compress(data.getvalue(), mtime=0)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(data.getvalue()).hexdigest()
    files = image_files(
        [LayerInfo(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(layer)), diff_id, "x")],
        ContainerConfig(),
        "1970-01-01T00:00:00Z",
        repository,
        ("latest",),
    )
    for name, content in {**files.files, f"blobs/sha256/{digest.split(':')[1]}": layer}.items():
        (layout / name).parent.mkdir(parents=True, exist_ok=True)
        (layout / name).write_bytes(content)
    size = len(files.files[f"blobs/sha256/{files.manifest_digest.split(':')[1]}"])
    return Descriptor(MEDIA_TYPE_MANIFEST, files.manifest_digest, size)


def push_image_and_sbom(
    registry: DockerRegistry, tmp_path: Path, repository: str, sbom: bytes = SBOM
) -> tuple[Descriptor, dict]:
    """Pushes a tiny image and its SBOM artifact with skopeo, as `pants publish` does."""
    image = tiny_image(tmp_path / "image", repository)
    referrer = sbom_referrer(sbom, "tiny.spdx.json", image, "1970-01-01T00:00:00Z")
    for name, content in publish_layout([referrer]).items():
        (tmp_path / "sbom" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "sbom" / name).write_bytes(content)
    dest = registry.skopeo_options("dest-")
    target = f"docker://{registry.address}/{repository}"
    for source, destination in (
        (f"oci:{tmp_path}/image:latest", f"{target}:latest"),
        (f"oci:{tmp_path}/sbom:referrer-0", f"{target}@{referrer.manifest.digest}"),
    ):
        pushed = run(["skopeo", "copy", "--quiet", "--preserve-digests", *dest, source, destination])
        assert pushed.returncode == 0, pushed.stderr
    return image, referrer.descriptor_json()


def ca_dir(registry: DockerRegistry) -> str:
    assert registry.tls is not None
    return str(registry.tls.cert_dir)


def client(registry: DockerRegistry, repository: str, password: str = "pw-for-the-test") -> RegistryClient:
    return RegistryClient(registry.address, repository, Credentials("ci", password), cert_dir=ca_dir(registry))


def test_the_sbom_is_listed_under_the_tag_schema_and_found_by_the_image_digest(
    registry: DockerRegistry, tmp_path: Path
) -> None:
    image, entry = push_image_and_sbom(registry, tmp_path, "tiny")
    assert add_referrer(client(registry, "tiny"), image.digest, entry) == (
        f"listed under the tag {image.digest.replace(':', '-')}"
    )
    assert registry.sbom_of("tiny", image.digest, tmp_path / "pulled") == json.loads(SBOM)
    # Again: nothing to add, the tag keeps its bytes.
    before = registry.pulled_digest(f"tiny:{image.digest.replace(':', '-')}")
    assert add_referrer(client(registry, "tiny"), image.digest, entry).startswith("already listed")
    assert registry.pulled_digest(f"tiny:{image.digest.replace(':', '-')}") == before


def test_another_tools_referrers_are_kept(registry: DockerRegistry, tmp_path: Path) -> None:
    image, entry = push_image_and_sbom(registry, tmp_path, "shared")
    # Another tool's artifact about the same image, listed under the tag before ours.
    _, other = push_image_and_sbom(registry, tmp_path / "other", "shared", sbom=b'{"another": "document"}')
    theirs = {**other, "artifactType": "application/vnd.example.signature"}
    tag = image.digest.replace(":", "-")
    written = client(registry, "shared").request(
        "PUT",
        f"/v2/shared/manifests/{tag}",
        {"Content-Type": MEDIA_TYPE_INDEX},
        json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [theirs]}).encode(),
    )
    assert written.status == 201, written.body
    add_referrer(client(registry, "shared"), image.digest, entry)
    raw = run(["skopeo", "inspect", *registry.skopeo_options(), "--raw", f"docker://{registry.address}/shared:{tag}"])
    assert [m["digest"] for m in json.loads(raw.stdout)["manifests"]] == [theirs["digest"], entry["digest"]]


def test_refused_credentials_and_an_untrusted_ca_say_so(registry: DockerRegistry) -> None:
    with pytest.raises(RegistryClientError, match="unauthorized"):
        add_referrer(client(registry, "tiny", password="wrong"), "sha256:" + "a" * 64, {"digest": "sha256:" + "b" * 64})
    untrusted = RegistryClient(registry.address, "tiny", Credentials("ci", "pw-for-the-test"))
    with pytest.raises(RegistryClientError, match="x509"):
        add_referrer(untrusted, "sha256:" + "a" * 64, {"digest": "sha256:" + "b" * 64})


def test_a_plain_http_registry_without_tls_verification(tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "plain") as plain:
        answer = RegistryClient(plain.address, "x", None, tls_verify=False).request("GET", "/v2/", {})
    assert answer.status == 200
