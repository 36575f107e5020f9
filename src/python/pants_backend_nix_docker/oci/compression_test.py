from __future__ import annotations

import gzip
import hashlib
import io
import zlib

import pytest
import zstandard

from pants_backend_nix_docker.oci.compression import (
    COMPRESSOR_BLOCK,
    GZIP,
    ISAL,
    LIBDEFLATE,
    ZSTANDARD,
    ZSTD,
    BlobStats,
    CodecError,
    HashingCompressor,
    LayerCodec,
)

LIBDEFLATE_6 = LayerCodec(GZIP, LIBDEFLATE, 6)
ISAL_1 = LayerCodec(GZIP, ISAL, 1)
ZSTD_3 = LayerCodec(ZSTD, ZSTANDARD, 3)


def compress(data: bytes, codec: LayerCodec, piece: int = 7777) -> tuple[bytes, BlobStats]:
    out = io.BytesIO()
    c = HashingCompressor(out, codec)
    for i in range(0, len(data), piece):
        c.write(data[i : i + piece])
    stats = c.finish()
    return out.getvalue(), stats


# Over two compressor blocks, so block boundaries are exercised.
DATA = b"".join(b"line %d of a layer, " % i for i in range(150000))


def gzip_members(blob: bytes) -> int:
    members, rest = 0, blob
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(rest)
        assert d.eof, "a gzip member is cut short"
        rest, members = d.unused_data, members + 1
    return members


@pytest.mark.parametrize(
    "codec", [*(LayerCodec(GZIP, LIBDEFLATE, n) for n in (1, 6, 12)), *(LayerCodec(GZIP, ISAL, n) for n in (0, 1, 2))]
)
def test_gzip_round_trips_and_hashes_both_sides(codec: LayerCodec) -> None:
    blob, stats = compress(DATA, codec)
    assert gzip.decompress(blob) == DATA
    assert stats.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert stats.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert (stats.size, stats.uncompressed_size) == (len(blob), len(DATA))


def test_libdeflate_writes_one_gzip_member_per_block() -> None:
    blob, _ = compress(DATA, LIBDEFLATE_6)
    assert gzip_members(blob) == -(-len(DATA) // COMPRESSOR_BLOCK) == 4


def test_isal_writes_one_gzip_member() -> None:
    assert gzip_members(compress(DATA, ISAL_1)[0]) == 1


@pytest.mark.parametrize("codec", [LIBDEFLATE_6, ISAL_1, ZSTD_3])
def test_empty_input_is_still_a_valid_stream(codec: LayerCodec) -> None:
    blob, stats = compress(b"", codec)
    assert blob and stats.uncompressed_size == 0
    if codec.compression == GZIP:
        assert gzip.decompress(blob) == b""
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == b""


@pytest.mark.parametrize("codec", [LIBDEFLATE_6, ISAL_1])
def test_gzip_headers_name_no_file_time_or_os(codec: LayerCodec) -> None:
    blob, _ = compress(DATA, codec)
    # ID1 ID2 CM FLG, MTIME 0, XFL (any), OS 255: nothing of this machine or moment.
    assert blob[:4] == b"\x1f\x8b\x08\x00" and blob[4:8] == b"\0\0\0\0" and blob[9] == 0xFF


def test_zstd_round_trips() -> None:
    blob, stats = compress(DATA, ZSTD_3)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == DATA
    assert stats.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize("codec", [LIBDEFLATE_6, ISAL_1, ZSTD_3])
def test_output_does_not_depend_on_how_input_is_chunked(codec: LayerCodec) -> None:
    whole = compress(DATA, codec, piece=len(DATA))[0]
    assert compress(DATA, codec, piece=7777)[0] == whole
    assert compress(DATA, codec, piece=COMPRESSOR_BLOCK + 1)[0] == whole


def test_the_default_libdeflate_level_is_smaller_than_zlib_6_on_the_same_bytes() -> None:
    # What the default promises against `gzip -6`/`pigz -6` (zlib level 6), checked on text.
    text = b"".join(b"%d: the quick brown fox %x jumps over %o lazy dogs\n" % (i, i * 7919, i) for i in range(60000))
    assert len(compress(text, LayerCodec.of(GZIP))[0]) < len(zlib.compress(text, 6))


def test_codec_defaults_and_argv() -> None:
    assert LayerCodec.of(GZIP) == LayerCodec(GZIP, LIBDEFLATE, 5)
    assert LayerCodec.of(GZIP, ISAL) == ISAL_1
    assert LayerCodec.of(ZSTD) == ZSTD_3
    assert LayerCodec.of(GZIP, LIBDEFLATE, 9).argv == (
        "--compression",
        "gzip",
        "--encoder",
        "libdeflate",
        "--level",
        "9",
    )
    assert ZSTD_3.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"


@pytest.mark.parametrize(
    "compression, encoder, level, message",
    [
        ("lz4", LIBDEFLATE, 6, "unknown compression 'lz4'; choose one of ('gzip', 'zstd')"),
        (GZIP, ZSTANDARD, 3, "gzip has no encoder 'zstandard'; choose one of ('libdeflate', 'isal')"),
        (GZIP, ISAL, 3, "isal level 3 does not exist; choose one from 0 to 2"),
        (GZIP, LIBDEFLATE, 0, "libdeflate level 0 does not exist; choose one from 1 to 12"),
        (ZSTD, ZSTANDARD, 20, "zstandard level 20 does not exist; choose one from 1 to 19"),
    ],
)
def test_codecs_that_do_not_exist_are_refused(compression: str, encoder: str, level: int, message: str) -> None:
    with pytest.raises(CodecError) as e:
        LayerCodec(compression, encoder, level)
    assert str(e.value) == message
