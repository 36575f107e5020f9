"""Issue 13: a pure `.nix` file is evaluated once per run for every image that needs it, and not
again until its files change; an impure one is evaluated on every run, and the log says why."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from nix_docker_bench.workspace import executed_processes
from nix_docker_e2e.harness import PantsResult, Repo
from nix_docker_e2e.oci_archive import manifest_digest

BUILD = """\
nix_sources()
nix_docker_image(name="a", packages=["pkgs.nix#a"])
nix_docker_image(name="b", packages=["pkgs.nix#b"])
nix_docker_image(name="impure", packages=["impure.nix#greeting"])
"""


def derivation(name: str, text: str) -> str:
    return (
        f'derivation {{ name = "{name}"; system = builtins.currentSystem; builder = "/bin/sh"; '
        f'args = [ "-c" "echo {text} > $out" ]; }}'
    )


# A fresh salt per scratch copy: the store paths are new, so nothing is a hit from an earlier run.
SALT = uuid.uuid4().hex[:8]
PKGS = f"""\
let lib = import ./lib.nix; in
{{
  a = {derivation("evalcache-a", "${lib.greeting} a " + SALT)};
  b = {derivation("evalcache-b", "${lib.greeting} b " + SALT)};
}}
"""
IMPURE = "{ greeting = %s; }\n" % derivation("evalcache-impure", '${builtins.getEnv "GREETING"} ' + SALT)
KEEP = "--keep-sandboxes=always"
HERE = "testprojects/evalcache"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo.copy_to(tmp_path / "repo")
    repo.write(f"{HERE}/BUILD", BUILD)
    repo.write(f"{HERE}/pkgs.nix", PKGS)
    repo.write(f"{HERE}/lib.nix", '{ greeting = "hello"; }\n')
    repo.write(f"{HERE}/impure.nix", IMPURE)
    return repo


def evaluations(result: PantsResult) -> list[str]:
    result.assert_success()
    return sorted(executed_processes(result.stderr, "Evaluating").elements())


def digest(repo: Repo, name: str) -> str:
    return manifest_digest(repo.root / f"dist/{HERE.replace('/', '.')}/{name}.tar")


def test_a_pure_file_is_evaluated_once_for_all_images_and_then_not_again(repo: Repo, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    both = (f"{HERE}:a", f"{HERE}:b")
    first = repo.pants(KEEP, "package", *both, caches=caches)
    # One evaluation of the file serves both images.
    assert evaluations(first) == [f"Evaluating a, b of {HERE}/pkgs.nix"], first.stderr[-3000:]
    before = digest(repo, "a"), digest(repo, "b")

    again = repo.pants(KEEP, "package", *both, caches=caches)
    assert evaluations(again) == []
    assert "on every run" not in again.stderr
    assert (digest(repo, "a"), digest(repo, "b")) == before

    # An edit to a file it imports is an edit to the evaluation's inputs.
    repo.write(f"{HERE}/lib.nix", '{ greeting = "hello again"; }\n')
    edited = repo.pants(KEEP, "package", *both, caches=caches)
    assert evaluations(edited) == [f"Evaluating a, b of {HERE}/pkgs.nix"]
    assert digest(repo, "a") != before[0] and digest(repo, "b") != before[1]


def test_an_impure_file_is_evaluated_on_every_run_and_the_log_says_why(repo: Repo, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    seen = []
    for greeting in ("one", "two"):
        result = repo.pants(
            KEEP,
            "--nix-env-vars=+['GREETING']",
            "package",
            f"{HERE}:impure",
            caches=caches,
            env={"GREETING": greeting},
        )
        assert f"Evaluating greeting of {HERE}/impure.nix (not cacheable)" in evaluations(result)
        assert (
            f'Evaluating {HERE}/impure.nix on every run (not cached), because it calls builtins.getEnv "GREETING".'
            in result.stderr
        ), result.stderr[-3000:]
        seen.append(digest(repo, "impure"))
    # Each run saw its own environment.
    assert seen[0] != seen[1]


def test_a_collected_derivation_is_evaluated_again(repo: Repo, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    repo.pants("package", f"{HERE}:a", caches=caches).assert_success()
    before = digest(repo, "a")
    drv = subprocess.run(
        ["nix-instantiate", f"{HERE}/pkgs.nix", "-A", "a"], cwd=repo.root, capture_output=True, text=True, check=True
    ).stdout.strip()
    # What a garbage collection does: the output goes, then its derivation (a live output keeps
    # its .drv alive).
    output = subprocess.run(["nix-store", "-q", "--outputs", drv], capture_output=True, text=True, check=True)
    for path in (output.stdout.strip(), drv):
        deleted = subprocess.run(["nix-store", "--delete", path], capture_output=True, text=True)
        assert deleted.returncode == 0, deleted.stderr
        assert not Path(path).exists()

    again = repo.pants(KEEP, "package", f"{HERE}:a", caches=caches)
    assert evaluations(again) == [f"Evaluating a of {HERE}/pkgs.nix (not cacheable)"], again.stderr[-3000:]
    assert f"Evaluated {HERE}/pkgs.nix again: the derivation its cached evaluation names is no longer" in again.stderr
    assert digest(repo, "a") == before and Path(drv).exists()


def test_a_broken_attribute_of_another_image_breaks_only_that_image(repo: Repo, tmp_path: Path) -> None:
    caches = tmp_path / "caches"
    repo.write(f"{HERE}/BUILD", BUILD + 'nix_docker_image(name="broken", packages=["pkgs.nix#nope"])\n')
    repo.pants("package", f"{HERE}:a", caches=caches).assert_success()
    broken = repo.pants("package", f"{HERE}:broken", caches=caches)
    assert broken.returncode != 0
    assert f"{HERE}:broken: the `packages` entry 'pkgs.nix#nope' could not be realised" in broken.stderr
    assert "attribute 'nope' missing" in broken.stderr
    assert f"nix-build {HERE}/pkgs.nix -A nope" in broken.stderr
