"""The benchmark: Pants-built images against the machine's limit, measured in one run.

    build-support/bench/run [--scale 150mb|1gb] [--skip-remote]

It works in a scratch copy of the repository (its own pantsd), generates seeded synthetic closures
with real Nix (fresh store paths each run, so "cold" is cold), and measures:

- limit: the same bytes read, tarred, hashed and compressed on both cores without Pants, with the
  default codecs and the other candidates for the default gzip (time and bytes of each);
- nixpkgs' stand-in: the closure through `tar | pigz -6 -n` (what `buildLayeredImage` does), and
  `pigz -6`'s bytes for our image's own layer tars;
- cold: one image of the closure, with pantsd warm (tool built), minus a no-op run;
- the stand-in and the cold build in pairs (`--samples`, each pair on a fresh closure, one right
  after the other): this machine's speed drifts by up to 2x over minutes, which moves both
  members of a pair alike, so the ratios are the medians of the pairs' ratios;
- app change: the same image after changing only its app file;
- 20 images: twenty images sharing another fresh closure, built in one run;
- remote hit: a fresh machine (no pantsd, empty local caches, no local cache reads) fetching
  everything from a BuildGrid remote cache; and how many layer processes ran locally;
- layering: bytes of changed layers after bumping one mid-size package, per strategy;
- peak RSS of the layer processes and of pantsd (the 1gb scale shows nothing holds a layer).

It prints seconds and ratios to the limit, and writes JSON to build-support/bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from nix_docker_bench import standin, synthetic
from nix_docker_bench.buildgrid import BuildGrid
from nix_docker_bench.workspace import copy_repo, executed_layer_processes

REPO = Path(__file__).resolve().parents[3]


class RssSampler:
    """Peak RSS of the layer tool's processes and of pantsd, sampled from /proc every 200 ms."""

    def __init__(self) -> None:
        self.peak = {"layer_tool": 0, "pantsd": 0}
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                # The layer tool runs as `.../python3.9 -sE .../pex layers --compression ...`.
                kind = (
                    "layer_tool"
                    if b"--compression" in cmdline and b"python" in cmdline
                    else "pantsd"
                    if b"pantsd" in cmdline
                    else None
                )
                match = re.search(r"VmRSS:\s+(\d+) kB", status)
                if kind and match:
                    self.peak[kind] = max(self.peak[kind], int(match.group(1)) * 1024)
            # A sweep of /proc costs CPU the measured build would use: about 2% of one core at 200 ms.
            time.sleep(0.2)

    def __enter__(self) -> "RssSampler":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        copy_repo(REPO, root)

    # Every pantsd run gets the same global options: a changed one would restart pantsd and
    # put its start-up into the measurement. Kept sandboxes are how we count executed layers.
    OPTIONS = ("--no-dynamic-ui", "--keep-sandboxes=always")

    def pants(self, *args: str, check: bool = True) -> tuple[float, str, str]:
        start = time.perf_counter()
        proc = subprocess.run(["./pants", *self.OPTIONS, *args], cwd=self.root, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if check and proc.returncode != 0:
            raise RuntimeError(f"pants {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
        self.last_executed = sum(executed_layer_processes(proc.stderr).values())  # deletes the kept sandboxes too
        return elapsed, proc.stdout, proc.stderr


ROOTS: dict[str, str] = {}


def _member_bytes(tf: tarfile.TarFile, name: str) -> bytes:
    member = tf.extractfile(name)
    assert member is not None, f"{name} is not a regular file in {tf.name!r}"
    return member.read()


def closure(workdir: Path, ws: Workspace, name: str, seed: int, salt: str, scale: synthetic.Scale) -> list[str]:
    """Generate and realise a closure. Images name its root store path: evaluating the generator's
    expression re-hashes all its sources, a cost of this benchmark's Nix code, not of ours."""
    plan = synthetic.generate(workdir / name, seed, salt, scale)
    ROOTS[name], paths = synthetic.build(workdir / name)
    print(f"  closure {name}: {len(paths)} store paths, {plan['bytes'] / 1e6:.0f} MB of sources")
    return paths


def image(name: str, closure_name: str, app: str, **fields: str) -> str:
    extra = "".join(f", {k}={v}" for k, v in fields.items())
    return (
        f'files(name="{name}-app", sources=["app/{app}"])\n'
        f'nix_docker_image(name="{name}", packages=["{ROOTS[closure_name]}"], dependencies=[":{name}-app"]{extra})\n'
    )


def changed_layer_bytes(ws: Workspace, workdir: Path, strategy: str, build_file: Callable[[], str]) -> dict:
    """Bytes a registry would receive after one mid-size package's version bump."""
    name = f"bump-{strategy}"
    target = f"bench:{name}"
    ws.pants("package", target)
    before = layers_of(ws.root / f"dist/bench/{name}.tar")
    src = workdir / name / "src"
    sizes = sorted((sum(f.stat().st_size for f in p.rglob("*") if f.is_file()), p) for p in src.iterdir())
    bumped = sizes[len(sizes) // 2][1]
    (bumped / "VERSION").write_text("2.0\n")
    ROOTS[name], _ = synthetic.build(workdir / name)
    (ws.root / "bench" / "BUILD").write_text(build_file())
    ws.pants("package", target)
    after = layers_of(ws.root / f"dist/bench/{name}.tar")
    new = {d: s for d, s in after.items() if d not in before}
    return {
        "bumped_package_bytes": sizes[len(sizes) // 2][0],
        "changed_layers": len(new),
        "changed_bytes": sum(new.values()),
        "layers": len(after),
    }


def layers_of(archive: Path) -> dict[str, int]:
    import tarfile

    with tarfile.open(archive) as tf:
        index = json.loads(_member_bytes(tf, "index.json"))
        manifest = json.loads(_member_bytes(tf, "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        return {layer["digest"]: layer["size"] for layer in manifest["layers"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(synthetic.SCALES), default="150mb")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--layering",
        choices=("popularity", "size-aware"),
        default="popularity",
        help="the strategy of the measured images",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=3,
        help="stand-in and cold-build pairs, each on a fresh closure; ratios are the medians of the pairs'",
    )
    parser.add_argument(
        "--parts",
        default="app,twenty,twenty-layout,remote,layering",
        help=(
            "what to measure besides the limit and a cold build (comma-separated: app, twenty, twenty-layout, remote, "
            "layering; '' for none)"
        ),
    )
    args = parser.parse_args()
    parts: set[str] = set(filter(None, args.parts.split(",")))
    scale = synthetic.SCALES[args.scale]
    salt = f"{time.time_ns()}"
    tmp = Path(tempfile.mkdtemp(prefix="nix-docker-bench-"))
    results: dict = {"scale": args.scale, "seed": args.seed, "cores": os.cpu_count(), "layering": args.layering}
    try:
        ws = Workspace(tmp / "repo")
        (ws.root / "bench" / "app").mkdir(parents=True)
        # Salted like the closures, so no app layer is a cache hit from an earlier run.
        for i in range(21):
            (ws.root / "bench" / "app" / f"app{i:02d}.py").write_text(f"print('app {i}, run {salt}')\n")
            (ws.root / "bench" / "app" / f"layout{i:02d}.py").write_text(f"print('layout app {i}, run {salt}')\n")
        print("generating closures with Nix")
        one = closure(tmp, ws, "one", args.seed, salt + "-one", scale)
        results["closure_paths"] = len(one)
        results["closure_mb"] = sum(synthetic.nar_size(p) for p in one) / 1e6
        paired = [one] + [
            closure(tmp, ws, f"one{i}", args.seed, salt + f"-one{i}", scale) for i in range(1, max(1, args.samples))
        ]
        many = closure(tmp, ws, "many", args.seed, salt + "-many", scale) if "twenty" in parts else []
        many_layout = (
            closure(tmp, ws, "manylayout", args.seed, salt + "-manylayout", scale) if "twenty-layout" in parts else []
        )
        remote = closure(tmp, ws, "remote", args.seed, salt + "-remote", scale) if "remote" in parts else []
        strategies = ("popularity", "size-aware") if "layering" in parts else ()
        bumps = {s: closure(tmp, ws, f"bump-{s}", args.seed, salt + f"-bump-{s}", scale) for s in strategies}

        def build_file() -> str:
            strategy = f'"{args.layering}"'
            text = image("one", "one", "app00.py", layering=strategy)
            text += "".join(image(f"one{i}", f"one{i}", "app00.py", layering=strategy) for i in range(1, len(paired)))
            text += (
                "".join(image(f"many{i:02d}", "many", f"app{i:02d}.py", layering=strategy) for i in range(1, 21))
                if many
                else ""
            )
            text += (
                "".join(
                    image(
                        f"layout{i:02d}", "manylayout", f"layout{i:02d}.py", layering=strategy, output_format='"layout"'
                    )
                    for i in range(1, 21)
                )
                if many_layout
                else ""
            )
            text += image("remote", "remote", "app00.py") if remote else ""
            for strategy in bumps:
                text += image(
                    f"bump-{strategy}", f"bump-{strategy}", "app00.py", layering=f'"{strategy}"', max_layers="20"
                )
            return text

        (ws.root / "bench" / "BUILD").write_text(build_file())

        print("measuring the machine's limit (no Pants)")
        _, out, _ = ws.pants("run", "build-support/bench:limit", "--", *one)
        results["limit"] = json.loads(out.strip().splitlines()[-1])
        limit = results["limit"]["gzip"]["seconds"]
        print("warming pantsd and the layer tool")
        ws.pants("package", "examples/hello:image")
        results["noop_s"] = ws.pants("package", "examples/hello:image")[0]

        with RssSampler() as rss:
            pairs = []
            for i, closure_paths in enumerate(paired):
                target = f"bench:one{i or ''}"
                print(f"pair {i + 1} of {len(paired)}: the stand-in (tar | pigz -6 -n), then a cold build of an image")
                pair: dict = {"standin": standin.tar_through_pigz(closure_paths)}
                pair["cold_s"] = ws.pants("package", target)[0]
                pair["cold_layers_built"] = ws.last_executed
                # What Pants costs before and after the work, for this very target: a no-op rebuild.
                pair["cold_noop_s"] = ws.pants("package", target)[0]
                pairs.append(pair)
            results.update(paired_figures(pairs))
            results["cold_bytes"] = standin.layer_bytes_against_pigz(ws.root / "dist/bench/one.tar")

            if "app" in parts:
                print("rebuild after an app-only change")
                (ws.root / "bench/app/app00.py").write_text(f"print('app 0, version 2, run {salt}')\n")
                t, _, err = ws.pants("package", "bench:one")
                results["app_change_s"], results["app_change_layers_built"] = t, ws.last_executed

            if many:
                print("20 images sharing a fresh closure, in one run")
                t, _, err = ws.pants("package", *(f"bench:many{i:02d}" for i in range(1, 21)))
                results["twenty_images_s"], results["twenty_images_layers_built"] = t, ws.last_executed

            if many_layout:
                print("20 images sharing a fresh closure, as OCI layout directories, in one run")
                t, _, err = ws.pants("package", *(f"bench:layout{i:02d}" for i in range(1, 21)))
                results["twenty_layouts_s"], results["twenty_layouts_layers_built"] = t, ws.last_executed
        results["peak_rss_bytes"] = rss.peak

        if remote:
            print("remote cache: write from one machine, read on a fresh one")
            with BuildGrid(tmp / "buildgrid", ws.root) as grid:
                ws.pants(
                    "--no-pantsd",
                    *grid.pants_options(),
                    f"--local-store-dir={tmp}/a/lmdb",
                    f"--named-caches-dir={tmp}/a/named",
                    "package",
                    "bench:remote",
                )
                t, _, err = ws.pants(
                    "--no-pantsd",
                    *grid.pants_options(),
                    "--no-local-cache",
                    f"--local-store-dir={tmp}/b/lmdb",
                    f"--named-caches-dir={tmp}/b/named",
                    "package",
                    "bench:remote",
                )
            baseline = ws.pants("--no-pantsd", "package", "examples/hello:image")[0]
            results["remote_hit_s"], results["remote_hit_layers_built"] = t, ws.last_executed
            results["no_pantsd_noop_s"] = baseline

        if bumps:
            print("layering: bytes re-shipped after bumping one mid-size package (max_layers=20)")
            results["bump"] = {s: changed_layer_bytes(ws, tmp, s, build_file) for s in bumps}
    finally:
        subprocess.run(["./pants", "kill-pantsd"], cwd=tmp / "repo", capture_output=True) if (
            tmp / "repo"
        ).exists() else None
        shutil.rmtree(tmp, ignore_errors=True)
        # The synthetic closures are gigabytes nothing refers to: give the store its space back.
        synthetic.delete_generated()

    report(results, limit)
    out_dir = REPO / "build-support/bench/results"
    out_dir.mkdir(parents=True, exist_ok=True)
    results_file = out_dir / f"bench-{args.scale}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    results_file.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"\nwrote {results_file}")


def paired_figures(pairs: list[dict]) -> dict:
    """Medians over the pairs; the ratios are the medians of each pair's own ratio."""
    work = [p["cold_s"] - p["cold_noop_s"] for p in pairs]
    return {
        "pairs": pairs,
        "standin": {
            "seconds": statistics.median(p["standin"]["seconds"] for p in pairs),
            "bytes": pairs[0]["standin"]["bytes"],
        },
        "cold_s": statistics.median(p["cold_s"] for p in pairs),
        "cold_layers_built": pairs[0]["cold_layers_built"],
        "cold_noop_s": statistics.median(p["cold_noop_s"] for p in pairs),
        "cold_work_s": statistics.median(work),
        "ratio_wall": statistics.median(p["standin"]["seconds"] / p["cold_s"] for p in pairs),
        "ratio_work": statistics.median(p["standin"]["seconds"] / w for p, w in zip(pairs, work)),
    }


def report(r: dict, limit: float) -> None:
    def row(name: str, seconds: float | None, note: str = "") -> None:
        if seconds is not None:
            print(f"  {name:<44} {seconds:7.2f} s  {seconds / limit:6.1f}x limit  {note}")

    print(f"\nlayering of the measured images: {r['layering']}")
    print(
        f"limit (read+tar+sha256+compress, 2 cores): gzip {r['limit']['gzip']['seconds']:.2f} s, zstd "
        f"{r['limit']['zstd']['seconds']:.2f} s"
    )
    standin_mb = r["standin"]["bytes"] / 1e6
    print(f"codecs on the closure, 2 cores (bytes vs nixpkgs' tar | pigz -6 -n: {standin_mb:.1f} MB):")
    for name, m in r["limit"].items():
        print(
            f"  {name:<20} {m['bytes'] / 1e6:8.1f} MB {m['bytes'] / r['standin']['bytes']:6.3f}x pigz -6 "
            f"{m['seconds']:7.2f} s"
        )
    row("nixpkgs stand-in: tar | pigz -6 -n", r["standin"]["seconds"], f"{standin_mb:.1f} MB")
    row("no-op pants package (pantsd warm)", r["noop_s"])
    row(
        "cold build, one image (wall)",
        r["cold_s"],
        f"{r['cold_layers_built']} layer processes, {r['closure_mb']:.0f} MB closure",
    )
    row("cold build, work after Pants started", r["cold_work_s"], f"(minus its no-op, {r['cold_noop_s']:.2f} s)")
    if len(r.get("pairs", ())) > 1:
        print(f"  (medians of {len(r['pairs'])} pairs, each a stand-in run then a cold build of a fresh closure:)")
        for i, p in enumerate(r["pairs"], 1):
            work, seconds = p["cold_s"] - p["cold_noop_s"], p["standin"]["seconds"]
            print(
                f"    pair {i}: stand-in {seconds:.2f} s, cold {p['cold_s']:.2f} s (work {work:.2f} s): "
                f"{seconds / p['cold_s']:.2f}x wall, {seconds / work:.2f}x work"
            )
    b = r["cold_bytes"]
    print(
        f"  cold image's gzip layers: {b['ours'] / 1e6:.1f} MB; the same tars through pigz -6 -n: "
        f"{b['pigz_6'] / 1e6:.1f} MB ({b['ours'] / b['pigz_6']:.3f}x)"
    )
    if "app_change_s" in r:
        row(
            "rebuild after app-only change (wall)", r["app_change_s"], f"{r['app_change_layers_built']} layer processes"
        )
        row("rebuild after app-only change, minus no-op", r["app_change_s"] - r["cold_noop_s"])
    if "twenty_images_s" in r:
        row(
            "20 images sharing a fresh closure (wall)",
            r["twenty_images_s"],
            f"{r['twenty_images_layers_built']} layer processes; {r['twenty_images_s'] / r['cold_s']:.2f}x one cold "
            "image",
        )
    if "twenty_layouts_s" in r:
        row(
            "20 images as OCI layouts, fresh closure (wall)",
            r["twenty_layouts_s"],
            f"{r['twenty_layouts_layers_built']} layer processes; {r['twenty_layouts_s'] / r['cold_s']:.2f}x one cold "
            "image",
        )
    if "remote_hit_s" in r:
        row(
            "remote-cache hit, fresh machine (no pantsd)",
            r["remote_hit_s"],
            f"{r['remote_hit_layers_built']} layer processes ran locally; no-op without pantsd "
            f"{r['no_pantsd_noop_s']:.2f} s",
        )
    print(
        f"  peak RSS: layer tool {r['peak_rss_bytes']['layer_tool'] / 1e6:.0f} MB, pantsd "
        f"{r['peak_rss_bytes']['pantsd'] / 1e6:.0f} MB"
    )
    print("issue 15's targets:")
    checks = [
        ("default gzip bytes / pigz -6 bytes (<= 1.0)", b["ours"] / b["pigz_6"], b["ours"] <= b["pigz_6"]),
        ("tar | pigz -6 stand-in / cold build wall (>= 1.5)", r["ratio_wall"], r["ratio_wall"] >= 1.5),
        ("tar | pigz -6 stand-in / cold build work (>= 1.5)", r["ratio_work"], r["ratio_work"] >= 1.5),
    ]
    if "twenty_layouts_s" in r:
        ratio = r["twenty_layouts_s"] / r["cold_s"]
        checks.append(("20 layouts / one cold image (<= 1.3)", ratio, ratio <= 1.3))
    for name, value, ok in checks:
        print(f"  {name:<46} {value:6.2f}  {'met' if ok else 'NOT MET'}")
    for strategy, b in r.get("bump", {}).items():
        print(
            f"  layering {strategy:<11}: bump of a {b['bumped_package_bytes'] / 1e6:.1f} MB package re-ships "
            f"{b['changed_bytes'] / 1e6:.2f} MB in {b['changed_layers']} of {b['layers']} layers"
        )


if __name__ == "__main__":
    main()
