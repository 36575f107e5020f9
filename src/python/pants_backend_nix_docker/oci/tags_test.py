from __future__ import annotations

import pytest

from pants_backend_nix_docker.oci.tags import TagError, check_template, closure_hash, render, repository_value

VALUES = {"git_revision": "3f2a9c1d0b4e", "closure_hash": "5e0c2a7b91d3", "repository": "acme-hello"}


def test_renders_each_placeholder() -> None:
    assert render("{git_revision}", VALUES) == "3f2a9c1d0b4e"
    assert render("py-{closure_hash}", VALUES) == "py-5e0c2a7b91d3"
    assert render("{repository}-1.0", VALUES) == "acme-hello-1.0"
    assert render("latest", VALUES) == "latest"


@pytest.mark.parametrize(
    "template,words",
    [("{nope}", "the placeholders are"), ("-{git_revision}", "not a tag"), ("x" * 120 + "{closure_hash}", "not a tag")],
)
def test_bad_templates_are_caught_before_any_build(template: str, words: str) -> None:
    with pytest.raises(TagError, match=words):
        check_template(template)


def test_closure_hash_depends_on_the_set_of_paths_only() -> None:
    a, b = "/nix/store/" + "a" * 32 + "-x", "/nix/store/" + "b" * 32 + "-y"
    assert closure_hash([a, b]) == closure_hash([b, a]) != closure_hash([a])
    assert len(closure_hash([a])) == 12


def test_repository_slashes_become_dashes() -> None:
    assert repository_value("acme/hello") == "acme-hello"
