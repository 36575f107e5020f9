# Shell functions shared by the package set's builders (sourced by busybox sh).

# rpath_of DIR...: the lib/ directories of this output and of $rpathDeps, colon-separated.
rpath_of() {
  local rpath="$out/lib" dep
  for dep in $rpathDeps; do rpath="$rpath:$dep/lib"; done
  echo "$rpath"
}

# patch_elf FILE: point FILE's RUNPATH into the store only, keeping just the entries it uses.
patch_elf() {
  chmod u+w "$1"
  "$patchelf" --set-rpath "$(rpath_of)" "$1"
  "$patchelf" --shrink-rpath --allowed-rpath-prefixes /nix/store "$1"
}

# install_libs: copy $libs (dereferencing soname links) from $src into $out/lib and patch them.
install_libs() {
  mkdir -p "$out/lib"
  for so in $libs; do
    cp -L "$src/$so" "$out/lib/$so"
    chmod 0555 "$out/lib/$so"
  done
  for so in $libs; do
    case "$so" in
      ld-linux*) ;;  # the dynamic loader itself has no RUNPATH and must not be rewritten
      *) patch_elf "$out/lib/$so" ;;
    esac
  done
}
