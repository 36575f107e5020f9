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
Our image tool (oci/image_tool.py) runs it and turns its failures into a sentence with a fix.

The image's SBOM goes too, as an OCI 1.1 artifact whose `subject` is the image: skopeo pushes it
by digest from a small layout of its own, then the image tool lists it among the image's
referrers (`oci/registry_client.py`: the one thing skopeo 1.9 cannot write verbatim). Pushes are
InteractiveProcesses: never cached, locally or remotely, and credentials are never in their argv
or env (only the paths of the files that hold them are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests
from pants.engine.process import InteractiveProcess, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import InvalidFieldException
from pants.option.errors import OptionsError

from pants_backend_nix_docker.goals.package import BuiltNixImage
from pants_backend_nix_docker.oci.image_json import canonical_json
from pants_backend_nix_docker.oci.push_plan import PushPlan, ReferrerPush
from pants_backend_nix_docker.oci.referrers import Referrer, publish_layout
from pants_backend_nix_docker.oci.registries import Registry, RegistryError, parse_registries, registries_for
from pants_backend_nix_docker.oci.signing import Signing
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


def referrers_dir(relpath: str) -> str:
    return f"{relpath}.referrers"


def push_plans(
    address: str,
    built: BuiltNixImage,
    registries: Sequence[Registry],
    skopeo: str,
    referrers: Sequence[Referrer],
    signing: Signing = Signing(),
    registries_d: str | None = None,
) -> tuple[list[PushPlan], list[PublishPackages]]:
    """A plan per tag and registry, and what is skipped. A registry gets the referrers once, with
    the image's first tag: they hang off the image's digest, not a tag. The image's manifest is
    signed under each tag it is pushed as (a signature names the reference it was pushed to)."""
    plans, skipped = [], []
    assert built.relpath is not None, "an image is always written somewhere"
    for registry in registries:
        refs = tuple(f"{registry.address}/{built.repository}:{tag}" for tag in built.tags)
        if registry.skip_push:
            skipped.append(PublishPackages(names=refs, description=f"(by `skip_push` on registry @{registry.alias})"))
            continue
        tls = [] if registry.tls_verify else ["--dest-tls-verify=false"]
        tls += [f"--dest-cert-dir={registry.cert_dir}"] if registry.cert_dir else []
        global_flags = ["--registries.d", registries_d] if registries_d else []
        copy = [skopeo, *global_flags, "copy", "--retry-times", "3", "--preserve-digests", *tls]
        repository = f"{registry.address}/{built.repository}"
        pushes = tuple(
            ReferrerPush(
                subject=referrer.subject,
                entry=canonical_json(referrer.descriptor_json()).decode(),
                argv=(
                    *copy,
                    "--quiet",
                    f"oci:{referrers_dir(built.relpath)}:referrer-{n}",
                    f"docker://{repository}@{referrer.manifest.digest}",
                ),
            )
            for n, referrer in enumerate(referrers)
        )
        for i, (tag, ref) in enumerate(zip(built.tags, refs)):
            # An index goes with every platform's image; by default skopeo would pick the host's.
            argv = (
                *copy,
                *(["--all"] if built.index else []),
                *signing.skopeo_flags(),
                f"{built.transport}:{built.relpath}:{tag}",
                f"docker://{ref}",
            )
            plans.append(
                PushPlan(
                    what=f"{address} to {ref}",
                    reference=ref,
                    argv=argv,
                    referrers=pushes if i == 0 else (),
                    tls_verify=registry.tls_verify,
                    cert_dir=registry.cert_dir,
                    files=signing.files(),
                )
            )
    return plans, skipped


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

    referrers = built.referrers if settings.publish_sbom else ()
    plans, skipped = push_plans(
        str(fs.address), built, registries, skopeo_path, referrers, settings.signing, settings.registries_d
    )
    layout = publish_layout(referrers) if referrers else {}
    directory = referrers_dir(built.relpath or "")
    env, referrers_layout = await MultiGet(
        Get(EnvironmentVars, EnvironmentVarsRequest(SKOPEO_ENV)),
        Get(Digest, CreateDigest(FileContent(f"{directory}/{name}", data) for name, data in layout.items())),
    )
    input_digest = await Get(Digest, MergeDigests([request.packages[0].digest, referrers_layout]))
    processes = await MultiGet(
        Get(
            Process,
            VenvPexProcess(
                tool.pex,
                # No secret is in a plan: credentials stay in the files skopeo and the tool read.
                argv=("push", "--plan", canonical_json(plan.to_json()).decode()),
                input_digest=input_digest,
                extra_env=env,
                description=f"Pushing {plan.reference}",
                # Never run as a Process: it becomes an InteractiveProcess below, which no cache
                # ever stores. The scope only keeps the Process itself out of the caches.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        for plan in plans
    )
    jobs = [
        *skipped,
        *(
            PublishPackages(names=(plan.reference,), process=InteractiveProcess.from_process(process))
            for plan, process in zip(plans, processes)
        ),
    ]
    return PublishProcesses(jobs)


def rules():
    return [*collect_rules(), *PublishNixImageFieldSet.rules()]
