"""Runs Pants in this process, as the virtualenv's `pants` script does, and explains one failure.

When pip inside pex cannot download a locked artifact, Pants shows pex's last words, which can be
a bare "AssertionError" or a wall of retries. A run that failed that way gets a short paragraph
naming what to check. Pants runs in this very process (no wrapper process), so signals, the
terminal and stdin behave exactly as with the plain `pants` script.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

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


def main() -> None:
    # Whole seconds: a log's mtime can round below the float start time on some filesystems.
    started = float(int(time.time()))
    from pants.bin.pants_loader import main as pants_main

    sys.argv[0] = str(Path(sys.executable).with_name("pants"))
    try:
        pants_main()
    except SystemExit as exit:
        if exit.code not in (0, None) and failed_downloading(BUILDROOT / ".pants.d", started):
            print(ADVICE, file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
