"""A seeded synthetic Nix closure that looks like a Python service's, built with real Nix.

Content is sampled from this machine's own files (libraries, Python modules, data), so it
compresses like a real closure; a seeded random DAG gives each path real references (each path
writes its dependencies' store paths into itself, which is what a Nix reference is). A salt makes
every call produce new store paths with the same content, so a benchmark can measure cold builds
as often as it likes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIRS = (
    "/usr/lib/python3.11",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/share/perl",
    "/usr/lib/gcc",
    "/usr/share/locale",
    "/usr/share/doc",
)


@dataclass(frozen=True)
class Scale:
    paths: int
    total_bytes: int


SCALES = {"150mb": Scale(40, 150_000_000), "1gb": Scale(400, 1_000_000_000)}


def _host_files(rng: random.Random) -> list[Path]:
    files = []
    for top in SOURCE_DIRS:
        for root, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(names):
                path = Path(root, name)
                if path.is_file() and not path.is_symlink() and 0 < path.stat().st_size < 20_000_000:
                    files.append(path)
    rng.shuffle(files)
    return files


def _sizes(rng: random.Random, scale: Scale) -> list[int]:
    # Heavy-tailed like real closures: a few big paths (python, openssl), many small ones.
    weights = [rng.lognormvariate(0, 1.6) for _ in range(scale.paths)]
    total = sum(weights)
    return [max(20_000, int(scale.total_bytes * w / total)) for w in weights]


def generate(workdir: Path, seed: int, salt: str, scale: Scale) -> dict:
    """Write the sources and `closure.nix` under workdir; return the plan."""
    rng = random.Random(seed)
    files = _host_files(rng)
    sizes = _sizes(rng, scale)
    # Dependencies only on earlier paths: a DAG whose first paths (glibc-like) are the most shared.
    deps = {}
    for i in range(scale.paths):
        candidates = list(range(i))
        popular = candidates[:3]
        chosen = set(rng.sample(popular, min(len(popular), rng.randint(1, 2)))) if popular else set()
        if len(candidates) > 3:
            chosen |= set(rng.sample(candidates[3:], min(len(candidates) - 3, rng.randint(0, 3))))
        deps[i] = sorted(chosen)
    src_root = workdir / "src"
    if src_root.exists():
        shutil.rmtree(src_root)
    cursor = 0
    for i, size in enumerate(sizes):
        pkg = src_root / f"p{i:03d}"
        pkg.mkdir(parents=True)
        written = 0
        while written < size:
            source = files[cursor % len(files)]
            cursor += 1
            target = pkg / "lib" / f"{cursor:06d}-{source.name}"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
            written += target.stat().st_size
        (pkg / "salt").write_text(salt)
    lib_nix = Path(__file__).resolve().parents[2] / "nix" / "lib.nix"
    lines = [f"let inherit (import {lib_nix}) run; in rec {{"]
    for i in range(scale.paths):
        refs = " ".join(f"p{d:03d}" for d in deps[i])
        lines.append(
            f'  p{i:03d} = run {{ name = "bench-p{i:03d}-1.0"; src = builtins.path {{ path = {src_root}/p{i:03d}; name '
            f'= "bench-src-{i:03d}"; }}; '
            f'deps = [ {refs} ]; script = "cp -r $src $out; chmod -R u+w $out; mkdir -p $out/nix-support; echo $deps > '
            f'$out/nix-support/depends"; }};'
        )
    roots = " ".join(f"p{i:03d}" for i in range(scale.paths) if not any(i in d for d in deps.values()))
    lines.append(
        f'  root = run {{ name = "bench-root-1.0"; deps = [ {roots} ]; script = "mkdir -p $out; echo $deps > '
        f'$out/depends"; }};'
    )
    lines.append("}")
    (workdir / "closure.nix").write_text("\n".join(lines) + "\n")
    return {"seed": seed, "salt": salt, "paths": scale.paths, "bytes": sum(sizes), "deps": deps}


def build(workdir: Path) -> tuple[str, list[str]]:
    """Realise the closure with nix-build; return its root and all its store paths."""
    root = subprocess.run(
        ["nix-build", "--no-out-link", str(workdir / "closure.nix"), "-A", "root"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    return root, subprocess.run(["nix-store", "-qR", root], check=True, capture_output=True, text=True).stdout.split()


def delete_generated() -> None:
    """Delete every store path this generator made (names start with `bench-`) that is not in use."""
    paths = sorted(str(p) for p in Path("/nix/store").glob("*-bench-*"))
    if paths:
        subprocess.run(["nix-store", "--delete", *paths], capture_output=True)


def nar_size(path: str) -> int:
    out = subprocess.run(["nix-store", "--query", "--size", path], check=True, capture_output=True, text=True).stdout
    return int(out.strip())


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--salt", default="0")
    parser.add_argument("--scale", choices=sorted(SCALES), default="150mb")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    plan = generate(args.workdir, args.seed, args.salt, SCALES[args.scale])
    root, paths = build(args.workdir)
    print(json.dumps({"root": root, "paths": len(paths), "bytes": plan["bytes"]}))
