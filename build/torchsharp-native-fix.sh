#!/usr/bin/env bash
# Makes TorchSharp's libLibTorchSharp.so load on systems whose libstdc++ lacks GLIBCXX_3.4.32 (Debian 12,
# Ubuntu 22.04). Called by build/TorchSharpNativeFix.targets after every build of a project that references
# TorchSharp, with the project's output folder. Idempotent; does nothing on newer systems.
# Why and how: docs/torchsharp-native-fix.md.
set -euo pipefail
out_dir="$1"
tools_dir="$2"      # where the compiled shim and patch tool are cached
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="GLIBCXX_3.4.32"
symbol="_ZSt21ios_base_library_initv"
shim_name="libcmoe_glibcxx_shim.so"

fail() { echo "error CMOE001: TorchSharp native fix: $*" >&2; exit 1; }

libstdcxx="$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
[ -n "$libstdcxx" ] || libstdcxx="$(ls /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib64/libstdc++.so.6 2>/dev/null | head -n 1 || true)"
[ -n "$libstdcxx" ] || fail "cannot find the system libstdc++.so.6"
if grep -qa "$version" "$libstdcxx"; then
  exit 0   # new enough: leave TorchSharp untouched
fi

mapfile -t libs < <(find "$out_dir" -name libLibTorchSharp.so -type f 2>/dev/null)
[ "${#libs[@]}" -gt 0 ] || exit 0

command -v g++ >/dev/null || fail "g++ is needed to build the libstdc++ shim (apt-get install g++)"
command -v patchelf >/dev/null || fail "patchelf is needed to patch libLibTorchSharp.so (apt-get install patchelf)"

mkdir -p "$tools_dir"
if [ ! -f "$tools_dir/$shim_name" ] || [ "$here/native/glibcxx_shim.cpp" -nt "$tools_dir/$shim_name" ]; then
  g++ -shared -fPIC -O2 -o "$tools_dir/$shim_name.tmp" "$here/native/glibcxx_shim.cpp" && mv "$tools_dir/$shim_name.tmp" "$tools_dir/$shim_name"
fi
if [ ! -x "$tools_dir/verneed_weaken" ] || [ "$here/native/verneed_weaken.cpp" -nt "$tools_dir/verneed_weaken" ]; then
  g++ -O2 -o "$tools_dir/verneed_weaken.tmp" "$here/native/verneed_weaken.cpp" && mv "$tools_dir/verneed_weaken.tmp" "$tools_dir/verneed_weaken"
fi

for lib in "${libs[@]}"; do
  dir="$(dirname "$lib")"
  # Replace the shim only when it differs, by rename: a running program may have the old one mapped.
  if ! cmp -s "$tools_dir/$shim_name" "$dir/$shim_name" 2>/dev/null; then
    cp -f "$tools_dir/$shim_name" "$dir/$shim_name.cmoe-tmp" && mv -f "$dir/$shim_name.cmoe-tmp" "$dir/$shim_name"
  fi
  if readelf -d "$lib" | grep -q "\[$shim_name\]"; then
    continue   # already patched
  fi
  # Patch a copy and move it into place, so an interrupted build never leaves a half-patched library.
  tmp="$lib.cmoe-tmp"
  cp -f "$lib" "$tmp"
  set +e; "$tools_dir/verneed_weaken" "$tmp" "$version"; rc=$?; set -e
  if [ "$rc" -eq 3 ]; then rm -f "$tmp"; continue; fi   # this TorchSharp build does not need the version
  [ "$rc" -eq 0 ] || { rm -f "$tmp"; fail "could not weaken $version in $lib"; }
  patchelf --clear-symbol-version "$symbol" --add-needed "$shim_name" "$tmp" || { rm -f "$tmp"; fail "patchelf failed on $lib"; }
  mv -f "$tmp" "$lib"
done
