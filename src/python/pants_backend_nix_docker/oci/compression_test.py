from __future__ import annotations

import gzip
import hashlib
import io

import pytest
import zstandard

from pants_backend_nix_docker.oci.compression import GZIP, ZSTD, BlobStats, HashingCompressor


def compress(data: bytes, compression: str, level: int) -> tuple[bytes, BlobStats]:
    out = io.BytesIO()
    c = HashingCompressor(out, compression, level)
    for i in range(0, len(data), 7777):
        c.write(data[i : i + 7777])
    stats = c.finish()
    return out.getvalue(), stats


# Over two compressor blocks, so block boundaries are exercised.
DATA = b"".join(b"line %d of a layer, " % i for i in range(150000))


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_gzip_round_trips_and_hashes_both_sides(level: int) -> None:
    blob, stats = compress(DATA, GZIP, level)
    assert gzip.decompress(blob) == DATA
    assert stats.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert stats.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert (stats.size, stats.uncompressed_size) == (len(blob), len(DATA))


def test_gzip_header_names_no_file_time_or_os() -> None:
    blob, _ = compress(DATA, GZIP, 1)
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_zstd_round_trips() -> None:
    blob, stats = compress(DATA, ZSTD, 3)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == DATA
    assert stats.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize("compression,level", [(GZIP, 1), (ZSTD, 3)])
def test_output_does_not_depend_on_how_input_is_chunked(compression: str, level: int) -> None:
    whole = io.BytesIO()
    c = HashingCompressor(whole, compression, level)
    c.write(DATA)
    c.finish()
    assert compress(DATA, compression, level)[0] == whole.getvalue()


def test_unknown_compression_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        HashingCompressor(io.BytesIO(), "lz4", 1)
