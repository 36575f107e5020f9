"""From a `nix_docker_image` target to an image archive: realise, close, layer, assemble."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.nix.installables import (
    PackageRefError,
    package_ref_table,
    parse_installable,
    substitute_package_refs,
)
from pants_backend_nix_docker.oci import layering
from pants_backend_nix_docker.oci.compression import MEDIA_TYPES
from pants_backend_nix_docker.oci.image_json import ContainerConfig, Descriptor, LayerInfo, image_files
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NixImageCmdField,
    NixImageEntrypointField,
    NixImageEnvField,
    NixImageWorkingDirField,
)
from pants_backend_nix_docker.util_rules.layer_tool import LayerToolPex
from pants_backend_nix_docker.util_rules.layers import StoreLayer, StoreLayerRequest, describe_paths
from pants_backend_nix_docker.util_rules.nix import ClosureRequest, RealisedInstallable, RealiseRequest


@dataclass(frozen=True)
class NixImageRequest:
    """Everything an image is made of, already validated by the target's fields."""

    address: Address
    packages: tuple[str, ...]
    container: ContainerConfig
    repository: str
    tags: tuple[str, ...]
    max_layers: int
    created: str
    output_path: str


@dataclass(frozen=True)
class NixImage:
    digest: Digest  # the archive, at output_path
    output_path: str
    manifest_digest: str
    config_digest: str
    size: int
    layers: tuple[StoreLayer, ...]
    closure_paths: tuple[str, ...]


def _substitute_config(address: Address, container: ContainerConfig, table: Mapping[str, str | None]) -> ContainerConfig:
    """Replace `${pkgs.NAME}` everywhere a store path may be written."""

    def sub(field: str, text: str) -> str:
        try:
            return substitute_package_refs(text, dict(table))
        except PackageRefError as e:
            raise InvalidFieldException(
                f"The {field!r} field in target {address} has an invalid value {text!r}: {e}. "
                "Use the attribute name of one of the image's `packages`."
            )

    return dataclasses.replace(
        container,
        entrypoint=tuple(sub(NixImageEntrypointField.alias, s) for s in container.entrypoint),
        cmd=tuple(sub(NixImageCmdField.alias, s) for s in container.cmd),
        env=tuple((k, sub(NixImageEnvField.alias, v)) for k, v in container.env),
        working_dir=sub(NixImageWorkingDirField.alias, container.working_dir) if container.working_dir else None,
    )


def _created(value: str) -> str:
    if value == "now":
        return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return value


@rule(desc="Building a Nix image", level=LogLevel.DEBUG)
async def build_nix_image(request: NixImageRequest, settings: NixDockerSubsystem, tool: LayerToolPex) -> NixImage:
    settings.validate()
    installables = [parse_installable(raw, request.address.spec_path) for raw in request.packages]
    realised = await MultiGet(
        Get(RealisedInstallable, RealiseRequest(installable, request.address)) for installable in installables
    )
    roots = tuple(path for r in realised for path in r.outputs)
    closure = await Get(Closure, ClosureRequest(roots, request.address))
    container = _substitute_config(
        request.address, request.container, package_ref_table([(r.installable, r.outputs) for r in realised])
    )

    plan = layering.plan_store_layers(closure, request.max_layers)
    compression = settings.compression.value
    layers = await MultiGet(
        Get(StoreLayer, StoreLayerRequest(paths, compression, settings.level)) for paths in plan
    )
    layer_infos = [
        LayerInfo(
            descriptor=Descriptor(MEDIA_TYPES[compression], layer.stats.digest, layer.stats.size),
            diff_id=layer.stats.diff_id,
            created_by=f"nix store paths: {describe_paths(layer.store_paths, limit=8)}",
        )
        for layer in layers
    ]
    files = image_files(layer_infos, container, _created(request.created), request.repository, request.tags)
    metadata = await Get(Digest, CreateDigest(FileContent(name, data) for name, data in files.files.items()))
    merged = await Get(Digest, MergeDigests([metadata, *(layer.blob for layer in layers)]))
    layout = await Get(Digest, AddPrefix(merged, "layout"))
    archive = await Get(
        ProcessResult,
        VenvPexProcess(
            tool.pex,
            argv=("archive", "--layout", "layout", "--output", request.output_path),
            input_digest=layout,
            output_files=(request.output_path,),
            description=f"Writing image archive {request.output_path}",
            level=LogLevel.DEBUG,
            # The archive is a pure function of the layout's bytes.
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    return NixImage(
        digest=archive.output_digest,
        output_path=request.output_path,
        manifest_digest=files.manifest_digest,
        config_digest=files.config_digest,
        size=files.total_size,
        layers=tuple(layers),
        closure_paths=tuple(sorted(closure.paths)),
    )


def rules():
    return collect_rules()
