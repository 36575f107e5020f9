"""The image tool's commands answer with the exit codes and messages the rules read: 2 and
"FIELD<tab>message" for a root filesystem that cannot be built, 2 for an unusable base image, 0 and
a deterministic tar for an archive. Each command imports its own modules when it runs, so these
also show that the lazily imported names are the right ones."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci.image_tool import main as image_tool
from pants_backend_nix_docker.oci.rootfs import Node, RootfsSpec


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_unbuildable_root_filesystem_exits_2_naming_the_field(workdir: Path, capsys) -> None:
    spec = RootfsSpec(
        nodes=(
            Node("/data", "dir", 0o750, field="directories"),
            Node("/data", "file", 0o644, content=b"x", field="users"),
        )
    )
    (workdir / "spec.json").write_text(json.dumps(spec.to_json()))
    code = image_tool(
        ["rootfs", "--spec", "spec.json", "--compression", "gzip", "--encoder", "libdeflate", "--level", "5"]
    )
    assert code == 2
    field, _, message = capsys.readouterr().err.strip().partition("\t")
    assert field == "users" and "/data is declared twice" in message
    assert not (workdir / "blobs").exists() or not any((workdir / "blobs").rglob("*"))


def test_an_unusable_base_image_exits_2_with_the_reason(workdir: Path, capsys) -> None:
    (workdir / "not-an-image").mkdir()
    assert image_tool(["base", "--input", "not-an-image", "--output", "out"]) == 2
    assert capsys.readouterr().err.strip()


def test_an_archive_holds_the_layouts_together_in_sorted_order(workdir: Path) -> None:
    (workdir / "a/blobs/sha256").mkdir(parents=True)
    (workdir / "b/blobs/sha256").mkdir(parents=True)
    (workdir / "a/index.json").write_text("{}")
    (workdir / "a/blobs/sha256/bb").write_bytes(b"two")
    (workdir / "b/blobs/sha256/aa").write_bytes(b"one")
    assert image_tool(["archive", "--layout", "a", "--layout", "b", "--output", "out/image.tar"]) == 0
    with tarfile.open(workdir / "out/image.tar") as tf:
        assert tf.getnames() == ["blobs", "blobs/sha256", "blobs/sha256/aa", "blobs/sha256/bb", "index.json"]
    first = (workdir / "out/image.tar").read_bytes()
    assert image_tool(["archive", "--layout", "b", "--layout", "a", "--output", "again.tar"]) == 0
    assert (workdir / "again.tar").read_bytes() == first


def test_writing_an_archive_imports_none_of_the_other_commands_modules() -> None:
    """An archive is written on every cold build: its process should not pay for HTTP, XML and the
    registry client, which only `check` and `push` use."""
    probe = (
        "import sys; from pants_backend_nix_docker.oci import image_tool; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('pants_backend', 'urllib', 'http', 'xml')))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert "pants_backend_nix_docker.oci.archive" in loaded
    heavy = [
        m
        for m in loaded
        if m.startswith(("urllib", "http", "xml")) or m.endswith(("registry_client", "image_check_runner"))
    ]
    assert heavy == []
