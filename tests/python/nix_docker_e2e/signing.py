"""A GPG signing key for the publish tests, and the containers configuration (policy.json,
registries.d) that requires its signatures on pulls.

GPG, not sigstore: Debian's skopeo 1.9 is built without sigstore signing ("Debian-local change:
sigstore disabled"), so only simple signing can be checked with the real tools here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nix_docker_e2e.harness import run


@dataclass(frozen=True)
class GpgKey:
    home: Path  # GNUPGHOME holding the secret key
    fingerprint: str
    passphrase_file: Path
    public_key: Path  # armored, what a policy.json's `signedBy` names

    def secret_material(self) -> list[bytes]:
        """The secret key as gpg stores it, to search caches and logs for."""
        return [p.read_bytes() for p in (self.home / "private-keys-v1.d").glob("*.key")]

    def close(self) -> None:
        run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"])
        shutil.rmtree(self.home, ignore_errors=True)


def make_gpg_key(workdir: Path, passphrase: str) -> GpgKey:
    """An ed25519 signing key protected by `passphrase`. Its GNUPGHOME is short (under /tmp):
    gpg-agent's socket path must fit in a socket address."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    made = run(
        [*gpg, "--pinentry-mode", "loopback", "--passphrase", passphrase, "--quick-gen-key",
         "pants-nix-docker test <test@example.invalid>", "ed25519", "sign", "never"]
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listing = run([*gpg, "--list-secret-keys", "--with-colons"], check=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public_key = workdir / "signing.pub.asc"
    public_key.write_text(run([*gpg, "--armor", "--export", fingerprint], check=True).stdout)
    passphrase_file = workdir / "passphrase"
    passphrase_file.write_text(passphrase)
    return GpgKey(home, fingerprint, passphrase_file, public_key)


def signature_config(workdir: Path, registry_address: str, key: GpgKey) -> tuple[Path, Path]:
    """(policy.json, registries.d): signatures of images on `registry_address` are written to and
    read from a lookaside directory, and a pull from there needs one by `key`."""
    workdir.mkdir(parents=True, exist_ok=True)
    lookaside = workdir / "signatures"
    lookaside.mkdir(exist_ok=True)
    registries_d = workdir / "registries.d"
    registries_d.mkdir(exist_ok=True)
    (registries_d / "test.yaml").write_text(
        f"docker:\n  {registry_address}:\n    lookaside: file://{lookaside}\n    lookaside-staging: file://{lookaside}\n"
    )
    policy = workdir / "policy.json"
    signed_by = {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPath": str(key.public_key),
        "signedIdentity": {"type": "matchRepository"},
    }
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {registry_address: [signed_by]},
                    "dir": {"": [{"type": "insecureAcceptAnything"}]},
                },
            }
        )
    )
    return policy, registries_d
