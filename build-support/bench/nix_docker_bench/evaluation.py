"""The evaluation benchmark (issue 13): a no-op `pants package` of 10 images whose packages come
from one slow-to-evaluate `.nix` set, before and after evaluations were kept, in one run.

    build-support/bench/evaluation [--before REV] [--size N] [--repeat K]

A synthetic package set stands in for nixpkgs: 200 files importing a shared library whose
evaluation costs about 2 s (`--size` sets it; the run reports what one evaluation really took),
and 10 images each taking its own attribute. For the repository at `--before` (default: the commit
before this change) and for the working tree, in scratch copies, it measures:

- the first build of the 10 images (realising the derivations once);
- the no-op rebuild with pantsd warm (median of `--repeat`);
- the no-op rebuild without pantsd (a fresh Pants process, median of `--repeat`).

Every Pants run's exit code is checked. Results go to build-support/bench/results/.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from nix_docker_bench.before_after import REPO, checkout, pants, report
from nix_docker_bench.workspace import copy_repo

IMAGES = 10
PACKAGES = 200
HERE = "bench/evaluation"


def write_package_set(root: Path, size: int, salt: str) -> None:
    """`default.nix` with attributes app0..app9, each a chain of packages from `pkgs/`, all of
    which import `lib.nix`, whose `work` (size x size additions) every derivation needs."""
    (root / "pkgs").mkdir(parents=True)
    (root / "lib.nix").write_text(
        "rec {\n"
        f"  work = builtins.foldl' (a: i: a + builtins.foldl' (b: j: b + i * j) 0 (builtins.genList (j: j) {size}))"
        f" 0 (builtins.genList (i: i) {size});\n"
        "  mk = name: deps: derivation {\n"
        '    inherit name; system = builtins.currentSystem; builder = "/bin/sh";\n'
        f'    args = [ "-c" "echo ${{name}} ${{toString work}} {salt} ${{toString (map (d: d.name) deps)}} > $out" ];\n'
        "  };\n}\n"
    )
    for i in range(PACKAGES):
        deps = f"(import ./p{i - 1:03d}.nix)" if i else ""
        (root / "pkgs" / f"p{i:03d}.nix").write_text(f'let lib = import ../lib.nix; in lib.mk "p{i:03d}" [ {deps} ]\n')
    (root / "default.nix").write_text(
        "{\n" + "".join(f"  app{j} = import ./pkgs/p{PACKAGES - 1 - j:03d}.nix;\n" for j in range(IMAGES)) + "}\n"
    )
    (root / "BUILD").write_text(
        "nix_sources(sources=['*.nix', 'pkgs/*.nix'])\n"
        + "".join(f'nix_docker_image(name="app{j}", packages=["default.nix#app{j}"])\n' for j in range(IMAGES))
    )


def one_evaluation_s(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["nix-instantiate", str(root / "default.nix"), "-A", "app0"], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(workspace: Path, repeat: int) -> dict:
    images = [f"{HERE}:app{j}" for j in range(IMAGES)]
    try:
        first = pants(workspace, "package", *images)
        warm = [pants(workspace, "package", *images) for _ in range(repeat)]
    finally:
        subprocess.run(["./pants", "kill-pantsd"], cwd=workspace, capture_output=True)
    cold = [pants(workspace, "--no-pantsd", "package", *images) for _ in range(repeat)]
    return {
        "first_s": first,
        "noop_pantsd_s": statistics.median(warm),
        "noop_no_pantsd_s": statistics.median(cold),
        "noop_pantsd_runs": warm,
        "noop_no_pantsd_runs": cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="e60ecf6", help="the commit to compare with (default: before issue 13)")
    parser.add_argument("--size", type=int, default=3700, help="size of the set's shared work (3700: about 2 s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    salt = str(time.time_ns())
    results: dict = {"before": args.before, "images": IMAGES, "size": args.size}
    with tempfile.TemporaryDirectory(prefix="nix-docker-eval-bench-") as tmp:
        before, after = Path(tmp) / "before", Path(tmp) / "after"
        checkout(args.before, before)
        copy_repo(REPO, after)
        for workspace in (before, after):
            write_package_set(workspace / HERE, args.size, salt)
        results["one_evaluation_s"] = one_evaluation_s(after / HERE)
        print(f"one evaluation of the synthetic set: {results['one_evaluation_s']:.2f} s")
        for name, workspace in (("before", before), ("after", after)):
            print(f"measuring {name} ({args.before if name == 'before' else 'working tree'})")
            results[name] = measure(workspace, args.repeat)

    report(
        f"10 images, one evaluation {results['one_evaluation_s']:.2f} s; medians of {args.repeat} runs",
        results,
        (
            ("first_s", "first build"),
            ("noop_pantsd_s", "no-op package, pantsd warm"),
            ("noop_no_pantsd_s", "no-op package, no pantsd"),
        ),
        "evaluation",
    )


if __name__ == "__main__":
    main()
