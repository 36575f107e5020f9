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
        stop it with `./pants kill-pantsd`."""
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


def member_bytes(tf: tarfile.TarFile, name: str) -> bytes:
    """The bytes of a regular file in an open tar archive."""
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a regular file in {tf.name!r}"
    return member.read()


def index_of(archive: Path) -> dict:
    with tarfile.open(archive) as tf:
        return json.loads(member_bytes(tf, "index.json"))


def manifest_digest(archive: Path) -> str:
    return index_of(archive)["manifests"][0]["digest"]


def layer_members(archive: Path) -> list[list[str]]:
    """Names in each layer of the archive, bottom layer first."""
    with tarfile.open(archive) as tf:
        docker = json.loads(member_bytes(tf, "manifest.json"))[0]
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


def layer_digests(archive: Path) -> list[str]:
    with tarfile.open(archive) as tf:
        index = json.loads(member_bytes(tf, "index.json"))
        manifest = json.loads(member_bytes(tf, "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        return [layer["digest"] for layer in manifest["layers"]]


class TestCA:
    """A certificate authority made for one test, and a server certificate for 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_cert, self.cert, self.key = workdir / "ca.crt", workdir / "server.crt", workdir / "server.key"
        ssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"]
        run(
            [*ssl, "/CN=pants-nix-docker test CA", "-keyout", str(workdir / "ca.key"), "-out", str(self.ca_cert)],
            check=True,
        )
        run(
            [
                "openssl",
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(self.key),
                "-out",
                str(workdir / "server.csr"),
            ],
            check=True,
        )
        (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                str(workdir / "server.csr"),
                "-CA",
                str(self.ca_cert),
                "-CAkey",
                str(workdir / "ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                str(workdir / "san.ext"),
                "-out",
                str(self.cert),
            ],
            check=True,
        )
        # What containers tools read with --cert-dir: the CA as DIR/*.crt.
        self.cert_dir = workdir / "certs.d"
        self.cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.ca_cert, self.cert_dir / "ca.crt")


class DockerRegistry:
    """The CNCF distribution registry on 127.0.0.1 with its request log; plain HTTP, or TLS from a
    test CA, optionally behind htpasswd authentication."""

    def __init__(self, workdir: Path, tls: TestCA | None = None, htpasswd: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / "registry.log"
        self.tls, self.htpasswd = tls, htpasswd

    def __enter__(self) -> "DockerRegistry":
        import crypt
        import time

        self.workdir.mkdir(parents=True, exist_ok=True)
        config = (
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: "
            f"{self.workdir}/data\nhttp:\n  addr: {self.address}\n"
        )
        if self.tls:
            config += f"  tls:\n    certificate: {self.tls.cert}\n    key: {self.tls.key}\n"
        if self.htpasswd:
            user, password = self.htpasswd
            # The registry takes bcrypt only; glibc's crypt (libxcrypt) makes it.
            (self.workdir / "htpasswd").write_text(
                f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"
            )
            config += f"auth:\n  htpasswd:\n    realm: test\n    path: {self.workdir}/htpasswd\n"
        (self.workdir / "config.yml").write_text(config)
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.workdir / "config.yml")], stdout=self._log, stderr=subprocess.STDOUT
        )
        curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"] + (
            ["--cacert", str(self.tls.ca_cert)] if self.tls else []
        )
        deadline = time.monotonic() + 30
        # 401 is an answer too: the registry is up and asks for credentials.
        while run([*curl, f"{self.scheme}://{self.address}/v2/"]).stdout not in ("200", "401"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start:\n{self.log.read_text()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def registry_entry(self, address: str | None = None) -> dict:
        entry: dict = {"address": address or self.address, "default": True}
        if self.tls:
            entry["cert_dir"] = str(self.tls.cert_dir)
        else:
            entry["tls_verify"] = False
        return entry

    def pants_option(self, address: str | None = None) -> str:
        return f"--nix-docker-registries={{'test': {self.registry_entry(address)!r}}}"

    def skopeo_options(self, prefix: str = "") -> list[str]:
        """What `skopeo inspect` (or, with prefix "src-", `skopeo copy`) needs to read from this
        registry as the test user."""
        options = [f"--{prefix}cert-dir={self.tls.cert_dir}"] if self.tls else [f"--{prefix}tls-verify=false"]
        if self.htpasswd:
            options.append(f"--{prefix}creds=" + ":".join(self.htpasswd))
        return options

    def write_auth_file(self, path: Path, password: str | None = None) -> Path:
        """A containers auth.json (what `skopeo login` writes) for this registry."""
        import base64

        user, real = self.htpasswd or ("", "")
        token = base64.b64encode(f"{user}:{password if password is not None else real}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.address: {"auth": token}}}))
        return path

    def pulled_digest(self, ref: str) -> str:
        argv = ["skopeo", "inspect", *self.skopeo_options(), "--raw", f"docker://{self.address}/{ref}"]
        raw = subprocess.run(argv, capture_output=True, check=True, timeout=300).stdout
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def pull_everything(self, ref: str, dest: Path) -> subprocess.CompletedProcess:
        """Copy the image with every blob, each checked against its digest by skopeo."""
        return run(
            [
                "skopeo",
                "copy",
                "--quiet",
                *self.skopeo_options("src-"),
                f"docker://{self.address}/{ref}",
                f"oci:{dest}:x",
            ]
        )

    def uploaded_blobs(self) -> list[str]:
        """Digests of the blobs uploaded so far, from the registry's log (one per finished upload)."""
        import re

        return [
            d.replace("%3A", ":")
            for d in re.findall(
                r'"PUT /v2/[^ ]+/blobs/uploads/[^ ]*digest=(sha256(?:%3A|:)[0-9a-f]{64})', self.log.read_text()
            )
        ]

    def mounted_blobs(self) -> list[str]:
        """Digests made available by cross-repository mounts (POST ?mount=, answered 201)."""
        import re

        return [
            d.replace("%3A", ":")
            for d in re.findall(
                r'"POST /v2/[^ ]+/blobs/uploads/\?[^ ]*mount=(sha256(?:%3A|:)[0-9a-f]{64})[^"]*" 201',
                self.log.read_text(),
            )
        ]


class FlakyProxy:
    """A TCP proxy in front of a plain-HTTP registry that breaks some connections on purpose.

    Connections numbered in `fail_with_500` get a 500 answer to their first request and are
    closed; the first `drops` connections that carry more than `drop_after` bytes upstream (so,
    mid-way through a layer upload) are cut there. Everything else is forwarded verbatim.
    """

    def __init__(
        self, upstream: str, fail_with_500: Iterable[int] = (), drops: int = 0, drop_after: int = 2 << 20
    ) -> None:
        import socket
        import threading

        self.upstream = upstream
        self.fail_with_500 = set(fail_with_500)
        self.drops_left, self.drop_after = drops, drop_after
        self.faults = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._connections += 1
                number = self._connections
            if number in self.fail_with_500:
                threading.Thread(target=self._answer_500, args=(client,), daemon=True).start()
                continue
            host, port = self.upstream.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _answer_500(self, client) -> None:
        client.recv(65536)
        client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        with self._lock:
            self.faults += 1

    def _pump(self, source, dest, upstream_bound: bool) -> None:
        import socket

        sent, may_drop = 0, upstream_bound
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                dest.sendall(data)
                sent += len(data)
                if may_drop and sent > self.drop_after:
                    with self._lock:
                        drop = self.drops_left > 0
                        if drop:
                            self.drops_left -= 1
                            self.faults += 1
                    if drop:
                        break
                    may_drop = False
        except OSError:
            pass
        for sock in (source, dest):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._server.close()
