from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci.registry_client import (
    Credentials,
    auth_files,
    credentials_in,
    find_credentials,
    parse_challenge,
    registry_name,
)


def auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_auth_files_in_skopeos_order() -> None:
    env = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1"}
    assert auth_files(env) == [
        Path("/run/user/1/containers/auth.json"),
        Path("/home/u/.config/containers/auth.json"),
        Path("/home/u/.docker/config.json"),
    ]
    # REGISTRY_AUTH_FILE replaces the containers files; Docker's config is still read.
    assert auth_files({**env, "REGISTRY_AUTH_FILE": "/a.json", "DOCKER_CONFIG": "/d"}) == [
        Path("/a.json"),
        Path("/d/config.json"),
    ]


def test_the_most_specific_auth_entry_wins() -> None:
    config = {
        "auths": {
            "https://r.example:5000/v1/": auth("host", "h"),
            "r.example:5000/team": auth("team", "t"),
            "r.example:5000/team/app": auth("app", "a"),
            "other.example": auth("other", "o"),
        }
    }
    assert credentials_in(config, "r.example:5000", "team/app") == Credentials("app", "a")
    assert credentials_in(config, "r.example:5000", "team/other") == Credentials("team", "t")
    assert credentials_in(config, "r.example:5000", "hello") == Credentials("host", "h")
    # A key is a path prefix, not a string prefix.
    assert credentials_in(config, "r.example:5000", "teammate/x") == Credentials("host", "h")
    assert credentials_in(config, "elsewhere.example", "hello") is None


def test_credential_helpers_are_named_for_their_host() -> None:
    config = {"credHelpers": {"r.example": "ecr-login"}, "credsStore": "desktop", "auths": {}}
    assert credentials_in(config, "r.example", "x") == "ecr-login"
    assert credentials_in(config, "other.example", "x") == "desktop"


def test_a_credential_helper_is_asked(tmp_path: Path) -> None:
    helper = tmp_path / "bin/docker-credential-test"
    helper.parent.mkdir()
    # What a helper does: read the host on stdin, answer JSON.
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"s\\"}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "auth.json").write_text('{"credHelpers": {"r.example": "test"}}')
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "HOME": str(tmp_path)}
    path = os.environ["PATH"]
    try:
        os.environ["PATH"] = f"{helper.parent}:{path}"
        assert find_credentials("r.example", "x", env) == Credentials("u-r.example", "s")
    finally:
        os.environ["PATH"] = path


def test_the_secret_is_not_in_the_repr() -> None:
    assert "hunter2" not in repr(Credentials("me", "hunter2"))


@pytest.mark.parametrize(
    "header, expected",
    [
        (
            'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"',
            (
                "bearer",
                {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a:pull"},
            ),
        ),
        ('Basic realm="test"', ("basic", {"realm": "test"})),
    ],
)
def test_challenges(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_challenge(header) == expected


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("127.0.0.1:5000/hello:latest", ("127.0.0.1:5000", "hello")),
        ("r.example/team/app:1.0", ("r.example", "team/app")),
        ("r.example:443/team/app@sha256:" + "a" * 64, ("r.example:443", "team/app")),
        ("r.example/app", ("r.example", "app")),
    ],
)
def test_registry_names(reference: str, expected: tuple[str, str]) -> None:
    assert registry_name(reference) == expected
