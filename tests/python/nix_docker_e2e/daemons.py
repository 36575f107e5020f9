"""Container daemons started by a test, each with its own state, socket and log under a temporary
directory, and stopped (with everything they started) when the `with` block ends."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence


class _Daemon:
    def __init__(self, workdir: Path, argv: Sequence[str], ready: Sequence[str], what: str) -> None:
        self.workdir, self.argv, self.ready, self.what = workdir, list(argv), list(ready), what
        self.log = workdir / f"{what}.log"
        self.start_seconds = 0.0

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=self._log_file, stderr=subprocess.STDOUT)
        while subprocess.run(self.ready, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() - started > 120:
                self.__exit__()
                raise RuntimeError(f"{self.what} did not start; its log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - started
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()
        _unmount_under(self.workdir)


def _unmount_under(root: Path) -> None:
    """What a stopped daemon left mounted under its directory: dockerd keeps its default network
    namespace bind-mounted in its exec root, which would make the directory impossible to delete."""
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for path in sorted((m for m in mounted if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", path], capture_output=True)


class Dockerd(_Daemon):
    """Docker Engine (Debian's docker.io) with overlay2 and runc; no iptables or bridge, so
    containers use the host's network."""

    def __init__(self, workdir: Path) -> None:
        self.socket = workdir / "docker.sock"
        argv = [
            "dockerd",
            f"--data-root={workdir}/root",
            f"--exec-root={workdir}/exec",
            f"--host=unix://{self.socket}",
            f"--pidfile={workdir}/docker.pid",
            "--iptables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        ]
        super().__init__(workdir, argv, ["docker", f"--host=unix://{self.socket}", "version"], "dockerd")

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{self.socket}"}

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        argv = ["docker", f"--host=unix://{self.socket}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


class Containerd(_Daemon):
    def __init__(self, workdir: Path) -> None:
        self.address = workdir / "containerd.sock"
        argv = ["containerd", f"--root={workdir}/root", f"--state={workdir}/state", f"--address={self.address}"]
        super().__init__(workdir, argv, ["ctr", f"--address={self.address}", "version"], "containerd")

    def ctr(self, *args: str) -> subprocess.CompletedProcess:
        argv = ["ctr", f"--address={self.address}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)
