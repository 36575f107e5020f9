"""The closure as a Graphviz graph next to the image: always the `.dot`, an `.svg` when `dot` is there."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.subsystems.nix import NixSubsystem


@dataclass(frozen=True)
class ClosureGraphRequest:
    """Empty paths: no graph was asked for."""

    dot_source: str
    dot_path: str
    svg_path: str


@dataclass(frozen=True)
class ClosureGraph:
    digest: Digest
    paths: tuple[str, ...]  # dot_path, and svg_path when Graphviz is installed


@rule(desc="Drawing a closure graph", level=LogLevel.DEBUG)
async def draw_closure_graph(request: ClosureGraphRequest, nix: NixSubsystem.EnvironmentAware) -> ClosureGraph:
    if not request.dot_path:
        return ClosureGraph(EMPTY_DIGEST, ())
    dot_file = await Get(Digest, CreateDigest([FileContent(request.dot_path, request.dot_source.encode())]))
    dot = await Get(
        BinaryPaths,
        BinaryPathRequest(binary_name="dot", search_path=nix.executable_search_path, test=BinaryPathTest(["-V"])),
    )
    if dot.first_path is None:
        return ClosureGraph(dot_file, (request.dot_path,))
    svg = await Get(
        ProcessResult,
        Process(
            (dot.first_path.path, "-Tsvg", "-o", request.svg_path, request.dot_path),
            input_digest=dot_file,
            output_files=(request.svg_path,),
            description=f"Drawing {request.svg_path}",
            level=LogLevel.DEBUG,
            # Graphviz output is a function of the graph (and its version, which is in the binary's
            # path only when it changes; a stale SVG of the same graph is the same drawing).
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    return ClosureGraph(
        await Get(Digest, MergeDigests([dot_file, svg.output_digest])), (request.dot_path, request.svg_path)
    )


def rules():
    return collect_rules()
