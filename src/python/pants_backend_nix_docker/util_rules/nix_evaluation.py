"""Evaluating the `.nix` files images name: once per file per run for every image that needs it,
and kept across runs when the evaluation is pure (see `nix/evaluation.py` for how that is known).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from pants.base.build_root import BuildRoot
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.addresses import Address
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import AllTargets, SourcesField, TransitiveTargets, TransitiveTargetsRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.evaluation import (
    KEPT_WRAPPER,
    Attribute,
    attributes_by_file,
    evaluation_argv,
    kept_exit_code,
    parse_evaluation,
    refusal,
)
from pants_backend_nix_docker.nix.installables import image_installables
from pants_backend_nix_docker.nix.version import format_version
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import NixImageCaCertificatesField, NixImagePackagesField
from pants_backend_nix_docker.util_rules.nix import NixBinaries, stderr_tail
from pants_backend_nix_docker.util_rules.nix_sources import FileOwners, FileOwnersRequest, choose_owner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NixFileAttributes:
    """Every attribute the repository's images take from each `.nix` file (build-root relative),
    so that one evaluation per file serves every image of a run."""

    by_file: FrozenDict[str, tuple[Attribute, ...]]

    def batch(self, file: str, attr: Attribute) -> tuple[Attribute, ...]:
        known = self.by_file.get(file, ())
        return known if attr in known else (attr,)


@rule(desc="Listing the attributes images take from Nix files", level=LogLevel.DEBUG)
async def nix_file_attributes(targets: AllTargets, settings: NixDockerSubsystem) -> NixFileAttributes:
    installables = (
        installable
        for target in targets
        if target.has_field(NixImagePackagesField)
        for installable, _ in image_installables(
            target[NixImagePackagesField].value or (),
            target.address.spec_path,
            settings.cacert_package if target[NixImageCaCertificatesField].value else None,
        )
    )
    return NixFileAttributes(FrozenDict(attributes_by_file(installables)))


@dataclass(frozen=True)
class NixEvaluationInputsRequest:
    file: str


@dataclass(frozen=True)
class NixEvaluationInputs:
    """The files a pure evaluation of `file` may read: the sources of its `nix_source` target and
    of everything that target depends on. None of them when no `nix_source` target owns it."""

    files: tuple[str, ...]
    fingerprint: str | None
    why_none: str | None = None


@rule(desc="Finding the files a Nix file may read", level=LogLevel.DEBUG)
async def nix_evaluation_inputs(request: NixEvaluationInputsRequest) -> NixEvaluationInputs:
    owners = await Get(FileOwners, FileOwnersRequest((request.file,)))
    owner = choose_owner(request.file, owners.by_file.get(request.file, ()), owners.nix_sources).chosen
    if owner is None:
        return NixEvaluationInputs(
            (),
            None,
            "is owned by no `nix_source` target, so Pants cannot tell which files it reads (run `pants tailor ::`)",
        )
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([owner]))
    sources = await Get(
        SourceFiles, SourceFilesRequest(t[SourcesField] for t in transitive.closure if t.has_field(SourcesField))
    )
    digest = sources.snapshot.digest
    return NixEvaluationInputs(sources.snapshot.files, f"{digest.fingerprint}-{digest.serialized_bytes_length}")


@dataclass(frozen=True)
class EvaluateNixFile:
    file: str  # relative to the build root
    attrs: tuple[Attribute, ...]
    address: Address = field(compare=False)  # the first image asking, for messages
    # False: evaluate without restrictions even if the file is pure, because the kept answer
    # named a `.drv` the store no longer has.
    keep: bool = True
    system: str | None = None  # the `system` functions of the file are called with (`--argstr`)


@dataclass(frozen=True)
class NixFileEvaluation:
    derivations: FrozenDict[Attribute, tuple[str, ...]]  # attribute -> `DRV!OUTPUT`s; empty on error
    kept: bool  # from a pure evaluation, cached across runs
    error: str | None = None  # what Nix said when the evaluation failed


@rule(desc="Evaluating a Nix file", level=LogLevel.DEBUG)
async def evaluate_nix_file(
    request: EvaluateNixFile, nix: NixBinaries, build_root: BuildRoot, bash: BashBinary
) -> NixFileEvaluation:
    nix.require(request.address)
    assert nix.nix_instantiate
    absolute = os.path.join(build_root.path, request.file)
    names = ", ".join(a.path or "(the whole file)" for a in request.attrs)
    names += f" (system {request.system})" if request.system else ""

    why_not_kept = ""  # the end of "because it ..."
    if request.keep:
        inputs = await Get(NixEvaluationInputs, NixEvaluationInputsRequest(request.file))
        why_not_kept = inputs.why_none or ""
        if inputs.fingerprint is not None:
            allowed = tuple(os.path.join(build_root.path, f) for f in inputs.files)
            kept = await Get(
                FallibleProcessResult,
                Process,
                nix.process(
                    (
                        bash.path,
                        "-c",
                        KEPT_WRAPPER,
                        "kept",
                        *evaluation_argv(nix.nix_instantiate, absolute, request.attrs, allowed, request.system),
                    ),
                    f"Evaluating {names} of {request.file}",
                    # Restricted to the allowed files, whose digest is in the key, with the impure
                    # builtins failing: the answer is a function of the key, and a refusal is as
                    # lasting as a success (until the files change), so both are kept (the wrapper
                    # exits 0 either way), locally and remotely. It names `.drv` files: a machine
                    # that lacks them notices when the realise fails and evaluates again, which
                    # writes the same `.drv` files.
                    ProcessCacheScope.SUCCESSFUL,
                    key={
                        "PANTS_NIX_DOCKER_EVALUATION_INPUTS": inputs.fingerprint,
                        "PANTS_NIX_DOCKER_NIX_VERSION": format_version(nix.version) if nix.version else "unknown",
                    },
                ),
            )
            exit_code, said = kept_exit_code(kept.stderr.decode(errors="replace"))
            if exit_code == 0:
                return NixFileEvaluation(FrozenDict(parse_evaluation(kept.stdout.decode(), request.attrs)), kept=True)
            why_not_kept = refusal(said)

    result = await Get(
        FallibleProcessResult,
        Process,
        nix.process(
            evaluation_argv(nix.nix_instantiate, absolute, request.attrs, None, request.system),
            f"Evaluating {names} of {request.file} (not cacheable)",
        ),
    )
    if result.exit_code != 0:
        return NixFileEvaluation(FrozenDict(), kept=False, error=stderr_tail(result))
    # Said on every run that pays for it, once per file.
    logger.info(
        f"Evaluating {request.file} on every run (not cached), because it {why_not_kept}."
        if request.keep
        else f"Evaluated {request.file} again: the derivation its cached evaluation names is no longer in the "
        "Nix store (garbage-collected, or the cache was filled on another machine)."
    )
    return NixFileEvaluation(FrozenDict(parse_evaluation(result.stdout.decode(), request.attrs)), kept=False)


def rules():
    return collect_rules()
