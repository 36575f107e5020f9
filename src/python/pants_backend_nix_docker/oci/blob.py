"""Writing a layer blob: a tar streamed through a compressor into `blobs/sha256/<digest>`."""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Iterable

from pants_backend_nix_docker.oci.compression import BlobStats, HashingCompressor, LayerCodec
from pants_backend_nix_docker.oci.tarball import TarEntry, write_tar


def write_blob(entries: Iterable[TarEntry], codec: LayerCodec, out_dir: str, workers: int = 1) -> dict:
    """Write a layer as blobs/sha256/<digest> under out_dir; return its stats. `workers`: how many
    processes may compress its blocks."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    # One name per writer: several processes may write layers into the same directory.
    partial = os.path.join(blobs, f".partial-{os.getpid()}")
    try:
        with open(partial, "wb") as out:
            compressor = HashingCompressor(out, codec, workers)
            write_tar(entries, compressor.write)
            stats = compressor.finish()
    except BaseException:
        # A blob is named by its digest only when whole: nothing half-written is left behind.
        os.unlink(partial)
        raise
    os.replace(partial, os.path.join(blobs, stats.digest.split(":", 1)[1]))
    return dataclasses.asdict(stats)


def blob_in_memory(entries: Iterable[TarEntry], codec: LayerCodec) -> tuple[bytes, BlobStats]:
    """A small layer's blob and stats, made without a file: the bytes `write_blob` would write."""
    out = io.BytesIO()
    compressor = HashingCompressor(out, codec)
    write_tar(entries, compressor.write)
    stats = compressor.finish()
    return out.getvalue(), stats
