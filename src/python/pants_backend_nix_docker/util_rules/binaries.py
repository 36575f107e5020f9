"""Finding the external programs besides Nix, each through its own `BinaryPathRequest` on its own
search path option (`subsystems/programs.py`), and saying what to do when one is missing."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.util_rules.system_binaries import (
    BinaryNotFoundError,
    BinaryPathRequest,
    BinaryPaths,
    BinaryPathTest,
)
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.subsystems.programs import (
    DockerCliSubsystem,
    GraphvizSubsystem,
    PodmanSubsystem,
    RuncSubsystem,
    SkopeoSubsystem,
    UmociSubsystem,
    _ProgramSubsystem,
)


@dataclass(frozen=True)
class Program:
    """A program looked for: its path, or None when the search found none."""

    request: BinaryPathRequest
    path: str | None
    install_hint: str
    search_path_option: str

    def require(self, rationale: str) -> str:
        """The path, or Pants' binary-not-found error saying why it is needed and how to get it."""
        if self.path is None:
            raise BinaryNotFoundError.from_request(
                self.request,
                rationale=rationale,
                alternative_solution=f"{self.install_hint}, or point {self.search_path_option} at it.",
            )
        return self.path


async def _find(subsystem: type[_ProgramSubsystem], search_path: tuple[str, ...], version_flag: str) -> Program:
    request = BinaryPathRequest(
        binary_name=subsystem.program, search_path=search_path, test=BinaryPathTest([version_flag])
    )
    paths = await Get(BinaryPaths, BinaryPathRequest, request)
    return Program(
        request,
        paths.first_path.path if paths.first_path else None,
        subsystem.install_hint,
        subsystem.search_path_option(),
    )


@dataclass(frozen=True)
class SkopeoBinary:
    program: Program


@dataclass(frozen=True)
class PodmanBinary:
    program: Program


@dataclass(frozen=True)
class DockerCliBinary:
    program: Program


@dataclass(frozen=True)
class DotBinary:
    program: Program


@rule(desc="Finding skopeo", level=LogLevel.DEBUG)
async def find_skopeo(options: SkopeoSubsystem.EnvironmentAware) -> SkopeoBinary:
    return SkopeoBinary(await _find(SkopeoSubsystem, options.executable_search_path, "--version"))


@rule(desc="Finding podman", level=LogLevel.DEBUG)
async def find_podman(options: PodmanSubsystem.EnvironmentAware) -> PodmanBinary:
    return PodmanBinary(await _find(PodmanSubsystem, options.executable_search_path, "--version"))


@rule(desc="Finding docker", level=LogLevel.DEBUG)
async def find_docker_cli(options: DockerCliSubsystem.EnvironmentAware) -> DockerCliBinary:
    return DockerCliBinary(await _find(DockerCliSubsystem, options.executable_search_path, "--version"))


@rule(desc="Finding Graphviz", level=LogLevel.DEBUG)
async def find_dot(options: GraphvizSubsystem.EnvironmentAware) -> DotBinary:
    return DotBinary(await _find(GraphvizSubsystem, options.executable_search_path, "-V"))


@dataclass(frozen=True)
class RuncBinary:
    program: Program


@dataclass(frozen=True)
class UmociBinary:
    program: Program


@rule(desc="Finding runc", level=LogLevel.DEBUG)
async def find_runc(options: RuncSubsystem.EnvironmentAware) -> RuncBinary:
    return RuncBinary(await _find(RuncSubsystem, options.executable_search_path, "--version"))


@rule(desc="Finding umoci", level=LogLevel.DEBUG)
async def find_umoci(options: UmociSubsystem.EnvironmentAware) -> UmociBinary:
    return UmociBinary(await _find(UmociSubsystem, options.executable_search_path, "--version"))


def rules():
    return collect_rules()
