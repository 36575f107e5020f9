"""What a `base_image` field names: a file or directory in the repository, or a registry image
pinned by digest. Pure; the field validates with it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
REGISTRY_PREFIX = "docker://"


class BaseImageError(ValueError):
    pass


@dataclass(frozen=True)
class BaseImageSource:
    """What the `base_image` field names: a file or directory in the repo, or a registry image."""

    path: str | None = None  # relative to the build root
    reference: str | None = None  # HOST/REPO[:TAG]@sha256:..., without the docker:// prefix
    pin: str | None = None  # the manifest digest it must have

    @property
    def registry_host(self) -> str | None:
        return self.reference.split("/", 1)[0] if self.reference else None

    @property
    def name(self) -> str | None:
        """HOST/REPO[:TAG]: how people call the image (the `base.name` annotation)."""
        return self.reference.split("@", 1)[0] if self.reference else None

    @property
    def pull_reference(self) -> str | None:
        """HOST/REPO@DIGEST: the digest alone says what to pull (skopeo refuses a tag and a digest)."""
        if not self.reference:
            return None
        name = self.name or ""
        last = name.rsplit("/", 1)[-1]
        repository = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return f"{repository}@{self.pin}"


def parse_base_image(value: str, spec_path: str) -> BaseImageSource:
    """`docker://HOST/REPO[:TAG]@sha256:D`, or `PATH[@sha256:D]` (relative to the BUILD file's
    directory, or `//`-rooted)."""
    if value.startswith(REGISTRY_PREFIX):
        reference = value[len(REGISTRY_PREFIX) :]
        name, _, pin = reference.partition("@")
        if not pin:
            raise BaseImageError(
                "a registry base image must be pinned by digest, so every build gets the same bytes: "
                f"{value}@sha256:<digest> (find it with `skopeo inspect --format '{{{{.Digest}}}}' {value}`)"
            )
        if not DIGEST_RE.match(pin):
            raise BaseImageError(f"{pin!r} is not a sha256 digest (sha256: and 64 lowercase hex digits)")
        if "/" not in name:
            raise BaseImageError(f"{value!r} names no registry host: write docker://HOST[:PORT]/REPOSITORY@{pin}")
        return BaseImageSource(reference=reference, pin=pin)
    if "://" in value or re.match(r"^[a-z][a-z-]*:", value):
        raise BaseImageError(
            f"{value!r} has an unknown transport; use docker://HOST/REPO@sha256:... or a path in the repository"
        )
    path, _, pin = value.partition("@")
    if pin and not DIGEST_RE.match(pin):
        raise BaseImageError(f"{pin!r} is not a sha256 digest (sha256: and 64 lowercase hex digits)")
    if path.startswith("//"):
        relative = path[2:]
    elif path.startswith("/"):
        raise BaseImageError(
            "an absolute path is not part of the repository; use a path relative to the BUILD file, or //path from the "
            "build root"
        )
    else:
        relative = os.path.join(spec_path, path)
    normal = os.path.normpath(relative)
    if not path or normal == "." or normal.startswith(".."):
        raise BaseImageError(f"{path!r} is outside the repository; base image files must be in it")
    return BaseImageSource(path=normal, pin=pin or None)
