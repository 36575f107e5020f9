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


def parse_registries(option: Mapping[str, Any]) -> dict[str, Registry]:
    registries = {}
    for alias, entry in option.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("address"), str):
            raise RegistryError(f"[nix-docker].registries: {alias!r} needs an `address`, e.g. {{\"address\": \"registry.example.com:5000\"}}")
        unknown = set(entry) - {"address", "default", "skip_push", "tls_verify"}
        if unknown:
            raise RegistryError(f"[nix-docker].registries: {alias!r} has unknown keys {sorted(unknown)}")
        registries[alias] = Registry(alias, entry["address"], bool(entry.get("default", False)), bool(entry.get("skip_push", False)), bool(entry.get("tls_verify", True)))
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
