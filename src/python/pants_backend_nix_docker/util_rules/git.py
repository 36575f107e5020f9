"""The build root's git revision, for `{git_revision}` in image tags."""

from __future__ import annotations

from dataclasses import dataclass

from pants.base.build_root import BuildRoot
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.subsystems.nix import NixSubsystem


@dataclass(frozen=True)
class GitRevision:
    """The short HEAD commit, or "dev" when tracked files have changes; None outside git."""

    value: str | None
    problem: str = ""


@rule(desc="Reading the git revision", level=LogLevel.DEBUG)
async def git_revision(build_root: BuildRoot, nix: NixSubsystem.EnvironmentAware) -> GitRevision:
    git = await Get(BinaryPaths, BinaryPathRequest(binary_name="git", search_path=nix.executable_search_path))
    if git.first_path is None:
        return GitRevision(None, "`git` is not on [nix].executable_search_paths")
    git_path = git.first_path.path

    def process(*args: str, what: str) -> Process:
        # The answer is about the work tree now: once per run, never persisted.
        return Process(
            (git_path, "-C", build_root.path, *args),
            description=what,
            level=LogLevel.DEBUG,
            cache_scope=ProcessCacheScope.PER_SESSION,
        )

    head, status = await MultiGet(
        Get(FallibleProcessResult, Process, process("rev-parse", "--short=12", "HEAD", what="Reading the git HEAD")),
        Get(
            FallibleProcessResult,
            Process,
            process("status", "--porcelain", "--untracked-files=no", what="Checking the git work tree"),
        ),
    )
    if head.exit_code != 0 or status.exit_code != 0:
        return GitRevision(None, f"the build root is not a git checkout with a commit ({head.stderr.decode().strip()})")
    return GitRevision("dev" if status.stdout.strip() else head.stdout.decode().strip())


def rules():
    return collect_rules()
