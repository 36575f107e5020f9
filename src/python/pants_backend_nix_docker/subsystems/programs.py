"""Where Pants looks for each external program besides Nix: one option scope per program, as
Pants' own docker backend has `[docker].executable_search_paths`."""

from __future__ import annotations

from typing import ClassVar

from pants.core.util_rules.search_paths import ExecutableSearchPathsOptionMixin
from pants.option.subsystem import Subsystem


class _ProgramSubsystem(Subsystem):
    program: ClassVar[str]
    # How to install it, said when it is missing.
    install_hint: ClassVar[str]

    @classmethod
    def search_path_option(cls) -> str:
        return f"[{cls.options_scope}].executable_search_paths"


class SkopeoSubsystem(_ProgramSubsystem):
    options_scope = "skopeo"
    help = "How Pants finds skopeo, which pulls registry base images and publishes images."
    program = "skopeo"
    install_hint = (
        "Install it: on Debian `apt-get install skopeo` (build-support/bootstrap/install-prerequisites.sh does it)"
    )

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find `skopeo`."


class PodmanSubsystem(_ProgramSubsystem):
    options_scope = "podman"
    help = "How `pants run` finds podman, when `[nix-docker].runtime` lets it use podman."
    program = "podman"
    install_hint = (
        "Install podman: on Debian `apt-get install podman runc` (build-support/bootstrap/install-prerequisites.sh "
        "does it)"
    )

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find `podman`."


class DockerCliSubsystem(_ProgramSubsystem):
    # Not `[docker]`: that is Pants' docker backend's scope, which a repository may also enable.
    options_scope = "docker-cli"
    help = "How `pants run` finds the docker CLI, when `[nix-docker].runtime` lets it use docker."
    program = "docker"
    install_hint = "Install it: on Debian `apt-get install docker.io`"

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find `docker`."


class GraphvizSubsystem(_ProgramSubsystem):
    options_scope = "graphviz"
    help = "How Pants finds Graphviz's `dot`, which draws `closure_graph=True` images' graphs as SVG."
    program = "dot"
    install_hint = "Install Graphviz: on Debian `apt-get install graphviz`"

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find Graphviz's `dot`."


class RuncSubsystem(_ProgramSubsystem):
    options_scope = "runc"
    help = "How `pants test` finds runc, which runs the commands and services of `nix_docker_image_test`s."
    program = "runc"
    install_hint = (
        "Install it: on Debian `apt-get install runc` (build-support/bootstrap/install-prerequisites.sh does it)"
    )

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find `runc`."


class UmociSubsystem(_ProgramSubsystem):
    options_scope = "umoci"
    help = "How `pants test` finds umoci, which unpacks images for `nix_docker_image_test` commands."
    program = "umoci"
    install_hint = (
        "Install it: on Debian `apt-get install umoci` (build-support/bootstrap/install-prerequisites.sh does it)"
    )

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = "The PATH value used to find `umoci`."


PROGRAM_SUBSYSTEMS = (
    SkopeoSubsystem,
    PodmanSubsystem,
    DockerCliSubsystem,
    GraphvizSubsystem,
    RuncSubsystem,
    UmociSubsystem,
)
