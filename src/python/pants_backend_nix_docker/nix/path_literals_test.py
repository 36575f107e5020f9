from __future__ import annotations

import textwrap

from pants_backend_nix_docker.nix.path_literals import PathLiteral, literal_line, parse_path_literals

# Output in the shape `nix-instantiate --parse` prints for a file in /build/pkgs (the integration
# test checks the parser against the real Nix).
PARSED = (
    '(let lib = (import /build/pkgs/lib.nix); in { a = (lib.run { script = ("cp " + /build/pkgs/fix.sh + '
    '" $out \\"/build/pkgs/in-a-string.nix\\""); }); b = /build/pkgs/data; c = (/build/pkgs/gen + "/" + name + '
    '".nix"); d = (__findFile __nixPath "nixpkgs"); e = /usr/lib/x86_64-linux-gnu; f = (x // y); '
    "g = /build/shared/common.nix; h = /elsewhere/x.nix; i = (import /build/pkgs/lib.nix); j = (10 / 2); })"
)


def test_literals_inside_the_build_root_in_order() -> None:
    parsed = parse_path_literals(PARSED, "/build")
    assert parsed.literals == (
        PathLiteral("pkgs/lib.nix", False),
        PathLiteral("pkgs/fix.sh", False),
        PathLiteral("pkgs/data", False),
        PathLiteral("pkgs/gen", True),
        PathLiteral("shared/common.nix", False),
    )


def test_host_paths_search_paths_and_strings() -> None:
    parsed = parse_path_literals(PARSED, "/build/")
    assert parsed.outside == ("/usr/lib/x86_64-linux-gnu", "/elsewhere/x.nix")
    assert parsed.search_paths == ("nixpkgs",)
    assert all("in-a-string" not in literal.path for literal in parsed.literals)


def test_the_line_that_spells_a_literal() -> None:
    source = textwrap.dedent(
        """\
        let
          lib = import ./lib.nix;
          common = import ../shared/common.nix;
        in lib.run { script = "cp ${./fix.sh} $out"; data = ./data; }
        """
    )
    assert literal_line(source, "pkgs/default.nix", "pkgs/lib.nix") == 2
    assert literal_line(source, "pkgs/default.nix", "shared/common.nix") == 3
    assert literal_line(source, "pkgs/default.nix", "pkgs/fix.sh") == 4
    assert literal_line(source, "pkgs/default.nix", "pkgs/data") == 4
    assert literal_line(source, "pkgs/default.nix", "pkgs/gone.nix") is None
    assert literal_line("x = ./lib.nixos;", "pkgs/a.nix", "pkgs/lib.nix") is None
