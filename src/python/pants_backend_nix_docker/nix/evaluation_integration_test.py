"""The evaluation wrapper against the real `nix-instantiate`: it selects what `nix-build -A` would
build, and its restricted form refuses exactly the impure expressions."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from pants_backend_nix_docker.nix.evaluation import Attribute, evaluation_argv, parse_evaluation, refusal


def drv(name: str, extra: str = "") -> str:
    return (
        f'derivation {{ name = "{name}"; system = builtins.currentSystem; builder = "/bin/sh"; '
        f'args = [ "-c" "echo {name} > $out" ]; {extra} }}'
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "lib.nix").write_text(f"{{ mk = name: {drv('${name}')}; env = builtins.getEnv \"HOME\"; }}\n")
    (tmp_path / "sub/default.nix").write_text("{ v = 1; }\n")
    (tmp_path / "untracked.txt").write_text("untracked")
    (tmp_path / "default.nix").write_text(
        textwrap.dedent(
            f"""\
            {{ greeting ? "hi" }}:
            let lib = import ./lib.nix; in
            {{
              plain = lib.mk "plain-${{greeting}}";
              nested.deeper = lib.mk "deeper";
              "dotted.name" = lib.mk "dotted";
              list = [ (lib.mk "l1") (lib.mk "l2") ];
              set = {{ s1 = lib.mk "s1"; notADerivation = 1; }};
              multi = {drv("multi", 'outputs = [ "out" "dev" ];')};
              env = lib.mk "env-${{toString (builtins.stringLength lib.env)}}";
              direct = lib.mk "direct-${{toString (builtins.stringLength (builtins.getEnv "USER"))}}";
              aliased = lib.mk "aliased-${{toString (builtins.stringLength (__getEnv "USER"))}}";
              time = lib.mk "time-${{toString builtins.currentTime}}";
              nixPath = import <nixpkgs>;
              reads = lib.mk (builtins.readFile ./untracked.txt);
              directory = lib.mk "dir-${{toString (import ./sub).v}}";
              unpinned = import (fetchTarball "file:///nonexistent.tar.gz");
            }}
            """
        )
    )
    return tmp_path


def evaluate(tree: Path, attrs: tuple[Attribute, ...], cacheable: bool) -> subprocess.CompletedProcess:
    files = tuple(str(tree / f) for f in ("default.nix", "lib.nix", "sub/default.nix")) if cacheable else None
    return subprocess.run(
        evaluation_argv("nix-instantiate", str(tree / "default.nix"), attrs, files), capture_output=True, text=True
    )


def nix_instantiate(tree: Path, attr: str) -> list[str]:
    """What `nix-instantiate FILE -A ATTR` prints: the derivations `nix-build` builds."""
    result = subprocess.run(
        ["nix-instantiate", str(tree / "default.nix"), "-A", attr], capture_output=True, text=True, check=True
    )
    return [line if "!" in line else f"{line}!out" for line in result.stdout.split()]


def test_it_selects_what_nix_build_builds(tree: Path) -> None:
    attrs = tuple(Attribute(a) for a in ("plain", "nested.deeper", '"dotted.name"', "list", "set", "multi"))
    result = evaluate(tree, attrs, cacheable=True)
    assert result.returncode == 0, result.stderr
    found = parse_evaluation(result.stdout, attrs)
    for attr in attrs:
        assert list(found[attr]) == nix_instantiate(tree, attr.path or ""), attr
    assert len(found[Attribute("list")]) == 2 and len(found[Attribute("set")]) == 1
    # The .drv files were written, so `nix-store --realise` needs no evaluation.
    built = subprocess.run(["nix-store", "--realise", *found[Attribute("plain")]], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert Path(built.stdout.strip()).read_text() == "plain-hi\n"


@pytest.mark.parametrize(
    "attr, why",
    [
        ("env", 'calls builtins.getEnv "HOME"'),  # in an imported file
        ("direct", 'calls builtins.getEnv "USER"'),
        ("aliased", 'calls builtins.getEnv "USER"'),
        ("time", "reads builtins.currentTime"),
        ("nixPath", "looks up <nixpkgs> in NIX_PATH"),
        ("reads", "reads {tree}/untracked.txt, which is not a file of its `nix_source` target"),
        ("directory", "reads {tree}/sub, which is not a file of its `nix_source` target"),
        ("unpinned", "calls fetchTarball without sha256"),
    ],
)
def test_impure_expressions_are_refused_and_say_why(tree: Path, attr: str, why: str) -> None:
    result = evaluate(tree, (Attribute(attr),), cacheable=True)
    assert result.returncode != 0
    assert refusal(result.stderr).startswith(why.format(tree=tree)), result.stderr
    if attr not in ("nixPath", "unpinned"):
        # Unrestricted, the same expression evaluates: only caching it would be wrong.
        unrestricted = evaluate(tree, (Attribute(attr),), cacheable=False)
        assert unrestricted.returncode == 0, unrestricted.stderr


def test_a_pinned_fetch_is_pure(tmp_path: Path, tree: Path) -> None:
    source = tmp_path / "fetched/src"
    source.mkdir(parents=True)
    (source / "default.nix").write_text("{ v = 42; }\n")
    tarball = tmp_path / "src.tar.gz"
    subprocess.run(["tar", "-C", str(source.parent), "-czf", str(tarball), "src"], check=True)
    sha256 = subprocess.run(
        ["nix-prefetch-url", "--unpack", f"file://{tarball}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    fetched = f'(import (fetchTarball {{ url = "file://{tarball}"; sha256 = "{sha256}"; }})).v'
    (tree / "pinned.nix").write_text(f"{{ v = {drv('pinned-${toString ' + fetched + '}')}; }}\n")
    result = subprocess.run(
        evaluation_argv("nix-instantiate", str(tree / "pinned.nix"), (Attribute("v"),), (str(tree / "pinned.nix"),)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_functions_get_the_system_as_nix_build_argstr_gives_it(tmp_path: Path) -> None:
    (tmp_path / "default.nix").write_text(
        "{ system ? builtins.currentSystem, other ? 1 }:\n"
        f'{{ pkg = {drv("pkg-${system}")}; inner = {{ system ? "none" }}: {drv("inner-${system}")}; }}\n'
    )
    (tmp_path / "plain.nix").write_text(f"{{ pkg = {drv('plain')}; }}\n")

    def evaluated(file: str, attrs: tuple[str, ...], system: str | None) -> list[str]:
        wanted = tuple(Attribute(a) for a in attrs)
        path = str(tmp_path / file)
        result = subprocess.run(
            evaluation_argv("nix-instantiate", path, wanted, (path,), system), capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        found = parse_evaluation(result.stdout, wanted)
        return [d for attr in wanted for d in found[attr]]

    def by_hand(file: str, attr: str, *args: str) -> str:
        argv = ["nix-instantiate", str(tmp_path / file), "-A", attr, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip() + "!out"

    # Every function on the way gets the argument it declares, as `nix-build --argstr` gives it.
    argstr = ("--argstr", "system", "aarch64-linux")
    both = evaluated("default.nix", ("pkg", "inner"), "aarch64-linux")
    assert both == [by_hand("default.nix", "pkg", *argstr), by_hand("default.nix", "inner", *argstr)]
    assert "pkg-aarch64-linux" in both[0] and "inner-aarch64-linux" in both[1]
    # No system: the file's own defaults, exactly as before the argument existed.
    assert evaluated("default.nix", ("pkg", "inner"), None) == [
        by_hand("default.nix", "pkg"),
        by_hand("default.nix", "inner"),
    ]
    # A file that is no function ignores it.
    assert evaluated("plain.nix", ("pkg",), "aarch64-linux") == [by_hand("plain.nix", "pkg")]
    # A set that is callable (`__functor`, as build-support/nix is) is called with it, as Nix does.
    (tmp_path / "functor.nix").write_text(
        "let f = { system ? builtins.currentSystem }: "
        f'{{ pkg = {drv("functor-${system}")}; }}; in f {{ }} // {{ __functor = _: f; }}\n'
    )
    assert evaluated("functor.nix", ("pkg",), "aarch64-linux") == [by_hand("functor.nix", "pkg", *argstr)]
    assert evaluated("functor.nix", ("pkg",), None) == [by_hand("functor.nix", "pkg")]
