"""Issue #6: what is in an image. The report against the archive and `nix why-depends`, the SBOM
against the SPDX 2.3 schema, forbidden references and size budgets."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import jsonschema
import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from nix_docker_e2e.harness import Repo, run
from nix_docker_e2e.oci_archive import index_of, manifest_digest

SCHEMA = Path(__file__).parent / "vendor/spdx-2.3-schema.json"
NIX = "//build-support/nix/default.nix"
EXAMPLES = ("hello", "python", "python-app")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = Repo.copy_to(tmp_path_factory.mktemp("report") / "repo")
    repo.pants("package", *(f"examples/{name}:image" for name in EXAMPLES)).assert_success()
    return repo


def blob(archive: Path, digest: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
        assert member is not None
        return member.read()


@pytest.mark.parametrize("example", EXAMPLES)
def test_report_adds_up_to_the_image_and_its_chains_are_nix_s(repo: Repo, example: str) -> None:
    archive = repo.root / f"dist/examples.{example}/image.tar"
    report = json.loads((repo.root / f"dist/examples.{example}/image.report.json").read_text())
    manifest = json.loads(blob(archive, manifest_digest(archive)))
    assert report["image"]["manifest_digest"] == manifest_digest(archive) == index_of(archive)["manifests"][0]["digest"]
    # Sizes: the report's layers are the manifest's, and everything adds up to what a registry stores.
    assert [(layer["digest"], layer["size"]) for layer in report["layers"]] == [
        (layer["digest"], layer["size"]) for layer in manifest["layers"]
    ]
    stored = (
        manifest["config"]["size"]
        + len(blob(archive, manifest_digest(archive)))
        + sum(layer["size"] for layer in manifest["layers"])
    )
    assert report["image"]["size"] == stored
    # Exactly the closure, each path in the layer that holds it.
    closure = set(run(["nix-store", "--query", "--requisites", *report["roots"]], check=True).stdout.split())
    assert set(report["store_paths"]) == closure
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for path, info in report["store_paths"].items():
        layer = report["layers"][info["layer"]]
        assert path in layer["store_paths"] and f"blobs/sha256/{layer['digest'][7:]}" in names
        chain = info["chain"]
        assert chain[0] in report["roots"] and chain[-1] == path
        # Each step is a direct reference, and Nix agrees the root depends on the path.
        for a, b in zip(chain, chain[1:]):
            assert b in run(["nix-store", "--query", "--references", a], check=True).stdout.split()
        if len(chain) > 1:
            why = run(["nix", "--extra-experimental-features", "nix-command", "why-depends", chain[0], path])
            assert why.returncode == 0 and path.split("-", 1)[1] in why.stdout, why.stdout + why.stderr


def test_sbom_is_valid_spdx_2_3_and_lists_exactly_the_closure(repo: Repo) -> None:
    archive = repo.root / "dist/examples.python-app/image.tar"
    sbom_file = repo.root / "dist/examples.python-app/image.spdx.json"
    sbom = json.loads(sbom_file.read_text())
    jsonschema.validate(sbom, json.loads(SCHEMA.read_text()))
    report = json.loads((repo.root / "dist/examples.python-app/image.report.json").read_text())
    store = [p for p in sbom["packages"] if p["comment"].startswith("Nix store path")]
    comments = {p["comment"].split(";")[0].split()[-1] for p in store}
    assert comments == set(report["store_paths"]) and len(store) == len(report["store_paths"])
    python = next(p for p in sbom["packages"] if p["name"] == "python3")
    assert python["versionInfo"] == "3.11.2" and len(python["checksums"][0]["checksumValue"]) == 64
    depends = sum(1 for r in sbom["relationships"] if r["relationshipType"] == "DEPENDS_ON")
    assert depends == sum(len(p["references"]) for p in report["store_paths"].values())
    # The image names its SBOM by digest.
    import hashlib

    manifest = json.loads(blob(archive, manifest_digest(archive)))
    assert (
        manifest["annotations"]["dev.pants-nix-docker.sbom.digest"]
        == "sha256:" + hashlib.sha256(sbom_file.read_bytes()).hexdigest()
    )


def test_sbom_lists_the_pex_and_its_distributions_with_the_lockfiles_hashes(repo: Repo) -> None:
    sbom_file = repo.root / "dist/examples.python-app/image.spdx.json"
    sbom = json.loads(sbom_file.read_text())
    (pex,) = [f for f in sbom["files"] if f["fileName"] == "./app/app.pex"]
    assert "examples/python-app:app" in pex["comment"]
    (pyyaml,) = [p for p in sbom["packages"] if p["name"] == "PyYAML"]
    assert pyyaml["versionInfo"] == "6.0.2"
    assert pyyaml["externalRefs"][0]["referenceLocator"] == "pkg:pypi/pyyaml@6.0.2"
    # The hash is the lockfile's, for the very file the PEX holds.
    lock = (repo.root / "3rdparty/python/python-app.lock").read_text()
    body = json.loads("\n".join(line for line in lock.splitlines() if not line.startswith("//")))
    locked = {
        a["url"].rsplit("/", 1)[-1]: a["hash"]
        for r in body["locked_resolves"][0]["locked_requirements"]
        for a in r["artifacts"]
    }
    assert pyyaml["checksums"] == [{"algorithm": "SHA256", "checksumValue": locked[pyyaml["packageFileName"]]}]
    contains = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in sbom["relationships"]}
    assert (pex["SPDXID"], pyyaml["SPDXID"]) in contains
    # spdx-tools (what `pyspdxtools -i FILE` runs), the reference implementation, parses and
    # validates it: SPDX 2.3's rules beyond the schema, such as a SHA1 on every file.
    messages = validate_full_spdx_document(parse_file(str(sbom_file)))
    assert messages == [], [m.validation_message for m in messages]


def test_forbidden_references_and_size_budget(repo: Repo) -> None:
    with repo.broken_targets("testprojects/policy"):
        repo.write(
            "testprojects/policy/BUILD",
            f'nix_docker_image(name="allowed", packages=["{NIX}#python3"], forbidden_references=["*-gcc-*", "ghc-*"])\n'
            f'nix_docker_image(name="forbidden", packages=["{NIX}#python3"], forbidden_references=["ncurses-*"])\n'
            f'nix_docker_image(name="budget", packages=["{NIX}#python3"], max_image_size="5MB")\n',
        )
        repo.pants("package", "testprojects/policy:allowed").assert_success()
        forbidden = repo.pants("package", "testprojects/policy:forbidden")
        assert forbidden.returncode != 0
        for words in [
            "testprojects/policy:forbidden",
            "'forbidden_references'",
            "ncurses-6.4 matches 'ncurses-*'",
            "pulled in by: python3-3.11.2 -> ncurses-6.4",
        ]:
            assert words in forbidden.stderr, (words, forbidden.stderr[-2000:])
        budget = repo.pants("package", "testprojects/policy:budget")
        assert budget.returncode != 0
        for words in [
            "testprojects/policy:budget",
            "'max_image_size' of 5.0 MB",
            "largest contributors",
            "python3-3.11.2 (via python3-3.11.2)",
        ]:
            assert words in budget.stderr, (words, budget.stderr[-2000:])
        dist = repo.root / "dist/testprojects.policy"
        assert sorted(p.name for p in dist.iterdir()) == ["allowed.report.json", "allowed.spdx.json", "allowed.tar"]


def test_the_report_goal_fits_100_columns_and_answers_why(repo: Repo) -> None:
    report = repo.pants("nix-image-report", "examples/python-app:image").assert_success()
    lines = report.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any("total (18 layers)" in line for line in lines) and "python3-3.11.2" in report.stdout
    why = repo.pants("nix-image-report", "--why=readline-*", "examples/python-app:image").assert_success()
    assert "1 store path(s) match 'readline-*'" in why.stdout
    assert "-python3-3.11.2" in why.stdout and "-> /nix/store/" in why.stdout


def test_closure_graph_and_what_the_image_names(repo: Repo) -> None:
    with repo.broken_targets("testprojects/graph"):
        repo.write(
            "testprojects/graph/BUILD",
            f'nix_docker_image(name="g", packages=["{NIX}#hello", "{NIX}#busybox"], '
            f'entrypoint=["${{pkgs.hello}}/bin/hello"], '
            "usr_bin_env=True, closure_graph=True)\n"
            f'nix_docker_image(name="dangling", packages=["{NIX}#hello"], env={{"TOOL": '
            f'"/nix/store/{"0" * 32}-gone/bin/tool"}})\n',
        )
        repo.pants("package", "testprojects/graph:g").assert_success()
        dist = repo.root / "dist/testprojects.graph"
        report = json.loads((dist / "g.report.json").read_text())
        dot = (dist / "g.closure.dot").read_text()
        assert dot.count("[label=") == len(report["store_paths"])
        assert dot.count(" -> ") == sum(len(p["references"]) for p in report["store_paths"].values())
        assert (dist / "g.closure.svg").read_text().lstrip().startswith("<?xml") and "<svg" in (
            dist / "g.closure.svg"
        ).read_text()
        hello = next(p for p in report["store_paths"] if p.endswith("-hello-1.0"))
        assert "config Entrypoint" in report["store_paths"][hello]["referenced_by"]
        why = repo.pants("nix-image-report", "--why=busybox-*", "testprojects/graph:g").assert_success()
        assert "named by the image: /usr/bin/env candidate (usr_bin_env)" in why.stdout
        # A config naming a store path the image does not hold is a broken image: refused.
        dangling = repo.pants("package", "testprojects/graph:dangling")
        assert dangling.returncode != 0
        for words in [
            "'env' field in target testprojects/graph:dangling",
            "-gone (Env TOOL), which is not in the image",
            "${pkgs.NAME}",
        ]:
            assert words in dangling.stderr, (words, dangling.stderr[-2000:])
