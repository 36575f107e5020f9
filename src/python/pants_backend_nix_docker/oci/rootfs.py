"""The image-specific root filesystem: what an image holds outside /nix/store.

A `RootfsSpec` says what the rule knows (users, directories with owners, links into store paths);
`rootfs_entries` turns it into tar entries, reading the store only to mirror package
sub-directories into `/` the way nixpkgs' `buildEnv` `pathsToLink` does. It runs inside the layer
tool, so a conflict between two packages is found where the files are, and reported with the
field that asked for it.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pants_backend_nix_docker.oci.tarball import DIRECTORY, REGULAR, SYMLINK, TarEntry


class RootfsError(Exception):
    """A root filesystem that cannot be built as declared; `field` is the target field to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One path of the root filesystem (absolute, normalised)."""

    path: str
    kind: str  # "dir", "file", "symlink"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    content: bytes = b""
    target: str = ""
    source: str | None = None  # a file whose bytes a "file" node carries
    field: str = ""  # the target field that asked for it, for conflict messages


@dataclass(frozen=True)
class LinkTree:
    """Mirror `<package><subpath>` into `<subpath>` with symlinks, like buildEnv's pathsToLink."""

    package: str
    subpath: str
    field: str


@dataclass(frozen=True)
class FirstOf:
    """A symlink to the first candidate that exists in the store (`/usr/bin/env`, `/bin/sh`)."""

    path: str
    candidates: tuple[str, ...]
    field: str
    missing_hint: str


def _with(fields: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A JSON object's fields with some replaced by their typed values."""
    return {**fields, **changes}


@dataclass(frozen=True)
class RootfsSpec:
    nodes: tuple[Node, ...] = ()
    link_trees: tuple[LinkTree, ...] = ()
    first_of: tuple[FirstOf, ...] = ()
    required_files: tuple[tuple[str, str, str], ...] = ()  # (store file, field, hint)

    def is_empty(self) -> bool:
        return not (self.nodes or self.link_trees or self.first_of)

    def reads_store(self) -> bool:
        """Whether writing the layer looks into the Nix store (not only at the spec's files)."""
        return bool(self.link_trees or self.first_of or self.required_files)

    def with_file_contents(self, files: Mapping[str, bytes]) -> RootfsSpec:
        """The spec with each file node's `source` replaced by its bytes from `files` (by source
        path): the same layer, written from memory instead of from files on disk."""
        nodes = (
            dataclasses.replace(n, source=None, content=files[n.source]) if n.source is not None else n
            for n in self.nodes
        )
        return dataclasses.replace(self, nodes=tuple(nodes))

    def store_links(self) -> list[tuple[str, str]]:
        """(what in the image, where it points) for everything that points into the store. The
        layer tool links the first candidate of a FirstOf that has the file; each may be it."""
        links = [(n.path, n.target) for n in self.nodes if n.kind == "symlink"]
        links += [(f"{t.subpath}/* ({t.field})", t.package) for t in self.link_trees]
        links += [(f"{f.path} candidate ({f.field})", candidate) for f in self.first_of for candidate in f.candidates]
        return links

    def to_json(self) -> dict:
        return {
            "nodes": [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in n.__dict__.items()} for n in self.nodes],
            "link_trees": [t.__dict__ for t in self.link_trees],
            "first_of": [{**f.__dict__, "candidates": list(f.candidates)} for f in self.first_of],
            "required_files": [list(r) for r in self.required_files],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RootfsSpec":
        return cls(
            nodes=tuple(Node(**_with(n, content=bytes.fromhex(n["content"]))) for n in data["nodes"]),
            link_trees=tuple(LinkTree(**t) for t in data["link_trees"]),
            first_of=tuple(FirstOf(**_with(f, candidates=tuple(f["candidates"]))) for f in data["first_of"]),
            required_files=tuple(tuple(r) for r in data["required_files"]),  # type: ignore[misc]
        )


def check_image_path(path: str, field: str) -> str:
    """An absolute, normalised path inside the image that is not `/` and not under /nix."""
    if not path.startswith("/"):
        raise RootfsError(field, f"{path!r} is not an absolute path (paths in the image start with '/', like '/data')")
    if path == "/":
        raise RootfsError(field, "'/' itself cannot be declared")
    if "\0" in path or posixpath.normpath(path) != path.rstrip("/") or ".." in path.split("/"):
        raise RootfsError(field, f"{path!r} is not a normalised absolute path (no '..', '.' or '//')")
    path = path.rstrip("/")
    if path == "/nix" or path.startswith("/nix/"):
        raise RootfsError(field, f"{path!r} is under /nix, which holds the store and nothing else")
    return path


def passwd_nodes(users: Sequence[User], groups: Mapping[str, int]) -> list[Node]:
    """/etc/passwd, /etc/group and /etc/nsswitch.conf for root, `users` and `groups`."""
    passwd = ["root:x:0:0:root:/root:/bin/sh"]
    passwd += [f"{u.name}:x:{u.uid}:{u.gid}::{u.home}:{u.shell}" for u in sorted(users, key=lambda u: u.uid)]
    passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/bin/false")
    members: dict[str, list[str]] = {}
    for u in users:
        for g in u.groups:
            members.setdefault(g, []).append(u.name)
    all_groups = {"root": 0, **groups, "nogroup": 65534}
    group = [
        f"{name}:x:{gid}:{','.join(sorted(members.get(name, [])))}"
        for name, gid in sorted(all_groups.items(), key=lambda kv: kv[1])
    ]
    nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
    return [
        Node("/etc/passwd", "file", 0o644, content=("\n".join(passwd) + "\n").encode(), field="users"),
        Node("/etc/group", "file", 0o644, content=("\n".join(group) + "\n").encode(), field="users"),
        Node("/etc/nsswitch.conf", "file", 0o644, content=nsswitch.encode(), field="users"),
    ]


def _mirror(spec_tree: LinkTree, nodes: dict[str, Node], owners: dict[str, str]) -> None:
    base = spec_tree.package + spec_tree.subpath
    if not os.path.isdir(base) or os.path.islink(base):
        return  # buildEnv skips packages without the sub-directory

    def visit(src: str, dest: str) -> None:
        for name in sorted(os.listdir(src)):
            s, d = os.path.join(src, name), posixpath.join(dest, name)
            existing = nodes.get(d)
            if os.path.isdir(s) and not os.path.islink(s):
                if existing is None:
                    nodes[d] = Node(d, "dir", field=spec_tree.field)
                elif existing.kind != "dir":
                    _conflict(spec_tree.field, d, owners.get(d, existing.field), s)
                owners.setdefault(d, s)
                visit(s, d)
            elif existing is None:
                nodes[d] = Node(d, "symlink", 0o777, target=s, field=spec_tree.field)
                owners[d] = s
            elif not (existing.kind == "symlink" and os.path.realpath(existing.target) == os.path.realpath(s)):
                _conflict(spec_tree.field, d, owners.get(d, existing.field), s)

    if spec_tree.subpath not in nodes:
        nodes[spec_tree.subpath] = Node(spec_tree.subpath, "dir", field=spec_tree.field)
    visit(base, spec_tree.subpath)


def _conflict(field: str, path: str, first: str, second: str) -> None:
    raise RootfsError(
        field,
        f"two packages both provide {path}: {first} and {second}. Drop one of the packages, or "
        f"link a narrower path",
    )


def rootfs_nodes(spec: RootfsSpec) -> list[Node]:
    for store_file, field_name, hint in spec.required_files:
        if not os.path.isfile(store_file):
            raise RootfsError(field_name, f"{store_file} does not exist. {hint}")
    nodes: dict[str, Node] = {}
    owners: dict[str, str] = {}
    for node in spec.nodes:
        previous = nodes.get(node.path)
        if previous is not None and previous != node and not (previous.kind == node.kind == "dir"):
            raise RootfsError(node.field, f"{node.path} is declared twice ({previous.field} and {node.field})")
        if previous is None or node.kind == "dir":
            nodes[node.path] = node
    for tree in spec.link_trees:
        _mirror(tree, nodes, owners)
    for first in spec.first_of:
        found = next((c for c in first.candidates if os.path.exists(c)), None)
        if found is None:
            raise RootfsError(first.field, f"no package of the image has {first.path}. {first.missing_hint}")
        existing = nodes.get(first.path)
        if existing is not None and not (
            existing.kind == "symlink" and os.path.realpath(existing.target) == os.path.realpath(found)
        ):
            raise RootfsError(
                first.field, f"{first.path} is already provided by {owners.get(first.path, existing.field)}"
            )
        nodes.setdefault(first.path, Node(first.path, "symlink", 0o777, target=found, field=first.field))
    # Every parent directory exists, root-owned 0755, unless declared otherwise.
    for path in list(nodes):
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in nodes:
            nodes[parent] = Node(parent, "dir")
            parent = posixpath.dirname(parent)
        if parent != "/" and nodes[parent].kind != "dir":
            raise RootfsError(
                nodes[path].field, f"{path} needs {parent} to be a directory, but it is a {nodes[parent].kind}"
            )
    return [nodes[p] for p in sorted(nodes, key=lambda p: p.split("/"))]


def tar_entries(nodes: Iterable[Node]) -> list[TarEntry]:
    entries = []
    for n in nodes:
        name = os.fsencode(n.path.lstrip("/"))
        # Runtimes use the numeric ids; names are only for people reading the tar.
        common: dict[str, Any] = dict(
            name=name,
            mode=n.mode,
            uid=n.uid,
            gid=n.gid,
            uname=b"root" if n.uid == 0 else b"",
            gname=b"root" if n.gid == 0 else b"",
        )
        if n.kind == "dir":
            entries.append(TarEntry(kind=DIRECTORY, **common))
        elif n.kind == "symlink":
            entries.append(TarEntry(kind=SYMLINK, linkname=os.fsencode(n.target), **common))
        elif n.source is not None:
            entries.append(
                TarEntry(kind=REGULAR, size=os.path.getsize(n.source), source=os.fsencode(n.source), **common)
            )
        else:
            entries.append(TarEntry(kind=REGULAR, size=len(n.content), content=n.content, **common))
    return entries
