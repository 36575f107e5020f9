"""Evaluating attributes of a `.nix` file, apart from building them, and knowing when the answer
may be kept.

Evaluation (file + attributes -> derivations) costs seconds with nixpkgs and depends only on the
files read, the Nix version and the attributes asked for, when the expression is pure. Building
(derivations -> store paths present now) is cheap when nothing changed but depends on the store, so
it runs every time. `nix-build FILE -A a` does both at once; here they are two processes:

    nix-instantiate --eval --strict --json --read-write-mode -E WRAPPER --argstr request JSON
    nix-store --realise DRV!OUTPUT...

The wrapper selects each attribute as `nix-build -A` does (auto-calling functions, collecting the
derivations of a list or a set) and prints `DRV!OUTPUT` strings per attribute. Forcing `drvPath`
writes each `.drv` into the store (`--read-write-mode`), so the realise needs no evaluation.

A *cacheable* evaluation runs in Nix's restricted mode with exactly the files whose contents are
part of the cache key allowed (any other file, a directory, or an unpinned fetch is an error), and
with the impure builtins replaced by ones that fail: `builtins.getEnv`, `builtins.currentTime`,
`<path>` lookups in `NIX_PATH`, fetches without a hash or revision. Nix 2.8's own `--pure-eval`
refuses every file outside the store, so it cannot evaluate a repository's `.nix` files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable

from pants_backend_nix_docker.nix.installables import FILE_ATTR, Installable

# The impure builtins fail through every file the evaluation imports: `scopedImport` passes the
# replacements down. Nix evaluates an imported file once, `scopedImport` does not, so the files
# known up front are memoised; anything else (a fetched source tree) is imported unmemoised.
WRAPPER = r"""
{ request }:
let
  req = builtins.fromJSON request;
  refuse = what: throw "pants-nix-docker: not cacheable: ${what}";
  pinned = names: f: what: args:
    if builtins.isAttrs args && builtins.any (n: args ? ${n}) names then f args
    else refuse "calls ${what} without ${builtins.concatStringsSep " or " names}";
  guarded = builtins // {
    getEnv = name: refuse "calls builtins.getEnv \"${name}\"";
    currentTime = refuse "reads builtins.currentTime";
    fetchurl = pinned [ "sha256" "hash" ] builtins.fetchurl "builtins.fetchurl";
    fetchTarball = pinned [ "sha256" ] builtins.fetchTarball "fetchTarball";
    fetchGit = pinned [ "rev" ] builtins.fetchGit "fetchGit";
    fetchMercurial = pinned [ "rev" ] builtins.fetchMercurial "fetchMercurial";
    fetchTree = pinned [ "narHash" ] builtins.fetchTree "fetchTree";
    getFlake = _: refuse "calls builtins.getFlake";
    import = guardedImport;
    scopedImport = extra: builtins.scopedImport (scope // extra);
  };
  scope = {
    builtins = guarded;
    inherit (guarded) import scopedImport fetchTarball fetchGit fetchMercurial fetchTree;
    __getEnv = guarded.getEnv;
    __currentTime = guarded.currentTime;
    __fetchurl = guarded.fetchurl;
    __getFlake = guarded.getFlake;
    __findFile = _: name: refuse "looks up <${name}> in NIX_PATH";
  };
  memo = builtins.listToAttrs (map (f: { name = f; value = builtins.scopedImport scope (/. + f); }) req.files);
  key = path: builtins.unsafeDiscardStringContext (toString path);
  guardedImport = path: memo.${key path} or (builtins.scopedImport scope path);
  load = if req.cacheable then guardedImport else import;
  # As nix-build's auto-calling: a function gets those of the arguments it declares, and a set
  # with a `__functor` is called through it.
  args = req.args or { };
  autoCall = v:
    if builtins.isAttrs v && v ? __functor then autoCall (v.__functor v)
    else if builtins.isFunction v then v (builtins.intersectAttrs (builtins.functionArgs v) args)
    else v;
  select = builtins.foldl' (v: name: (autoCall v).${name});
  isDerivation = v: builtins.isAttrs v && v.type or null == "derivation";
  derivations = v:
    if isDerivation v then [ "${v.drvPath}!${v.outputName or "out"}" ]
    else if builtins.isList v then builtins.concatMap derivations v
    else if builtins.isAttrs v then
      builtins.concatMap (n: if isDerivation v.${n} then derivations v.${n} else [ ]) (builtins.attrNames v)
    else throw "expression does not evaluate to a derivation (or a set or list of those)";
  root = load (/. + req.file);
in
map (path: derivations (autoCall (select root path))) req.attrs
"""

# What a cacheable evaluation's failure says when it was refused for purity, not for a mistake in
# the expression, as the end of "evaluated on every run, because it ...". Either way the
# expression is then evaluated again without the restrictions.
_REFUSALS = (
    (re.compile(r"pants-nix-docker: not cacheable: (.*)"), "{}"),
    (
        re.compile(r"access to (?:absolute )?path '([^']*)' is forbidden in restricted mode"),
        "reads {}, which is not a file of its `nix_source` target or of the targets that depends on "
        "(a directory never is: it can hold files Pants ignores)",
    ),
    (re.compile(r"access to URI '([^']*)' is forbidden in restricted mode"), "fetches {}"),
)
_MISSING_DERIVATION = re.compile(
    r"cannot build missing derivation|path '[^']*\.drv' is not valid|don't know how to build"
)
_FETCH_SCHEMES = ("https://", "http://", "file://", "git+https://", "git+ssh://", "git+file://", "ssh://", "git://")
_ATTR_PART = re.compile(r'"([^"]*)"|([^."]+)')


class EvaluationOutputError(ValueError):
    """Nix printed something other than the wrapper's list of lists of strings."""


@dataclass(frozen=True)
class Attribute:
    """One `-A` attribute path of a file; None means the file's whole value (`nix-build FILE`)."""

    path: str | None

    @property
    def parts(self) -> tuple[str, ...]:
        if not self.path:
            return ()
        return tuple(quoted or plain for quoted, plain in _ATTR_PART.findall(self.path))


def attributes_by_file(installables: Iterable[Installable]) -> dict[str, tuple[Attribute, ...]]:
    """Build-root-relative `.nix` file -> the attributes the installables take from it, sorted."""
    found: dict[str, set[Attribute]] = {}
    for installable in installables:
        if installable.kind == FILE_ATTR:
            found.setdefault(installable.ref, set()).add(Attribute(installable.attr))
    return {file: tuple(sorted(attrs, key=lambda a: a.path or "")) for file, attrs in sorted(found.items())}


def evaluation_request(
    file: str, attrs: tuple[Attribute, ...], cacheable_files: tuple[str, ...] | None, system: str | None = None
) -> str:
    """The wrapper's `request` argument. `file` and `cacheable_files` are absolute paths;
    `cacheable_files` None asks for an unrestricted evaluation. `system`: what functions taking a
    `system` argument are called with (`--argstr system`); None leaves them their default."""
    request = {
        "file": file,
        "attrs": [list(a.parts) for a in attrs],
        "cacheable": cacheable_files is not None,
        "files": sorted(cacheable_files or ()),
    }
    return json.dumps({**request, "args": {"system": system}} if system else request, sort_keys=True)


def evaluation_argv(
    nix_instantiate: str,
    file: str,
    attrs: tuple[Attribute, ...],
    cacheable_files: tuple[str, ...] | None,
    system: str | None = None,
) -> tuple[str, ...]:
    restrictions: tuple[str, ...] = ()
    if cacheable_files is not None:
        # Restricted mode allows exactly the search path's entries: one per file, no directory.
        # An empty nix-path drops NIX_PATH and nix.conf's entries from it. Fetches may use any
        # of these schemes: the wrapper lets only those with a hash or revision through.
        allowed = tuple(arg for path in sorted(cacheable_files) for arg in ("-I", path))
        restrictions = (
            "--restrict-eval",
            "--option",
            "nix-path",
            "",
            "--option",
            "allowed-uris",
            " ".join(_FETCH_SCHEMES),
            *allowed,
        )
    return (
        nix_instantiate,
        "--eval",
        "--strict",
        "--json",
        "--read-write-mode",
        *restrictions,
        "--expr",
        WRAPPER,
        "--argstr",
        "request",
        evaluation_request(file, attrs, cacheable_files, system),
    )


# A kept evaluation always exits 0 and says Nix's exit code last on stderr: a refusal is then an
# ordinary successful result, cached (locally and remotely) like any other until the files change.
KEPT_WRAPPER = '"$@"; status=$?; printf "\\n%s%d\\n" "pants-nix-docker-exit: " "$status" >&2; exit 0'
_KEPT_EXIT = re.compile(r"pants-nix-docker-exit: (\d+)\s*$")


def kept_exit_code(stderr: str) -> tuple[int, str]:
    """Nix's exit code in a kept evaluation's stderr (`KEPT_WRAPPER`), and what Nix said."""
    match = _KEPT_EXIT.search(stderr)
    if match is None:
        raise EvaluationOutputError(f"the evaluation did not say how Nix exited: {stderr[-200:]!r}")
    return int(match.group(1)), stderr[: match.start()].rstrip()


def parse_evaluation(stdout: str, attrs: tuple[Attribute, ...]) -> dict[Attribute, tuple[str, ...]]:
    """Attribute -> its `DRV!OUTPUT` strings, from the wrapper's JSON."""
    try:
        printed = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise EvaluationOutputError(f"Nix printed no JSON ({e}): {stdout[:200]!r}")
    if (
        not isinstance(printed, list)
        or len(printed) != len(attrs)
        or not all(isinstance(d, list) and all(isinstance(s, str) and "!" in s for s in d) for d in printed)
    ):
        raise EvaluationOutputError(f"expected a list of {len(attrs)} lists of DRV!OUTPUT strings: {stdout[:200]!r}")
    return {attr: tuple(found) for attr, found in zip(attrs, printed)}


def refusal(stderr: str) -> str:
    """Why a cacheable evaluation failed, as the end of "because it ...": the impurity it met, or
    Nix's first error."""
    for pattern, phrase in _REFUSALS:
        match = pattern.search(stderr)
        if match:
            return phrase.format(match.group(1).strip())
    errors = [line.strip() for line in stderr.splitlines() if line.strip().startswith("error:")]
    said = errors[0] if errors else stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return f"failed when restricted to the files Pants tracks ({said[:300]})"


def is_missing_derivation(stderr: str) -> bool:
    """A realise failed because the `.drv` a kept evaluation named is no longer in the store (a
    garbage collection, or a cache filled on another machine)."""
    return bool(_MISSING_DERIVATION.search(stderr))
