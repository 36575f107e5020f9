from __future__ import annotations

import pytest

from pants_backend_nix_docker.oci.registries import (
    Registry,
    RegistryError,
    explain_failure,
    explain_pull_failure,
    parse_registries,
    registries_for,
    registry_for_host,
)

# Real skopeo 1.9 messages (from the integration tests' registries), shortened.
BLOB = "trying to reuse blob sha256:c576 at destination: "


@pytest.mark.parametrize(
    "message, expected_what, expected_fix",
    [
        (
            BLOB + "checking whether a blob sha256:c576 exists in r:5000/hello: unauthorized: authentication required",
            "refused the credentials",
            "skopeo login r:5000",
        ),
        (
            BLOB + 'pinging container registry r:5000: Get "https://r:5000/v2/": x509: certificate signed by unknown '
            "authority",
            "not trusted",
            "cert_dir",
        ),
        (
            BLOB + 'pinging container registry r:5000: Get "https://r:5000/v2/": dial tcp 127.0.0.1:1: connect: '
            "connection refused",
            "cannot be reached",
            "registry is up",
        ),
        (
            BLOB
            + 'pinging container registry r:5000: Get "https://r:5000/v2/": dial tcp: lookup r on 10.0.0.53:53: no '
            "such host",
            "cannot be reached",
            "check the address",
        ),
        (
            'pinging container registry r:5000: Get "https://r:5000/v2/": http: server gave HTTP response to HTTPS '
            "client",
            "plain HTTP",
            "tls_verify = false",
        ),
        (
            "writing blob: uploading layer chunked: received unexpected HTTP status: 500 Internal Server Error",
            "failed during the push",
            "again",
        ),
    ],
)
def test_explains_what_skopeo_says(message: str, expected_what: str, expected_fix: str) -> None:
    explained = explain_failure(message, "r:5000")
    assert explained is not None
    what, fix = explained
    assert expected_what in what and "r:5000" in what
    assert expected_fix in fix


def test_unknown_messages_are_left_to_skopeo() -> None:
    assert explain_failure("something else entirely", "r:5000") is None


def test_parse_and_choose_registries() -> None:
    configured = parse_registries(
        {
            "ci": {"address": "ci.example.com", "default": True},
            "lab": {"address": "lab:5000", "tls_verify": False, "cert_dir": "/etc/lab"},
        }
    )
    assert registries_for(None, configured) == [configured["ci"]]
    assert registries_for(["@lab", "other:1"], configured) == [configured["lab"], Registry(None, "other:1")]
    assert registry_for_host("lab:5000", configured).cert_dir == "/etc/lab"
    assert registry_for_host("elsewhere", configured) == Registry(None, "elsewhere")


@pytest.mark.parametrize(
    "option, message",
    [
        ({"ci": "ci.example.com"}, "needs an `address`"),
        ({"ci": {"address": "x", "tls": False}}, "unknown keys ['tls'] (valid: address"),
        ({"ci": {"address": "x", "cert_dir": 3}}, "must be a directory path"),
    ],
)
def test_bad_registry_options(option: dict, message: str) -> None:
    with pytest.raises(
        RegistryError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        parse_registries(option)


def test_unknown_alias_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match="known: @ci"):
        registries_for(["@nowhere"], parse_registries({"ci": {"address": "x"}}))


PIN = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    "message, words",
    [
        (
            "reading manifest sha256:000 in r:5000/base/hello: manifest unknown: manifest unknown",
            "has no image with digest",
        ),
        ("Digest did not match, expected sha256:000, got sha256:111", "does not match the pinned digest"),
        (
            'pinging container registry r:5000: Get "https://r:5000/v2/": dial tcp: connect: connection refused',
            "cannot be reached",
        ),
        ("a message nobody knows", "skopeo could not pull it: a message nobody knows"),
    ],
)
def test_explains_pull_failures(message: str, words: str) -> None:
    explained = explain_pull_failure(message, "r:5000", "r:5000/base/hello:1", PIN)
    assert words in explained


@pytest.mark.parametrize(
    "message, words",
    [
        ("creating signature: Debian-local change: sigstore disabled", ["sigstore", "sign_by"]),
        ("creating signature: Bad passphrase", ["sign_passphrase_file"]),
        ('creating signature: key "0000000000000000000000000000000000000000" not found', ["gpg --list-secret-keys"]),
    ],
)
def test_explains_signing_failures_and_that_the_tag_is_unsigned(message: str, words: list[str]) -> None:
    explained = explain_failure(f'time="2026-12-01T17:17:56Z" level=fatal msg="{message}"', "r:5000")
    assert explained is not None
    said = " ".join(explained)
    assert all(word in said for word in words), said
    assert "pushed unsigned" in said
