from __future__ import annotations

import hashlib

import pytest

from pants_backend_nix_docker.nix.closure import Closure, StorePath
from pants_backend_nix_docker.nix.graph import closure_dot
from pants_backend_nix_docker.nix.references import (
    config_references,
    file_references,
    forbidden_paths,
    matches,
    shortest_chains,
)
from pants_backend_nix_docker.nix.report import ReportLayer, image_report, largest_paths, render_report, render_why
from pants_backend_nix_docker.nix.sbom import name_and_version, nar_hash_hex, spdx_document
from pants_backend_nix_docker.oci.artifact_contents import ArtifactFile, PythonDistribution


def sp(name: str) -> str:
    return (
        "/nix/store/"
        + hashlib.sha256(name.encode()).hexdigest()[:32].translate(str.maketrans("eotu", "abcd"))
        + "-"
        + name
    )


APP, PY, GLIBC, GCC, ZLIB = (
    sp("app-1.0"),
    sp("python3-3.11.2"),
    sp("glibc-2.36"),
    sp("gcc-12.2.0-lib"),
    sp("zlib-1.2.13"),
)


def closure() -> Closure:
    refs: dict[str, list[str]] = {APP: [PY, ZLIB], PY: [GLIBC, GCC, ZLIB], GCC: [GLIBC], ZLIB: [GLIBC], GLIBC: []}
    sizes = {APP: 1_000, PY: 30_000_000, GLIBC: 3_000_000, GCC: 8_000_000, ZLIB: 100_000}
    return Closure({p: StorePath(p, sizes[p], "sha256-" + "A" * 43 + "=", tuple(sorted(r))) for p, r in refs.items()})


def test_shortest_chains_start_at_a_root() -> None:
    chains = shortest_chains(closure(), [APP])
    assert chains[APP] == (APP,)
    assert chains[ZLIB] == (APP, ZLIB)  # not via python
    assert chains[GCC] == (APP, PY, GCC)
    assert len(chains[GLIBC]) == 3


def test_patterns_match_names_or_paths() -> None:
    assert matches("*-gcc-*", GCC) and matches("gcc-*", GCC)
    assert not matches("ghc-*", GCC)
    assert matches("python3-3.11*", PY)
    assert matches(GLIBC[:20] + "*", GLIBC)


def test_why_and_forbidden_give_the_chain() -> None:
    c = closure()
    report = image_report(
        address="app:image",
        repository="app",
        tags=["latest"],
        manifest_digest="sha256:" + "9" * 64,
        config_size=1,
        manifest_size=1,
        layers=[],
        closure=c,
        roots=[APP],
        chains=shortest_chains(c, [APP]),
    )
    [found] = largest_paths(report, "gcc-*")
    assert found.path == GCC and found.chain == (APP, PY, GCC)
    [(pattern, path, chain)] = forbidden_paths(c, shortest_chains(c, [APP]), ["*-gcc-*", "ghc-*"])
    assert (pattern, path, chain) == ("*-gcc-*", GCC, (APP, PY, GCC))


def test_report_sizes_add_up_and_render_in_100_columns() -> None:
    c = closure()
    layers = [
        ReportLayer("sha256:" + "1" * 64, 2_000_000, 3_100_000, "nix store paths: glibc-2.36", (GLIBC,)),
        ReportLayer(
            "sha256:" + "2" * 64, 12_000_000, 38_000_000, "nix store paths: python3 and 3 more", (PY, GCC, ZLIB, APP)
        ),
        ReportLayer("sha256:" + "3" * 64, 10_000, 150_000, "image root filesystem"),
    ]
    report = image_report(
        address="app:image",
        repository="app",
        tags=["latest"],
        manifest_digest="sha256:" + "9" * 64,
        config_size=900,
        manifest_size=700,
        layers=layers,
        closure=c,
        roots=[APP],
        chains=shortest_chains(c, [APP]),
    )
    assert report.size == 900 + 700 + sum(layer.size for layer in layers)
    written = report.to_json()  # what NAME.report.json holds
    assert written["image"]["size"] == report.size and written["totals"]["layers"] == 3
    assert written["totals"]["nar_size"] == sum(p["nar_size"] for p in written["store_paths"].values())
    assert written["store_paths"][GCC]["layer"] == 1 and written["store_paths"][GCC]["chain"] == [APP, PY, GCC]
    text = render_report(report)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "gcc-12.2.0-lib  (via python3-3.11.2 <- app-1.0)" in text


@pytest.mark.parametrize(
    "name, expected",
    [
        ("python3-3.11.2", ("python3", "3.11.2")),
        ("nss-cacert-20230311+deb12u1", ("nss-cacert", "20230311+deb12u1")),
        ("gcc-12.2.0-lib", ("gcc", "12.2.0-lib")),
        ("hello", ("hello", None)),
        ("patchelf-host", ("patchelf-host", None)),
    ],
)
def test_name_and_version(name: str, expected: tuple) -> None:
    assert name_and_version(name) == expected


def test_nar_hash_forms_agree() -> None:
    # One hash as Nix 2.8 prints it: SRI, base32 (`nix hash to-base32`) and base16 (`to-base16`).
    hex_value = "92c375320bf75857df882d3cf1d1d6ee2b87d47f91c514a055e2a4e1558d8514"
    assert nar_hash_hex("sha256-ksN1Mgv3WFffiC088dHW7iuH1H+RxRSgVeKk4VWNhRQ=") == hex_value
    assert nar_hash_hex("sha256:0545imay3972anh19icigza8fazfsv8z2g1di3gmfn7p1cr7bhwj") == hex_value
    assert nar_hash_hex("sha256:" + hex_value) == hex_value
    assert nar_hash_hex("md5:abc") is None


def test_spdx_lists_the_closure_and_its_references() -> None:
    c = closure()
    doc = spdx_document(
        name="app", namespace="https://example.com/spdx/app", created="1970-01-01T00:00:01Z", closure=c, roots=[APP]
    )
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert len(doc["packages"]) == len(c.paths)
    depends = [r for r in doc["relationships"] if r["relationshipType"] == "DEPENDS_ON"]
    assert len(depends) == sum(len(p.references) for p in c.paths.values())
    assert [r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"] == [
        "SPDXRef-" + APP[11:]
    ]


def test_dot_has_a_node_per_path_and_an_edge_per_reference() -> None:
    dot = closure_dot(closure(), [APP])
    assert dot.count("[label=") == 5 and dot.count(" -> ") == 7


def test_what_the_image_names_outside_the_store() -> None:
    config = {
        "Entrypoint": [f"{PY}/bin/python3", "/app/app.pex"],
        "Env": [f"PATH={PY}/bin:/bin", f"SSL_CERT_FILE={ZLIB}/etc/x"],
        "WorkingDir": "/data",
        "Labels": {"built-with": APP},
    }
    assert config_references(config) == {
        PY: ["Entrypoint", "Env PATH"],
        ZLIB: ["Env SSL_CERT_FILE"],
        APP: ["Labels built-with"],
    }
    links = [("/usr/bin/env", f"{GLIBC}/bin/env"), ("/bin/* (paths_to_link)", PY), ("/etc/motd", "/etc/issue")]
    assert file_references(links) == {GLIBC: ["/usr/bin/env"], PY: ["/bin/* (paths_to_link)"]}


def test_why_rendering_shows_the_chain_and_who_names_it() -> None:
    c = closure()
    layers = [ReportLayer("sha256:" + "1" * 64, 10, 20, "all", tuple(c.paths))]
    report = image_report(
        address="app:image",
        repository="app",
        tags=["latest"],
        manifest_digest="sha256:" + "9" * 64,
        config_size=1,
        manifest_size=1,
        layers=layers,
        closure=c,
        roots=[APP],
        chains=shortest_chains(c, [APP]),
        referenced_by={PY: ["config Entrypoint"]},
    )
    text = render_why(report, "python3-*")
    assert "1 store path(s) match 'python3-*'" in text
    assert "named by the image: config Entrypoint" in text
    assert f"    {APP}\n      -> {PY}" in text
    assert "no store path matches 'ghc-*' (5 paths in the image)" in render_why(report, "ghc-*")


def test_spdx_lists_the_pants_artifacts_and_the_distributions_in_a_pex() -> None:
    dist = PythonDistribution("PyYAML", "6.0.2", "PyYAML-6.0.2-cp311-cp311-linux_x86_64.whl", "a" * 64)
    artifacts = (
        ArtifactFile("/app/app.pex", "examples/python-app:app", "1" * 40, "2" * 64, 1000, (dist,)),
        ArtifactFile("/app/config.yaml", "files", "3" * 40, "4" * 64, 10),
    )
    doc = spdx_document(
        name="app",
        namespace="https://example.com/spdx/app",
        created="1970-01-01T00:00:01Z",
        closure=closure(),
        roots=[APP],
        artifacts=artifacts,
    )
    assert [f["fileName"] for f in doc["files"]] == ["./app/app.pex", "./app/config.yaml"]
    assert [c["algorithm"] for c in doc["files"][0]["checksums"]] == ["SHA1", "SHA256"]
    (pypi,) = [p for p in doc["packages"] if p["name"] == "PyYAML"]
    assert pypi["versionInfo"] == "6.0.2" and pypi["checksums"] == [{"algorithm": "SHA256", "checksumValue": "a" * 64}]
    assert pypi["externalRefs"][0]["referenceLocator"] == "pkg:pypi/pyyaml@6.0.2"
    described = {r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"}
    assert {f["SPDXID"] for f in doc["files"]} <= described
    contains = [
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in doc["relationships"]
        if r["relationshipType"] == "CONTAINS"
    ]
    assert contains == [(doc["files"][0]["SPDXID"], pypi["SPDXID"])]
    # No artifacts: the document has no files key, as before.
    plain = spdx_document(name="app", namespace="n", created="1970-01-01T00:00:01Z", closure=closure(), roots=[APP])
    assert "files" not in plain
