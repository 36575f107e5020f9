"""Sizes as people write them (`60MB`, `1.5 GiB`) and as the report prints them. Pure."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")


_UNITS = {
    None: 1,
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "KiB": 2**10,
    "MB": 10**6,
    "MiB": 2**20,
    "GB": 10**9,
    "GiB": 2**30,
}


def parse_size(value: int | str) -> int:
    """Bytes from `50000000`, `"50MB"` or `"47.7MiB"`."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f'{value!r} is not a size; write a number of bytes or e.g. "50MB", "1.5GiB"')
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
