"""The per-run step that links each tool's venv into Pants' named caches (`tools._STAGE`), run with
real bash and a real venv's Python in a directory laid out as Pants lays out a sandbox."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from pants_backend_nix_docker.util_rules.tools import _LINK_VENV, _STAGE, TOOLS_DIR


def make_venv(path: Path) -> Path:
    """A venv with a `pex` entry point, as Pants seeds one for a tool PEX."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    (path / "pex").write_text("#!/bin/sh\n")
    (path / "pex").chmod(0o755)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A sandbox whose `.nix-docker-tools` leads to the named cache (which may not exist yet)."""
    root = tmp_path / "sandbox"
    root.mkdir()
    (root / TOOLS_DIR).symlink_to(tmp_path / "named_caches" / "nix_docker_tools")
    return root


def stage(sandbox: Path, *pairs: tuple[str, Path]) -> subprocess.CompletedProcess:
    argv = ["bash", "-c", _STAGE, "stage", _LINK_VENV, *(str(x) for pair in pairs for x in pair)]
    return subprocess.run(argv, cwd=sandbox, capture_output=True, text=True, timeout=60)


def test_each_venv_is_linked_under_its_name_and_then_left_alone(tmp_path: Path, sandbox: Path) -> None:
    store, image = make_venv(tmp_path / "venvs" / "store"), make_venv(tmp_path / "venvs" / "image")
    pairs = ((f"{TOOLS_DIR}/aaa", store / "bin" / "python"), (f"{TOOLS_DIR}/bbb", image / "bin" / "python"))
    first = stage(sandbox, *pairs)
    assert first.returncode == 0, first.stderr
    cache = tmp_path / "named_caches" / "nix_docker_tools"
    # The named cache was missing (as after it is cleared while pantsd runs): it is made.
    assert os.path.realpath(cache / "aaa") == os.path.realpath(store)
    assert os.path.realpath(cache / "bbb") == os.path.realpath(image)
    assert (sandbox / TOOLS_DIR / "aaa" / "pex").is_file()
    inode = os.lstat(cache / "aaa").st_ino
    assert stage(sandbox, *pairs).returncode == 0
    assert os.lstat(cache / "aaa").st_ino == inode, "a working link is left as it is"
    assert sorted(os.listdir(cache)) == ["aaa", "bbb"], "no temporary link is left behind"


def test_a_link_whose_venv_is_gone_is_made_again(tmp_path: Path, sandbox: Path) -> None:
    old = make_venv(tmp_path / "venvs" / "old")
    assert stage(sandbox, (f"{TOOLS_DIR}/aaa", old / "bin" / "python")).returncode == 0
    new = make_venv(tmp_path / "venvs" / "new")
    (old / "pex").unlink()
    assert stage(sandbox, (f"{TOOLS_DIR}/aaa", new / "bin" / "python")).returncode == 0
    assert os.path.realpath(sandbox / TOOLS_DIR / "aaa") == os.path.realpath(new)


def test_a_failure_to_link_fails_the_step(tmp_path: Path, sandbox: Path) -> None:
    good = make_venv(tmp_path / "venvs" / "good")
    result = stage(sandbox, (f"{TOOLS_DIR}/aaa", Path("/bin/false")), (f"{TOOLS_DIR}/bbb", good / "bin" / "python"))
    assert result.returncode != 0
