"""Issue #3 end to end: a Pants-built PEX on the store's Python, as a non-root service."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nix_docker_bench.buildgrid import free_port
from nix_docker_e2e.harness import REPO_FILES, Repo
from nix_docker_e2e.oci_archive import layer_digests, layer_members
from nix_docker_e2e.runtimes import RuncContainer, edit_process, http_get_json, runc_run, unpack_bundle

TARGET = "examples/python-app:image"
NIX_SET = "//build-support/nix/default.nix"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("python-app") / "repo")


@pytest.fixture(scope="module")
def image(repo: Repo) -> Path:
    repo.pants("package", TARGET).assert_success()
    return repo.root / "dist/examples.python-app/image.tar"


def test_service_answers_http_on_the_host_network(image: Path, tmp_path: Path) -> None:
    bundle = unpack_bundle(image, tmp_path)
    port = free_port()
    edit_process(bundle, env={"PORT": str(port), "HOST": "127.0.0.1"}, host_network=True)
    with RuncContainer(bundle) as container:
        try:
            answer = http_get_json(f"http://127.0.0.1:{port}/")
        except OSError:
            pytest.fail(f"no answer; container said:\n{container.output()}")
    assert answer == {
        "service": "hello-service",
        "greeting": "Hello from a Pants-built PEX on a Nix closure",
        "python": "3.11.2",
        "uid": 1000,
        "cwd": "/data",
        "yaml": "6.0.2",
    }


CHECKS = textwrap.dedent(
    """
    import json, os, ssl, stat
    def writable(directory):
        try:
            with open(os.path.join(directory, ".probe"), "w") as f:
                f.write("x")
            return True
        except OSError:
            return False
    print(json.dumps({
        "uid": os.getuid(),
        "data": writable("/data"),
        "root": writable("/"),
        "store": writable("/nix/store"),
        "tmp_mode": oct(stat.S_IMODE(os.stat("/tmp").st_mode)),
        "tmp": writable("/tmp"),
        "ca_certs": ssl.create_default_context().cert_store_stats()["x509_ca"],
        "ssl_cert_file": os.environ.get("SSL_CERT_FILE"),
        "env": os.path.realpath("/usr/bin/env"),
    }))
    """
)


def test_inside_the_container(image: Path, tmp_path: Path) -> None:
    bundle = unpack_bundle(image, tmp_path)
    edit_process(bundle, args=["/bin/python3", "-c", CHECKS])
    proc = runc_run(bundle)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["uid"] == 1000
    assert seen["data"] is True and seen["tmp"] is True
    assert seen["root"] is False and seen["store"] is False
    assert seen["tmp_mode"] == "0o1777"
    assert seen["ca_certs"] > 100
    assert seen["ssl_cert_file"].startswith("/nix/store/") and seen["ssl_cert_file"].endswith(
        "/etc/ssl/certs/ca-bundle.crt"
    )
    assert seen["env"].startswith("/nix/store/") and seen["env"].endswith("-busybox-1.35.0/bin/busybox")


def test_layers_put_artifacts_on_top_of_the_customisation(image: Path) -> None:
    layers = layer_members(image)
    assert layers[-1] == ["app", "app/app.pex"]
    assert {"etc/passwd", "bin/python3", "usr/bin/env", "data", "tmp"} <= set(layers[-2])
    assert all(m == "nix" or m.startswith("nix/") for layer in layers[:-2] for m in layer)


def test_changing_only_the_app_source_changes_only_the_top_layer(repo: Repo, image: Path) -> None:
    before = layer_digests(image)
    server = repo.root / "examples/python-app/src/hello_service/server.py"
    original = server.read_text()
    try:
        server.write_text(original.replace('"/status"', '"/status", "/healthz"'))
        repo.pants("package", TARGET).assert_success()
        after = layer_digests(image)
    finally:
        server.write_text(original)
    assert after[:-1] == before[:-1]
    assert after[-1] != before[-1]


BAD = {
    "conflict": (
        f'nix_docker_image(name="conflict", packages=["{NIX_SET}#busybox", "other.nix#sh"], paths_to_link=["/bin"])',
        [
            "testprojects/rootfs:conflict",
            "'paths_to_link'",
            "two packages both provide /bin/sh",
            "-busybox-1.35.0/bin/sh",
            "-other-sh/bin/sh",
        ],
    ),
    "unknown-user": (
        f'nix_docker_image(name="unknown-user", packages=["{NIX_SET}#hello"], users={{"app": 1000}}, user="ghost")',
        ["testprojects/rootfs:unknown-user", "'user'", "user 'ghost' is not declared", "known users: root, app"],
    ),
    "not-packageable": (
        f'python_sources(name="lib", sources=["lib.py"])\n'
        f'nix_docker_image(name="not-packageable", packages=["{NIX_SET}#hello"], dependencies=[":lib"])',
        ["testprojects/rootfs:not-packageable", "'dependencies'", "python_source", "Depend on a packageable target"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_rootfs_input_fails_clearly(repo: Repo, name: str) -> None:
    with repo.broken_targets("testprojects/rootfs"):
        repo.write("testprojects/rootfs/BUILD", BAD[name][0] + "\n")
        repo.write("testprojects/rootfs/lib.py", "VALUE = 1\n")
        repo.write(
            "testprojects/rootfs/other.nix",
            'let inherit (import ../../build-support/nix/lib.nix) run; in { sh = run { name = "other-sh"; script = '
            '"mkdir -p $out/bin; echo not-busybox > $out/bin/sh"; }; }\n',
        )
        result = repo.pants("package", f"testprojects/rootfs:{name}")
    assert result.returncode != 0
    for words in BAD[name][1]:
        assert words in result.stderr, result.stderr[-3000:]
    assert not (repo.root / "dist/testprojects.rootfs").exists()


def test_directory_outside_the_root_fails_clearly(repo: Repo) -> None:
    with repo.broken_targets("testprojects/escape"):
        repo.write(
            "testprojects/escape/BUILD",
            f'nix_docker_image(name="image", packages=["{NIX_SET}#hello"], directories={{"../x": "root"}})\n',
        )
        result = repo.pants("package", "testprojects/escape:image")
    assert result.returncode != 0
    for words in ["testprojects/escape:image", "'directories'", "'../x' is not an absolute path", "For example"]:
        assert words in result.stderr, result.stderr[-3000:]


def test_pants_run_serves_the_app_through_podman(repo: Repo) -> None:
    import os
    import subprocess
    import uuid

    port, name = free_port(), f"nix-docker-run-{uuid.uuid4().hex[:8]}"
    extra = f"+['-e', 'PORT={port}', '--name', '{name}']"
    log = repo.root / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["./pants", "--no-pantsd", f"--nix-docker-run-args={extra}", "run", TARGET],
            cwd=repo.root,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            answer = http_get_json(f"http://127.0.0.1:{port}/", timeout=180)
        except OSError:
            pytest.fail(f"`pants run` never served; it said:\n{log.read_text()[-4000:]}")
        finally:
            subprocess.run(["podman", "rm", "-f", name], capture_output=True)
            proc.wait(timeout=60)
    assert answer["service"] == "hello-service" and answer["uid"] == 1000


def readme_podman_run() -> list[str]:
    """The README's `podman run` line for the main example, as a user would paste it."""
    import shlex

    readme = (REPO_FILES / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("podman run ") and "python-app" in line]
    assert len(lines) == 1, f"expected one `podman run ... python-app` line in the README, found {lines}"
    return shlex.split(lines[0].split("#", 1)[0])


@pytest.mark.parametrize("signal_name", ["TERM", "INT"])
def test_readme_podman_run_works_and_the_service_stops_on_signal(image: Path, signal_name: str) -> None:
    """The README's command serves the app; SIGTERM (`podman stop`) and SIGINT (Ctrl-C) stop it at
    once, with exit status 0, although it is PID 1 and so gets no default signal handling."""
    import subprocess
    import time
    import uuid

    argv = readme_podman_run()
    image_ref = argv[-1]
    assert image_ref == "docker.io/library/python-app:latest", argv
    tag = f"docker.io/library/python-app:signal-{uuid.uuid4().hex[:8]}"
    loaded = subprocess.run(["podman", "load", "-i", str(image)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    subprocess.run(["podman", "tag", image_ref, tag], check=True, capture_output=True)
    port, name = free_port(), f"nix-docker-signal-{uuid.uuid4().hex[:8]}"
    # As written, plus a free port and a name so the test can signal it.
    argv = [*argv[:2], "--name", name, "-e", f"PORT={port}", *argv[2:-1], tag]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            http_get_json(f"http://127.0.0.1:{port}/", timeout=60)
        except OSError:
            proc.kill()
            pytest.fail(f"{' '.join(argv)} never served; it said:\n{proc.communicate()[0][-4000:]}")
        started = time.monotonic()
        subprocess.run(["podman", "kill", f"--signal={signal_name}", name], check=True, capture_output=True)
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
        subprocess.run(["podman", "rmi", tag], capture_output=True)
    assert proc.returncode == 0, output
    assert f"stopping on SIG{signal_name}" in output
    assert "Traceback" not in output
    assert took < 2.0, f"took {took:.1f} s to stop"
