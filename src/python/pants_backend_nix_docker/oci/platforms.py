"""Platforms: the Nix system an image's packages are built for, and what OCI calls it.

A Nix user names a platform by its system double (`x86_64-linux`, `aarch64-linux`), as in
nixpkgs' `legacyPackages.${system}` and `import <nixpkgs> { system = ...; }`; an OCI image says
`os`, `architecture` and, for ARM, `variant` (the image spec's table of Go's GOOS/GOARCH values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PlatformError(ValueError):
    """A system this backend cannot describe as an OCI platform."""


@dataclass(frozen=True)
class Platform:
    system: str  # the Nix system double
    os: str
    architecture: str
    variant: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The `platform` of an image index entry (and the matching keys of the config)."""
        out = {"architecture": self.architecture, "os": self.os}
        return {**out, "variant": self.variant} if self.variant else out

    @property
    def oci_name(self) -> str:
        """`linux/arm64/v8`: how docker, podman and skopeo write a platform."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


# Nix system -> (os, architecture, variant). arm64 says v8 as Docker's and containerd's
# normalised form does, so every puller's default match finds it.
_OCI = {
    "x86_64-linux": ("linux", "amd64", None),
    "aarch64-linux": ("linux", "arm64", "v8"),
    "armv7l-linux": ("linux", "arm", "v7"),
    "armv6l-linux": ("linux", "arm", "v6"),
    "i686-linux": ("linux", "386", None),
    "riscv64-linux": ("linux", "riscv64", None),
    "powerpc64le-linux": ("linux", "ppc64le", None),
    "s390x-linux": ("linux", "s390x", None),
}
SYSTEMS = tuple(_OCI)

# Pants' name for the machine it runs on -> the Nix system of the packages its Nix builds.
_PANTS_PLATFORMS = {"linux_x86_64": "x86_64-linux", "linux_arm64": "aarch64-linux"}


def platform_of(system: str) -> Platform:
    if system not in _OCI:
        raise PlatformError(f"{system!r} is not a Linux system an image can run on (choose from: {', '.join(SYSTEMS)})")
    os_name, architecture, variant = _OCI[system]
    return Platform(system, os_name, architecture, variant)


def host_system(pants_platform: str) -> str:
    """The Nix system of this machine's packages: a macOS host's Nix builds Darwin packages, which
    no Linux image can run, so there images need a remote Linux builder and name `platforms`."""
    return _PANTS_PLATFORMS.get(pants_platform, "x86_64-linux")


# `${system}` in an installable: one image per platform, each with that platform's packages.
SYSTEM_PLACEHOLDER = "${system}"
