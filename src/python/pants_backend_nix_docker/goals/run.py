"""`pants run` for `nix_docker_image`: load the built archive into podman and run it.

Arguments after `--` go to the image's entrypoint, as with `podman run IMAGE ARGS...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.util_rules.system_binaries import BashBinary, BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.option.errors import OptionsError

from pants_backend_nix_docker.goals.package import NixDockerImageFieldSet
from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.util_rules.image import NixImage, NixImageRequest

# podman needs to know who runs it and where its storage and configuration live.
_PASSED_ENV = ("HOME", "PATH", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")

# Load the archive, then replace the shell with `podman run`, so signals reach podman directly.
_LOAD_AND_RUN = 'set -e; "$1" load -q -i "$2" >/dev/null; podman="$1"; image="$3"; shift 3; exec "$podman" run "$@"'


@dataclass(frozen=True)
class NixDockerImageRunFieldSet(NixDockerImageFieldSet, RunFieldSet):
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED


@rule(desc="Preparing to run a Nix image with podman")
async def run_nix_image(
    field_set: NixDockerImageRunFieldSet, settings: NixDockerSubsystem, nix: NixSubsystem.EnvironmentAware, bash: BashBinary
) -> RunRequest:
    if field_set.output_format.value != "archive":
        raise InvalidFieldException(
            f"The {field_set.output_format.alias!r} field in target {field_set.address} is 'layout', but "
            "`pants run` loads an archive into podman. Leave `output_format` out (or set 'archive') to run it."
        )
    podman = await Get(
        BinaryPaths, BinaryPathRequest(binary_name="podman", search_path=nix.executable_search_path, test=BinaryPathTest(["--version"]))
    )
    if podman.first_path is None:
        raise OptionsError(
            f"`pants run {field_set.address}` loads the image into podman, which is not on "
            "[nix].executable_search_paths. Install it (on Debian, `./pants` does: `apt-get install podman`)."
        )
    built, env = await MultiGet(
        Get(NixImage, NixImageRequest, field_set.image_request()),
        Get(EnvironmentVars, EnvironmentVarsRequest(_PASSED_ENV)),
    )
    image = f"localhost/{field_set.repository.value_or_default(field_set.address)}:{built.tags[0]}"
    archive = built.output_path
    return RunRequest(
        digest=built.digest,
        args=(bash.path, "-c", _LOAD_AND_RUN, "pants-run", podman.first_path.path, "{chroot}/" + archive, image, *settings.run_args, image),
        extra_env=env,
    )


def rules():
    return [*collect_rules(), *NixDockerImageRunFieldSet.rules()]
