"""What the before/after benchmarks share: the repository at a revision, a timed Pants run whose
exit code is checked, and the before/after table and JSON they end with."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def pants(workspace: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["./pants", "--no-dynamic-ui", *args], cwd=workspace, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pants {' '.join(args)} failed in {workspace}:\n{proc.stderr[-4000:]}")
    return elapsed


def checkout(rev: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def report(title: str, results: dict, rows: tuple[tuple[str, str], ...], prefix: str) -> Path:
    """Print `results["before"]` and `results["after"]` side by side, write all of `results` as
    JSON to build-support/bench/results/, and return its path."""
    width = max(len(label) for _, label in rows) + 2
    print(f"\n{title}")
    print(f"  {'':<{width}} {'before':>9} {'after':>9}")
    for key, label in rows:
        print(f"  {label:<{width}} {results['before'][key]:8.2f}s {results['after'][key]:8.2f}s")
    out_dir = REPO / "build-support/bench/results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{prefix}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"\nwrote {out}")
    return out
