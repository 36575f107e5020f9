"""pants-nix-docker: reproducible, layered OCI images of Nix closures, built by Pants."""

from pants_backend_nix_docker import target_types as _target_types
from pants_backend_nix_docker.goals import package, publish, report, run, tailor
from pants_backend_nix_docker.subsystems.layer_tool import NixDockerLayerTool
from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.util_rules import (
    artifacts,
    base_image,
    closure_graph,
    git,
    image,
    layer_tool,
    layers,
    nix,
    nix_evaluation,
    nix_sources,
    realise,
    skopeo,
)


def rules():
    return [
        *artifacts.rules(),
        *base_image.rules(),
        *closure_graph.rules(),
        *git.rules(),
        *image.rules(),
        *layer_tool.rules(),
        *layers.rules(),
        *nix.rules(),
        *nix_evaluation.rules(),
        *nix_sources.rules(),
        *package.rules(),
        *publish.rules(),
        *realise.rules(),
        *report.rules(),
        *run.rules(),
        *skopeo.rules(),
        *tailor.rules(),
        *NixDockerLayerTool.rules(),
        *NixSubsystem.rules(),
        *NixDockerSubsystem.rules(),
    ]


def target_types():
    return _target_types.target_types()
