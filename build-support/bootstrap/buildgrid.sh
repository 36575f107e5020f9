#!/usr/bin/env bash
# Prints the path of BuildGrid's `bgd`, installing BuildGrid first if needed.
#
# BuildGrid is a real REAPI server: the tests and the benchmark run it on 127.0.0.1 as Pants'
# remote cache. It needs Python >= 3.11 (Debian's python3.11), so it gets its own virtualenv in
# the same cache directory as the Pants one.
set -euo pipefail

# shellcheck source=build-support/bootstrap/pip_isolation.sh
source "$(dirname "${BASH_SOURCE[0]}")/pip_isolation.sh"

cache_dir="${PANTS_NIX_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pants-nix-docker}"
venv="$cache_dir/buildgrid-0.4.4-venv"
if [[ ! -x "$venv/bin/bgd" ]]; then
  echo "[bootstrap] installing BuildGrid 0.4.4 into $venv" >&2
  rm -rf "$venv"
  trap 'rm -rf "$venv"' ERR
  virtualenv -q -p /usr/bin/python3.11 "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${pip_cert_args[@]}" "buildgrid==0.4.4" >&2
  trap - ERR
fi
echo "$venv/bin/bgd"
