"""`run_image_test` as orchestration, every fetch mocked: what it builds, which programs it needs,
and the process it asks for. No image, no runc."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pants.core.goals.test import TestSubsystem
from pants.core.util_rules.system_binaries import BinaryNotFoundError, BinaryPathRequest
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import (
    EMPTY_DIGEST,
    EMPTY_FILE_DIGEST,
    EMPTY_SNAPSHOT,
    CreateDigest,
    Digest,
    MergeDigests,
    Snapshot,
)
from pants.engine.platform import Platform as PantsPlatform
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.target import InvalidFieldException, WrappedTarget, WrappedTargetRequest
from pants.testutil.option_util import create_goal_subsystem, create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from pants_backend_nix_docker.goals.image_testing import NixImageTestFieldSet, NixImageTestRequest, run_image_test
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import NixDockerImageTarget, NixImageTestTarget, NixSourceTarget
from pants_backend_nix_docker.util_rules.binaries import Program, RuncBinary, UmociBinary
from pants_backend_nix_docker.util_rules.image import NixImage, NixImageRequest
from pants_backend_nix_docker.util_rules.tools import ImageToolPex

TEST = Address("app", target_name="image_test")
IMAGE = Address("app", target_name="image")


def program(name: str, path: str | None) -> Program:
    return Program(BinaryPathRequest(binary_name=name, search_path=("/usr/bin",)), path, "install it", f"[{name}]")


def run(fields: dict[str, Any], image_target: Any, runc: str | None = "/usr/sbin/runc") -> list[Process]:
    """Runs the rule; the processes it asked for."""
    fs = NixImageTestFieldSet.create(NixImageTestTarget({"image": ":image", **fields}, TEST))
    batch = NixImageTestRequest.Batch("nix-image-test", (fs,), cast(Any, None))
    asked: list[Process] = []

    def result(process: Process) -> FallibleProcessResult:
        asked.append(process)
        return FallibleProcessResult(
            b"2 passed", EMPTY_FILE_DIGEST, b"", EMPTY_FILE_DIGEST, 0, EMPTY_DIGEST, cast(Any, None)
        )

    # Only where the layout is and its tag matter to this rule.
    built = NixImage(
        *(EMPTY_DIGEST, "app/image", "sha256:m", "sha256:c", 1, (), 0, (), ("latest",)),
        report=cast(Any, None),
        report_path="",
        sbom_path="",
        graph_paths=(),
    )
    run_rule_with_mocks(
        run_image_test,
        rule_args=[
            batch,
            create_goal_subsystem(
                TestSubsystem, output="failed", timeouts=True, timeout_default=None, timeout_maximum=None
            ),
            create_subsystem(NixDockerSubsystem, run_platform=None),
            PantsPlatform.linux_x86_64,
            ImageToolPex(pex=cast(Any, None), launcher=".nix-docker-tools/TOOL/pex"),
        ],
        mock_gets=[
            MockGet(Address, (AddressInput,), lambda _: IMAGE),
            MockGet(WrappedTarget, (WrappedTargetRequest,), lambda _: WrappedTarget(image_target)),
            MockGet(NixImage, (NixImageRequest,), lambda _: built),
            MockGet(RuncBinary, (), lambda: RuncBinary(program("runc", runc))),
            MockGet(UmociBinary, (), lambda: UmociBinary(program("umoci", "/usr/bin/umoci"))),
            MockGet(Digest, (CreateDigest,), lambda _: EMPTY_DIGEST),
            MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
            MockGet(FallibleProcessResult, (Process,), result),
            MockGet(Snapshot, (Digest,), lambda _: EMPTY_SNAPSHOT),
        ],
    )
    return asked


IMAGE_TARGET = NixDockerImageTarget({"packages": ["//nix/pkgs.nix#hello"]}, IMAGE)


def test_one_process_tests_the_layout_and_keeps_only_passes() -> None:
    (process,) = run({"commands": [{"argv": ["/bin/hello"]}]}, IMAGE_TARGET)
    argv = list(process.argv)
    assert argv[argv.index("--layout") + 1] == "app/image" and argv[argv.index("--tag") + 1] == "latest"
    assert argv[argv.index("--runc") + 1] == "/usr/sbin/runc"
    assert process.output_files == ("app.image_test.image_test.xml",)
    assert process.cache_scope == ProcessCacheScope.SUCCESSFUL


def test_runc_is_needed_only_to_run_something() -> None:
    (process,) = run({"files": [{"path": "/etc/passwd"}]}, IMAGE_TARGET, runc=None)
    assert "--runc" in process.argv
    with pytest.raises(BinaryNotFoundError, match="run the commands and service of app:image_test"):
        run({"commands": [{"argv": ["/bin/hello"]}]}, IMAGE_TARGET, runc=None)


def test_the_image_field_must_name_an_image() -> None:
    source = NixSourceTarget({"source": "pkgs.nix"}, IMAGE)
    with pytest.raises(InvalidFieldException, match="must name a `nix_docker_image` target"):
        run({}, source)
