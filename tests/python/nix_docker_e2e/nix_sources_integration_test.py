"""Issue 13: Nix files are Pants targets, so `--changed-since` finds exactly the images whose Nix
inputs changed, in a scratch copy of the repository made a git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nix_docker_e2e.harness import Repo

NIX_SET = "//build-support/nix/default.nix"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]

# Two images of their own: one evaluates a file only it uses (which imports the package set and
# copies a script), one a local flake.
SOLO_BUILD = f"""\
nix_sources()
files(name="greeting", sources=["greeting.txt"])
nix_docker_image(name="image", packages=["solo.nix#greet", "{NIX_SET}#busybox"])
nix_docker_image(name="flaky", packages=[".#hello"])
"""
SOLO_NIX = """\
let
  pkgs = import ../../build-support/nix/default.nix;
  inherit (import ../../build-support/nix/lib.nix) run;
in {
  greet = run { name = "greet-1.0"; script = "mkdir -p $out; cp ${./greeting.txt} $out/greeting.txt"; };
  computed = ./generated + "/x.nix";
}
"""
FLAKE_NIX = """\
{ outputs = { self }: { packages.x86_64-linux.hello = (import ../../build-support/nix/default.nix).hello; }; }
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = Repo.copy_to(tmp_path_factory.mktemp("nix-sources") / "repo")
    repo.write("testprojects/solo/BUILD", SOLO_BUILD)
    repo.write("testprojects/solo/solo.nix", SOLO_NIX)
    repo.write("testprojects/solo/greeting.txt", "hello from solo\n")
    repo.write("testprojects/solo/flake.nix", FLAKE_NIX)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "scratch copy")
    return repo


def git(repo: Repo, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=repo.root, check=True, capture_output=True)


def images(repo: Repo, *changed: str) -> set[str]:
    """Every image, or with `--changed-*` options the images they select (Pants takes no target
    arguments beside them)."""
    specs = () if changed else ("::",)
    result = repo.pants(*changed, "--filter-target-type=nix_docker_image", "list", *specs).assert_success()
    return set(result.stdout.split())


def changed_images(repo: Repo, edit: str) -> set[str]:
    """The images `--changed-since=HEAD --changed-dependents=transitive` lists after appending a
    comment to `edit`; the edit is undone afterwards."""
    path = repo.root / edit
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        return images(repo, "--changed-since=HEAD", "--changed-dependents=transitive")
    finally:
        path.write_text(original)


def test_an_edit_to_the_shared_library_lists_every_image_that_uses_it(repo: Repo) -> None:
    every = images(repo)
    assert {"examples/python-app:image", "examples/hello:image", "testprojects/solo:image"} <= every
    # Every image of this repository evaluates default.nix, which imports lib.nix.
    assert changed_images(repo, "build-support/nix/lib.nix") == every
    # A script lib.nix copies into builds, through its own `files` target.
    assert changed_images(repo, "build-support/nix/patch-libs.sh") == every


def test_an_edit_to_a_file_one_image_uses_lists_that_image_alone(repo: Repo) -> None:
    assert changed_images(repo, "testprojects/solo/solo.nix") == {"testprojects/solo:image"}
    # A file the Nix file copies by path literal (`${./greeting.txt}`).
    assert changed_images(repo, "testprojects/solo/greeting.txt") == {"testprojects/solo:image"}
    # A local flake installable (`.#hello`) depends on its flake.nix.
    assert changed_images(repo, "testprojects/solo/flake.nix") == {"testprojects/solo:flaky"}


def test_an_edit_to_an_app_source_lists_its_image_alone(repo: Repo) -> None:
    server = "examples/python-app/src/hello_service/server.py"
    assert changed_images(repo, server) == {"examples/python-app:image"}


def test_changed_dependents_package_builds_exactly_those_images(repo: Repo) -> None:
    path = repo.root / "testprojects/solo/greeting.txt"
    original = path.read_text()
    path.write_text("hello again from solo\n")
    try:
        repo.pants("--changed-since=HEAD", "--changed-dependents=transitive", "package").assert_success()
    finally:
        path.write_text(original)
    built = {p.relative_to(repo.root / "dist").as_posix() for p in repo.dist_files() if p.name.endswith(".tar")}
    assert built == {"testprojects.solo/image.tar"}


def test_dependencies_and_tailor(repo: Repo) -> None:
    deps = set(repo.pants("dependencies", "examples/python-app:image").assert_success().stdout.split())
    assert deps == {"build-support/nix/default.nix", "examples/python-app:app"}
    nix_deps = set(repo.pants("dependencies", "build-support/nix/default.nix").assert_success().stdout.split())
    assert nix_deps == {
        "build-support/nix/lib.nix",
        "build-support/nix/aarch64-linux.nix",
        "build-support/nix/patch-libs.sh:scripts",
    }
    solo = repo.pants("dependencies", "testprojects/solo/solo.nix").assert_success()
    assert set(solo.stdout.split()) == {
        "build-support/nix/default.nix",
        "build-support/nix/lib.nix",
        "testprojects/solo/greeting.txt:greeting",
    }
    # The computed path (`./generated + "/x.nix"`) cannot be followed: said once, with its line.
    assert "testprojects/solo/solo.nix:6 names 'testprojects/solo/generated'" in solo.stderr, solo.stderr
    repo.pants("tailor", "--check", "::").assert_success()


def test_tailor_adds_nix_sources_where_nix_files_have_none(repo: Repo, tmp_path: Path) -> None:
    with repo.broken_targets("testprojects/untailored"):
        repo.write("testprojects/untailored/pkgs.nix", "{ }\n")
        check = repo.pants("tailor", "--check", "::")
        assert check.returncode != 0
        assert "testprojects/untailored/BUILD" in check.stdout + check.stderr
        repo.pants("tailor", "::").assert_success()
        assert "nix_sources(" in (repo.root / "testprojects/untailored/BUILD").read_text()


def test_nix_sources_in_peek_and_filedeps(repo: Repo) -> None:
    peek = repo.pants("peek", "build-support/nix:nix").assert_success().stdout
    assert '"target_type": "nix_sources"' in peek
    # Dict fields show as the BUILD file writes them.
    (image,) = json.loads(repo.pants("peek", "examples/python-app:image").assert_success().stdout)
    assert image["users"] == {"app": 1000}
    assert image["directories"] == {"/data": {"owner": "app", "mode": "0750"}}
    filedeps = repo.pants("filedeps", "--transitive", "testprojects/solo:image").assert_success().stdout.split()
    assert {"testprojects/solo/solo.nix", "build-support/nix/lib.nix", "testprojects/solo/greeting.txt"} <= set(
        filedeps
    )
