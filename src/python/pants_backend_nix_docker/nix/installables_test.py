from __future__ import annotations

import pytest

from pants_backend_nix_docker.nix.installables import (
    FILE_ATTR,
    FLAKE,
    STORE_PATH,
    InstallableError,
    PackageRefError,
    for_system,
    image_installables,
    package_ref_table,
    parse_installable,
    source_files,
    substitute_package_refs,
)

HELLO = "/nix/store/" + "s" * 32 + "-hello-1.0"


@pytest.mark.parametrize(
    "raw,kind,ref,attr,name",
    [
        (HELLO, STORE_PATH, HELLO, None, "hello-1.0"),
        (HELLO + ".drv", STORE_PATH, HELLO + ".drv", None, "hello-1.0"),
        ("nixpkgs#hello", FLAKE, "nixpkgs", "hello", "hello"),
        ("nixpkgs#python3Packages.flask", FLAKE, "nixpkgs", "python3Packages.flask", "python3Packages.flask"),
        ("github:NixOS/nixpkgs/nixos-23.05#jq", FLAKE, "github:NixOS/nixpkgs/nixos-23.05", "jq", "jq"),
        (".#app", FLAKE, ".", "app", "app"),
        ("path:/srv/flake", FLAKE, "path:/srv/flake", None, "default"),
        ("pkgs.nix#hello", FILE_ATTR, "examples/hello/pkgs.nix", "hello", "hello"),
        ("../nix/default.nix#python3", FILE_ATTR, "examples/nix/default.nix", "python3", "python3"),
        ("//build-support/nix/default.nix#cacert", FILE_ATTR, "build-support/nix/default.nix", "cacert", "cacert"),
        ("hello.nix", FILE_ATTR, "examples/hello/hello.nix", None, "hello"),
    ],
)
def test_parses_each_kind(raw: str, kind: str, ref: str, attr: str | None, name: str) -> None:
    parsed = parse_installable(raw, "examples/hello")
    assert (parsed.kind, parsed.ref, parsed.attr, parsed.name) == (kind, ref, attr, name)


@pytest.mark.parametrize(
    "raw,message",
    [
        ("", "empty"),
        ("hello", "nixpkgs#hello"),
        ("/nix/store/abc-hello", "top-level store path"),
        (HELLO + "/bin/hello", "top-level store path"),
        ("nixpkgs#", "no attribute"),
        ("nixpkgs#1bad attr", "not a Nix attribute path"),
        ("/etc/default.nix#x", "absolute path"),
        ("../../../outside.nix#x", "outside the repository"),
    ],
)
def test_rejects_with_a_reason(raw: str, message: str) -> None:
    with pytest.raises(InstallableError, match=message):
        parse_installable(raw, "examples/hello")


def test_substitutes_package_references() -> None:
    table = package_ref_table([(parse_installable("nixpkgs#hello", ""), (HELLO,))])
    assert substitute_package_refs("${pkgs.hello}/bin/hello", table) == HELLO + "/bin/hello"
    assert substitute_package_refs("${HOME} stays", table) == "${HOME} stays"


def test_unknown_and_ambiguous_references_are_errors() -> None:
    other = "/nix/store/" + "t" * 32 + "-hello-2.0"
    table = package_ref_table(
        [(parse_installable("nixpkgs#hello", ""), (HELLO,)), (parse_installable("other#hello", ""), (other,))]
    )
    with pytest.raises(PackageRefError, match="ambiguous"):
        substitute_package_refs("${pkgs.hello}", table)
    with pytest.raises(PackageRefError, match="names no package.*known names: hello"):
        substitute_package_refs("${pkgs.helo}", table)


def test_parses_realised_outputs_of_each_command() -> None:
    from pants_backend_nix_docker.nix.installables import parse_realised_outputs

    dev = HELLO.replace("hello-1.0", "hello-1.0-dev")
    assert parse_realised_outputs(f"{HELLO}\n{dev}\n") == (HELLO, dev)
    nix_build_json = f'[{{"drvPath": "/nix/store/x.drv", "outputs": {{"dev": "{dev}", "out": "{HELLO}"}}}}]'
    assert parse_realised_outputs(nix_build_json) == (HELLO, dev)
    assert parse_realised_outputs("warning: something\n") == ()


@pytest.mark.parametrize(
    "raw, spec_path, files",
    [
        ("//build-support/nix/default.nix#python3", "examples/app", ("build-support/nix/default.nix",)),
        ("pkgs.nix#hello", "examples/app", ("examples/app/pkgs.nix",)),
        (".#hello", "examples/app", ("examples/app/flake.nix", "examples/app/flake.lock")),
        ("path:./nix#hello", "examples/app", ("examples/app/nix/flake.nix", "examples/app/nix/flake.lock")),
        ("../shared#x", "examples/app", ("examples/shared/flake.nix", "examples/shared/flake.lock")),
        (".#hello", "", ("flake.nix", "flake.lock")),
        ("nixpkgs#hello", "examples/app", ()),
        ("github:owner/repo#pkg", "examples/app", ()),
        ("/nix/store/" + "a" * 32 + "-hello-2.12", "examples/app", ()),
        ("../../..#x", "examples/app", ()),
    ],
)
def test_source_files_of_an_installable(raw: str, spec_path: str, files: tuple[str, ...]) -> None:
    assert source_files(parse_installable(raw, spec_path), spec_path) == files


def test_system_placeholders_become_each_platforms_system() -> None:
    wanted = image_installables(
        ["nixpkgs#legacyPackages.${system}.hello", "//nix/pkgs.nix#${system}.tools"], "app", None, "aarch64-linux"
    )
    assert [i.raw for i, _ in wanted] == [
        "nixpkgs#legacyPackages.aarch64-linux.hello",
        "//nix/pkgs.nix#aarch64-linux.tools",
    ]
    assert [i.attr for i, _ in wanted] == ["legacyPackages.aarch64-linux.hello", "aarch64-linux.tools"]
    assert for_system("nixpkgs#hello", "aarch64-linux") == "nixpkgs#hello"
