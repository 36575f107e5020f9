"""What the end-to-end tests and the benchmark share: a scratch copy of the repo, and a reading
of which layer processes really ran in a Pants run."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

# The repository's own top-level entries; anything else beside them (Pants' test plumbing, results)
# stays behind.
TOP_LEVEL = ("pants", "pants.toml", "BUILD", "3rdparty", "build-support", "examples", "src")

_EXECUTED = re.compile(r"Preserving local process execution dir `?(\S+?)`? for \"?([^\n\"]*)")


def copy_repo(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in TOP_LEVEL:
        entry = source / name
        if entry.is_dir():
            shutil.copytree(entry, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(entry, dest / name)


def executed_processes(stderr: str, prefix: str = "") -> Counter:
    """Processes whose description starts with `prefix` that really executed (not cache hits) in a
    run with `--keep-sandboxes=always`: Pants names each one's kept sandbox. The sandboxes of all
    processes are deleted."""
    found: Counter = Counter()
    for sandbox, description in _EXECUTED.findall(stderr):
        if description.startswith(prefix):
            found[description.strip()] += 1
        shutil.rmtree(sandbox, ignore_errors=True)
    return found


def executed_layer_processes(stderr: str) -> Counter:
    return executed_processes(stderr, "Building layer")
