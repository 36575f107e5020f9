from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from run_pants import PluginsOnDemand, is_download_failure, resolve_plugins_on_demand

DOWNLOAD_FAILED = """\
01:51:38.06 [INFO] Starting: Building nix_docker_layer_tool.pex from resource://x/layer_tool.lock
01:51:46.98 [ERROR] 1 Exception encountered:

Engine traceback:
  in `package` goal

ProcessExecutionFailure: Process 'Building tool.pex from resource://x/tool.lock' failed with exit code 1.
stdout:

stderr:
There were 2 errors downloading required artifacts:
1. isal 1.9.1 from https://files.pythonhosted.org/packages/isal-1.9.1-cp39-cp39-manylinux.whl
    AssertionError
"""

BUILD_FAILED = """\
01:51:46.98 [ERROR] 1 Exception encountered:

Engine traceback:
  in `package` goal

ProcessExecutionFailure: Process 'Building layer 3 of examples/hello:image' failed with exit code 1.
stderr:
nix-store: path '/nix/store/abc-hello' is not valid
"""

# A failed test quoting another Pants run's download failure: pytest indents it under "E".
TEST_QUOTES_ONE = """\
01:58:45.17 [ERROR] Completed: Run Pytest - tests/x_integration_test.py:tests - failed (exit code 1).
E       AssertionError: pants failed (1):
E         01:55:02.04 [ERROR] 1 Exception encountered:
E         ProcessExecutionFailure: Process 'Building pex' failed with exit code 1.
E         WARNING: Retrying after connection broken by 'SSLError(CERTIFICATE_VERIFY_FAILED)'
"""


def test_a_failed_download_is_recognised() -> None:
    assert is_download_failure(DOWNLOAD_FAILED)
    assert is_download_failure(DOWNLOAD_FAILED.replace("AssertionError", "[SSL: CERTIFICATE_VERIFY_FAILED]"))


def test_other_failures_are_not() -> None:
    assert not is_download_failure(BUILD_FAILED)
    assert not is_download_failure(TEST_QUOTES_ONE)
    assert not is_download_failure("")


def test_only_the_last_engine_error_counts() -> None:
    assert not is_download_failure(DOWNLOAD_FAILED + BUILD_FAILED)
    assert is_download_failure(BUILD_FAILED + DOWNLOAD_FAILED)


class FakeGlobalOptions:
    def __init__(self, plugins: list[str]) -> None:
        self.plugins = plugins


class FakeBootstrapper:
    """What `PluginsOnDemand` reads of Pants' `OptionsBootstrapper`: the global `plugins`."""

    def __init__(self, plugins: list[str]) -> None:
        self.bootstrap_options = self
        self._global = FakeGlobalOptions(plugins)

    def for_global_scope(self) -> FakeGlobalOptions:
        return self._global


class RecordingResolver:
    def __init__(self) -> None:
        self.resolved: list[object] = []

    def resolve(self, options_bootstrapper: object, env: object) -> str:
        self.resolved.append(options_bootstrapper)
        return "plugins' working set"


def test_no_plugins_builds_no_plugin_engine() -> None:
    from pants.init.plugin_resolver import global_working_set

    built: list[tuple[Any, ...]] = []
    on_demand = PluginsOnDemand("bootstrapper", "executor", lambda *args: built.append(args))
    assert on_demand.resolve(FakeBootstrapper([]), env={}) is global_working_set
    assert built == []


def test_named_plugins_build_the_engine_once_and_resolve_through_it() -> None:
    resolver = RecordingResolver()
    built: list[tuple[object, object]] = []

    def build(options_bootstrapper: object, executor: object) -> RecordingResolver:
        built.append((options_bootstrapper, executor))
        return resolver

    on_demand = PluginsOnDemand("bootstrapper", "executor", build)
    with_plugins = FakeBootstrapper(["acme-pants-plugin==1.0"])
    assert on_demand.resolve(with_plugins, env={}) == "plugins' working set"
    assert on_demand.resolve(with_plugins, env={}) == "plugins' working set"
    assert built == [("bootstrapper", "executor")]
    assert resolver.resolved == [with_plugins, with_plugins]


def test_pants_options_initializer_no_longer_builds_an_engine_up_front(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pants.init import options_initializer
    from pants.option.options_bootstrapper import OptionsBootstrapper

    monkeypatch.setattr(
        options_initializer.OptionsInitializer, "__init__", options_initializer.OptionsInitializer.__init__
    )
    built: list[object] = []
    monkeypatch.setattr(options_initializer, "create_bootstrap_scheduler", lambda *args: built.append(args))
    resolve_plugins_on_demand()

    (tmp_path / "pants.toml").touch()
    monkeypatch.chdir(tmp_path)
    bootstrapper = OptionsBootstrapper.create(env={}, args=["pants", "--pants-config-files=[]"], allow_pantsrc=False)
    initializer = options_initializer.OptionsInitializer(bootstrapper, executor=None)  # type: ignore[arg-type]
    assert built == []
    assert isinstance(initializer._plugin_resolver, PluginsOnDemand)
