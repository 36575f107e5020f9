#!/usr/bin/env bash
# Adds the arm64 .deb files the offline package set pins (build-support/nix/aarch64-linux.nix,
# its `# pin:` lines) to the Nix store, fetched with apt and checked against the pinned sha256.
# Each is a GC root, so a garbage collection keeps it. Idempotent; needs root on Debian.
#
#   arm64-packages.sh BUILDROOT
set -euo pipefail

nix_file="$1/build-support/nix/aarch64-linux.nix"
gcroots=/nix/var/nix/gcroots/pants-nix-docker
log() { printf '[bootstrap] %s\n' "$*"; }

mkdir -p "$gcroots"
grep -E '^ *# pin: ' "$nix_file" | while read -r _ _ package version arch sha256; do
  # The store name the Nix file expects: Debian's file name without the version's epoch.
  name="${package}_${version#*:}_${arch}.deb"
  [[ -e "$gcroots/$name" ]] && continue
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    log "dpkg --add-architecture $arch (for the $arch package set's .deb files)"
    dpkg --add-architecture "$arch"
    apt-get update -qq
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download -qq "$package:$arch=$version" 2>/dev/null); then
    apt-get update -qq
    (cd "$tmp" && apt-get download -qq "$package:$arch=$version")
  fi
  downloaded=("$tmp"/*.deb)
  if ! echo "$sha256  ${downloaded[0]}" | sha256sum -c --quiet >/dev/null 2>&1; then
    printf '[bootstrap] %s %s (%s) does not have the sha256 pinned in %s:\n  pinned %s\n  got    %s\n' \
      "$package" "$version" "$arch" "$nix_file" "$sha256" "$(sha256sum "${downloaded[0]}" | cut -d' ' -f1)" >&2
    exit 1
  fi
  mv "${downloaded[0]}" "$tmp/$name"
  path="$(nix-store --add-fixed sha256 "$tmp/$name")"
  ln -sfn "$path" "$gcroots/$name"
  rm -rf "$tmp"
  trap - EXIT
  log "added $path"
done
