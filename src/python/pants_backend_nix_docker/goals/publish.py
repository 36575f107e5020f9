"""`pants publish` for `nix_docker_image`: push each tag to each registry with skopeo.

skopeo rather than our own client of the distribution API: it asks the registry for each blob
before uploading it (so a republish, or a layer another image already pushed, costs a HEAD
request), uploads layers in parallel with retries, pushes the manifest only after every blob is
there (a failed push never leaves a tag naming a missing blob), and reads credentials from where
users keep them (REGISTRY_AUTH_FILE, ~/.docker/config.json, podman's auth.json). Pushes run as
InteractiveProcesses: never cached, locally or remotely, so no credential can reach a cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.publish import PublishFieldSet, PublishOutputData, PublishPackages, PublishProcesses, PublishRequest
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import InteractiveProcess
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.option.errors import OptionsError

from pants_backend_nix_docker.goals.package import BuiltNixImage
from pants_backend_nix_docker.oci.registries import RegistryError, parse_registries, registries_for
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NixImageOutputFormatField,
    NixImagePackagesField,
    NixImageRegistriesField,
    NixImageRepositoryField,
    NixImageSkipPushField,
    NixImageTagsField,
)
from pants_backend_nix_docker.util_rules.skopeo import SkopeoBinary

# What skopeo needs from the user's environment to find credentials and its configuration.
_PASSED_ENV = ("HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PATH")


class PublishNixImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishNixImageFieldSet(PublishFieldSet):
    publish_request_type = PublishNixImageRequest
    required_fields = (NixImagePackagesField,)

    registries: NixImageRegistriesField
    skip_push: NixImageSkipPushField
    repository: NixImageRepositoryField
    image_tags: NixImageTagsField
    output_format: NixImageOutputFormatField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "skopeo", "registries": self.registries.value or (), **super().get_output_data()})


@rule(desc="Publishing a Nix image")
async def publish_nix_image(request: PublishNixImageRequest, settings: NixDockerSubsystem, skopeo: SkopeoBinary) -> PublishProcesses:
    fs = request.field_set
    built = request.packages[0].artifacts[0]
    assert isinstance(built, BuiltNixImage)
    repository, tags = built.repository, built.tags  # rendered: placeholders filled in
    try:
        registries = registries_for(fs.registries.value, parse_registries(settings.registries))
    except RegistryError as e:
        if fs.registries.value:
            raise InvalidFieldException(f"The {fs.registries.alias!r} field in target {fs.address} has an invalid value {list(fs.registries.value)!r}: {e}.")
        raise OptionsError(str(e))

    if fs.skip_push.value or not registries:
        reason = f"(by `{fs.skip_push.alias}` on {fs.address})" if fs.skip_push.value else (
            "(no registry: name one in `registries` or mark one `default` in [nix-docker].registries)"
        )
        return PublishProcesses([PublishPackages(names=tuple(f"{repository}:{t}" for t in tags), description=reason)])
    if skopeo.path is None:
        raise OptionsError(
            f"{fs.address} is to be published, which needs `skopeo`, but it is not on [nix].executable_search_paths. "
            "Install it (on Debian, `./pants` does: `apt-get install skopeo`)."
        )

    package = request.packages[0]
    relpath = built.relpath
    transport = "oci-archive" if fs.output_format.value == "archive" else "oci"
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(_PASSED_ENV))
    jobs = []
    for registry in registries:
        refs = tuple(f"{registry.address}/{repository}:{tag}" for tag in tags)
        if registry.skip_push:
            jobs.append(PublishPackages(names=refs, description=f"(by `skip_push` on registry @{registry.alias})"))
            continue
        for tag, ref in zip(tags, refs):
            argv = [skopeo.path, "copy", "--retry-times", "3", "--preserve-digests"]
            if not registry.tls_verify:
                argv.append("--dest-tls-verify=false")
            argv += [f"{transport}:{relpath}:{tag}", f"docker://{ref}"]
            jobs.append(PublishPackages(names=(ref,), process=InteractiveProcess(argv, env=env, input_digest=package.digest)))
    return PublishProcesses(jobs)


def rules():
    return [*collect_rules(), *PublishNixImageFieldSet.rules()]
