"""Image tags with placeholders, rendered per build (pure).

    image_tags=["{git_revision}", "latest"]       -> "3f2a9c1d0b4e" (or "dev" when the tree is dirty)
    image_tags=["py-{closure_hash}"]              -> "py-5e0c2a7b91d3": changes exactly when the closure does
    image_tags=["{repository}-1.0"]               -> "acme-hello-1.0" ('/' becomes '-')
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Mapping

PLACEHOLDERS = ("git_revision", "closure_hash", "repository")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
# Values of the longest plausible shape, to check a template before any build.
_SAMPLES = {"git_revision": "0123456789ab", "closure_hash": "0123456789ab", "repository": "a" * 40}


class TagError(ValueError):
    pass


def placeholders_in(template: str) -> set[str]:
    return set(_PLACEHOLDER_RE.findall(template))


def render(template: str, values: Mapping[str, str]) -> str:
    unknown = placeholders_in(template) - set(PLACEHOLDERS)
    if unknown:
        used = ", ".join(f"{{{u}}}" for u in sorted(unknown))
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        raise TagError(f"{template!r} uses {used}; the placeholders are {known}")
    tag = _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)
    if not TAG_RE.match(tag):
        raise TagError(
            f"{template!r} gives {tag!r}, which is not a tag (up to 128 letters, digits, '_', '.' and '-', not "
            "starting with '.' or '-')"
        )
    return tag


def check_template(template: str) -> None:
    render(template, _SAMPLES)


def closure_hash(store_paths: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(store_paths)).encode()).hexdigest()[:12]


def repository_value(repository: str) -> str:
    return repository.replace("/", "-")
