"""What a `nix_docker_image_test` checks, and how each check is judged (pure).

The BUILD file declares checks as plain values (lists of dicts, a dict); `parse_*` turns them into
the typed specs below or raises `CheckSpecError` naming the field, the entry and the fix. The
image tool runs them (`image_check_runner.py`) and judges what it saw with the `judge_*`
functions, each of which returns one `Outcome`: a JUnit test case.
"""

from __future__ import annotations

import fnmatch
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Sequence

_STREAM_KEYS = ("", "_contains", "_matches")
COMMAND_KEYS = frozenset(
    {"name", "argv", "exit_code", "env", "user", "timeout"}
    | {f"{s}{k}" for s in ("stdout", "stderr") for k in _STREAM_KEYS}
)
FILE_KEYS = frozenset({"path", "exists", "type", "target", "mode", "owner", "contains"})
FILE_TYPES = ("file", "directory", "symlink")
CONFIG_KEYS = frozenset({"entrypoint", "cmd", "env", "user", "working_dir", "exposed_ports", "labels"})
SERVICE_KEYS = frozenset({"port", "http_path", "status", "body_contains", "timeout"})


class CheckSpecError(ValueError):
    def __init__(self, field_alias: str, message: str) -> None:
        super().__init__(message)
        self.field = field_alias


def _require(ok: bool, field_alias: str, message: str) -> None:
    if not ok:
        raise CheckSpecError(field_alias, message)


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _string_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _known_keys(entry: Any, keys: frozenset[str], field_alias: str, what: str) -> None:
    _require(isinstance(entry, Mapping), field_alias, f"{what} must be a dict, not {entry!r}")
    unknown = sorted(set(entry) - keys)
    _require(not unknown, field_alias, f"{what} has unknown keys {unknown} (valid: {', '.join(sorted(keys))})")


def _entries(value: Any, keys: frozenset[str], field_alias: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """("entry N", the dict) of a list-of-dicts field, each with only known keys."""
    _require(isinstance(value, (list, tuple)), field_alias, f"must be a list of dicts, not {value!r}")
    for n, entry in enumerate(value):
        _known_keys(entry, keys, field_alias, f"entry {n}")
        yield f"entry {n}", entry


@dataclass(frozen=True)
class StreamExpectation:
    equals: str | None = None
    contains: str | None = None
    matches: str | None = None  # a regex searched in the stream

    def problems(self, stream: str, seen: str) -> list[str]:
        found = []
        if self.equals is not None and seen.rstrip("\n") != self.equals.rstrip("\n"):
            found.append(f"{stream} should be {self.equals!r}, was {seen!r}")
        if self.contains is not None and self.contains not in seen:
            found.append(f"{stream} should contain {self.contains!r}, was {seen!r}")
        if self.matches is not None and not re.search(self.matches, seen):
            found.append(f"{stream} should match /{self.matches}/, was {seen!r}")
        return found


@dataclass(frozen=True)
class CommandCheck:
    name: str
    argv: tuple[str, ...]  # empty: the image's own entrypoint and cmd
    exit_code: int = 0
    stdout: StreamExpectation = StreamExpectation()
    stderr: StreamExpectation = StreamExpectation()
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None  # "UID[:GID]"
    timeout: int = 60


@dataclass(frozen=True)
class FileCheck:
    path: str
    exists: bool = True
    type: str | None = None
    target: str | None = None  # a symlink's target
    mode: int | None = None  # permission bits
    owner: str | None = None  # "UID:GID"
    contains: str | None = None

    @property
    def name(self) -> str:
        return f"file {self.path}"


@dataclass(frozen=True)
class ServiceProbe:
    port: int
    http_path: str | None = None
    status: int = 200
    body_contains: str | None = None
    timeout: int = 30

    @property
    def name(self) -> str:
        where = f"http://127.0.0.1:{self.port}{self.http_path}" if self.http_path else f"tcp port {self.port}"
        return f"service answers on {where}"


@dataclass(frozen=True)
class ImageCheckSpec:
    commands: tuple[CommandCheck, ...] = ()
    files: tuple[FileCheck, ...] = ()
    config: tuple[tuple[str, Any], ...] = ()  # sorted (key, expected) pairs of the image config
    service: ServiceProbe | None = None
    forbidden_store_paths: tuple[str, ...] = ()
    allow_root: bool = False
    allow_setuid: bool = False

    @property
    def needs_runtime(self) -> bool:
        return bool(self.commands or self.service)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ImageCheckSpec":
        def command(c: Mapping[str, Any]) -> CommandCheck:
            return CommandCheck(
                name=c["name"],
                argv=tuple(c["argv"]),
                exit_code=c["exit_code"],
                stdout=StreamExpectation(**c["stdout"]),
                stderr=StreamExpectation(**c["stderr"]),
                env=tuple((k, v) for k, v in c["env"]),
                user=c["user"],
                timeout=c["timeout"],
            )

        return cls(
            commands=tuple(command(c) for c in data["commands"]),
            files=tuple(FileCheck(**f) for f in data["files"]),
            config=tuple((k, v) for k, v in data["config"]),
            service=ServiceProbe(**data["service"]) if data["service"] else None,
            forbidden_store_paths=tuple(data["forbidden_store_paths"]),
            allow_root=data["allow_root"],
            allow_setuid=data["allow_setuid"],
        )


def parse_commands(value: Any, field_alias: str = "commands") -> tuple[CommandCheck, ...]:
    checks = []
    for what, entry in _entries(value, COMMAND_KEYS, field_alias):
        argv = entry.get("argv", [])
        _require(_strings(argv), field_alias, f"{what}: `argv` is a list of strings (none: the image's own command)")
        for key in ("exit_code", "timeout"):
            _require(isinstance(entry.get(key, 0), int), field_alias, f"{what}: `{key}` must be an integer")
        _require(_string_map(entry.get("env", {})), field_alias, f"{what}: `env` must map names to strings")
        user = entry.get("user")
        _require(
            user is None or (isinstance(user, str) and re.fullmatch(r"\d+(:\d+)?", user) is not None),
            field_alias,
            f"{what}: `user` must be 'UID' or 'UID:GID' in digits, like '1000:1000', not {user!r}",
        )
        streams = {}
        for stream in ("stdout", "stderr"):
            values = {k: entry.get(f"{stream}{k}") for k in _STREAM_KEYS}
            for key, text in values.items():
                _require(
                    text is None or isinstance(text, str), field_alias, f"{what}: `{stream}{key}` must be a string"
                )
            if values["_matches"] is not None:
                try:
                    re.compile(values["_matches"])
                except re.error as e:
                    raise CheckSpecError(field_alias, f"{what}: `{stream}_matches` is not a regex: {e}")
            streams[stream] = StreamExpectation(values[""], values["_contains"], values["_matches"])
        checks.append(
            CommandCheck(
                name=str(entry.get("name") or " ".join(argv) or "the image's entrypoint"),
                argv=tuple(argv),
                exit_code=entry.get("exit_code", 0),
                stdout=streams["stdout"],
                stderr=streams["stderr"],
                env=tuple(sorted(entry.get("env", {}).items())),
                user=user,
                timeout=entry.get("timeout", 60),
            )
        )
    return tuple(checks)


def parse_files(value: Any, field_alias: str = "files") -> tuple[FileCheck, ...]:
    checks = []
    for what, entry in _entries(value, FILE_KEYS, field_alias):
        path: Any = entry.get("path")
        _require(isinstance(path, str) and path.startswith("/"), field_alias, f"{what} needs `path`, absolute")
        kind = entry.get("type")
        _require(kind is None or kind in FILE_TYPES, field_alias, f"{what}: `type` is one of {', '.join(FILE_TYPES)}")
        mode = entry.get("mode")
        if isinstance(mode, str):
            _require(re.fullmatch(r"0?[0-7]{3,4}", mode) is not None, field_alias, f"{what}: `mode` like '0755'")
            mode = int(mode, 8)
        _require(mode is None or isinstance(mode, int), field_alias, f"{what}: `mode` like '0755'")
        owner = entry.get("owner")
        _require(
            owner is None or (isinstance(owner, str) and re.fullmatch(r"\d+:\d+", owner) is not None),
            field_alias,
            f"{what}: `owner` is 'UID:GID' in digits, like '1000:1000', not {owner!r}",
        )
        exists = entry.get("exists", True)
        _require(isinstance(exists, bool), field_alias, f"{what}: `exists` is True or False")
        facts = [k for k in ("type", "target", "mode", "owner", "contains") if entry.get(k) is not None]
        _require(exists or not facts, field_alias, f"{what}: an absent file has no {', '.join(facts)}")
        checks.append(
            FileCheck(path.rstrip("/") or "/", exists, kind, entry.get("target"), mode, owner, entry.get("contains"))
        )
    return tuple(checks)


def parse_config(value: Any, field_alias: str = "config") -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    _known_keys(value, CONFIG_KEYS, field_alias, "it")
    for key in ("entrypoint", "cmd", "exposed_ports"):
        _require(key not in value or _strings(value[key]), field_alias, f"`{key}` must be a list of strings")
    for key in ("env", "labels"):
        _require(key not in value or _string_map(value[key]), field_alias, f"`{key}` must map names to strings")
    for key in ("user", "working_dir"):
        _require(key not in value or isinstance(value[key], str), field_alias, f"`{key}` must be a string")
    return tuple(sorted((k, list(v) if isinstance(v, (list, tuple)) else v) for k, v in value.items()))


def parse_service(value: Any, field_alias: str = "service") -> ServiceProbe | None:
    if value is None:
        return None
    _known_keys(value, SERVICE_KEYS, field_alias, "it")
    port = value.get("port")
    _require(isinstance(port, int) and 0 < port < 65536, field_alias, "needs `port`, a TCP port like 8080")
    path = value.get("http_path")
    _require(path is None or (isinstance(path, str) and path.startswith("/")), field_alias, "`http_path` starts with /")
    _require(isinstance(value.get("status", 200), int), field_alias, "`status` is an HTTP status like 200")
    _require(isinstance(value.get("timeout", 30), int), field_alias, "`timeout` is seconds")
    body = value.get("body_contains")
    _require(
        body is None or (isinstance(body, str) and path is not None), field_alias, "`body_contains` needs `http_path`"
    )
    return ServiceProbe(port, path, value.get("status", 200), body, value.get("timeout", 30))


@dataclass(frozen=True)
class Outcome:
    name: str
    problems: tuple[str, ...] = ()
    output: str = ""  # what the check saw, shown with a failure
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class FileFacts:
    """A path of the image's root filesystem, after every layer (whiteouts applied)."""

    type: str  # file, directory, symlink, other
    mode: int
    uid: int
    gid: int
    target: str = ""
    content: bytes | None = None  # only read for `contains` checks


def judge_command(check: CommandCheck, exit_code: int | None, stdout: str, stderr: str) -> Outcome:
    problems = []
    if exit_code is None:
        problems.append(f"did not finish within {check.timeout} s")
    elif exit_code != check.exit_code:
        problems.append(f"exit code should be {check.exit_code}, was {exit_code}")
    problems += check.stdout.problems("stdout", stdout) + check.stderr.problems("stderr", stderr)
    return Outcome(f"command {check.name}", tuple(problems), f"stdout:\n{stdout}\nstderr:\n{stderr}")


def judge_file(check: FileCheck, facts: FileFacts | None) -> Outcome:
    if facts is None:
        return Outcome(check.name, () if not check.exists else ("should exist, is absent",))
    if not check.exists:
        return Outcome(check.name, (f"should be absent, is a {facts.type}",))
    problems = []
    if check.type and facts.type != check.type:
        problems.append(f"should be a {check.type}, is a {facts.type}")
    if check.target is not None and facts.target != check.target:
        problems.append(f"should point to {check.target!r}, points to {facts.target!r}")
    if check.mode is not None and facts.mode & 0o7777 != check.mode:
        problems.append(f"mode should be {check.mode:04o}, is {facts.mode & 0o7777:04o}")
    if check.owner is not None and f"{facts.uid}:{facts.gid}" != check.owner:
        problems.append(f"owner should be {check.owner}, is {facts.uid}:{facts.gid}")
    if check.contains is not None and check.contains.encode() not in (facts.content or b""):
        problems.append(f"should contain {check.contains!r}")
    return Outcome(check.name, tuple(problems))


def _config_value(config: Mapping[str, Any], key: str) -> Any:
    c = config.get("config") or {}
    if key == "env":
        return dict(e.split("=", 1) for e in c.get("Env") or [])
    if key == "exposed_ports":
        return sorted(c.get("ExposedPorts") or {})
    names = {"entrypoint": "Entrypoint", "cmd": "Cmd", "user": "User", "working_dir": "WorkingDir", "labels": "Labels"}
    default: Any = {"labels": {}, "entrypoint": [], "cmd": []}.get(key, "")
    return c.get(names[key]) or default


def judge_config(config: Mapping[str, Any], expected: Sequence[tuple[str, Any]]) -> list[Outcome]:
    outcomes = []
    for key, wanted in expected:
        seen = _config_value(config, key)
        if key in ("env", "labels"):  # the entries named must be there; others may be too
            problems = tuple(
                f"{key} {name} should be {value!r}, is {seen.get(name)!r}"
                for name, value in sorted(wanted.items())
                if seen.get(name) != value
            )
        elif key == "exposed_ports":
            problems = () if sorted(wanted) == seen else (f"exposed ports should be {sorted(wanted)}, are {seen}",)
        else:
            problems = () if seen == wanted else (f"{key} should be {wanted!r}, is {seen!r}",)
        outcomes.append(Outcome(f"config {key}", problems))
    return outcomes


def judge_store_paths(store_paths: Sequence[str], forbidden: Sequence[str]) -> list[Outcome]:
    outcomes = []
    for pattern in forbidden:
        found = [
            p for p in store_paths if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern)
        ]
        problems = (f"the image holds {', '.join(found)}",) if found else ()
        outcomes.append(Outcome(f"no store path matches {pattern}", problems))
    return outcomes


def judge_setuid(files: Mapping[str, FileFacts], allow: bool) -> Outcome:
    """No file is setuid or setgid (a way to become root inside the container)."""
    if allow:
        return Outcome("no setuid or setgid file (allowed: allow_setuid=True)")
    found = sorted(p for p, f in files.items() if f.type == "file" and f.mode & 0o6000)
    return Outcome("no setuid or setgid file", (f"setuid or setgid: {', '.join(found)}",) if found else ())


def judge_user(config: Mapping[str, Any], commands: Sequence[CommandCheck], allow_root: bool) -> Outcome:
    """Nothing runs as uid 0: not the image's user (empty means root), nor a checked command's."""
    if allow_root:
        return Outcome("runs as a user other than root (allowed: allow_root=True)")
    user = (config.get("config") or {}).get("User") or ""
    name = user.split(":", 1)[0]
    problems = []
    if name in ("", "0", "root"):
        problems.append(f"the image's user is {user or 'unset (root)'!r}: set `user` on the image, or allow_root=True")
    problems += [f"command {c.name} runs as {c.user}" for c in commands if c.user and c.user.split(":")[0] == "0"]
    return Outcome("runs as a user other than root", tuple(problems))


def junit_xml(suite: str, outcomes: Sequence[Outcome]) -> bytes:
    """One test case per check, as Pants' `test --test-report` gathers them."""
    failures = sum(1 for o in outcomes if not o.passed)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(outcomes)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for outcome in outcomes:
        case = ET.SubElement(root, "testcase", classname=suite, name=outcome.name, time=f"{outcome.seconds:.3f}")
        if not outcome.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(outcome.problems))
            failure.text = "\n".join(outcome.problems) + (f"\n\n{outcome.output}" if outcome.output else "")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def summary(suite: str, outcomes: Sequence[Outcome]) -> str:
    """What `pants test` shows: a line per check, and what failed with what was seen."""
    lines = []
    for o in outcomes:
        lines.append(f"{'✓' if o.passed else '✕'} {o.name}")
        lines += [f"    {p}" for p in o.problems]
        if o.problems and o.output:
            lines += [f"    | {line}" for line in o.output.rstrip().splitlines()]
    failed = sum(1 for o in outcomes if not o.passed)
    lines.append(f"{suite}: {len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"
