"""A BuildGrid REAPI server on 127.0.0.1, for the tests and the benchmark."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BuildGrid:
    """A BuildGrid REAPI server on 127.0.0.1 (disk CAS, action cache) for the length of a `with`."""

    CONFIG = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
storages:
  - !disk-storage &main-storage
    path: {storage}
caches:
  - !lru-action-cache &main-action
    storage: *main-storage
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: false
instances:
  - name: ''
    services:
      - !action-cache
        cache: *main-action
      - !cas
        storage: *main-storage
      - !bytestream
        storage: *main-storage
"""

    def __init__(self, workdir: Path, buildroot: Path) -> None:
        self.workdir = workdir
        self.buildroot = buildroot
        self.port = free_port()
        self.address = f"grpc://127.0.0.1:{self.port}"

    def pants_options(self) -> list[str]:
        return [
            "--remote-cache-read",
            "--remote-cache-write",
            f"--remote-store-address={self.address}",
            "--remote-instance-name=",
        ]

    def __enter__(self) -> "BuildGrid":
        bgd = subprocess.run(
            [str(self.buildroot / "build-support/bootstrap/buildgrid.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
        (self.workdir / "cas").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "bgd.yml"
        config.write_text(self.CONFIG.format(port=self.port, storage=self.workdir / "cas"))
        self._log = open(self.workdir / "bgd.log", "w")
        self.proc = subprocess.Popen([bgd, "server", "start", str(config)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"BuildGrid did not start:\n{(self.workdir / 'bgd.log').read_text()}")
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
