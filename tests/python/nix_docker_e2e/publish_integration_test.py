"""Issue #5 (first part): `pants publish` to a real registry, uploading only missing blobs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from nix_docker_e2e.harness import DockerRegistry, Repo, layer_digests, manifest_digest


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("publish") / "repo")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with DockerRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def pulled_digest(registry: DockerRegistry, ref: str) -> str:
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{registry.address}/{ref}"], capture_output=True, check=True).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_publish_then_pull_gives_the_same_digest(repo: Repo, registry: DockerRegistry) -> None:
    result = repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    assert f"{registry.address}/hello:latest published" in result.stderr
    assert pulled_digest(registry, "hello:latest") == manifest_digest(repo.root / "dist/examples.hello/image.tar")
    # Three layers and the config; the manifest is not a blob.
    assert len(set(registry.uploaded_blobs())) == 4


def test_publishing_again_uploads_nothing(repo: Repo, registry: DockerRegistry) -> None:
    repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    before = len(registry.uploaded_blobs())
    repo.pants(registry.pants_option(), "package", "publish", "examples/hello:image").assert_success()
    assert len(registry.uploaded_blobs()) == before


def test_an_app_change_uploads_only_the_changed_layer_and_config(repo: Repo, registry: DockerRegistry) -> None:
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
    assert changed_layers <= new_uploads and len(new_uploads) == 2  # the top layer and the config
    assert pulled_digest(registry, "python-app:latest") == manifest_digest(archive)


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
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    result = repo.pants(registry.pants_option(), "package", "publish", "testprojects/tags:image").assert_success()
    assert f"{registry.address}/acme/hello:{head} published" in result.stderr
    closure_tag = next(t for t in result.stderr.split() if t.startswith(f"{registry.address}/acme/hello:c-")).split(":")[-1]
    assert len(closure_tag) == len("c-") + 12
    archive = repo.root / "dist/testprojects.tags/image.tar"
    assert pulled_digest(registry, f"acme/hello:{head}") == manifest_digest(archive)
    # A change to a tracked file makes the revision "dev".
    (repo.root / "testprojects/tags/BUILD").write_text((repo.root / "testprojects/tags/BUILD").read_text() + "# edited\n")
    dirty = repo.pants("package", "testprojects/tags:image").assert_success()
    assert "image acme/hello:dev," in dirty.stderr
