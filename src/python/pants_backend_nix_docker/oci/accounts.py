"""Users, groups and owned directories as declared in BUILD files, checked and normalised."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from pants_backend_nix_docker.oci.rootfs import RootfsError, User, check_image_path

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
RESERVED = {"root": 0, "nobody": 65534, "nogroup": 65534}
_USER_KEYS = {"uid", "gid", "home", "shell", "groups"}
_DIR_KEYS = {"owner", "group", "mode"}


class AccountError(RootfsError):
    pass


@dataclass(frozen=True)
class DirectorySpec:
    path: str
    owner: str  # a user name or a uid, as written
    group: str | None  # a group name or a gid; None means the owner's primary group
    mode: int


def _check_name(field: str, name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AccountError(
            field,
            f"{name!r} is not a valid {what} name (lowercase letters, digits, '_' and '-', at most 32, not starting "
            "with a digit)",
        )
    if name in RESERVED:
        raise AccountError(field, f"{name!r} is built in (root, nobody and nogroup always exist); choose another name")
    return name


def _check_id(field: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65533:
        raise AccountError(field, f"{what} {value!r} must be a whole number from 1 to 65533 (0 is root, 65534 nobody)")
    return value


def parse_users(raw: Mapping[str, Any]) -> tuple[User, ...]:
    """`{"app": 1000}` or `{"app": {"uid": 1000, "gid": 1000, "home": ..., "shell": ..., "groups": [...]}}`."""
    users = []
    for name, spec in raw.items():
        _check_name("users", name, "user")
        spec = {"uid": spec} if isinstance(spec, int) and not isinstance(spec, bool) else spec
        if not isinstance(spec, Mapping):
            raise AccountError(
                "users", f"user {name!r} must be a uid or a dict with keys {sorted(_USER_KEYS)}, not {spec!r}"
            )
        unknown = set(spec) - _USER_KEYS
        if unknown:
            raise AccountError(
                "users", f"user {name!r} has unknown keys {sorted(unknown)}; the keys are {sorted(_USER_KEYS)}"
            )
        if "uid" not in spec:
            raise AccountError("users", f"user {name!r} needs a uid")
        uid = _check_id("users", spec["uid"], f"the uid of {name!r}")
        gid = _check_id("users", spec.get("gid", uid), f"the gid of {name!r}")
        home = check_image_path(spec.get("home", f"/home/{name}"), "users")
        shell = spec.get("shell", "/bin/sh")
        groups = spec.get("groups", ())
        if not isinstance(shell, str) or not shell.startswith("/"):
            raise AccountError("users", f"the shell of {name!r} must be an absolute path, not {shell!r}")
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
            raise AccountError("users", f"the groups of {name!r} must be a list of group names, not {groups!r}")
        users.append(User(name, uid, gid, home, shell, tuple(groups)))
    uids = [u.uid for u in users]
    duplicate = next((u for u in users if uids.count(u.uid) > 1), None)
    if duplicate:
        raise AccountError("users", f"uid {duplicate.uid} is given to more than one user")
    return tuple(sorted(users, key=lambda u: u.name))


def parse_groups(raw: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    groups = tuple(
        sorted((_check_name("groups", n, "group"), _check_id("groups", g, f"the gid of {n!r}")) for n, g in raw.items())
    )
    gids = [g for _, g in groups]
    if len(set(gids)) != len(gids):
        raise AccountError("groups", "a gid is given to more than one group")
    return groups


def all_groups(users: tuple[User, ...], groups: tuple[tuple[str, int], ...]) -> dict[str, int]:
    """Declared groups, plus a primary group named after each user whose gid has none."""
    table = dict(groups)
    taken = set(table.values())
    for user in users:
        if user.gid not in taken and user.name not in table:
            table[user.name] = user.gid
            taken.add(user.gid)
    for user in users:
        for g in user.groups:
            if g not in table and g not in RESERVED:
                raise AccountError(
                    "users", f"user {user.name!r} is in group {g!r}, which is not declared; add it to `groups`"
                )
    return table


def parse_directories(raw: Mapping[str, Any]) -> tuple[DirectorySpec, ...]:
    """`{"/data": "app"}` or `{"/data": {"owner": "app", "group": "app", "mode": "0750"}}`."""
    dirs = []
    for path, spec in raw.items():
        path = check_image_path(path, "directories") if isinstance(path, str) else path
        spec = {"owner": spec} if isinstance(spec, (str, int)) and not isinstance(spec, bool) else spec
        if not isinstance(spec, Mapping) or set(spec) - _DIR_KEYS:
            raise AccountError(
                "directories", f"{path!r} must map to an owner or a dict with keys {sorted(_DIR_KEYS)}, not {spec!r}"
            )
        mode = spec.get("mode", "0755")
        try:
            mode_value = int(mode, 8) if isinstance(mode, str) else int(mode)
        except ValueError:
            mode_value = -1
        if isinstance(mode, bool) or not 0 <= mode_value <= 0o1777:
            raise AccountError(
                "directories",
                f"the mode of {path!r} must be an octal string such as '0750' (sticky bit allowed, no setuid/setgid), "
                f"not {mode!r}",
            )
        group = spec.get("group")
        dirs.append(
            DirectorySpec(path, str(spec.get("owner", "root")), None if group is None else str(group), mode_value)
        )
    return tuple(sorted(dirs, key=lambda d: d.path))


def resolve_owner(
    owner: str, group: str | None, users: tuple[User, ...], groups: Mapping[str, int], field: str
) -> tuple[int, int]:
    """(uid, gid) of `owner[:group]`, by name or number."""
    by_name = {u.name: u for u in users}
    if owner == "root":
        uid, primary = 0, 0
    elif owner.isdigit():
        uid = int(owner)
        primary = next((u.gid for u in users if u.uid == uid), uid)
    elif owner in by_name:
        uid, primary = by_name[owner].uid, by_name[owner].gid
    else:
        known = ", ".join(["root", *sorted(by_name)])
        raise AccountError(
            field, f"user {owner!r} is not declared (known users: {known}); add it to `users` or use a uid"
        )
    if group is None:
        return uid, primary
    if group.isdigit():
        return uid, int(group)
    gid = {**groups, "root": 0, "nogroup": 65534}.get(group)
    if gid is None:
        known = ", ".join(sorted({"root", *groups}))
        raise AccountError(
            field, f"group {group!r} is not declared (known groups: {known}); add it to `groups` or use a gid"
        )
    return uid, gid
