from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pants_backend_nix_docker.oci import image_json
from pants_backend_nix_docker.oci.image_json import ContainerConfig, Descriptor, LayerInfo, blob_path
from pants_backend_nix_docker.oci.platforms import platform_of

LAYERS = [
    LayerInfo(
        Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + "1" * 64, 1234),
        "sha256:" + "2" * 64,
        "nix store paths: glibc-2.36",
    ),
    LayerInfo(
        Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + "3" * 64, 99),
        "sha256:" + "4" * 64,
        "nix store paths: hello-1.0",
    ),
]
CONTAINER = ContainerConfig(
    entrypoint=("/nix/store/x-hello/bin/hello",),
    env=(("B", "2"), ("A", "1")),  # out of order on purpose: the config sorts them
    exposed_ports=("8080/tcp",),
    volumes=("/data",),
    user="1000:1000",
    labels=(("k", "v"),),
    working_dir="/data",
)


def build(**kwargs: Any) -> image_json.ImageFiles:
    args: dict[str, Any] = dict(
        layers=LAYERS, container=CONTAINER, created="1970-01-01T00:00:01Z", repository="hello", tags=("latest", "1.0")
    )
    args.update(kwargs)
    return image_json.image_files(**args)


def test_digests_name_the_bytes() -> None:
    files = build()
    config = files.files[image_json.blob_path(files.config_digest)]
    manifest = files.files[image_json.blob_path(files.manifest_digest)]
    assert image_json.sha256_digest(config) == files.config_digest
    assert image_json.sha256_digest(manifest) == files.manifest_digest
    assert json.loads(manifest)["config"]["digest"] == files.config_digest
    assert files.total_size == len(config) + len(manifest) + 1234 + 99


def test_same_inputs_same_bytes_and_env_order_does_not_matter() -> None:
    again = build(container=dataclasses.replace(CONTAINER, env=(("A", "1"), ("B", "2"))))
    assert build().files == again.files


def test_config_carries_the_container_settings() -> None:
    files = build()
    config = json.loads(files.files[image_json.blob_path(files.config_digest)])
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "2" * 64, "sha256:" + "4" * 64]
    assert config["config"]["Env"] == ["A=1", "B=2"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert len(config["history"]) == 2


def test_index_and_docker_manifest_list_every_tag() -> None:
    files = build()
    index = json.loads(files.files["index.json"])
    assert [m["annotations"][image_json.ANNOTATION_REF_NAME] for m in index["manifests"]] == ["latest", "1.0"]
    docker = json.loads(files.files["manifest.json"])
    assert docker[0]["RepoTags"] == ["hello:latest", "hello:1.0"]
    assert docker[0]["Layers"] == [f"blobs/sha256/{'1' * 64}", f"blobs/sha256/{'3' * 64}"]


# The OCI spec's own schemas, from ../shared beside the checkout (never committed here).
SCHEMA_DIR = Path(os.environ.get("NIX_DOCKER_SHARED_DIR", "../shared")) / "schemas" / "oci-image-spec"


def validate(schema_name: str, document: object) -> None:
    import jsonschema

    store = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    # Schemas refer to each other by relative names under their https ids: map them to the files.
    resolver = jsonschema.RefResolver.from_schema(
        store[schema_name], handlers={"https": lambda uri: store[uri.split("#")[0].rsplit("/", 1)[-1]]}
    )
    jsonschema.Draft4Validator(store[schema_name], resolver=resolver).validate(document)


needs_schemas = pytest.mark.skipif(
    not SCHEMA_DIR.is_dir(), reason=f"{SCHEMA_DIR} (the OCI spec's schemas) is not beside this checkout"
)


@needs_schemas
@pytest.mark.parametrize(
    "schema,file",
    [
        ("image-manifest-schema.json", "manifest"),
        ("config-schema.json", "config"),
        ("image-index-schema.json", "index.json"),
        ("image-layout-schema.json", "oci-layout"),
    ],
)
def test_documents_validate_against_the_oci_schemas(schema: str, file: str) -> None:
    files = build()
    name = {
        "manifest": image_json.blob_path(files.manifest_digest),
        "config": image_json.blob_path(files.config_digest),
    }.get(file, file)
    validate(schema, json.loads(files.files[name]))


@needs_schemas
def test_schema_validation_rejects_a_broken_manifest() -> None:
    import jsonschema

    files = build()
    manifest = json.loads(files.files[image_json.blob_path(files.manifest_digest)])
    manifest["config"]["digest"] = "not-a-digest"
    with pytest.raises(jsonschema.ValidationError):
        validate("image-manifest-schema.json", manifest)


def test_a_config_says_its_platform() -> None:
    files = build(platform=platform_of("aarch64-linux"))
    arm64 = json.loads(files.files[image_json.blob_path(files.config_digest)])
    assert (arm64["os"], arm64["architecture"], arm64["variant"]) == ("linux", "arm64", "v8")
    # The default is today's amd64 config, with no variant key: single-platform digests stay.
    amd64 = json.loads(build().files[image_json.blob_path(build().config_digest)])
    assert (amd64["os"], amd64["architecture"], "variant" in amd64) == ("linux", "amd64", False)
    assert build(platform=platform_of("x86_64-linux")).manifest_digest == build().manifest_digest


def test_a_multi_platform_layout_names_its_platform_index_by_each_tag() -> None:
    images = [build(platform=platform_of(s)) for s in ("x86_64-linux", "aarch64-linux")]
    manifests = [
        (Descriptor(image_json.MEDIA_TYPE_MANIFEST, i.manifest_digest, len(i.files[blob_path(i.manifest_digest)])), p)
        for i, p in zip(images, map(platform_of, ("x86_64-linux", "aarch64-linux")))
    ]
    index, files = image_json.index_files(manifests, "hello", ("latest", "1.0"), images[0].files["manifest.json"])
    top = json.loads(files["index.json"])
    named = [(m["mediaType"], m["digest"], m["annotations"][image_json.ANNOTATION_REF_NAME]) for m in top["manifests"]]
    assert named == [
        (image_json.MEDIA_TYPE_INDEX, index.digest, "latest"),
        (image_json.MEDIA_TYPE_INDEX, index.digest, "1.0"),
    ]
    nested = files[blob_path(index.digest)]
    assert image_json.sha256_digest(nested) == index.digest and len(nested) == index.size
    entries = json.loads(nested)["manifests"]
    assert [(e["digest"], e["platform"]) for e in entries] == [
        (images[0].manifest_digest, {"architecture": "amd64", "os": "linux"}),
        (images[1].manifest_digest, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]
    # `docker load` reads manifest.json: the first platform's image, under the index's tags.
    assert files["manifest.json"] == images[0].files["manifest.json"] and files["oci-layout"]
    _, retagged = image_json.index_files(manifests, "hello", ("c-1234",), images[0].files["manifest.json"])
    (docker,) = json.loads(retagged["manifest.json"])
    assert docker["RepoTags"] == ["hello:c-1234"]
    assert docker["Config"] == image_json.blob_path(images[0].config_digest)


@pytest.mark.parametrize(
    "repository, qualified",
    [
        ("hello", "docker.io/library/hello"),
        ("acme/app", "docker.io/acme/app"),
        ("registry.example.com/team/app", "registry.example.com/team/app"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000/app"),
        ("localhost/app", "localhost/app"),
    ],
)
def test_index_names_are_fully_qualified_as_containerd_expects(repository: str, qualified: str) -> None:
    files = build(repository=repository)
    (entry, _) = json.loads(files.files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == f"{qualified}:latest"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    # The manifest does not name the repository: its digest is the same whatever the name.
    assert files.manifest_digest == build().manifest_digest
