from __future__ import annotations

from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem


class NixImageTestSubsystem(Subsystem):
    options_scope = "nix-image-test"
    name = "nix_docker_image_test"
    help = "The checks of `nix_docker_image_test` targets, run by `pants test`."

    skip = SkipOption("test")
