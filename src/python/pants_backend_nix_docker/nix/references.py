"""Why a store path is in an image: reference chains from its roots, the places outside the store
(config, links) that name it, and the paths a forbidden pattern matches. Pure."""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from typing import Any, Iterable, Mapping, Sequence

from pants_backend_nix_docker.nix.closure import Closure, store_path_name

# A store path inside some text (`/nix/store/<hash>-python3-3.11.2/bin/python3`): up to its name's end.
STORE_PATH_IN_TEXT = re.compile(r"/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+")


# The config keys, and the `nix_docker_image` field each comes from.
CONFIG_FIELDS = {
    "Entrypoint": "entrypoint",
    "Cmd": "cmd",
    "Env": "env",
    "WorkingDir": "working_dir",
    "Labels": "labels",
}


def config_references(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Store paths an image config (its `config` object) names, and where: `Entrypoint`,
    `Env PATH`, ... A config naming a path outside the closure describes a broken image."""
    found: dict[str, list[str]] = {}

    def visit(where: str, text: str) -> None:
        for path in STORE_PATH_IN_TEXT.findall(text):
            if where not in found.setdefault(path, []):
                found[path].append(where)

    for key in ("Entrypoint", "Cmd"):
        for arg in config.get(key) or ():
            visit(key, arg)
    for entry in config.get("Env") or ():
        name, _, value = entry.partition("=")
        visit(f"Env {name}", value)
    if config.get("WorkingDir"):
        visit("WorkingDir", config["WorkingDir"])
    for name, value in sorted((config.get("Labels") or {}).items()):
        visit(f"Labels {name}", value)
    return found


def file_references(links: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Store paths that image files outside the store point into: (image path, target) pairs."""
    found: dict[str, list[str]] = {}
    for image_path, target in links:
        for path in STORE_PATH_IN_TEXT.findall(target):
            if image_path not in found.setdefault(path, []):
                found[path].append(image_path)
    return found


def referenced_by(config: Mapping[str, Any], links: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """What outside the store names each store path: the image config, and links of its files."""
    found = {path: [f"config {place}" for place in places] for path, places in config_references(config).items()}
    for path, places in file_references(links).items():
        found.setdefault(path, []).extend(places)
    return found


def shortest_chains(closure: Closure, roots: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For every path, one shortest reference chain from an image root to it (root first).

    Breadth-first from the sorted roots, references in sorted order: the chain is a function of
    the closure alone.
    """
    chains: dict[str, tuple[str, ...]] = {}
    queue: deque[str] = deque()
    for root in sorted(set(roots)):
        if root not in chains:
            chains[root] = (root,)
            queue.append(root)
    while queue:
        path = queue.popleft()
        for ref in closure.paths[path].references:
            if ref not in chains:
                chains[ref] = (*chains[path], ref)
                queue.append(ref)
    return chains


def matches(pattern: str, path: str) -> bool:
    """A name pattern (`*-gcc-*`, `ghc-*`, `python3-3.11*`) against a store path's name, or a
    pattern starting with `/` against the whole path."""
    subject = path if pattern.startswith("/") else store_path_name(path)
    return fnmatch.fnmatchcase(subject, pattern) or fnmatch.fnmatchcase("-" + subject, pattern)


def format_chain(chain: Sequence[str]) -> str:
    return " -> ".join(store_path_name(p) for p in chain)


def forbidden_paths(
    closure: Closure, chains: Mapping[str, tuple[str, ...]], patterns: Sequence[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(pattern, path, chain) for every path a forbidden pattern matches; `chains` are the
    closure's `shortest_chains`."""
    found = []
    for pattern in patterns:
        for path in sorted(closure.paths):
            if matches(pattern, path):
                found.append((pattern, path, chains.get(path, (path,))))
    return found
