"""Real registries for the publish and base-image tests: `docker-registry` with TLS (a test CA)
and htpasswd, and a proxy that fails on purpose."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from nix_docker_bench.buildgrid import free_port
from nix_docker_e2e.harness import run


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

    def sbom_of(self, repository: str, image_digest: str, dest: Path) -> dict:
        """The SPDX document of the image `image_digest`, found as someone who knows only that
        digest would: the registry's referrers API (this registry has none: 404), then the
        referrers tag schema, then the artifact pulled by skopeo, each blob checked by digest."""
        api = run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                *self._curl_options(),
                f"{self.scheme}://{self.address}/v2/{repository}/referrers/{image_digest}",
            ]
        )
        assert api.stdout == "404", f"the registry answered {api.stdout} for the referrers API"
        tag = image_digest.replace(":", "-")
        inspect = ["skopeo", "inspect", *self.skopeo_options(), "--raw", f"docker://{self.address}/{repository}:{tag}"]
        index = json.loads(subprocess.run(inspect, capture_output=True, check=True, timeout=300).stdout)
        (entry,) = [m for m in index["manifests"] if m.get("artifactType") == "application/spdx+json"]
        copy = run(
            [
                "skopeo",
                "copy",
                "--quiet",
                *self.skopeo_options("src-"),
                f"docker://{self.address}/{repository}@{entry['digest']}",
                f"oci:{dest}:sbom",
            ]
        )
        assert copy.returncode == 0, copy.stderr

        def blob(digest: str) -> bytes:
            return (dest / "blobs/sha256" / digest.split(":")[1]).read_bytes()

        manifest = json.loads(blob(entry["digest"]))
        assert manifest["subject"]["digest"] == image_digest, manifest
        (layer,) = manifest["layers"]
        return json.loads(blob(layer["digest"]))

    def _curl_options(self) -> list[str]:
        options = ["--cacert", str(self.tls.ca_cert)] if self.tls else []
        return options + (["-u", ":".join(self.htpasswd)] if self.htpasswd else [])

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
