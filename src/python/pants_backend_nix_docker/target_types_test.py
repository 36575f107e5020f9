from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException, InvalidFieldTypeException

from pants_backend_nix_docker.target_types import (
    NixImageCreatedField,
    NixImageEnvField,
    NixImageExposedPortsField,
    NixImageMaxLayersField,
    NixImagePackagesField,
    NixImageRepositoryField,
    NixImageTagsField,
    NixImageUserField,
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
]


@pytest.mark.parametrize("field,value,words", BAD_VALUES)
def test_bad_values_name_target_field_and_fix(field, value, words: str) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    message = str(e.value)
    assert str(ADDRESS) in message and field.alias in message and words in message


@pytest.mark.parametrize(
    "field,value",
    [(NixImageExposedPortsField, "8080"), (NixImagePackagesField, "nixpkgs#hello"), (NixImageMaxLayersField, "3")],
)
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
