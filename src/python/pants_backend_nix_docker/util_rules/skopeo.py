"""Finding skopeo, which pushes images to registries and pulls base images from them."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.rules import collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.util_rules.binaries import first_on_search_path

# What skopeo reads from the user's environment: where credentials and its configuration are
# (file paths, never a secret), and PATH for docker-credential-* helpers.
SKOPEO_ENV = ("HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PATH")


@dataclass(frozen=True)
class SkopeoBinary:
    path: str | None


@rule(desc="Finding skopeo", level=LogLevel.DEBUG)
async def find_skopeo(nix: NixSubsystem.EnvironmentAware) -> SkopeoBinary:
    return SkopeoBinary(await first_on_search_path("skopeo", nix.executable_search_path))


def rules():
    return collect_rules()
