"""Finding Nix, and reading a runtime closure from the Nix store.

Processes that answer "what is in the store now" (a realise may build, a garbage collection may
delete) are cached for one Pants run at most (`PER_SESSION`) and never persisted locally or
remotely. What comes after (layers keyed by store paths) is cached for good.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.addresses import Address
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from pants_backend_nix_docker.nix.closure import Closure, ClosureError, parse_path_info
from pants_backend_nix_docker.nix.version import MINIMUM, format_version, is_supported, parse_nix_version
from pants_backend_nix_docker.subsystems.nix import NixSubsystem
from pants_backend_nix_docker.target_types import NixImagePackagesField

_NIX_PROGRAMS = ("nix", "nix-instantiate", "nix-store")
_EXPERIMENTAL = ("--extra-experimental-features", "nix-command flakes")
_STDERR_TAIL_LINES = 25


class NixNotFoundError(Exception):
    pass


class NixRealiseError(Exception):
    pass


@dataclass(frozen=True)
class NixBinaries:
    """Absolute paths of the Nix programs, or None for each one that is missing."""

    nix: str | None
    nix_instantiate: str | None
    nix_store: str | None
    search_path: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    # What `nix --version` said, parsed; None when `nix` is missing or printed no version.
    version: tuple[int, ...] | None = None

    def require(self, address: Address) -> "NixBinaries":
        missing = [
            name for name, path in zip(_NIX_PROGRAMS, (self.nix, self.nix_instantiate, self.nix_store)) if not path
        ]
        wanted = format_version(MINIMUM)
        if missing:
            raise NixNotFoundError(
                f"{address} needs Nix to realise its `{NixImagePackagesField.alias}`, but "
                f"{', '.join(f'`{m}`' for m in missing)} {'was' if len(missing) == 1 else 'were'} not found on the "
                "search path "
                f"{list(self.search_path)} ([nix].executable_search_paths). Install Nix {wanted} or "
                "newer (on Debian `apt-get install nix-bin`, or run build-support/bootstrap/install-prerequisites.sh), "
                "or point [nix].executable_search_paths at it."
            )
        if self.version is not None and not is_supported(self.version):
            raise NixNotFoundError(
                f"{address} needs Nix {wanted} or newer to realise its `{NixImagePackagesField.alias}`, but "
                f"{self.nix} is Nix {format_version(self.version)}. Install a newer Nix, or point "
                "[nix].executable_search_paths at one."
            )
        return self

    def process(
        self,
        argv: tuple[str, ...],
        description: str,
        # The answer is about the store now: realising may build, a garbage collection may
        # delete. Reuse it within one run at most; never persist it, locally or remotely.
        cache_scope: ProcessCacheScope = ProcessCacheScope.PER_SESSION,
        *,
        # For a kept (cacheable) process: what its key must hold besides argv, in place of the
        # user's Nix environment ([nix].env_vars), which would make the key differ per user.
        key: dict[str, str] | None = None,
        # Set apart a process from an identical one earlier in the same run, whose result Pants
        # would otherwise reuse.
        attempt: int = 1,
    ) -> Process:
        # Processes start with an empty environment; builders and `nix` itself need a PATH.
        path_dirs = sorted({os.path.dirname(p) for p in (self.nix, self.nix_instantiate, self.nix_store) if p})
        return Process(
            argv=argv,
            env={
                "PATH": os.pathsep.join(path_dirs),
                **(dict(self.env) if key is None else key),
                **({"PANTS_NIX_DOCKER_ATTEMPT": str(attempt)} if attempt > 1 else {}),
            },
            description=description,
            level=LogLevel.DEBUG,
            cache_scope=cache_scope,
        )


@rule(desc="Finding Nix", level=LogLevel.DEBUG)
async def find_nix(nix: NixSubsystem.EnvironmentAware) -> NixBinaries:
    search_path = nix.executable_search_path
    requests = [
        BinaryPathRequest(binary_name=name, search_path=search_path, test=BinaryPathTest(["--version"]))
        for name in _NIX_PROGRAMS
    ]
    paths = await MultiGet(Get(BinaryPaths, BinaryPathRequest, r) for r in requests)
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(nix.env_vars))
    nix_path, nix_instantiate, nix_store = (p.first_path.path if p.first_path else None for p in paths)
    binaries = NixBinaries(nix_path, nix_instantiate, nix_store, tuple(search_path), tuple(sorted(env.items())))
    if binaries.nix is None:
        return binaries
    # The same path can hold another Nix after an upgrade: ask again whenever pantsd restarts.
    version_process = binaries.process(
        (binaries.nix, "--version"), "Reading the Nix version", ProcessCacheScope.PER_RESTART_SUCCESSFUL
    )
    result = await Get(FallibleProcessResult, Process, version_process)
    version = parse_nix_version(result.stdout.decode(errors="replace")) if result.exit_code == 0 else None
    return dataclasses.replace(binaries, version=version)


def stderr_tail(result: FallibleProcessResult) -> str:
    lines = result.stderr.decode(errors="replace").rstrip().splitlines()
    return "\n".join(f"    {line}" for line in lines[-_STDERR_TAIL_LINES:]) or "    (no output)"


@dataclass(frozen=True)
class ClosureRequest:
    roots: tuple[str, ...]
    address: Address = field(compare=False)  # for messages only, like RealiseRequest's

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(sorted(set(self.roots))))


@rule(desc="Computing the runtime closure", level=LogLevel.DEBUG)
async def compute_closure(request: ClosureRequest, nix: NixBinaries) -> Closure:
    nix.require(request.address)
    argv = (nix.nix or "nix", *_EXPERIMENTAL, "path-info", "--recursive", "--json", *request.roots)
    result = await Get(
        FallibleProcessResult, Process, nix.process(argv, f"Computing the runtime closure of {request.address}")
    )
    if result.exit_code != 0:
        raise NixRealiseError(
            f"{request.address}: `nix path-info` failed for its realised packages:\n"
            f"{stderr_tail(result)}\nWere store paths garbage-collected during the build? Run "
            "`pants package` again."
        )
    try:
        return parse_path_info(result.stdout.decode())
    except ClosureError as e:
        raise NixRealiseError(f"{request.address}: {e}")


def rules():
    return collect_rules()
