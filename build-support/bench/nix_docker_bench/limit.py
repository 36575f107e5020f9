"""The machine's limit for building layers of some store paths: the same work, without Pants.

Two worker processes (one per core) each take half the bytes and do exactly what a layer process
does (read, tar, sha256 both sides, compress with the pinned encoder, write the blob), with no
process-per-layer overhead and no Pants. A build's ratio to this is what Pants and our
orchestration cost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import tempfile
import time

from pants_backend_nix_docker.oci.compression import GZIP, ISAL, LIBDEFLATE, ZSTD, HashingCompressor, LayerCodec
from pants_backend_nix_docker.oci.tarball import store_layer_entries, write_tar


def _nar_sizes(paths: list[str]) -> dict[str, int]:
    out = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", *paths],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    entries = data.items() if isinstance(data, dict) else ((e["path"], e) for e in data)
    return {path: int(info["narSize"]) for path, info in entries}


def _split(paths: list[str], sizes: dict[str, int], workers: int) -> list[list[str]]:
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for path in sorted(paths, key=lambda p: -sizes[p]):
        i = loads.index(min(loads))
        shares[i].append(path)
        loads[i] += sizes[path]
    return shares


def _work(args: tuple[list[str], LayerCodec, str]) -> int:
    paths, codec, out_dir = args
    written = 0
    for i, path in enumerate(paths):
        with open(os.path.join(out_dir, f"{os.getpid()}-{i}.blob"), "wb") as out:
            compressor = HashingCompressor(out, codec)
            write_tar(store_layer_entries([path]), compressor.write)
            written += compressor.finish().size
    return written


def measure(paths: list[str], codec: LayerCodec, workers: int = 2) -> dict[str, float]:
    """Seconds on `workers` cores and compressed bytes, one layer per store path."""
    shares = _split(paths, _nar_sizes(paths), workers)
    with tempfile.TemporaryDirectory() as out_dir, multiprocessing.get_context("fork").Pool(workers) as pool:
        start = time.perf_counter()
        written = pool.map(_work, [(share, codec, out_dir) for share in shares])
        return {"seconds": time.perf_counter() - start, "bytes": sum(written)}


# The default codecs first (the limit of a default build), then the other candidates considered
# for the default gzip (issue 15): each one's time and bytes on the same closure.
CODECS = {
    "gzip": LayerCodec.of(GZIP),
    "zstd": LayerCodec.of(ZSTD),
    "gzip_isal_1": LayerCodec.of(GZIP, ISAL, 1),
    "gzip_isal_2": LayerCodec.of(GZIP, ISAL, 2),
    "gzip_libdeflate_4": LayerCodec.of(GZIP, LIBDEFLATE, 4),
    "gzip_libdeflate_5": LayerCodec.of(GZIP, LIBDEFLATE, 5),
    "gzip_libdeflate_8": LayerCodec.of(GZIP, LIBDEFLATE, 8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    # Warm the page cache once, as a real build finds the store (it just built it).
    measure(args.paths, LayerCodec.of(ZSTD))
    print(json.dumps({name: measure(args.paths, codec) for name, codec in CODECS.items()}))


if __name__ == "__main__":
    main()
