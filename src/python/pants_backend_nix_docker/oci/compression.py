"""Layer compressors whose output depends only on their pinned wheel, never on the host's zlib.

gzip is written by hand around a raw DEFLATE stream from ISA-L (python-isal): a fixed header
(no name, mtime 0, OS "unknown") and the CRC32/ISIZE trailer. ISA-L is several times faster
than zlib at a similar ratio, and its bytes are the same on every x86-64 CPU with SSE4.2 (all
of them since 2009); zstd (python-zstandard, single-threaded) is deterministic everywhere.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

GZIP = "gzip"
ZSTD = "zstd"
COMPRESSIONS = (GZIP, ZSTD)

MEDIA_TYPES = {
    GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}

# Streaming compressors emit different (equally valid) bytes for the same stream fed in different
# pieces, so the compressor always sees fixed-size blocks: the output is a function of the stream.
COMPRESSOR_BLOCK = 1 << 20

# ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): nothing about this machine or moment.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class BlobStats:
    """What a layer's image config and manifest need to know about it."""

    digest: str  # sha256 of the compressed blob
    size: int
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int


class HashingCompressor:
    """Feeds bytes through a compressor into `out`, hashing both sides on the way."""

    def __init__(self, out: BinaryIO, compression: str, level: int) -> None:
        self._out = out
        self._compression = compression
        self._diff_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self._uncompressed_size = 0
        self._size = 0
        self._pending = bytearray()
        # isal and zstandard compressors share compress()/flush(), not a type.
        self._compressor: Any
        if compression == GZIP:
            from isal import isal_zlib

            self._crc32: Callable[[bytes, int], int] = isal_zlib.crc32
            self._crc = 0
            self._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
            self._emit(_GZIP_HEADER)
        elif compression == ZSTD:
            import zstandard

            params = zstandard.ZstdCompressionParameters.from_level(
                level, threads=0, write_checksum=False, write_content_size=False
            )
            self._compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
        else:
            raise ValueError(f"unknown compression {compression!r}; choose one of {COMPRESSIONS}")

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self._size += len(data)
            self._out.write(data)

    def write(self, data: bytes) -> None:
        self._diff_hash.update(data)
        self._uncompressed_size += len(data)
        if self._compression == GZIP:
            self._crc = self._crc32(data, self._crc)
        view = memoryview(data)
        if self._pending:
            take = COMPRESSOR_BLOCK - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < COMPRESSOR_BLOCK:
                return
            self._emit(self._compressor.compress(bytes(self._pending)))
            self._pending.clear()
        while len(view) >= COMPRESSOR_BLOCK:
            self._emit(self._compressor.compress(view[:COMPRESSOR_BLOCK]))
            view = view[COMPRESSOR_BLOCK:]
        self._pending += view

    def finish(self) -> BlobStats:
        if self._pending:
            self._emit(self._compressor.compress(bytes(self._pending)))
            self._pending.clear()
        self._emit(self._compressor.flush())
        if self._compression == GZIP:
            self._emit(struct.pack("<II", self._crc, self._uncompressed_size & 0xFFFFFFFF))
        return BlobStats(
            digest=f"sha256:{self._blob_hash.hexdigest()}",
            size=self._size,
            diff_id=f"sha256:{self._diff_hash.hexdigest()}",
            uncompressed_size=self._uncompressed_size,
        )
