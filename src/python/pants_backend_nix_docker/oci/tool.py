"""The layer tool: what Pants processes run to write layer blobs and image archives.

    tool layers --compression gzip --level 1 --layer /nix/store/<hash>-a /nix/store/<hash>-b --layer ...
        writes one blobs/sha256/<digest> per --layer and prints a JSON list of their
        {"digest", "size", "diff_id", "uncompressed_size"}
    tool rootfs --spec spec.json --compression gzip --level 1
        writes the layer a RootfsSpec describes (users, directories, links, artifacts) the same way;
        a spec that cannot be built exits 2 with "FIELD<tab>message" on stderr
    tool archive --layout DIR [--layout DIR...] --output image.tar
        writes the OCI layout that the DIRs make together as one deterministic tar

Only the standard library, the pinned compressors and the sibling modules are imported: this
runs from a PEX, outside Pants. Reading base images and pushing live in `image_tool`, a PEX of
their own: the sources of this one are part of every layer's cache key, so they hold nothing
that layers do not need.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Iterable, Iterator, Sequence

from pants_backend_nix_docker.oci.compression import COMPRESSIONS, HashingCompressor
from pants_backend_nix_docker.oci.rootfs import RootfsError, RootfsSpec, rootfs_nodes, tar_entries
from pants_backend_nix_docker.oci.tarball import (
    DIRECTORY,
    REGULAR,
    TarEntry,
    TarError,
    store_layer_entries,
    write_tar,
)


def write_blob(entries: Iterable[TarEntry], compression: str, level: int, out_dir: str) -> dict:
    """Write a layer as blobs/sha256/<digest> under out_dir; return its stats."""
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    partial = os.path.join(blobs, ".partial")
    try:
        with open(partial, "wb") as out:
            compressor = HashingCompressor(out, compression, level)
            write_tar(entries, compressor.write)
            stats = compressor.finish()
    except BaseException:
        # A blob is named by its digest only when whole: nothing half-written is left behind.
        os.unlink(partial)
        raise
    os.replace(partial, os.path.join(blobs, stats.digest.split(":", 1)[1]))
    return dataclasses.asdict(stats)


def layout_entries(roots: Sequence[bytes], prefix: bytes = b"") -> Iterator[TarEntry]:
    """The union of several directory trees (symlinks followed), sorted, as one tree."""
    children: dict[bytes, list[bytes]] = {}
    for root in roots:
        if os.path.isdir(root):
            for name in os.listdir(root):
                children.setdefault(name, []).append(os.path.join(root, name))
    for name in sorted(children):
        paths = children[name]
        member = prefix + name
        if os.path.isdir(paths[0]):
            yield TarEntry(name=member, kind=DIRECTORY, mode=0o755)
            yield from layout_entries(paths, member + b"/")
        else:
            yield TarEntry(name=member, kind=REGULAR, mode=0o644, size=os.path.getsize(paths[0]), source=paths[0])


def build_archive(layouts: Sequence[str], output: str) -> None:
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "wb") as out:
        write_tar(layout_entries([os.fsencode(layout) for layout in layouts]), out.write)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nix-docker-layer-tool")
    commands = parser.add_subparsers(dest="command", required=True)
    layers = commands.add_parser("layers", help="write layer blobs of store paths")
    layers.add_argument("--compression", choices=COMPRESSIONS, required=True)
    layers.add_argument("--level", type=int, required=True)
    layers.add_argument("--out-dir", default=".")
    layers.add_argument("--layer", nargs="+", action="append", required=True, metavar="STORE_PATH")
    rootfs = commands.add_parser("rootfs", help="write the layer a root filesystem spec describes")
    rootfs.add_argument("--spec", required=True)
    rootfs.add_argument("--compression", choices=COMPRESSIONS, required=True)
    rootfs.add_argument("--level", type=int, required=True)
    rootfs.add_argument("--out-dir", default=".")
    archive = commands.add_parser("archive", help="write an OCI layout directory as one tar")
    archive.add_argument("--layout", action="append", required=True)
    archive.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "layers":
            stats = [
                write_blob(store_layer_entries(paths), args.compression, args.level, args.out_dir)
                for paths in args.layer
            ]
            json.dump(stats, sys.stdout, sort_keys=True)
        elif args.command == "rootfs":
            with open(args.spec) as f:
                spec = RootfsSpec.from_json(json.load(f))
            entries = tar_entries(rootfs_nodes(spec))
            json.dump(write_blob(entries, args.compression, args.level, args.out_dir), sys.stdout, sort_keys=True)
        else:
            build_archive(args.layout, args.output)
    except RootfsError as e:
        print(f"{e.field}\t{e}", file=sys.stderr)
        return 2
    except (TarError, OSError) as e:
        print(f"nix-docker-layer-tool: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
