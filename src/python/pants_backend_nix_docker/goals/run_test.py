from __future__ import annotations

import pytest
from pants.option.errors import OptionsError

from pants_backend_nix_docker.goals.run import choose_runtime, image_name


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
    assert choose_runtime(setting, podman, docker, answers) == expected


@pytest.mark.parametrize(
    "setting, podman, docker, answers, words",
    [
        ("auto", None, "/usr/bin/docker", False, "its daemon does not answer"),
        ("auto", None, None, False, "apt-get install podman"),
        ("docker", "/usr/bin/podman", None, False, "runtime is 'docker'"),
    ],
)
def test_choose_runtime_errors(setting, podman, docker, answers, words) -> None:
    with pytest.raises(OptionsError, match=words):
        choose_runtime(setting, podman, docker, answers)


def test_image_names() -> None:
    assert image_name("podman", "acme/app", "1.0") == "localhost/acme/app:1.0"
    assert image_name("docker", "acme/app", "1.0") == "acme/app:1.0"
