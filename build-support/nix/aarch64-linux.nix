# The arm64 (aarch64-linux) package set: Debian's arm64 binaries, unpacked by this machine's
# busybox, so images for arm64 need no arm64 builder (as nixpkgs' pkgsCross builds here for there).
#
# The .deb files are fixed-output paths pinned by hash below. Nix cannot download them here, so
# ./pants fetches them with apt and adds them (build-support/bootstrap/arm64-packages.sh, which
# reads this file's pins); Nix then finds each already in the store, as with nixpkgs' requireFile.
let
  inherit (import ./lib.nix) run busyboxBinary helloScript;

  deb = { name, sha256 }: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${busyboxBinary}/busybox";
    args = [ "sh" "-c" "echo '${name} is not in the Nix store: ./pants adds it (build-support/bootstrap/arm64-packages.sh)' >&2; exit 1" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = sha256;
  };

  # pin: busybox-static 1:1.35.0-4+deb12u1+b1 arm64 732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5
  busyboxDeb = deb {
    name = "busybox-static_1.35.0-4+deb12u1+b1_arm64.deb";
    sha256 = "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5";
  };
in
rec {
  # The static busybox and a link per applet. The applet list is the host's busybox's: the same
  # Debian source and configuration, and an arm64 binary cannot run in this build.
  busybox = run {
    name = "busybox-1.35.0";
    deb = busyboxDeb;
    script = ''
      dpkg-deb -x "$deb" unpacked
      mkdir -p "$out/bin"
      cp unpacked/bin/busybox "$out/bin/busybox"
      chmod 0555 "$out/bin/busybox"
      for applet in $(busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$out/bin/$applet"
      done
    '';
  };

  hello = helloScript busybox;
}
