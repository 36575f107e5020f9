from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pants_backend_nix_docker.oci.image_checks import (
    CheckSpecError,
    CommandCheck,
    FileFacts,
    ImageCheckSpec,
    Outcome,
    ServiceProbe,
    judge_command,
    judge_config,
    judge_file,
    judge_setuid,
    judge_store_paths,
    judge_user,
    junit_xml,
    parse_commands,
    parse_config,
    parse_files,
    parse_service,
    summary,
)

CONFIG = {
    "config": {
        "Entrypoint": ["/app/app.pex"],
        "Env": ["PATH=/bin", "PORT=8080"],
        "User": "app",
        "WorkingDir": "/data",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"team": "core"},
    }
}


def test_commands_parse_with_defaults_and_a_name() -> None:
    (check,) = parse_commands([{"argv": ["/bin/hello"], "stdout_contains": "Hello", "user": "1000:1000"}])
    assert check.name == "/bin/hello" and check.exit_code == 0 and check.timeout == 60
    assert check.stdout.contains == "Hello" and check.stderr.contains is None
    assert check.user == "1000:1000"


@pytest.mark.parametrize(
    "value, words",
    [
        ("hello", "must be a list"),
        ([{"argv": "/bin/sh"}], "`argv` is a list of strings"),
        ([{"argv": ["x"], "stdout_has": "y"}], "unknown keys \\['stdout_has'\\]"),
        ([{"argv": ["x"], "user": "app"}], "'UID' or 'UID:GID'"),
        ([{"argv": ["x"], "stdout_matches": "("}], "not a regex"),
        ([{"argv": ["x"], "exit_code": "0"}], "`exit_code` must be an integer"),
    ],
)
def test_bad_commands(value: Any, words: str) -> None:
    with pytest.raises(CheckSpecError, match=words) as caught:
        parse_commands(value)
    assert caught.value.field == "commands"


def test_files_parse_modes_and_refuse_facts_of_absent_files() -> None:
    (check,) = parse_files([{"path": "/data/", "type": "directory", "mode": "0750", "owner": "1000:1000"}])
    assert (check.path, check.mode, check.owner) == ("/data", 0o750, "1000:1000")
    with pytest.raises(CheckSpecError, match="an absent file has no mode"):
        parse_files([{"path": "/x", "exists": False, "mode": "0644"}])
    with pytest.raises(CheckSpecError, match="`type` is one of"):
        parse_files([{"path": "/x", "type": "fifo"}])
    with pytest.raises(CheckSpecError, match="absolute"):
        parse_files([{"path": "x"}])


def test_config_and_service_parse() -> None:
    assert parse_config({"user": "app", "exposed_ports": ["8080/tcp"]}) == (
        ("exposed_ports", ["8080/tcp"]),
        ("user", "app"),
    )
    with pytest.raises(CheckSpecError, match="unknown keys"):
        parse_config({"User": "app"})
    assert parse_service({"port": 8080, "http_path": "/"}) == ServiceProbe(8080, "/")
    with pytest.raises(CheckSpecError, match="needs `http_path`"):
        parse_service({"port": 8080, "body_contains": "x"})
    with pytest.raises(CheckSpecError, match="TCP port"):
        parse_service({"port": 0})


def test_a_spec_survives_its_json() -> None:
    spec = ImageCheckSpec(
        commands=parse_commands([{"argv": ["a"], "env": {"K": "V"}, "stderr_matches": "^$"}]),
        files=parse_files([{"path": "/etc/passwd", "contains": "app:x:1000"}]),
        config=parse_config({"env": {"PORT": "8080"}}),
        service=parse_service({"port": 8080, "http_path": "/", "body_contains": "hello"}),
        forbidden_store_paths=("*-gcc-*",),
        allow_root=True,
        allow_setuid=True,
    )
    assert ImageCheckSpec.from_json(spec.to_json()) == spec


def test_commands_are_judged_on_exit_code_and_streams() -> None:
    check = parse_commands([{"argv": ["x"], "stdout": "Hello, world!", "stderr_matches": "^$"}])[0]
    assert judge_command(check, 0, "Hello, world!\n", "").passed
    failed = judge_command(check, 2, "Hi\n", "oops")
    assert failed.problems == (
        "exit code should be 0, was 2",
        "stdout should be 'Hello, world!', was 'Hi\\n'",
        "stderr should match /^$/, was 'oops'",
    )
    assert "Hi" in failed.output
    assert judge_command(check, None, "", "").problems[0] == "did not finish within 60 s"


def test_files_are_judged() -> None:
    data = FileFacts("directory", 0o40750, 1000, 1000)
    check = parse_files([{"path": "/data", "type": "directory", "mode": "0750", "owner": "1000:1000"}])[0]
    assert judge_file(check, data).passed
    assert judge_file(check, FileFacts("directory", 0o755, 0, 0)).problems == (
        "mode should be 0750, is 0755",
        "owner should be 1000:1000, is 0:0",
    )
    assert judge_file(check, None).problems == ("should exist, is absent",)
    link = parse_files([{"path": "/bin/sh", "type": "symlink", "target": "busybox"}])[0]
    assert judge_file(link, FileFacts("symlink", 0o777, 0, 0, "/nix/store/x")).problems == (
        "should point to 'busybox', points to '/nix/store/x'",
    )
    absent = parse_files([{"path": "/root/.ssh", "exists": False}])[0]
    assert judge_file(absent, None).passed and not judge_file(absent, data).passed
    contains = parse_files([{"path": "/etc/passwd", "contains": "app:x:1000"}])[0]
    assert judge_file(contains, FileFacts("file", 0o644, 0, 0, content=b"app:x:1000:1000::/home/app:")).passed


def test_config_is_judged_entry_by_entry() -> None:
    expected = parse_config(
        {"entrypoint": ["/app/app.pex"], "env": {"PORT": "8080"}, "exposed_ports": ["8080/tcp"], "user": "root"}
    )
    outcomes = {o.name: o.problems for o in judge_config(CONFIG, expected)}
    assert outcomes == {
        "config entrypoint": (),
        "config env": (),
        "config exposed_ports": (),
        "config user": ("user should be 'root', is 'app'",),
    }


def test_forbidden_store_paths_and_root() -> None:
    paths = ["/nix/store/abc-python3-3.11", "/nix/store/def-gcc-12.2.0"]
    (ok, bad) = judge_store_paths(paths, ["*-perl-*", "*-gcc-*"])
    assert ok.passed and bad.problems == ("the image holds /nix/store/def-gcc-12.2.0",)
    assert judge_user(CONFIG, (), allow_root=False).passed
    assert not judge_user({"config": {}}, (), allow_root=False).passed
    as_root = CommandCheck("x", ("x",), user="0")
    assert judge_user(CONFIG, (as_root,), allow_root=False).problems == ("command x runs as 0",)
    assert judge_user({"config": {"User": "0:0"}}, (), allow_root=True).passed


def test_junit_has_a_case_per_check_and_the_failure_says_what_was_seen() -> None:
    outcomes = [Outcome("config user"), Outcome("command hello", ("exit code should be 0, was 1",), "stdout:\nno\n")]
    suite = ET.fromstring(junit_xml("examples/hello:image_test", outcomes))
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and failure.get("message") == "exit code should be 0, was 1"
    assert "no" in (failure.text or "")
    text = summary("examples/hello:image_test", outcomes)
    assert "✕ command hello" in text and "1 passed, 1 failed" in text


def test_setuid_files_are_refused_unless_allowed() -> None:
    files = {"/bin/su": FileFacts("file", 0o104755, 0, 0), "/bin/sh": FileFacts("file", 0o100755, 0, 0)}
    assert judge_setuid(files, allow=False).problems == ("setuid or setgid: /bin/su",)
    assert judge_setuid(files, allow=True).passed
    assert judge_setuid({"/tmp": FileFacts("directory", 0o41777, 0, 0)}, allow=False).passed
