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


@dataclass(frozen=True)
class ReportPath:
    """One store path of the image: its size, the layer that ships it (None: the base image's,
    or none), one shortest chain from an image root to it, and what outside the store names it."""

    path: str
    name: str
    nar_size: int
    nar_hash: str
    layer: int | None
    chain: tuple[str, ...]
    references: tuple[str, ...]
    referenced_by: tuple[str, ...]


@dataclass(frozen=True)
class ImageReport:
    """What is in an image and why; `to_json` is the `NAME.report.json` written next to it."""

    address: str
    repository: str
    tags: tuple[str, ...]
    manifest_digest: str
    config_size: int
    manifest_size: int
    layers: tuple[ReportLayer, ...]
    roots: tuple[str, ...]
    store_paths: tuple[ReportPath, ...]  # sorted by path
    nar_size: int

    @property
    def compressed(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed(self) -> int:
        return sum(layer.uncompressed_size or 0 for layer in self.layers)

    @property
    def size(self) -> int:
        """The config, the manifest and every layer: what a registry stores."""
        return self.config_size + self.manifest_size + self.compressed

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "image": {
                "repository": self.repository,
                "tags": list(self.tags),
                "manifest_digest": self.manifest_digest,
                "size": self.size,
                "config_size": self.config_size,
                "manifest_size": self.manifest_size,
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
                for i, layer in enumerate(self.layers)
            ],
            "roots": list(self.roots),
            "store_paths": {
                p.path: {
                    "name": p.name,
                    "nar_size": p.nar_size,
                    "nar_hash": p.nar_hash,
                    "layer": p.layer,
                    "chain": list(p.chain),
                    "references": list(p.references),
                    "referenced_by": list(p.referenced_by),
                }
                for p in self.store_paths
            },
            "totals": {
                "layers": len(self.layers),
                "store_paths": len(self.store_paths),
                "nar_size": self.nar_size,
                "compressed": self.compressed,
                "uncompressed": self.uncompressed,
            },
        }


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
) -> ImageReport:
    """`referenced_by` says which parts of the image outside the store name a path: the config
    (`Entrypoint`, `Env PATH`) and links such as `/usr/bin/env`."""
    layer_of = {path: i for i, layer in enumerate(layers) for path in layer.store_paths}
    return ImageReport(
        address=address,
        repository=repository,
        tags=tuple(tags),
        manifest_digest=manifest_digest,
        config_size=config_size,
        manifest_size=manifest_size,
        layers=tuple(layers),
        roots=tuple(sorted(set(roots))),
        store_paths=tuple(
            ReportPath(
                path=path,
                name=info.name,
                nar_size=info.nar_size,
                nar_hash=info.nar_hash,
                layer=layer_of.get(path),
                chain=chains.get(path, (path,)),
                references=info.references,
                referenced_by=tuple((referenced_by or {}).get(path, ())),
            )
            for path, info in sorted(closure.paths.items())
        ),
        nar_size=closure.total_nar_size,
    )


def largest_paths(report: ImageReport, pattern: str | None = None) -> list[ReportPath]:
    """The report's store paths (those matching `pattern`, if given), biggest first."""
    found = [p for p in report.store_paths if pattern is None or matches(pattern, p.path)]
    return sorted(found, key=lambda p: (-p.nar_size, p.path))


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_report(report: ImageReport, width: int = 100, largest: int = 10) -> str:
    """The report for people: layers, the largest store paths and why each is there, totals."""
    lines = [
        cut(f"{report.address}: {report.repository}:{','.join(report.tags)}", width),
        f"manifest {report.manifest_digest}",
        "",
        f"{'#':>3}  {'compressed':>10}  {'tar':>10}  contents",
    ]
    for index, layer in enumerate(report.layers):
        tar = human_size(layer.uncompressed_size) if layer.uncompressed_size is not None else "?"
        lines.append(cut(f"{index:>3}  {human_size(layer.size):>10}  {tar:>10}  {layer.description}", width))
    lines.append(
        f"{'':>3}  {human_size(report.compressed):>10}  {human_size(report.uncompressed):>10}  total "
        f"({len(report.layers)} layers)"
    )
    lines += [
        "",
        f"largest store paths ({len(report.store_paths)} in all, {human_size(report.nar_size)} NAR):",
    ]
    for p in largest_paths(report)[:largest]:
        chain = " <- ".join(store_path_name(step) for step in reversed(p.chain[:-1])) or "an image root"
        lines.append(cut(f"{human_size(p.nar_size):>10}  {p.name}  (via {chain})", width))
    lines.append(f"image size: {human_size(report.size)} (config, manifest and layers, as a registry stores them)")
    return "\n".join(lines)


def render_why(report: ImageReport, pattern: str, width: int = 100) -> str:
    """Every store path matching `pattern`, what in the image names it, and its chain from a root."""
    hits = largest_paths(report, pattern)
    if not hits:
        return f"{report.address}: no store path matches {pattern!r} ({len(report.store_paths)} paths in the image)"
    lines = [f"{report.address}: {len(hits)} store path(s) match {pattern!r}"]
    for p in hits:
        layer = f"layer {p.layer}" if p.layer is not None else "no layer"
        lines.append(f"  {p.path} ({human_size(p.nar_size)}, {layer})")
        if p.referenced_by:
            lines.append(cut(f"    named by the image: {', '.join(p.referenced_by)}", width))
        for depth, step in enumerate(p.chain):
            lines.append(cut(f"    {'  ' * depth}{'-> ' if depth else ''}{step}", width))
    return "\n".join(lines)


def largest_contributors(report: ImageReport, count: int = 5) -> list[str]:
    """Lines naming the biggest store paths (with why) and the biggest layers."""
    lines = [f"{human_size(p.nar_size)} {p.name} (via {format_chain(p.chain)})" for p in largest_paths(report)[:count]]
    layers = sorted(enumerate(report.layers), key=lambda item: (-item[1].size, item[0]))[:3]
    lines += [f"layer {index}: {human_size(layer.size)} compressed, {layer.description}" for index, layer in layers]
    return lines
