"""`pants tailor` adds a `nix_sources` target where `.nix` files (or a `flake.lock`) have none.

A Nix file owned only by another kind of target (a catch-all `files`, say) still gets one: only a
`nix_source` takes part in dependency inference, so only that ownership counts here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.tailor import PutativeTarget, PutativeTargets, PutativeTargetsRequest
from pants.engine.fs import PathGlobs, Paths
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import AllTargets
from pants.engine.unions import UnionRule
from pants.util.dirutil import group_by_dir
from pants.util.logging import LogLevel

from pants_backend_nix_docker.target_types import (
    NixSourceField,
    NixSourcesGeneratingSourcesField,
    NixSourcesGeneratorTarget,
)


@dataclass(frozen=True)
class PutativeNixTargetsRequest(PutativeTargetsRequest):
    pass


@rule(level=LogLevel.DEBUG, desc="Finding Nix files without a target")
async def find_putative_nix_targets(request: PutativeNixTargetsRequest, targets: AllTargets) -> PutativeTargets:
    found = await Get(Paths, PathGlobs, request.path_globs(*NixSourcesGeneratingSourcesField.default))
    owned = {t[NixSourceField].file_path for t in targets if t.has_field(NixSourceField)}
    unowned = set(found.files) - owned
    return PutativeTargets(
        PutativeTarget.for_target_type(
            NixSourcesGeneratorTarget, path=directory, name=None, triggering_sources=sorted(files)
        )
        for directory, files in sorted(group_by_dir(unowned).items())
    )


def rules():
    return [*collect_rules(), UnionRule(PutativeTargetsRequest, PutativeNixTargetsRequest)]
