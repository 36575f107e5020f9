"""The SPDX 2.3 document of an image: one package per store path, with its name, version and NAR
hash, and the Pants artifacts (files, and the PyPI distributions inside a PEX). Pure."""

from __future__ import annotations

import base64
import re
from typing import Any, Iterable, Sequence

from pants_backend_nix_docker.nix.closure import Closure
from pants_backend_nix_docker.oci.artifact_contents import ArtifactFile

NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


_VERSION_RE = re.compile(r"^(.+?)-(\d.*)$")


def name_and_version(store_name: str) -> tuple[str, str | None]:
    """`python3-3.11.2` -> (python3, 3.11.2), as Nix's parseDrvName splits: at the first dash
    followed by a digit. No such dash: no version."""
    match = _VERSION_RE.match(store_name)
    return (match.group(1), match.group(2)) if match else (store_name, None)


def nar_hash_hex(nar_hash: str) -> str | None:
    """A NAR hash (`sha256-BASE64`, `sha256:NIX32` or `sha256:HEX`) as lowercase hex."""
    if nar_hash.startswith("sha256-"):
        return base64.b64decode(nar_hash[len("sha256-") :]).hex()
    if not nar_hash.startswith("sha256:"):
        return None
    value = nar_hash[len("sha256:") :]
    if len(value) == 64:
        return value.lower()
    if len(value) != 52:
        return None
    out = bytearray(32)
    for n, char in enumerate(reversed(value)):
        digit = NIX32_ALPHABET.index(char)
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (digit << j) & 0xFF
        if i + 1 < 32:
            out[i + 1] |= digit >> (8 - j)
    return out.hex()


def _spdx_id(path: str) -> str:
    # SPDX ids allow letters, digits, '.' and '-'; the store hash makes each unique.
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", path[len("/nix/store/") :])


def _artifact_elements(artifacts: Sequence[ArtifactFile]) -> tuple[list, list, list]:
    """(files, packages, relationships) of the Pants artifacts: each a file the document
    describes, and each Python distribution in a PEX a PyPI package the file contains."""
    files, packages, relationships, seen = [], [], [], set()
    for n, artifact in enumerate(sorted(artifacts, key=lambda a: a.path)):
        file_id = f"SPDXRef-Artifact-{n}"
        files.append(
            {
                "SPDXID": file_id,
                "fileName": "." + artifact.path,
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": artifact.sha1},
                    {"algorithm": "SHA256", "checksumValue": artifact.sha256},
                ],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": f"Pants artifact from {artifact.origin}; {artifact.size} bytes",
            }
        )
        relationships.append(
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": file_id}
        )
        for dist in artifact.distributions:
            dist_id = "SPDXRef-PyPI-" + re.sub(
                r"[^A-Za-z0-9.-]", "-", f"{dist.name}-{dist.version}-{dist.sha256 or ''}"
            )
            if dist_id not in seen:
                seen.add(dist_id)
                package: dict[str, Any] = {
                    "SPDXID": dist_id,
                    "name": dist.name,
                    "versionInfo": dist.version,
                    "packageFileName": dist.filename,
                    "downloadLocation": "NOASSERTION",
                    "filesAnalyzed": False,
                    "licenseConcluded": "NOASSERTION",
                    "licenseDeclared": "NOASSERTION",
                    "copyrightText": "NOASSERTION",
                    "externalRefs": [
                        {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": dist.purl}
                    ],
                    "comment": "Python distribution in a PEX; its checksum is the resolve's lockfile's",
                }
                if dist.sha256:
                    package["checksums"] = [{"algorithm": "SHA256", "checksumValue": dist.sha256}]
                packages.append(package)
            relationships.append(
                {"spdxElementId": file_id, "relationshipType": "CONTAINS", "relatedSpdxElement": dist_id}
            )
    return files, packages, relationships


def spdx_document(
    *,
    name: str,
    namespace: str,
    created: str,
    closure: Closure,
    roots: Iterable[str],
    artifacts: Sequence[ArtifactFile] = (),
) -> dict[str, Any]:
    """An SPDX 2.3 document: one package per store path, DEPENDS_ON per reference, and the Pants
    artifacts with the Python distributions their PEXes hold."""
    packages = []
    for path, info in sorted(closure.paths.items()):
        pkg_name, version = name_and_version(info.name)
        package: dict[str, Any] = {
            "SPDXID": _spdx_id(path),
            "name": pkg_name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": f"Nix store path {path}; NAR size {info.nar_size}; checksum is the NAR hash",
        }
        if version:
            package["versionInfo"] = version
        hex_hash = nar_hash_hex(info.nar_hash)
        if hex_hash:
            package["checksums"] = [{"algorithm": "SHA256", "checksumValue": hex_hash}]
        packages.append(package)
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": _spdx_id(root)}
        for root in sorted(set(roots))
    ]
    relationships += [
        {"spdxElementId": _spdx_id(path), "relationshipType": "DEPENDS_ON", "relatedSpdxElement": _spdx_id(ref)}
        for path, info in sorted(closure.paths.items())
        for ref in info.references
    ]
    artifact_files, artifact_packages, artifact_relationships = _artifact_elements(artifacts)
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": namespace,
        "creationInfo": {"created": created, "creators": ["Tool: pants-nix-docker"]},
        "packages": packages + artifact_packages,
        "relationships": relationships + artifact_relationships,
    }
    # Without artifacts the document is what it was: images without any keep their SBOM digest.
    return {**document, "files": artifact_files} if artifact_files else document
