"""The closure as a Graphviz graph (`closure_graph=True`). Pure."""

from __future__ import annotations

from typing import Iterable

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.sizes import human_size


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
