"""The layer tool: what Pants processes run to write layer blobs and image archives.

    tool layer --compression gzip --level 1 -- /nix/store/<hash>-a /nix/store/<hash>-b
        writes blobs/sha256/<digest> and prints {"digest", "size", "diff_id", ...} as JSON
    tool archive --layout DIR --output image.tar
        writes the OCI layout in DIR as one deterministic tar

Only the standard library, the pinned compressors and the sibling modules are imported: this
runs from a PEX, outside Pants.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Iterator, Sequence

from pants_backend_nix_docker.oci.compression import COMPRESSIONS, HashingCompressor
from pants_backend_nix_docker.oci.tarball import (
    DIRECTORY,
    REGULAR,
    TarEntry,
    TarError,
    store_layer_entries,
    write_tar,
)


def build_layer(store_paths: Sequence[str], compression: str, level: int, out_dir: str) -> dict:
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    partial = os.path.join(blobs, ".partial")
    with open(partial, "wb") as out:
        compressor = HashingCompressor(out, compression, level)
        write_tar(store_layer_entries(store_paths), compressor.write)
        stats = compressor.finish()
    os.replace(partial, os.path.join(blobs, stats.digest.split(":", 1)[1]))
    return dataclasses.asdict(stats)


def layout_entries(root: bytes, prefix: bytes = b"") -> Iterator[TarEntry]:
    for name in sorted(os.listdir(root or b".")):
        path = os.path.join(root, name) if root else name
        member = prefix + name
        if os.path.isdir(path):
            yield TarEntry(name=member, kind=DIRECTORY, mode=0o755)
            yield from layout_entries(path, member + b"/")
        else:
            yield TarEntry(name=member, kind=REGULAR, mode=0o644, size=os.path.getsize(path), source=path)


def build_archive(layout: str, output: str) -> None:
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "wb") as out:
        write_tar(layout_entries(os.fsencode(layout)), out.write)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nix-docker-layer-tool")
    commands = parser.add_subparsers(dest="command", required=True)
    layer = commands.add_parser("layer", help="write one layer blob of store paths")
    layer.add_argument("--compression", choices=COMPRESSIONS, required=True)
    layer.add_argument("--level", type=int, required=True)
    layer.add_argument("--out-dir", default=".")
    layer.add_argument("store_paths", nargs="+")
    archive = commands.add_parser("archive", help="write an OCI layout directory as one tar")
    archive.add_argument("--layout", required=True)
    archive.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "layer":
            stats = build_layer(args.store_paths, args.compression, args.level, args.out_dir)
            json.dump(stats, sys.stdout, sort_keys=True)
        else:
            build_archive(args.layout, args.output)
    except (TarError, OSError) as e:
        print(f"nix-docker-layer-tool: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
