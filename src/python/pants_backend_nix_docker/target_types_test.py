from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidFieldTypeException

from pants_backend_nix_docker.target_types import (
    NixImageBaseImageField,
    NixImageCaCertificatesField,
    NixImageClosureGraphField,
    NixImageCmdField,
    NixImageCreatedField,
    NixImageEntrypointField,
    NixImageEnvField,
    NixImageExposedPortsField,
    NixImageForbiddenReferencesField,
    NixImageGroupsField,
    NixImageLabelsField,
    NixImageLayeringField,
    NixImageMaxImageSizeField,
    NixImageMaxLayersField,
    NixImageOutputFormatField,
    NixImagePackagesField,
    NixImagePlatformsField,
    NixImageRegistriesField,
    NixImageRepositoryField,
    NixImageSkipPushField,
    NixImageTagsField,
    NixImageTestCommandsField,
    NixImageTestConfigField,
    NixImageTestFilesField,
    NixImageTestServiceField,
    NixImageTmpDirField,
    NixImageUserField,
    NixImageUsrBinEnvField,
    NixImageVolumesField,
    NixImageWorkingDirField,
)

ADDRESS = Address("examples/hello", target_name="image")

# field, bad value, words the message must contain (besides the target and the field's alias)
BAD_VALUES = [
    (NixImagePackagesField, [], "at least one installable"),
    (NixImagePackagesField, ["hello"], "nixpkgs#hello"),
    (NixImagePackagesField, ["/nix/store/xyz-hello"], "top-level store path"),
    (NixImagePackagesField, ["../../../x.nix#a"], "outside the repository"),
    (NixImageExposedPortsField, [0], "1 to 65535"),
    (NixImageExposedPortsField, [70000], "1 to 65535"),
    (NixImageExposedPortsField, ["80/icmp"], "/tcp, /udp or /sctp"),
    (NixImageExposedPortsField, [80, "80/tcp"], "listed twice"),
    (NixImageWorkingDirField, "data", "absolute path"),
    (NixImageWorkingDirField, "/a/../b", "normalised"),
    (NixImageVolumesField, ["relative"], "absolute path"),
    (NixImageUserField, "a:b:c", "USER:GROUP"),
    (NixImageUserField, "Root User", "USER:GROUP"),
    (NixImageEnvField, {"A=B": "x"}, "'='"),
    (NixImageRepositoryField, "Hello", "lowercase"),
    (NixImageTagsField, [], "at least one tag"),
    (NixImageTagsField, [".hidden"], "128 letters"),
    (NixImageTagsField, ["a", "a"], "listed twice"),
    (NixImageMaxLayersField, 1, "from 2 to 125"),
    (NixImageMaxLayersField, 500, "from 2 to 125"),
    (NixImageCreatedField, "yesterday", "RFC 3339"),
    (NixImageCreatedField, "2024-13-45T00:00:00Z", "RFC 3339"),
    (NixImageBaseImageField, "docker://registry.example.com/debian:12", "pinned by digest"),
    (NixImageBaseImageField, "docker://registry.example.com/debian@sha256:abc", "not a sha256 digest"),
    (NixImageBaseImageField, "docker://debian@sha256:" + "a" * 64, "names no registry host"),
    (NixImageBaseImageField, "oci-archive:base.tar", "unknown transport"),
    (NixImageBaseImageField, "/srv/base.tar", "absolute path"),
    (NixImageBaseImageField, "../../../outside.tar", "outside the repository"),
    (NixImageBaseImageField, "base.tar@md5:00", "not a sha256 digest"),
    (NixImageMaxImageSizeField, "60 parsecs", "is not a size"),
    (NixImageMaxImageSizeField, 0, "must be positive"),
    (NixImageMaxImageSizeField, -5, "must be positive"),
    (NixImageMaxImageSizeField, True, "a number of bytes"),
    (NixImageMaxImageSizeField, [60], "a number of bytes"),
    (NixImageEnvField, {"": "x"}, "'='"),
    (NixImagePackagesField, ["nixpkgs#"], "installable"),
    (NixImagePackagesField, ["//x.nix#a", "//x.nix#a"], "twice"),
    (NixImagePlatformsField, [], "this machine's system"),
    (NixImagePlatformsField, ["arm64"], "x86_64-linux, aarch64-linux"),
    (NixImagePlatformsField, ["aarch64-darwin"], "not a Linux system"),
    (NixImagePlatformsField, ["x86_64-linux", "x86_64-linux"], "listed twice"),
]


@pytest.mark.parametrize("field,value,words", BAD_VALUES)
def test_bad_values_name_target_field_and_fix(field, value, words: str) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    message = str(e.value)
    assert str(ADDRESS) in message and field.alias in message and words in message


WRONG_TYPES = [
    (NixImageExposedPortsField, "8080"),
    (NixImagePackagesField, "nixpkgs#hello"),
    (NixImagePackagesField, [3]),
    (NixImageMaxLayersField, "3"),
    (NixImageMaxLayersField, 2.5),
    (NixImageEntrypointField, "/bin/sh -c x"),
    (NixImageCmdField, [["nested"]]),
    (NixImageEnvField, ["A=B"]),
    (NixImageLabelsField, {"a": 1}),
    (NixImageBaseImageField, ["base.tar"]),
    (NixImageRegistriesField, "@ci"),
    (NixImageTagsField, "latest"),
    (NixImageVolumesField, "/data"),
    (NixImageTmpDirField, "yes"),
    (NixImageCaCertificatesField, "true"),
    (NixImageClosureGraphField, 1),
    (NixImageSkipPushField, "no"),
    (NixImageUsrBinEnvField, "yes"),
    (NixImageForbiddenReferencesField, "*-gcc-*"),
    (NixImageGroupsField, ["wheel"]),
]


@pytest.mark.parametrize("field,value", WRONG_TYPES)
def test_wrong_types_are_rejected(field, value) -> None:
    with pytest.raises(InvalidFieldTypeException):
        field(value, ADDRESS)


def test_good_values_are_normalised() -> None:
    assert NixImageExposedPortsField([8080, "53/udp"], ADDRESS).value == ("8080/tcp", "53/udp")
    assert NixImageCreatedField(None, ADDRESS).value == "1970-01-01T00:00:01Z"
    assert NixImageCreatedField("now", ADDRESS).value == "now"
    assert NixImageMaxLayersField(None, ADDRESS).value == 100
    assert NixImageTagsField(None, ADDRESS).value == ("latest",)
    assert NixImageUserField("app:app", ADDRESS).value == "app:app"
    assert NixImagePlatformsField(None, ADDRESS).value is None
    two = ["x86_64-linux", "aarch64-linux"]
    assert NixImagePlatformsField(two, ADDRESS).value == tuple(two)
    # `${system}` stands for each platform's system; the entry is checked with one filled in.
    entry = "nixpkgs#legacyPackages.${system}.hello"
    assert NixImagePackagesField([entry], ADDRESS).value == (entry,)


def test_repository_defaults_to_the_directory_name() -> None:
    assert NixImageRepositoryField(None, ADDRESS).value_or_default(ADDRESS) == "hello"
    root = Address("", target_name="Web_App")
    assert NixImageRepositoryField(None, root).value_or_default(root) == "web_app"
    assert NixImageRepositoryField("acme/x", ADDRESS).value_or_default(ADDRESS) == "acme/x"


from pants_backend_nix_docker.target_types import (  # noqa: E402
    NixImageAppDirField,
    NixImageDirectoriesField,
    NixImagePathsToLinkField,
    NixImageUsersField,
)

ROOTFS_BAD_VALUES = [
    (NixImageDirectoriesField, {"../x": "app"}, "not an absolute path"),
    (NixImageDirectoriesField, {"/data/../../etc": "app"}, "normalised"),
    (NixImageDirectoriesField, {"/data": {"mode": "777x"}}, "octal"),
    (NixImageUsersField, {"App": 1000}, "not a valid user name"),
    (NixImageUsersField, {"app": "1000"}, "must be a uid"),
    (NixImageAppDirField, "app", "not an absolute path"),
    (NixImagePathsToLinkField, ["/nix/store"], "under /nix"),
]


@pytest.mark.parametrize("field,value,words", ROOTFS_BAD_VALUES)
def test_bad_rootfs_values_name_target_field_and_fix(field, value, words: str) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    message = str(e.value)
    assert str(ADDRESS) in message and field.alias in message and words in message and "For example" in message


def test_accounts_fields_want_dicts() -> None:
    with pytest.raises(InvalidFieldTypeException):
        NixImageUsersField(["app"], ADDRESS)


def test_accounts_fields_keep_the_dict_as_written_and_parse_it_for_the_rules() -> None:
    written = {"app": 1000, "worker": {"uid": 1001, "groups": ["app"]}}
    field = NixImageUsersField(written, ADDRESS)
    # What `pants peek` prints: the BUILD file's dict, not parsed objects.
    assert isinstance(field.value, Mapping) and json.loads(json.dumps(_plain(field.value))) == written
    assert [u.name for u in field.parsed] == ["app", "worker"]
    assert NixImageUsersField(None, ADDRESS).value is None and NixImageUsersField(None, ADDRESS).parsed == ()
    assert hash(field.value) == hash(NixImageUsersField(dict(written), ADDRESS).value)
    directories = NixImageDirectoriesField({"/data": "app"}, ADDRESS)
    assert dict(directories.value or {}) == {"/data": "app"} and len(directories.parsed) == 1


def _plain(value):
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


BAD_CHOICES = [(NixImageLayeringField, "random"), (NixImageOutputFormatField, "zip")]


@pytest.mark.parametrize("field,value", BAD_CHOICES)
def test_unknown_choices_list_the_valid_ones(field, value) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    message = str(e.value)
    assert str(ADDRESS) in message and field.alias in message and repr(value) in message
    assert all(choice in message for choice in field.valid_choices)


def test_the_matrix_is_wide() -> None:
    # Each value above is a test case of its own, refused with a clear error; this counts them
    # from the lists, so it holds whichever tests run, and in any order.
    cases: list[tuple[Any, ...]] = [*BAD_VALUES, *WRONG_TYPES, *ROOTFS_BAD_VALUES, *BAD_CHOICES]
    tried = [(case[0].alias, case[1]) for case in cases]
    fields = sorted({alias for alias, _ in tried})
    print(
        f"FIGURE: bad input matrix: {len(tried)} bad values over {len(fields)} fields ({', '.join(fields)}), each "
        "a test case that must be refused"
    )
    assert len(tried) >= 60


TEST_ADDRESS = Address("examples/hello", target_name="image_test")


@pytest.mark.parametrize(
    "field, value, words",
    [
        (NixImageTestCommandsField, [{"argv": ["x"], "stdout_has": "y"}], "unknown keys"),
        (NixImageTestCommandsField, [{"argv": ["x"], "user": "app"}], "'UID' or 'UID:GID'"),
        (NixImageTestFilesField, [{"path": "data"}], "absolute"),
        (NixImageTestFilesField, [{"path": "/x", "mode": "rwx"}], "like '0755'"),
        (NixImageTestConfigField, {"Entrypoint": ["x"]}, "unknown keys"),
        (NixImageTestServiceField, {"port": 99999}, "TCP port"),
    ],
)
def test_bad_image_checks_name_target_field_and_an_example(field, value, words: str) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, TEST_ADDRESS)
    message = str(e.value)
    assert str(TEST_ADDRESS) in message and repr(field.alias) in message and words in message
    assert "For example" in message


def test_image_checks_keep_the_value_as_written_and_parse_it_for_the_rule() -> None:
    commands = NixImageTestCommandsField([{"argv": ["/bin/id", "-u"], "stdout": "1000"}], TEST_ADDRESS)
    (check,) = commands.parsed
    assert check.argv == ("/bin/id", "-u") and check.stdout.equals == "1000"
    assert NixImageTestServiceField(None, TEST_ADDRESS).parsed is None
    assert NixImageTestFilesField(None, TEST_ADDRESS).parsed == ()
