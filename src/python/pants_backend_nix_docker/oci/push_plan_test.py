from __future__ import annotations

import json

from pants_backend_nix_docker.oci.push_plan import PushPlan, ReferrerPush


def test_a_plan_survives_its_json() -> None:
    plan = PushPlan(
        what="examples/hello:image to r.example:5000/hello:latest",
        reference="r.example:5000/hello:latest",
        argv=("skopeo", "copy", "oci:dist/x:latest", "docker://r.example:5000/hello:latest"),
        referrers=(
            ReferrerPush("sha256:" + "a" * 64, '{"artifactType":"application/spdx+json","digest":"sha256:b"}', ("s",)),
        ),
        tls_verify=False,
        cert_dir="/etc/certs",
    )
    assert PushPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
