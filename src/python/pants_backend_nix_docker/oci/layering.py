"""How a closure is cut into layers.

Both strategies start from popularity order, the idea of nixpkgs' `references-by-popularity`: a
path that many other paths depend on (glibc) is needed by many images, so it goes at the bottom
where registries and hosts can share it.

- `popularity`: the first `budget - 1` paths get a layer each; every other path shares one
  catch-all layer on top. Simple, but when the closure outgrows the budget the catch-all holds the
  least shared (often the largest and most often changed) paths, and any change to one of them
  re-ships all of it.
- `size-aware`: paths stay in popularity order, and while there are more layers than the budget
  the two neighbouring layers with the smallest combined size merge. Big paths keep a layer of
  their own, small ones share, and no layer grows into a catch-all, so a version bump of one
  package re-ships about that package's bytes. Merging only neighbours keeps paths of similar
  popularity together, so shared bottom layers stay shared across images.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, Sequence

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


POPULARITY = "popularity"
SIZE_AWARE = "size-aware"
STRATEGIES = (POPULARITY, SIZE_AWARE)


def plan_store_layers(closure: Closure, budget: int, strategy: str = POPULARITY) -> tuple[tuple[str, ...], ...]:
    """Split the closure into at most `budget` layers, bottom first; each path in exactly one."""
    if budget < 1:
        raise ValueError(f"the layer budget must be at least 1, not {budget}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown layering strategy {strategy!r}; choose one of {STRATEGIES}")
    order = popularity_order(closure)
    if len(order) <= budget:
        return tuple((path,) for path in order)
    if strategy == POPULARITY:
        solo = order[: budget - 1]
        rest = tuple(sorted(order[budget - 1 :]))
        return (*((path,) for path in solo), rest)
    return _merge_smallest_neighbours(order, {p: closure.paths[p].nar_size for p in order}, budget)


def _merge_smallest_neighbours(order: list[str], sizes: dict[str, int], budget: int) -> tuple[tuple[str, ...], ...]:
    groups = [[path] for path in order]
    totals = [sizes[path] for path in order]
    while len(groups) > budget:
        # The first pair wins a tie, so the plan is a function of the closure alone.
        i = min(range(len(groups) - 1), key=lambda k: (totals[k] + totals[k + 1], k))
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
        totals[i : i + 2] = [totals[i] + totals[i + 1]]
    return tuple(tuple(sorted(group)) for group in groups)


def layer_paths_flat(layers: Iterable[Iterable[str]]) -> list[str]:
    return [path for layer in layers for path in layer]


def batch_layers(
    layers: Sequence[tuple[str, ...]], sizes: Mapping[str, int], buckets: int, alone_above: int
) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Group layers into the processes that build them.

    A process costs a fixed ~0.1 s here (fork, sandbox, interpreter start), so building a small
    layer in a process of its own costs more than the layer; but a process is also the unit
    Pants caches. So: a layer above `alone_above` NAR bytes, whose work dwarfs that cost, gets a
    process of its own; the others go to one of `buckets` processes chosen by a hash of their
    store paths. Membership depends on the layer alone, not on its neighbours or their order:
    a new or changed layer disturbs only its own bucket, and images that share most of a
    closure share most of its buckets, so each bucket is built once per run, machine or fleet.

    The batches come largest first (by NAR bytes): Pants starts processes about in the order a
    rule asks for them, so the longest one starts at once and the small ones fill the other
    cores beside it, instead of one large batch starting last and running alone.
    """
    alone = []
    grouped: dict[int, list[tuple[str, ...]]] = {}
    for layer in layers:
        if sum(sizes[p] for p in layer) > alone_above:
            alone.append((layer,))
        else:
            key = int(hashlib.sha256("\n".join(sorted(layer)).encode()).hexdigest()[:8], 16) % buckets
            grouped.setdefault(key, []).append(layer)
    batches = [*alone, *(tuple(sorted(grouped[k])) for k in sorted(grouped))]

    def work(batch: tuple[tuple[str, ...], ...]) -> int:
        return sum(sizes[p] for layer in batch for p in layer)

    return tuple(sorted(batches, key=lambda batch: (-work(batch), batch)))
