"""`pants run` for `nix_docker_image`: load the built archive into podman or docker, and run it.

Arguments after `--` go to the image's entrypoint, as with `podman run IMAGE ARGS...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.platform import Platform as PantsPlatform
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.util.logging import LogLevel

from pants_backend_nix_docker.goals.package import NixDockerImageFieldSet
from pants_backend_nix_docker.oci.image_json import fully_qualified
from pants_backend_nix_docker.oci.platforms import Platform, host_system
from pants_backend_nix_docker.subsystems.nix_docker import ImageRuntime, NixDockerSubsystem
from pants_backend_nix_docker.target_types import NixImagePlatformsField
from pants_backend_nix_docker.util_rules.binaries import DockerCliBinary, PodmanBinary, Program
from pants_backend_nix_docker.util_rules.image import NixImage, NixImageRequest, image_platforms

# The engines need to know who runs them and where their storage and configuration live.
_PASSED_ENV = (
    "HOME",
    "PATH",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
)

# Load the archive, then replace the shell with `ENGINE run`, so signals reach the engine directly.
_LOAD_AND_RUN = 'set -e; "$1" load -q -i "$2" >/dev/null; engine="$1"; image="$3"; shift 3; exec "$engine" run "$@"'


def choose_runtime(setting: str, podman: Program, docker: Program, docker_answers: bool) -> tuple[str, str]:
    """(engine name, path to it) for `pants run`, or Pants' binary-not-found error saying what to
    install or set."""
    if setting == "docker" or (setting == "auto" and docker.path and docker_answers):
        return "docker", docker.require(
            "run images, as [nix-docker].runtime is 'docker' (or set it to 'podman' or 'auto')"
        )
    daemon = " (docker is there, but its daemon does not answer)" if setting == "auto" and docker.path else ""
    return "podman", podman.require(f"run images{daemon}")


def image_name(engine: str, repository: str, tag: str) -> str:
    """What the engine calls the loaded image: podman the archive's fully qualified name, docker
    the `manifest.json` name (which it qualifies the same way)."""
    return f"{fully_qualified(repository)}:{tag}" if engine == "podman" else f"{repository}:{tag}"


def run_platform(request: NixImageRequest, wanted: str | None, platforms: tuple[Platform, ...], host: str) -> Platform:
    """The image's platform `pants run` runs: `[nix-docker].run_platform`, else the host's (the
    image's first when it has none for the host)."""
    if wanted is None:
        return next((p for p in platforms if p.system == host), platforms[0])
    for platform in platforms:
        if platform.system == wanted:
            return platform
    raise InvalidFieldException(
        f"The {NixImagePlatformsField.alias!r} field in target {request.address} has no {wanted!r}, which "
        f"[nix-docker].run_platform asks `pants run` to run (it has: {', '.join(p.system for p in platforms)}). "
        "Add it to `platforms`, or run one of those."
    )


@dataclass(frozen=True)
class NixDockerImageRunFieldSet(NixDockerImageFieldSet, RunFieldSet):
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED


@rule(desc="Preparing to run a Nix image")
async def run_nix_image(
    field_set: NixDockerImageRunFieldSet, settings: NixDockerSubsystem, bash: BashBinary, host: PantsPlatform
) -> RunRequest:
    if field_set.output_format.value != "archive":
        raise InvalidFieldException(
            f"The {field_set.output_format.alias!r} field in target {field_set.address} is 'layout', but "
            "`pants run` loads an archive into podman or docker. Leave `output_format` out (or set 'archive') to run "
            "it."
        )
    podman, docker, env = await MultiGet(
        Get(PodmanBinary), Get(DockerCliBinary), Get(EnvironmentVars, EnvironmentVarsRequest(_PASSED_ENV))
    )
    docker_path = docker.program.path
    docker_answers = False
    if docker_path and settings.runtime == ImageRuntime.auto:
        answer = await Get(
            FallibleProcessResult,
            Process(
                (docker_path, "version", "--format", "{{.Server.Version}}"),
                env=env,
                description="Asking whether a docker daemon answers",
                level=LogLevel.DEBUG,
                # Whether a daemon runs is a fact about now: never kept beyond this run.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        docker_answers = answer.exit_code == 0
    engine, engine_path = choose_runtime(settings.runtime.value, podman.program, docker.program, docker_answers)
    request = field_set.image_request()
    platform = run_platform(request, settings.run_platform, image_platforms(request, host), host_system(host.value))
    # One platform's image alone: podman and docker load an index as the host's image only.
    built = await Get(NixImage, NixImageRequest, request.for_platform(platform, in_index=False))
    image = image_name(engine, field_set.repository.value_or_default(field_set.address), built.tags[0])
    return RunRequest(
        digest=built.digest,
        args=(
            bash.path,
            "-c",
            _LOAD_AND_RUN,
            "pants-run",
            engine_path,
            "{chroot}/" + built.output_path,
            image,
            *settings.run_args,
            image,
        ),
        extra_env=env,
    )


def rules():
    return [*collect_rules(), *NixDockerImageRunFieldSet.rules()]
