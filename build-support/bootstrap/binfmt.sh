#!/usr/bin/env bash
# Registers qemu-user-static's aarch64 handler with binfmt_misc, so arm64 images run on this
# x86-64 machine (the multi-platform tests, `pants run` of an arm64 image). The registration
# lasts until reboot; ./pants calls this whenever it is missing. Where it cannot (not root, or a
# container without access to binfmt_misc) it says once per boot how to do it, and goes on:
# only running arm64 images needs it.
#
#   binfmt.sh CACHE_DIR
set -uo pipefail

dir=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
[[ -e "$dir/qemu-aarch64" ]] && exit 0

if [[ "$(id -u)" == 0 && -f "$conf" ]]; then
  [[ -e "$dir/register" ]] || mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null
  if [[ -e "$dir/register" ]] && grep -v '^#' "$conf" > "$dir/register" 2>/dev/null; then
    printf '[bootstrap] registered qemu-aarch64 with binfmt_misc (arm64 images run here)\n'
    exit 0
  fi
fi

stamp="$1/binfmt-warned-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
if [[ ! -e "$stamp" ]]; then
  cat <<MSG
[bootstrap] arm64 images cannot run on this machine yet: qemu's aarch64 handler is not registered
  with binfmt_misc. As root: apt-get install qemu-user-static, then
    mount -t binfmt_misc binfmt_misc $dir   (if $dir/register is missing)
    cat $conf > $dir/register
  (in a container, the host must do this). Building arm64 images works without it.
MSG
  mkdir -p "$1" && touch "$stamp"
fi
exit 0
