"""Realising an image's installables: making sure their store paths are in the store now.

A `FILE.nix#attr` is evaluated (`nix_evaluation.py`, kept across runs when pure) and then built
from its derivations; a store path is realised as it is; a flake is built by `nix build`, whose
own evaluation cache serves locked flakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pants.base.build_root import BuildRoot
from pants.engine.addresses import Address
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.evaluation import Attribute, is_missing_derivation
from pants_backend_nix_docker.nix.installables import FILE_ATTR, FLAKE, STORE_PATH, Installable, parse_realised_outputs
from pants_backend_nix_docker.target_types import NixImagePackagesField
from pants_backend_nix_docker.util_rules.nix import NixBinaries, NixRealiseError, stderr_tail
from pants_backend_nix_docker.util_rules.nix_evaluation import EvaluateNixFile, NixFileAttributes, NixFileEvaluation

_EXPERIMENTAL = ("--extra-experimental-features", "nix-command flakes")


@dataclass(frozen=True)
class RealiseRequest:
    """Keyed by what Nix is asked, not by who asks, so images that share a package share one
    realise per run; `address` only names the first asker in messages and is not compared."""

    installable: Installable
    spec_path: str  # relative flake references resolve against it
    address: Address = field(compare=False)
    system_arg: str | None = None  # see `NixImageRequest.system_arg`


@dataclass(frozen=True)
class RealisedInstallable:
    installable: Installable
    outputs: tuple[str, ...]  # store paths, in the order Nix printed them


def realise_argv(nix: NixBinaries, installable: Installable, build_root: str, spec_path: str) -> tuple[str, ...]:
    """How a store path or a flake is realised; a file's attribute is built from its evaluation's
    derivations (`build_argv`)."""
    if installable.kind == STORE_PATH:
        return (nix.nix_store or "nix-store", "--realise", installable.ref)
    assert installable.kind == FLAKE
    ref = installable.ref
    # Relative flake references mean the BUILD file's directory, not the process sandbox.
    for prefix in ("path:", ""):
        body = ref[len(prefix) :]
        if ref.startswith(prefix) and (body == "." or body.startswith(("./", "../"))):
            ref = prefix + os.path.normpath(os.path.join(build_root, spec_path, body))
            break
    target = f"{ref}#{installable.attr}" if installable.attr else ref
    return (nix.nix or "nix", *_EXPERIMENTAL, "build", "--no-link", "--json", target)


def build_argv(nix: NixBinaries, derivations: tuple[str, ...]) -> tuple[str, ...]:
    return (nix.nix_store or "nix-store", "--realise", *derivations)


def _failure(request: RealiseRequest, what: str, said: str) -> NixRealiseError:
    installable = request.installable
    by_hand = (
        f"nix-build {installable.ref}{f' -A {installable.attr}' if installable.attr else ''}"
        + (f" --argstr system {request.system_arg}" if request.system_arg else "")
        if installable.kind == FILE_ATTR
        else "nix build"
        if installable.kind == FLAKE
        else "nix-store --realise"
    )
    return NixRealiseError(
        f"{request.address}: the `{NixImagePackagesField.alias}` entry {installable.raw!r} could "
        f"not be realised: {what}. Nix said:\n{said}\n"
        f"Fix the installable (does `{by_hand}` work by hand?) or the Nix expression it names."
    )


async def _realise_file_attribute(request: RealiseRequest, nix: NixBinaries) -> tuple[str, ...]:
    installable = request.installable
    file, attr = installable.ref, Attribute(installable.attr)
    # One evaluation of the file for every image of the repository; if another image's
    # attribute breaks it, this image's own attribute alone says whether this image is broken.
    # Asked for here, not as a rule parameter: store paths and flakes need no list of all targets.
    attributes = await Get(NixFileAttributes)
    batch = attributes.batch(file, attr)
    evaluation = await Get(NixFileEvaluation, EvaluateNixFile(file, batch, request.address, system=request.system_arg))
    if evaluation.error is not None and batch != (attr,):
        evaluation = await Get(
            NixFileEvaluation, EvaluateNixFile(file, (attr,), request.address, system=request.system_arg)
        )
    if evaluation.error is not None:
        raise _failure(request, f"evaluating {file} failed", evaluation.error)

    description = f"Building {installable.raw} for {request.address}"
    argv = build_argv(nix, evaluation.derivations[attr])
    result = await Get(FallibleProcessResult, Process, nix.process(argv, description))
    if result.exit_code != 0 and evaluation.kept and is_missing_derivation(result.stderr.decode(errors="replace")):
        # The kept evaluation outlived its `.drv` (a garbage collection, or a cache filled on
        # another machine): evaluating again writes it.
        again = await Get(
            NixFileEvaluation,
            EvaluateNixFile(file, (attr,), request.address, keep=False, system=request.system_arg),
        )
        if again.error is not None:
            raise _failure(request, f"evaluating {file} failed", again.error)
        argv = build_argv(nix, again.derivations[attr])
        result = await Get(FallibleProcessResult, Process, nix.process(argv, description, attempt=2))
    outputs = parse_realised_outputs(result.stdout.decode()) if result.exit_code == 0 else ()
    if result.exit_code != 0 or not outputs:
        what = (
            f"building its derivations failed (`nix-store --realise` exited with {result.exit_code})"
            if result.exit_code
            else "it names no derivation"
        )
        raise _failure(request, what, stderr_tail(result))
    return outputs


@rule(desc="Realising a Nix installable", level=LogLevel.DEBUG)
async def realise_installable(request: RealiseRequest, nix: NixBinaries, build_root: BuildRoot) -> RealisedInstallable:
    nix.require(request.address)
    installable = request.installable
    if installable.kind == FILE_ATTR:
        outputs = await _realise_file_attribute(request, nix)
        return RealisedInstallable(installable, outputs)

    argv = realise_argv(nix, installable, build_root.path, request.spec_path)
    result = await Get(
        FallibleProcessResult, Process, nix.process(argv, f"Realising {installable.raw} for {request.address}")
    )
    outputs = parse_realised_outputs(result.stdout.decode()) if result.exit_code == 0 else ()
    if result.exit_code != 0 or not outputs:
        what = "`{}` {}".format(
            " ".join(argv), f"exited with {result.exit_code}" if result.exit_code else "printed no store path"
        )
        raise _failure(request, what, stderr_tail(result))
    return RealisedInstallable(installable, outputs)


def rules():
    return collect_rules()
