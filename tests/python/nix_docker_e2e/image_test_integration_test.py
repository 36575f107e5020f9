"""Issue #18: `pants test` of `nix_docker_image_test` targets, through ./pants in a scratch copy."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest

from nix_docker_e2e.harness import Repo

APP_TEST = "examples/python-app:image_test"
HELLO_TEST = "examples/hello:image_test"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Iterator[Repo]:
    repo = Repo.copy_to(tmp_path_factory.mktemp("image-test") / "repo")
    yield repo
    repo.stop_pantsd()


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("caches")


def test_image_tests_pass_report_junit_and_are_cached(repo: Repo, caches: Path) -> None:
    started = time.monotonic()
    first = repo.pants(
        "test", "--test-report", "--test-report-dir=reports", APP_TEST, HELLO_TEST, caches=caches, pantsd=True
    ).assert_success()
    cold = time.monotonic() - started
    assert f"✓ {APP_TEST} succeeded" in first.stderr and f"✓ {HELLO_TEST} succeeded" in first.stderr

    # Each check is a test case of the JUnit report.
    (report,) = (repo.root / "reports").glob("examples.python-app*image_test*.xml")
    suite = ET.parse(report).getroot()
    cases = {case.get("name") for case in suite.iter("testcase")}
    assert {"service answers on http://127.0.0.1:8080/", "command runs as uid 1000", "file /data"} <= cases
    assert suite.get("failures") == "0" and int(suite.get("tests") or 0) >= 10

    started = time.monotonic()
    again = repo.pants("test", APP_TEST, caches=caches, pantsd=True).assert_success()
    cached = time.monotonic() - started
    assert f"✓ {APP_TEST} succeeded" in again.stderr and "(memoized)" in again.stderr
    print(f"FIGURE: image test: python-app's {len(cases)} checks {cold:.1f} s from empty caches (with hello's), "
          f"{cached:.1f} s again (memoized, pantsd warm)")  # fmt: skip


def test_a_failing_check_shows_what_was_expected_and_seen(repo: Repo, caches: Path) -> None:
    build = repo.root / "examples/hello/BUILD"
    original = build.read_text()
    try:
        build.write_text(original.replace("Hello from a Nix closure", "Bonjour from a Nix closure"))
        failed = repo.pants("test", HELLO_TEST, caches=caches, pantsd=True)
    finally:
        build.write_text(original)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert f"✕ {HELLO_TEST} failed" in said
    assert "stdout should be 'Bonjour from a Nix closure in a reproducible OCI image!'" in said
    assert "was 'Hello from a Nix closure in a reproducible OCI image!\\n'" in said


def test_an_app_change_tests_the_image_again(repo: Repo, caches: Path) -> None:
    server = repo.root / "examples/python-app/src/hello_service/server.py"
    original = server.read_text()
    try:
        server.write_text(original + "\n# a change of the app only\n")
        result = repo.pants("test", APP_TEST, caches=caches, pantsd=True).assert_success()
    finally:
        server.write_text(original)
    assert f"✓ {APP_TEST} succeeded" in result.stderr
    assert "(memoized)" not in result.stderr and "(cached" not in result.stderr
