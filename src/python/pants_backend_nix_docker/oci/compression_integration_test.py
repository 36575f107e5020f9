"""The layer codecs give the same bytes on CPUs without the features this machine has.

Each encoder is run natively and under qemu's user-mode emulator with older CPU models, where
the libraries' runtime dispatch takes their generic or older code paths: `qemu64` (the x86-64
baseline: SSE2, no SSE4.2, AVX or PCLMULQDQ), `Nehalem` (SSE4.2, no AVX) and `Haswell` (AVX2).
The machine itself is whatever CI runs on (here: AVX-512). libdeflate and zstandard must agree
everywhere; ISA-L levels 0 to 2 on every CPU with SSE4.2 (and not without it: which is how the
test knows the emulation reaches other code paths).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

from pants_backend_nix_docker.oci.compression import GZIP, ISAL, LIBDEFLATE, ZSTANDARD, ZSTD, LayerCodec

# Runs in the emulated interpreter: compresses a fixed mix of text and incompressible bytes with
# each codec and prints the sha256 of every blob.
SCRIPT = r"""
import hashlib, io, json, random, sys
from pants_backend_nix_docker.oci.compression import HashingCompressor, LayerCodec
rng = random.Random(7)
text = b"".join(b"%d %s\n" % (i, rng.choice([b"libfoo.so.1", b"def main():", b"/nix/store/x"])) for i in range(90000))
data = text + rng.randbytes(300000) + text[:400000]
digests = {}
for compression, encoder, level in json.loads(sys.argv[1]):
    compressor = HashingCompressor(io.BytesIO(), LayerCodec(compression, encoder, level))
    compressor.write(data)
    digests[f"{encoder} {level}"] = compressor.finish().digest
print(json.dumps(digests))
"""

PORTABLE = (*((GZIP, LIBDEFLATE, level) for level in (1, 5, 6, 9, 12)), (ZSTD, ZSTANDARD, 3), (ZSTD, ZSTANDARD, 19))
SSE42 = tuple((GZIP, ISAL, level) for level in (0, 1, 2))


def qemu() -> str:
    found = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
    assert found, "qemu-x86_64-static is missing: ./pants installs it (Debian package qemu-user-static)"
    return found


@functools.lru_cache(maxsize=None)  # the native run is the reference of several tests
def digests(codecs: tuple[tuple[str, str, int], ...], cpu: str | None) -> dict[str, str]:
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "PYTHONNOUSERSITE": "1", "PATH": "/usr/bin:/bin"}
    prefix = [qemu(), "-cpu", cpu] if cpu else []
    out = subprocess.run(
        [*prefix, sys.executable, "-c", SCRIPT, json.dumps(codecs)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_emulated_cpu_reaches_other_code_paths() -> None:
    # If qemu ignored -cpu, every comparison here would compare this machine with itself. ISA-L
    # shows it does not: without SSE4.2 its hashing takes another path and its bytes change.
    assert digests(SSE42, "qemu64") != digests(SSE42, None)


@pytest.mark.parametrize("cpu", ["qemu64", "Nehalem", "Haswell"])
def test_libdeflate_and_zstd_bytes_do_not_depend_on_the_cpu(cpu: str) -> None:
    assert [LayerCodec(*c) for c in PORTABLE]  # every codec exists
    assert digests(PORTABLE, cpu) == digests(PORTABLE, None)


@pytest.mark.parametrize("cpu", ["Nehalem", "Haswell"])
def test_isal_bytes_do_not_depend_on_the_cpu_given_sse42(cpu: str) -> None:
    assert digests(SSE42, cpu) == digests(SSE42, None)


# The same input's blobs, pinned when the default became libdeflate 6 (0.2.0) and then 5 (0.3.0):
# over 1 MiB, so the block size and the gzip members are pinned too. A change here changes every
# image: see the golden-digest test's note.
GOLDEN = {
    "libdeflate 5": "sha256:7655a846743b697d8fe745ad26ff844166dd52d7fb3908ecf52dd3ae99d9f2e3",
    "libdeflate 6": "sha256:a4984df6db1f872891b9a5454a494bde326e50e438fcef27bf201f6bd0155e68",
    "isal 1": "sha256:120ea32a5cbc5cded5ff115517855fae2135e4da972e8ef308af4a71c9640278",
    "zstandard 3": "sha256:d47285fe19691789c8a92fdbd6c6be1b536e87d3cd6593e903a12ddc29b670da",
}


def test_blobs_of_several_blocks_have_their_golden_digests() -> None:
    codecs = ((GZIP, LIBDEFLATE, 5), (GZIP, LIBDEFLATE, 6), (GZIP, ISAL, 1), (ZSTD, ZSTANDARD, 3))
    assert digests(codecs, None) == GOLDEN
