"""The publish benchmark (issue 15): `pants publish` of the 10 monorepo images, before and after
publishing stopped writing archives, in one run.

    build-support/bench/publish [--before REV]

For the repository at `--before` (default: the commit before the change) and for the working tree,
in scratch copies, each with its own pantsd and its own empty registry (the CNCF distribution
registry on 127.0.0.1), it measures, with every layer in the local cache from an earlier `package`
run and a new pantsd (as a CI job finds them):

- the first publish of the 10 images to the empty registry;
- a publish after one service's source changed (one new layer, ten manifests);
- a publish with nothing changed (no blob uploaded).

Every Pants run's exit code is checked. Results go to build-support/bench/results/.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from nix_docker_bench.before_after import REPO, checkout, pants, report
from nix_docker_bench.buildgrid import free_port
from nix_docker_bench.workspace import copy_repo

IMAGES = "examples/monorepo::"
CHANGED = "examples/monorepo/src/monorepo_services/billing.py"


class Registry:
    def __init__(self, workdir: Path) -> None:
        self.workdir, self.address = workdir, f"127.0.0.1:{free_port()}"

    def __enter__(self) -> "Registry":
        self.workdir.mkdir(parents=True)
        config = self.workdir / "config.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {self.workdir}/data\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start")
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait()

    @property
    def option(self) -> str:
        entry = {"address": self.address, "default": True, "tls_verify": False}
        return f"--nix-docker-registries={{'bench': {entry!r}}}"


def measure(workspace: Path, registry: Registry) -> dict:
    option = registry.option
    try:
        pants(workspace, option, "package", IMAGES)  # every process's result in the local cache
        # A new pantsd, as a CI job has: nothing of the images is memoized, and the archive
        # processes (cached per pantsd only) run again if publishing needs them.
        subprocess.run(["./pants", "kill-pantsd"], cwd=workspace, capture_output=True)
        pants(workspace, option, "list", IMAGES)
        first = pants(workspace, option, "publish", IMAGES)
        module = workspace / CHANGED
        module.write_text(module.read_text().replace('"role": "billing"', '"role": "billing", "bench": 1'))
        one_change = pants(workspace, option, "publish", IMAGES)
        unchanged = pants(workspace, option, "publish", IMAGES)
    finally:
        subprocess.run(["./pants", "kill-pantsd"], cwd=workspace, capture_output=True)
    return {"first_publish_s": first, "publish_after_one_app_change_s": one_change, "republish_unchanged_s": unchanged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="facc5a9", help="the commit to compare with (default: before the change)")
    args = parser.parse_args()
    results: dict = {"before": args.before}
    with tempfile.TemporaryDirectory(prefix="nix-docker-publish-bench-") as tmp:
        before, after = Path(tmp) / "before", Path(tmp) / "after"
        checkout(args.before, before)
        copy_repo(REPO, after)
        for name, workspace in (("before", before), ("after", after)):
            print(f"measuring {name} ({args.before if name == 'before' else 'working tree'})")
            with Registry(Path(tmp) / f"registry-{name}") as registry:
                results[name] = measure(workspace, registry)

    report(
        "publish of the 10 monorepo images (layers in the local cache, new pantsd)",
        results,
        (
            ("first_publish_s", "first publish, empty registry"),
            ("publish_after_one_app_change_s", "publish after one app change"),
            ("republish_unchanged_s", "publish, nothing changed"),
        ),
        "publish",
    )


if __name__ == "__main__":
    main()
