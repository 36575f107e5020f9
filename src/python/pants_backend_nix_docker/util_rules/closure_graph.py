"""The closure as a Graphviz graph next to the image: always the `.dot`, an `.svg` when `dot` is there."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.fs import EMPTY_DIGEST, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.util_rules.binaries import DotBinary


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
async def draw_closure_graph(request: ClosureGraphRequest) -> ClosureGraph:
    if not request.dot_path:
        return ClosureGraph(EMPTY_DIGEST, ())
    dot_file, dot = await MultiGet(
        Get(Digest, CreateDigest([FileContent(request.dot_path, request.dot_source.encode())])), Get(DotBinary)
    )
    if dot.program.path is None:
        # The SVG is a convenience: the .dot file is the graph.
        return ClosureGraph(dot_file, (request.dot_path,))
    svg = await Get(
        ProcessResult,
        Process(
            (dot.program.path, "-Tsvg", "-o", request.svg_path, request.dot_path),
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
