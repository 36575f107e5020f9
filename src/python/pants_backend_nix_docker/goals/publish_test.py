from __future__ import annotations

from pants_backend_nix_docker.goals.package import BuiltNixImage
from pants_backend_nix_docker.goals.publish import push_plans
from pants_backend_nix_docker.oci.image_json import MEDIA_TYPE_MANIFEST, Descriptor
from pants_backend_nix_docker.oci.referrers import sbom_referrer
from pants_backend_nix_docker.oci.registries import Registry
from pants_backend_nix_docker.oci.signing import Signing

IMAGE = Descriptor(MEDIA_TYPE_MANIFEST, "sha256:" + "a" * 64, 321)
SBOM = sbom_referrer(b"{}", "image.spdx.json", IMAGE, "1970-01-01T00:00:00Z")
BUILT = BuiltNixImage("examples.hello/image", repository="hello", tags=("latest", "1.0"), transport="oci")
REGISTRIES = [
    Registry("ci", "ci.example:5000", tls_verify=False),
    Registry("prod", "prod.example/team", cert_dir="/etc/prod-ca"),
    Registry("off", "off.example", skip_push=True),
]


def test_a_plan_per_tag_and_registry_and_the_sbom_once_per_registry() -> None:
    plans, skipped = push_plans("examples/hello:image", BUILT, REGISTRIES, "/usr/bin/skopeo", [SBOM])
    assert [p.reference for p in plans] == [
        "ci.example:5000/hello:latest",
        "ci.example:5000/hello:1.0",
        "prod.example/team/hello:latest",
        "prod.example/team/hello:1.0",
    ]
    assert [len(p.referrers) for p in plans] == [1, 0, 1, 0]
    assert [names for job in skipped for names in job.names] == ["off.example/hello:latest", "off.example/hello:1.0"]

    ci, _, prod, _ = plans
    assert ci.argv == (
        "/usr/bin/skopeo", "copy", "--retry-times", "3", "--preserve-digests", "--dest-tls-verify=false",
        "oci:examples.hello/image:latest", "docker://ci.example:5000/hello:latest",
    )  # fmt: skip
    (sbom,) = prod.referrers
    assert sbom.subject == IMAGE.digest
    assert sbom.argv[-2:] == (
        "oci:examples.hello/image.referrers:referrer-0",
        f"docker://prod.example/team/hello@{SBOM.manifest.digest}",
    )
    assert "--dest-cert-dir=/etc/prod-ca" in sbom.argv and "--dest-tls-verify=false" not in sbom.argv
    assert (prod.tls_verify, prod.cert_dir, ci.tls_verify) == (True, "/etc/prod-ca", False)
    assert '"artifactType":"application/spdx+json"' in sbom.entry


def test_an_index_is_pushed_whole_and_nothing_else_without_referrers() -> None:
    index = BuiltNixImage("x/multi", repository="multi", tags=("latest",), transport="oci", index=True)
    plans, _ = push_plans("x:multi", index, REGISTRIES[:1], "skopeo", [])
    (plan,) = plans
    assert "--all" in plan.argv and plan.referrers == ()


def test_signing_flags_go_on_image_pushes_only() -> None:
    signing = Signing.of("4867369E32D35D70A03DE6A40E0034C2F403E715", None, "/secrets/pass")
    plans, _ = push_plans("x:y", BUILT, REGISTRIES[:1], "skopeo", [SBOM], signing, "/repo/registries.d")
    first = plans[0]
    assert first.argv[:3] == ("skopeo", "--registries.d", "/repo/registries.d")
    assert first.argv[-4:-2] == ("--sign-passphrase-file", "/secrets/pass") and "--sign-by" in first.argv
    assert first.files == (("sign_passphrase_file", "/secrets/pass"),)
    (sbom,) = first.referrers
    assert "--sign-by" not in sbom.argv and sbom.argv[1:3] == ("--registries.d", "/repo/registries.d")
