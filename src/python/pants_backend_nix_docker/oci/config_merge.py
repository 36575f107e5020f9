"""An image's config on top of its base image's. Pure."""

from __future__ import annotations

from typing import Any, Mapping

from pants_backend_nix_docker.oci.image_json import ContainerConfig


def merge_config(base: Mapping[str, Any], image: ContainerConfig) -> ContainerConfig:
    """The image's config on top of its base's: the image wins wherever it says something.

    Env and Labels merge by key; ports and volumes add up. As in a Dockerfile, setting an
    entrypoint drops the base's Cmd, which was written for the base's entrypoint.
    """
    env = dict(entry.partition("=")[::2] for entry in base.get("Env") or ())
    env.update(image.env)
    labels = dict(base.get("Labels") or {})
    labels.update(image.labels)
    if image.entrypoint:
        entrypoint, cmd = image.entrypoint, image.cmd
    else:
        entrypoint = tuple(base.get("Entrypoint") or ())
        cmd = image.cmd or tuple(base.get("Cmd") or ())
    return ContainerConfig(
        entrypoint=entrypoint,
        cmd=cmd,
        env=tuple(env.items()),
        working_dir=image.working_dir or base.get("WorkingDir") or None,
        exposed_ports=tuple(sorted(set(image.exposed_ports) | set(base.get("ExposedPorts") or {}))),
        volumes=tuple(sorted(set(image.volumes) | set(base.get("Volumes") or {}))),
        user=image.user or base.get("User") or None,
        labels=tuple(labels.items()),
    )
