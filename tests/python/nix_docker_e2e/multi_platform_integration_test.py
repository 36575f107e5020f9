"""Issue #16: one target, one OCI image index for linux/amd64 and linux/arm64, each platform's
closure from Nix for that platform; run under qemu's binfmt emulation, published under one tag."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from nix_docker_e2e.harness import Repo, run
from nix_docker_e2e.oci_archive import index_of, manifest_digest, member_bytes, platform_manifests
from nix_docker_e2e.registries import DockerRegistry
from nix_docker_e2e.runtimes import runc_run

TARGET = "examples/hello:multi"
NIX = "//build-support/nix/default.nix"
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Iterator[Repo]:
    repo = Repo.copy_to(tmp_path_factory.mktemp("multi") / "repo")
    # A busybox image, so each platform's image can say which machine it runs on.
    repo.write(
        "testprojects/mp/BUILD",
        f'nix_docker_image(name="uname", repository="mp-uname", packages=["{NIX}#busybox"], '
        'platforms=["x86_64-linux", "aarch64-linux"], entrypoint=["${pkgs.busybox}/bin/uname", "-m"])\n',
    )
    yield repo
    repo.stop_pantsd()


@pytest.fixture(scope="module")
def archive(repo: Repo) -> Path:
    repo.pants("package", TARGET, "testprojects/mp:uname", "examples/hello:image", pantsd=True).assert_success()
    return repo.root / "dist/examples.hello/multi.tar"


def platforms_of(index: dict) -> list[tuple[str, str, str | None]]:
    return [
        (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]
    ]


def test_the_archive_is_an_index_of_both_platforms(archive: Path) -> None:
    raw = run(["skopeo", "inspect", "--raw", f"oci-archive:{archive}:latest"], check=True).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert platforms_of(index) == [("linux", "amd64", None), ("linux", "arm64", "v8")]
    # Layers the platforms share are stored once: here none (each has its own busybox), but the
    # archive holds exactly the blobs the two manifests name.
    assert index_of(archive)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_platforms_image_runs_on_its_machine(repo: Repo, archive: Path, arch: str, tmp_path: Path) -> None:
    assert Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(), "./pants registers qemu's aarch64 handler"
    uname = repo.root / "dist/testprojects.mp/uname.tar"
    layout = tmp_path / "layout"
    run(
        ["skopeo", "copy", "--quiet", "--override-arch", arch, f"oci-archive:{uname}:latest", f"oci:{layout}:x"],
        check=True,
    )
    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{layout}:x", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"][-1] == "-m"  # the image's own entrypoint: uname -m
    config["process"]["terminal"] = False  # runc cannot allocate one here
    (bundle / "config.json").write_text(json.dumps(config))
    result = runc_run(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == MACHINES[arch]


def test_published_under_one_tag_each_machine_pulls_its_own(repo: Repo, archive: Path, tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry") as registry:
        repo.pants(registry.pants_option(), "publish", TARGET, pantsd=True).assert_success()
        assert registry.pulled_digest("hello-multi:latest") == manifest_digest(archive)
        expected = {m["platform"]["architecture"]: m["digest"] for m in platform_manifests(archive)}
        overrides: list[tuple[str, list[str]]] = [("arm64", ["--override-arch", "arm64"]), ("amd64", [])]
        for arch, override in overrides:  # amd64: this host's, pulled with no override
            dest = tmp_path / f"pulled-{arch}"
            source = f"docker://{registry.address}/hello-multi:latest"
            run(
                ["skopeo", "copy", "--quiet", *registry.skopeo_options("src-"), *override, source, f"oci:{dest}:x"],
                check=True,
            )
            pulled = json.loads((dest / "index.json").read_text())["manifests"][0]["digest"]
            assert pulled == expected[arch], arch
        # Each platform's image has its own SBOM, found from that image's digest alone.
        sboms = {arch: registry.sbom_of("hello-multi", d, tmp_path / f"sbom-{arch}") for arch, d in expected.items()}
        assert {arch: doc["spdxVersion"] for arch, doc in sboms.items()} == {"amd64": "SPDX-2.3", "arm64": "SPDX-2.3"}
        assert sboms["amd64"]["packages"] != sboms["arm64"]["packages"]
        before = len(registry.uploaded_blobs())
        repo.pants(registry.pants_option(), "publish", TARGET, pantsd=True).assert_success()
        assert len(registry.uploaded_blobs()) == before  # a republish uploads no blob


def test_a_multi_platform_base_gives_each_platform_its_image(repo: Repo, archive: Path) -> None:
    (repo.root / "testprojects/mpbase").mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, repo.root / "testprojects/mpbase/base.tar")
    shutil.copy(repo.root / "dist/examples.hello/image.tar", repo.root / "testprojects/mpbase/amd64-only.tar")
    both = 'platforms=["x86_64-linux", "aarch64-linux"]'
    repo.write(
        "testprojects/mpbase/BUILD",
        f'nix_docker_image(name="on-index", repository="on-index", packages=["{NIX}#hello"], {both}, '
        'base_image="base.tar")\n'
        f'nix_docker_image(name="on-amd64", repository="on-amd64", packages=["{NIX}#hello"], {both}, '
        'base_image="amd64-only.tar")\n',
    )
    repo.pants("package", "testprojects/mpbase:on-index", pantsd=True).assert_success()
    base = {m["platform"]["architecture"]: m["digest"] for m in platform_manifests(archive)}
    for entry in platform_manifests(repo.root / "dist/testprojects.mpbase/on-index.tar"):
        annotations = manifest_of(repo.root / "dist/testprojects.mpbase/on-index.tar", entry["digest"])["annotations"]
        assert annotations["org.opencontainers.image.base.digest"] == base[entry["platform"]["architecture"]]

    result = repo.pants("package", "testprojects/mpbase:on-amd64", pantsd=True)
    assert result.returncode != 0
    for words in ["testprojects/mpbase:on-amd64", "'base_image'", "linux/amd64 image, not linux/arm64/v8"]:
        assert words in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("system, machine", [(None, "x86_64"), ("aarch64-linux", "aarch64")])
def test_pants_run_runs_the_hosts_platform_or_the_one_asked_for(
    repo: Repo, archive: Path, system: str | None, machine: str
) -> None:
    option = [f"--nix-docker-run-platform={system}"] if system else []
    result = repo.pants(*option, "run", "testprojects/mp:uname", pantsd=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == machine


def manifest_of(archive: Path, digest: str) -> dict:
    with tarfile.open(archive) as tf:
        return json.loads(member_bytes(tf, "blobs/sha256/" + digest.split(":")[1]))
