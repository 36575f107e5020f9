from __future__ import annotations

import json

import pytest

from pants_backend_nix_docker.nix.closure import ClosureError, parse_path_info, store_path_name

A = "/nix/store/" + "a" * 32 + "-app-1.0"
G = "/nix/store/" + "g" * 32 + "-glibc-2.36"


def test_parses_list_format_of_nix_2_8() -> None:
    text = json.dumps(
        [
            {"path": A, "narSize": 10, "narHash": "sha256:x", "references": [G, A]},
            {"path": G, "narSize": 20, "narHash": "sha256:y", "references": []},
        ]
    )
    closure = parse_path_info(text)
    assert closure.paths[A].references == (G,), "self-references are dropped"
    assert closure.total_nar_size == 30
    assert closure.reachable_from([A]) == {A, G}


def test_parses_dict_format_of_newer_nix() -> None:
    text = json.dumps({A: {"narSize": 1, "references": [G]}, G: {"narSize": 2, "references": []}})
    assert set(parse_path_info(text).paths) == {A, G}


def test_reference_outside_closure_is_an_error() -> None:
    with pytest.raises(ClosureError, match="not in the closure"):
        parse_path_info(json.dumps([{"path": A, "narSize": 1, "references": [G]}]))


def test_invalid_path_is_an_error() -> None:
    with pytest.raises(ClosureError, match="not a valid path"):
        parse_path_info(json.dumps([{"path": A, "valid": False}]))


def test_store_path_name() -> None:
    assert store_path_name(G) == "glibc-2.36"
    with pytest.raises(ClosureError):
        store_path_name("/nix/store/short-x")


def test_without_drops_paths_and_references_to_them() -> None:
    closure = parse_path_info(
        json.dumps(
            [
                {"path": A, "narSize": 10, "references": [G]},
                {"path": G, "narSize": 20, "references": []},
            ]
        )
    )
    rest = closure.without([G])
    assert set(rest.paths) == {A} and rest.paths[A].references == ()
    assert closure.without([]) == closure and not closure.without([A, G]).paths
