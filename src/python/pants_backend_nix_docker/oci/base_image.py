"""Base images: where one comes from, how its layers and config are read, and how configs merge.

A base image is an OCI layout directory, an OCI archive (a tar of a layout, as `pants package`
writes), a `docker save` archive, or a registry reference pinned by digest. Its layers are kept
verbatim (same bytes, same digests), so a registry that has the base already has those blobs.

Only the standard library is imported: the layer tool runs this outside Pants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from pants_backend_nix_docker.oci.compression import GZIP, MEDIA_TYPES, ZSTD
from pants_backend_nix_docker.oci.image_json import MEDIA_TYPE_INDEX, ContainerConfig

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
REGISTRY_PREFIX = "docker://"

MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_GZIP = MEDIA_TYPES[GZIP]
MEDIA_TYPE_OCI_ZSTD = MEDIA_TYPES[ZSTD]
# Our manifests are OCI; a docker layer is the same blob under an OCI name.
LAYER_MEDIA_TYPES = {
    MEDIA_TYPE_OCI_TAR: MEDIA_TYPE_OCI_TAR,
    MEDIA_TYPE_OCI_GZIP: MEDIA_TYPE_OCI_GZIP,
    MEDIA_TYPE_OCI_ZSTD: MEDIA_TYPE_OCI_ZSTD,
    "application/vnd.docker.image.rootfs.diff.tar": MEDIA_TYPE_OCI_TAR,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": MEDIA_TYPE_OCI_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar.zstd": MEDIA_TYPE_OCI_ZSTD,
}


class BaseImageError(ValueError):
    pass


@dataclass(frozen=True)
class BaseImageSource:
    """What the `base_image` field names: a file or directory in the repo, or a registry image."""

    path: str | None = None  # relative to the build root
    reference: str | None = None  # HOST/REPO[:TAG]@sha256:..., without the docker:// prefix
    pin: str | None = None  # the manifest digest it must have

    @property
    def registry_host(self) -> str | None:
        return self.reference.split("/", 1)[0] if self.reference else None

    @property
    def name(self) -> str | None:
        """HOST/REPO[:TAG]: how people call the image (the `base.name` annotation)."""
        return self.reference.split("@", 1)[0] if self.reference else None

    @property
    def pull_reference(self) -> str | None:
        """HOST/REPO@DIGEST: the digest alone says what to pull (skopeo refuses a tag and a digest)."""
        if not self.reference:
            return None
        name = self.name or ""
        last = name.rsplit("/", 1)[-1]
        repository = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return f"{repository}@{self.pin}"


def parse_base_image(value: str, spec_path: str) -> BaseImageSource:
    """`docker://HOST/REPO[:TAG]@sha256:D`, or `PATH[@sha256:D]` (relative to the BUILD file's
    directory, or `//`-rooted)."""
    if value.startswith(REGISTRY_PREFIX):
        reference = value[len(REGISTRY_PREFIX) :]
        name, _, pin = reference.partition("@")
        if not pin:
            raise BaseImageError(
                "a registry base image must be pinned by digest, so every build gets the same bytes: "
                f"{value}@sha256:<digest> (find it with `skopeo inspect --format '{{{{.Digest}}}}' {value}`)"
            )
        if not DIGEST_RE.match(pin):
            raise BaseImageError(f"{pin!r} is not a sha256 digest (sha256: and 64 lowercase hex digits)")
        if "/" not in name:
            raise BaseImageError(f"{value!r} names no registry host: write docker://HOST[:PORT]/REPOSITORY@{pin}")
        return BaseImageSource(reference=reference, pin=pin)
    if "://" in value or re.match(r"^[a-z][a-z-]*:", value):
        raise BaseImageError(
            f"{value!r} has an unknown transport; use docker://HOST/REPO@sha256:... or a path in the repository"
        )
    path, _, pin = value.partition("@")
    if pin and not DIGEST_RE.match(pin):
        raise BaseImageError(f"{pin!r} is not a sha256 digest (sha256: and 64 lowercase hex digits)")
    if path.startswith("//"):
        relative = path[2:]
    elif path.startswith("/"):
        raise BaseImageError(
            "an absolute path is not part of the repository; use a path relative to the BUILD file, or //path from the "
            "build root"
        )
    else:
        relative = os.path.join(spec_path, path)
    normal = os.path.normpath(relative)
    if not path or normal == "." or normal.startswith(".."):
        raise BaseImageError(f"{path!r} is outside the repository; base image files must be in it")
    return BaseImageSource(path=normal, pin=pin or None)


@dataclass(frozen=True)
class BaseLayer:
    digest: str
    size: int
    media_type: str
    diff_id: str
    store_paths: tuple[str, ...] = ()  # the top-level /nix/store paths the layer holds


@dataclass(frozen=True)
class BaseImageInfo:
    manifest_digest: str
    layers: tuple[BaseLayer, ...]
    config: Mapping[str, Any]  # the base config's `config` object (Env, Cmd, ...)
    history: tuple[Mapping[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_digest": self.manifest_digest,
            "layers": [
                {
                    "digest": layer.digest,
                    "size": layer.size,
                    "media_type": layer.media_type,
                    "diff_id": layer.diff_id,
                    "store_paths": list(layer.store_paths),
                }
                for layer in self.layers
            ],
            "config": dict(self.config),
            "history": [dict(h) for h in self.history],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BaseImageInfo":
        return cls(
            data["manifest_digest"],
            tuple(
                BaseLayer(
                    layer["digest"],
                    layer["size"],
                    layer["media_type"],
                    layer["diff_id"],
                    tuple(layer.get("store_paths", ())),
                )
                for layer in data["layers"]
            ),
            data["config"],
            tuple(data["history"]),
        )


def _sha256_file(path: str, copy_to: str | None = None) -> str:
    """The file's digest; with `copy_to`, the file is copied there on the same read."""
    digest = hashlib.sha256()
    out_context: Any = open(copy_to, "wb") if copy_to else contextlib.nullcontext()
    with open(path, "rb") as f, out_context as out:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            if out:
                out.write(block)
    return f"sha256:{digest.hexdigest()}"


def _blob(layout: str, digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise BaseImageError(f"unsupported digest {digest!r} (only sha256)")
    path = os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])
    if not os.path.isfile(path):
        raise BaseImageError(f"blob {digest} is missing from the image")
    return path


def _read_json_blob(layout: str, digest: str) -> dict[str, Any]:
    path = _blob(layout, digest)
    with open(path, "rb") as f:
        data = f.read()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise BaseImageError(f"blob {digest} does not match its digest: the image is corrupt")
    return json.loads(data)


def _image_manifests(layout: str, index: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every linux/amd64 (or platform-less) image manifest descriptor, through nested indexes."""
    for descriptor in index.get("manifests", ()):
        platform = descriptor.get("platform") or {}
        if platform and (platform.get("os"), platform.get("architecture")) != ("linux", "amd64"):
            continue
        if descriptor.get("mediaType") in (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST):
            yield from _image_manifests(layout, _read_json_blob(layout, descriptor["digest"]))
        else:
            yield descriptor


def _choose_manifest(layout: str, pin: str | None) -> str:
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    if pin:
        # The pin names the image: it may be any manifest (or index) the layout holds.
        known = {d["digest"] for d in index.get("manifests", ())} | {
            d["digest"] for d in _image_manifests(layout, index)
        }
        if pin not in known:
            raise BaseImageError(
                f"it has no manifest with the pinned digest {pin}; it has {', '.join(sorted(known)) or 'none'}. "
                "If the base image changed on purpose, update the digest after `@`"
            )
        descriptor = next((d for d in index.get("manifests", ()) if d["digest"] == pin), None)
        if descriptor and descriptor.get("mediaType") in (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST):
            return _only_manifest(layout, _read_json_blob(layout, pin))
        return pin
    return _only_manifest(layout, index)


def _only_manifest(layout: str, index: Mapping[str, Any]) -> str:
    digests = sorted({d["digest"] for d in _image_manifests(layout, index)})
    if not digests:
        raise BaseImageError("it holds no linux/amd64 image")
    if len(digests) > 1:
        raise BaseImageError(
            f"it holds {len(digests)} images ({', '.join(digests)}); choose one by writing PATH@DIGEST"
        )
    return digests[0]


def read_oci_layout(layout: str, pin: str | None) -> tuple[BaseImageInfo, dict[str, str]]:
    """The image in an OCI layout directory, and where each layer blob is."""
    if not os.path.isfile(os.path.join(layout, "index.json")):
        raise BaseImageError("it is not an OCI layout (no index.json)")
    manifest_digest = _choose_manifest(layout, pin)
    manifest = _read_json_blob(layout, manifest_digest)
    config = _read_json_blob(layout, manifest["config"]["digest"])
    _check_platform(config)
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(manifest.get("layers", [])):
        raise BaseImageError(f"its config lists {len(diff_ids)} diff_ids for {len(manifest.get('layers', []))} layers")
    layers, paths = [], {}
    for descriptor, diff_id in zip(manifest["layers"], diff_ids):
        media_type = LAYER_MEDIA_TYPES.get(descriptor["mediaType"])
        if media_type is None:
            raise BaseImageError(
                f"layer {descriptor['digest']} has media type {descriptor['mediaType']!r}, which cannot be kept "
                "verbatim"
            )
        paths[descriptor["digest"]] = _blob(layout, descriptor["digest"])
        layers.append(BaseLayer(descriptor["digest"], descriptor["size"], media_type, diff_id))
    return (
        BaseImageInfo(manifest_digest, tuple(layers), config.get("config") or {}, tuple(config.get("history", ()))),
        paths,
    )


def read_docker_archive(root: str) -> tuple[BaseImageInfo, dict[str, str]]:
    """The image in an unpacked `docker save` archive (manifest.json with Config and Layers)."""
    with open(os.path.join(root, "manifest.json")) as f:
        entries = json.load(f)
    if len(entries) != 1:
        raise BaseImageError(f"it holds {len(entries)} images; a base image archive must hold one")
    entry = entries[0]
    config_path = os.path.join(root, entry["Config"])
    with open(config_path, "rb") as f:
        config_bytes = f.read()
    config = json.loads(config_bytes)
    _check_platform(config)
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(entry["Layers"]):
        raise BaseImageError(f"its config lists {len(diff_ids)} diff_ids for {len(entry['Layers'])} layers")
    layers, paths = [], {}
    for name, diff_id in zip(entry["Layers"], diff_ids):
        path = os.path.join(root, name)
        digest = _sha256_file(path)
        with open(path, "rb") as f:
            magic = f.read(4)
        media_type = (
            MEDIA_TYPE_OCI_GZIP
            if magic[:2] == b"\x1f\x8b"
            else MEDIA_TYPE_OCI_ZSTD
            if magic == b"\x28\xb5\x2f\xfd"
            else MEDIA_TYPE_OCI_TAR
        )
        paths[digest] = path
        layers.append(BaseLayer(digest, os.path.getsize(path), media_type, diff_id))
    # A docker archive has no manifest; the config digest is what names its image.
    config_digest = f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"
    return (
        BaseImageInfo(config_digest, tuple(layers), config.get("config") or {}, tuple(config.get("history", ()))),
        paths,
    )


def _check_platform(config: Mapping[str, Any]) -> None:
    platform = (config.get("os"), config.get("architecture"))
    if platform != ("linux", "amd64"):
        raise BaseImageError(f"it is a {platform[0]}/{platform[1]} image; images built here are linux/amd64")


def _safe_extract(archive: str, dest: str) -> None:
    """Unpack the regular files of an image archive; nothing may land outside `dest`."""
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = os.path.normpath(member.name)
            if name.startswith("..") or os.path.isabs(name):
                raise BaseImageError(f"its member {member.name!r} points outside the archive")
            target = os.path.join(dest, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def read_base_image(path: str, pin: str | None, scratch: str) -> tuple[BaseImageInfo, dict[str, str]]:
    """An OCI layout directory, an OCI archive or a docker archive at `path`."""
    if os.path.isdir(path):
        return read_oci_layout(path, pin)
    if not tarfile.is_tarfile(path):
        raise BaseImageError("it is neither a directory (an OCI layout) nor a tar archive")
    _safe_extract(path, scratch)
    if os.path.isfile(os.path.join(scratch, "index.json")):
        return read_oci_layout(scratch, pin)
    if os.path.isfile(os.path.join(scratch, "manifest.json")):
        info, paths = read_docker_archive(scratch)
        if pin and pin != info.manifest_digest:
            raise BaseImageError(
                f"it is a docker archive, whose image is named by its config digest {info.manifest_digest}, not {pin}. "
                "If the base image changed on purpose, update the digest after `@`"
            )
        return info, paths
    raise BaseImageError(
        "it is a tar archive, but neither an OCI archive (index.json) nor a docker archive (manifest.json)"
    )


def copy_layers(info: BaseImageInfo, paths: Mapping[str, str], out_dir: str, move: bool = False) -> None:
    """Put each layer blob in out_dir/blobs/sha256/ (moved when `move`, as from a scratch
    directory), checking its bytes against its digest: base layers are kept verbatim."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for layer in info.layers:
        source = paths[layer.digest]
        target = os.path.join(blobs, layer.digest.split(":", 1)[1])
        # One read either way: hashed in place before a move, or hashed while copied.
        digest = _sha256_file(source, copy_to=None if move else target)
        if (digest, os.path.getsize(source)) != (layer.digest, layer.size):
            if not move:
                os.unlink(target)
            raise BaseImageError(f"layer {layer.digest} does not match its digest or size: the image is corrupt")
        if move:
            os.replace(source, target)


_STORE_MEMBER = re.compile(r"^(?:\./)?nix/store/([0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+)(?:/|$)")


def layer_store_paths(path: str, media_type: str) -> tuple[str, ...]:
    """The top-level store paths a layer blob holds, read from its tar headers.

    An image built on a base need not ship again what the base has: store paths are immutable,
    so the same path is the same bytes. Whiteouts (`.wh.` names) never match a store path name.
    """
    found: set[str] = set()
    with open(path, "rb") as raw:
        if media_type == MEDIA_TYPE_OCI_ZSTD:
            import zstandard

            stream: Any = zstandard.ZstdDecompressor().stream_reader(raw)
            mode = "r|"
        else:
            stream, mode = raw, "r|*"  # tarfile reads plain and gzip tars itself
        with tarfile.open(fileobj=stream, mode=mode) as tar:
            for member in tar:
                match = _STORE_MEMBER.match(member.name)
                if match:
                    found.add("/nix/store/" + match.group(1))
    return tuple(sorted(found))


def with_store_paths(info: BaseImageInfo, paths: Mapping[str, str]) -> BaseImageInfo:
    layers = tuple(
        dataclasses.replace(layer, store_paths=layer_store_paths(paths[layer.digest], layer.media_type))
        for layer in info.layers
    )
    return dataclasses.replace(info, layers=layers)


def merge_config(base: Mapping[str, Any], image: ContainerConfig) -> ContainerConfig:
    """The image's config on top of its base's: the image wins wherever it says something.

    Env and Labels merge by key; ports and volumes add up. As in a Dockerfile, setting an
    entrypoint drops the base's Cmd, which was written for the base's entrypoint.
    """
    env = dict(entry.partition("=")[::2] for entry in base.get("Env") or ())
    env.update(image.env)
    labels = dict(base.get("Labels") or {})
    labels.update(image.labels)
    if image.entrypoint:
        entrypoint, cmd = image.entrypoint, image.cmd
    else:
        entrypoint = tuple(base.get("Entrypoint") or ())
        cmd = image.cmd or tuple(base.get("Cmd") or ())
    return ContainerConfig(
        entrypoint=entrypoint,
        cmd=cmd,
        env=tuple(env.items()),
        working_dir=image.working_dir or base.get("WorkingDir") or None,
        exposed_ports=tuple(sorted(set(image.exposed_ports) | set(base.get("ExposedPorts") or {}))),
        volumes=tuple(sorted(set(image.volumes) | set(base.get("Volumes") or {}))),
        user=image.user or base.get("User") or None,
        labels=tuple(labels.items()),
    )
