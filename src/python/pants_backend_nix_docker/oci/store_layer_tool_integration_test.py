"""The store-layer tool's parallel paths give the bytes of its serial one, with real store paths.

A batch of several layers writes them in worker processes at once; a layer alone compresses its
blocks in worker processes. Both must give exactly the blobs a single process writes one block
after another, and leave nothing but whole blobs behind.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci import compression
from pants_backend_nix_docker.oci.compression import LayerCodec
from pants_backend_nix_docker.oci.store_layer_tool import main


@pytest.fixture(scope="module")
def store_paths(tmp_path_factory) -> list[str]:
    rng = random.Random(15)
    paths = []
    for i, size in enumerate((3_500_000, 40_000, 900_000)):  # one over three blocks, two small
        root = tmp_path_factory.mktemp("store") / f"parallel-layer-{i}-1.0"
        (root / "lib").mkdir(parents=True)
        words = [b"libc.so.6", b"/nix/store/", b"def main():", b"\x00\x01\x02", b"GLIBC_2.34"]
        (root / "lib/data").write_bytes(b"".join(rng.choice(words) for _ in range(size // 8)))
        (root / "lib/noise").write_bytes(rng.randbytes(size // 10))
        added = subprocess.run(["nix-store", "--add", str(root)], capture_output=True, text=True, check=True)
        paths.append(added.stdout.strip())
    return paths


def layers(paths: list[list[str]], out: Path, capsys) -> list[dict]:
    argv = ["layers", *LayerCodec.of("gzip").argv, "--out-dir", str(out)]
    for layer in paths:
        argv += ["--layer", *layer]
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_parallel_layers_and_blocks_give_the_serial_bytes(store_paths, tmp_path: Path, capsys, monkeypatch) -> None:
    batch = layers([[p] for p in store_paths], tmp_path / "batch", capsys)
    alone = [layers([[p]], tmp_path / f"alone-{i}", capsys)[0] for i, p in enumerate(store_paths)]

    monkeypatch.setattr(compression, "usable_cores", lambda: 1)
    monkeypatch.setattr("pants_backend_nix_docker.oci.store_layer_tool.usable_cores", lambda: 1)
    serial = layers([[p] for p in store_paths], tmp_path / "serial", capsys)

    assert len(os.sched_getaffinity(0)) > 1, "the parallel paths need two cores to be tested"
    assert batch == alone == serial
    for out in ("batch", "serial"):
        left = sorted(p.name for p in (tmp_path / out / "blobs/sha256").iterdir())
        assert left == sorted(s["digest"].split(":")[1] for s in serial), "a partial blob was left"
