"""`pants publish` for `nix_docker_image`: push each tag to each registry with skopeo.

skopeo rather than our own client of the distribution API, because it already does what we would
write, tested against every registry:
- it asks the registry for each blob before uploading it, so a republish, or a layer another
  image pushed, costs a HEAD request;
- it remembers where it uploaded each blob (its blob-info cache) and mounts it across
  repositories (`POST ?mount=&from=`), so ten images of a monorepo upload a shared layer once;
- it uploads layers in parallel with retries, and pushes the manifest only after every blob is
  there: a failed push never leaves a tag naming a missing blob;
- it reads credentials where users keep them (REGISTRY_AUTH_FILE, ~/.docker/config.json, podman's
  auth.json, credential helpers) and trusts CAs the containers way (--cert-dir, certs.d).
Our image tool (oci/image_tool.py) runs it and turns its failures into a sentence with a fix. Pushes are
InteractiveProcesses: never cached, locally or remotely, and credentials are never in their argv
or env (only the paths of the files that hold them are).
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import InteractiveProcess, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.option.errors import OptionsError

from pants_backend_nix_docker.goals.package import BuiltNixImage
from pants_backend_nix_docker.oci.registries import RegistryError, parse_registries, registries_for
from pants_backend_nix_docker.subsystems.nix_docker import NixDockerSubsystem
from pants_backend_nix_docker.target_types import (
    NixImagePackagesField,
    NixImageRegistriesField,
    NixImageRepositoryField,
    NixImageSkipPushField,
    NixImageTagsField,
)
from pants_backend_nix_docker.util_rules.binaries import SkopeoBinary
from pants_backend_nix_docker.util_rules.skopeo import SKOPEO_ENV
from pants_backend_nix_docker.util_rules.tools import ImageToolPex


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

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData(
            {"publisher": "skopeo", "registries": self.registries.value or (), **super().get_output_data()}
        )


@rule(desc="Publishing a Nix image")
async def publish_nix_image(
    request: PublishNixImageRequest, settings: NixDockerSubsystem, skopeo: SkopeoBinary, tool: ImageToolPex
) -> PublishProcesses:
    fs = request.field_set
    built = request.packages[0].artifacts[0]
    assert isinstance(built, BuiltNixImage)
    repository, tags = built.repository, built.tags  # rendered: placeholders filled in
    try:
        registries = registries_for(fs.registries.value, parse_registries(settings.registries))
    except RegistryError as e:
        if fs.registries.value:
            raise InvalidFieldException(
                f"The {fs.registries.alias!r} field in target {fs.address} has an invalid value "
                f"{list(fs.registries.value)!r}: {e}."
            )
        raise OptionsError(str(e))

    if fs.skip_push.value or not registries:
        reason = (
            f"(by `{fs.skip_push.alias}` on {fs.address})"
            if fs.skip_push.value
            else ("(no registry: name one in `registries` or mark one `default` in [nix-docker].registries)")
        )
        return PublishProcesses([PublishPackages(names=tuple(f"{repository}:{t}" for t in tags), description=reason)])
    skopeo_path = skopeo.program.require(f"publish {fs.address}")

    package = request.packages[0]
    relpath = built.relpath
    transport = built.transport
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(SKOPEO_ENV))
    pushes, jobs = [], []
    for registry in registries:
        refs = tuple(f"{registry.address}/{repository}:{tag}" for tag in tags)
        if registry.skip_push:
            jobs.append(PublishPackages(names=refs, description=f"(by `skip_push` on registry @{registry.alias})"))
            continue
        for tag, ref in zip(tags, refs):
            argv = [skopeo_path, "copy", "--retry-times", "3", "--preserve-digests"]
            # An index goes with every platform's image; by default skopeo would pick the host's.
            argv += ["--all"] if built.index else []
            if not registry.tls_verify:
                argv.append("--dest-tls-verify=false")
            if registry.cert_dir:
                argv.append(f"--dest-cert-dir={registry.cert_dir}")
            argv += [f"{transport}:{relpath}:{tag}", f"docker://{ref}"]
            pushes.append((ref, argv))
    processes = await MultiGet(
        Get(
            Process,
            VenvPexProcess(
                tool.pex,
                argv=("push", "--registry", ref.split("/", 1)[0], "--what", f"{fs.address} to {ref}", "--", *argv),
                input_digest=package.digest,
                extra_env=env,
                description=f"Pushing {ref}",
                # Never run as a Process: it becomes an InteractiveProcess below, which no cache
                # ever stores. The scope only keeps the Process itself out of the caches.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        for ref, argv in pushes
    )
    for (ref, _), process in zip(pushes, processes):
        jobs.append(PublishPackages(names=(ref,), process=InteractiveProcess.from_process(process)))
    return PublishProcesses(jobs)


def rules():
    return [*collect_rules(), *PublishNixImageFieldSet.rules()]
