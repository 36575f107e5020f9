"""Issue 12: the released wheel in a repository that shares nothing with this one.

The foreign repository gets the wheel (through `[python-repos]`) and nothing else of ours: its own
`pants.toml`, Python service, requirements and lockfile, and `.nix` file. Pants 2.17.1 itself and
pex come from the machine (this repo's bootstrap put them there, as any Pants install would).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from nix_docker_e2e.harness import REPO_FILES, Repo, run
from nix_docker_e2e.oci_archive import manifest_digest
from nix_docker_e2e.registries import DockerRegistry
from nix_docker_e2e.runtimes import runc_run, unpack_bundle

DIST_TARGET = "src/python/pants_backend_nix_docker:dist"
# The pex that ./pants builds from PyPI (Pants' own download of it needs GitHub): version,
# platform, sha256, size, as [pex-cli].known_versions takes them.
PEX_KNOWN_VERSION = "|".join(
    ["v2.1.137", "linux_x86_64", "02252fec0a0fc8475f4ebc09edd65d81ae502b609549e059d45c4bc48cae944f", "3563515"]
)


def bootstrap_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pants-nix-docker"
    return Path(os.environ.get("PANTS_NIX_DOCKER_CACHE", default))


@dataclass(frozen=True)
class Wheel:
    path: Path
    version: str


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Wheel:
    ours = Repo.copy_to(tmp_path_factory.mktemp("ours") / "repo")
    ours.pants("package", DIST_TARGET).assert_success()
    wheels = sorted((ours.root / "dist").glob("pants_backend_nix_docker-*-py3-none-any.whl"))
    assert len(wheels) == 1, ours.dist_files()
    version = re.match(r"pants_backend_nix_docker-(.+)-py3-none-any\.whl", wheels[0].name)
    assert version, wheels[0].name
    return Wheel(wheels[0], version.group(1))


def test_the_changelog_names_the_wheel_version(wheel: Wheel) -> None:
    changelog = (REPO_FILES / "CHANGELOG.md").read_text()
    newest = re.search(r"^## (\S+) ", changelog, re.MULTILINE)
    assert newest and newest.group(1) == wheel.version


def test_a_fresh_virtualenv_installs_the_wheel(wheel: Wheel, tmp_path: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel.path).namelist()
    assert "pants_backend_nix_docker/subsystems/layer_tool.lock" in names
    assert "pants_backend_nix_docker/register.py" in names
    venv = tmp_path / "venv"
    run(["virtualenv", "-q", "-p", "/usr/bin/python3.9", str(venv)], check=True)
    # With its dependencies (Pants 2.17.1 itself among them), from PyPI; the machine's pip
    # configuration ignored as ./pants does, and its CA bundle trusted.
    pip_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull}
    cert = (
        ["--cert", "/etc/ssl/certs/ca-certificates.crt"] if Path("/etc/ssl/certs/ca-certificates.crt").exists() else []
    )
    installed = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", *cert, str(wheel.path)],
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    consistent = subprocess.run([str(venv / "bin/pip"), "check"], env=pip_env, capture_output=True, text=True)
    assert consistent.returncode == 0, consistent.stdout
    shown = run([str(venv / "bin/pip"), "show", "pants-backend-nix-docker"]).stdout
    assert f"Version: {wheel.version}" in shown
    imported = run(
        [str(venv / "bin/python"), "-c", "import pants_backend_nix_docker.register as r; print(len(r.rules()))"]
    )
    assert imported.returncode == 0 and int(imported.stdout) > 0, imported.stderr


NIX_FILE = """\
# The service's runtime. A real repository would name nixpkgs' python3; this machine has no
# nixpkgs, so the derivation wraps a Python already in the store (given by the test).
let
  python = builtins.storePath "{python}";
  busybox = builtins.storePath "{busybox}";
in {{
  python3 = derivation {{
    name = "greeter-python-3.11";
    system = builtins.currentSystem;
    builder = "${{busybox}}/bin/busybox";
    args = [ "sh" "-c" (
      "${{busybox}}/bin/busybox mkdir -p $out/bin"
      + " && ${{busybox}}/bin/busybox ln -s ${{python}}/bin/python3 $out/bin/python3"
    ) ];
  }};
}}
"""

SERVICE = """\
import json
import sys

import yaml


def main() -> None:
    settings = yaml.safe_load("greeting: hello from a repository that is not pants-nix-docker")
    print(json.dumps({"greeting": settings["greeting"], "yaml": yaml.__version__, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
"""

BUILD = """\
python_sources(name="lib")
pex_binary(name="app", entry_point="greeter.py:main")

nix_docker_image(
    name="image",
    packages=["//nix/runtime.nix#python3"],
    dependencies=[":app"],
    entrypoint=["${pkgs.python3}/bin/python3", "/app/app.pex"],
    repository="greeter",
    image_tags=["v1"],
)
"""


@dataclass(frozen=True)
class ForeignRepo:
    root: Path
    pants: Path

    def run(self, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.pants), "--no-pantsd", "--no-dynamic-ui", *args],
            cwd=self.root,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def foreign(wheel: Wheel, tmp_path_factory) -> ForeignRepo:
    root = tmp_path_factory.mktemp("foreign") / "greeter"
    wheels = root.parent / "wheels"
    wheels.mkdir()
    (wheels / wheel.path.name).write_bytes(wheel.path.read_bytes())
    cache = bootstrap_cache()
    pex = cache / "pex-2.1.137.pex"
    assert pex.is_file(), f"{pex}: the machine's pex (./pants builds it) is missing"
    python = run(
        ["nix-build", "--no-out-link", str(REPO_FILES / "build-support/nix"), "-A", "python3"], check=True
    ).stdout.split()[-1]
    busybox = run(
        ["nix-build", "--no-out-link", str(REPO_FILES / "build-support/nix"), "-A", "busybox"], check=True
    ).stdout.split()[-1]
    files = {
        "pants.toml": f"""\
            [GLOBAL]
            pants_version = "2.17.1"
            plugins = ["pants-backend-nix-docker=={wheel.version}"]
            backend_packages = ["pants.backend.python", "pants_backend_nix_docker"]
            # This machine's TLS goes through a proxy CA that only the system bundle has.
            ca_certs_path = "/etc/ssl/certs/ca-certificates.crt"
            ignore_warnings = ["DEPRECATED: Running Pants in an external Python interpreter"]

            [python-repos]
            find_links = ["file://{wheels}"]

            [python]
            interpreter_constraints = ["CPython==3.11.*"]
            enable_resolves = true

            [python-bootstrap]
            search_path = ["/usr/bin"]

            [subprocess-environment]
            env_vars.add = ["PIP_CONFIG_FILE=/dev/null"]

            [pex-cli]
            known_versions = ["{PEX_KNOWN_VERSION}"]
            url_template = "file://{pex}"

            [source]
            root_patterns = ["/src"]
            """,
        "BUILD": 'python_requirements(name="reqs")\n',
        "requirements.txt": "PyYAML==6.0.2\n",
        "nix/runtime.nix": NIX_FILE.format(python=python, busybox=busybox),
        "src/greeter.py": SERVICE,
        "src/BUILD": BUILD,
    }
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    run(["git", "init", "-q", str(root)], check=True)
    repo = ForeignRepo(root, cache / "pants-2.17.1-venv" / "bin" / "pants")
    ok(repo.run("generate-lockfiles"))
    assert (root / "3rdparty/python/default.lock").is_file() or list(root.rglob("*.lock"))
    return repo


def test_nothing_of_this_repo_but_the_wheel(foreign: ForeignRepo) -> None:
    files = {
        p.relative_to(foreign.root).as_posix()
        for p in foreign.root.rglob("*")
        if p.is_file() and ".git/" not in p.as_posix()
    }
    ours = {p.relative_to(REPO_FILES).as_posix() for p in REPO_FILES.rglob("*") if p.is_file()}
    shared = {f for f in files & ours if not f.startswith(("dist/", ".pants.d/"))}
    # BUILD and pants.toml exist in every Pants repo: only their contents could be ours.
    for name in shared - {"BUILD", "pants.toml"}:
        pytest.fail(f"{name} has the same path as a file of this repository")
    for name in shared & {"BUILD", "pants.toml"}:
        assert (foreign.root / name).read_text() != (REPO_FILES / name).read_text()


def test_package_builds_an_image_that_runs(foreign: ForeignRepo, tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    proc = ok(foreign.run("package", "src:image"))
    first = time.monotonic() - started
    archive = foreign.root / "dist/src/image.tar"
    assert archive.is_file(), proc.stderr[-3000:]
    started = time.monotonic()
    ok(foreign.run("package", "src:image"))
    again = time.monotonic() - started
    print(
        f"FIGURE: foreign repo: `pants package` {first:.1f} s on its first run, {again:.1f} s with nothing changed (no "
        "pantsd)"
    )
    bundle = unpack_bundle(archive, tmp_path, tag="v1")
    result = runc_run(bundle)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "greeting": "hello from a repository that is not pants-nix-docker",
        "yaml": "6.0.2",
        "python": "3.11.2",
    }


def test_help_lists_the_target_and_its_fields(foreign: ForeignRepo) -> None:
    shown = ok(foreign.run("help", "nix_docker_image")).stdout
    for words in ["nix_docker_image", "packages", "entrypoint", "Example"]:
        assert words in shown


def test_publish_pushes_the_image(foreign: ForeignRepo, tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry") as registry:
        ok(foreign.run(registry.pants_option(), "publish", "src:image"))
        pushed = registry.pulled_digest("greeter:v1")
    assert pushed == manifest_digest(foreign.root / "dist/src/image.tar")
