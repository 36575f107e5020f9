"""The ./pants launcher: a fast path when all is installed, instructions when it cannot install."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nix_docker_e2e.harness import REPO_FILES


@pytest.fixture
def scratch():
    # World-readable, so an unprivileged user can run the launcher from it.
    root = Path(tempfile.mkdtemp(prefix="launcher-", dir="/tmp"))
    root.chmod(0o755)
    try:
        shutil.copy(REPO_FILES / "pants", root / "pants")
        shutil.copytree(REPO_FILES / "build-support" / "bootstrap", root / "build-support" / "bootstrap")
        yield root
    finally:
        shutil.rmtree(root)


def fake_cache(root: Path) -> Path:
    """A cache whose 'Pants' only reports its arguments, with the stamp of a finished bootstrap."""
    cache = root / "cache"
    venv_bin = cache / "pants-2.17.1-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "pants").write_text("#!/bin/sh\nexit 99\n")
    # ./pants runs Pants through build-support/bootstrap/run_pants.py on the venv's Python.
    (venv_bin / "python").write_text('#!/bin/sh\necho "python ran with: $*"\n')
    for script in ("pants", "python"):
        (venv_bin / script).chmod(0o755)
    version = next(line for line in (root / "pants").read_text().splitlines() if line.startswith("bootstrap_version="))
    (cache / f"bootstrap-v{version.split('=')[1]}.ok").touch()
    (root / "3rdparty" / "tools").mkdir(parents=True)
    (root / "3rdparty" / "tools" / "pex-2.1.137.pex").touch()
    return cache


def package_hello(root: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./pants", "package", "examples/hello:image"],
        cwd=root,
        env={**os.environ, "PANTS_NIX_DOCKER_CACHE": str(cache)},
        capture_output=True,
        text=True,
    )


def test_fast_path_execs_pants_without_bootstrapping(scratch: Path) -> None:
    cache = fake_cache(scratch)
    proc = package_hello(scratch, cache)
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip()
        == f"python ran with: {scratch}/build-support/bootstrap/run_pants.py package examples/hello:image"
    )
    assert "[bootstrap]" not in proc.stderr


def test_the_native_client_is_execd_first(scratch: Path) -> None:
    cache = fake_cache(scratch)
    # Pants' native client as the wheel installs it: not executable (pip drops the mode).
    native = cache / "pants-2.17.1-venv/lib/python3.9/site-packages/pants/bin/native_client"
    native.parent.mkdir(parents=True)
    native.write_text('#!/bin/sh\necho "native ran with: $* (server: $_PANTS_SERVER_EXE), parent $PPID"\nexit 3\n')
    native.chmod(0o644)
    proc = subprocess.Popen(
        ["./pants", "package", "examples/hello:image"],
        cwd=scratch,
        env={**os.environ, "PANTS_NIX_DOCKER_CACHE": str(cache)},
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate()
    server = f"{scratch}/build-support/bootstrap/pants-server"
    # Exec'd: the client is the launcher's own process (its parent is the test), so a signal sent
    # to ./pants reaches it.
    assert out.strip() == f"native ran with: package examples/hello:image (server: {server}), parent {os.getpid()}"
    assert proc.returncode == 3


def test_unprivileged_user_is_told_what_is_missing(scratch: Path) -> None:
    # A PATH with the shell utilities the launcher needs and none of the tools it installs.
    bin_dir = scratch / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "id", "grep", "awk", "dirname", "cat", "mktemp", "rm"):
        found = shutil.which(tool)
        assert found, f"{tool} is not on PATH"
        os.symlink(found, bin_dir / tool)
    os.chmod(scratch, 0o777)

    def become_nobody() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    proc = subprocess.run(
        ["./pants", "--version"],
        preexec_fn=become_nobody,
        cwd=scratch,
        env={"PATH": str(bin_dir), "HOME": str(scratch / "home")},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    for words in [
        "This machine lacks:",
        "nix-bin",
        "skopeo",
        "umoci",
        "runc",
        "podman",
        "docker-registry",
        "python3.9",
        "only on Debian 12 as root",
        "Then run ./pants again.",
    ]:
        assert words in proc.stderr, proc.stderr
    assert not (scratch / "home" / ".cache" / "pants-nix-docker" / "pants-2.17.1-venv").exists()
