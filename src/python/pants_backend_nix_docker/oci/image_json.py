"""OCI image config, manifest and index, and the docker-archive manifest, as canonical JSON.

Canonical means sorted keys, no insignificant whitespace and UTF-8, so equal images have equal
bytes and so equal digests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pants_backend_nix_docker.oci.platforms import Platform, platform_of

MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
# The SPDX document written next to the image: its digest, so the image names its own SBOM.
ANNOTATION_SBOM_DIGEST = "dev.pants-nix-docker.sbom.digest"
ANNOTATION_SBOM_MEDIA_TYPE = "dev.pants-nix-docker.sbom.mediatype"
# What `ctr images import` and `podman load` (and `docker load` of an OCI layout) name the image.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
# What images are for when their target names no `platforms` and the host is x86-64.
DEFAULT_PLATFORM = platform_of("x86_64-linux")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def blob_path(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class LayerInfo:
    """A built layer as the image sees it."""

    descriptor: Descriptor
    diff_id: str
    created_by: str | None  # a history line: what the layer holds; None for a base image's layer


@dataclass(frozen=True)
class ContainerConfig:
    """The `config` of an image config. Mappings are sorted (key, value) pairs, so it hashes."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    user: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("env", "labels"):
            value = getattr(self, name)
            pairs = value.items() if isinstance(value, Mapping) else value
            object.__setattr__(self, name, tuple(sorted(pairs)))

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.env:
            config["Env"] = [f"{k}={v}" for k, v in self.env]
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            config["ExposedPorts"] = {port: {} for port in sorted(self.exposed_ports)}
        if self.volumes:
            config["Volumes"] = {volume: {} for volume in sorted(self.volumes)}
        if self.user:
            config["User"] = self.user
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


def image_config(
    layers: Sequence[LayerInfo],
    container: ContainerConfig,
    created: str,
    base_history: Sequence[Mapping[str, Any]] = (),
    platform: Platform = DEFAULT_PLATFORM,
) -> dict[str, Any]:
    """The config; a base image's history comes first, verbatim, as its layers do."""
    own_history = [
        {"created": created, "created_by": layer.created_by, "comment": "pants-nix-docker"}
        for layer in layers
        if layer.created_by is not None
    ]
    return {
        **platform.to_json(),
        "created": created,
        "config": container.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [*(dict(h) for h in base_history), *own_history],
    }


def image_manifest(config: Descriptor, layers: Sequence[LayerInfo], annotations: Mapping[str, str]) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return manifest


def platform_index(manifests: Sequence[tuple[Descriptor, Platform]]) -> dict[str, Any]:
    """The image index of a multi-platform image: one manifest per platform, in `platforms` order."""
    entries = [{**manifest.to_json(), "platform": platform.to_json()} for manifest, platform in manifests]
    return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": entries}


def index_files(
    manifests: Sequence[tuple[Descriptor, Platform]], repository: str, tags: Sequence[str], docker_manifest: bytes
) -> tuple[Descriptor, dict[str, bytes]]:
    """The top files of a multi-platform layout: its platform index as a blob, named by each tag in
    `index.json` (as `docker buildx` and `skopeo copy --all` write one), and the `manifest.json`
    of `docker load`, which holds one platform's image (`docker_manifest`: the first's), named by
    the index's tags."""
    index_bytes = canonical_json(platform_index(manifests))
    index = Descriptor(MEDIA_TYPE_INDEX, sha256_digest(index_bytes), len(index_bytes))
    docker = [{**entry, "RepoTags": [f"{repository}:{tag}" for tag in tags]} for entry in json.loads(docker_manifest)]
    files = {
        "oci-layout": canonical_json(OCI_LAYOUT),
        "index.json": canonical_json(image_index(index, repository, tags)),
        "manifest.json": canonical_json(docker),
        blob_path(index.digest): index_bytes,
    }
    return index, files


def fully_qualified(repository: str) -> str:
    """The repository as containerd, kubelet and podman store it: a first component that is no
    registry host (no `.` or `:`, not `localhost`) means Docker Hub, and a name with no `/` there
    is under `library/`, as `docker pull hello` means `docker.io/library/hello`."""
    first, slash, _ = repository.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return repository
    return f"docker.io/{repository}" if slash else f"docker.io/library/{repository}"


def image_index(manifest: Descriptor, repository: str, tags: Sequence[str]) -> dict[str, Any]:
    """One entry per tag, the way `skopeo` and `umoci` look images up by tag in a layout; the
    fully qualified name is what `ctr images import` and `podman load` call it."""
    entries = [
        Descriptor(
            media_type=manifest.media_type,
            digest=manifest.digest,
            size=manifest.size,
            annotations={
                ANNOTATION_REF_NAME: tag,
                ANNOTATION_CONTAINERD_NAME: f"{fully_qualified(repository)}:{tag}",
            },
        ).to_json()
        for tag in tags
    ]
    return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": entries}


def docker_archive_manifest(
    config: Descriptor, layers: Sequence[LayerInfo], repository: str, tags: Sequence[str]
) -> list[dict[str, Any]]:
    """`manifest.json` of a `docker save` archive, pointing into the same OCI blobs."""
    return [
        {
            "Config": blob_path(config.digest),
            "RepoTags": [f"{repository}:{tag}" for tag in tags],
            "Layers": [blob_path(layer.descriptor.digest) for layer in layers],
        }
    ]


@dataclass(frozen=True)
class ImageFiles:
    """Everything of an image except its layer blobs: file name -> bytes, plus the digests."""

    files: Mapping[str, bytes]
    manifest_digest: str
    config_digest: str
    total_size: int  # config + manifest + layer blobs, as a registry would store them


def image_files(
    layers: Sequence[LayerInfo],
    container: ContainerConfig,
    created: str,
    repository: str,
    tags: Sequence[str],
    annotations: Mapping[str, str] | None = None,
    base_history: Sequence[Mapping[str, Any]] = (),
    platform: Platform = DEFAULT_PLATFORM,
) -> ImageFiles:
    config_bytes = canonical_json(image_config(layers, container, created, base_history, platform))
    config = Descriptor(MEDIA_TYPE_CONFIG, sha256_digest(config_bytes), len(config_bytes))
    manifest_bytes = canonical_json(image_manifest(config, layers, annotations or {}))
    manifest = Descriptor(MEDIA_TYPE_MANIFEST, sha256_digest(manifest_bytes), len(manifest_bytes))
    files = {
        "oci-layout": canonical_json(OCI_LAYOUT),
        "index.json": canonical_json(image_index(manifest, repository, tags)),
        "manifest.json": canonical_json(docker_archive_manifest(config, layers, repository, tags)),
        blob_path(config.digest): config_bytes,
        blob_path(manifest.digest): manifest_bytes,
    }
    total = config.size + manifest.size + sum(layer.descriptor.size for layer in layers)
    return ImageFiles(files, manifest.digest, config.digest, total)
