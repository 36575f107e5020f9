"""Issue #5: images built on a base image, from a file in the repository or a registry by digest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nix_docker_bench.workspace import executed_processes
from nix_docker_e2e.harness import Repo, run
from nix_docker_e2e.oci_archive import index_of, layer_digests, manifest_digest
from nix_docker_e2e.registries import DockerRegistry
from nix_docker_e2e.runtimes import edit_process, runc_run, unpack_bundle

HELLO_OUTPUT = "Hello from a Nix closure in a reproducible OCI image!"
NIX = "//build-support/nix/default.nix"
WRONG_PIN = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = Repo.copy_to(tmp_path_factory.mktemp("base") / "repo")
    repo.pants("package", "examples/hello:image").assert_success()
    (repo.root / "testprojects/base").mkdir(parents=True)
    shutil.copy(repo.root / "dist/examples.hello/image.tar", repo.root / "testprojects/base/hello-base.tar")
    return repo


def blob_json(archive: Path, digest: str) -> dict:
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
        assert member is not None
        return json.load(member)


def manifest_and_config(archive: Path) -> tuple[dict, dict]:
    manifest = blob_json(archive, manifest_digest(archive))
    return manifest, blob_json(archive, manifest["config"]["digest"])


def image_target(name: str, base: str, package: str = "busybox", **fields: str) -> str:
    extra = "".join(f", {k}={v}" for k, v in fields.items())
    return (
        f'nix_docker_image(name="{name}", base_image="{base}", packages=["{NIX}#{package}"], env={{"FROM_IMAGE": '
        f'"yes"}}{extra})\n'
    )


def push(archive: Path, registry: DockerRegistry, name: str) -> str:
    """Push an OCI archive to the test registry as NAME (repository:tag); return its digest there."""
    target = f"docker://{registry.address}/{name}"
    pushed = run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive}:latest", target])
    assert pushed.returncode == 0, pushed.stderr
    return registry.pulled_digest(name)


def test_an_image_on_a_base_archive(repo: Repo, tmp_path: Path) -> None:
    base = repo.root / "testprojects/base/hello-base.tar"
    repo.write("testprojects/base/BUILD", image_target("on-file", f"hello-base.tar@{manifest_digest(base)}"))
    result = repo.pants("package", "testprojects/base:on-file").assert_success()
    archive = repo.root / "dist/testprojects.base/on-file.tar"
    base_layers = layer_digests(base)
    # Its busybox is in the base already, so it is not shipped again: only its /tmp layer is its own.
    assert (
        f"in {len(base_layers) + 1} layers" in result.stderr
        and f", {len(base_layers)} from the base image" in result.stderr
    ), result.stderr[-2000:]
    report = json.loads((repo.root / "dist/testprojects.base/on-file.report.json").read_text())
    busybox = next(p for p in report["store_paths"] if p.endswith("-busybox-1.35.0"))
    assert report["layers"][report["store_paths"][busybox]["layer"]]["description"] == "base image layer"

    # The base's layers come first, byte for byte; its history too.
    assert layer_digests(archive)[: len(base_layers)] == base_layers
    manifest, config = manifest_and_config(archive)
    _, base_config = manifest_and_config(base)
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == manifest_digest(base)
    assert config["history"][: len(base_config["history"])] == base_config["history"]
    assert config["rootfs"]["diff_ids"][: len(base_layers)] == base_config["rootfs"]["diff_ids"]
    # The base's entrypoint applies (the image sets none); Env merges.
    assert config["config"]["Entrypoint"] == base_config["config"]["Entrypoint"]
    assert "FROM_IMAGE=yes" in config["config"]["Env"]

    # It runs the base's program, and has the image's busybox next to it.
    bundle = unpack_bundle(archive, tmp_path)
    proc = runc_run(bundle)
    assert proc.returncode == 0 and proc.stdout.strip() == HELLO_OUTPUT, proc.stderr
    hello = base_config["config"]["Entrypoint"][0]
    busybox = next(p for p in (bundle / "rootfs/nix/store").iterdir() if p.name.endswith("-busybox-1.35.0"))
    edit_process(bundle, args=[f"/nix/store/{busybox.name}/bin/sh", "-c", f"{hello} && echo FROM_IMAGE=$FROM_IMAGE"])
    proc = runc_run(bundle)
    assert proc.returncode == 0 and proc.stdout.split() == [*HELLO_OUTPUT.split(), "FROM_IMAGE=yes"], proc.stderr
    # The same inputs give the same image.
    first = manifest_digest(archive)
    repo.pants("package", "testprojects/base:on-file").assert_success()
    assert manifest_digest(archive) == first


@pytest.mark.parametrize(
    "value, fields, words",
    [
        (
            f"hello-base.tar@{WRONG_PIN}",
            {},
            ["'base_image'", f"no manifest with the pinned digest {WRONG_PIN}", "update the digest"],
        ),
        ("missing.tar", {}, ["'base_image'", "there is no file or directory testprojects/badbase/missing.tar"]),
        ("BUILD", {}, ["'base_image'", "neither a directory (an OCI layout) nor a tar archive"]),
        ("docker://127.0.0.1:1/hello:latest", {}, ["'base_image'", "must be pinned by digest", "skopeo inspect"]),
        # zlib is not in the base (busybox is, and would need no layer of its own).
        (
            "hello-base.tar",
            {"package": "zlib", "max_layers": "3"},
            ["'max_layers'", "the base image has 3 layers", "at least 5"],
        ),
    ],
)
def test_bad_base_images(repo: Repo, value: str, fields: dict, words: list[str]) -> None:
    with repo.broken_targets("testprojects/badbase"):
        (repo.root / "testprojects/badbase").mkdir(parents=True)
        shutil.copy(repo.root / "testprojects/base/hello-base.tar", repo.root / "testprojects/badbase/hello-base.tar")
        repo.write("testprojects/badbase/BUILD", image_target("bad", value, **fields))
        result = repo.pants("package", "testprojects/badbase:bad")
        assert result.returncode != 0
        for word in ["testprojects/badbase:bad", *words]:
            assert word in result.stderr, (word, result.stderr[-3000:])
        assert not (repo.root / "dist/testprojects.badbase").exists()


def test_a_base_image_from_a_registry_pinned_by_digest(repo: Repo, tmp_path: Path) -> None:
    base = repo.root / "testprojects/base/hello-base.tar"
    with DockerRegistry(tmp_path / "registry") as registry:
        digest = push(base, registry, "base/hello:1")
        reference = f"docker://{registry.address}/base/hello:1@{digest}"
        repo.write(
            "testprojects/fromregistry/BUILD",
            image_target("pulled", reference) + image_target("again", reference, labels='{"second": "yes"}'),
        )
        result = repo.pants(registry.pants_option(), "package", "testprojects/fromregistry:pulled").assert_success()
        archive = repo.root / "dist/testprojects.fromregistry/pulled.tar"
        assert layer_digests(archive)[:3] == layer_digests(base)
        manifest, _ = manifest_and_config(archive)
        assert manifest["annotations"]["org.opencontainers.image.base.name"] == f"{registry.address}/base/hello:1"
        assert manifest["annotations"]["org.opencontainers.image.base.digest"] == digest

        missing = f"docker://{registry.address}/base/hello:1@{WRONG_PIN}"
        with repo.broken_targets("testprojects/nosuchbase"):
            repo.write("testprojects/nosuchbase/BUILD", image_target("bad", missing))
            bad = repo.pants(registry.pants_option(), "package", "testprojects/nosuchbase:bad")
            assert bad.returncode != 0
            for words in [
                "testprojects/nosuchbase:bad",
                "'base_image'",
                f"has no image with digest {WRONG_PIN}",
                "skopeo inspect",
            ]:
                assert words in bad.stderr, (words, bad.stderr[-3000:])

    # Pulled once, cached by digest: with the registry gone, another image on it still builds.
    assert "from the base image" in result.stderr
    repo.pants(registry.pants_option(), "package", "testprojects/fromregistry:again").assert_success()
    again = repo.root / "dist/testprojects.fromregistry/again.tar"
    assert layer_digests(again)[:3] == layer_digests(base)
    assert index_of(again)["manifests"][0]["digest"] == manifest_digest(again)


def test_two_users_share_one_pulled_base_image(repo: Repo, tmp_path: Path) -> None:
    """The pull's cache key is the reference and digest: where each user keeps registry settings
    (HOME, XDG_RUNTIME_DIR, an auth file) reaches skopeo but not the key."""
    base = repo.root / "testprojects/base/hello-base.tar"
    caches = tmp_path / "caches"
    with DockerRegistry(tmp_path / "registry") as registry:
        reference = f"docker://{registry.address}/base/shared:1@{push(base, registry, 'base/shared:1')}"
        repo.write("testprojects/shared/BUILD", image_target("shared", reference))
        pulls = []
        for user in ("alice", "bob"):
            home = tmp_path / user
            (home / "run").mkdir(parents=True)
            auth = home / "auth.json"
            auth.write_text("{}")
            result = repo.pants(
                registry.pants_option(),
                "--keep-sandboxes=always",
                "package",
                "testprojects/shared:shared",
                caches=caches,
                env={"HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"), "REGISTRY_AUTH_FILE": str(auth)},
            ).assert_success()
            pulls.append(sum(executed_processes(result.stderr, "Pulling base image").values()))
    assert pulls == [1, 0]
