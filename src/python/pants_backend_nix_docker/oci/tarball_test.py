from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci import tarball
from pants_backend_nix_docker.oci.tarball import DIRECTORY, REGULAR, SYMLINK, TarEntry, TarError


def member_bytes(tf: tarfile.TarFile, name: str | tarfile.TarInfo) -> bytes:
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a regular file"
    return member.read()


def tar_bytes(entries) -> bytes:
    out = io.BytesIO()
    tarball.write_tar_file(entries, out)
    return out.getvalue()


def make_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "share" / "empty").mkdir(parents=True)
    (root / "share" / "data.txt").write_bytes(b"x" * 70000)
    (root / "share" / "data.txt").chmod(0o600)  # a host mode that must not leak into the layer
    (root / "link").symlink_to("bin/tool")
    (root / "dangling").symlink_to("/does/not/exist")
    deep = root / ("d" * 60) / ("e" * 60) / ("f" * 90)
    deep.mkdir(parents=True)
    (deep / "long-name.txt").write_bytes(b"deep")
    (root / "hard").write_bytes(b"same bytes")
    os.link(root / "hard", root / "hard2")


def test_tree_round_trips_through_python_tarfile(tmp_path: Path) -> None:
    make_tree(tmp_path / "pkg")
    data = tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "pkg"), b"pkg"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        names = [m.name for m in tf.getmembers()]
        assert names == sorted(names, key=lambda n: n.split("/")), "parents first, siblings sorted"
        assert members["pkg/bin/tool"].mode == 0o555
        assert members["pkg/share/data.txt"].mode == 0o444
        assert members["pkg/share"].isdir() and members["pkg/share"].mode == 0o555
        assert members["pkg/link"].issym() and members["pkg/link"].linkname == "bin/tool"
        assert members["pkg/dangling"].linkname == "/does/not/exist"
        assert members["pkg/hard2"].isreg(), "hardlinks are written as regular files"
        assert member_bytes(tf, "pkg/hard2") == b"same bytes"
        assert member_bytes(tf, "pkg/share/data.txt") == b"x" * 70000
        long_name = [n for n in names if n.endswith("long-name.txt")][0]
        assert len(long_name) > 200 and member_bytes(tf, long_name) == b"deep"
        for m in tf.getmembers():
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "root", "root", 1)


def test_gnu_tar_extracts_the_same_tree(tmp_path: Path) -> None:
    make_tree(tmp_path / "pkg")
    archive = tmp_path / "layer.tar"
    archive.write_bytes(tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "pkg"), b"pkg")))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    for path in (tmp_path / "pkg").rglob("*"):
        twin = out / "pkg" / path.relative_to(tmp_path / "pkg")
        if path.is_symlink():
            assert os.readlink(twin) == os.readlink(path)
        elif path.is_file():
            assert twin.read_bytes() == path.read_bytes()
        else:
            assert twin.is_dir()


def test_bytes_do_not_depend_on_hardlinks_or_host_modes(tmp_path: Path) -> None:
    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b")
    # Same content, different hardlink state and host permission bits.
    os.unlink(tmp_path / "b" / "hard2")
    (tmp_path / "b" / "hard2").write_bytes(b"same bytes")
    (tmp_path / "b" / "share" / "data.txt").chmod(0o644)
    first = tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "a"), b"pkg"))
    second = tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "b"), b"pkg"))
    assert first == second


def test_executable_bit_is_content(tmp_path: Path) -> None:
    make_tree(tmp_path / "a")
    before = tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "a"), b"pkg"))
    (tmp_path / "a" / "bin" / "tool").chmod(0o644)
    after = tar_bytes(tarball.walk_tree(os.fsencode(tmp_path / "a"), b"pkg"))
    assert before != after


def test_headers_use_pax_only_when_needed() -> None:
    short = tarball.header_bytes(TarEntry(name=b"nix/store/x", kind=DIRECTORY, mode=0o755))
    assert len(short) == 512 and short[156:157] == DIRECTORY
    long = tarball.header_bytes(TarEntry(name=b"a/" + b"n" * 150, kind=REGULAR, mode=0o444, size=3))
    assert long[156:157] == b"x" and b"path=a/nnn" in long
    target = tarball.header_bytes(TarEntry(name=b"l", kind=SYMLINK, mode=0o777, linkname=b"t" * 120))
    assert b"linkpath=" + b"t" * 120 in target


def test_non_utf8_names_survive(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path / "pkg")
    os.mkdir(root)
    with open(os.path.join(root, b"caf\xe9"), "wb") as f:
        f.write(b"latin-1 name")
    data = tar_bytes(tarball.walk_tree(root, b"pkg"))
    assert b"hdrcharset=BINARY" in data
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "l.tar").write_bytes(data)
    subprocess.run(["tar", "-xf", str(tmp_path / "l.tar"), "-C", str(out)], check=True)
    assert open(os.path.join(os.fsencode(out), b"pkg", b"caf\xe9"), "rb").read() == b"latin-1 name"


def test_pax_record_length_counts_itself() -> None:
    for size in (1, 5, 89, 90, 95, 990, 995):
        record = tarball._pax_record(b"path", b"x" * size)
        length, _, _ = record.partition(b" ")
        assert int(length) == len(record)


def test_store_layer_starts_with_nix_directories() -> None:
    entries = list(tarball.store_layer_entries([]))
    assert [(e.name, e.mode) for e in entries] == [(b"nix", 0o755), (b"nix/store", 0o755)]


@pytest.mark.parametrize("bad", ["/tmp/x", "/nix/store/abc-x/bin", "nix/store/abc-x"])
def test_store_layer_rejects_non_store_paths(bad: str) -> None:
    with pytest.raises(TarError):
        list(tarball.store_layer_entries([bad]))


def test_file_that_grows_while_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    entry = TarEntry(name=b"f", kind=REGULAR, mode=0o444, size=2, source=os.fsencode(path))
    with pytest.raises(TarError, match="changed size"):
        tar_bytes([entry])


def test_a_garbage_collected_store_path_is_named_with_what_to_do() -> None:
    gone = "/nix/store/" + "0" * 32 + "-collected-1.0"
    with pytest.raises(TarError, match="garbage-collected after the image's closure was read. Build again"):
        list(tarball.store_layer_entries([gone]))
