"""Dependencies of Nix files and of images on them, so `--changed-since` sees Nix changes.

- A `nix_docker_image` depends on the targets owning the files its `packages` are evaluated from
  (`FILE.nix#attr`, a local flake's `flake.nix` and `flake.lock`, and `[nix-docker].cacert_package`
  when `ca_certificates=True`).
- A `nix_source` depends on the targets owning what its path literals name, as Nix's own parser
  (`nix-instantiate --parse`) reads them: imported `.nix` files, and patches, scripts or whole
  directories copied into builds.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterable

from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.addresses import Address, Addresses
from pants.engine.fs import Digest, DigestContents, PathGlobs, Paths
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    FieldSet,
    HydratedSources,
    HydrateSourcesRequest,
    InferDependenciesRequest,
    InferredDependencies,
    Targets,
)
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.installables import image_installables, source_files
from pants_backend_nix_docker.nix.path_literals import ParsedNixFile, literal_line, parse_path_literals
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NIX_SOURCE_EXTENSIONS,
    NixImageCaCertificatesField,
    NixImageDependenciesField,
    NixImagePackagesField,
    NixSourceDependenciesField,
    NixSourceField,
)
from pants_backend_nix_docker.util_rules.nix import NixBinaries

logger = logging.getLogger(__name__)


# --- Choosing the owner of a file (pure) ------------------------------------------------------


@dataclass(frozen=True)
class OwnerChoice:
    chosen: Address | None  # the one target to depend on, if there is one
    ambiguous: tuple[Address, ...]  # the candidates when there are several


def choose_owner(path: str, owners: Iterable[Address], nix_sources: frozenset[Address]) -> OwnerChoice:
    """A Nix file counts only through its `nix_source` target, even when a catch-all `files`
    target owns it too (depending on that would mark the dependent changed by any edit anywhere
    in it); any other file needs exactly one owner, or the dependency is ambiguous."""
    candidates = sorted(set(owners))
    if path.endswith(NIX_SOURCE_EXTENSIONS):
        candidates = [address for address in candidates if address in nix_sources]
    if len(candidates) == 1:
        return OwnerChoice(candidates[0], ())
    return OwnerChoice(None, tuple(candidates))


@dataclass(frozen=True)
class FileOwnersRequest:
    files: tuple[str, ...]


@dataclass(frozen=True)
class FileOwners:
    by_file: FrozenDict[str, tuple[Address, ...]]
    nix_sources: frozenset[Address]


@rule(desc="Finding the owners of files", level=LogLevel.DEBUG)
async def owners_of_files(request: FileOwnersRequest) -> FileOwners:
    paths = sorted(set(request.files))
    owners = await MultiGet(Get(Owners, OwnersRequest((path,))) for path in paths)
    every_owner = sorted({address for found in owners for address in found})
    targets = await Get(Targets, Addresses(every_owner))
    return FileOwners(
        by_file=FrozenDict({path: tuple(found) for path, found in zip(paths, owners)}),
        nix_sources=frozenset(t.address for t in targets if t.has_field(NixSourceField)),
    )


def _resolve(
    owners: FileOwners,
    path: str,
    address: Address,
    explicit: ExplicitlyProvidedDependencies,
    context: str,
) -> Address | None:
    choice = choose_owner(path, (a for a in owners.by_file.get(path, ()) if a != address), owners.nix_sources)
    if choice.chosen or not choice.ambiguous:
        return choice.chosen
    explicit.maybe_warn_of_ambiguous_dependency_inference(
        choice.ambiguous, address, import_reference="file", context=context
    )
    return explicit.disambiguated(choice.ambiguous)


# --- Parsing a Nix file ---------------------------------------------------------------------


@dataclass(frozen=True)
class NixInstantiateBinary:
    path: str | None


@rule(desc="Finding nix-instantiate", level=LogLevel.DEBUG)
async def find_nix_instantiate(nix: NixBinaries) -> NixInstantiateBinary:
    path = nix.nix_instantiate
    if path is None:
        # Said once per run here, not once per Nix file.
        logger.warning(
            "Cannot infer the dependencies of Nix files: `nix-instantiate` is not on "
            "[nix].executable_search_paths. Install Nix 2.8 or newer (on Debian `apt-get install nix-bin`)."
        )
    return NixInstantiateBinary(path)


@dataclass(frozen=True)
class ParseNixSourceRequest:
    digest: Digest  # holds `path`
    path: str


@rule(desc="Reading the path literals of a Nix file", level=LogLevel.DEBUG)
async def parse_nix_source(
    request: ParseNixSourceRequest, bash: BashBinary, nix: NixInstantiateBinary
) -> ParsedNixFile:
    if nix.path is None:
        return ParsedNixFile((), (), ())
    result = await Get(
        FallibleProcessResult,
        Process(
            # The sandbox's path comes first: the parser prints literals as absolute paths in it.
            (bash.path, "-c", 'printf "%s\\n" "$PWD" && exec "$0" --parse "$1"', nix.path, request.path),
            input_digest=request.digest,
            description=f"Parsing {request.path} with Nix",
            level=LogLevel.DEBUG,
            # Only the file's bytes and path, and the parser, decide the answer: cache it for good,
            # locally and remotely, like Pants' own import parsers.
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    if result.exit_code != 0:
        # A file Nix cannot parse fails loudly when an image evaluates it; inference only says so.
        logger.warning(
            f"Nix could not parse {request.path}, so its dependencies are not inferred:\n"
            f"{result.stderr.decode(errors='replace').strip()}"
        )
        return ParsedNixFile((), (), ())
    sandbox, _, printed = result.stdout.decode(errors="replace").partition("\n")
    return parse_path_literals(printed, sandbox)


# --- Inference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NixSourceInferenceFieldSet(FieldSet):
    required_fields = (NixSourceField, NixSourceDependenciesField)

    source: NixSourceField
    dependencies: NixSourceDependenciesField


class InferNixSourceDependencies(InferDependenciesRequest):
    infer_from = NixSourceInferenceFieldSet


@rule(desc="Inferring the dependencies of a Nix file")
async def infer_nix_source_dependencies(request: InferNixSourceDependencies) -> InferredDependencies:
    address = request.field_set.address
    explicit, hydrated = await MultiGet(
        Get(ExplicitlyProvidedDependencies, DependenciesRequest(request.field_set.dependencies)),
        Get(HydratedSources, HydrateSourcesRequest(request.field_set.source)),
    )
    (path,) = hydrated.snapshot.files
    if not path.endswith(".nix"):
        return InferredDependencies([])
    parsed, contents = await MultiGet(
        Get(ParsedNixFile, ParseNixSourceRequest(hydrated.snapshot.digest, path)),
        Get(DigestContents, Digest, hydrated.snapshot.digest),
    )
    # A literal names a file, or a directory whose every file is then a dependency.
    expanded = await MultiGet(
        Get(Paths, PathGlobs([literal.path, os.path.join(literal.path, "**")])) for literal in parsed.literals
    )
    owners = await Get(FileOwners, FileOwnersRequest(tuple(f for found in expanded for f in found.files)))
    source = contents[0].content.decode(errors="replace")
    inferred: set[Address] = set()
    for literal, found in zip(parsed.literals, expanded):
        line = literal_line(source, path, literal.path)
        where = f"{path}:{line}" if line else path
        if not found.files:
            what = "the start of a path computed at evaluation, which" if literal.computed else "a path that"
            logger.warning(
                f"{address}: {where} names {literal.path!r}, {what} does not exist, so Pants cannot "
                "tell what this file depends on there. If it reads files, list their targets in this "
                f"target's `{NixSourceDependenciesField.alias}` field."
            )
            continue
        for file in found.files:
            context = f"{where} names {literal.path!r}"
            chosen = _resolve(owners, file, address, explicit, context)
            if chosen:
                inferred.add(chosen)
    return InferredDependencies(sorted(inferred))


@dataclass(frozen=True)
class NixImageInferenceFieldSet(FieldSet):
    required_fields = (NixImagePackagesField, NixImageDependenciesField)

    packages: NixImagePackagesField
    dependencies: NixImageDependenciesField
    ca_certificates: NixImageCaCertificatesField


class InferNixImageDependencies(InferDependenciesRequest):
    infer_from = NixImageInferenceFieldSet


@rule(desc="Inferring the Nix files of an image")
async def infer_nix_image_dependencies(
    request: InferNixImageDependencies, settings: NixDockerSubsystem
) -> InferredDependencies:
    field_set = request.field_set
    address = field_set.address
    # (installable, directory it is relative to): the image's packages, and the option's cacert.
    cacert = settings.cacert_package if field_set.ca_certificates.value else None
    wanted = image_installables(field_set.packages.value or (), address.spec_path, cacert)
    files = sorted({f for installable, spec_path in wanted for f in source_files(installable, spec_path)})
    if not files:
        return InferredDependencies([])
    explicit, owners = await MultiGet(
        Get(ExplicitlyProvidedDependencies, DependenciesRequest(field_set.dependencies)),
        Get(FileOwners, FileOwnersRequest(tuple(files))),
    )
    unowned = [f for f in files if f.endswith(".nix") and not set(owners.by_file.get(f, ())) & owners.nix_sources]
    if unowned:
        logger.warning(
            f"{address}: `{field_set.packages.alias}` evaluates {', '.join(unowned)}, which no "
            "`nix_sources` target owns, so `--changed-since` cannot see its changes. Run "
            "`pants tailor ::` to add one."
        )
    chosen = (_resolve(owners, f, address, explicit, f"`{field_set.packages.alias}` evaluates {f}") for f in files)
    return InferredDependencies(sorted({a for a in chosen if a}))


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferNixSourceDependencies),
        UnionRule(InferDependenciesRequest, InferNixImageDependencies),
    ]
