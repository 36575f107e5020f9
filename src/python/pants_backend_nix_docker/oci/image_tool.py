"""The image tool: what Pants processes run for everything about an image except store layers.

    image_tool rootfs --spec spec.json --compression gzip --encoder libdeflate --level 6 [--out-dir DIR]
        writes the layer a RootfsSpec describes (users, directories, links, artifacts) as
        blobs/sha256/<digest> and prints its stats; a spec that cannot be built exits 2 with
        "FIELD<tab>message" on stderr
    image_tool archive --layout DIR [--layout DIR...] --output image.tar
        writes the OCI layout that the DIRs make together as one deterministic tar
    image_tool base --input PATH [--pin sha256:...] --output DIR
        reads a base image (OCI layout, OCI archive or docker archive), checks every layer against
        its digest, writes the layers to DIR/blobs/sha256/ and what the image is to DIR/base.json;
        an unusable image exits 2 with the reason on stderr
    image_tool check --spec spec.json --layout DIR --tag TAG --suite NAME --runc PATH --umoci PATH
        runs a `nix_docker_image_test`'s checks against the image in the OCI layout DIR: prints a
        line per check, writes report.xml (JUnit), exits 1 when a check failed
    image_tool push --plan JSON
        runs the plan's skopeo copies (the image, then its referrers such as the SBOM; skopeo's
        output passes through), lists each referrer among its subject's referrers on the registry,
        and, when something fails, says in plain words what went wrong and how to fix it

A PEX of its own, apart from the store-layer tool (`store_layer_tool.py`), whose sources are part
of every store layer's cache key: a change here must not change any of those keys. Only the
standard library, the pinned wheels and the sibling modules are imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Sequence

from pants_backend_nix_docker.oci.archive import build_archive
from pants_backend_nix_docker.oci.compression import add_codec_arguments, codec_from_arguments, usable_cores
from pants_backend_nix_docker.oci.tarball import TarError

if TYPE_CHECKING:
    from pants_backend_nix_docker.oci.push_plan import PushPlan

# Each command imports what only it needs when it runs: an archive or a layer is written by a
# process that starts on every cold build, and the checks' and pushes' modules (HTTP, XML, the
# registry client) would add about 0.1 s to each start.


def read_base(path: str, pin: str | None, out_dir: str, platform: str = "linux/amd64") -> None:
    from pants_backend_nix_docker.oci.base_image import copy_layers, read_base_image, with_store_paths

    scratch = os.path.join(out_dir, ".unpacked")
    read = read_base_image(path, pin, scratch, platform)
    # Store paths are read before the blobs move out of the scratch directory.
    read = read._replace(info=with_store_paths(read.info, read.paths))
    copy_layers(read, out_dir, move=not os.path.isdir(path))
    shutil.rmtree(scratch, ignore_errors=True)
    with open(os.path.join(out_dir, "base.json"), "w") as f:
        json.dump(read.info.to_json(), f, sort_keys=True)


def run_skopeo(registry: str, what: str, skopeo_argv: Sequence[str]) -> int:
    from pants_backend_nix_docker.oci.registries import explain_failure

    proc = subprocess.Popen(list(skopeo_argv), stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:
        sys.stderr.write(line)
        said.append(line)
    code = proc.wait()
    if code != 0:
        explained = explain_failure("".join(said), registry)
        if explained:
            problem, fix = explained
            print(f"\nCould not publish {what}: {problem}. Fix: {fix}.", file=sys.stderr)
        else:
            print(
                f"\nCould not publish {what}: skopeo failed with exit code {code} (its message is above).",
                file=sys.stderr,
            )
    return code


def push(plan: PushPlan) -> int:
    from pants_backend_nix_docker.oci.referrers import ReferrersError
    from pants_backend_nix_docker.oci.registries import explain_failure
    from pants_backend_nix_docker.oci.registry_client import (
        RegistryClient,
        RegistryClientError,
        add_referrer,
        find_credentials,
        registry_name,
    )

    host, name = registry_name(plan.reference)
    for option, path in plan.files:
        if not os.path.isfile(path):
            print(
                f"Could not publish {plan.what}: [nix-docker].{option} names {path}, which is not a file here. "
                f"Fix: point [nix-docker].{option} at the file (an absolute path), or unset it.",
                file=sys.stderr,
            )
            return 1
    code = run_skopeo(host, plan.what, plan.argv)
    for referrer in plan.referrers:
        code = code or run_skopeo(host, f"{plan.what} (its SBOM; the image itself was pushed)", referrer.argv)
    if code or not plan.referrers:
        return code
    try:
        client = RegistryClient(host, name, find_credentials(host, name, os.environ), plan.tls_verify, plan.cert_dir)
        for referrer in plan.referrers:
            entry = json.loads(referrer.entry)
            how = add_referrer(client, referrer.subject, entry)
            print(f"{plan.reference}: SBOM {entry['digest']} of {referrer.subject} {how}", file=sys.stderr)
    except (RegistryClientError, ReferrersError) as e:
        problem, fix = explain_failure(str(e), host) or (str(e), "run `pants publish` again once that is mended")
        print(
            f"\nCould not publish {plan.what} (listing its SBOM among the image's referrers; the image itself "
            f"was pushed): {problem}. Fix: {fix}.",
            file=sys.stderr,
        )
        return 1
    return 0


def check_image(args: argparse.Namespace) -> int:
    from pants_backend_nix_docker.oci.image_check_runner import ImageCheckError, run_checks
    from pants_backend_nix_docker.oci.image_checks import ImageCheckSpec, Outcome, junit_xml, summary

    with open(args.spec) as f:
        spec = ImageCheckSpec.from_json(json.load(f))
    workdir = os.path.abspath(".image-check")
    os.makedirs(workdir, exist_ok=True)
    try:
        outcomes = run_checks(spec, os.path.abspath(args.layout), args.tag, args.runc, args.umoci, workdir)
    except ImageCheckError as e:
        outcomes = [Outcome("the image can be read and unpacked", (str(e),))]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(args.junit, "wb") as f:
        f.write(junit_xml(args.suite, outcomes))
    sys.stdout.write(summary(args.suite, outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nix-docker-image-tool")
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("base", help="read a base image's layers and config")
    base.add_argument("--input", required=True)
    base.add_argument("--pin")
    base.add_argument("--output", required=True)
    base.add_argument("--platform", default="linux/amd64", help="os/architecture[/variant] of the image to read")
    check = commands.add_parser("check", help="run an image test's checks")
    for name in ("--spec", "--layout", "--tag", "--suite", "--runc", "--umoci"):
        check.add_argument(name, required=True)
    check.add_argument("--junit", default="report.xml")
    push_parser = commands.add_parser("push", help="push an image and its referrers; explain a failure")
    push_parser.add_argument("--plan", required=True, help="a PushPlan as JSON")
    rootfs = commands.add_parser("rootfs", help="write the layer a root filesystem spec describes")
    rootfs.add_argument("--spec", required=True)
    add_codec_arguments(rootfs)
    rootfs.add_argument("--out-dir", default=".")
    archive = commands.add_parser("archive", help="write an OCI layout directory as one tar")
    archive.add_argument("--layout", action="append", required=True)
    archive.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.command == "push":
        from pants_backend_nix_docker.oci.push_plan import PushPlan

        return push(PushPlan.from_json(json.loads(args.plan)))
    if args.command == "check":
        return check_image(args)
    if args.command == "base":
        return base_command(args)
    if args.command == "rootfs":
        return rootfs_command(args)
    try:
        build_archive(args.layout, args.output)
    except (TarError, OSError) as e:
        return _failed(e)
    return 0


def _failed(e: Exception) -> int:
    print(f"nix-docker-image-tool: {e}", file=sys.stderr)
    return 1


def base_command(args: argparse.Namespace) -> int:
    from pants_backend_nix_docker.oci.base_image_source import BaseImageError

    try:
        read_base(args.input, args.pin, args.output, args.platform)
    except BaseImageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except (TarError, OSError) as e:
        return _failed(e)
    return 0


def rootfs_command(args: argparse.Namespace) -> int:
    from pants_backend_nix_docker.oci.blob import write_blob
    from pants_backend_nix_docker.oci.rootfs import RootfsError, RootfsSpec, rootfs_nodes, tar_entries

    try:
        with open(args.spec) as f:
            spec = RootfsSpec.from_json(json.load(f))
        # A large artifact (a PEX of heavy wheels) compresses on every core.
        entries = tar_entries(rootfs_nodes(spec))
        stats = write_blob(entries, codec_from_arguments(args), args.out_dir, workers=usable_cores())
    except RootfsError as e:
        print(f"{e.field}\t{e}", file=sys.stderr)
        return 2
    except (TarError, OSError) as e:
        return _failed(e)
    json.dump(stats, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
