"""A `nix_docker_image`'s base image: read from the repository or pulled from a registry by digest."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestContents, DigestSubset, PathGlobs, RemovePrefix, Snapshot
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from pants_backend_nix_docker.oci.base_image import BaseImageInfo
from pants_backend_nix_docker.oci.base_image_source import BaseImageError, BaseImageSource, parse_base_image
from pants_backend_nix_docker.oci.image_json import DEFAULT_PLATFORM
from pants_backend_nix_docker.oci.platforms import Platform
from pants_backend_nix_docker.oci.registries import explain_pull_failure, parse_registries, registry_for_host
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import NixImageBaseImageField
from pants_backend_nix_docker.util_rules.binaries import SkopeoBinary
from pants_backend_nix_docker.util_rules.skopeo import SKOPEO_ENV
from pants_backend_nix_docker.util_rules.tools import ImageToolPex

# Where a pulled image lands in the pull's sandbox.
_PULLED = "pulled"


@dataclass(frozen=True)
class BaseImageRequest:
    address: Address
    value: str | None  # the `base_image` field; None: no base image
    platform: Platform = DEFAULT_PLATFORM  # whose image to take from a multi-platform base


@dataclass(frozen=True)
class BaseImage:
    blobs: Digest  # blobs/sha256/<digest> of each base layer, verbatim
    info_json: str  # BaseImageInfo, as canonical JSON (so this stays hashable)
    name: str | None  # HOST/REPO[:TAG] of a registry image, for the base.name annotation

    @property
    def info(self) -> BaseImageInfo | None:
        return BaseImageInfo.from_json(json.loads(self.info_json)) if self.info_json else None


NO_BASE_IMAGE = BaseImage(EMPTY_DIGEST, "", None)


def _field_error(request: BaseImageRequest, problem: str) -> InvalidFieldException:
    return InvalidFieldException(
        f"The {NixImageBaseImageField.alias!r} field in target {request.address} has an invalid value "
        f"{request.value!r}: {problem}."
    )


# skopeo's settings reach the pull through a named cache, whose contents Pants does not hash:
# the pull's key is then the reference and digest, the same for every user and CI job, so a base
# image is pulled once per machine (and per fleet with a remote cache). The values are paths
# (where credentials are), never secrets.
_SKOPEO_ENV_CACHE = "nix_docker_skopeo_env"
_SKOPEO_ENV_DIR = ".skopeo-env"
_STAGE_ENV = (
    'umask 077; tmp="$1/env.$$"; : > "$tmp"; for name in ' + " ".join(SKOPEO_ENV) + "; do "
    'if [ -n "${!name+x}" ]; then printf "%s=%s\\0" "$name" "${!name}" >> "$tmp"; fi; done; '
    'mv -f "$tmp" "$1/env"'
)
_LOAD_ENV_AND_RUN = 'while IFS= read -r -d "" kv; do export "$kv"; done < "$1/env" && shift && exec "$@"'


async def _pull(request: BaseImageRequest, source: BaseImageSource, settings: NixDockerSubsystem) -> Digest:
    # Looked up here, not as rule parameters: a build with no registry base image needs no skopeo.
    skopeo, bash, env = await MultiGet(
        Get(SkopeoBinary), Get(BashBinary), Get(EnvironmentVars, EnvironmentVarsRequest(SKOPEO_ENV))
    )
    skopeo_path = skopeo.program.require(f"pull {request.value}, the base image of {request.address}")
    assert source.reference and source.registry_host
    registry = registry_for_host(source.registry_host, parse_registries(settings.registries))
    argv = [skopeo_path, "copy", "--quiet", "--retry-times", "3", "--preserve-digests"]
    # From an index, the image of the platform being built (skopeo would pick the host's).
    argv += ["--override-os", request.platform.os, "--override-arch", request.platform.architecture]
    argv += ["--override-variant", request.platform.variant] if request.platform.variant else []
    if not registry.tls_verify:
        argv.append("--src-tls-verify=false")
    if registry.cert_dir:
        argv.append(f"--src-cert-dir={registry.cert_dir}")
    caches = FrozenDict({_SKOPEO_ENV_CACHE: _SKOPEO_ENV_DIR})
    await Get(
        ProcessResult,
        Process(
            (bash.path, "-c", _STAGE_ENV, "stage", _SKOPEO_ENV_DIR),
            env=env,
            append_only_caches=caches,
            description="Handing skopeo this user's registry settings",
            level=LogLevel.DEBUG,
            # The user's environment now, so never reused from another run.
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    result = await Get(
        FallibleProcessResult,
        Process(
            (
                bash.path,
                "-c",
                _LOAD_ENV_AND_RUN,
                "pull",
                _SKOPEO_ENV_DIR,
                *argv,
                f"docker://{source.pull_reference}",
                f"oci:{_PULLED}:base",
            ),
            append_only_caches=caches,
            output_directories=(_PULLED,),
            description=f"Pulling base image {source.reference}",
            level=LogLevel.DEBUG,
            # Pinned by digest, so the bytes can never change: pulled once per machine (and per
            # fleet with a remote cache). A failure is not kept, so the next run tries again.
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    if result.exit_code != 0:
        assert source.name and source.pin
        problem = explain_pull_failure(
            result.stderr.decode(errors="replace"), source.registry_host, source.name, source.pin
        )
        raise _field_error(request, f"could not pull it: {problem}")
    return result.output_digest


@rule(desc="Reading a base image", level=LogLevel.DEBUG)
async def read_base_image(request: BaseImageRequest, settings: NixDockerSubsystem) -> BaseImage:
    if request.value is None:
        return NO_BASE_IMAGE
    try:
        source = parse_base_image(request.value, request.address.spec_path)
    except BaseImageError as e:
        raise _field_error(request, str(e))

    if source.reference:
        input_digest, input_path = await _pull(request, source, settings), _PULLED
        # skopeo checked the bytes against the pin; a pin on an index names the platform's image.
        pin = None
    else:
        assert source.path
        snapshot = await Get(
            Snapshot,
            PathGlobs([source.path, f"{source.path}/**"], glob_match_error_behavior=GlobMatchErrorBehavior.ignore),
        )
        if not snapshot.files:
            raise _field_error(
                request,
                f"there is no file or directory {source.path} in the repository. Point it at an OCI layout, an OCI "
                "archive or a docker archive; a registry image is written docker://HOST/REPOSITORY@sha256:DIGEST",
            )
        input_digest, input_path, pin = snapshot.digest, source.path, source.pin

    argv = ["base", "--input", input_path, "--output", "base", "--platform", request.platform.oci_name]
    argv += ["--pin", pin] if pin else []
    # Asked for here, not as a rule parameter: an image without a base needs no image tool.
    tool = await Get(ImageToolPex)
    result = await Get(
        FallibleProcessResult,
        Process,
        tool.process(
            argv,
            input_digest=input_digest,
            output_directories=("base",),
            description=f"Reading base image {request.value}",
            # A pure function of the image's bytes.
            cache_scope=ProcessCacheScope.SUCCESSFUL,
        ),
    )
    if result.exit_code != 0:
        raise _field_error(
            request,
            f"{source.path or source.reference} cannot be used: {result.stderr.decode(errors='replace').strip()}",
        )
    output = await Get(Digest, RemovePrefix(result.output_digest, "base"))
    info_digest, blobs = await MultiGet(
        Get(Digest, DigestSubset(output, PathGlobs(["base.json"]))),
        Get(Digest, DigestSubset(output, PathGlobs(["blobs/**"]))),
    )
    info = await Get(DigestContents, Digest, info_digest)
    return BaseImage(blobs, info[0].content.decode(), source.name)


def rules():
    return collect_rules()
