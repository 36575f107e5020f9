"""How a closure is cut into layers.

Popularity ordering follows the idea of nixpkgs' `references-by-popularity`: a path that many
other paths depend on (glibc) is needed by many images, so it gets a layer of its own at the
bottom where registries and hosts can share it. When the budget runs out, the least popular
paths share one layer on top.
"""

from __future__ import annotations

from typing import Iterable

from pants_backend_nix_docker.nix.closure import Closure


def popularity(closure: Closure) -> dict[str, int]:
    """For each path, how many paths of the closure (itself included) have it in their closure."""
    counts = dict.fromkeys(closure.paths, 0)
    memo: dict[str, frozenset[str]] = {}

    def closure_of(path: str) -> frozenset[str]:
        # Iterative post-order so deep reference chains cannot hit the recursion limit.
        stack = [(path, False)]
        while stack:
            node, expanded = stack.pop()
            if node in memo:
                continue
            refs = closure.paths[node].references
            if expanded:
                acc = {node}
                for ref in refs:
                    acc |= memo[ref]
                memo[node] = frozenset(acc)
            else:
                stack.append((node, True))
                stack.extend((ref, False) for ref in refs if ref not in memo)
        return memo[path]

    for path in closure.paths:
        for member in closure_of(path):
            counts[member] += 1
    return counts


def popularity_order(closure: Closure) -> list[str]:
    """Most popular first; ties go to the larger path, then to the name, so order is total."""
    pop = popularity(closure)
    return sorted(
        closure.paths,
        key=lambda p: (-pop[p], -closure.paths[p].nar_size, closure.paths[p].name, p),
    )


def plan_store_layers(closure: Closure, budget: int) -> tuple[tuple[str, ...], ...]:
    """Split the closure into at most `budget` layers, bottom first.

    Each of the first `budget - 1` most popular paths gets its own layer; whatever is left shares
    the last one. Every path lands in exactly one layer.
    """
    if budget < 1:
        raise ValueError(f"the layer budget must be at least 1, not {budget}")
    order = popularity_order(closure)
    if len(order) <= budget:
        return tuple((path,) for path in order)
    solo = order[: budget - 1]
    rest = tuple(sorted(order[budget - 1 :]))
    return (*((path,) for path in solo), rest)


def layer_paths_flat(layers: Iterable[Iterable[str]]) -> list[str]:
    return [path for layer in layers for path in layer]
