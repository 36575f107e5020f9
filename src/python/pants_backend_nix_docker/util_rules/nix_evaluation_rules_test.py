"""What an evaluation is batched with and keyed by, through Pants' rule engine (no Nix needed:
dependencies are declared, so Nix-file inference is left out)."""

from __future__ import annotations

import pytest
from pants.core.target_types import FilesGeneratorTarget
from pants.core.util_rules import source_files
from pants.engine.unions import UnionRule
from pants.testutil.rule_runner import QueryRule, RuleRunner

from pants_backend_nix_docker.nix.evaluation import Attribute
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixSourcesGeneratorTarget, NixSourceTarget
from pants_backend_nix_docker.util_rules import nix, nix_evaluation, nix_sources
from pants_backend_nix_docker.util_rules.nix_evaluation import (
    NixEvaluationInputs,
    NixEvaluationInputsRequest,
    NixFileAttributes,
)


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *nix_evaluation.rules(),
            *nix.rules(),
            *source_files.rules(),
            *(r for r in nix_sources.rules() if not isinstance(r, UnionRule)),
            QueryRule(NixFileAttributes, ()),
            QueryRule(NixEvaluationInputs, (NixEvaluationInputsRequest,)),
        ],
        target_types=[NixDockerImageTarget, NixSourceTarget, NixSourcesGeneratorTarget, FilesGeneratorTarget],
    )
    runner.set_options(["--nix-docker-cacert-package=//nix/certs.nix#cacert"])
    return runner


def test_every_image_attribute_of_a_file_is_evaluated_together(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "nix/BUILD": "nix_sources()",
            "nix/pkgs.nix": "{ }",
            "nix/certs.nix": "{ }",
            "a/BUILD": 'nix_docker_image(name="image", packages=["//nix/pkgs.nix#hello", "nixpkgs#jq"])',
            "b/BUILD": (
                'nix_docker_image(name="image", packages=["../nix/pkgs.nix#python3", "//nix/pkgs.nix#hello"], '
                "ca_certificates=True)"
            ),
        }
    )
    attributes = rule_runner.request(NixFileAttributes, [])
    assert dict(attributes.by_file) == {
        "nix/certs.nix": (Attribute("cacert"),),
        "nix/pkgs.nix": (Attribute("hello"), Attribute("python3")),
    }
    assert attributes.batch("nix/pkgs.nix", Attribute("hello")) == (Attribute("hello"), Attribute("python3"))
    # An attribute no image names (a `pants run` of a changed BUILD file) is evaluated alone.
    assert attributes.batch("nix/pkgs.nix", Attribute("jq")) == (Attribute("jq"),)


def test_the_key_holds_the_files_of_the_nix_source_and_its_dependencies(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "nix/BUILD": (
                'nix_source(name="pkgs", source="pkgs.nix", dependencies=[":lib", ":patches"])\n'
                'nix_source(name="lib", source="lib.nix")\n'
                'files(name="patches", sources=["*.patch"])\n'
                'nix_source(name="unrelated", source="other.nix")\n'
            ),
            "nix/pkgs.nix": "{ }",
            "nix/lib.nix": "{ }",
            "nix/fix.patch": "--- a\n",
            "nix/other.nix": "{ }",
        }
    )
    inputs = rule_runner.request(NixEvaluationInputs, [NixEvaluationInputsRequest("nix/pkgs.nix")])
    assert inputs.files == ("nix/fix.patch", "nix/lib.nix", "nix/pkgs.nix")
    assert inputs.fingerprint is not None

    rule_runner.write_files({"nix/lib.nix": "{ changed = true; }"})
    changed = rule_runner.request(NixEvaluationInputs, [NixEvaluationInputsRequest("nix/pkgs.nix")])
    assert changed.fingerprint != inputs.fingerprint


def test_a_file_no_nix_source_owns_is_not_cacheable(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"nix/BUILD": 'files(name="all", sources=["*"])', "nix/pkgs.nix": "{ }"})
    inputs = rule_runner.request(NixEvaluationInputs, [NixEvaluationInputsRequest("nix/pkgs.nix")])
    assert inputs.fingerprint is None and inputs.files == ()
    assert inputs.why_none and "no `nix_source` target" in inputs.why_none and "pants tailor" in inputs.why_none
