"""From an image's rootfs fields to the `RootfsSpec` of its customisation layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pants_backend_nix_docker.oci.accounts import AccountError, DirectorySpec, all_groups, resolve_owner
from pants_backend_nix_docker.oci.rootfs import FirstOf, LinkTree, Node, RootfsSpec, User, passwd_nodes

# Where nixpkgs' cacert (and ours) keeps the bundle, and where programs look for one.
CA_BUNDLE = "/etc/ssl/certs/ca-bundle.crt"
CA_LINKS = ("/etc/ssl/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Customisation:
    users: tuple[User, ...] = ()
    groups: tuple[tuple[str, int], ...] = ()
    directories: tuple[DirectorySpec, ...] = ()
    tmp_dir: bool = True
    paths_to_link: tuple[str, ...] = ()
    usr_bin_env: bool = False
    bin_sh: bool = False
    ca_certificates: bool = False


def check_user(user: str | None, c: Customisation) -> None:
    """The image's `user` must name a declared user (or a uid) and group."""
    if not user:
        return
    owner, _, group = user.partition(":")
    resolve_owner(owner, group or None, c.users, all_groups(c.users, c.groups), "user")


def customisation_spec(c: Customisation, package_roots: Sequence[str], cacert_root: str | None) -> RootfsSpec:
    groups = all_groups(c.users, c.groups)
    nodes: list[Node] = []
    if c.users or c.groups:
        nodes += passwd_nodes(c.users, groups)
        nodes += [Node(u.home, "dir", 0o755, u.uid, u.gid, field="users") for u in c.users]
    if c.tmp_dir:
        nodes.append(Node("/tmp", "dir", 0o1777, field="tmp_dir"))
    for d in c.directories:
        uid, gid = resolve_owner(d.owner, d.group, c.users, groups, "directories")
        nodes.append(Node(d.path, "dir", d.mode, uid, gid, field="directories"))
    required = []
    if c.ca_certificates:
        if cacert_root is None:
            raise AccountError("ca_certificates", "no CA certificate package was realised")
        bundle = cacert_root + CA_BUNDLE
        nodes += [Node(link, "symlink", 0o777, target=bundle, field="ca_certificates") for link in CA_LINKS]
        required.append(
            (
                bundle,
                "ca_certificates",
                "Set [nix-docker].cacert_package to a package with etc/ssl/certs/ca-bundle.crt (nixpkgs#cacert).",
            )
        )
    first_of = []
    hint = "Add a package that has it (busybox or coreutils) to `packages`."
    if c.usr_bin_env:
        first_of.append(FirstOf("/usr/bin/env", tuple(r + "/bin/env" for r in package_roots), "usr_bin_env", hint))
    if c.bin_sh:
        first_of.append(FirstOf("/bin/sh", tuple(r + "/bin/sh" for r in package_roots), "bin_sh", hint))
    return RootfsSpec(
        nodes=tuple(nodes),
        link_trees=tuple(LinkTree(root, p, "paths_to_link") for p in c.paths_to_link for root in package_roots),
        first_of=tuple(first_of),
        required_files=tuple(required),
    )
