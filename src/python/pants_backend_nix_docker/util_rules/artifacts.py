"""Pants artifacts of an image: what its `dependencies` build, placed under `app_dir`."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonResolveField
from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.core.goals.package import BuiltPackage, EnvironmentAwarePackageRequest, PackageFieldSet
from pants.core.target_types import FileSourceField, ResourceSourceField
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestEntries, FileEntry, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    FieldSetsPerTarget,
    FieldSetsPerTargetRequest,
    InvalidFieldException,
    SourcesField,
    Target,
    Targets,
)

from pants_backend_nix_docker.oci.artifact_contents import ArtifactFile, describe, lockfile_hashes
from pants_backend_nix_docker.oci.rootfs import Node
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixImageDependenciesField, NixSourceField

ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class ImageArtifactsRequest:
    address: Address
    dependencies: NixImageDependenciesField
    app_dir: str


@dataclass(frozen=True)
class ImageArtifacts:
    digest: Digest  # each file at ARTIFACTS_DIR + its path in the image
    nodes: tuple[Node, ...]  # the same files as rootfs nodes, sourced from the digest
    size: int = 0  # bytes of all the files
    files: tuple[ArtifactFile, ...] = ()  # what each file is and holds, for the SBOM

    @property
    def is_empty(self) -> bool:
        return not self.nodes


def _invalid_dependency(address: Address, dep: Address, what: str) -> InvalidFieldException:
    return InvalidFieldException(
        f"The {NixImageDependenciesField.alias!r} field in target {address} has an invalid value "
        f"{dep.spec!r}: {what}. Depend on a packageable target (pex_binary, python_distribution, "
        "archive) or on files or resources targets."
    )


def _lockfile(target: Target, python_setup: PythonSetup) -> str | None:
    """The lockfile of a Python target's resolve: it has the sha256 of each distribution."""
    if not target.has_field(PythonResolveField) or not python_setup.enable_resolves:
        return None
    return python_setup.resolves.get(target[PythonResolveField].normalized_value(python_setup))


@rule(desc="Collecting the Pants artifacts of a Nix image")
async def image_artifacts(request: ImageArtifactsRequest, python_setup: PythonSetup) -> ImageArtifacts:
    targets = await Get(Targets, DependenciesRequest(request.dependencies))
    field_sets = await Get(FieldSetsPerTarget, FieldSetsPerTargetRequest(PackageFieldSet, targets))
    packages, files, resources = [], [], []
    lockfiles: dict[str, str | None] = {}  # origin -> the lockfile of its resolve
    for target, target_field_sets in zip(targets, field_sets.collection):
        if target.has_field(NixSourceField):
            continue  # what the image's packages are evaluated from (inferred), not content
        if target.has_field(FileSourceField):
            files.append(target[SourcesField])
        elif target.has_field(ResourceSourceField):
            resources.append(target[SourcesField])
        elif isinstance(target, NixDockerImageTarget):
            raise _invalid_dependency(
                request.address, target.address, "an image cannot contain another nix_docker_image"
            )
        elif target_field_sets:
            packages.append((target.address, target_field_sets[0]))
            lockfiles[str(target.address)] = _lockfile(target, python_setup)
        else:
            raise _invalid_dependency(
                request.address,
                target.address,
                f"a `{target.alias}` target is neither packageable nor files or resources",
            )

    built = await MultiGet(Get(BuiltPackage, EnvironmentAwarePackageRequest(fs)) for _, fs in packages)
    file_sources, resource_sources = await MultiGet(
        Get(SourceFiles, SourceFilesRequest(files, for_sources_types=(FileSourceField,), enable_codegen=True)),
        Get(
            StrippedSourceFiles,
            SourceFilesRequest(resources, for_sources_types=(ResourceSourceField,), enable_codegen=True),
        ),
    )
    all_entries = await MultiGet(
        *(Get(DigestEntries, Digest, b.digest) for b in built),
        Get(DigestEntries, Digest, file_sources.snapshot.digest),
        Get(DigestEntries, Digest, resource_sources.snapshot.digest),
    )
    origins = [str(address) for address, _ in packages] + ["files", "resources"]

    placed: dict[str, tuple[str, FileEntry]] = {}
    for index, (origin, entries) in enumerate(zip(origins, all_entries)):
        for entry in entries:
            if not isinstance(entry, FileEntry):
                continue
            # A package's output path is Pants' business; in the image only its file name counts.
            relpath = posixpath.basename(entry.path) if index < len(packages) else entry.path
            image_path = posixpath.join(request.app_dir, relpath)
            if image_path in placed and placed[image_path][1].file_digest != entry.file_digest:
                raise InvalidFieldException(
                    f"The {NixImageDependenciesField.alias!r} field in target {request.address} puts "
                    f"two different files at {image_path}: one from {placed[image_path][0]}, one from "
                    f"{origin}. Rename one (e.g. the `output_path` of a package)."
                )
            placed[image_path] = (origin, entry)

    digest = await Get(
        Digest,
        CreateDigest(
            FileEntry(ARTIFACTS_DIR + path, entry.file_digest, entry.is_executable)
            for path, (_, entry) in sorted(placed.items())
        ),
    )
    nodes = tuple(
        Node(path, "file", 0o755 if entry.is_executable else 0o644, source=ARTIFACTS_DIR + path, field="dependencies")
        for path, (_, entry) in sorted(placed.items())
    )
    # The SBOM hashes each file and lists what a PEX holds: read here, once per set of artifacts.
    wanted = sorted({path for path in lockfiles.values() if path})
    read: tuple[DigestContents, ...] = await MultiGet(
        Get(DigestContents, Digest, digest),
        *(Get(DigestContents, PathGlobs([p], glob_match_error_behavior=GlobMatchErrorBehavior.ignore)) for p in wanted),
    )
    hashes = {path: lockfile_hashes(c[0].content.decode()) if c else {} for path, c in zip(wanted, read[1:])}
    origin_of = {ARTIFACTS_DIR + path: origin for path, (origin, _) in placed.items()}
    described = []
    for content in read[0]:
        origin = origin_of[content.path]
        lock = hashes.get(lockfiles.get(origin) or "", {})
        described.append(describe(content.path[len(ARTIFACTS_DIR) :], origin, content.content, lock))
    size = sum(entry.file_digest.serialized_bytes_length for _, entry in placed.values())
    return ImageArtifacts(digest, nodes, size, tuple(described))


def rules():
    return collect_rules()
