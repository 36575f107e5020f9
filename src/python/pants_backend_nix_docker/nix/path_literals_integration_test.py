"""The path-literal reader against what the real `nix-instantiate --parse` prints."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from pants_backend_nix_docker.nix.path_literals import PathLiteral, literal_line, parse_path_literals

SOURCE = textwrap.dedent(
    """\
    # ./not-a-literal.nix in a comment
    let
      lib = import ./lib.nix;
      common = import ../shared/common.nix;
      name = "x";
    in {
      a = lib.run { script = "cp ${./fix.sh} $out; echo '/root/in/a/string.nix'"; };
      b = builtins.path { path = ./data; name = "data"; };
      c = ./gen + "/${name}.nix";
      d = <nixpkgs>;
      e = /usr/lib/x86_64-linux-gnu;
      f = { } // { };
      g = ''
        indented ./also-not-a-literal.nix
      '';
      h = import ./lib.nix;
    }
    """
)


def test_literals_as_nix_parses_them(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "pkgs").mkdir(parents=True)
    (root / "pkgs/default.nix").write_text(SOURCE)
    printed = subprocess.run(
        ["nix-instantiate", "--parse", "pkgs/default.nix"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    parsed = parse_path_literals(printed, str(root))
    assert parsed.literals == (
        PathLiteral("pkgs/lib.nix", False),
        PathLiteral("shared/common.nix", False),
        PathLiteral("pkgs/fix.sh", False),
        PathLiteral("pkgs/data", False),
        PathLiteral("pkgs/gen", True),
    )
    assert parsed.outside == ("/usr/lib/x86_64-linux-gnu",)
    assert parsed.search_paths == ("nixpkgs",)
    assert [literal_line(SOURCE, "pkgs/default.nix", lit.path) for lit in parsed.literals] == [3, 4, 7, 8, 9]
