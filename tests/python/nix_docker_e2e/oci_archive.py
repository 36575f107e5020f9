"""Read what `pants package` wrote: an OCI archive's index, manifest, layers and members."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def member_bytes(tf: tarfile.TarFile, name: str) -> bytes:
    """The bytes of a regular file in an open tar archive."""
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a regular file in {tf.name!r}"
    return member.read()


def index_of(archive: Path) -> dict:
    with tarfile.open(archive) as tf:
        return json.loads(member_bytes(tf, "index.json"))


def manifest_digest(archive: Path) -> str:
    return index_of(archive)["manifests"][0]["digest"]


def layer_members(archive: Path) -> list[list[str]]:
    """Names in each layer of the archive, bottom layer first."""
    with tarfile.open(archive) as tf:
        docker = json.loads(member_bytes(tf, "manifest.json"))[0]
        layers = []
        for layer in docker["Layers"]:
            blob = tf.extractfile(layer)
            with tarfile.open(fileobj=blob, mode="r:*") as lt:
                layers.append(lt.getnames())
        return layers


def layer_digests(archive: Path) -> list[str]:
    with tarfile.open(archive) as tf:
        index = json.loads(member_bytes(tf, "index.json"))
        manifest = json.loads(member_bytes(tf, "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        return [layer["digest"] for layer in manifest["layers"]]


def platform_manifests(archive: Path) -> list[dict]:
    """The entries (digest, size, platform) of a multi-platform archive's image index."""
    with tarfile.open(archive) as tf:
        top = json.loads(member_bytes(tf, "index.json"))["manifests"][0]
        assert top["mediaType"] == "application/vnd.oci.image.index.v1+json", top
        return json.loads(member_bytes(tf, "blobs/sha256/" + top["digest"].split(":")[1]))["manifests"]
