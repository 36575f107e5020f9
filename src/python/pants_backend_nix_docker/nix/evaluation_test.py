from __future__ import annotations

import json

import pytest

from pants_backend_nix_docker.nix.evaluation import (
    Attribute,
    EvaluationOutputError,
    attributes_by_file,
    evaluation_argv,
    is_missing_derivation,
    kept_exit_code,
    parse_evaluation,
    refusal,
)
from pants_backend_nix_docker.nix.installables import parse_installable

DRV = "/nix/store/8hjf0ihax584322db8ilcs9rkk85jc3r-a.drv"


def test_attribute_parts_follow_nix_attribute_paths() -> None:
    assert Attribute(None).parts == ()
    assert Attribute("hello").parts == ("hello",)
    assert Attribute("python3.pkgs.pyyaml").parts == ("python3", "pkgs", "pyyaml")
    assert Attribute('haskellPackages."x.y"').parts == ("haskellPackages", "x.y")


def test_attributes_by_file_gathers_every_image_attribute_per_file() -> None:
    entries = [
        ("//build-support/nix/default.nix#hello", "examples/hello"),
        ("../../build-support/nix/default.nix#python3", "examples/python"),
        ("//build-support/nix/default.nix#hello", "examples/other"),  # once, though two images ask
        ("pkgs.nix", "app"),  # the whole file
        ("nixpkgs#hello", "app"),  # a flake: Nix caches those itself
        ("/nix/store/8hjf0ihax584322db8ilcs9rkk85jc3r-a", "app"),
    ]
    assert attributes_by_file(parse_installable(raw, spec_path) for raw, spec_path in entries) == {
        "app/pkgs.nix": (Attribute(None),),
        "build-support/nix/default.nix": (Attribute("hello"), Attribute("python3")),
    }


def test_a_cacheable_evaluation_allows_exactly_the_tracked_files() -> None:
    argv = evaluation_argv(
        "/bin/nix-instantiate", "/r/a/default.nix", (Attribute("x"),), ("/r/a/lib.nix", "/r/a/default.nix")
    )
    assert argv[0] == "/bin/nix-instantiate"
    assert "--restrict-eval" in argv and "--read-write-mode" in argv
    allowed = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-I"]
    assert allowed == ["/r/a/default.nix", "/r/a/lib.nix"]
    # NIX_PATH and nix.conf's nix-path are not on the search path, so not readable either.
    assert argv[argv.index("nix-path") + 1] == ""
    request = json.loads(argv[-1])
    assert request == {
        "attrs": [["x"]],
        "cacheable": True,
        "file": "/r/a/default.nix",
        "files": ["/r/a/default.nix", "/r/a/lib.nix"],
    }


def test_the_system_argument_is_in_the_request_only_when_given() -> None:
    argv = evaluation_argv("nix-instantiate", "/r/default.nix", (Attribute("x"),), None, "aarch64-linux")
    assert json.loads(argv[-1])["args"] == {"system": "aarch64-linux"}
    # Without it the request is what it was, so kept evaluations keep their keys.
    assert "args" not in json.loads(evaluation_argv("nix-instantiate", "/r/default.nix", (Attribute("x"),), None)[-1])


def test_an_unrestricted_evaluation_has_no_restrictions() -> None:
    argv = evaluation_argv("nix-instantiate", "/r/default.nix", (Attribute(None),), None)
    assert "--restrict-eval" not in argv and "-I" not in argv
    assert json.loads(argv[-1])["cacheable"] is False
    assert json.loads(argv[-1])["attrs"] == [[]]


def test_parse_evaluation_pairs_attributes_with_their_derivations() -> None:
    attrs = (Attribute("a"), Attribute("b"))
    stdout = json.dumps([[f"{DRV}!out"], [f"{DRV}!out", f"{DRV}!dev"]])
    assert parse_evaluation(stdout, attrs) == {
        Attribute("a"): (f"{DRV}!out",),
        Attribute("b"): (f"{DRV}!out", f"{DRV}!dev"),
    }


@pytest.mark.parametrize(
    "stdout",
    ['[["x!out"]]', "[[1]]", '[["no-output-name"], []]', "not json", '{"a": []}'],
)
def test_parse_evaluation_rejects_what_the_wrapper_never_prints(stdout: str) -> None:
    with pytest.raises(EvaluationOutputError):
        parse_evaluation(stdout, (Attribute("a"), Attribute("b")))


def test_refusal_says_what_made_an_evaluation_impure() -> None:
    assert (
        refusal('error: pants-nix-docker: not cacheable: calls builtins.getEnv "HOME"\n(use --show-trace)')
        == 'calls builtins.getEnv "HOME"'
    )
    reads = refusal("error: access to absolute path '/etc/hostname' is forbidden in restricted mode\n")
    assert reads.startswith("reads /etc/hostname, which is not a file of its `nix_source` target")
    assert refusal("error: access to URI 'https://x/y' is forbidden in restricted mode") == "fetches https://x/y"
    assert refusal("warning: w\nerror: attribute 'nope' missing\n") == (
        "failed when restricted to the files Pants tracks (error: attribute 'nope' missing)"
    )


def test_a_kept_evaluation_says_how_nix_exited() -> None:
    assert kept_exit_code("error: x\n\npants-nix-docker-exit: 1\n") == (1, "error: x")
    assert kept_exit_code("\npants-nix-docker-exit: 0\n") == (0, "")
    with pytest.raises(EvaluationOutputError):
        kept_exit_code("error: killed")


def test_is_missing_derivation() -> None:
    assert is_missing_derivation(f"error: cannot build missing derivation '{DRV}'")
    assert is_missing_derivation(f"error: path '{DRV}' is not valid")
    assert not is_missing_derivation("error: builder for '/nix/store/x.drv' failed with exit code 1")
