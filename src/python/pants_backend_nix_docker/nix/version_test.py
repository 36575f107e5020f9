from __future__ import annotations

import pytest

from pants_backend_nix_docker.nix.version import format_version, is_supported, parse_nix_version


@pytest.mark.parametrize(
    "output, expected",
    [
        ("nix (Nix) 2.8.0\n", (2, 8, 0)),
        ("nix (Nix) 2.18.1", (2, 18, 1)),
        ("nix (Lix, like Nix) 2.91.1\nSystem type: x86_64-linux\n", (2, 91, 1)),
        ("nix (Nix) 2.3", (2, 3)),
        ("nix: command not found", None),
    ],
)
def test_parse_nix_version(output: str, expected: tuple[int, ...] | None) -> None:
    assert parse_nix_version(output) == expected


def test_supported_versions_start_at_2_8() -> None:
    assert is_supported((2, 8, 0)) and is_supported((2, 18)) and is_supported((3, 0, 0))
    assert not is_supported((2, 7, 9)) and not is_supported((2, 3)) and not is_supported((1, 11, 16))
    assert format_version((2, 7, 9)) == "2.7.9"
