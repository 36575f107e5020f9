"""Issue #7: what the images hold (no setuid, no devices, nothing world-writable unasked, owners as
declared), and that registry credentials reach no log, dist/ file, process or cache."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import shutil
import stat
import tarfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from nix_docker_e2e.harness import Repo, run
from nix_docker_e2e.oci_archive import layer_digests, manifest_digest
from nix_docker_e2e.registries import DockerRegistry, TestCA
from nix_docker_e2e.signing import GpgKey, make_gpg_key, signature_config

EXAMPLES = ("hello", "python", "python-app")
# What the examples ask for: owners other than root, and world-writable directories.
DECLARED_OWNERS = {"python-app": {"data": (1000, 1000), "home/app": (1000, 1000)}}
WORLD_WRITABLE = {"tmp"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = Repo.copy_to(tmp_path_factory.mktemp("security") / "repo")
    repo.pants("package", *(f"examples/{name}:image" for name in EXAMPLES)).assert_success()
    return repo


def layer_members(archive: Path):
    with tarfile.open(archive) as outer:
        for digest in layer_digests(archive):
            blob = outer.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
            assert blob is not None
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read()))) as layer:
                yield from layer.getmembers()


def test_images_hold_no_setuid_devices_or_unasked_world_writable_files(repo: Repo) -> None:
    checked = 0
    for example in EXAMPLES:
        owners = DECLARED_OWNERS.get(example, {})
        for member in layer_members(repo.root / f"dist/examples.{example}/image.tar"):
            checked += 1
            name = member.name.rstrip("/")
            assert not member.mode & (stat.S_ISUID | stat.S_ISGID), f"{example}: {name} is setuid/setgid"
            assert (
                member.isfile() or member.isdir() or member.issym()
            ), f"{example}: {name} is a device, fifo or hardlink"
            if not member.issym() and member.mode & 0o002:
                assert name in WORLD_WRITABLE and member.mode == 0o1777, f"{example}: {name} is world-writable"
            assert (member.uid, member.gid) == owners.get(
                name, (0, 0)
            ), f"{example}: {name} is owned {member.uid}:{member.gid}"
            if name.startswith("nix/store/") and not member.issym():
                assert not member.mode & 0o222, f"{example}: {name} in the store is writable"
    print(
        f"FIGURE: output security: {checked} layer entries of {len(EXAMPLES)} example images checked, 0 setuid, 0 "
        "devices, 0 unasked world-writable"
    )
    assert checked > 1000


def _files_under(roots: list[Path]):
    for root in roots:
        if root.is_file():
            yield root
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path


@pytest.fixture
def gpg_key(tmp_path: Path) -> Iterator[GpgKey]:
    key = make_gpg_key(tmp_path / "gpg", f"phrase-{uuid.uuid4().hex}")
    yield key
    key.close()


def test_credentials_and_signing_keys_reach_no_log_file_process_or_cache(
    repo: Repo, tmp_path: Path, gpg_key: GpgKey
) -> None:
    """Publishes through a TLS registry with a password, a remote cache, and a GPG signing key with
    a passphrase; then searches everything Pants wrote for the secrets. The signed image passes a
    policy that requires the key's signature; the unsigned base image does not."""
    from nix_docker_bench.buildgrid import BuildGrid
    from nix_docker_e2e.harness import REPO_FILES

    user, password, key = "ci", f"pw-{uuid.uuid4().hex}", gpg_key
    secrets = [password.encode(), base64.b64encode(f"{user}:{password}".encode()), key.passphrase_file.read_bytes()]
    secrets += key.secret_material()
    base = repo.root / "dist/examples.hello/image.tar"
    with DockerRegistry(
        tmp_path / "registry", tls=TestCA(tmp_path / "ca"), htpasswd=(user, password)
    ) as registry, BuildGrid(tmp_path / "buildgrid", REPO_FILES) as grid:
        assert registry.tls is not None
        policy, registries_d = signature_config(tmp_path / "signatures", registry.address, key)
        pushed = run(
            [
                "skopeo",
                "copy",
                "-q",
                f"--dest-cert-dir={registry.tls.cert_dir}",
                f"--dest-creds={user}:{password}",
                f"oci-archive:{base}:latest",
                f"docker://{registry.address}/base/hello:1",
            ]
        )
        assert pushed.returncode == 0, pushed.stderr
        digest = registry.pulled_digest("base/hello:1")
        auth = {"REGISTRY_AUTH_FILE": str(registry.write_auth_file(tmp_path / "auth.json"))}
        repo.write(
            "testprojects/secret/BUILD",
            f'nix_docker_image(name="image", base_image="docker://{registry.address}/base/hello:1@{digest}", '
            f'packages=["//build-support/nix/default.nix#busybox"], repository="secret/app")\n',
        )
        # Pulls the base with the credentials (a cached process, written to the remote cache too),
        # then publishes with them.
        result = repo.pants(
            *grid.pants_options(),
            registry.pants_option(),
            f"--nix-docker-sign-by={key.fingerprint}",
            f"--nix-docker-sign-passphrase-file={key.passphrase_file}",
            f"--nix-docker-registries-d={registries_d}",
            "--keep-sandboxes=always",
            "package",
            "publish",
            "testprojects/secret:image",
            caches=tmp_path / "caches",
            env={**auth, "GNUPGHOME": str(key.home)},
        ).assert_success()
        assert f"{registry.address}/secret/app:latest published" in result.stderr

        # A pull that requires the key's signature: the published image passes, the base does not.
        verify = ["skopeo", "--policy", str(policy), "--registries.d", str(registries_d), "copy", "--quiet"]
        verify += registry.skopeo_options("src-")
        signed = run([*verify, f"docker://{registry.address}/secret/app:latest", f"dir:{tmp_path / 'signed'}"])
        assert signed.returncode == 0, signed.stderr
        unsigned = run([*verify, f"docker://{registry.address}/base/hello:1", f"dir:{tmp_path / 'unsigned'}"])
        assert unsigned.returncode != 0 and "A signature was required, but no signature exists" in unsigned.stderr
        sandboxes = [
            Path(p) for p in re.findall(r"Preserving local process execution dir `?(\S+?)`? for", result.stderr)
        ]
        pulls = [s for s in sandboxes if (s / "__run.sh").is_file() and "docker://" in (s / "__run.sh").read_text()]
        assert pulls, "the pull's sandbox (argv and env in __run.sh) was kept and is searched"
        roots = [repo.root / "dist", repo.root / ".pants.d", tmp_path / "caches", tmp_path / "buildgrid", *sandboxes]
        scanned = size = 0
        for path in _files_under(roots):
            data = path.read_bytes()
            scanned += 1
            size += len(data)
            for secret in secrets:
                assert secret not in data, f"a credential is in {path}"
        said = (result.stdout + result.stderr).encode()
        assert not any(secret in said for secret in secrets)
    print(
        f"FIGURE: secrets: {scanned} files ({size / 1e6:.0f} MB) of logs, dist/, kept sandboxes, local and remote "
        "caches searched, 0 credentials or signing secrets found"
    )
    assert scanned > 100 and json.loads((tmp_path / "auth.json").read_text())["auths"]
    assert manifest_digest(repo.root / "dist/testprojects.secret/image.tar")
    for sandbox in sandboxes:
        shutil.rmtree(sandbox, ignore_errors=True)
