"""OCI 1.1 referrers: the image's SBOM as an artifact whose `subject` is the image (pure).

An artifact is an image manifest with an `artifactType`, the empty config and the document as
its one layer; its `subject` names the image manifest it describes, so a registry (or a layout)
can list what refers to an image from the image's digest alone. A registry without the referrers
API (`GET /v2/<name>/referrers/<digest>`) is read through the tag schema instead: an image index
tagged `sha256-<hex of the subject>` listing the referrers, which the pushing client keeps up to
date (distribution-spec 1.1, "Referrers Tag Schema").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pants_backend_nix_docker.oci.image_json import (
    ANNOTATION_CREATED,
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    OCI_LAYOUT,
    Descriptor,
    blob_path,
    canonical_json,
    sha256_digest,
)

MEDIA_TYPE_SPDX = "application/spdx+json"
# The config of an artifact that needs none: the two bytes `{}`, also inlined as `data`.
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
ANNOTATION_TITLE = "org.opencontainers.image.title"


class ReferrersError(ValueError):
    """What a registry holds under a referrers tag is not an index this client can extend."""


@dataclass(frozen=True)
class Referrer:
    """An artifact that refers to an image manifest, with the blobs that make it up."""

    subject: str  # the digest of the image manifest it describes
    digest: str  # of the artifact's manifest
    size: int
    artifact_type: str
    annotations: tuple[tuple[str, str], ...]  # the artifact manifest's
    files: tuple[tuple[str, bytes], ...]  # (blobs/sha256/<hex>, bytes): the manifest, config and document

    @property
    def manifest(self) -> Descriptor:
        return Descriptor(MEDIA_TYPE_MANIFEST, self.digest, self.size, dict(self.annotations))

    def descriptor_json(self) -> dict[str, Any]:
        """The artifact's entry in a referrers list: its `artifactType` and annotations go with it,
        so a reader can choose without fetching the manifest."""
        return {**self.manifest.to_json(), "artifactType": self.artifact_type}


def sbom_referrer(sbom: bytes, title: str, subject: Descriptor, created: str) -> Referrer:
    """The SPDX document `sbom` as an artifact referring to the image manifest `subject`."""
    document = Descriptor(MEDIA_TYPE_SPDX, sha256_digest(sbom), len(sbom), {ANNOTATION_TITLE: title})
    config = {
        "mediaType": MEDIA_TYPE_EMPTY,
        "digest": sha256_digest(EMPTY_JSON),
        "size": len(EMPTY_JSON),
        "data": base64.b64encode(EMPTY_JSON).decode(),
    }
    annotations = {ANNOTATION_CREATED: created}
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "artifactType": MEDIA_TYPE_SPDX,
            "config": config,
            "layers": [document.to_json()],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
            "annotations": annotations,
        }
    )
    return Referrer(
        subject=subject.digest,
        digest=sha256_digest(manifest),
        size=len(manifest),
        artifact_type=MEDIA_TYPE_SPDX,
        annotations=tuple(sorted(annotations.items())),
        files=(
            (blob_path(sha256_digest(manifest)), manifest),
            (blob_path(sha256_digest(EMPTY_JSON)), EMPTY_JSON),
            (blob_path(document.digest), sbom),
        ),
    )


def referrers_tag(subject: str) -> str:
    """The tag under which a registry without the referrers API keeps `subject`'s referrers."""
    algorithm, _, hex_digest = subject.partition(":")
    return f"{algorithm}-{hex_digest}"


def with_referrer(index: Mapping[str, Any] | None, subject: str, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The referrers index `index` of `subject` (None: there is none yet) with the referrer
    descriptor `entry` added, or None when it already lists it. Entries of other clients stay."""
    if index is None:
        index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": []}
    manifests = index.get("manifests")
    if index.get("mediaType", MEDIA_TYPE_INDEX) != MEDIA_TYPE_INDEX or not isinstance(manifests, list):
        raise ReferrersError(
            f"the referrers tag {referrers_tag(subject)} holds something other than an OCI image index "
            f"(media type {index.get('mediaType')!r}); another tool wrote it, so it is left alone"
        )
    if any(isinstance(m, Mapping) and m.get("digest") == entry["digest"] for m in manifests):
        return None
    return {**index, "manifests": [*manifests, dict(entry)]}


def publish_layout(referrers: Sequence[Referrer]) -> dict[str, bytes]:
    """A small OCI layout of the referrers, tagged `referrer-0`, `referrer-1`, ...: skopeo copies
    an artifact from a layout by tag, byte for byte, to `NAME@DIGEST` on a registry."""
    entries = [
        {**r.manifest.to_json(), "annotations": {ANNOTATION_REF_NAME: f"referrer-{n}"}} for n, r in enumerate(referrers)
    ]
    files = {name: data for r in referrers for name, data in r.files}
    files["oci-layout"] = canonical_json(OCI_LAYOUT)
    files["index.json"] = canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": entries})
    return files


def layout_index(index: Mapping[str, Any], referrers: Sequence[Referrer]) -> dict[str, Any]:
    """An OCI layout's `index.json` that also lists `referrers`, untagged, the way `oras attach
    --oci-layout` leaves them: readers of tags see the same images, and `oras discover` finds
    each artifact by its subject."""
    return {**index, "manifests": [*index["manifests"], *(r.descriptor_json() for r in referrers)]}
