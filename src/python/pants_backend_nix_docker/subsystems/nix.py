from __future__ import annotations

from pants.core.util_rules.search_paths import ExecutableSearchPathsOptionMixin
from pants.option.option_types import ShellStrListOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap


class NixSubsystem(Subsystem):
    options_scope = "nix"
    help = "How Pants runs Nix to realise the packages of `nix_docker_image` targets."

    class EnvironmentAware(ExecutableSearchPathsOptionMixin, Subsystem.EnvironmentAware):
        executable_search_paths_help = softwrap(
            """
            The PATH value used to find `nix`, `nix-instantiate` and `nix-store`.
            """
        )

        _env_vars = ShellStrListOption(
            default=["HOME", "NIX_CONFIG", "NIX_PATH", "NIX_REMOTE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"],
            help=softwrap(
                """
                Environment variables for Nix invocations: `VAR` copies Pants' own value,
                `VAR=value` sets one. The defaults carry the user's Nix settings (a
                `NIX_CONFIG` with `flake-registry = ...`, a `NIX_PATH` for `<nixpkgs>`) and the
                flake cache under `$HOME/.cache/nix`.
                """
            ),
            advanced=True,
        )

        @property
        def env_vars(self) -> tuple[str, ...]:
            return tuple(sorted(set(self._env_vars)))
