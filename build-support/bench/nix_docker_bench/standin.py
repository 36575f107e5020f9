"""nixpkgs' way of compressing, measured on the same bytes as ours.

`buildLayeredImage` is `streamLayeredImage | pigz -nT`: one tar stream of the closure through pigz
at zlib's level 6 on every core. The stand-in is GNU tar (faster than nixpkgs' Python stream
writer, so the comparison favours nixpkgs) piped into `pigz -6 -n`. For the bytes, each of our
layers is decompressed and put through `pigz -6 -n` alone: the same tars, the other encoder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path


def pigz() -> str:
    found = shutil.which("pigz")
    if not found:
        raise SystemExit("the benchmark needs pigz: ./pants installs it (Debian package pigz)")
    return found


def tar_through_pigz(paths: list[str]) -> dict[str, float]:
    """Seconds and bytes of `tar -c PATHS | pigz -6 -n`; raises if either command fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "closure.tar.gz")
        start = time.perf_counter()
        subprocess.run(
            ["bash", "-o", "pipefail", "-c", f'tar --sort=name -cPf - "$@" | {pigz()} -6 -n > {out}', "tar", *paths],
            check=True,
        )
        return {"seconds": time.perf_counter() - start, "bytes": out.stat().st_size}


def layer_bytes_against_pigz(archive: Path) -> dict[str, int]:
    """Our gzip layers' bytes, and `pigz -6 -n`'s bytes for the same layer tars."""
    ours = theirs = 0
    with tarfile.open(archive) as tf:
        index = json.load(_member(tf, "index.json"))
        manifest = json.load(_member(tf, _blob(index["manifests"][0]["digest"])))
        for layer in manifest["layers"]:
            assert layer["mediaType"].endswith("+gzip"), f"not a gzip layer: {layer['mediaType']}"
            blob = _member(tf, _blob(layer["digest"])).read()
            ours += len(blob)
            # pigz decompresses too: Python's gzip.decompress copies the rest of its input once per
            # gzip member, which is quadratic in a large layer of 1 MiB members.
            script = f"{pigz()} -dc | {pigz()} -6 -n -c | wc -c"
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], input=blob, capture_output=True, check=True)
            theirs += int(proc.stdout)
    return {"ours": ours, "pigz_6": theirs}


def _blob(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _member(tf: tarfile.TarFile, name: str):
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a file in {tf.name!r}"
    return member
