"""Runs an image's checks (`image_checks.py`) against its OCI layout: files and config from the
layers and config blob, commands and the service probe with runc from a bundle umoci unpacks.

Each container keeps its own network namespace (only loopback): the probe connects from inside
that namespace (a forked child joins it), so two tests of services on the same port never meet,
and nothing of the host's network is needed.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Mapping, Sequence

from pants_backend_nix_docker.oci.base_image import blob_file, open_layer_tar, read_json_blob
from pants_backend_nix_docker.oci.base_image_source import BaseImageError
from pants_backend_nix_docker.oci.image_checks import (
    CommandCheck,
    FileFacts,
    ImageCheckSpec,
    Outcome,
    ServiceProbe,
    judge_command,
    judge_config,
    judge_file,
    judge_setuid,
    judge_store_paths,
    judge_user,
)

_CLONE_NEWNET = 0x40000000


class ImageCheckError(Exception):
    pass


def read_image(layout: str, tag: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(config, [(layer blob path, media type)]) of the image tagged `tag` in `layout`."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    entry = next(
        (m for m in index["manifests"] if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag),
        None,
    )
    if entry is None:
        raise ImageCheckError(f"the layout has no image tagged {tag!r}")
    try:
        manifest = read_json_blob(layout, entry["digest"])
        config = read_json_blob(layout, manifest["config"]["digest"])
        return config, [(blob_file(layout, layer["digest"]), layer["mediaType"]) for layer in manifest["layers"]]
    except BaseImageError as e:
        raise ImageCheckError(str(e))


def _path(name: str) -> str:
    return "/" + name.lstrip("./").rstrip("/") if name.strip("./") else "/"


def _kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "directory"
    if member.issym():
        return "symlink"
    return "file" if member.isreg() or member.islnk() else "other"


def root_filesystem(layers: Sequence[tuple[str, str]], read_contents: set[str]) -> dict[str, FileFacts]:
    """Every path after all layers, whiteouts applied; the bytes of `read_contents` paths."""
    files: dict[str, FileFacts] = {}
    for blob, media_type in layers:
        with open(blob, "rb") as raw, open_layer_tar(raw, media_type) as tar:
            for member in tar:
                path = _path(member.name)
                parent, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    for gone in [p for p in files if p.startswith((parent or "") + "/") and p != parent]:
                        del files[gone]
                    continue
                if base.startswith(".wh."):
                    hidden = f"{parent}/{base[4:]}"
                    for gone in [p for p in files if p == hidden or p.startswith(hidden + "/")]:
                        del files[gone]
                    continue
                if member.islnk():  # a hard link: the same file under another name
                    linked = files.get(_path(member.linkname))
                    if linked is not None:
                        files[path] = linked
                        continue
                content = None
                if path in read_contents and member.isreg():
                    extracted = tar.extractfile(member)
                    content = extracted.read() if extracted else b""
                files[path] = FileFacts(
                    _kind(member),
                    member.mode,
                    member.uid,
                    member.gid,
                    member.linkname if member.issym() else "",
                    content,
                )
    return files


def store_paths(files: Mapping[str, FileFacts]) -> list[str]:
    return sorted(p for p in files if p.startswith("/nix/store/") and p.count("/") == 3)


class Runc:
    """runc with its state in the check's own directory; each container gets a fresh id."""

    def __init__(self, runc: str, umoci: str, layout: str, tag: str, workdir: str) -> None:
        self.runc, self.umoci, self.layout, self.tag, self.workdir = runc, umoci, layout, tag, workdir
        self.state = os.path.join(workdir, "runc-state")
        self._bundle: str | None = None
        self._unpacked: dict[str, Any] = {}  # the runtime config umoci wrote, edited per container

    def bundle(self) -> str:
        """The image unpacked once (umoci writes the runtime config from the image config)."""
        if self._bundle is None:
            bundle = os.path.join(self.workdir, "bundle")
            unpacked = subprocess.run(
                [self.umoci, "unpack", "--image", f"{self.layout}:{self.tag}", bundle], capture_output=True, text=True
            )
            if unpacked.returncode != 0:
                raise ImageCheckError(f"umoci could not unpack the image: {unpacked.stderr.strip()}")
            with open(os.path.join(bundle, "config.json")) as f:
                self._unpacked = json.load(f)
            self._bundle = bundle
        return self._bundle

    def _config(self, command: CommandCheck | None) -> None:
        path = os.path.join(self.bundle(), "config.json")
        config = json.loads(json.dumps(self._unpacked))  # a fresh copy for each container
        process = config["process"]
        process["terminal"] = False  # no terminal here; output goes to pipes
        if command is not None:
            process["args"] = list(command.argv) or process["args"]
            names = {k for k, _ in command.env}
            process["env"] = [e for e in process["env"] if e.split("=", 1)[0] not in names]
            process["env"] += [f"{k}={v}" for k, v in command.env]
            if command.user:
                uid, _, gid = command.user.partition(":")
                process["user"] = {**process["user"], "uid": int(uid), "gid": int(gid or process["user"].get("gid", 0))}
        with open(path, "w") as f:
            json.dump(config, f)

    def _argv(self, *args: str) -> list[str]:
        return [self.runc, "--root", self.state, *args]

    def run(self, command: CommandCheck) -> tuple[int | None, str, str]:
        self._config(command)
        name = f"check-{uuid.uuid4().hex[:12]}"
        try:
            done = subprocess.run(
                self._argv("run", "--bundle", self.bundle(), name),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=command.timeout,
            )
            return done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as e:
            return None, _text(e.stdout), _text(e.stderr)
        finally:
            subprocess.run(self._argv("delete", "--force", name), capture_output=True)

    def probe(self, service: ServiceProbe) -> Outcome:
        self._config(None)
        name = f"service-{uuid.uuid4().hex[:12]}"
        log_path = os.path.join(self.workdir, f"{name}.log")
        started = time.monotonic()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                self._argv("run", "--bundle", self.bundle(), name), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                problem = self._wait_for_answer(name, proc, service)
            finally:
                self._stop(name, proc)
        with open(log_path, errors="replace") as log:
            output = log.read()
        return Outcome(service.name, (problem,) if problem else (), output, time.monotonic() - started)

    def _wait_for_answer(self, name: str, proc: subprocess.Popen, service: ServiceProbe) -> str | None:
        deadline = time.monotonic() + service.timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"the container exited with {proc.returncode} before it answered ({last})"
            pid = self._pid(name)
            if pid:
                answer = _in_network_of(pid, lambda: _ask(service))
                if answer is None:
                    return None
                last = answer
            time.sleep(0.2)
        return f"no answer within {service.timeout} s: {last}"

    def _pid(self, name: str) -> int | None:
        state = subprocess.run(self._argv("state", name), capture_output=True, text=True)
        if state.returncode != 0:
            return None
        info = json.loads(state.stdout)
        return int(info["pid"]) if info.get("status") == "running" and info.get("pid") else None

    def _stop(self, name: str, proc: subprocess.Popen) -> None:
        """SIGTERM, up to 10 s to stop, then SIGKILL; the container is deleted either way."""
        subprocess.run(self._argv("kill", name, "TERM"), capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            subprocess.run(self._argv("kill", name, "KILL"), capture_output=True)
            proc.wait(timeout=30)
        subprocess.run(self._argv("delete", "--force", name), capture_output=True)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _ask(service: ServiceProbe) -> str | None:
    """None when the service answered as expected, else what it did."""
    if service.http_path is None:
        try:
            socket.create_connection(("127.0.0.1", service.port), timeout=2).close()
            return None
        except OSError as e:
            return f"tcp port {service.port}: {e}"
    url = f"http://127.0.0.1:{service.port}{service.http_path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            status, body = answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode(errors="replace")
    except OSError as e:
        return f"{url}: {e}"
    if status != service.status:
        return f"{url} answered {status}, expected {service.status}: {body[:300]!r}"
    if service.body_contains is not None and service.body_contains not in body:
        return f"{url} answered without {service.body_contains!r}: {body[:300]!r}"
    return None


def _in_network_of(pid: int, ask: Any) -> str | None:
    """Runs `ask` in a child that joined the network namespace of process `pid`; its answer."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the forked child)
        os.close(read_end)
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            answer = ask()
        except BaseException as e:  # the parent must hear back whatever happens
            answer = f"could not join the container's network: {e}"
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    return json.loads(data) if data else "the probe died"


def run_checks(spec: ImageCheckSpec, layout: str, tag: str, runc: str, umoci: str, workdir: str) -> list[Outcome]:
    config, layers = read_image(layout, tag)
    files = root_filesystem(layers, {f.path for f in spec.files if f.contains is not None})
    outcomes = [
        *judge_config(config, spec.config),
        *(judge_file(check, files.get(check.path)) for check in spec.files),
        *judge_store_paths(store_paths(files), spec.forbidden_store_paths),
        judge_user(config, spec.commands, spec.allow_root),
        judge_setuid(files, spec.allow_setuid),
    ]
    if spec.needs_runtime:
        runtime = Runc(runc, umoci, layout, tag, workdir)
        for command in spec.commands:
            started = time.monotonic()
            code, out, err = runtime.run(command)
            judged = judge_command(command, code, out, err)
            outcomes.append(Outcome(judged.name, judged.problems, judged.output, time.monotonic() - started))
        if spec.service is not None:
            outcomes.append(runtime.probe(spec.service))
    return outcomes
