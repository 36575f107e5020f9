"""Properties of the layer tar writer over generated file trees (hypothesis).

Trees have unicode and non-UTF-8 names, names of up to 255 bytes, deep directories, empty
directories, absolute, relative, dangling and long symlinks, hardlinks, and executable and
read-only files. For each tree:
- Python's tarfile and GNU tar extract it to exactly the input tree (names, kinds, bytes, link
  targets, the executable bit);
- the bytes do not depend on how the tree was made: creation order (so directory listing order),
  hardlinks or copies (so inode numbers and link counts), umask, timezone and locale.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pants_backend_nix_docker.oci import tarball


def member_bytes(tf: tarfile.TarFile, name: str | tarfile.TarInfo) -> bytes:
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a regular file"
    return member.read()


@dataclass(frozen=True)
class File:
    content: bytes
    executable: bool
    readonly: bool


@dataclass(frozen=True)
class Link:
    target: bytes


@dataclass(frozen=True)
class HardLink:
    to: int  # which earlier file (in creation order, modulo their number)


@dataclass(frozen=True)
class Dir:
    children: tuple[tuple[bytes, "Node"], ...]


Node = Union[File, Link, HardLink, Dir]

_ASCII = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="/"), min_size=1, max_size=12
)
_UNICODE = st.text(
    alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)


def _not_utf8(raw: bytes) -> bytes:
    return b"\xff" + bytes(c for c in raw if c not in (0, 0x2F))


names = st.one_of(
    _ASCII.map(str.encode),
    _UNICODE.map(str.encode),
    # Not UTF-8: Linux names are bytes, and Nix store paths may hold such names.
    st.binary(min_size=1, max_size=6).map(_not_utf8),
    # Longer than ustar's 100 bytes, up to the 255 a file name may have.
    st.integers(min_value=101, max_value=255).map(lambda n: (b"long-" * 60)[:n]),
).filter(lambda n: n not in (b".", b".."))

targets = st.one_of(
    st.just(b"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-dangling/bin/x"),
    st.just(b"../up/and/away"),
    _ASCII.map(str.encode),
    st.integers(min_value=101, max_value=1000).map(lambda n: (b"t/" * 500)[:n]),
    _UNICODE.map(lambda s: ("../" + s).encode()),
)

files = st.builds(File, st.binary(max_size=3000) | st.just(70000).map(bytes), st.booleans(), st.booleans())
leaves = st.one_of(files, st.builds(Link, targets), st.builds(HardLink, st.integers(min_value=0, max_value=50)))


def _dir_of(children: dict[bytes, Any]) -> Dir:
    return Dir(tuple(sorted(children.items())))


def _dirs(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(names, children, max_size=5).map(_dir_of)


trees = st.recursive(leaves, _dirs, max_leaves=25).map(
    lambda node: node if isinstance(node, Dir) else Dir(((b"only", node),))
)


def materialise(root: bytes, tree: Dir, *, reverse: bool = False, hardlinks: bool = True) -> None:
    """Make `tree` at `root`. `reverse` creates siblings in the opposite order; without
    `hardlinks`, hardlinks become copies. A hardlink names the same file either way: files are
    numbered in the tree's own order, and links are made once every file exists."""
    files: list[bytes] = []
    links: list[tuple[bytes, int]] = []

    def plan(path: bytes, node: Node) -> None:
        if isinstance(node, Dir):
            for name, child in node.children:
                plan(os.path.join(path, name), child)
        elif isinstance(node, File):
            files.append(path)

    def make(path: bytes, node: Node) -> None:
        if isinstance(node, Dir):
            os.mkdir(path)
            for name, child in reversed(node.children) if reverse else node.children:
                make(os.path.join(path, name), child)
        elif isinstance(node, Link):
            os.symlink(node.target, path)
        elif isinstance(node, HardLink) and files:
            links.append((path, node.to % len(files)))
        else:
            file = node if isinstance(node, File) else File(b"no file to link to", False, False)
            with open(path, "wb") as f:
                f.write(file.content)
            os.chmod(
                path, (0o555 if file.executable else 0o444) if file.readonly else (0o755 if file.executable else 0o644)
            )

    plan(root, tree)
    make(root, tree)
    for path, index in links:
        os.link(files[index], path) if hardlinks else shutil.copy2(files[index], path)


def expected(root: bytes, prefix: bytes) -> dict[bytes, tuple]:
    """What the layer must hold for the tree at `root`: name -> (kind, mode, bytes or target)."""
    out: dict[bytes, tuple] = {prefix: ("dir", 0o555, b"")}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = prefix if rel == b"." else prefix + b"/" + rel
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            if stat.S_ISLNK(st_.st_mode):
                out[base + b"/" + name] = ("link", 0o777, os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                out[base + b"/" + name] = ("dir", 0o555, b"")
            else:
                with open(path, "rb") as f:
                    out[base + b"/" + name] = ("file", 0o555 if st_.st_mode & stat.S_IXUSR else 0o444, f.read())
    return out


def layer(root: bytes) -> bytes:
    out = io.BytesIO()
    tarball.write_tar_file(tarball.walk_tree(root, b"pkg"), out)
    return out.getvalue()


def python_tarfile_view(data: bytes) -> dict[bytes, tuple]:
    found: dict[bytes, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as tf:
        for member in tf.getmembers():
            name = os.fsencode(member.name)
            if member.isdir():
                found[name] = ("dir", member.mode, b"")
            elif member.issym():
                found[name] = ("link", member.mode, os.fsencode(member.linkname))
            else:
                extracted = tf.extractfile(member)
                assert extracted is not None
                found[name] = ("file", member.mode, extracted.read())
            assert (member.uid, member.gid, member.mtime) == (0, 0, 1)
    return found


@contextmanager
def scratch() -> Iterator[bytes]:
    directory = tempfile.mkdtemp()
    try:
        yield os.fsencode(directory)
    finally:
        for dirpath, dirnames, _ in os.walk(directory):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
        shutil.rmtree(directory)


@contextmanager
def host_quirks() -> Iterator[None]:
    """Another umask, timezone and locale while a tree is made and written."""
    saved = {k: os.environ.get(k) for k in ("TZ", "LC_ALL", "LANG")}
    old_umask = os.umask(0o077)
    os.environ.update(TZ="Pacific/Chatham", LC_ALL="C", LANG="C")
    time.tzset()
    try:
        yield
    finally:
        os.umask(old_umask)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        time.tzset()


TREES_TRIED = 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trees)
def _layers_property(tree: Dir) -> None:
    global TREES_TRIED
    TREES_TRIED += 1
    with scratch() as tmp:
        first, second, unpacked = (os.path.join(tmp, n) for n in (b"a", b"b", b"out"))
        materialise(first, tree)
        want = expected(first, b"pkg")
        data = layer(first)
        assert python_tarfile_view(data) == want

        # GNU tar agrees, byte for byte and mode for mode.
        os.mkdir(unpacked)
        subprocess.run(["tar", "-xf", "-", "-C", unpacked], input=data, check=True, capture_output=True)
        assert expected(os.path.join(unpacked, b"pkg"), b"pkg") == want

        # Made the other way round, without hardlinks, under another umask, timezone and locale.
        with host_quirks():
            materialise(second, tree, reverse=True, hardlinks=False)
            assert layer(second) == data


def test_layers_extract_to_their_tree_and_do_not_depend_on_the_host() -> None:
    global TREES_TRIED
    TREES_TRIED = 0
    _layers_property()  # Hypothesis runs every example, and fails with the smallest failing tree
    print(
        f"FIGURE: tar property: {TREES_TRIED} generated trees written, extracted twice and rebuilt under other host "
        "settings"
    )
    assert TREES_TRIED >= 80


ARCHIVES_TRIED = 0


def _blob_name(raw: bytes) -> bytes:
    return b"blobs/sha256/" + raw.hex().encode()


blob_names = st.binary(min_size=32, max_size=32).map(_blob_name)
layouts = st.dictionaries(
    st.one_of(blob_names, st.sampled_from([b"index.json", b"manifest.json", b"oci-layout"])),
    st.binary(max_size=2000),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(layouts, st.randoms(use_true_random=False))
def _archive_property(files: dict, rng) -> None:
    """The image archive: the OCI layout that several directories (the image's own files, the
    shared store blobs) make together, the same bytes however the files are spread over them."""
    from pants_backend_nix_docker.oci.archive import build_archive

    global ARCHIVES_TRIED
    ARCHIVES_TRIED += 1
    with scratch() as tmp:
        archives = []
        for attempt in range(2):
            dirs = [os.path.join(tmp, b"%d-%d" % (attempt, i)) for i in range(3)]
            names = sorted(files)
            rng.shuffle(names)
            for name in names:
                path = os.path.join(rng.choice(dirs), name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(files[name])
            out = os.path.join(tmp, b"image-%d.tar" % attempt)
            build_archive([os.fsdecode(d) for d in dirs], os.fsdecode(out))
            with open(out, "rb") as f:
                archives.append(f.read())
        assert archives[0] == archives[1]
        with tarfile.open(fileobj=io.BytesIO(archives[0])) as tf:
            got = {os.fsencode(m.name): member_bytes(tf, m) for m in tf.getmembers() if m.isfile()}
        assert got == files


def test_an_archive_is_the_union_of_its_layout_dirs_however_they_are_split() -> None:
    global ARCHIVES_TRIED
    ARCHIVES_TRIED = 0
    _archive_property()
    print(
        f"FIGURE: archive property: {ARCHIVES_TRIED} generated layouts split over directories, same archive bytes each "
        "time"
    )
    assert ARCHIVES_TRIED >= 60
