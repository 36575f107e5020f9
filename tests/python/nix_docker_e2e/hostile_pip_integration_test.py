"""Issue 11: the machine's pip configuration changes nothing, on a machine with empty caches.

A private mount namespace puts a hostile site-wide pip configuration where pip looks for it
(`/etc/xdg/pip/pip.conf`, `/etc/pip.conf`) and an empty directory over pex's own cache in the
account's home, for the launched `./pants` and everything it starts, without touching the real
machine. A fresh HOME gives the bootstrap a fresh Pants virtualenv and pex build, and Pants runs
with empty caches.
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
from pathlib import Path

import pytest

from nix_docker_e2e.harness import Repo
from nix_docker_e2e.oci_archive import manifest_digest
from nix_docker_e2e.registries import TestCA

TARGET = "examples/hello:image"
ARCHIVE = "dist/examples.hello/image.tar"
BOGUS_INDEX = "http://127.0.0.1:9/simple"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A site config directory and environment that break any pip that reads them: a
    `constraint` (what made pex's pip crash), a bogus index, missing find-links. Its HOME (and
    so the bootstrap's cache) is shared by this module's tests; pex's and Pants' caches are not."""
    tmp = tmp_path_factory.mktemp("hostile-machine")
    constraints = tmp / "constraints.txt"
    constraints.write_text("isal<1\nzstandard<0.1\npyyaml<1\npantsbuild.pants<2\n")
    site = tmp / "etc-xdg"
    (site / "pip").mkdir(parents=True)
    (site / "pip" / "pip.conf").write_text(
        f"[global]\nconstraint = {constraints}\nindex-url = {BOGUS_INDEX}\n"
        "find-links = /nonexistent/wheels\nextra-index-url = file:///nonexistent/simple\n"
    )
    home = tmp / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(f"[global]\nindex-url = {BOGUS_INDEX}\nno-index = true\n")
    env = {
        key: value
        for key, value in os.environ.items()
        # The machine's own settings and CI's cache locations: this run starts from nothing.
        if not key.startswith(("PIP_", "PANTS_"))
    }
    env.update(
        HOME=str(home),
        PIP_INDEX_URL=BOGUS_INDEX,
        PIP_CONSTRAINT=str(constraints),
        PIP_FIND_LINKS="/nonexistent/wheels",
        PIP_NO_INDEX="1",
    )
    return site, env


def pants_in_namespace(
    repo: Repo, tmp: Path, machine: tuple[Path, dict[str, str]], *args: str
) -> subprocess.CompletedProcess:
    """`./pants ARGS` with the hostile site config mounted and an empty pex cache, from empty
    Pants caches under `tmp`."""
    site, env = machine
    empty_pex_root = tmp / "empty-pex-root"
    empty_pex_root.mkdir(exist_ok=True)
    # Pants' processes have no HOME, so pex falls back to the account's home directory.
    account_pex_root = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pex"
    mounts = [
        "mkdir -p /etc/xdg " + shlex.quote(str(account_pex_root)),
        f"mount --bind {shlex.quote(str(site))} /etc/xdg",
        f"mount --bind {shlex.quote(str(empty_pex_root))} {shlex.quote(str(account_pex_root))}",
    ]
    if Path("/etc/pip.conf").exists():
        mounts.append(f"mount --bind {shlex.quote(str(site / 'pip' / 'pip.conf'))} /etc/pip.conf")
    caches = [f"--local-store-dir={tmp}/lmdb_store", f"--named-caches-dir={tmp}/named_caches"]
    pants = shlex.join(["./pants", "--no-pantsd", "--no-dynamic-ui", *caches, *args])
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", " && ".join([*mounts, f"exec {pants}"])],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def test_hostile_pip_configuration_builds_the_same_image(machine, tmp_path: Path) -> None:
    reference = Repo.copy_to(tmp_path / "reference")
    reference.pants("package", TARGET).assert_success()
    expected = manifest_digest(reference.root / ARCHIVE)

    repo = Repo.copy_to(tmp_path / "hostile")
    proc = pants_in_namespace(repo, tmp_path, machine, "package", TARGET)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    # The bootstrap ran under the hostile HOME (its virtualenv is made by whichever test of this
    # module runs first, so only its stamp is checked here).
    assert (Path(machine[1]["HOME"]) / ".cache/pants-nix-docker/pants-2.17.1-venv/bin/pants").exists()
    assert manifest_digest(repo.root / ARCHIVE) == expected
    # pip's warnings about the configuration's find-links are gone with the configuration.
    assert "is ignored: it is neither a file nor a directory" not in output
    assert "AssertionError" not in output


def test_failed_download_says_what_to_check(machine, tmp_path: Path) -> None:
    """With a CA bundle that trusts nothing on the way to PyPI, the download of a locked
    artifact fails; the launcher adds what to check below Pants' error."""
    repo = Repo.copy_to(tmp_path / "repo")
    untrusting = TestCA(tmp_path / "ca").ca_cert
    proc = pants_in_namespace(repo, tmp_path, machine, f"--ca-certs-path={untrusting}", "package", TARGET)
    assert proc.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr, proc.stderr[-4000:]
    advice = proc.stderr[proc.stderr.index("[./pants] Pants could not download a Python artifact") :]
    for words in ["[subprocess-environment]", "HTTPS_PROXY", "[GLOBAL].ca_certs_path", "[python-repos]"]:
        assert words in advice, advice
    assert not (repo.root / ARCHIVE).exists()
