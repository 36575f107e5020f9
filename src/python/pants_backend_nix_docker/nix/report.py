"""The image report: layers, store paths (size, layer, why) and totals, as JSON-ready dicts and as
the text `pants nix-image-report` prints. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pants_backend_nix_docker.nix.closure import Closure, store_path_name
from pants_backend_nix_docker.nix.references import format_chain, matches
from pants_backend_nix_docker.nix.sizes import human_size


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
    chains: Mapping[str, tuple[str, ...]],
    referenced_by: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The machine-readable report: layers, store paths (size, layer, why) and totals.

    `referenced_by` says which parts of the image outside the store name a path: the config
    (`Entrypoint`, `Env PATH`) and links such as `/usr/bin/env`.

    `image.size` is the sum of the config, the manifest and every layer: what a registry stores.
    """
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
