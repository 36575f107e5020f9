# Helpers for a package set built offline from this machine's own files, with no nixpkgs.
#
# Host files enter the store only through `builtins.path` with a filter, so every store path is
# addressed by the exact bytes it was made from: a Debian update gives new store paths, an
# unchanged host gives the same ones on every build and every machine.
let
  system = builtins.currentSystem;

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;

  # Import the named files of a host directory. A soname such as libz.so.1 is usually a symlink
  # to libz.so.1.2.13, and importing the link alone would store a dangling link, so every file
  # whose name starts with "NAME." comes along too; builders then copy with `cp -L`.
  hostFiles = { name, dir, files }:
    builtins.path {
      inherit name;
      path = dir;
      filter = path: type:
        let base = baseNameOf path;
        in builtins.any (f: base == f || hasPrefix "${f}." base) files;
    };

  # Debian's busybox-static is one static binary: the builder of every derivation here.
  busyboxBinary = hostFiles { name = "busybox-static-host"; dir = /usr/bin; files = [ "busybox" ]; };

  # patchelf is imported by content so that its bytes are part of every patched path's hash.
  patchelfBinary = hostFiles { name = "patchelf-host"; dir = /usr/bin; files = [ "patchelf" ]; };

  # "Package: NAME ... Version: VERSION" of every installed Debian package, for store names.
  dpkgVersions =
    let
      status = builtins.readFile /var/lib/dpkg/status;
      paragraphs = builtins.filter (p: builtins.isString p && p != "") (builtins.split "\n\n" status);
      parse = p:
        let
          pkg = builtins.match "Package: ([^\n]+)\n.*" p;
          ver = builtins.match ".*\nVersion: ([^\n]+).*" p;
        in if pkg == null || ver == null then null
           else { name = builtins.head pkg; value = builtins.head ver; };
    in builtins.listToAttrs (builtins.filter (x: x != null) (map parse paragraphs));

  # Store names allow [A-Za-z0-9+._?=-]: drop Debian's epoch and revision, map "~" to ".".
  upstreamVersion = v:
    let
      noEpoch = let m = builtins.match "[0-9]+:(.*)" v; in if m == null then v else builtins.head m;
      noRevision = let m = builtins.match "(.*)-[^-]*" noEpoch; in if m == null then noEpoch else builtins.head m;
    in builtins.replaceStrings [ "~" ":" ] [ "." "." ] noRevision;

  debVersion = debPackage:
    if dpkgVersions ? ${debPackage} then upstreamVersion dpkgVersions.${debPackage} else "host";

  # A derivation whose builder is busybox running `script` with every busybox applet on PATH.
  run = { name, script, ... }@attrs:
    derivation ((removeAttrs attrs [ "script" ]) // {
      inherit name system;
      builder = "${busyboxBinary}/busybox";
      patchelf = "${patchelfBinary}/patchelf";
      args = [ "sh" "-e" "-c" ''
        ${busyboxBinary}/busybox mkdir -p "$TMPDIR/bin"
        ${busyboxBinary}/busybox --install -s "$TMPDIR/bin"
        export PATH="$TMPDIR/bin"
        ${script}
      '' ];
    });

  # One store path holding some of the host's shared libraries, each with a RUNPATH that names
  # exactly the store paths it needs (`--shrink-rpath` drops the deps it does not load).
  hostLibrary = { pname, debPackage, libs, deps ? [ ], dir ? /usr/lib/x86_64-linux-gnu, extraScript ? "" }:
    run {
      name = "${pname}-${debVersion debPackage}";
      src = hostFiles { name = "${pname}-host-files"; inherit dir; files = libs; };
      libs = builtins.concatStringsSep " " libs;
      rpathDeps = builtins.concatStringsSep " " deps;
      script = ''
        . ${./patch-libs.sh}
        install_libs
        ${extraScript}
      '';
    };
  # The hello package of every system: a script whose only reference is its system's busybox.
  helloScript = busybox: run {
    name = "hello-1.0";
    script = ''
      mkdir -p "$out/bin"
      cat > "$out/bin/hello" <<HELLO
      #!${busybox}/bin/sh
      echo "Hello from a Nix closure in a reproducible OCI image!"
      HELLO
      chmod 0555 "$out/bin/hello"
    '';
  };
in
{
  inherit run hostFiles hostLibrary debVersion busyboxBinary patchelfBinary helloScript;
}
