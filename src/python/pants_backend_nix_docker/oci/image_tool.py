"""The image tool: what Pants processes run to read base images and to push images.

    image_tool base --input PATH [--pin sha256:...] --output DIR
        reads a base image (OCI layout, OCI archive or docker archive), checks every layer against
        its digest, writes the layers to DIR/blobs/sha256/ and what the image is to DIR/base.json;
        an unusable image exits 2 with the reason on stderr
    image_tool push --registry HOST --what TEXT -- SKOPEO ARGS...
        runs skopeo (its output passes through) and, when it fails, says in plain words what
        went wrong and how to fix it

A PEX of its own, apart from the layer tool: a change here must not change any layer's cache key.
Only the standard library, the pinned wheels and the sibling modules are imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Sequence

from pants_backend_nix_docker.oci.base_image import BaseImageError, copy_layers, read_base_image, with_store_paths
from pants_backend_nix_docker.oci.registries import explain_failure


def read_base(path: str, pin: str | None, out_dir: str) -> None:
    scratch = os.path.join(out_dir, ".unpacked")
    info, paths = read_base_image(path, pin, scratch)
    info = with_store_paths(info, paths)
    copy_layers(info, paths, out_dir, move=not os.path.isdir(path))
    shutil.rmtree(scratch, ignore_errors=True)
    with open(os.path.join(out_dir, "base.json"), "w") as f:
        json.dump(info.to_json(), f, sort_keys=True)


def push(registry: str, what: str, skopeo_argv: Sequence[str]) -> int:
    proc = subprocess.Popen(list(skopeo_argv), stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:
        sys.stderr.write(line)
        said.append(line)
    code = proc.wait()
    if code != 0:
        explained = explain_failure("".join(said), registry)
        if explained:
            problem, fix = explained
            print(f"\nCould not publish {what}: {problem}. Fix: {fix}.", file=sys.stderr)
        else:
            print(
                f"\nCould not publish {what}: skopeo failed with exit code {code} (its message is above).",
                file=sys.stderr,
            )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nix-docker-image-tool")
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("base", help="read a base image's layers and config")
    base.add_argument("--input", required=True)
    base.add_argument("--pin")
    base.add_argument("--output", required=True)
    push_parser = commands.add_parser("push", help="run skopeo copy; explain a failure")
    push_parser.add_argument("--registry", required=True)
    push_parser.add_argument("--what", required=True)
    push_parser.add_argument("skopeo_argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "push":
        skopeo_argv = args.skopeo_argv[1:] if args.skopeo_argv[:1] == ["--"] else args.skopeo_argv
        return push(args.registry, args.what, skopeo_argv)
    try:
        read_base(args.input, args.pin, args.output)
    except BaseImageError as e:
        print(str(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
