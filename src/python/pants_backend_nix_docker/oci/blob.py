"""Writing a layer blob: a tar streamed through a compressor into `blobs/sha256/<digest>`."""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

from pants_backend_nix_docker.oci.compression import HashingCompressor, LayerCodec
from pants_backend_nix_docker.oci.tarball import TarEntry, write_tar


def write_blob(entries: Iterable[TarEntry], codec: LayerCodec, out_dir: str) -> dict:
    """Write a layer as blobs/sha256/<digest> under out_dir; return its stats."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    partial = os.path.join(blobs, ".partial")
    try:
        with open(partial, "wb") as out:
            compressor = HashingCompressor(out, codec)
            write_tar(entries, compressor.write)
            stats = compressor.finish()
    except BaseException:
        # A blob is named by its digest only when whole: nothing half-written is left behind.
        os.unlink(partial)
        raise
    os.replace(partial, os.path.join(blobs, stats.digest.split(":", 1)[1]))
    return dataclasses.asdict(stats)
