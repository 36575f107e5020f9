"""`pants test` for `nix_docker_image_test`: the image's checks, as one cached process per image.

The process's inputs are the image's layout (its blobs, so its digest) and the checks: an
unchanged image with unchanged checks is not tested again, locally or through a remote cache.
Config and file checks read the layout; commands and the service probe run the image with runc
(`oci/image_check_runner.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pants.core.goals.test import TestFieldSet, TestRequest, TestResult, TestSubsystem
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, Snapshot
from pants.engine.platform import Platform as PantsPlatform
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException, WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from pants_backend_nix_docker.goals.package import NixDockerImageFieldSet
from pants_backend_nix_docker.goals.run import run_platform
from pants_backend_nix_docker.oci.image_checks import ImageCheckSpec
from pants_backend_nix_docker.oci.image_json import canonical_json
from pants_backend_nix_docker.oci.platforms import host_system
from pants_backend_nix_docker.subsystems.image_testing import NixImageTestSubsystem
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NixImageTestAllowRootField,
    NixImageTestAllowSetuidField,
    NixImageTestCommandsField,
    NixImageTestConfigField,
    NixImageTestFilesField,
    NixImageTestForbiddenStorePathsField,
    NixImageTestImageField,
    NixImageTestServiceField,
    NixImageTestTimeoutField,
)
from pants_backend_nix_docker.util_rules.binaries import RuncBinary, UmociBinary
from pants_backend_nix_docker.util_rules.image import NixImage, NixImageRequest, image_platforms
from pants_backend_nix_docker.util_rules.tools import ImageToolPex

SPEC_FILE = "image-check.json"


@dataclass(frozen=True)
class NixImageTestFieldSet(TestFieldSet):
    required_fields = (NixImageTestImageField,)

    image: NixImageTestImageField
    commands: NixImageTestCommandsField
    files: NixImageTestFilesField
    config: NixImageTestConfigField
    service: NixImageTestServiceField
    forbidden_store_paths: NixImageTestForbiddenStorePathsField
    allow_root: NixImageTestAllowRootField
    allow_setuid: NixImageTestAllowSetuidField
    timeout: NixImageTestTimeoutField

    def spec(self) -> ImageCheckSpec:
        return ImageCheckSpec(
            commands=self.commands.parsed,
            files=self.files.parsed,
            config=self.config.parsed,
            service=self.service.parsed,
            forbidden_store_paths=tuple(self.forbidden_store_paths.value or ()),
            allow_root=self.allow_root.value,
            allow_setuid=self.allow_setuid.value,
        )


class NixImageTestRequest(TestRequest):
    tool_subsystem = NixImageTestSubsystem
    field_set_type = NixImageTestFieldSet


async def _image_field_set(fs: NixImageTestFieldSet) -> NixDockerImageFieldSet:
    origin = f"the `{fs.image.alias}` field of {fs.address}"
    assert fs.image.value is not None, "a required field"
    address = await Get(
        Address,
        AddressInput,
        AddressInput.parse(fs.image.value, relative_to=fs.address.spec_path, description_of_origin=origin),
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    if not NixDockerImageFieldSet.is_applicable(wrapped.target):
        raise InvalidFieldException(
            f"The {fs.image.alias!r} field in target {fs.address} names {address}, a `{wrapped.target.alias}`: "
            'it must name a `nix_docker_image` target, e.g. `image=":image"`.'
        )
    return NixDockerImageFieldSet.create(wrapped.target)


@rule(desc="Testing a Nix image", level=LogLevel.DEBUG)
async def run_image_test(
    batch: NixImageTestRequest.Batch[NixImageTestFieldSet, Any],
    test_subsystem: TestSubsystem,
    settings: NixDockerSubsystem,
    host: PantsPlatform,
    tool: ImageToolPex,
) -> TestResult:
    fs = batch.single_element
    spec = fs.spec()
    image_fs = await _image_field_set(fs)
    request = image_fs.image_request(layout_only=True)
    platform = run_platform(request, settings.run_platform, image_platforms(request, host), host_system(host.value))
    image, runc, umoci, spec_file = await MultiGet(
        Get(NixImage, NixImageRequest, request.for_platform(platform, in_index=False)),
        Get(RuncBinary),
        Get(UmociBinary),
        Get(Digest, CreateDigest([FileContent(SPEC_FILE, canonical_json(spec.to_json()))])),
    )
    why = f"run the commands and service of {fs.address}"
    runc_path = runc.program.require(why) if spec.needs_runtime else "runc"
    umoci_path = umoci.program.require(why) if spec.needs_runtime else "umoci"
    input_digest = await Get(Digest, MergeDigests([image.digest, spec_file]))
    # Named after the target: `--test-report` gathers every test's reports into one directory.
    report_file = f"{fs.address.path_safe_spec}.image_test.xml"
    argv = (
        *("check", "--spec", SPEC_FILE, "--layout", image.output_path, "--tag", image.tags[0]),
        *("--suite", str(fs.address), "--runc", runc_path, "--umoci", umoci_path, "--junit", report_file),
    )
    process = tool.process(
        argv,
        input_digest=input_digest,
        output_files=(report_file,),
        description=f"Testing {fs.address}",
        timeout_seconds=fs.timeout.calculate_from_global_options(test_subsystem),
        # A pass is kept (locally and remotely) under the image's bytes and the checks, as Pants
        # keeps a passing pytest run; a failure is not, so it runs again next time.
        cache_scope=ProcessCacheScope.SUCCESSFUL,
    )
    result = await Get(FallibleProcessResult, Process, process)
    report = await Get(Snapshot, Digest, result.output_digest)
    return TestResult.from_fallible_process_result(result, fs.address, test_subsystem.output, xml_results=report)


def rules():
    return [*collect_rules(), *NixImageTestRequest.rules()]
