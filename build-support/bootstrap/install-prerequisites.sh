#!/usr/bin/env bash
# Installs what the pants-nix-docker backend needs on a machine, for any repository that uses it:
#   - Nix 2.8 or newer (`nix`, `nix-build`, `nix-store`), set up as a single-user store as root,
#   - skopeo, for `pants publish` and for base images pulled from a registry,
#   - podman with runc, for `pants run` (or docker: see [nix-docker].runtime),
#   - runc and umoci, for the commands and services of `nix_docker_image_test` (`pants test`),
#   - Graphviz `dot`, for the SVG of `closure_graph=True` (optional; the DOT file needs nothing).
# Copy it into your repository's CI set-up and run it before Pants:
#   build-support/bootstrap/install-prerequisites.sh [MORE_DEBIAN_PACKAGES...]
# On Debian 12 as root it installs what is missing (every step is idempotent); anywhere else it
# names what is missing, with the install command, and exits non-zero. Extra arguments are more
# Debian packages to install in the same apt run (this repository's bootstrap adds its own).
set -euo pipefail

log() { printf '[prerequisites] %s\n' "$*"; }

# command:Debian package, for what the backend runs.
required_commands=(nix-build:nix-bin nix-store:nix-bin nix:nix-bin skopeo:skopeo podman:podman runc:runc umoci:umoci dot:graphviz)

missing=()
for entry in "${required_commands[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

nix_conf=/etc/nix/nix.conf
nix_conf_ok() {
  grep -qs '^sandbox = false' "$nix_conf" && grep -qs '^experimental-features = nix-command flakes' "$nix_conf"
}

can_install=false
grep -qs '^ID=debian' /etc/os-release && [[ "$(id -u)" == 0 ]] && can_install=true

if ((${#missing[@]})) && [[ "$can_install" != true ]]; then
  cat >&2 <<MSG
[prerequisites] This machine lacks: ${missing[*]}
[prerequisites] These are installed by this script only on Debian 12 as root. By hand:
  - Nix 2.8+: on Debian \`apt-get install nix-bin\`; elsewhere the installer from nixos.org.
    As a single-user store owned by root, /etc/nix/nix.conf needs \`build-users-group =\`,
    \`sandbox = false\` and \`experimental-features = nix-command flakes\`.
  - skopeo (publish, registry base images), podman and runc (pants run), umoci (image tests),
    graphviz (closure SVG):
    \`apt-get install ${missing[*]}\` on Debian or Ubuntu, your package manager elsewhere.
MSG
  exit 1
fi

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get update"
  apt-get update -qq
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Nix as a single-user store owned by root, with no substituters (no binary cache is reachable
# here). A nix.conf that lacks these settings is kept beside it, not lost.
if [[ "$can_install" == true ]] && ! nix_conf_ok; then
  mkdir -p /etc/nix
  if [[ -e "$nix_conf" ]]; then cp "$nix_conf" "$nix_conf.before-pants-nix-docker"; fi
  cat >"$nix_conf" <<CONF
# Written by pants-nix-docker's install-prerequisites.sh: single-user store as root.
build-users-group =
sandbox = false
substituters =
experimental-features = nix-command flakes
CONF
  log "wrote $nix_conf"
fi
if [[ "$(id -u)" == 0 && ! -d /nix/store ]]; then
  mkdir -p /nix/store
  nix-store --init 2>/dev/null || true
fi

# The backend reads `nix path-info --json` and flake outputs as Nix 2.8 prints them.
version="$(nix --version 2>/dev/null | awk '{print $NF}')"
if [[ -n "$version" ]] && ! printf '2.8\n%s\n' "$version" | sort -V -C; then
  echo "[prerequisites] Nix $version is older than 2.8; install a newer Nix." >&2
  exit 1
fi
