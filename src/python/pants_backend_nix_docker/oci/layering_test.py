from __future__ import annotations

import hashlib

from pants_backend_nix_docker.nix.closure import Closure, StorePath
from pants_backend_nix_docker.oci import layering

NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def sp(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return "/nix/store/" + "".join(NIX_BASE32[b % 32] for b in digest[:32]) + "-" + name


def closure(graph: dict[str, list[str]], sizes: dict[str, int] | None = None) -> Closure:
    return Closure(
        {
            sp(n): StorePath(sp(n), (sizes or {}).get(n, 100), "", tuple(sorted(sp(r) for r in refs)))
            for n, refs in graph.items()
        }
    )


# python -> openssl -> glibc, python -> zlib -> glibc, hello -> busybox
GRAPH: dict[str, list[str]] = {
    "python": ["openssl", "zlib", "glibc"],
    "openssl": ["glibc"],
    "zlib": ["glibc"],
    "glibc": [],
    "hello": ["busybox"],
    "busybox": [],
}


def test_popularity_counts_closures_containing_each_path() -> None:
    pop = layering.popularity(closure(GRAPH))
    assert pop[sp("glibc")] == 4  # glibc, openssl, zlib, python
    assert pop[sp("busybox")] == 2
    assert pop[sp("python")] == 1


def test_most_popular_paths_are_at_the_bottom_each_alone() -> None:
    layers = layering.plan_store_layers(closure(GRAPH), budget=100)
    assert layers[0] == (sp("glibc"),)
    assert all(len(layer) == 1 for layer in layers)
    assert len(layers) == 6


def test_budget_merges_least_popular_paths_into_the_last_layer() -> None:
    c = closure(GRAPH)
    layers = layering.plan_store_layers(c, budget=3)
    assert len(layers) == 3
    assert layers[0] == (sp("glibc"),)
    flat = layering.layer_paths_flat(layers)
    assert sorted(flat) == sorted(c.paths) and len(flat) == len(set(flat))


def test_ties_are_broken_by_size_then_name_so_order_is_total() -> None:
    c = closure({"b-lib": [], "a-lib": [], "c-lib": []}, sizes={"c-lib": 500})
    assert layering.popularity_order(c) == [sp("c-lib"), sp("a-lib"), sp("b-lib")]


def test_budget_of_one_is_one_layer() -> None:
    c = closure(GRAPH)
    assert layering.plan_store_layers(c, 1) == (tuple(sorted(c.paths)),)


def test_deep_chains_do_not_recurse() -> None:
    graph: dict[str, list[str]] = {f"p{i:05d}": [f"p{i + 1:05d}"] for i in range(5000)}
    graph["p05000"] = []
    pop = layering.popularity(closure(graph))
    assert pop[sp("p05000")] == 5001


def test_size_aware_keeps_big_paths_alone_and_merges_small_neighbours() -> None:
    graph: dict[str, list[str]] = {
        "app": ["big", "small1", "small2", "small3", "glibc"],
        "big": ["glibc"],
        "small1": ["glibc"],
        "small2": ["glibc"],
        "small3": ["glibc"],
        "glibc": [],
    }
    sizes = {"app": 50, "big": 10_000, "small1": 10, "small2": 20, "small3": 30, "glibc": 3_000}
    c = closure(graph, sizes)
    layers = layering.plan_store_layers(c, 4, layering.SIZE_AWARE)
    assert len(layers) == 4
    assert (sp("big"),) in layers and (sp("glibc"),) in layers
    flat = layering.layer_paths_flat(layers)
    assert sorted(flat) == sorted(c.paths) and len(flat) == len(set(flat))


def test_size_aware_has_no_catch_all_when_popularity_would() -> None:
    # 30 leaves of growing size under one root: popularity leaves them mostly in one layer.
    graph = {"root": [f"leaf{i:02d}" for i in range(30)], **{f"leaf{i:02d}": [] for i in range(30)}}
    sizes = {"root": 1, **{f"leaf{i:02d}": 100 * (i + 1) for i in range(30)}}
    c = closure(graph, sizes)

    def largest_layer(strategy: str) -> int:
        return max(
            sum(sizes[p.split("-", 1)[1]] for p in layer) for layer in layering.plan_store_layers(c, 10, strategy)
        )

    assert largest_layer(layering.SIZE_AWARE) < largest_layer(layering.POPULARITY) / 2


def test_strategies_agree_when_the_budget_is_large() -> None:
    c = closure(GRAPH)
    assert layering.plan_store_layers(c, 100, layering.SIZE_AWARE) == layering.plan_store_layers(
        c, 100, layering.POPULARITY
    )


def test_batches_cover_every_layer_once_and_big_layers_go_alone() -> None:
    c = closure(GRAPH, sizes={"python": 10_000})
    layers = layering.plan_store_layers(c, 100)
    sizes = {p: i.nar_size for p, i in c.paths.items()}
    batches = layering.batch_layers(layers, sizes, buckets=2, alone_above=1_000)
    assert ((sp("python"),),) in batches
    flat = [layer for batch in batches for layer in batch]
    assert sorted(flat) == sorted(layers)
    assert len(batches) <= 1 + 2


def test_batches_do_not_depend_on_order_or_neighbours() -> None:
    layers = [(sp(f"lib{i:02d}"),) for i in range(30)]
    sizes = {layer[0]: 10 for layer in layers}
    batches = layering.batch_layers(layers, sizes, buckets=4, alone_above=1_000)
    assert layering.batch_layers(list(reversed(layers)), sizes, 4, 1_000) == batches
    # One more layer changes one bucket; the others stay identical (and stay cached).
    extra = (sp("newcomer"),)
    grown = layering.batch_layers([*layers, extra], {**sizes, extra[0]: 10}, 4, 1_000)
    assert len(set(grown) - set(batches)) == 1


def test_batches_come_largest_first() -> None:
    layers = [(sp(f"lib{i:02d}"),) for i in range(30)]
    sizes = {layer[0]: 10 + i for i, layer in enumerate(layers)}
    sizes[sp("lib07")] = 5_000
    batches = layering.batch_layers(layers, sizes, buckets=4, alone_above=1_000)
    work = [sum(sizes[p] for layer in batch for p in layer) for batch in batches]
    assert batches[0] == ((sp("lib07"),),)
    assert work == sorted(work, reverse=True)
