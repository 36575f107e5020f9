"""The build root's git revision, for `{git_revision}` in image tags, from Pants' own git support."""

from __future__ import annotations

from dataclasses import dataclass

from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree


@dataclass(frozen=True)
class GitRevision:
    """The short HEAD commit, or "dev" when tracked files have changes; None outside git."""

    value: str | None
    problem: str = ""


@rule(desc="Reading the git revision", level=LogLevel.DEBUG)
async def git_revision() -> GitRevision:
    # Pants asks git again on every run (a work tree is never cached), as `--changed-since` does.
    maybe = await Get(MaybeGitWorktree, GitWorktreeRequest())
    worktree = maybe.git_worktree
    if worktree is None:
        return GitRevision(None, "the build root is not in a git work tree, or `git` is not installed")
    try:
        head = worktree.commit_id
        changed = worktree.changed_files()
    except GitBinaryException as e:
        return GitRevision(None, f"the build root is not a git checkout with a commit ({e})")
    return GitRevision("dev" if changed else head[:12])


def rules():
    return collect_rules()
