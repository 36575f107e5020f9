"""Drive the real `./pants` in a scratch copy of this repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from nix_docker_bench.workspace import copy_repo

# The test sandbox holds the `//:repo` files; copying them elsewhere keeps each test's build
# root, dist/ and .pants.d/ its own.
REPO_FILES = Path.cwd()


@dataclass
class PantsResult:
    returncode: int
    stdout: str
    stderr: str

    def assert_success(self) -> "PantsResult":
        assert self.returncode == 0, f"pants failed ({self.returncode}):\n{self.stderr[-6000:]}"
        return self


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def copy_to(cls, dest: Path) -> "Repo":
        copy_repo(REPO_FILES, dest)
        return cls(dest)

    def pants(
        self,
        *args: str,
        caches: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 900,
        pantsd: bool = False,
    ) -> PantsResult:
        """Run `./pants --no-pantsd ARGS`; with `caches`, Pants starts from empty local caches there.
        With `pantsd`, the run uses (and leaves running) this copy's pantsd, as users run Pants:
        stop it with `stop_pantsd`."""
        options = ["--pantsd" if pantsd else "--no-pantsd", "--no-dynamic-ui"]
        if caches is not None:
            options += [f"--local-store-dir={caches}/lmdb_store", f"--named-caches-dir={caches}/named_caches"]
        for attempt in range(2):
            proc = subprocess.run(
                ["./pants", *options, *args],
                cwd=self.root,
                env={**os.environ, **(env or {})},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            # Pants 2.17 sometimes fails to launch a process it has just written (its own
            # find_binary.sh) with "Error launching process after 1 retry for ETXTBSY": a race
            # inside Pants' local runner, not ours. One rerun, said out loud, not hidden.
            if proc.returncode == 0 or "retry for ETXTBSY" not in proc.stderr or attempt:
                break
            print(f"pants {' '.join(args)}: Pants' ETXTBSY launch race; running it again")
        return PantsResult(proc.returncode, proc.stdout, proc.stderr)

    def stop_pantsd(self, timeout: float = 30) -> None:
        """Stops this copy's pantsd. Pants 2.17 has no `kill-pantsd` goal: its pid file says
        which process to stop (SIGTERM, as `kill-pantsd` later does)."""
        import signal
        import time

        for pid_file in self.root.glob(".pids/*/pantsd/pid"):
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)

    def dist_files(self) -> list[Path]:
        dist = self.root / "dist"
        return sorted(p for p in dist.rglob("*") if p.is_file()) if dist.exists() else []

    def write(self, relpath: str, content: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)

    def broken_targets(self, directory: str):
        """A context for tests that write deliberately bad BUILD files under `directory`: they are
        removed afterwards, since any Pants run that infers dependencies parses every BUILD file."""
        import contextlib

        @contextlib.contextmanager
        def scope():
            try:
                yield
            finally:
                shutil.rmtree(self.root / directory, ignore_errors=True)

        return scope()


def run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, **kwargs)


def nix_closure(installables: Iterable[str], repo: Path) -> set[str]:
    paths = run(["nix-build", "--no-out-link", *installables], cwd=repo, check=True).stdout.split()
    return set(run(["nix-store", "-qR", *paths], check=True).stdout.split())
