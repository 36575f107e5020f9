"""Drive the real `./pants` in a scratch copy of this repository, and real OCI tools on its output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from nix_docker_bench.buildgrid import free_port  # noqa: F401 (re-exported for the tests)
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

    def pants(self, *args: str, caches: Path | None = None, env: dict[str, str] | None = None, timeout: int = 900) -> PantsResult:
        """Run `./pants --no-pantsd ARGS`; with `caches`, Pants starts from empty local caches there."""
        options = ["--no-pantsd", "--no-dynamic-ui"]
        if caches is not None:
            options += [f"--local-store-dir={caches}/lmdb_store", f"--named-caches-dir={caches}/named_caches"]
        proc = subprocess.run(
            ["./pants", *options, *args],
            cwd=self.root,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return PantsResult(proc.returncode, proc.stdout, proc.stderr)

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


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def index_of(archive: Path) -> dict:
    with tarfile.open(archive) as tf:
        return json.load(tf.extractfile("index.json"))


def manifest_digest(archive: Path) -> str:
    return index_of(archive)["manifests"][0]["digest"]


def layer_members(archive: Path) -> list[list[str]]:
    """Names in each layer of the archive, bottom layer first."""
    with tarfile.open(archive) as tf:
        docker = json.load(tf.extractfile("manifest.json"))[0]
        layers = []
        for layer in docker["Layers"]:
            blob = tf.extractfile(layer)
            with tarfile.open(fileobj=blob, mode="r:*") as lt:
                layers.append(lt.getnames())
        return layers


def run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, **kwargs)


def nix_closure(installables: Iterable[str], repo: Path) -> set[str]:
    paths = run(["nix-build", "--no-out-link", *installables], cwd=repo, check=True).stdout.split()
    return set(run(["nix-store", "-qR", *paths], check=True).stdout.split())


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


PODMAN_RUN = ["podman", "run", "--rm", "--network=none", "--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def edit_process(bundle: Path, *, args: Sequence[str] | None = None, env: dict[str, str] | None = None, host_network: bool = False) -> None:
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
        self.proc = subprocess.Popen(["runc", "run", "-b", str(self.bundle), self.name], stdout=self._log_file, stderr=subprocess.STDOUT)
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


def layer_digests(archive: Path) -> list[str]:
    with tarfile.open(archive) as tf:
        index = json.load(tf.extractfile("index.json"))
        manifest = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        return [layer["digest"] for layer in manifest["layers"]]



class DockerRegistry:
    """The CNCF distribution registry on 127.0.0.1, plain HTTP, with its request log."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / "registry.log"

    def __enter__(self) -> "DockerRegistry":
        import time

        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {self.workdir}/data\n"
            f"http:\n  addr: {self.address}\n"
        )
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while run(["curl", "-sf", f"http://{self.address}/v2/"]).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start:\n{self.log.read_text()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()

    def pants_option(self) -> str:
        return f"--nix-docker-registries={{'test': {{'address': '{self.address}', 'default': True, 'tls_verify': False}}}}"

    def uploaded_blobs(self) -> list[str]:
        """Digests of the blobs uploaded so far, from the registry's log (one per finished upload)."""
        import re

        return re.findall(r'"PUT /v2/[^ ]+/blobs/uploads/[^ ]*digest=(sha256(?:%3A|:)[0-9a-f]{64})', self.log.read_text())
