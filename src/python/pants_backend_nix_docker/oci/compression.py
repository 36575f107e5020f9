"""Layer codecs whose output depends only on their pinned wheel, never on the host or its CPU.

Three encoders, each chosen because its bytes are a function of the input and the pinned wheel:

- gzip through libdeflate (the `deflate` wheel), the default: the input is cut into fixed 1 MiB
  blocks and each becomes one gzip member (RFC 1952 allows a file of several; every gzip reader,
  Go's included, reads them as one stream), because libdeflate compresses whole buffers only;
  the blocks of a large layer compress on every core at once. Level 5, the default, is smaller
  than `pigz -6` (zlib's level 6) and several times faster per core; level 6 saves another 0.6%
  for about 20% more time.
- gzip through ISA-L (the `isal` wheel), the fast option: a raw DEFLATE stream written by hand
  into one gzip member (no name, mtime 0, OS "unknown"). ISA-L picks code by CPU feature: levels
  0 to 2 give the same bytes on every x86-64 CPU with SSE4.2, level 3 does not (AVX2 and AVX-512
  machines disagree), so it is not offered.
- zstd through python-zstandard, single-threaded: the same bytes everywhere.

`compression_integration_test.py` runs each encoder on emulated CPUs (qemu) and compares bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

GZIP = "gzip"
ZSTD = "zstd"
COMPRESSIONS = (GZIP, ZSTD)

LIBDEFLATE = "libdeflate"
ISAL = "isal"
ZSTANDARD = "zstandard"
ENCODERS = {GZIP: (LIBDEFLATE, ISAL), ZSTD: (ZSTANDARD,)}

# The levels each encoder offers, and the one it uses when none is set.
LEVELS = {LIBDEFLATE: range(1, 13), ISAL: range(0, 3), ZSTANDARD: range(1, 20)}
DEFAULT_LEVELS = {LIBDEFLATE: 5, ISAL: 1, ZSTANDARD: 3}

MEDIA_TYPES = {
    GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}

# Streaming compressors emit different (equally valid) bytes for the same stream fed in different
# pieces, so a compressor always sees fixed-size blocks: the output is a function of the stream.
# For libdeflate the block is also the gzip member, so this size is part of the output format.
COMPRESSOR_BLOCK = 1 << 20

# ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): nothing about this machine or moment.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class CodecError(ValueError):
    """A compression, encoder or level that does not exist."""


@dataclass(frozen=True)
class LayerCodec:
    """How layer tars are compressed: everything besides the tar that decides a blob's bytes."""

    compression: str
    encoder: str
    level: int

    def __post_init__(self) -> None:
        encoders = ENCODERS.get(self.compression)
        if encoders is None:
            raise CodecError(f"unknown compression {self.compression!r}; choose one of {COMPRESSIONS}")
        if self.encoder not in encoders:
            raise CodecError(f"{self.compression} has no encoder {self.encoder!r}; choose one of {encoders}")
        levels = LEVELS[self.encoder]
        if self.level not in levels:
            raise CodecError(
                f"{self.encoder} level {self.level} does not exist; choose one from {levels[0]} to {levels[-1]}"
            )

    @classmethod
    def of(cls, compression: str, encoder: str | None = None, level: int | None = None) -> LayerCodec:
        """A codec with the encoder's defaults filled in."""
        encoder = encoder or ENCODERS.get(compression, ("",))[0]
        return cls(compression, encoder, DEFAULT_LEVELS.get(encoder, 0) if level is None else level)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.compression]

    @property
    def argv(self) -> tuple[str, ...]:
        """The layer tools' arguments that select this codec (see `add_codec_arguments`)."""
        return ("--compression", self.compression, "--encoder", self.encoder, "--level", str(self.level))


def add_codec_arguments(parser: Any) -> None:
    parser.add_argument("--compression", choices=COMPRESSIONS, required=True)
    parser.add_argument("--encoder", choices=sorted({e for es in ENCODERS.values() for e in es}), required=True)
    parser.add_argument("--level", type=int, required=True)


def codec_from_arguments(args: Any) -> LayerCodec:
    return LayerCodec(args.compression, args.encoder, args.level)


@dataclass(frozen=True)
class BlobStats:
    """What a layer's image config and manifest need to know about it."""

    digest: str  # sha256 of the compressed blob
    size: int
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int


class _BlockEncoder:
    """Compresses a stream given as whole blocks, in order."""

    def compress(self, block: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError


def _gzip_member(block: bytes, level: int) -> bytes:
    import deflate

    return deflate.gzip_compress(block, level)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


@functools.lru_cache(maxsize=None)
def _block_pool(workers: int) -> Any:
    """Worker processes for libdeflate blocks, shared by every layer this process writes.
    Processes, not threads: the CPython 3.9 build of the wheel holds the GIL while it compresses.
    A layer's bytes never depend on the number of workers."""
    import multiprocessing

    return multiprocessing.get_context("fork").Pool(workers)


class _Libdeflate(_BlockEncoder):
    # Blocks in flight per worker: enough to keep every worker busy, few enough to bound memory.
    _QUEUE_PER_WORKER = 2

    def __init__(self, level: int, workers: int) -> None:
        self._level = level
        self._workers = workers
        # The first block waits for a second: a layer of one block (most own layers, small
        # store paths) compresses in this process, without waking the workers.
        self._held: bytes | None = None
        self._in_flight: deque[Any] = deque()
        self._blocks = 0

    def compress(self, block: bytes) -> bytes:
        self._blocks += 1
        if self._workers == 1:
            return _gzip_member(block, self._level)
        if self._blocks == 1:
            self._held = block
            return b""
        if self._held is not None:
            self._submit(self._held)
            self._held = None
        self._submit(block)
        done = []
        while len(self._in_flight) > self._workers * self._QUEUE_PER_WORKER:
            done.append(self._in_flight.popleft().get())
        return b"".join(done)

    def _submit(self, block: bytes) -> None:
        self._in_flight.append(_block_pool(self._workers).apply_async(_gzip_member, (block, self._level)))

    def finish(self) -> bytes:
        if self._held is not None:
            return _gzip_member(self._held, self._level)
        if not self._blocks:
            # An empty input is still one gzip member: an empty file is not a gzip stream.
            return _gzip_member(b"", self._level)
        return b"".join(result.get() for result in self._in_flight)


class _Isal(_BlockEncoder):
    def __init__(self, level: int, workers: int) -> None:
        from isal import isal_zlib

        self._crc32: Callable[[bytes, int], int] = isal_zlib.crc32
        self._crc = 0
        self._size = 0
        self._header = _GZIP_HEADER
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)

    def compress(self, block: bytes) -> bytes:
        self._crc = self._crc32(block, self._crc)
        self._size += len(block)
        out, self._header = self._header + self._deflate.compress(block), b""
        return out

    def finish(self) -> bytes:
        trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        return self._header + self._deflate.flush() + trailer


class _Zstandard(_BlockEncoder):
    def __init__(self, level: int, workers: int) -> None:
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=0, write_checksum=False, write_content_size=False
        )
        self._zstd = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def compress(self, block: bytes) -> bytes:
        return self._zstd.compress(block)

    def finish(self) -> bytes:
        return self._zstd.flush()


# Each takes (level, workers); only libdeflate uses more than one worker.
_ENCODER_TYPES: dict[str, Callable[[int, int], _BlockEncoder]] = {
    LIBDEFLATE: _Libdeflate,
    ISAL: _Isal,
    ZSTANDARD: _Zstandard,
}


class HashingCompressor:
    """Feeds bytes through a codec into `out`, hashing both sides on the way. `workers` > 1 lets
    the codec compress blocks in that many processes (see `_block_pool`)."""

    def __init__(self, out: BinaryIO, codec: LayerCodec, workers: int = 1) -> None:
        self._out = out
        self._diff_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self._uncompressed_size = 0
        self._size = 0
        self._pending = bytearray()
        self._encoder = _ENCODER_TYPES[codec.encoder](codec.level, workers)

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self._size += len(data)
            self._out.write(data)

    def write(self, data: bytes) -> None:
        self._diff_hash.update(data)
        self._uncompressed_size += len(data)
        view = memoryview(data)
        if self._pending:
            take = COMPRESSOR_BLOCK - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < COMPRESSOR_BLOCK:
                return
            self._emit(self._encoder.compress(bytes(self._pending)))
            self._pending.clear()
        while len(view) >= COMPRESSOR_BLOCK:
            self._emit(self._encoder.compress(bytes(view[:COMPRESSOR_BLOCK])))
            view = view[COMPRESSOR_BLOCK:]
        self._pending += view

    def finish(self) -> BlobStats:
        if self._pending:
            self._emit(self._encoder.compress(bytes(self._pending)))
            self._pending.clear()
        self._emit(self._encoder.finish())
        return BlobStats(
            digest=f"sha256:{self._blob_hash.hexdigest()}",
            size=self._size,
            diff_id=f"sha256:{self._diff_hash.hexdigest()}",
            uncompressed_size=self._uncompressed_size,
        )
