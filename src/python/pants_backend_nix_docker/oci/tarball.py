"""Deterministic tar streams.

Every byte of a layer is decided here, from the files alone: entries in sorted order with parents
first, one fixed mtime, owner 0:0 named root, hardlinks written as regular files (so
`nix-store --optimise` changes nothing), and a header encoder of our own rather than `tarfile`'s,
whose output is not promised to stay the same across Python versions.

Names and link targets that do not fit the ustar fields get a PAX extended header, as do sizes of
8 GiB and more; names that are not UTF-8 are kept byte for byte (PAX `hdrcharset=BINARY`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator

BLOCK = 512
# Nix gives every store file mtime 1; we use it for every entry so layers and store agree.
FIXED_MTIME = 1
_USTAR_MAX_SIZE = 0o77777777777  # 11 octal digits
_READ_CHUNK = 1 << 20

REGULAR = b"0"
SYMLINK = b"2"
DIRECTORY = b"5"
_PAX = b"x"


@dataclass(frozen=True)
class TarEntry:
    """One member of a layer. A regular entry's bytes are `content`, or else the file `source`."""

    name: bytes  # relative, no leading "/" or "./"; directories have no trailing "/"
    kind: bytes
    mode: int
    size: int = 0
    linkname: bytes = b""
    source: bytes | None = None
    content: bytes | None = None
    uid: int = 0
    gid: int = 0
    uname: bytes = b"root"
    gname: bytes = b"root"


class TarError(Exception):
    """A tree cannot be written as a layer (for example, a file changed while being read)."""


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so find the fixed point.
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


def _ustar_header(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    kind: bytes,
    linkname: bytes,
    uname: bytes,
    gname: bytes,
) -> bytes:
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(FIXED_MTIME, 12),
            b" " * 8,  # checksum placeholder, counted as spaces
            kind,
            linkname.ljust(100, b"\0"),
            b"ustar\x0000",
            uname.ljust(32, b"\0"),
            gname.ljust(32, b"\0"),
            _octal(0, 8),
            _octal(0, 8),
            b"\0" * 155,
            b"\0" * 12,
        )
    )
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def header_bytes(entry: TarEntry) -> bytes:
    """The header block(s) of an entry: a PAX extended header first when ustar cannot hold it."""
    name = entry.name + b"/" if entry.kind == DIRECTORY else entry.name
    records = []
    if len(name) > 100 or not name.isascii():
        records.append((b"path", name))
    if len(entry.linkname) > 100 or not entry.linkname.isascii():
        records.append((b"linkpath", entry.linkname))
    if entry.size > _USTAR_MAX_SIZE:
        records.append((b"size", b"%d" % entry.size))
    if not all(_is_utf8(value) for _, value in records):
        records.insert(0, (b"hdrcharset", b"BINARY"))
    blocks = []
    if records:
        payload = b"".join(_pax_record(k, v) for k, v in sorted(records))
        # The name GNU tar and Python give pax headers; readers that skip them see a plain file.
        pax_name = b"././@PaxHeader"
        blocks.append(_ustar_header(pax_name, 0o644, 0, 0, len(payload), _PAX, b"", b"root", b"root"))
        blocks.append(_pad(payload))
    blocks.append(
        _ustar_header(
            _ascii_prefix(name, 100),
            entry.mode,
            entry.uid,
            entry.gid,
            min(entry.size, _USTAR_MAX_SIZE) if entry.kind == REGULAR else 0,
            entry.kind,
            _ascii_prefix(entry.linkname, 100),
            entry.uname,
            entry.gname,
        )
    )
    return b"".join(blocks)


def _ascii_prefix(value: bytes, limit: int) -> bytes:
    """What the ustar field holds when a PAX record carries the real value."""
    if len(value) <= limit and value.isascii():
        return value
    return bytes(b if b < 0x80 else 0x5F for b in value[:limit])


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def walk_tree(root: bytes, name: bytes) -> Iterator[TarEntry]:
    """Entries for `root` (a file, directory or symlink) and everything below it, named `name/...`.

    Modes follow the NAR model Nix stores paths in: only the executable bit of a file is content
    (0555 or 0444), directories are 0555. That makes the entries a function of the store path's
    NAR, whatever the host's umask, inode numbers or hardlink state.
    """
    st = os.lstat(root)
    if stat.S_ISLNK(st.st_mode):
        yield TarEntry(name=name, kind=SYMLINK, mode=0o777, linkname=os.readlink(root))
    elif stat.S_ISDIR(st.st_mode):
        yield TarEntry(name=name, kind=DIRECTORY, mode=0o555)
        for child in sorted(os.listdir(root)):
            yield from walk_tree(os.path.join(root, child), name + b"/" + child)
    elif stat.S_ISREG(st.st_mode):
        mode = 0o555 if st.st_mode & stat.S_IXUSR else 0o444
        yield TarEntry(name=name, kind=REGULAR, mode=mode, size=st.st_size, source=root)
    else:
        raise TarError(
            f"{os.fsdecode(root)} is neither a file, a directory nor a symlink; a Nix store path "
            "cannot contain it, so the store may be corrupt (try `nix-store --verify --check-contents`)."
        )


def store_layer_entries(store_paths: Iterable[str]) -> Iterator[TarEntry]:
    """The entries of a layer holding these store paths: `nix/` and `nix/store/` first, 0755."""
    yield TarEntry(name=b"nix", kind=DIRECTORY, mode=0o755)
    yield TarEntry(name=b"nix/store", kind=DIRECTORY, mode=0o755)
    for path in sorted(set(store_paths)):
        encoded = os.fsencode(path)
        if not encoded.startswith(b"/nix/store/") or encoded.count(b"/") != 3:
            raise TarError(f"{path!r} is not a top-level path in /nix/store.")
        if not os.path.lexists(encoded):
            raise TarError(
                f"{path} is not in the Nix store: it was garbage-collected after the image's closure "
                "was read. Build again (Nix realises it again); if a collector runs during builds, "
                "keep the packages alive with GC roots."
            )
        try:
            yield from walk_tree(encoded, encoded.lstrip(b"/"))
        except FileNotFoundError as e:
            raise TarError(
                f"{path} disappeared while its layer was written ({e}): the Nix store was garbage-collected "
                "underneath. Build again."
            )


def write_tar(entries: Iterable[TarEntry], write: Callable[[bytes], object]) -> None:
    """Serialise entries with `write`, buffering small pieces into large writes."""
    buffer = bytearray()
    for entry in entries:
        buffer += header_bytes(entry)
        if entry.kind != REGULAR:
            continue
        if entry.content is not None:
            buffer += entry.content + b"\0" * (-len(entry.content) % BLOCK)
            continue
        remaining = entry.size
        assert entry.source is not None
        with open(entry.source, "rb") as f:
            while remaining > 0:
                chunk = f.read(min(_READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                if buffer:
                    buffer += chunk
                    if len(buffer) >= _READ_CHUNK:
                        write(bytes(buffer))
                        buffer.clear()
                else:
                    write(chunk)
            if remaining or f.read(1):
                raise TarError(
                    f"{os.fsdecode(entry.source)} changed size while it was being read; store "
                    "paths are immutable, so something is modifying the Nix store."
                )
        buffer += b"\0" * (-entry.size % BLOCK)
        if len(buffer) >= _READ_CHUNK:
            write(bytes(buffer))
            buffer.clear()
    buffer += b"\0" * (2 * BLOCK)
    write(bytes(buffer))


def write_tar_file(entries: Iterable[TarEntry], out: BinaryIO) -> None:
    write_tar(entries, out.write)
