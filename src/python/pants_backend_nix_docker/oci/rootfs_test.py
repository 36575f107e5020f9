from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pants_backend_nix_docker.oci import tarball
from pants_backend_nix_docker.oci.accounts import (
    AccountError,
    parse_directories,
    parse_groups,
    parse_users,
    resolve_owner,
)
from pants_backend_nix_docker.oci.customisation import Customisation, check_user, customisation_spec
from pants_backend_nix_docker.oci.rootfs import (
    FirstOf,
    LinkTree,
    RootfsError,
    RootfsSpec,
    check_image_path,
    rootfs_nodes,
    tar_entries,
)


def package(root: Path, files: dict[str, str]) -> str:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(root)


def layer_members(spec: RootfsSpec) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    tarball.write_tar_file(tar_entries(rootfs_nodes(spec)), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_users_directories_and_tmp(tmp_path: Path) -> None:
    custom = Customisation(
        users=parse_users({"app": 1000, "worker": {"uid": 1001, "groups": ["staff"]}}),
        groups=parse_groups({"staff": 2000}),
        directories=parse_directories({"/data": {"owner": "app", "mode": "0750"}, "/srv/x": "1001"}),
    )
    members = layer_members(customisation_spec(custom, [], None))
    passwd = members["etc/passwd"]
    assert (members["data"].uid, members["data"].gid, members["data"].mode) == (1000, 1000, 0o750)
    assert (members["srv/x"].uid, members["srv/x"].gid) == (1001, 1001)
    assert members["srv"].uid == 0 and members["srv"].mode == 0o755, "parents are root-owned 0755"
    assert members["tmp"].mode == 0o1777
    assert (members["home/app"].uid, members["home/app"].gid) == (1000, 1000)
    assert passwd.mode == 0o644 and passwd.uname == "root"


def test_passwd_and_group_contents() -> None:
    users = parse_users({"app": 1000, "worker": {"uid": 1001, "gid": 2000, "groups": ["staff"]}})
    spec = customisation_spec(Customisation(users=users, groups=parse_groups({"staff": 2000})), [], None)
    content = {n.path: n.content.decode() for n in spec.nodes if n.kind == "file"}
    assert "app:x:1000:1000::/home/app:/bin/sh" in content["/etc/passwd"].splitlines()
    assert content["/etc/passwd"].splitlines()[0].startswith("root:x:0:0:")
    groups = content["/etc/group"].splitlines()
    assert "app:x:1000:" in groups and "staff:x:2000:worker" in groups
    assert "passwd: files" in content["/etc/nsswitch.conf"]


def test_paths_to_link_mirror_packages_like_buildenv(tmp_path: Path) -> None:
    a = package(tmp_path / "a", {"bin/python3": "", "share/doc/a.txt": ""})
    b = package(tmp_path / "b", {"bin/sh": "", "share/doc/b.txt": ""})
    spec = RootfsSpec(link_trees=tuple(LinkTree(r, p, "paths_to_link") for p in ("/bin", "/share") for r in (a, b)))
    members = layer_members(spec)
    assert members["bin/python3"].issym() and members["bin/python3"].linkname == f"{a}/bin/python3"
    assert members["bin/sh"].linkname == f"{b}/bin/sh"
    assert members["share/doc"].isdir(), "directories both packages have are merged"
    assert members["share/doc/b.txt"].linkname == f"{b}/share/doc/b.txt"


def test_conflicting_links_name_both_packages(tmp_path: Path) -> None:
    a = package(tmp_path / "a", {"bin/sh": "a"})
    b = package(tmp_path / "b", {"bin/sh": "b"})
    spec = RootfsSpec(link_trees=(LinkTree(a, "/bin", "paths_to_link"), LinkTree(b, "/bin", "paths_to_link")))
    with pytest.raises(RootfsError, match=r"both provide /bin/sh: .*/a/bin/sh and .*/b/bin/sh") as e:
        rootfs_nodes(spec)
    assert e.value.field == "paths_to_link"


def test_links_to_the_same_file_do_not_conflict(tmp_path: Path) -> None:
    a = package(tmp_path / "a", {"bin/busybox": ""})
    os.symlink("busybox", tmp_path / "a" / "bin" / "sh")
    b = tmp_path / "b" / "bin"
    b.mkdir(parents=True)
    os.symlink(tmp_path / "a" / "bin" / "busybox", b / "sh")
    spec = RootfsSpec(
        link_trees=(LinkTree(a, "/bin", "paths_to_link"), LinkTree(str(tmp_path / "b"), "/bin", "paths_to_link"))
    )
    assert "bin/sh" in layer_members(spec)


def test_first_of_picks_the_first_existing_candidate_or_explains(tmp_path: Path) -> None:
    a = package(tmp_path / "a", {"lib/x": ""})
    b = package(tmp_path / "b", {"bin/env": ""})
    spec = RootfsSpec(first_of=(FirstOf("/usr/bin/env", (f"{a}/bin/env", f"{b}/bin/env"), "usr_bin_env", "hint"),))
    assert layer_members(spec)["usr/bin/env"].linkname == f"{b}/bin/env"
    with pytest.raises(RootfsError, match="no package of the image has /usr/bin/env. hint"):
        rootfs_nodes(RootfsSpec(first_of=(FirstOf("/usr/bin/env", (f"{a}/bin/env",), "usr_bin_env", "hint"),)))


def test_ca_certificates_require_the_bundle(tmp_path: Path) -> None:
    cacert = package(tmp_path / "cacert", {"etc/ssl/certs/ca-bundle.crt": "PEM"})
    spec = customisation_spec(Customisation(ca_certificates=True), [], cacert)
    members = layer_members(spec)
    assert members["etc/ssl/certs/ca-certificates.crt"].linkname == f"{cacert}/etc/ssl/certs/ca-bundle.crt"
    with pytest.raises(RootfsError, match="does not exist"):
        rootfs_nodes(customisation_spec(Customisation(ca_certificates=True), [], str(tmp_path / "empty")))


def test_spec_survives_json() -> None:
    spec = customisation_spec(Customisation(users=parse_users({"app": 1000})), ["/nix/store/x"], None)
    assert RootfsSpec.from_json(spec.to_json()) == spec


def test_explicit_directory_wins_over_home_and_tmp() -> None:
    custom = Customisation(
        users=parse_users({"app": 1000}),
        directories=parse_directories(
            {"/tmp": {"owner": "root", "mode": "0700"}, "/home/app": {"owner": "app", "mode": "0700"}}
        ),
    )
    nodes = {n.path: n for n in rootfs_nodes(customisation_spec(custom, [], None))}
    assert nodes["/tmp"].mode == 0o700 and nodes["/home/app"].mode == 0o700


@pytest.mark.parametrize(
    "path,words",
    [
        ("../x", "not an absolute path"),
        ("/a/../../x", "normalised"),
        ("/", "'/' itself"),
        ("/nix/store/x", "under /nix"),
        ("relative", "absolute"),
    ],
)
def test_image_paths_stay_inside_the_image(path: str, words: str) -> None:
    with pytest.raises(RootfsError, match=words):
        check_image_path(path, "directories")


@pytest.mark.parametrize(
    "raw,words",
    [
        ({"App": 1000}, "not a valid user name"),
        ({"root": 0}, "built in"),
        ({"app": 0}, "from 1 to 65533"),
        ({"app": {"uid": 1000, "colour": "red"}}, "unknown keys"),
        ({"app": 1000, "web": 1000}, "more than one user"),
        ({"app": {"uid": 1000, "shell": "sh"}}, "absolute path"),
    ],
)
def test_bad_users(raw: dict, words: str) -> None:
    with pytest.raises(AccountError, match=words):
        parse_users(raw)


@pytest.mark.parametrize(
    "raw,words",
    [
        ({"/data": {"mode": "rwx"}}, "octal"),
        ({"/data": {"mode": "4755"}}, "no setuid"),
        ({"/data": {"owner": "app", "size": 3}}, "must map to"),
    ],
)
def test_bad_directories(raw: dict, words: str) -> None:
    with pytest.raises(AccountError, match=words):
        parse_directories(raw)


def test_owners_and_the_user_field_must_be_declared() -> None:
    users = parse_users({"app": 1000})
    assert resolve_owner("app", None, users, {"app": 1000}, "directories") == (1000, 1000)
    assert resolve_owner("4242", "7", users, {}, "directories") == (4242, 7)
    with pytest.raises(AccountError, match="user 'ghost' is not declared .known users: root, app"):
        resolve_owner("ghost", None, users, {}, "directories")
    with pytest.raises(AccountError, match="group 'staff' is not declared"):
        check_user("app:staff", Customisation(users=users))
    check_user("app", Customisation(users=users))
    check_user("1000:1000", Customisation())
    with pytest.raises(AccountError) as e:
        check_user("app", Customisation())
    assert e.value.field == "user"


def test_undeclared_supplementary_group_is_an_error() -> None:
    with pytest.raises(AccountError, match="group 'wheel', which is not declared"):
        customisation_spec(Customisation(users=parse_users({"app": {"uid": 1000, "groups": ["wheel"]}})), [], None)
