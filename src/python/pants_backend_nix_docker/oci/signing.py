"""How `pants publish` asks skopeo to sign what it pushes (pure).

skopeo signs each manifest it pushes, either with a GPG key ("simple signing": the signature is
written to the registry's lookaside location that `registries.d` names) or with a sigstore
private key in cosign's encrypted format (stored as an attachment in the registry when
`registries.d` sets `use-sigstore-attachments: true`). Only the paths of the key and of the
passphrase file reach skopeo's argv; neither file is ever read by Pants, so neither can enter a
cache, a log or a process key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FINGERPRINT = re.compile(r"^(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{40})$")


class SigningError(ValueError):
    pass


@dataclass(frozen=True)
class Signing:
    gpg_key: str | None = None  # a GPG key's fingerprint (or long key ID)
    sigstore_private_key: str | None = None  # a path
    passphrase_file: str | None = None  # a path

    @classmethod
    def of(cls, gpg_key: str | None, sigstore_private_key: str | None, passphrase_file: str | None) -> "Signing":
        """Validated; the messages name the `[nix-docker]` options."""
        if gpg_key and sigstore_private_key:
            raise SigningError(
                "sign_by and sign_by_sigstore_private_key are both set; a push is signed one way: keep one of them"
            )
        if gpg_key and not _FINGERPRINT.match(gpg_key.replace(" ", "")):
            raise SigningError(
                f"sign_by is {gpg_key!r}, which is not a GPG key fingerprint: use the 40 hex digits that "
                "`gpg --list-secret-keys --with-colons` prints on its `fpr` line, e.g. "
                "'4867369E32D35D70A03DE6A40E0034C2F403E715'"
            )
        if passphrase_file and not (gpg_key or sigstore_private_key):
            raise SigningError("sign_passphrase_file is set but no key is: set sign_by or sign_by_sigstore_private_key")
        return cls(gpg_key.replace(" ", "") if gpg_key else None, sigstore_private_key or None, passphrase_file or None)

    @property
    def enabled(self) -> bool:
        return bool(self.gpg_key or self.sigstore_private_key)

    def skopeo_flags(self) -> tuple[str, ...]:
        flags: tuple[str, ...] = ()
        if self.gpg_key:
            flags = ("--sign-by", self.gpg_key)
        elif self.sigstore_private_key:
            flags = ("--sign-by-sigstore-private-key", self.sigstore_private_key)
        if flags and self.passphrase_file:
            flags += ("--sign-passphrase-file", self.passphrase_file)
        return flags

    def files(self) -> tuple[tuple[str, str], ...]:
        """(option, path) of each file the push reads, to check before anything is pushed."""
        named = (
            ("sign_by_sigstore_private_key", self.sigstore_private_key),
            ("sign_passphrase_file", self.passphrase_file),
        )
        return tuple((option, path) for option, path in named if path)
