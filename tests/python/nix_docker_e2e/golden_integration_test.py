"""Golden digests: a fixed input, made by the test and added to the Nix store, must give exactly
these bytes. The other determinism tests compare the code with itself; these compare it with the
bytes it made when they were written down, so a change that alters every image fails here.

A failure here is a decision, not noise: if the change to the bytes is intended, update the
digests and say in CHANGELOG.md which images change and why (a minor or major release).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nix_docker_e2e.harness import Repo
from nix_docker_e2e.oci_archive import layer_digests, manifest_digest, platform_manifests
from pants_backend_nix_docker.oci.compression import LayerCodec
from pants_backend_nix_docker.oci.store_layer_tool import main as store_layer_tool

# Content-addressed: the same files give the same store path on every machine.
STORE_PATH = "/nix/store/ixshkln0myp4nvs8yx4lhbgaijis5fn2-golden-tool-1.0"

# The tar (the diff_id) is the same whatever the compression; each compressed blob is pinned too.
GOLDEN_DIFF_ID = "sha256:b07bb6776f392a71cddc52e9e16ad490d688cc3ea4c39866802f353c9cd12d33"
GOLDEN_LAYERS = {
    ("gzip", "libdeflate", 5): "sha256:07a9f610f919e3827d7faa8519042f6e89c2e14fdafb8f4f623430ae73e1b1ea",
    ("gzip", "libdeflate", 6): "sha256:628b72361d65ced6d104d0acd84c17559bbf943f579dedb4bb5a421e84476b02",
    ("gzip", "isal", 1): "sha256:90e767e6eb5c3c496289b3d046d6c26d23c424090ff5987871651aa714a50d0c",
    ("zstd", "zstandard", 3): "sha256:3b52f628d8d4cffe3198171a4d89eb52b155caa92e00d965ed523640916b64f1",
}
GOLDEN_IMAGE_MANIFEST = "sha256:822fa56a3d3b5ac4eec7567e6514408162deccbbdd3608ec217f1827dcd3275d"
GOLDEN_INDEX = "sha256:8a51750ccb5265ff905dd3bcfe8030b9ef859c1c37407f8289c9ad1f106f6339"
GOLDEN_IMAGE_LAYERS = [
    GOLDEN_LAYERS[("gzip", "libdeflate", 5)],  # the store path (the default codec)
    "sha256:1bd272df2fd263dfdccdce4f0098a75658f204afdf779d2d6a546d33533493ae",  # its root filesystem
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("golden") / "golden-tool-1.0"
    (root / "bin").mkdir(parents=True)
    (root / "share").mkdir()
    (root / "bin/golden").write_text("#!/bin/sh\necho golden\n")
    (root / "bin/golden").chmod(0o555)
    (root / "share/README").write_text("a fixed input for golden digests\n")
    (root / "share/link").symlink_to("../bin/golden")
    added = subprocess.run(["nix-store", "--add", str(root)], capture_output=True, text=True, check=True)
    assert added.stdout.strip() == STORE_PATH
    return STORE_PATH


@pytest.mark.parametrize("codec", sorted(GOLDEN_LAYERS))
def test_a_store_layer_has_its_golden_digest(
    store_path: str, codec: tuple[str, str, int], tmp_path: Path, capsys
) -> None:
    argv = ["layers", *LayerCodec(*codec).argv, "--out-dir", str(tmp_path)]
    assert store_layer_tool([*argv, "--layer", store_path]) == 0
    (stats,) = json.loads(capsys.readouterr().out)
    assert stats["diff_id"] == GOLDEN_DIFF_ID, stats
    assert stats["digest"] == GOLDEN_LAYERS[codec], stats


def test_an_image_has_its_golden_manifest(store_path: str, tmp_path: Path) -> None:
    repo = Repo.copy_to(tmp_path / "repo")
    fields = f'packages=["{store_path}"], entrypoint=["/bin/golden"], users={{"app": 1000}}, user="app"'
    repo.write(
        "testprojects/golden/BUILD",
        f'nix_docker_image(name="image", {fields})\n'
        f'nix_docker_image(name="multi", {fields}, platforms=["x86_64-linux", "aarch64-linux"])\n',
    )
    repo.pants("package", "testprojects/golden:image", "testprojects/golden:multi").assert_success()
    archive = repo.root / "dist/testprojects.golden/image.tar"
    assert layer_digests(archive) == GOLDEN_IMAGE_LAYERS
    assert manifest_digest(archive) == GOLDEN_IMAGE_MANIFEST
    # The same files for two platforms (a store path is the same on both): the amd64 image is the
    # single-platform one, byte for byte, and the index that names both is pinned too.
    multi = repo.root / "dist/testprojects.golden/multi.tar"
    assert manifest_digest(multi) == GOLDEN_INDEX
    assert [m["digest"] for m in platform_manifests(multi)][0] == GOLDEN_IMAGE_MANIFEST
