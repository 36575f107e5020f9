"""Issue #5: `pants publish` to real registries, uploading only missing blobs, and failing clearly."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nix_docker_bench.buildgrid import free_port
from nix_docker_bench.workspace import executed_processes
from nix_docker_e2e.harness import Repo
from nix_docker_e2e.oci_archive import layer_digests, manifest_digest
from nix_docker_e2e.registries import DockerRegistry, FlakyProxy, TestCA


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("publish") / "repo")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with DockerRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def test_publish_then_pull_gives_the_same_digest(repo: Repo, registry: DockerRegistry, tmp_path: Path) -> None:
    result = repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    assert f"{registry.address}/hello:latest published" in result.stderr
    digest = manifest_digest(repo.root / "dist/examples.hello/image.tar")
    assert registry.pulled_digest("hello:latest") == digest
    # Three layers and the config; the SBOM and its artifact's empty config. Manifests are not blobs.
    assert len(set(registry.uploaded_blobs())) == 6
    # The SBOM went with it, and is found from the image's digest alone.
    sbom = registry.sbom_of("hello", digest, tmp_path / "sbom")
    assert sbom == json.loads((repo.root / "dist/examples.hello/image.spdx.json").read_text())
    assert f"listed under the tag {digest.replace(':', '-')}" in result.stderr


def test_publish_alone_pushes_from_the_blobs_and_writes_no_archive(repo: Repo, registry: DockerRegistry) -> None:
    repo.write(
        "testprojects/noarchive/BUILD",
        'nix_docker_image(name="image", packages=["//build-support/nix/default.nix#hello"], '
        'repository="noarchive", entrypoint=["/bin/hello"])\n',
    )
    target = "testprojects/noarchive:image"
    result = repo.pants(registry.pants_option(), "--keep-sandboxes=always", "publish", target).assert_success()
    ran = executed_processes(result.stderr)
    assert not [d for d in ran if d.startswith("Writing image archive")], ran
    # The same image `pants package` writes as an archive.
    repo.pants("package", target).assert_success()
    assert registry.pulled_digest("noarchive:latest") == manifest_digest(
        repo.root / "dist/testprojects.noarchive/image.tar"
    )


def test_publishing_again_uploads_nothing(repo: Repo, registry: DockerRegistry) -> None:
    repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    before = len(registry.uploaded_blobs())
    repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    assert len(registry.uploaded_blobs()) == before


def test_an_app_change_uploads_only_the_changed_layer_and_config(
    repo: Repo, registry: DockerRegistry, tmp_path: Path
) -> None:
    target = "examples/python-app:image"
    archive = repo.root / "dist/examples.python-app/image.tar"
    repo.pants(registry.pants_option(), "package", "publish", target).assert_success()
    first = set(layer_digests(archive))
    before = len(registry.uploaded_blobs())
    server = repo.root / "examples/python-app/src/hello_service/server.py"
    original = server.read_text()
    try:
        server.write_text(original + "\n# a change of the app only\n")
        repo.pants(registry.pants_option(), "package", "publish", target).assert_success()
    finally:
        server.write_text(original)
    new_uploads = {d.replace("%3A", ":") for d in registry.uploaded_blobs()[before:]}
    changed_layers = set(layer_digests(archive)) - first
    assert len(changed_layers) == 1
    # The top layer, the config and the SBOM (it hashes the PEX, which changed).
    assert changed_layers <= new_uploads and len(new_uploads) == 3
    assert registry.pulled_digest("python-app:latest") == manifest_digest(archive)

    # The SBOM found from the new image's digest alone lists the PEX's PyYAML, version and hash.
    sbom = registry.sbom_of("python-app", manifest_digest(archive), tmp_path / "sbom")
    (pyyaml,) = [p for p in sbom["packages"] if p["name"].lower() == "pyyaml"]
    assert pyyaml["versionInfo"] and pyyaml["checksums"][0]["algorithm"] == "SHA256"


def test_skip_push_and_unknown_alias(repo: Repo, registry: DockerRegistry) -> None:
    nix = "//build-support/nix/default.nix"
    with repo.broken_targets("testprojects/publish"):
        _check_skip_push_and_unknown_alias(repo, registry, nix)


def _check_skip_push_and_unknown_alias(repo: Repo, registry: DockerRegistry, nix: str) -> None:
    repo.write(
        "testprojects/publish/BUILD",
        f'nix_docker_image(name="skipped", packages=["{nix}#hello"], skip_push=True)\n'
        f'nix_docker_image(name="unknown", packages=["{nix}#hello"], registries=["@nowhere"])\n',
    )
    skipped = repo.pants(registry.pants_option(), "publish", "testprojects/publish:skipped").assert_success()
    assert "skip_push" in skipped.stderr
    unknown = repo.pants(registry.pants_option(), "publish", "testprojects/publish:unknown")
    assert unknown.returncode != 0
    for words in ["testprojects/publish:unknown", "'registries'", "@nowhere", "known: @test"]:
        assert words in unknown.stderr, unknown.stderr[-2000:]


def test_tag_placeholders_are_rendered_and_published(repo: Repo, registry: DockerRegistry) -> None:
    git = ["git", "-C", str(repo.root), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    if not (repo.root / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
        # What Pants writes is not source, as in the real repo's .gitignore.
        repo.write(".gitignore", "/dist/\n/.pants.d/\n/.pids/\n/3rdparty/tools/\n/.pants.workdir.file_lock*\n")
    repo.write(
        "testprojects/tags/BUILD",
        'nix_docker_image(name="image", packages=["//build-support/nix/default.nix#hello"], '
        'repository="acme/hello", image_tags=["{git_revision}", "c-{closure_hash}"])\n',
    )
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tags"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = repo.pants(registry.pants_option(), "package", "publish", "testprojects/tags:image").assert_success()
    assert f"{registry.address}/acme/hello:{head} published" in result.stderr
    closure_tag = next(t for t in result.stderr.split() if t.startswith(f"{registry.address}/acme/hello:c-")).split(
        ":"
    )[-1]
    assert len(closure_tag) == len("c-") + 12
    archive = repo.root / "dist/testprojects.tags/image.tar"
    assert registry.pulled_digest(f"acme/hello:{head}") == manifest_digest(archive)
    # A change to a tracked file makes the revision "dev".
    (repo.root / "testprojects/tags/BUILD").write_text(
        (repo.root / "testprojects/tags/BUILD").read_text() + "# edited\n"
    )
    dirty = repo.pants("package", "testprojects/tags:image").assert_success()
    assert "image acme/hello:dev," in dirty.stderr


def test_tls_and_htpasswd_registry(repo: Repo, tmp_path: Path) -> None:
    password = "s3cret-Pa55-for-the-test"
    with DockerRegistry(tmp_path / "registry", tls=TestCA(tmp_path / "ca"), htpasswd=("ci", password)) as registry:
        good = {"REGISTRY_AUTH_FILE": str(registry.write_auth_file(tmp_path / "auth.json"))}
        wrong = {"REGISTRY_AUTH_FILE": str(registry.write_auth_file(tmp_path / "wrong.json", "not-the-password"))}

        refused = repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image", env=wrong)
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert (
            f"Could not publish examples/hello:image to {registry.address}/hello:latest: {registry.address} refused "
            "the credentials" in said
        )
        assert f"skopeo login {registry.address}" in said
        assert password not in said and "not-the-password" not in said
        assert registry.pull_everything("hello:latest", tmp_path / "none").returncode != 0  # no tag was written

        repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image", env=good).assert_success()
        digest = manifest_digest(repo.root / "dist/examples.hello/image.tar")
        assert registry.pulled_digest("hello:latest") == digest
        assert registry.pull_everything("hello:latest", tmp_path / "pulled").returncode == 0
        # The image tool found the same credentials as skopeo to write the referrers tag.
        assert registry.sbom_of("hello", digest, tmp_path / "sbom")["name"] == "hello"

        # Without the test CA, TLS fails, and the message says how to trust it.
        untrusted = f"--nix-docker-registries={{'test': {{'address': '{registry.address}', 'default': True}}}}"
        result = repo.pants(untrusted, "publish", "examples/hello:image", env=good)
        assert result.returncode != 0
        assert (
            f"the TLS certificate of {registry.address} is not trusted" in result.stderr and "cert_dir" in result.stderr
        )


def test_unreachable_registry(repo: Repo) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    option = f"--nix-docker-registries={{'test': {{'address': '{nowhere}', 'default': True, 'tls_verify': False}}}}"
    result = repo.pants(option, "publish", "examples/hello:image")
    assert result.returncode != 0
    assert (
        f"Could not publish examples/hello:image to {nowhere}/hello:latest: {nowhere} cannot be reached"
        in result.stderr
    )
    assert f"{nowhere}/hello:latest failed" in result.stderr


def test_monorepo_uploads_each_shared_blob_once(repo: Repo, tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry") as registry:
        repo.pants(registry.pants_option(), "package", "publish", "examples/monorepo::").assert_success()
        uploads = registry.uploaded_blobs()
        # The SBOM artifacts' config is the 2-byte `{}`, the same in every repository: skopeo
        # uploads a config without trying a mount (configs are small), so it goes once per image.
        empty_config = "sha256:" + hashlib.sha256(b"{}").hexdigest()
        twice = {d for d in uploads if uploads.count(d) > 1 and d != empty_config}
        assert not twice, f"uploaded more than once: {twice}"
        assert uploads.count(empty_config) <= 10
        archives = sorted((repo.root / "dist/examples.monorepo").glob("*.tar"))
        assert len(archives) == 10
        blobs_per_image = [set(layer_digests(a)) for a in archives]
        shared = set.intersection(*blobs_per_image)
        assert len(shared) >= 10  # the Python closure and the root filesystem
        # Every image got every shared blob, yet each was uploaded once: the others were mounted.
        assert shared <= set(uploads) and shared <= set(registry.mounted_blobs())
        for archive in archives:
            name = archive.stem
            assert registry.pulled_digest(f"monorepo/{name}:latest") == manifest_digest(archive)


def test_a_failing_registry_never_leaves_a_tag_to_a_missing_blob(repo: Repo, tmp_path: Path) -> None:
    target, archive = "examples/python-app:image", repo.root / "dist/examples.python-app/image.tar"
    with DockerRegistry(tmp_path / "registry") as registry:
        # First a connection cut 1 MiB into a layer upload (the 12 MB Python layer is in there),
        # then a registry that answers 500 to its first two connections.
        faults: list[dict[str, Any]] = [dict(drops=1, drop_after=1 << 20), dict(fail_with_500=(1, 2))]
        for n, fault in enumerate(faults):
            proxy = FlakyProxy(registry.address, **fault)
            try:
                flaky = repo.pants(registry.pants_option(proxy.address), "package", "publish", target)
            finally:
                proxy.close()
            assert proxy.faults >= 1, f"no fault was injected by {fault}"
            tag = registry.pull_everything("python-app:latest", tmp_path / f"after-fault-{n}")
            if flaky.returncode == 0:
                assert tag.returncode == 0, tag.stderr  # skopeo's retries got it through: complete
            else:
                # Failed: it says so, with what to do, and no tag names a missing blob.
                assert "Could not publish examples/python-app:image" in flaky.stderr, flaky.stderr[-3000:]
                assert tag.returncode == 0 or "manifest unknown" in tag.stderr, tag.stderr
        # The next publish, without faults, completes the image.
        repo.pants(registry.pants_option(), "package", "publish", target).assert_success()
        assert registry.pull_everything("python-app:latest", tmp_path / "complete").returncode == 0
        assert registry.pulled_digest("python-app:latest") == manifest_digest(archive)
