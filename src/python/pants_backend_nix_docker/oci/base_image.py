"""Reading a base image: an OCI layout directory, an OCI archive (a tar of a layout, as `pants
package` writes) or a `docker save` archive, as a registry pull or the repository gives it. Its
layers are kept verbatim (same bytes, same digests), so a registry that has the base already has
those blobs. Where a base image comes from is `base_image_source.py`; merging configs,
`config_merge.py`.

Only the standard library (and the pinned zstandard wheel, for zstd layers) is imported: the
image tool runs this outside Pants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Mapping, NamedTuple

from pants_backend_nix_docker.oci.base_image_source import DIGEST_RE, BaseImageError
from pants_backend_nix_docker.oci.compression import GZIP, MEDIA_TYPES, ZSTD
from pants_backend_nix_docker.oci.image_json import MEDIA_TYPE_INDEX

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


class ReadImage(NamedTuple):
    info: BaseImageInfo
    paths: dict[str, str]  # layer digest -> its blob's file
    hashed: frozenset[str]  # the layers whose digests were computed from those files while reading


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


def blob_file(layout: str, digest: str) -> str:
    """The path of a layout's blob, which must be there."""
    if not DIGEST_RE.match(digest):
        raise BaseImageError(f"unsupported digest {digest!r} (only sha256)")
    path = os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])
    if not os.path.isfile(path):
        raise BaseImageError(f"blob {digest} is missing from the image")
    return path


def read_json_blob(layout: str, digest: str) -> dict[str, Any]:
    """A JSON blob of a layout, checked against its digest."""
    path = blob_file(layout, digest)
    with open(path, "rb") as f:
        data = f.read()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise BaseImageError(f"blob {digest} does not match its digest: the image is corrupt")
    return json.loads(data)


def _matches(found: Mapping[str, Any], wanted: str) -> bool:
    """Whether an index entry's (or a config's) platform is `wanted` (`os/architecture[/variant]`).
    A missing variant matches any; arm64's only variant, v8, may be left out."""
    os_name, architecture, *variant = wanted.split("/")
    if (found.get("os"), found.get("architecture")) != (os_name, architecture):
        return False
    have = found.get("variant") or ""
    want = variant[0] if variant else ""
    return not have or not want or have == want or {have, want} <= {"v8", ""}


def _platform_name(found: Mapping[str, Any]) -> str:
    return "/".join(p for p in (found.get("os"), found.get("architecture"), found.get("variant")) if p)


def _image_manifests(layout: str, index: Mapping[str, Any], platform: str) -> Iterator[Mapping[str, Any]]:
    """Every image manifest descriptor for `platform` (or without one), through nested indexes."""
    for descriptor in index.get("manifests", ()):
        found = descriptor.get("platform") or {}
        if found and not _matches(found, platform):
            continue
        if descriptor.get("mediaType") in (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST):
            yield from _image_manifests(layout, read_json_blob(layout, descriptor["digest"]), platform)
        else:
            yield descriptor


def _platforms_in(layout: str, index: Mapping[str, Any]) -> set[str]:
    """The platforms an index's entries name, through nested indexes."""
    names = set()
    for descriptor in index.get("manifests", ()):
        if descriptor.get("mediaType") in (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST):
            names |= _platforms_in(layout, read_json_blob(layout, descriptor["digest"]))
        elif descriptor.get("platform"):
            names.add(_platform_name(descriptor["platform"]))
    return names


def _choose_manifest(layout: str, pin: str | None, platform: str) -> str:
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    if pin:
        # The pin names the image: it may be any manifest (or index) the layout holds.
        known = {d["digest"] for d in index.get("manifests", ())} | {
            d["digest"] for d in _image_manifests(layout, index, platform)
        }
        if pin not in known:
            raise BaseImageError(
                f"it has no manifest with the pinned digest {pin}; it has {', '.join(sorted(known)) or 'none'}. "
                "If the base image changed on purpose, update the digest after `@`"
            )
        descriptor = next((d for d in index.get("manifests", ()) if d["digest"] == pin), None)
        if descriptor and descriptor.get("mediaType") in (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST):
            return _only_manifest(layout, read_json_blob(layout, pin), platform)
        return pin
    return _only_manifest(layout, index, platform)


def _only_manifest(layout: str, index: Mapping[str, Any], platform: str) -> str:
    digests = sorted({d["digest"] for d in _image_manifests(layout, index, platform)})
    if not digests:
        has = ", ".join(sorted(_platforms_in(layout, index))) or "none"
        raise BaseImageError(
            f"it holds no {platform} image (its platforms: {has}); use a base image that has one, or drop that "
            "platform from `platforms`"
        )
    if len(digests) > 1:
        raise BaseImageError(
            f"it holds {len(digests)} {platform} images ({', '.join(digests)}); choose one by writing PATH@DIGEST"
        )
    return digests[0]


def read_oci_layout(layout: str, pin: str | None, platform: str = "linux/amd64") -> ReadImage:
    """The image in an OCI layout directory, and where each layer blob is."""
    if not os.path.isfile(os.path.join(layout, "index.json")):
        raise BaseImageError("it is not an OCI layout (no index.json)")
    manifest_digest = _choose_manifest(layout, pin, platform)
    manifest = read_json_blob(layout, manifest_digest)
    config = read_json_blob(layout, manifest["config"]["digest"])
    _check_platform(config, platform)
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
        paths[descriptor["digest"]] = blob_file(layout, descriptor["digest"])
        layers.append(BaseLayer(descriptor["digest"], descriptor["size"], media_type, diff_id))
    return ReadImage(
        BaseImageInfo(manifest_digest, tuple(layers), config.get("config") or {}, tuple(config.get("history", ()))),
        paths,
        frozenset(),
    )


def read_docker_archive(root: str, platform: str = "linux/amd64") -> ReadImage:
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
    _check_platform(config, platform)
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
    return ReadImage(
        BaseImageInfo(config_digest, tuple(layers), config.get("config") or {}, tuple(config.get("history", ()))),
        paths,
        # Named by the digests just computed from these very files: no need to hash them again.
        frozenset(paths),
    )


def _check_platform(config: Mapping[str, Any], platform: str) -> None:
    if not _matches(config, platform):
        raise BaseImageError(
            f"it is a {_platform_name(config)} image, not {platform}: use a base image for {platform} (or an index "
            "that has one)"
        )


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


def read_base_image(path: str, pin: str | None, scratch: str, platform: str = "linux/amd64") -> ReadImage:
    """`platform`'s image in an OCI layout directory, an OCI archive or a docker archive at `path`."""
    if os.path.isdir(path):
        return read_oci_layout(path, pin, platform)
    if not tarfile.is_tarfile(path):
        raise BaseImageError("it is neither a directory (an OCI layout) nor a tar archive")
    _safe_extract(path, scratch)
    if os.path.isfile(os.path.join(scratch, "index.json")):
        return read_oci_layout(scratch, pin, platform)
    if os.path.isfile(os.path.join(scratch, "manifest.json")):
        read = read_docker_archive(scratch, platform)
        info = read.info
        if pin and pin != info.manifest_digest:
            raise BaseImageError(
                f"it is a docker archive, whose image is named by its config digest {info.manifest_digest}, not {pin}. "
                "If the base image changed on purpose, update the digest after `@`"
            )
        return read
    raise BaseImageError(
        "it is a tar archive, but neither an OCI archive (index.json) nor a docker archive (manifest.json)"
    )


def copy_layers(read: ReadImage, out_dir: str, move: bool = False) -> None:
    """Put each layer blob in out_dir/blobs/sha256/ (moved when `move`, as from a scratch
    directory), checking its bytes against its digest: base layers are kept verbatim."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for layer in read.info.layers:
        source = read.paths[layer.digest]
        target = os.path.join(blobs, layer.digest.split(":", 1)[1])
        if move and layer.digest in read.hashed:
            os.replace(source, target)
            continue
        # One read either way: hashed in place before a move, or hashed while copied.
        digest = _sha256_file(source, copy_to=None if move else target)
        if (digest, os.path.getsize(source)) != (layer.digest, layer.size):
            if not move:
                os.unlink(target)
            raise BaseImageError(f"layer {layer.digest} does not match its digest or size: the image is corrupt")
        if move:
            os.replace(source, target)


_STORE_MEMBER = re.compile(r"^(?:\./)?nix/store/([0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+)(?:/|$)")


def open_layer_tar(raw: BinaryIO, media_type: str) -> tarfile.TarFile:
    """A layer blob's tar, read as a stream, whatever its compression."""
    if media_type == MEDIA_TYPE_OCI_ZSTD:
        import zstandard

        return tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader(raw), mode="r|")
    if media_type == MEDIA_TYPE_OCI_GZIP:
        # GzipFile, not tarfile's "r|gz": that one stops after the first gzip member, and
        # layers of several members are ordinary (ours are, one per 1 MiB block).
        return tarfile.open(fileobj=gzip.GzipFile(fileobj=raw), mode="r|")  # type: ignore[arg-type]
    return tarfile.open(fileobj=raw, mode="r|*")  # an uncompressed tar (or one tarfile recognises)


def layer_store_paths(path: str, media_type: str) -> tuple[str, ...]:
    """The top-level store paths a layer blob holds, read from its tar headers.

    An image built on a base need not ship again what the base has: store paths are immutable,
    so the same path is the same bytes. Whiteouts (`.wh.` names) never match a store path name.
    """
    found: set[str] = set()
    with open(path, "rb") as raw, open_layer_tar(raw, media_type) as tar:
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
