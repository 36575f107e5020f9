"""What a Pants artifact in an image holds, for its SBOM: each file's SHA-1 and SHA-256 (an SPDX
file carries a SHA-1), and for a PEX the Python distributions inside it (its `PEX-INFO`), each
matched with its artifact in the resolve's lockfile for the sha256 pip checked it against. Pure."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class PythonDistribution:
    name: str  # as the wheel or sdist file spells it (`PyYAML`)
    version: str
    filename: str  # the distribution file PEX-INFO names
    sha256: str | None  # the lockfile's hash of that file, when the lockfile has it

    @property
    def purl(self) -> str:
        """The package URL of the PyPI distribution: the name normalised as PEP 503 says."""
        return f"pkg:pypi/{normalise(self.name)}@{self.version}"


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # where the image holds it (`/app/app.pex`)
    origin: str  # the target that built it, or "files"/"resources"
    sha1: str
    sha256: str
    size: int
    distributions: tuple[PythonDistribution, ...] = ()


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_DIST_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-]*)(-|\.tar\.gz$|\.zip$)")


def parse_distribution_filename(filename: str) -> tuple[str, str] | None:
    """(name, version) of a wheel (`PyYAML-6.0.2-cp311-...whl`) or sdist file name."""
    match = _DIST_RE.match(filename)
    return (match.group("name"), match.group("version")) if match else None


def lockfile_hashes(lockfile_text: str) -> dict[str, str]:
    """Distribution file name -> sha256, from a Pants/pex lockfile (JSON after `//` comments)."""
    body = "\n".join(line for line in lockfile_text.splitlines() if not line.lstrip().startswith("//"))
    lock = json.loads(body)
    hashes = {}
    for resolve in lock.get("locked_resolves", ()):
        for requirement in resolve.get("locked_requirements", ()):
            for artifact in requirement.get("artifacts", ()):
                if artifact.get("algorithm") == "sha256" and artifact.get("url"):
                    hashes[artifact["url"].rsplit("/", 1)[-1]] = artifact["hash"]
    return hashes


def pex_distributions(pex_info: Mapping[str, Any], hashes: Mapping[str, str]) -> tuple[PythonDistribution, ...]:
    """The distributions a PEX holds (its PEX-INFO `distributions`), sorted by name."""
    found = []
    for filename in pex_info.get("distributions", {}):
        parsed = parse_distribution_filename(filename)
        if parsed:
            found.append(PythonDistribution(parsed[0], parsed[1], filename, hashes.get(filename)))
    return tuple(sorted(found, key=lambda d: (normalise(d.name), d.version)))


def describe(path: str, origin: str, data: bytes, hashes: Mapping[str, str]) -> ArtifactFile:
    """An artifact file from its bytes; a PEX (a zip with a PEX-INFO) lists its distributions."""
    distributions: tuple[PythonDistribution, ...] = ()
    if data[:4] == b"PK\x03\x04" or b"PK\x05\x06" in data[-65536:]:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if "PEX-INFO" in zf.namelist():
                    distributions = pex_distributions(json.loads(zf.read("PEX-INFO")), hashes)
        except zipfile.BadZipFile:
            pass  # a file that merely looks like a zip: no PEX
    return ArtifactFile(
        path, origin, hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data), distributions
    )
