"""Issue #2 end to end: `./pants package` of real Nix closures, checked with skopeo, umoci, runc
and podman, in a scratch copy of the repository."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import textwrap
import uuid
from pathlib import Path

import pytest

from nix_docker_e2e.harness import Repo, nix_closure, run
from nix_docker_e2e.oci_archive import index_of, layer_members, manifest_digest, sha256_file
from nix_docker_e2e.runtimes import PODMAN_RUN, runc_run, unpack_bundle

HELLO_OUTPUT = "Hello from a Nix closure in a reproducible OCI image!"
NIX_SET = "build-support/nix/default.nix"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo.copy_to(tmp_path_factory.mktemp("e2e") / "repo")


@pytest.fixture(scope="module")
def build(repo: Repo):
    result = repo.pants("package", "examples/hello:image", "examples/python:image", "examples/hello:multi")
    return result.assert_success(), {
        "hello": repo.root / "dist/examples.hello/image.tar",
        "python": repo.root / "dist/examples.python/image.tar",
        # An index of an amd64 and an arm64 image (issue #16): the same bytes from fresh caches too.
        "multi": repo.root / "dist/examples.hello/multi.tar",
    }


@pytest.fixture(scope="module")
def images(build) -> dict[str, Path]:
    return build[1]


def test_package_logs_digest_size_and_layer_count(build) -> None:
    result, images = build
    log = result.stderr
    assert f"image hello:latest: {manifest_digest(images['hello'])}" in log
    assert "MB in 16 layers, 15 store paths" in log  # 15 store layers and the /tmp layer


def test_hello_image_runs_under_runc(images, tmp_path: Path) -> None:
    proc = runc_run(unpack_bundle(images["hello"], tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == HELLO_OUTPUT


def test_python_image_runs_under_runc(images, tmp_path: Path) -> None:
    proc = runc_run(unpack_bundle(images["python"], tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("Python 3.11") and "/nix/store/" in lines[0]
    # The CA bundle from the closure is loaded through SSL_CERT_FILE.
    assert json.loads(lines[1].replace("'", '"'))["x509_ca"] > 100


@pytest.mark.parametrize("name,attrs", [("hello", ["hello"]), ("python", ["python3", "cacert"])])
def test_image_store_is_exactly_the_runtime_closure(repo: Repo, images, name: str, attrs: list[str]) -> None:
    closure = nix_closure([arg for a in attrs for arg in (NIX_SET, "-A", a)], repo.root)
    layers = layer_members(images[name])
    tops = [m for layer in layers for m in layer if m.count("/") == 2 and m.startswith("nix/store/")]
    assert sorted(tops) == sorted(p.lstrip("/") for p in closure), "none missing, none extra"
    assert len(tops) == len(set(tops)), "no store path in two layers"
    outside = {m for layer in layers for m in layer if not (m == "nix" or m.startswith("nix/"))}
    assert outside == {"tmp"}, "nothing copied to the image root; only the default /tmp"


def test_skopeo_reads_both_oci_and_docker_archive(images, tmp_path: Path) -> None:
    archive = images["hello"]
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == manifest_digest(archive)
    # manifest.json names the image, so the docker-archive transport finds it by tag.
    docker = json.loads(run(["skopeo", "inspect", f"docker-archive:{archive}:hello:latest"], check=True).stdout)
    assert len(docker["Layers"]) == 3
    run(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{tmp_path}/copy:hello"], check=True)
    run(["skopeo", "copy", "-q", f"oci-archive:{archive}", f"dir:{tmp_path}/dir"], check=True)


def test_podman_loads_and_runs_the_archive(images) -> None:
    loaded = run(["podman", "load", "-i", str(images["hello"])])
    assert loaded.returncode == 0, loaded.stderr
    assert "docker.io/library/hello:latest" in loaded.stdout
    ran = run([*PODMAN_RUN, "docker.io/library/hello:latest"])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == HELLO_OUTPUT


def test_fresh_caches_and_optimised_store_give_the_same_digests(repo: Repo, images, tmp_path: Path) -> None:
    before = {name: sha256_file(path) for name, path in images.items()}
    targets = ("examples/hello:image", "examples/python:image", "examples/hello:multi")
    repo.pants("package", *targets, caches=tmp_path / "fresh-1").assert_success()
    assert {name: sha256_file(path) for name, path in images.items()} == before
    # Hardlinking identical files must change nothing: layers never record hardlinks.
    run(["nix-store", "--optimise"], check=True)
    repo.pants("package", *targets, caches=tmp_path / "fresh-2").assert_success()
    assert {name: sha256_file(path) for name, path in images.items()} == before


def make_flake(directory: Path) -> None:
    """A pure flake (no nixpkgs): busybox rides along in the flake's own source."""
    directory.mkdir(parents=True)
    shutil.copy("/usr/bin/busybox", directory / "busybox")
    (directory / "flake.nix").write_text(
        textwrap.dedent(
            """
            {
              outputs = { self }:
                let
                  system = "x86_64-linux";
                  bb = "${self}/busybox";
                  shell = derivation {
                    name = "flake-shell-1.0"; inherit system; builder = bb;
                    args = [ "sh" "-c" (
                      "${bb} mkdir -p $out/bin && ${bb} cp ${bb} $out/bin/busybox"
                      + " && ${bb} ln -s busybox $out/bin/sh"
                    ) ];
                  };
                in {
                  packages.${system}.greeting = derivation {
                    name = "greeting-1.0"; inherit system; builder = bb;
                    args = [ "sh" "-c" (
                      "${bb} mkdir -p $out/bin"
                      + " && ${bb} printf '#!${shell}/bin/sh\\necho greetings from a flake\\n' > $out/bin/greet"
                      + " && ${bb} chmod 555 $out/bin/greet"
                    ) ];
                  };
                };
            }
            """
        )
    )


def test_flake_installables_through_the_registry(repo: Repo, tmp_path: Path) -> None:
    flake = tmp_path / "flake"
    make_flake(flake)
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "version": 2,
                "flakes": [{"from": {"type": "indirect", "id": "nixpkgs"}, "to": {"type": "path", "path": str(flake)}}],
            }
        )
    )
    repo.write(
        "testprojects/flake/BUILD",
        'nix_docker_image(name="image", packages=["nixpkgs#greeting"], entrypoint=["${pkgs.greeting}/bin/greet"])\n',
    )
    env = {"NIX_CONFIG": f"flake-registry = {registry}"}
    repo.pants("package", "testprojects/flake:image", env=env).assert_success()
    bundle = unpack_bundle(repo.root / "dist/testprojects.flake/image.tar", tmp_path / "run")
    proc = runc_run(bundle)
    assert proc.stdout.strip() == "greetings from a flake", proc.stderr
    members = [
        m
        for layer in layer_members(repo.root / "dist/testprojects.flake/image.tar")
        for m in layer
        if m.count("/") == 2
    ]
    assert sorted(m.split("-", 1)[1] for m in members) == [
        "flake-shell-1.0",
        "greeting-1.0",
    ], "no flake source, no builder"


BAD_TARGETS = {
    "missing-attr": (
        f'nix_docker_image(name="missing-attr", packages=["//{NIX_SET}#nope"])',
        ["testprojects/bad:missing-attr", "`packages`", "attribute 'nope'", "Fix the installable"],
    ),
    "unknown-ref": (
        f'nix_docker_image(name="unknown-ref", packages=["//{NIX_SET}#hello"], cmd=["${{pkgs.helo}}/bin/hello"])',
        ["testprojects/bad:unknown-ref", "'cmd'", "${pkgs.helo}", "known names: hello"],
    ),
    "not-in-store": (
        'nix_docker_image(name="not-in-store", packages=["/nix/store/00000000000000000000000000000000-nothing"])',
        ["testprojects/bad:not-in-store", "`packages`", "don't know how to build"],
    ),
    "fails-to-build": (
        'nix_docker_image(name="fails-to-build", packages=["broken.nix#broken"])',
        ["testprojects/bad:fails-to-build", "`packages`", "the build broke on purpose", "Fix the installable"],
    ),
    "unknown-user": (
        f'nix_docker_image(name="unknown-user", packages=["//{NIX_SET}#hello"], user="nobody")',
        ["testprojects/bad:unknown-user", "'user'", "nobody"],
    ),
    "through-a-symlink": (
        f'nix_docker_image(name="through-a-symlink", packages=["//{NIX_SET}#hello", "//{NIX_SET}#busybox"], '
        "usr_bin_env=True, "
        'directories={"/usr/bin/env/data": "root"})',
        ["testprojects/bad:through-a-symlink", "'directories'", "/usr/bin/env to be a directory, but it is a symlink"],
    ),
}
# A derivation that fails, salted so Nix really builds it: its error tail must reach the user.
BROKEN_NIX = (
    "let lib = import ../../build-support/nix/lib.nix; in {\n"
    '  broken = lib.run { name = "broken-1.0"; script = "echo SALT; echo the build broke on purpose >&2; exit 1"; '
    "};\n}\n"
)


@pytest.mark.parametrize("name", sorted(BAD_TARGETS))
def test_bad_input_fails_clearly_and_leaves_dist_empty(repo: Repo, name: str) -> None:
    with repo.broken_targets("testprojects/bad"):
        repo.write("testprojects/bad/BUILD", "\n".join(build for build, _ in BAD_TARGETS.values()) + "\n")
        repo.write("testprojects/bad/broken.nix", BROKEN_NIX.replace("SALT", uuid.uuid4().hex))
        shutil.rmtree(repo.root / "dist" / "testprojects.bad", ignore_errors=True)
        result = repo.pants("package", f"testprojects/bad:{name}")
    assert result.returncode != 0
    for words in BAD_TARGETS[name][1]:
        assert words in result.stderr, result.stderr[-3000:]
    assert not (repo.root / "dist" / "testprojects.bad").exists()


def test_invalid_field_fails_naming_target_field_and_fix(repo: Repo) -> None:
    with repo.broken_targets("testprojects/badfield"):
        repo.write(
            "testprojects/badfield/BUILD",
            f'nix_docker_image(name="image", packages=["//{NIX_SET}#hello"], max_layers=1)\n',
        )
        result = repo.pants("package", "testprojects/badfield:image")
    assert result.returncode != 0
    for words in ["testprojects/badfield:image", "'max_layers'", "from 2 to 125", "the default, 100"]:
        assert words in result.stderr
    assert not (repo.root / "dist" / "testprojects.badfield").exists()


def test_missing_nix_fails_naming_target_and_fix(repo: Repo) -> None:
    repo.write("testprojects/nonix/BUILD", f'nix_docker_image(name="image", packages=["//{NIX_SET}#hello"])\n')
    result = repo.pants("--nix-executable-search-paths=['/nonexistent']", "package", "testprojects/nonix:image")
    assert result.returncode != 0
    for words in [
        "testprojects/nonix:image",
        "`packages`",
        "were not found",
        "[nix].executable_search_paths",
        "apt-get install nix-bin",
    ]:
        assert words in result.stderr
    assert not (repo.root / "dist" / "testprojects.nonix").exists()


def test_editing_a_nix_file_rebuilds_only_the_image_that_uses_it(repo: Repo, tmp_path: Path) -> None:
    app = textwrap.dedent(
        """
        let
          inherit (import ../../build-support/nix/lib.nix) run;
          pkgs = import ../../build-support/nix;
        in {
          app = run {
            name = "app-NAME";
            script = ''
              mkdir -p $out/bin
              printf '#!${pkgs.busybox}/bin/sh\\necho NAME version VERSION\\n' > $out/bin/app
              chmod 0555 $out/bin/app
            '';
          };
        }
        """
    )
    for name in ("a", "b"):
        repo.write(f"testprojects/edit/{name}.nix", app.replace("NAME", name).replace("VERSION", "1"))
    repo.write(
        "testprojects/edit/BUILD",
        "\n".join(
            f'nix_docker_image(name="{n}", packages=["{n}.nix#app"], entrypoint=["${{pkgs.app}}/bin/app"])'
            for n in ("a", "b")
        ),
    )
    targets = ("testprojects/edit:a", "testprojects/edit:b")
    dist = repo.root / "dist" / "testprojects.edit"
    repo.pants("package", *targets).assert_success()
    before = {n: sha256_file(dist / f"{n}.tar") for n in ("a", "b")}
    repo.write("testprojects/edit/a.nix", app.replace("NAME", "a").replace("VERSION", "2"))
    repo.pants("package", *targets).assert_success()
    after = {n: sha256_file(dist / f"{n}.tar") for n in ("a", "b")}
    assert after["b"] == before["b"] and after["a"] != before["a"]
    proc = runc_run(unpack_bundle(dist / "a.tar", tmp_path))
    assert proc.stdout.strip() == "a version 2", proc.stderr


def test_layout_output_is_the_same_image_as_the_archive(repo: Repo, tmp_path: Path) -> None:
    fields = f'packages=["//{NIX_SET}#hello"], entrypoint=["${{pkgs.hello}}/bin/hello"], repository="hello"'
    repo.write(
        "testprojects/layout/BUILD",
        f'nix_docker_image(name="tar", {fields})\nnix_docker_image(name="dir", output_format="layout", {fields})\n',
    )
    repo.pants("package", "testprojects/layout:tar", "testprojects/layout:dir").assert_success()
    layout = repo.root / "dist/testprojects.layout/dir"
    assert (layout / "oci-layout").is_file() and (layout / "index.json").is_file()
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == manifest_digest(repo.root / "dist/testprojects.layout/tar.tar")
    run(["umoci", "unpack", "--image", f"{layout}:latest", str(tmp_path / "bundle")], check=True)
    config = json.loads((tmp_path / "bundle/config.json").read_text())
    config["process"]["terminal"] = False
    (tmp_path / "bundle/config.json").write_text(json.dumps(config))
    assert runc_run(tmp_path / "bundle").stdout.strip() == HELLO_OUTPUT
    copied = run(["skopeo", "copy", "-q", f"oci:{layout}:latest", f"oci:{tmp_path}/copy:latest"])
    assert copied.returncode == 0, copied.stderr

    # The SBOM is an artifact whose subject is the image: listed untagged in the layout's index
    # (as `oras attach --oci-layout` would), its blobs in the archive too, whose index names only
    # the image (podman load and ctr import take one image per archive).
    image, sbom_entry = index["manifests"]
    assert sbom_entry["artifactType"] == "application/spdx+json" and "annotations" in sbom_entry
    artifact = json.loads((layout / "blobs/sha256" / sbom_entry["digest"].split(":")[1]).read_text())
    assert artifact["subject"] == {k: image[k] for k in ("mediaType", "digest", "size")}
    (document,) = artifact["layers"]
    sbom_bytes = (layout / "blobs/sha256" / document["digest"].split(":")[1]).read_bytes()
    assert sbom_bytes == (repo.root / "dist/testprojects.layout/dir.spdx.json").read_bytes()
    assert [m["digest"] for m in index_of(repo.root / "dist/testprojects.layout/tar.tar")["manifests"]] == [
        image["digest"]
    ]
    with tarfile.open(repo.root / "dist/testprojects.layout/tar.tar") as tar:
        assert f"blobs/sha256/{sbom_entry['digest'].split(':')[1]}" in tar.getnames()
