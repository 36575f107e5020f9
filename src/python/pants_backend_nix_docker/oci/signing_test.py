from __future__ import annotations

import pytest

from pants_backend_nix_docker.oci.signing import Signing, SigningError

FPR = "4867369E32D35D70A03DE6A40E0034C2F403E715"


def test_gpg_signing_flags() -> None:
    signing = Signing.of("4867 369E 32D3 5D70 A03D  E6A4 0E00 34C2 F403 E715", None, "/secrets/pass")
    assert signing.enabled
    assert signing.skopeo_flags() == ("--sign-by", FPR, "--sign-passphrase-file", "/secrets/pass")
    assert signing.files() == (("sign_passphrase_file", "/secrets/pass"),)


def test_sigstore_signing_flags() -> None:
    signing = Signing.of(None, "/secrets/cosign.key", None)
    assert signing.skopeo_flags() == ("--sign-by-sigstore-private-key", "/secrets/cosign.key")
    assert signing.files() == (("sign_by_sigstore_private_key", "/secrets/cosign.key"),)


def test_no_signing() -> None:
    signing = Signing.of(None, None, None)
    assert not signing.enabled and signing.skopeo_flags() == () and signing.files() == ()


@pytest.mark.parametrize(
    "gpg, sigstore, passphrase, words",
    [
        (FPR, "/k", None, "both set"),
        ("alice@example.com", None, None, "not a GPG key fingerprint"),
        (None, None, "/p", "no key is"),
    ],
)
def test_bad_signing_options(gpg: str | None, sigstore: str | None, passphrase: str | None, words: str) -> None:
    with pytest.raises(SigningError, match=words):
        Signing.of(gpg, sigstore, passphrase)
