"""What one `pants publish` push does, handed from the rule to the image tool as JSON (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pants_backend_nix_docker.oci.image_json import canonical_json


@dataclass(frozen=True)
class ReferrerPush:
    """An artifact about the image (its SBOM), pushed by digest and then listed among the
    referrers of `subject`."""

    subject: str
    entry: str  # its descriptor in a referrers index, as canonical JSON
    argv: tuple[str, ...]  # skopeo copying it to NAME@DIGEST

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "entry": json.loads(self.entry), "argv": list(self.argv)}


@dataclass(frozen=True)
class PushPlan:
    what: str  # "examples/hello:image to registry.example.com/hello:latest", for messages
    reference: str  # HOST/NAME:TAG
    argv: tuple[str, ...]  # skopeo copying the image
    referrers: tuple[ReferrerPush, ...] = ()
    tls_verify: bool = True
    cert_dir: str | None = None
    files: tuple[tuple[str, str], ...] = ()  # (option, path) that the push reads: signing key, passphrase

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "reference": self.reference,
            "argv": list(self.argv),
            "referrers": [r.to_json() for r in self.referrers],
            "tls_verify": self.tls_verify,
            "cert_dir": self.cert_dir,
            "files": [list(f) for f in self.files],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PushPlan":
        return cls(
            what=data["what"],
            reference=data["reference"],
            argv=tuple(data["argv"]),
            referrers=tuple(
                ReferrerPush(r["subject"], canonical_json(r["entry"]).decode(), tuple(r["argv"]))
                for r in data["referrers"]
            ),
            tls_verify=data["tls_verify"],
            cert_dir=data["cert_dir"],
            files=tuple((option, path) for option, path in data["files"]),
        )
