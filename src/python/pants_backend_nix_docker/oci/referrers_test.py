from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pants_backend_nix_docker.oci.image_json import (
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    blob_path,
    sha256_digest,
)
from pants_backend_nix_docker.oci.referrers import (
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_SPDX,
    ReferrersError,
    layout_index,
    publish_layout,
    referrers_tag,
    sbom_referrer,
    with_referrer,
)

IMAGE = Descriptor(MEDIA_TYPE_MANIFEST, "sha256:" + "a" * 64, 1234, {"org.opencontainers.image.ref.name": "latest"})
SBOM = b'{"spdxVersion":"SPDX-2.3"}'


def test_the_sbom_is_an_artifact_whose_subject_is_the_image() -> None:
    referrer = sbom_referrer(SBOM, "image.spdx.json", IMAGE, "2024-01-01T00:00:00Z")
    files = dict(referrer.files)
    manifest_bytes = files[blob_path(referrer.manifest.digest)]
    assert referrer.manifest.digest == sha256_digest(manifest_bytes)
    assert referrer.manifest.size == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["artifactType"] == MEDIA_TYPE_SPDX
    # The subject is the image's manifest as a plain descriptor: no tag of the layout travels.
    assert manifest["subject"] == {"mediaType": MEDIA_TYPE_MANIFEST, "digest": IMAGE.digest, "size": 1234}
    config = manifest["config"]
    assert config["mediaType"] == MEDIA_TYPE_EMPTY and base64.b64decode(config["data"]) == b"{}"
    assert files[blob_path(config["digest"])] == b"{}"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == MEDIA_TYPE_SPDX and files[blob_path(layer["digest"])] == SBOM
    assert layer["annotations"] == {"org.opencontainers.image.title": "image.spdx.json"}
    assert referrer.subject == IMAGE.digest
    # The same inputs give the same bytes: the artifact is as reproducible as the image.
    assert sbom_referrer(SBOM, "image.spdx.json", IMAGE, "2024-01-01T00:00:00Z") == referrer


def test_a_referrers_entry_carries_the_artifact_type_and_annotations() -> None:
    referrer = sbom_referrer(SBOM, "image.spdx.json", IMAGE, "2024-01-01T00:00:00Z")
    entry = referrer.descriptor_json()
    assert entry["artifactType"] == MEDIA_TYPE_SPDX
    assert entry["annotations"] == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert (entry["digest"], entry["size"], entry["mediaType"]) == (
        referrer.manifest.digest,
        referrer.manifest.size,
        MEDIA_TYPE_MANIFEST,
    )


def test_the_tag_schema_names_the_subject() -> None:
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64


def test_a_referrer_is_added_once_and_other_entries_stay() -> None:
    subject = IMAGE.digest
    ours = {"mediaType": MEDIA_TYPE_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 9, "artifactType": "x"}
    theirs = {"mediaType": MEDIA_TYPE_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 7, "artifactType": "sig"}
    first = with_referrer(None, subject, ours)
    assert first == {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [ours]}
    assert with_referrer(first, subject, ours) is None
    existing: dict[str, Any] = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [theirs]}
    assert with_referrer(existing, subject, ours) == {**existing, "manifests": [theirs, ours]}


def test_a_tag_that_holds_no_index_is_left_alone() -> None:
    image = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "layers": []}
    with pytest.raises(ReferrersError, match="something other than an OCI image index"):
        with_referrer(image, IMAGE.digest, {"digest": "sha256:" + "b" * 64})


def test_a_layout_lists_referrers_untagged_after_its_images() -> None:
    referrer = sbom_referrer(SBOM, "image.spdx.json", IMAGE, "2024-01-01T00:00:00Z")
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [IMAGE.to_json()]}
    listed = layout_index(index, [referrer])
    assert listed["manifests"] == [IMAGE.to_json(), referrer.descriptor_json()]
    assert "org.opencontainers.image.ref.name" not in listed["manifests"][1]["annotations"]


def test_the_publish_layout_tags_each_referrer_and_holds_its_blobs() -> None:
    one = sbom_referrer(SBOM, "a.spdx.json", IMAGE, "2024-01-01T00:00:00Z")
    other = sbom_referrer(SBOM + b" ", "b.spdx.json", IMAGE, "2024-01-01T00:00:00Z")
    files = publish_layout([one, other])
    index = json.loads(files["index.json"])
    assert [(m["digest"], m["annotations"]) for m in index["manifests"]] == [
        (one.manifest.digest, {"org.opencontainers.image.ref.name": "referrer-0"}),
        (other.manifest.digest, {"org.opencontainers.image.ref.name": "referrer-1"}),
    ]
    assert set(files) == {"oci-layout", "index.json", *dict(one.files), *dict(other.files)}
