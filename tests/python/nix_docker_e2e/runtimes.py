"""Run built images with real runtimes: runc from an unpacked bundle, podman, and HTTP probes."""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Sequence

from nix_docker_e2e.harness import run


def unpack_bundle(archive: Path, workdir: Path, tag: str = "latest") -> Path:
    """Our archive *is* an OCI layout: extract it and hand it to umoci like any layout."""
    layout = workdir / "layout"
    with tarfile.open(archive) as tf:
        tf.extractall(layout)
    bundle = workdir / "bundle"
    run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    # runc cannot allocate a terminal here; a container without one runs fine as root.
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config))
    return bundle


def runc_run(bundle: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    name = f"nix-docker-test-{uuid.uuid4().hex[:12]}"
    try:
        return subprocess.run(["runc", "run", "-b", str(bundle), name], capture_output=True, text=True, timeout=timeout)
    finally:
        subprocess.run(["runc", "delete", "--force", name], capture_output=True)


PODMAN_RUN = [
    "podman",
    "run",
    "--rm",
    "--network=none",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
]


def edit_process(
    bundle: Path, *, args: Sequence[str] | None = None, env: dict[str, str] | None = None, host_network: bool = False
) -> None:
    """Change what the unpacked image runs, as `docker run` flags would."""
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    if args is not None:
        config["process"]["args"] = list(args)
    if env:
        kept = [e for e in config["process"]["env"] if e.split("=", 1)[0] not in env]
        config["process"]["env"] = kept + [f"{k}={v}" for k, v in env.items()]
    if host_network:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
    config_path.write_text(json.dumps(config))


class RuncContainer:
    """A container running in the background for the length of a `with` block."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self.name = f"nix-docker-test-{uuid.uuid4().hex[:12]}"
        self.log = bundle.parent / f"{self.name}.log"

    def __enter__(self) -> "RuncContainer":
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            ["runc", "run", "-b", str(self.bundle), self.name], stdout=self._log_file, stderr=subprocess.STDOUT
        )
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["runc", "kill", self.name, "KILL"], capture_output=True)
        try:
            self.proc.wait(timeout=30)
        finally:
            subprocess.run(["runc", "delete", "--force", self.name], capture_output=True)
            self._log_file.close()

    def output(self) -> str:
        return self.log.read_text()


def http_get_json(url: str, timeout: float = 60.0) -> dict:
    """GET url, retrying while the service starts (bounded by `timeout`)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
