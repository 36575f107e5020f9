"""Issue #17: the archives in containerd and Docker Engine, each daemon started by the test.
containerd names the image by the archive's fully qualified name; Docker loads the docker-archive
half of the same file; `pants run` drives docker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from nix_docker_bench.buildgrid import free_port
from nix_docker_e2e.daemons import Containerd, Dockerd
from nix_docker_e2e.harness import Repo
from nix_docker_e2e.runtimes import http_get_json

HELLO_OUTPUT = "Hello from a Nix closure in a reproducible OCI image!"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("runtimes") / "repo")


@pytest.fixture(scope="module")
def archives(repo: Repo) -> dict[str, Path]:
    repo.pants("package", "examples/hello:image", "examples/python-app:image").assert_success()
    return {
        "hello": repo.root / "dist/examples.hello/image.tar",
        "python-app": repo.root / "dist/examples.python-app/image.tar",
    }


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory) -> Iterator[Dockerd]:
    with Dockerd(tmp_path_factory.mktemp("dockerd")) as daemon:
        # Said in the test log: how long Docker Engine takes to start here.
        print(f"figure: dockerd started in {daemon.start_seconds:.1f} s")
        yield daemon


def test_ctr_imports_and_runs_the_image_by_its_fully_qualified_name(archives: dict[str, Path], tmp_path: Path) -> None:
    with Containerd(tmp_path / "containerd") as containerd:
        imported = containerd.ctr("images", "import", str(archives["hello"]))
        assert imported.returncode == 0, imported.stderr
        listed = containerd.ctr("images", "ls", "-q").stdout.split()
        assert "docker.io/library/hello:latest" in listed, listed
        name = f"hello-{uuid.uuid4().hex[:8]}"
        ran = containerd.ctr("run", "--rm", "--net-host", "docker.io/library/hello:latest", name)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == HELLO_OUTPUT


def test_docker_loads_and_runs_hello(dockerd: Dockerd, archives: dict[str, Path]) -> None:
    loaded = dockerd.docker("load", "-i", str(archives["hello"]))
    assert loaded.returncode == 0 and "Loaded image: hello:latest" in loaded.stdout, loaded.stderr
    ran = dockerd.docker("run", "--rm", "--network=host", "hello:latest")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == HELLO_OUTPUT


def test_docker_serves_the_python_app(dockerd: Dockerd, archives: dict[str, Path]) -> None:
    assert dockerd.docker("load", "-i", str(archives["python-app"])).returncode == 0
    port, name = free_port(), f"python-app-{uuid.uuid4().hex[:8]}"
    started = dockerd.docker("run", "-d", "--network=host", "-e", f"PORT={port}", "--name", name, "python-app:latest")
    assert started.returncode == 0, started.stderr
    try:
        answer = http_get_json(f"http://127.0.0.1:{port}/", timeout=120)
    finally:
        logs = dockerd.docker("logs", name).stdout
        dockerd.docker("rm", "-f", name)
    assert answer["service"] == "hello-service" and answer["uid"] == 1000, logs


def test_pants_run_with_the_docker_runtime(repo: Repo, dockerd: Dockerd, archives: dict[str, Path]) -> None:
    result = repo.pants("--nix-docker-runtime=docker", "run", "examples/hello:image", env=dockerd.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == HELLO_OUTPUT
