"""Runs Pants in this process, as the virtualenv's `pants` script does, explains one failure, and
skips a second rule graph that this repository never uses.

When pip inside pex cannot download a locked artifact, Pants shows pex's last words, which can be
a bare "AssertionError" or a wall of retries. A run that failed that way gets a short paragraph
naming what to check. Pants runs in this very process (no wrapper process), so signals, the
terminal and stdin behave exactly as with the plain `pants` script.

./pants starts Pants' native client first, which runs this (through `pants-server`) when no
pantsd can serve the run: a run that pantsd serves gets no advice (the client is not Python).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

BUILDROOT = Path(__file__).resolve().parents[2]

# The engine's own error block, at the start of a line of the run's log. Output of tests that
# ran (which may quote another Pants run's errors) is indented there, so it never matches.
ENGINE_ERROR = re.compile(r"^\d\d:\d\d:\d\d\.\d\d \[ERROR\] \d+ Exceptions? encountered:$", re.MULTILINE)
FAILED_PROCESS = re.compile(r"^ProcessExecutionFailure: Process '.*' failed", re.MULTILINE)
# What pip (through pex) prints when it cannot fetch something, as seen on these machines.
DOWNLOAD_FAILURE = re.compile(
    r"errors? downloading required artifacts"
    r"|CERTIFICATE_VERIFY_FAILED"
    r"|No matching distribution found for"
    r"|Max retries exceeded with url"
    r"|Failed to establish a new connection"
    r"|ProxyError"
)

ADVICE = """\
[./pants] Pants could not download a Python artifact (pip's error and the URL are above). Check:
  - that this machine reaches that host; through a proxy, list HTTPS_PROXY (and HTTP_PROXY) in
    pants.toml's [subprocess-environment] env_vars, since Pants' processes get no environment;
  - TLS through a proxy or a private CA: [GLOBAL].ca_certs_path in pants.toml must name a CA
    bundle that trusts it;
  - a package mirror: name it in [python-repos]. pip's own pip.conf files and PIP_* variables are
    ignored on purpose (see [subprocess-environment] in pants.toml)."""


def run_logs_since(workdir: Path, started: float) -> list[Path]:
    """The per-run logs Pants' run tracker wrote since `started`, newest first."""
    tracker = workdir / "run-tracker"
    if not tracker.is_dir():
        return []
    logs = [p for p in tracker.glob("pants_run_*/logs") if p.stat().st_mtime >= started]
    return sorted(logs, key=lambda p: p.stat().st_mtime, reverse=True)


def is_download_failure(log: str) -> bool:
    """Whether the engine failed because a process could not download what it needed."""
    errors = list(ENGINE_ERROR.finditer(log))
    if not errors:
        return False
    block = log[errors[-1].end() :]
    return bool(FAILED_PROCESS.search(block) and DOWNLOAD_FAILURE.search(block))


def failed_downloading(workdir: Path, started: float) -> bool:
    for log in run_logs_since(workdir, started)[:1]:
        return is_download_failure(log.read_text(errors="replace"))
    return False


class PluginsOnDemand:
    """Stands in for Pants' `PluginResolver`, building the engine it needs only for a run that
    names `[GLOBAL].plugins`.

    Pants 2.17 builds two engines at every start: the real one, and a "bootstrap" one with the
    Python backend's whole rule graph whose only use is resolving `[GLOBAL].plugins`. Solving that
    graph costs about 13 s of CPU on these machines (half of a `--no-pantsd` start; measured with
    `perf`: `rule_graph::builder::monomorphize`), and this repository names no plugins, so every
    start paid for an engine that answered "nothing" (`resolve_plugins` returns early for an empty
    list). With plugins named, this builds the same engine and resolver Pants would have.
    """

    def __init__(self, options_bootstrapper: Any, executor: Any, build_resolver: Callable[[Any, Any], Any]) -> None:
        self._make = lambda: build_resolver(options_bootstrapper, executor)
        self._resolver: Any = None

    def resolve(self, options_bootstrapper: Any, env: Any) -> Any:
        if not options_bootstrapper.bootstrap_options.for_global_scope().plugins:
            from pants.init.plugin_resolver import global_working_set

            # What Pants' own resolver returns when there is nothing to add.
            return global_working_set
        if self._resolver is None:
            self._resolver = self._make()
        return self._resolver.resolve(options_bootstrapper, env)


def resolve_plugins_on_demand() -> None:
    """Makes Pants' `OptionsInitializer` (used by every run and by pantsd) hold a
    `PluginsOnDemand`; the rest of the initializer is Pants' own."""
    from pants.init import options_initializer
    from pants.init.plugin_resolver import PluginResolver

    def build_resolver(options_bootstrapper: Any, executor: Any) -> PluginResolver:
        return PluginResolver(options_initializer.create_bootstrap_scheduler(options_bootstrapper, executor))

    def init(self: Any, options_bootstrapper: Any, executor: Any) -> None:
        self._plugin_resolver = PluginsOnDemand(options_bootstrapper, executor, build_resolver)

    options_initializer.OptionsInitializer.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    # Whole seconds: a log's mtime can round below the float start time on some filesystems.
    started = float(int(time.time()))
    from pants.bin.pants_loader import main as pants_main

    resolve_plugins_on_demand()
    # pantsd is started as `sys.executable sys.argv...`: naming this script there makes the daemon
    # run through it too, and so skip the unused engine as well.
    sys.argv[0] = str(Path(__file__).resolve())
    try:
        pants_main()
    except SystemExit as exit:
        if exit.code not in (0, None) and failed_downloading(BUILDROOT / ".pants.d", started):
            print(ADVICE, file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
