"""The store-layer tool: what Pants processes run to write the layers of Nix store paths.

    store_layer_tool layers --compression gzip --encoder libdeflate --level 6 \
        --layer /nix/store/<hash>-a /nix/store/<hash>-b --layer ...
        writes one blobs/sha256/<digest> per --layer and prints a JSON list of their
        {"digest", "size", "diff_id", "uncompressed_size"}

Its sources are part of every store layer's cache key, locally and in a remote cache, so it holds
only what store layers need: the tar writer, the pinned compressors and this entry point. The
root-filesystem layer, the archive writer, base images and pushes are the image tool's
(`image_tool.py`): an edit to them leaves every store layer cached. Only the standard library,
the pinned compressors and the sibling modules are imported: this runs from a PEX, outside Pants.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from pants_backend_nix_docker.oci.blob import write_blob
from pants_backend_nix_docker.oci.compression import (
    LayerCodec,
    add_codec_arguments,
    codec_from_arguments,
    usable_cores,
)
from pants_backend_nix_docker.oci.tarball import TarError, store_layer_entries


def _write_layer(paths: list[str], codec: LayerCodec, out_dir: str, workers: int = 1) -> dict:
    return write_blob(store_layer_entries(paths), codec, out_dir, workers)


def write_layers(layers: list[list[str]], codec: LayerCodec, out_dir: str) -> list[dict]:
    """Every core works: a layer of its own (a large store path, see `layering.batch_layers`)
    compresses its blocks in parallel; a batch of small layers writes several layers at once,
    largest first, so that it does not end on one core compressing a large layer alone. (Cutting
    large layers of a batch into blocks too was measured: on two cores shared by two batch
    processes its cost exceeded the idle time it saved.)"""
    cores = usable_cores()
    if len(layers) == 1 or cores == 1:
        return [_write_layer(paths, codec, out_dir, workers=cores) for paths in layers]
    import multiprocessing

    sizes = [sum(_tree_bytes(p) for p in paths) for paths in layers]
    order = sorted(range(len(layers)), key=lambda i: (-sizes[i], i))
    with multiprocessing.get_context("fork").Pool(min(cores, len(layers))) as pool:
        written = pool.starmap(_write_layer, [(layers[i], codec, out_dir) for i in order], chunksize=1)
    stats: dict[int, dict] = dict(zip(order, written))
    return [stats[i] for i in range(len(layers))]


def _tree_bytes(path: str) -> int:
    if os.path.islink(path) or not os.path.isdir(path):
        return os.lstat(path).st_size
    return sum(
        os.lstat(os.path.join(root, name)).st_size for root, dirs, files in os.walk(path) for name in dirs + files
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nix-docker-store-layer-tool")
    commands = parser.add_subparsers(dest="command", required=True)
    layers = commands.add_parser("layers", help="write layer blobs of store paths")
    add_codec_arguments(layers)
    layers.add_argument("--out-dir", default=".")
    layers.add_argument("--layer", nargs="+", action="append", required=True, metavar="STORE_PATH")
    args = parser.parse_args(argv)
    codec = codec_from_arguments(args)
    try:
        stats = write_layers(args.layer, codec, args.out_dir)
    except (TarError, OSError) as e:
        print(f"nix-docker-store-layer-tool: {e}", file=sys.stderr)
        return 1
    json.dump(stats, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
