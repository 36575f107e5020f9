"""Issue #7: faults. An interrupted build, two builds of one output at once, a full disk for dist/,
a remote cache that is down, and a store path garbage-collected under a layer: each ends in a
correct image or a clear error, and the next run gives the same image."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nix_docker_bench.buildgrid import free_port
from nix_docker_e2e.harness import Repo, run
from nix_docker_e2e.oci_archive import manifest_digest

FAULTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def faults_figure():
    """Says, after the module's tests (however many ran), which faults were injected."""
    yield
    print(f"FIGURE: faults: {len(FAULTS)} injected ({'; '.join(FAULTS)}), 0 corrupt images")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("faults") / "repo")


@pytest.fixture(scope="module")
def reference(repo: Repo, tmp_path_factory) -> dict[str, str]:
    """Digests of clean builds, from caches of their own."""
    caches = tmp_path_factory.mktemp("reference-caches")
    repo.pants("package", "examples/hello:image", "examples/python:image", caches=caches).assert_success()
    return {name: manifest_digest(repo.root / f"dist/examples.{name}/image.tar") for name in ("hello", "python")}


def pants_popen(repo: Repo, *args: str, caches: Path) -> subprocess.Popen:
    options = [
        "--no-pantsd",
        "--no-dynamic-ui",
        f"--local-store-dir={caches}/lmdb_store",
        f"--named-caches-dir={caches}/named_caches",
    ]
    return subprocess.Popen(
        ["./pants", *options, *args], cwd=repo.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def layer_tool_running() -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"--compression" in cmdline and b"layers" in cmdline:
            return True
    return False


def loadable(archive: Path) -> bool:
    return run(["skopeo", "inspect", "--raw", f"oci-archive:{archive}:latest"]).returncode == 0


def test_interrupted_mid_layer_then_rerun(repo: Repo, reference: dict[str, str], tmp_path: Path) -> None:
    archive = repo.root / "dist/examples.python/image.tar"
    archive.unlink()
    caches = tmp_path / "caches"
    proc = pants_popen(repo, "package", "examples/python:image", caches=caches)
    deadline = time.monotonic() + 300
    while not layer_tool_running():
        assert proc.poll() is None and time.monotonic() < deadline, "no layer process ever ran"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    FAULTS.append("SIGINT while a layer was being written")
    assert proc.returncode != 0, stderr[-2000:]
    assert not archive.exists() or loadable(archive), "an interrupted build left a broken image in dist/"
    # The same caches, again: nothing half-written was kept, and the image is the clean build's.
    repo.pants("package", "examples/python:image", caches=caches).assert_success()
    assert manifest_digest(archive) == reference["python"]


def test_two_builds_of_one_output_at_once(repo: Repo, reference: dict[str, str], tmp_path: Path) -> None:
    archive = repo.root / "dist/examples.hello/image.tar"
    caches = tmp_path / "caches"
    procs = [pants_popen(repo, "package", "examples/hello:image", caches=caches) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    FAULTS.append("two concurrent `pants package` runs writing one output")
    for p, (_, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-2000:]
    assert loadable(archive) and manifest_digest(archive) == reference["hello"]


def test_a_full_disk_for_dist(repo: Repo, reference: dict[str, str]) -> None:
    small = repo.root / "smalldist"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        full = repo.pants("--pants-distdir=smalldist", "package", "examples/python:image")
        FAULTS.append("dist/ on a full 2 MB filesystem")
        assert full.returncode != 0
        # Pants names the file it could not write (which one depends on its write order).
        assert (
            "No space left on device" in full.stderr and "smalldist/examples.python/image." in full.stderr
        ), full.stderr[-2000:]
        # Pants writes dist/ in place, so a cut-off file can be left there. It is never mistaken
        # for an image: the archive's index.json and manifest.json are its last members.
        partial = small / "examples.python/image.tar"
        assert not partial.exists() or not loadable(partial)
    finally:
        subprocess.run(["umount", str(small)], check=True)
        small.rmdir()
    # With room again, the same image.
    repo.pants("package", "examples/python:image").assert_success()
    assert manifest_digest(repo.root / "dist/examples.python/image.tar") == reference["python"]


def test_a_remote_cache_that_is_down(repo: Repo, reference: dict[str, str], tmp_path: Path) -> None:
    down = [
        "--remote-cache-read",
        "--remote-cache-write",
        f"--remote-store-address=grpc://127.0.0.1:{free_port()}",
        "--remote-instance-name=",
        "--remote-cache-warnings=first_only",
    ]
    result = repo.pants(*down, "package", "examples/hello:image", caches=tmp_path / "caches")
    FAULTS.append("a remote cache that does not answer")
    result.assert_success()
    assert manifest_digest(repo.root / "dist/examples.hello/image.tar") == reference["hello"]


def test_a_store_path_collected_under_its_layer(repo: Repo, tmp_path: Path, capsys) -> None:
    # A package of its own (salted: a fresh store path), so collecting it harms nothing else.
    salt = str(time.time_ns())
    repo.write(
        "testprojects/gc/default.nix",
        "let lib = import ../../build-support/nix/lib.nix; in {\n"
        f'  victim = lib.run {{ name = "gc-victim-1.0"; script = "mkdir -p $out && echo {salt} > $out/salt"; }};\n}}\n',
    )
    repo.write("testprojects/gc/BUILD", 'nix_docker_image(name="image", packages=["default.nix#victim"])\n')
    repo.pants("package", "testprojects/gc:image", caches=tmp_path / "caches").assert_success()
    path = run(
        ["nix-build", "--no-out-link", "testprojects/gc/default.nix", "-A", "victim"], cwd=repo.root, check=True
    ).stdout.strip()
    collected = run(["nix-store", "--delete", path])
    assert collected.returncode == 0, collected.stderr

    # What a layer process does when its path was collected after the closure was read.
    from pants_backend_nix_docker.oci.compression import LayerCodec
    from pants_backend_nix_docker.oci.store_layer_tool import main

    assert main(["layers", *LayerCodec.of("gzip").argv, "--out-dir", str(tmp_path / "out"), "--layer", path]) == 1
    assert "garbage-collected after the image's closure was read. Build again" in capsys.readouterr().err
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()], "a half-written blob was left"
    FAULTS.append("a store path garbage-collected before its layer was written")

    # A whole run after the collection realises it again (fresh caches: its layer is built): correct.
    again = repo.pants("package", "testprojects/gc:image", caches=tmp_path / "caches2").assert_success()
    assert "layers: 1 built, 1 made in memory" in again.stderr, again.stderr[-1500:]
    report = (repo.root / "dist/testprojects.gc/image.report.json").read_text()
    assert path in report and os.path.isdir(path)
