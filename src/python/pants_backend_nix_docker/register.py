"""pants-nix-docker: reproducible, layered OCI images of Nix closures, built by Pants."""

from pants_backend_nix_docker import target_types as _target_types
from pants_backend_nix_docker.goals import image_testing, package, publish, report, run, tailor
from pants_backend_nix_docker.subsystems.image_testing import NixImageTestSubsystem
from pants_backend_nix_docker.subsystems.layer_tool import NixDockerLayerTool
from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.subsystems.programs import PROGRAM_SUBSYSTEMS
from pants_backend_nix_docker.util_rules import (
    artifacts,
    base_image,
    binaries,
    closure_graph,
    git,
    image,
    layers,
    nix,
    nix_evaluation,
    nix_sources,
    realise,
    tools,
)


def rules():
    return [
        *artifacts.rules(),
        *base_image.rules(),
        *binaries.rules(),
        *closure_graph.rules(),
        *git.rules(),
        *image.rules(),
        *image_testing.rules(),
        *layers.rules(),
        *nix.rules(),
        *nix_evaluation.rules(),
        *nix_sources.rules(),
        *package.rules(),
        *publish.rules(),
        *realise.rules(),
        *report.rules(),
        *run.rules(),
        *tailor.rules(),
        *tools.rules(),
        *NixDockerLayerTool.rules(),
        *NixSubsystem.rules(),
        *NixDockerSubsystem.rules(),
        *NixImageTestSubsystem.rules(),
        *(rule for subsystem in PROGRAM_SUBSYSTEMS for rule in subsystem.rules()),
    ]


def target_types():
    return _target_types.target_types()
