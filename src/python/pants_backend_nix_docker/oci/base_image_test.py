from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci.base_image import (
    MEDIA_TYPE_OCI_GZIP,
    MEDIA_TYPE_OCI_TAR,
    BaseImageInfo,
    copy_layers,
    layer_store_paths,
    read_base_image,
)
from pants_backend_nix_docker.oci.base_image_source import BaseImageError, BaseImageSource, parse_base_image
from pants_backend_nix_docker.oci.config_merge import merge_config
from pants_backend_nix_docker.oci.image_json import (
    DEFAULT_PLATFORM,
    MEDIA_TYPE_MANIFEST,
    ContainerConfig,
    Descriptor,
    LayerInfo,
    image_files,
    index_files,
)
from pants_backend_nix_docker.oci.platforms import Platform, platform_of

PIN = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "value, spec_path, expected",
    [
        ("base.tar", "app", BaseImageSource(path="app/base.tar")),
        ("//images/base", "app", BaseImageSource(path="images/base")),
        (f"../shared/base.tar@{PIN}", "app/svc", BaseImageSource(path="app/shared/base.tar", pin=PIN)),
        (
            f"docker://registry.example.com:5000/base/debian:12@{PIN}",
            "",
            BaseImageSource(reference=f"registry.example.com:5000/base/debian:12@{PIN}", pin=PIN),
        ),
    ],
)
def test_parse(value: str, spec_path: str, expected: BaseImageSource) -> None:
    assert parse_base_image(value, spec_path) == expected


def test_names_of_a_registry_image() -> None:
    source = parse_base_image(f"docker://localhost:5000/base/debian:12@{PIN}", "")
    assert (source.registry_host, source.name, source.pull_reference) == (
        "localhost:5000",
        "localhost:5000/base/debian:12",
        f"localhost:5000/base/debian@{PIN}",
    )
    assert parse_base_image(f"docker://r.example.com/debian@{PIN}", "").pull_reference == f"r.example.com/debian@{PIN}"


@pytest.mark.parametrize(
    "value, message",
    [
        ("docker://registry.example.com/debian:12", "must be pinned by digest"),
        ("docker://registry.example.com/debian@sha256:abc", "is not a sha256 digest"),
        (f"docker://debian@{PIN}", "names no registry host"),
        ("oci-archive:base.tar", "unknown transport"),
        ("/srv/base.tar", "absolute path"),
        ("../../outside.tar", "outside the repository"),
        ("base.tar@md5:00", "is not a sha256 digest"),
    ],
)
def test_parse_errors(value: str, message: str) -> None:
    with pytest.raises(BaseImageError, match=message):
        parse_base_image(value, "app")


def _layer(files: dict[str, bytes], compress: bool) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    return (gzip.compress(tar_bytes, mtime=0) if compress else tar_bytes), diff_id


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def make_layout(
    root: Path,
    env: tuple[tuple[str, str], ...] = (("PATH", "/bin"), ("LANG", "C")),
    platform: Platform = DEFAULT_PLATFORM,
) -> tuple[str, list[str]]:
    blobs, infos = {}, []
    for i in range(2):
        blob, diff_id = _layer({f"etc/file{i}": b"x" * (i + 1)}, compress=True)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        blobs[f"blobs/sha256/{digest[7:]}"] = blob
        infos.append(LayerInfo(Descriptor(MEDIA_TYPE_OCI_GZIP, digest, len(blob)), diff_id, f"layer {i}"))
    config = ContainerConfig(cmd=("/bin/sh",), env=env, user="nobody")
    files = image_files(infos, config, "1970-01-01T00:00:01Z", "base", ["latest"], platform=platform)
    _write(root, {**files.files, **blobs})
    return files.manifest_digest, [i.descriptor.digest for i in infos]


def test_reads_an_oci_layout_and_copies_its_layers_verbatim(tmp_path: Path) -> None:
    manifest, layers = make_layout(tmp_path / "layout")
    read = read_base_image(str(tmp_path / "layout"), None, str(tmp_path / "scratch"))
    info = read.info
    assert info.manifest_digest == manifest
    assert [layer.digest for layer in info.layers] == layers
    assert info.config["Cmd"] == ["/bin/sh"]
    assert [h["created_by"] for h in info.history] == ["layer 0", "layer 1"]
    copy_layers(read, str(tmp_path / "out"))
    for digest in layers:
        copied = tmp_path / "out/blobs/sha256" / digest[7:]
        assert "sha256:" + hashlib.sha256(copied.read_bytes()).hexdigest() == digest
    assert BaseImageInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_reads_an_oci_archive_and_checks_the_pin(tmp_path: Path) -> None:
    manifest, _ = make_layout(tmp_path / "layout")
    archive = tmp_path / "base.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "layout", arcname=".")
    info = read_base_image(str(archive), manifest, str(tmp_path / "scratch")).info
    assert info.manifest_digest == manifest
    with pytest.raises(BaseImageError, match=f"no manifest with the pinned digest {PIN}; it has {manifest}"):
        read_base_image(str(archive), PIN, str(tmp_path / "scratch2"))


def test_reads_a_docker_archive_with_uncompressed_layers(tmp_path: Path) -> None:
    blob, diff_id = _layer({"etc/hostname": b"base\n"}, compress=False)
    config = json.dumps(
        {
            "os": "linux",
            "architecture": "amd64",
            "config": {"Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    _write(
        tmp_path / "d",
        {
            "layer.tar": blob,
            "config.json": config,
            "manifest.json": json.dumps([{"Config": "config.json", "Layers": ["layer.tar"]}]).encode(),
        },
    )
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "d", arcname=".")
    info = read_base_image(str(archive), None, str(tmp_path / "scratch")).info
    assert info.layers[0].media_type == MEDIA_TYPE_OCI_TAR
    assert info.layers[0].digest == diff_id  # an uncompressed layer is its own diff
    assert info.config == {"Env": ["A=1"]}


def test_refuses_a_corrupt_layer_and_another_platform(tmp_path: Path) -> None:
    _, layers = make_layout(tmp_path / "layout")
    read = read_base_image(str(tmp_path / "layout"), None, str(tmp_path / "scratch"))
    with open(read.paths[layers[0]], "r+b") as f:
        f.write(b"\0")
    with pytest.raises(BaseImageError, match="does not match its digest"):
        copy_layers(read, str(tmp_path / "out"))
    config_blob = next(p for p in (tmp_path / "layout/blobs/sha256").iterdir() if b'"architecture"' in p.read_bytes())
    config_blob.write_bytes(config_blob.read_bytes().replace(b'"amd64"', b'"arm64"'))
    with pytest.raises(BaseImageError, match="does not match its digest"):
        read_base_image(str(tmp_path / "layout"), None, str(tmp_path / "scratch"))


def test_refuses_members_that_escape(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BaseImageError, match="points outside"):
        read_base_image(str(archive), None, str(tmp_path / "scratch"))
    assert not (tmp_path / "escape").exists()
    (tmp_path / "plain").write_text("not an image")
    with pytest.raises(BaseImageError, match="neither a directory"):
        read_base_image(str(tmp_path / "plain"), None, str(tmp_path / "scratch"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(BaseImageError, match="no index.json"):
        read_base_image(str(tmp_path / "empty"), None, str(tmp_path / "scratch"))


def test_merge_config_image_wins() -> None:
    base = {
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx"],
        "WorkingDir": "/srv",
        "User": "www",
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"maintainer": "base", "tier": "web"},
    }
    merged = merge_config(
        base,
        ContainerConfig(
            env=(("PATH", "/nix/bin"), ("APP", "1")), labels=(("tier", "api"),), exposed_ports=("8080/tcp",)
        ),
    )
    assert dict(merged.env) == {"PATH": "/nix/bin", "LANG": "C.UTF-8", "APP": "1"}
    assert dict(merged.labels) == {"maintainer": "base", "tier": "api"}
    assert (merged.entrypoint, merged.cmd, merged.working_dir, merged.user) == (
        ("/docker-entrypoint.sh",),
        ("nginx",),
        "/srv",
        "www",
    )
    assert merged.exposed_ports == ("80/tcp", "8080/tcp")
    # An entrypoint of the image's own drops the base's Cmd, which was meant for the base's.
    own = merge_config(base, ContainerConfig(entrypoint=("/bin/app",), user="app"))
    assert (own.entrypoint, own.cmd, own.user) == (("/bin/app",), (), "app")


def test_lists_the_store_paths_a_layer_ships(tmp_path: Path) -> None:
    a, b = "/nix/store/" + "a" * 32 + "-busybox-1.35.0", "/nix/store/" + "b" * 32 + "-hello-1.0"
    blob, _ = _layer(
        {a[1:] + "/bin/sh": b"x", b[1:] + "/bin/hello": b"y", "etc/passwd": b"root", "nix/store/.wh.gone": b""},
        compress=True,
    )
    (tmp_path / "layer").write_bytes(blob)
    assert layer_store_paths(str(tmp_path / "layer"), MEDIA_TYPE_OCI_GZIP) == (a, b)
    plain, _ = _layer({"./" + b[1:] + "/x": b"z"}, compress=False)
    (tmp_path / "plain").write_bytes(plain)
    assert layer_store_paths(str(tmp_path / "plain"), MEDIA_TYPE_OCI_TAR) == (b,)


def test_lists_the_store_paths_of_a_layer_of_several_gzip_members(tmp_path: Path) -> None:
    # Our own layers are one gzip member per 1 MiB block; a base image built by this backend has
    # them, and tarfile's own "r|gz" would stop after the first member.
    paths = ["/nix/store/" + c * 32 + f"-pkg-{c}" for c in "abcd"]
    tar, _ = _layer({p[1:] + "/data": os.urandom(600_000) for p in paths}, compress=False)
    block = 1 << 20
    blob = b"".join(gzip.compress(tar[i : i + block], mtime=0) for i in range(0, len(tar), block))
    assert blob.count(b"\x1f\x8b\x08") >= 3
    (tmp_path / "layer").write_bytes(blob)
    assert layer_store_paths(str(tmp_path / "layer"), MEDIA_TYPE_OCI_GZIP) == tuple(paths)


def test_an_index_gives_each_platform_its_image_and_names_what_it_has(tmp_path: Path) -> None:
    amd64, _ = make_layout(tmp_path / "amd64")
    arm64, _ = make_layout(tmp_path / "arm64", platform=platform_of("aarch64-linux"))
    root = tmp_path / "multi"
    shutil.copytree(tmp_path / "amd64/blobs", root / "blobs")
    shutil.copytree(tmp_path / "arm64/blobs", root / "blobs", dirs_exist_ok=True)
    manifests = [
        (Descriptor(MEDIA_TYPE_MANIFEST, d, (root / "blobs/sha256" / d[7:]).stat().st_size), platform_of(s))
        for d, s in ((amd64, "x86_64-linux"), (arm64, "aarch64-linux"))
    ]
    _, files = index_files(manifests, "base", ["latest"], b"[]")
    _write(root, files)
    read = functools.partial(read_base_image, str(root), None, str(tmp_path / "scratch"))
    assert read().info.manifest_digest == amd64  # linux/amd64, the default
    assert read(platform="linux/arm64/v8").info.manifest_digest == arm64
    assert read(platform="linux/arm64").info.manifest_digest == arm64  # arm64's variant may be left out
    with pytest.raises(BaseImageError, match=r"no linux/arm/v7 image \(its platforms: linux/amd64, linux/arm64/v8\)"):
        read(platform="linux/arm/v7")
    # A single-platform image of another platform says what it is.
    with pytest.raises(BaseImageError, match="it is a linux/amd64 image, not linux/arm64/v8"):
        read_base_image(str(tmp_path / "amd64"), None, str(tmp_path / "scratch"), "linux/arm64/v8")
