"""Issue #4: layers are Pants process outputs, built once however many images share them."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from nix_docker_bench.workspace import executed_layer_processes, executed_processes
from nix_docker_e2e.harness import Repo
from nix_docker_e2e.oci_archive import layer_digests

SERVICES = [
    "accounts",
    "billing",
    "catalog",
    "checkout",
    "inventory",
    "notifications",
    "payments",
    "search",
    "shipping",
    "users",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("caching") / "repo")


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("caches")


@pytest.fixture(scope="module")
def first_build(repo: Repo, caches: Path):
    result = repo.pants("--keep-sandboxes=always", "package", "examples/monorepo::", caches=caches).assert_success()
    return result, executed_layer_processes(result.stderr)


def test_each_shared_layer_is_built_once_per_run(repo: Repo, first_build) -> None:
    _, executed = first_build
    assert max(executed.values()) == 1, f"a layer process ran twice: {executed.most_common(3)}"
    store_layers = {d for s in SERVICES for d in layer_digests(repo.root / f"dist/examples.monorepo/{s}.tar")[:-2]}
    store_processes = [d for d in executed if d.startswith("Building layers: ")]
    # Store layers are built a few per process ([nix-docker].layer_buckets), and the ten images
    # share their base closure: far fewer processes than layers, none run twice.
    assert 1 <= len(store_processes) < len(store_layers)
    # The identical root filesystem layer (same users, same CA bundle) was built once for all ten.
    assert sum(1 for d in executed if "image root filesystem" in d) == 1
    # Each service's small app layer is made in memory: ten images cost no process of their own.
    assert not [d for d in executed if "Pants artifacts" in d]
    assert first_build[0].stderr.count(", 1 made in memory\n") == len(SERVICES)


def test_an_app_change_rebuilds_only_that_app_layer(repo: Repo, caches: Path, first_build) -> None:
    before = {s: layer_digests(repo.root / f"dist/examples.monorepo/{s}.tar") for s in SERVICES}
    module = repo.root / "examples/monorepo/src/monorepo_services/billing.py"
    original = module.read_text()
    try:
        module.write_text(original.replace('"role": "billing"', '"role": "billing", "version": 2'))
        result = repo.pants("--keep-sandboxes=always", "package", "examples/monorepo::", caches=caches).assert_success()
    finally:
        module.write_text(original)
    # Not even a process: the app layer is small, so the rule makes it in memory.
    assert executed_layer_processes(result.stderr) == Counter()
    after = {s: layer_digests(repo.root / f"dist/examples.monorepo/{s}.tar") for s in SERVICES}
    assert {s for s in SERVICES if after[s] != before[s]} == {"billing"}
    assert after["billing"][:-1] == before["billing"][:-1]
    assert "layers: 17 from the local cache, 1 made in memory" in result.stderr


def test_an_edit_to_image_tool_code_leaves_store_layers_cached(repo: Repo, caches: Path, first_build) -> None:
    # The root-filesystem layer and the archive are the image tool's; the store layers' key holds
    # only the store-layer tool's sources.
    plugin = repo.root / "src/python/pants_backend_nix_docker/oci"
    originals = {name: (plugin / name).read_text() for name in ("rootfs.py", "archive.py")}
    try:
        for name, text in originals.items():
            (plugin / name).write_text(text + "\n# an edit\n")
        result = repo.pants(
            "--keep-sandboxes=always", "package", "examples/monorepo:billing", caches=caches
        ).assert_success()
    finally:
        for name, text in originals.items():
            (plugin / name).write_text(text)
    executed = executed_layer_processes(result.stderr)
    assert not [d for d in executed if d.startswith("Building layers: ")], executed
    # The edit reached the image tool: its layers were built again.
    assert "Building layer: image root filesystem of examples/monorepo:billing" in executed, executed


def test_another_users_paths_leave_every_layer_cached(repo: Repo, caches: Path, first_build, tmp_path: Path) -> None:
    """A layer's key is what it is made of, not where this user keeps things: with another PATH, and
    Pants run from another path (as under another HOME, or a CI job's own cache directory), every
    layer of the first build is reused. (Pants' own shims for running a PEX hold both.)"""
    real = Path(os.environ.get("PANTS_NIX_DOCKER_CACHE", Path.home() / ".cache" / "pants-nix-docker"))
    other = tmp_path / "another-users-cache"
    other.mkdir()
    (other / "pants-2.17.1-venv").symlink_to(real / "pants-2.17.1-venv")
    for stamp in real.glob("bootstrap-v*.ok"):
        (other / stamp.name).touch()
    extra_bin = tmp_path / "bin"
    extra_bin.mkdir()
    result = repo.pants(
        "--keep-sandboxes=always",
        "package",
        "examples/monorepo:billing",
        caches=caches,
        env={"PATH": f"{extra_bin}:{os.environ['PATH']}", "PANTS_NIX_DOCKER_CACHE": str(other)},
    ).assert_success()
    # The launch really was another user's: Pants ran from the other path.
    assert f"{other}/pants-2.17.1-venv/bin/python" in "\n".join(_kept_shims(result.stderr))
    assert executed_layer_processes(result.stderr) == Counter()
    assert "layers: 17 from the local cache, 1 made in memory" in result.stderr


def _kept_shims(stderr: str) -> list[str]:
    """The contents of the PEX shims in this run's kept sandboxes (Pants writes its interpreter
    path into them)."""
    found = []
    for sandbox in re.findall(r"Preserving local process execution dir (\S+) for", stderr):
        found += [shim.read_text() for shim in Path(sandbox).glob("*_pex_shim.sh")]
    return found


def test_remote_cache_hit_runs_no_layer_process_locally(repo: Repo, tmp_path: Path) -> None:
    from nix_docker_bench.buildgrid import BuildGrid
    from nix_docker_e2e.harness import REPO_FILES
    from nix_docker_e2e.oci_archive import sha256_file

    target = "examples/python-app:image"
    archive = repo.root / "dist/examples.python-app/image.tar"
    with BuildGrid(tmp_path / "buildgrid", REPO_FILES) as grid:
        repo.pants(*grid.pants_options(), "package", target, caches=tmp_path / "machine-a").assert_success()
        written = sha256_file(archive)
        archive.unlink()
        # A fresh machine: empty local store and named caches, and no local cache reads at all.
        second = repo.pants(
            *grid.pants_options(),
            "--no-local-cache",
            "--keep-sandboxes=always",
            "--stats-log",
            "package",
            target,
            caches=tmp_path / "machine-b",
        ).assert_success()
    assert executed_layer_processes(second.stderr) == Counter(), "no layer process ran locally"
    assert "layers: 17 from the remote cache, 1 made in memory" in second.stderr
    # Every cacheable process (layers, archive, the PEX) was a remote hit; Nix's answers are
    # never cached, so they never ask.
    if not re.search(r"remote_cache_requests_uncached: 0\b", second.stderr):
        pytest.fail(
            "a cacheable process missed the remote cache; these ran:\n"
            + "\n".join(sorted(executed_processes(second.stderr)))
        )
    cached = re.search(r"remote_cache_requests_cached: (\d+)", second.stderr)
    assert cached and int(cached.group(1)) > 0
    assert sha256_file(archive) == written
