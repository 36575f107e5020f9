"""What is in an image and why: reference chains, the size report, forbidden paths and an SPDX SBOM.

All pure: a Closure (from `nix path-info --recursive --json`) and the image's layers in, JSON-ready
dicts and text out.
"""

from __future__ import annotations

import base64
import fnmatch
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pants_backend_nix_docker.nix.closure import Closure, store_path_name

NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
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
    closure: Closure, roots: Iterable[str], patterns: Sequence[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(pattern, path, chain) for every path a forbidden pattern matches."""
    if not patterns:
        return []
    chains = shortest_chains(closure, roots)
    found = []
    for pattern in patterns:
        for path in sorted(closure.paths):
            if matches(pattern, path):
                found.append((pattern, path, chains.get(path, (path,))))
    return found


@dataclass(frozen=True)
class ReportLayer:
    digest: str
    size: int  # compressed, as the registry stores it
    uncompressed_size: int | None  # None for a base image's layer: its config does not say
    description: str
    store_paths: tuple[str, ...] = ()


def image_report(
    *,
    address: str,
    repository: str,
    tags: Sequence[str],
    manifest_digest: str,
    config_size: int,
    manifest_size: int,
    layers: Sequence[ReportLayer],
    closure: Closure,
    roots: Iterable[str],
    referenced_by: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The machine-readable report: layers, store paths (size, layer, why) and totals.

    `referenced_by` says which parts of the image outside the store name a path: the config
    (`Entrypoint`, `Env PATH`) and links such as `/usr/bin/env`.

    `image.size` is the sum of the config, the manifest and every layer: what a registry stores.
    """
    chains = shortest_chains(closure, roots)
    layer_of = {path: i for i, layer in enumerate(layers) for path in layer.store_paths}
    paths = {
        path: {
            "name": info.name,
            "nar_size": info.nar_size,
            "nar_hash": info.nar_hash,
            "layer": layer_of.get(path),
            "chain": list(chains.get(path, (path,))),
            "references": list(info.references),
            "referenced_by": list((referenced_by or {}).get(path, ())),
        }
        for path, info in sorted(closure.paths.items())
    }
    return {
        "address": address,
        "image": {
            "repository": repository,
            "tags": list(tags),
            "manifest_digest": manifest_digest,
            "size": config_size + manifest_size + sum(layer.size for layer in layers),
            "config_size": config_size,
            "manifest_size": manifest_size,
        },
        "layers": [
            {
                "index": i,
                "digest": layer.digest,
                "size": layer.size,
                "uncompressed_size": layer.uncompressed_size,
                "description": layer.description,
                "store_paths": list(layer.store_paths),
            }
            for i, layer in enumerate(layers)
        ],
        "roots": sorted(set(roots)),
        "store_paths": paths,
        "totals": {
            "layers": len(layers),
            "store_paths": len(paths),
            "nar_size": closure.total_nar_size,
            "compressed": sum(layer.size for layer in layers),
            "uncompressed": sum(layer.uncompressed_size or 0 for layer in layers),
        },
    }


def largest_paths(report: Mapping[str, Any], pattern: str | None = None) -> list[tuple[str, Mapping[str, Any]]]:
    """The report's store paths (those matching `pattern`, if given), biggest first."""
    found = [(path, info) for path, info in report["store_paths"].items() if pattern is None or matches(pattern, path)]
    return sorted(found, key=lambda item: (-item[1]["nar_size"], item[0]))


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_report(report: Mapping[str, Any], width: int = 100, largest: int = 10) -> str:
    """The report for people: layers, the largest store paths and why each is there, totals."""
    image = report["image"]
    lines = [
        cut(f"{report['address']}: {image['repository']}:{','.join(image['tags'])}", width),
        f"manifest {image['manifest_digest']}",
        "",
        f"{'#':>3}  {'compressed':>10}  {'tar':>10}  contents",
    ]
    for layer in report["layers"]:
        tar = human_size(layer["uncompressed_size"]) if layer["uncompressed_size"] is not None else "?"
        lines.append(
            cut(f"{layer['index']:>3}  {human_size(layer['size']):>10}  {tar:>10}  {layer['description']}", width)
        )
    totals = report["totals"]
    lines.append(
        f"{'':>3}  {human_size(totals['compressed']):>10}  {human_size(totals['uncompressed']):>10}  total "
        f"({totals['layers']} layers)"
    )
    lines += ["", f"largest store paths ({totals['store_paths']} in all, {human_size(totals['nar_size'])} NAR):"]
    for path, info in largest_paths(report)[:largest]:
        chain = " <- ".join(store_path_name(p) for p in reversed(info["chain"][:-1])) or "an image root"
        lines.append(cut(f"{human_size(info['nar_size']):>10}  {info['name']}  (via {chain})", width))
    lines.append(f"image size: {human_size(image['size'])} (config, manifest and layers, as a registry stores them)")
    return "\n".join(lines)


def render_why(report: Mapping[str, Any], pattern: str, width: int = 100) -> str:
    """Every store path matching `pattern`, what in the image names it, and its chain from a root."""
    hits = largest_paths(report, pattern)
    if not hits:
        return (
            f"{report['address']}: no store path matches {pattern!r} ({len(report['store_paths'])} paths in the image)"
        )
    lines = [f"{report['address']}: {len(hits)} store path(s) match {pattern!r}"]
    for path, info in hits:
        layer = f"layer {info['layer']}" if info["layer"] is not None else "no layer"
        lines.append(f"  {path} ({human_size(info['nar_size'])}, {layer})")
        if info.get("referenced_by"):
            lines.append(cut(f"    named by the image: {', '.join(info['referenced_by'])}", width))
        for depth, step in enumerate(info["chain"]):
            lines.append(cut(f"    {'  ' * depth}{'-> ' if depth else ''}{step}", width))
    return "\n".join(lines)


_VERSION_RE = re.compile(r"^(.+?)-(\d.*)$")


def name_and_version(store_name: str) -> tuple[str, str | None]:
    """`python3-3.11.2` -> (python3, 3.11.2), as Nix's parseDrvName splits: at the first dash
    followed by a digit. No such dash: no version."""
    match = _VERSION_RE.match(store_name)
    return (match.group(1), match.group(2)) if match else (store_name, None)


def nar_hash_hex(nar_hash: str) -> str | None:
    """A NAR hash (`sha256-BASE64`, `sha256:NIX32` or `sha256:HEX`) as lowercase hex."""
    if nar_hash.startswith("sha256-"):
        return base64.b64decode(nar_hash[len("sha256-") :]).hex()
    if not nar_hash.startswith("sha256:"):
        return None
    value = nar_hash[len("sha256:") :]
    if len(value) == 64:
        return value.lower()
    if len(value) != 52:
        return None
    out = bytearray(32)
    for n, char in enumerate(reversed(value)):
        digit = NIX32_ALPHABET.index(char)
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (digit << j) & 0xFF
        if i + 1 < 32:
            out[i + 1] |= digit >> (8 - j)
    return out.hex()


def _spdx_id(path: str) -> str:
    # SPDX ids allow letters, digits, '.' and '-'; the store hash makes each unique.
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", path[len("/nix/store/") :])


def spdx_document(*, name: str, namespace: str, created: str, closure: Closure, roots: Iterable[str]) -> dict[str, Any]:
    """An SPDX 2.3 document: one package per store path, DEPENDS_ON per reference."""
    packages = []
    for path, info in sorted(closure.paths.items()):
        pkg_name, version = name_and_version(info.name)
        package: dict[str, Any] = {
            "SPDXID": _spdx_id(path),
            "name": pkg_name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": f"Nix store path {path}; NAR size {info.nar_size}; checksum is the NAR hash",
        }
        if version:
            package["versionInfo"] = version
        hex_hash = nar_hash_hex(info.nar_hash)
        if hex_hash:
            package["checksums"] = [{"algorithm": "SHA256", "checksumValue": hex_hash}]
        packages.append(package)
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": _spdx_id(root)}
        for root in sorted(set(roots))
    ]
    relationships += [
        {"spdxElementId": _spdx_id(path), "relationshipType": "DEPENDS_ON", "relatedSpdxElement": _spdx_id(ref)}
        for path, info in sorted(closure.paths.items())
        for ref in info.references
    ]
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": namespace,
        "creationInfo": {"created": created, "creators": ["Tool: pants-nix-docker"]},
        "packages": packages,
        "relationships": relationships,
    }


def closure_dot(closure: Closure, roots: Iterable[str]) -> str:
    """A Graphviz graph of the closure: one node per path labelled with its NAR size."""
    root_set = set(roots)
    lines = ["digraph closure {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for path, info in sorted(closure.paths.items()):
        style = ", style=bold" if path in root_set else ""
        lines.append(f'  "{path}" [label="{info.name}\\n{human_size(info.nar_size)}"{style}];')
    for path, info in sorted(closure.paths.items()):
        for ref in info.references:
            lines.append(f'  "{path}" -> "{ref}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_UNITS = {
    None: 1,
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "KiB": 2**10,
    "MB": 10**6,
    "MiB": 2**20,
    "GB": 10**9,
    "GiB": 2**30,
}


def parse_size(value: int | str) -> int:
    """Bytes from `50000000`, `"50MB"` or `"47.7MiB"`."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f'{value!r} is not a size; write a number of bytes or e.g. "50MB", "1.5GiB"')
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def largest_contributors(report: Mapping[str, Any], count: int = 5) -> list[str]:
    """Lines naming the biggest store paths (with why) and the biggest layers."""
    lines = [
        f"{human_size(info['nar_size'])} {info['name']} (via {format_chain(info['chain'])})"
        for _, info in largest_paths(report)[:count]
    ]
    layers = sorted(report["layers"], key=lambda layer: (-layer["size"], layer["index"]))[:3]
    lines += [
        f"layer {layer['index']}: {human_size(layer['size'])} compressed, {layer['description']}" for layer in layers
    ]
    return lines
