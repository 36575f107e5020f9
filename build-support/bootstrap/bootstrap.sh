#!/usr/bin/env bash
# Installs what this repo needs on a fresh Debian 12 machine; every step is idempotent.
#
# Called by ./pants when its fast check fails. Run as root on Debian it installs the missing
# pieces; anywhere else it prints what is missing, how to get it, and exits non-zero.
set -euo pipefail

buildroot="$1"
cache_dir="$2"
bootstrap_version="$3"
venv="$cache_dir/pants-2.17.1-venv"
pex_version="2.1.137"
pex_file="$buildroot/3rdparty/tools/pex-$pex_version.pex"

log() { printf '[bootstrap] %s\n' "$*"; }

# Debian packages that provide each command we need (command:package).
required_commands=(
  python3.9:python3.9
  virtualenv:python3-virtualenv
  nix-build:nix-bin
  skopeo:skopeo
  umoci:umoci
  runc:runc
  docker-registry:docker-registry
  podman:podman
  patchelf:patchelf
  busybox:busybox-static
  git:git
  qemu-x86_64-static:qemu-user-static
  pigz:pigz
  docker:docker.io
  ctr:containerd
)

missing_packages=()
for entry in "${required_commands[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing_packages+=("${entry#*:}")
done
# python3.9 also needs distutils (pip inside a 3.9 virtualenv fails without it), and the
# Nix package set copies the host's python3.11 and CA bundle.
for f in /usr/lib/python3.9/distutils/__init__.py; do
  [[ -e "$f" ]] || missing_packages+=("python3-distutils(bullseye, unpacked)")
done
[[ -x /usr/bin/python3.11 ]] || missing_packages+=("python3.11")
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing_packages+=("ca-certificates")

is_debian=false
grep -qs '^ID=debian' /etc/os-release && is_debian=true

if ((${#missing_packages[@]})); then
  if [[ "$is_debian" != true || "$(id -u)" != 0 ]]; then
    cat >&2 <<MSG
[bootstrap] This machine lacks: ${missing_packages[*]}
[bootstrap] ./pants installs them by itself only on Debian 12 as root. To install them by hand:
  - Python 3.9 (Pants 2.17.1 runs on nothing newer): on Debian 12 add the bullseye suite pinned
    low (see build-support/bootstrap/bootstrap.sh), then apt-get install python3.9
  - Nix 2.8+ as a single-user store: apt-get install nix-bin, and in /etc/nix/nix.conf set
    build-users-group =, sandbox = false, experimental-features = nix-command flakes
  - skopeo umoci runc docker-registry podman patchelf busybox-static git python3-virtualenv
    qemu-user-static pigz (the compression tests and the benchmark), docker.io containerd (the
    runtime tests start their own daemons)
Then run ./pants again.
MSG
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive

apt_updated=false
apt_update() {
  if [[ "$apt_updated" != true ]]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=true
  fi
}

# Python 3.9 only exists in bullseye; pin that suite low so it supplies only what we name.
if ! command -v python3.9 >/dev/null 2>&1 || [[ ! -e /usr/lib/python3.9/distutils/__init__.py ]]; then
  if [[ ! -e /etc/apt/sources.list.d/bullseye.sources ]]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    log "adding Debian bullseye (pinned low) from $mirror for python3.9"
    cat >/etc/apt/sources.list.d/bullseye.sources <<SRC
Types: deb
URIs: $mirror
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat >/etc/apt/preferences.d/bullseye-low <<PIN
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
    apt_updated=false
  fi
fi

# What the backend needs (Nix, skopeo, podman, runc, graphviz), plus what this repository's own
# launcher, package set, tests and benchmark use (qemu-user-static runs the compressors on
# emulated older CPUs; pigz is the benchmark's stand-in for nixpkgs' layer compression; docker.io
# and containerd are daemons the runtime tests start, stop and never leave running).
"$(dirname "${BASH_SOURCE[0]}")/install-prerequisites.sh" python3.9 libpython3.9-dev python3-virtualenv \
  umoci docker-registry patchelf busybox-static git ca-certificates python3.11 qemu-user-static pigz \
  docker.io containerd

# bullseye's python3-distutils conflicts with bookworm's packages, so unpack its files instead.
if [[ ! -e /usr/lib/python3.9/distutils/__init__.py || ! -e /usr/lib/python3.9/lib2to3/__init__.py ]]; then
  apt_update
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq python3-distutils/bullseye python3-lib2to3/bullseye)
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  cp -a "$tmp/root/usr/lib/python3.9/distutils" "$tmp/root/usr/lib/python3.9/lib2to3" /usr/lib/python3.9/
  rm -rf "$tmp"
  log "unpacked distutils and lib2to3 for python3.9"
fi

# What this script installs with pip comes from PyPI only, whatever the machine's pip settings
# (sourced after the apt step, so the CA bundle it hands pip is installed).
# shellcheck source=build-support/bootstrap/pip_isolation.sh
source "$(dirname "${BASH_SOURCE[0]}")/pip_isolation.sh"

# Pants 2.17.1 and pex live in a virtualenv outside the repo, shared by every clone.
mkdir -p "$cache_dir"
if [[ ! -x "$venv/bin/pants" ]]; then
  log "creating the Pants 2.17.1 virtualenv in $venv"
  # A half-made venv would pass the launcher's check, so remove it on any failure.
  trap 'rm -rf "$venv"' ERR
  virtualenv -q -p /usr/bin/python3.9 "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pip_cert_args[@]}" "pantsbuild.pants==2.17.1" "pex==$pex_version"
  trap - ERR
fi

# The backend's own runtime requirements (the layer codecs), pinned in requirements.txt: a repo
# that installs the wheel gets them through [GLOBAL].plugins; this one loads the backend from
# source, so its Pants virtualenv needs them installed.
mapfile -t backend_requirements < <(grep -E '^(deflate|isal|zstandard)==' "$buildroot/3rdparty/python/requirements.txt")
"$venv/bin/pip" install -q --disable-pip-version-check "${pip_cert_args[@]}" "${backend_requirements[@]}"

# Pants downloads pex from GitHub, which these machines cannot reach; build the same pex from PyPI.
# The build is reproducible, so pants.toml pins its sha256 like any other download.
if [[ ! -f "$pex_file" ]]; then
  cached_pex="$cache_dir/pex-$pex_version.pex"
  if [[ ! -f "$cached_pex" ]]; then
    log "building pex $pex_version from PyPI"
    "$venv/bin/pex" "${pip_cert_args[@]}" "pex==$pex_version" -c pex -o "$cached_pex.tmp"
    mv "$cached_pex.tmp" "$cached_pex"
  fi
  mkdir -p "$(dirname "$pex_file")"
  cp "$cached_pex" "$pex_file.tmp" && mv "$pex_file.tmp" "$pex_file"
fi

# The arm64 package set's .deb files (build-support/nix/aarch64-linux.nix), and qemu's aarch64
# handler, so multi-platform images build and their arm64 image runs here.
if [[ "$is_debian" == true && "$(id -u)" == 0 ]]; then
  "$(dirname "${BASH_SOURCE[0]}")/arm64-packages.sh" "$buildroot"
else
  log "not root on Debian: the arm64 package set needs its .deb files added by hand (see arm64-packages.sh)"
fi
"$(dirname "${BASH_SOURCE[0]}")/binfmt.sh" "$cache_dir"

touch "$cache_dir/bootstrap-v$bootstrap_version.ok"
log "done"
