from __future__ import annotations

import pytest
from pants.core.util_rules.system_binaries import BinaryNotFoundError, BinaryPathRequest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from pants_backend_nix_docker.goals.run import choose_runtime, image_name, run_platform
from pants_backend_nix_docker.oci.platforms import platform_of
from pants_backend_nix_docker.subsystems.programs import DockerCliSubsystem, PodmanSubsystem
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixImageFields
from pants_backend_nix_docker.util_rules.binaries import Program
from pants_backend_nix_docker.util_rules.image_plan import NixImageRequest


def found(name: str, path: str | None) -> Program:
    subsystem = PodmanSubsystem if name == "podman" else DockerCliSubsystem
    return Program(
        BinaryPathRequest(binary_name=name, search_path=("/usr/bin",)),
        path,
        subsystem.install_hint,
        subsystem.search_path_option(),
    )


@pytest.mark.parametrize(
    "setting, podman, docker, answers, expected",
    [
        ("auto", "/usr/bin/podman", "/usr/bin/docker", True, ("docker", "/usr/bin/docker")),
        ("auto", "/usr/bin/podman", "/usr/bin/docker", False, ("podman", "/usr/bin/podman")),
        ("auto", "/usr/bin/podman", None, False, ("podman", "/usr/bin/podman")),
        ("podman", "/usr/bin/podman", "/usr/bin/docker", True, ("podman", "/usr/bin/podman")),
        ("docker", "/usr/bin/podman", "/usr/bin/docker", False, ("docker", "/usr/bin/docker")),
    ],
)
def test_choose_runtime(setting, podman, docker, answers, expected) -> None:
    assert choose_runtime(setting, found("podman", podman), found("docker", docker), answers) == expected


@pytest.mark.parametrize(
    "setting, podman, docker, answers, words",
    [
        ("auto", None, "/usr/bin/docker", False, "its daemon does not answer"),
        ("auto", None, None, False, "apt-get install podman"),
        ("podman", None, None, False, "[podman].executable_search_paths"),
        ("docker", "/usr/bin/podman", None, False, "runtime is 'docker'"),
        ("docker", "/usr/bin/podman", None, False, "[docker-cli].executable_search_paths"),
    ],
)
def test_choose_runtime_errors(setting, podman, docker, answers, words) -> None:
    with pytest.raises(BinaryNotFoundError) as e:
        choose_runtime(setting, found("podman", podman), found("docker", docker), answers)
    assert words in str(e.value) and "Cannot find" in str(e.value)


def test_image_names() -> None:
    assert image_name("podman", "acme/app", "1.0") == "docker.io/acme/app:1.0"
    assert image_name("docker", "acme/app", "1.0") == "acme/app:1.0"


def test_run_platform_is_the_hosts_or_the_one_asked_for() -> None:
    target = NixDockerImageTarget({"packages": ["//nix/pkgs.nix#hello"]}, Address("app", target_name="image"))
    request = NixImageRequest.of(NixImageFields.create(target))
    both = (platform_of("x86_64-linux"), platform_of("aarch64-linux"))
    assert run_platform(request, None, both, "aarch64-linux").system == "aarch64-linux"
    assert run_platform(request, None, both[:1], "aarch64-linux").system == "x86_64-linux"  # none for the host
    assert run_platform(request, "aarch64-linux", both, "x86_64-linux").system == "aarch64-linux"
    words = r"'platforms' field in target app:image has no 'riscv64-linux'.*it has: x86_64-linux, aarch64-linux"
    with pytest.raises(InvalidFieldException, match=words):
        run_platform(request, "riscv64-linux", both, "x86_64-linux")
