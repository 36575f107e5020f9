"""Writing OCI layout directories as one deterministic tar (the image archive)."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

from pants_backend_nix_docker.oci.tarball import DIRECTORY, REGULAR, TarEntry, write_tar


def layout_entries(roots: Sequence[bytes], prefix: bytes = b"") -> Iterator[TarEntry]:
    """The union of several directory trees (symlinks followed), sorted, as one tree."""
    children: dict[bytes, list[bytes]] = {}
    for root in roots:
        if os.path.isdir(root):
            for name in os.listdir(root):
                children.setdefault(name, []).append(os.path.join(root, name))
    for name in sorted(children):
        paths = children[name]
        member = prefix + name
        if os.path.isdir(paths[0]):
            yield TarEntry(name=member, kind=DIRECTORY, mode=0o755)
            yield from layout_entries(paths, member + b"/")
        else:
            yield TarEntry(name=member, kind=REGULAR, mode=0o644, size=os.path.getsize(paths[0]), source=paths[0])


def build_archive(layouts: Sequence[str], output: str) -> None:
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "wb") as out:
        write_tar(layout_entries([os.fsencode(layout) for layout in layouts]), out.write)
