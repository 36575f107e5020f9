"""A file over 8 GiB (sparse, so it needs no disk) in a layer, read back by GNU tar from a pipe."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from pants_backend_nix_docker.oci import tarball

SIZE = 8 * 1024**3 + 5  # past ustar's 11 octal digits: the size goes in a PAX record
SMALL = b"after the big one"


def test_a_file_over_8_gib_round_trips_through_gnu_tar(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    with open(pkg / "big.img", "wb") as f:
        f.truncate(SIZE - 5)
        f.seek(SIZE - 5)
        f.write(b"-END-")
    (pkg / "small").write_bytes(SMALL)

    # GNU tar extracts every file to its stdout, from the layer as we write it: the big file's
    # bytes, then the small one's. Hash them on the way.
    tar = subprocess.Popen(["tar", "-xOf", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    got: dict[str, Any] = {"digest": hashlib.sha256(), "count": 0, "tail": b""}

    def read() -> None:
        stdout = tar.stdout
        assert stdout is not None
        for block in iter(functools.partial(stdout.read, 1 << 22), b""):
            got["digest"].update(block)
            got["count"] += len(block)
            got["tail"] = (got["tail"] + block)[-64:]

    reader = threading.Thread(target=read)
    reader.start()
    head, written = bytearray(), 0

    def write(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)
        if len(head) < 4096:
            head.extend(chunk[: 4096 - len(head)])
        assert tar.stdin is not None
        tar.stdin.write(chunk)

    try:
        tarball.write_tar(tarball.walk_tree(os.fsencode(pkg), b"pkg"), write)
    finally:
        assert tar.stdin is not None
        tar.stdin.close()
    reader.join()
    assert tar.wait() == 0

    assert b"size=%d" % SIZE in bytes(head)  # the PAX record GNU tar needed
    assert written % 512 == 0 and written >= SIZE + len(SMALL) + 5 * 512
    assert got["count"] == SIZE + len(SMALL) and got["tail"].endswith(b"-END-" + SMALL)
    # The same bytes as the files: the sparse zeros hashed the same way.
    source = hashlib.sha256()
    for name in ("big.img", "small"):
        with open(pkg / name, "rb") as original:
            for block in iter(lambda: original.read(1 << 22), b""):
                source.update(block)
    assert got["digest"].hexdigest() == source.hexdigest()
