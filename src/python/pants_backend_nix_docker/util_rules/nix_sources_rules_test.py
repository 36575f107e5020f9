"""The image side of Nix-source inference, through Pants' rule engine (no Nix needed)."""

from __future__ import annotations

import pytest
from pants.core.target_types import FilesGeneratorTarget
from pants.engine.addresses import Address
from pants.engine.target import InferredDependencies
from pants.testutil.rule_runner import QueryRule, RuleRunner

from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixSourcesGeneratorTarget
from pants_backend_nix_docker.util_rules import nix, nix_sources
from pants_backend_nix_docker.util_rules.nix_sources import InferNixImageDependencies, NixImageInferenceFieldSet


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[*nix_sources.rules(), *nix.rules(), QueryRule(InferredDependencies, (InferNixImageDependencies,))],
        target_types=[NixDockerImageTarget, NixSourcesGeneratorTarget, FilesGeneratorTarget],
    )
    runner.set_options(["--nix-docker-cacert-package=//nix/certs.nix#cacert"])
    return runner


def inferred(rule_runner: RuleRunner, address: Address) -> set[str]:
    target = rule_runner.get_target(address)
    result = rule_runner.request(
        InferredDependencies, [InferNixImageDependencies(NixImageInferenceFieldSet.create(target))]
    )
    return {a.spec for a in result.include}


def test_packages_files_flakes_and_the_cacert_option(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "nix/BUILD": "nix_sources()",
            "nix/pkgs.nix": "{ }",
            "nix/certs.nix": "{ }",
            "app/BUILD": (
                'nix_sources()\nnix_docker_image(name="image", packages=["//nix/pkgs.nix#hello", ".#tool", '
                '"nixpkgs#jq", "/nix/store/' + "a" * 32 + '-x-1.0"], ca_certificates=True)'
            ),
            "app/flake.nix": "{ outputs = { self }: { }; }",
            "app/flake.lock": "{}",
        }
    )
    assert inferred(rule_runner, Address("app", target_name="image")) == {
        "nix/pkgs.nix",
        "nix/certs.nix",
        "app/flake.nix",
        "app/flake.lock",
    }


def test_a_catch_all_files_owner_is_never_the_dependency(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "BUILD": 'files(name="everything", sources=["**/*"])',
            "nix/pkgs.nix": "{ }",
            "app/BUILD": 'nix_docker_image(name="image", packages=["//nix/pkgs.nix#hello"])',
        }
    )
    # Owned only by `files`: no dependency (and a warning saying to run tailor).
    assert inferred(rule_runner, Address("app", target_name="image")) == set()
    rule_runner.write_files({"nix/BUILD": "nix_sources()"})
    assert inferred(rule_runner, Address("app", target_name="image")) == {"nix/pkgs.nix"}
