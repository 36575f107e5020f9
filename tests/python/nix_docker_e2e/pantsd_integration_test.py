"""How users run Pants: with pantsd. A second `package` in one pantsd is memoised (no process
runs again), and an edit to an app invalidates exactly its layer."""

from __future__ import annotations

from pathlib import Path

from nix_docker_bench.workspace import executed_layer_processes, executed_processes
from nix_docker_e2e.harness import Repo
from nix_docker_e2e.oci_archive import manifest_digest

IMAGE = "examples/python-app:image"
ARCHIVE = "dist/examples.python-app/image.tar"
SERVER = "examples/python-app/src/hello_service/server.py"


def test_a_second_run_is_memoised_and_an_edit_rebuilds_one_layer(tmp_path: Path) -> None:
    repo = Repo.copy_to(tmp_path / "repo")
    caches = tmp_path / "caches"

    def package():
        # The same options every run: a changed one would restart pantsd.
        return repo.pants("--keep-sandboxes=always", "package", IMAGE, caches=caches, pantsd=True).assert_success()

    try:
        first = package()
        assert executed_layer_processes(first.stderr), "the first run built no layer"
        digest = manifest_digest(repo.root / ARCHIVE)

        second = package()
        # Memoised in pantsd: no layer, PEX or archive process ran again; only the questions
        # about this machine now are asked again: the Nix store's (building installables, reading
        # the closure) and whether the tools' venvs are still where their links say.
        again = executed_processes(second.stderr)
        per_run = [d for d in again if d.startswith(("Building //", "Computing the runtime closure of"))]
        per_run += [d for d in again if d == "Linking the layer and image tools' venvs into Pants' named caches"]
        # This repository's package set is impure (it reads the host), so it is evaluated again.
        per_run += [d for d in again if d.startswith("Evaluating ") and d.endswith("(not cacheable)")]
        assert per_run and set(again) == set(per_run), again
        assert manifest_digest(repo.root / ARCHIVE) == digest

        server = repo.root / SERVER
        server.write_text(server.read_text() + "\n# an edit\n")
        edited = package()
        # The app layer is small, so the rule makes it in memory: no layer process, a new archive.
        ran = executed_processes(edited.stderr)
        assert not [d for d in ran if d.startswith("Building layer")], ran
        assert [d for d in ran if d.startswith("Writing image archive")], ran
        assert "1 made in memory" in edited.stderr
        assert manifest_digest(repo.root / ARCHIVE) != digest
    finally:
        repo.stop_pantsd()
