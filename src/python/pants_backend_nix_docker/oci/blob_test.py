from __future__ import annotations

import json
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci.blob import blob_in_memory
from pants_backend_nix_docker.oci.compression import LayerCodec
from pants_backend_nix_docker.oci.image_tool import main as image_tool
from pants_backend_nix_docker.oci.rootfs import Node, RootfsSpec, rootfs_nodes, tar_entries

FILES = {
    "artifacts/app/app.pex": b"#!/usr/bin/env python3\n" + bytes(range(256)) * 9000,  # over one block
    "artifacts/app/config.yaml": b"greeting: hello\n",
}
SPEC = RootfsSpec(
    nodes=(
        Node("/app/app.pex", "file", 0o755, source="artifacts/app/app.pex", field="dependencies"),
        Node("/app/config.yaml", "file", 0o644, source="artifacts/app/config.yaml", field="dependencies"),
        Node("/etc/passwd", "file", 0o644, content=b"root:x:0:0::/root:/bin/sh\n", field="users"),
        Node("/data", "dir", 0o750, uid=1000, gid=1000, field="directories"),
    )
)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch) -> Path:
    for name, content in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("codec", [LayerCodec.of("gzip"), LayerCodec.of("gzip", "isal"), LayerCodec.of("zstd")])
def test_a_layer_made_in_memory_is_the_layer_the_tool_writes(sandbox: Path, codec: LayerCodec, capsys) -> None:
    (sandbox / "spec.json").write_text(json.dumps(SPEC.to_json()))
    assert image_tool(["rootfs", "--spec", "spec.json", *codec.argv, "--out-dir", "out"]) == 0
    by_tool = json.loads(capsys.readouterr().out)

    blob, stats = blob_in_memory(tar_entries(rootfs_nodes(SPEC.with_file_contents(FILES))), codec)
    assert stats.digest == by_tool["digest"] and stats.diff_id == by_tool["diff_id"]
    assert blob == (sandbox / "out/blobs/sha256" / stats.digest.split(":")[1]).read_bytes()


def test_with_file_contents_replaces_only_sourced_files() -> None:
    spec = SPEC.with_file_contents(FILES)
    assert [n.source for n in spec.nodes] == [None] * 4
    assert [n.content for n in spec.nodes][:2] == list(FILES.values())
    assert spec.nodes[2:] == SPEC.nodes[2:] and not spec.reads_store()
