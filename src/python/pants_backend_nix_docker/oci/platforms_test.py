from __future__ import annotations

import pytest

from pants_backend_nix_docker.oci.platforms import SYSTEMS, PlatformError, host_system, platform_of


def test_nix_systems_map_to_oci_platforms() -> None:
    amd64, arm64 = platform_of("x86_64-linux"), platform_of("aarch64-linux")
    assert amd64.to_json() == {"architecture": "amd64", "os": "linux"} and amd64.oci_name == "linux/amd64"
    assert arm64.to_json() == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert arm64.oci_name == "linux/arm64/v8"
    assert platform_of("armv7l-linux").oci_name == "linux/arm/v7"
    assert platform_of("i686-linux").oci_name == "linux/386"
    assert all(platform_of(s).system == s for s in SYSTEMS)


def test_a_system_no_image_runs_on_is_refused_with_the_choices() -> None:
    with pytest.raises(PlatformError, match=r"'aarch64-darwin' is not a Linux system.*x86_64-linux, aarch64-linux"):
        platform_of("aarch64-darwin")


def test_the_host_system_follows_pants_platform() -> None:
    assert host_system("linux_x86_64") == "x86_64-linux"
    assert host_system("linux_arm64") == "aarch64-linux"
