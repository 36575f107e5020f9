from __future__ import annotations

from pants.engine.addresses import Address

from pants_backend_nix_docker.util_rules.nix_sources import OwnerChoice, choose_owner

NIX = Address("nix", relative_file_path="lib.nix")
REPO = Address("", target_name="repo", relative_file_path="nix/lib.nix")
SCRIPTS = Address("nix", target_name="scripts", relative_file_path="fix.sh")
OTHER = Address("other", target_name="files", relative_file_path="fix.sh")


def test_a_nix_file_counts_only_through_its_nix_source() -> None:
    assert choose_owner("nix/lib.nix", [REPO, NIX], frozenset({NIX})) == OwnerChoice(NIX, ())
    # Owned only by a catch-all `files` target: no dependency (the image rule warns).
    assert choose_owner("nix/lib.nix", [REPO], frozenset()) == OwnerChoice(None, ())
    assert choose_owner("nix/flake.lock", [], frozenset()) == OwnerChoice(None, ())


def test_other_files_need_exactly_one_owner() -> None:
    assert choose_owner("nix/fix.sh", [SCRIPTS], frozenset({NIX})) == OwnerChoice(SCRIPTS, ())
    assert choose_owner("nix/fix.sh", [OTHER, SCRIPTS, SCRIPTS], frozenset()) == OwnerChoice(
        None, tuple(sorted([SCRIPTS, OTHER]))
    )
    assert choose_owner("nix/fix.sh", [], frozenset()) == OwnerChoice(None, ())
