# An offline package set made from this Debian machine's own binaries, built by real Nix with
# no nixpkgs and no binary cache. Each package is its own store path with real references, so
# closures look like nixpkgs' (python3 -> openssl -> glibc ...).
#
#   nix-build build-support/nix -A hello
#   nix path-info -rsh $(nix-build build-support/nix -A python3)
#
# The set of this machine's system, and callable with another, as nixpkgs is: `nix-build
# build-support/nix --argstr system aarch64-linux -A hello` (or `(import ./. { system = ...; })`)
# gives the arm64 set (`aarch64-linux.nix`), Debian's arm64 binaries unpacked by this machine, as
# nixpkgs' pkgsCross builds here for there. `import ./.` alone is still the host's set: a
# `__functor` makes the set callable, and Nix auto-calls it as it would a function.
let
  inherit (import ./lib.nix) run hostFiles hostLibrary debVersion busyboxBinary helloScript;

  multiarch = /usr/lib/x86_64-linux-gnu;

  packagesFor = { system ? builtins.currentSystem }:
    if system == "aarch64-linux" && builtins.currentSystem != "aarch64-linux" then import ./aarch64-linux.nix
    else if system != builtins.currentSystem then
      throw "this package set has packages for ${builtins.currentSystem} (this machine) and aarch64-linux, not ${system}"
    else host;

  host = rec {
  busybox = run {
    name = "busybox-${debVersion "busybox-static"}";
    script = ''
      mkdir -p "$out/bin"
      cp ${busyboxBinary}/busybox "$out/bin/busybox"
      chmod 0555 "$out/bin/busybox"
      for applet in $(busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$out/bin/$applet"
      done
    '';
  };

  # The C runtime. libc.so.6 is itself executable and carries an ELF interpreter entry; both it
  # and the RUNPATH through which glibc dlopens libgcc_s (pthread_exit) and libnss_* point here.
  glibc = hostLibrary {
    pname = "glibc";
    debPackage = "libc6";
    libs = [
      "ld-linux-x86-64.so.2" "libc.so.6" "libm.so.6" "libpthread.so.0" "libdl.so.2" "librt.so.1"
      "libutil.so.1" "libresolv.so.2" "libnss_files.so.2" "libnss_dns.so.2" "libanl.so.1"
      "libgcc_s.so.1"
    ];
    extraScript = ''
      "$patchelf" --set-interpreter "$out/lib/ld-linux-x86-64.so.2" "$out/lib/libc.so.6"
    '';
  };

  zlib = hostLibrary { pname = "zlib"; debPackage = "zlib1g"; libs = [ "libz.so.1" ]; deps = [ glibc ]; };
  expat = hostLibrary { pname = "expat"; debPackage = "libexpat1"; libs = [ "libexpat.so.1" ]; deps = [ glibc ]; };
  libffi = hostLibrary { pname = "libffi"; debPackage = "libffi8"; libs = [ "libffi.so.8" ]; deps = [ glibc ]; };
  bzip2 = hostLibrary { pname = "bzip2"; debPackage = "libbz2-1.0"; libs = [ "libbz2.so.1.0" ]; deps = [ glibc ]; };
  xz = hostLibrary { pname = "xz"; debPackage = "liblzma5"; libs = [ "liblzma.so.5" ]; deps = [ glibc ]; };
  libuuid = hostLibrary { pname = "libuuid"; debPackage = "libuuid1"; libs = [ "libuuid.so.1" ]; deps = [ glibc ]; };
  libxcrypt = hostLibrary { pname = "libxcrypt"; debPackage = "libcrypt1"; libs = [ "libcrypt.so.1" ]; deps = [ glibc ]; };
  sqlite = hostLibrary { pname = "sqlite"; debPackage = "libsqlite3-0"; libs = [ "libsqlite3.so.0" ]; deps = [ glibc ]; };
  db = hostLibrary { pname = "db"; debPackage = "libdb5.3"; libs = [ "libdb-5.3.so" ]; deps = [ glibc ]; };
  openssl = hostLibrary {
    pname = "openssl";
    debPackage = "libssl3";
    libs = [ "libssl.so.3" "libcrypto.so.3" ];
    deps = [ glibc ];
  };
  ncurses = hostLibrary {
    pname = "ncurses";
    debPackage = "libncursesw6";
    libs = [ "libtinfo.so.6" "libncursesw.so.6" "libpanelw.so.6" ];
    deps = [ glibc ];
  };
  readline = hostLibrary {
    pname = "readline";
    debPackage = "libreadline8";
    libs = [ "libreadline.so.8" ];
    deps = [ glibc ncurses ];
  };

  # Debian's CPython 3.11 with its stdlib, relocated into the store: the interpreter finds its
  # stdlib next to itself ($out/bin/python3.11 + $out/lib/python3.11), so it runs in a root
  # filesystem that holds nothing but its closure.
  python3 = run {
    name = "python3-${debVersion "python3.11-minimal"}";
    interpreter = builtins.path {
      name = "python3.11-host-binary";
      path = /usr/bin;
      filter = path: type: baseNameOf path == "python3.11";
    };
    stdlib = builtins.path {
      name = "python3.11-host-stdlib";
      path = /usr/lib/python3.11;
      # Leave out stale bytecode (rebuilt below), Debian's links into /etc, the 25 MB static
      # libpython for embedding, and the test-only or obsolete extension modules (nis would
      # pull in Kerberos).
      filter = path: type:
        let base = baseNameOf path;
        in !(builtins.elem base [ "__pycache__" "sitecustomize.py" "EXTERNALLY-MANAGED" ]
          || builtins.match "config-3\\.11-.*" base != null
          || builtins.match "(nis|_test.*|_xxtestfuzz|_ctypes_test|xxlimited.*)\\.cpython-311-.*\\.so" base != null);
    };
    rpathDeps = builtins.concatStringsSep " " [
      glibc zlib expat libffi bzip2 xz libuuid libxcrypt sqlite db openssl ncurses readline
    ];
    inherit glibc;
    script = ''
      . ${./patch-libs.sh}
      mkdir -p "$out/bin" "$out/lib"
      cp "$interpreter/python3.11" "$out/bin/python3.11"
      ln -s python3.11 "$out/bin/python3"
      cp -RP "$stdlib" "$out/lib/python3.11"
      chmod -R u+w "$out"
      "$patchelf" --set-interpreter "$glibc/lib/ld-linux-x86-64.so.2" "$out/bin/python3.11"
      patch_elf "$out/bin/python3.11"
      for so in "$out"/lib/python3.11/lib-dynload/*.so; do patch_elf "$so"; done
      # The store sets every mtime to 1, which makes timestamp-checked .pyc files stale; hash-
      # checked ones stay valid wherever the files land.
      PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 "$out/bin/python3.11" -s -m compileall -q -f \
        --invalidation-mode checked-hash "$out/lib/python3.11"
    '';
  };

  # The CA bundle at the path nixpkgs' cacert uses.
  cacert = run {
    name = "nss-cacert-${debVersion "ca-certificates"}";
    src = hostFiles { name = "ca-certificates-host"; dir = /etc/ssl/certs; files = [ "ca-certificates.crt" ]; };
    script = ''
      mkdir -p "$out/etc/ssl/certs"
      cp "$src/ca-certificates.crt" "$out/etc/ssl/certs/ca-bundle.crt"
    '';
  };

  # A script package whose only reference is busybox: the smallest real closure.
  hello = helloScript busybox;
};
in
host // { __functor = _: packagesFor; }
