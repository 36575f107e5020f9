"""`pants nix-image-report`: what is in an image, by size, and why each store path is there.

    pants nix-image-report examples/python-app:image
    pants nix-image-report --why='*-gcc-*' examples/python-app:image

It builds the images as `package` would (every step cached) and prints the report written next
to each in `dist/`: layers, the largest store paths with the chain that pulls each in, totals.
"""

from __future__ import annotations

from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.option.option_types import IntOption, StrOption
from pants.util.strutil import softwrap

from pants_backend_nix_docker.goals.package import NixDockerImageFieldSet
from pants_backend_nix_docker.nix import report as report_lib
from pants_backend_nix_docker.util_rules.image import BuildImageRequest, BuiltImage


class NixImageReportSubsystem(GoalSubsystem):
    name = "nix-image-report"
    help = "Show what is in `nix_docker_image`s: layers, the largest store paths and why they are there."

    why = StrOption(
        default=None,
        help=softwrap(
            """
            Instead of the report, show every store path whose name matches this shell pattern
            (e.g. `'*-gcc-*'`, `'python3-*'`, or a `/nix/store/...` path) with the reference chain
            from an image root that pulls it in, like `nix why-depends` across the whole image.
            """
        ),
    )
    largest = IntOption(default=10, help="How many of the largest store paths to list.")
    width = IntOption(default=100, help="The widest a line may be; longer ones are cut.")


class NixImageReport(Goal):
    subsystem_cls = NixImageReportSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def nix_image_report(console: Console, subsystem: NixImageReportSubsystem, targets: Targets) -> NixImageReport:
    field_sets = [NixDockerImageFieldSet.create(t) for t in targets if NixDockerImageFieldSet.is_applicable(t)]
    built = await MultiGet(Get(BuiltImage, BuildImageRequest(fs.image_request())) for fs in field_sets)
    for report in (image.report for each in built for image in each.images):
        if subsystem.why:
            console.print_stdout(report_lib.render_why(report, subsystem.why, subsystem.width))
        else:
            console.print_stdout(report_lib.render_report(report, subsystem.width, subsystem.largest))
        console.print_stdout("")
    return NixImageReport(exit_code=0)


def rules():
    return collect_rules()
