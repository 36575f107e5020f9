"""Which files a `.nix` file names by path literal, read from the output of Nix's own parser.

`nix-instantiate --parse FILE` prints the expression back with every path literal resolved to an
absolute path and every string (indented ones too) in double quotes:

    (import /root/pkgs/lib.nix)                 import ./lib.nix
    ("cp " + /root/pkgs/fix.sh + " $out")       "cp ${./fix.sh} $out"
    (/root/pkgs/x + "/" + name + ".nix")        ./x + "/${name}.nix"   (only `x` is known)
    (__findFile __nixPath "nixpkgs")            <nixpkgs>

So the literals are the absolute paths outside strings; one that starts a `+` chain is the fixed
prefix of a path computed at evaluation time.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
# A path token: `/` then a path character; `//` is Nix's attribute-set update operator.
_PATH = re.compile(r"(?<![\w.+\-/~])/(?!/)[A-Za-z0-9._+\-][A-Za-z0-9._+\-/]*")
_SEARCH_PATH = re.compile(r"__findFile __nixPath \"([^\"]*)\"")


@dataclass(frozen=True)
class PathLiteral:
    path: str  # relative to the directory the file was parsed in (the build root), normalised
    computed: bool  # only the fixed prefix of a path computed at evaluation (`./x + name`)


@dataclass(frozen=True)
class ParsedNixFile:
    literals: tuple[PathLiteral, ...]  # inside the build root, in order of appearance, unique
    outside: tuple[str, ...]  # absolute literals outside it (host paths such as /usr/lib)
    search_paths: tuple[str, ...]  # `<name>` lookups through NIX_PATH, which make it impure


def parse_path_literals(parse_output: str, root: str) -> ParsedNixFile:
    """The path literals of `nix-instantiate --parse` output for a file parsed under `root`."""
    search_paths = tuple(dict.fromkeys(_SEARCH_PATH.findall(parse_output)))
    # Blank out strings (keeping their quotes) so that text inside them is never a path.
    code = _STRING.sub('""', parse_output)
    root = root.rstrip("/")
    literals: dict[PathLiteral, None] = {}
    outside: dict[str, None] = {}
    for match in _PATH.finditer(code):
        absolute = posixpath.normpath(match.group(0))
        before, after = code[: match.start()].rstrip(), code[match.end() :].lstrip()
        computed = before.endswith("(") and after.startswith("+")
        if absolute == root or absolute.startswith(root + "/"):
            literals[PathLiteral(posixpath.relpath(absolute, root), computed)] = None
        else:
            outside[absolute] = None
    return ParsedNixFile(tuple(literals), tuple(outside), search_paths)


def literal_line(source: str, file_path: str, literal: str) -> int | None:
    """The line of `file_path` (text `source`) that spells `literal` (build-root relative), for
    messages; None when it is not written out as such."""
    spelled = posixpath.relpath(literal, posixpath.dirname(file_path) or ".")
    candidates = [spelled] if spelled.startswith("../") else [f"./{spelled}"]
    for number, line in enumerate(source.splitlines(), start=1):
        if any(re.search(re.escape(c) + r"(?![\w.+\-/])", line) for c in candidates):
            return number
    return None
