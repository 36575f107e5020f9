"""Which registries an image is pushed to, and under what names (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class Registry:
    alias: str | None
    address: str
    default: bool = False
    skip_push: bool = False
    tls_verify: bool = True
    cert_dir: str | None = None  # a directory of *.crt CAs to trust (and client certs), as skopeo's --cert-dir


_KEYS = ("address", "default", "skip_push", "tls_verify", "cert_dir")


def parse_registries(option: Mapping[str, Any]) -> dict[str, Registry]:
    registries = {}
    for alias, entry in option.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("address"), str):
            raise RegistryError(
                f"[nix-docker].registries: {alias!r} needs an `address`, "
                f'e.g. {{"address": "registry.example.com:5000"}}'
            )
        unknown = set(entry) - set(_KEYS)
        if unknown:
            raise RegistryError(
                f"[nix-docker].registries: {alias!r} has unknown keys {sorted(unknown)} (valid: {', '.join(_KEYS)})"
            )
        cert_dir = entry.get("cert_dir")
        if cert_dir is not None and not isinstance(cert_dir, str):
            raise RegistryError(
                f"[nix-docker].registries: {alias!r} has `cert_dir` {cert_dir!r}; it must be a directory path"
            )
        registries[alias] = Registry(
            alias,
            entry["address"],
            bool(entry.get("default", False)),
            bool(entry.get("skip_push", False)),
            bool(entry.get("tls_verify", True)),
            cert_dir,
        )
    return registries


def registries_for(field: Sequence[str] | None, configured: Mapping[str, Registry]) -> list[Registry]:
    """The registries an image names (addresses or @aliases), or else the configured defaults."""
    if not field:
        return [r for r in configured.values() if r.default]
    chosen = []
    by_address = {r.address: r for r in configured.values()}
    for entry in field:
        if entry.startswith("@"):
            if entry[1:] not in configured:
                known = ", ".join(f"@{a}" for a in sorted(configured)) or "none configured"
                raise RegistryError(f"there is no registry alias {entry!r} in [nix-docker].registries (known: {known})")
            chosen.append(configured[entry[1:]])
        else:
            chosen.append(by_address.get(entry, Registry(None, entry)))
    return chosen


def registry_for_host(host: str, configured: Mapping[str, Registry]) -> Registry:
    """How to reach the registry at `host` (e.g. to pull a base image): its configured entry, if any."""
    for registry in configured.values():
        if registry.address == host or registry.address.split("/", 1)[0] == host:
            return registry
    return Registry(None, host)


# What skopeo (containers/image) says, and what it means for someone running `pants publish`.
# Checked in order: a TLS failure also mentions the registry, a refused login also names a blob.
_FAILURES = (
    # skopeo signs after it has pushed the manifest: a failed signature leaves the tag unsigned.
    (
        ("sigstore disabled",),
        "this skopeo cannot sign with a sigstore key (Debian builds skopeo without sigstore signing)",
        "sign with a GPG key instead ([nix-docker].sign_by), or use a skopeo built with sigstore "
        "([skopeo].search_path); the image was pushed unsigned, and publishing again signs it",
    ),
    (
        ("bad passphrase",),
        "the signing key could not be unlocked with the passphrase in [nix-docker].sign_passphrase_file",
        "check that the file holds the key's passphrase; the image was pushed unsigned, and publishing again signs it",
    ),
    (
        ("creating signature", "gpgme", "no secret key"),
        "the image could not be signed",
        "check [nix-docker].sign_by against `gpg --list-secret-keys` in the keyring GNUPGHOME names (or "
        "[nix-docker].sign_by_sigstore_private_key); the image was pushed unsigned, and publishing again signs it",
    ),
    (
        ("http: server gave http response to https client",),
        "the registry at {address} speaks plain HTTP",
        "if that is intended (a registry on localhost), set `tls_verify = false` for it in [nix-docker].registries",
    ),
    (
        ("x509:", "tls: ", "certificate"),
        "the TLS certificate of {address} is not trusted",
        "set `cert_dir` for it in [nix-docker].registries to a directory holding its CA as ca.crt, or put the CA in "
        "/etc/containers/certs.d/{address}/ca.crt",
    ),
    (
        ("unauthorized", "authentication required", "denied", "403 forbidden"),
        "{address} refused the credentials (or none were found for it)",
        "log in with `skopeo login {address}` (or `podman login`, `docker login`), or point REGISTRY_AUTH_FILE at an "
        "auth.json that has an entry for {address}",
    ),
    (
        (
            "connection refused",
            "no such host",
            "i/o timeout",
            "no route to host",
            "network is unreachable",
            "connection reset",
        ),
        "{address} cannot be reached",
        "check the address in `registries` or [nix-docker].registries, and that the registry is up",
    ),
    (
        (
            "unexpected http status: 5",
            "500 internal server error",
            "502 bad gateway",
            "503 service unavailable",
            "unexpected eof",
            "broken pipe",
        ),
        "{address} failed during the push",
        "run `pants publish` again: blobs that arrived are kept, and no tag was written, since the manifest goes last",
    ),
)


def explain_failure(message: str, address: str) -> tuple[str, str] | None:
    """(what went wrong, how to fix it) for a skopeo error message, or None when it is unknown."""
    lowered = message.lower()
    for needles, what, fix in _FAILURES:
        if any(needle in lowered for needle in needles):
            return what.format(address=address), fix.format(address=address)
    return None


def explain_pull_failure(message: str, host: str, name: str, pin: str) -> str:
    """Why pulling the base image `name` pinned at `pin` from `host` failed, with what to do."""
    lowered = message.lower()
    if "manifest unknown" in lowered or "not found" in lowered:
        return f"{host} has no image with digest {pin} in that repository. Check the digest with `skopeo inspect docker://{name}`"
    if "digest" in lowered and "match" in lowered:
        return (
            f"what {host} sent does not match the pinned digest {pin}. Check the digest, and what sits between you and "
            "the registry"
        )
    explained = explain_failure(message, host)
    if explained:
        return f"{explained[0]}; {explained[1]}"
    last = message.strip().splitlines()[-1] if message.strip() else "no message"
    return f"skopeo could not pull it: {last}"
