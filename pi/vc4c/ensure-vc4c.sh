#!/usr/bin/env bash
# Print the install prefix of a VC4C build made from this folder's vendored sources,
# building it first (pi/vc4c/build.sh, 5-25 min on 2 cores) only when it is missing.
#
# usage: ensure-vc4c.sh            -> prints e.g. ~/.cache/clconv/vc4c/07ff2aa4944578c9/install
# environment:
#   WITH_VC4CL   0 (default): the compiler only (enough for compile-programs.py);
#                1: also VC4CL on an emulated GPU (lib/libVC4CL.so, for vc4cl-emulated.sh)
#   CLCONV_VC4C_CACHE  parent folder of the builds (default ~/.cache/clconv/vc4c)
#   JOBS, SKIP_APT     passed to build.sh
# The build lives in <cache>/<key>, key = first 16 hex digits of the sha256 of build.sh,
# vc4c_emu_run.cpp and vc4c-sources.tar.xz, so a change to any of them builds anew and an
# unchanged checkout reuses the build (build.sh bakes its paths in: never move it).
# Concurrent callers wait for one another (flock); build output goes to stderr and to
# <cache>/<key>/build.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WITH_VC4CL=${WITH_VC4CL:-0}
key=$(cat "$HERE/build.sh" "$HERE/vc4c_emu_run.cpp" "$HERE/vc4c-sources.tar.xz" | sha256sum | cut -c1-16)
work=${CLCONV_VC4C_CACHE:-$HOME/.cache/clconv/vc4c}/$key
prefix=$work/install

complete() {
    [ -x "$prefix/bin/vc4c" ] && [ -x "$prefix/bin/vc4c_emu_run" ] || return 1
    [ "$WITH_VC4CL" != 1 ] || [ -e "$prefix/lib/libVC4CL.so" ]
}

if ! complete; then
    mkdir -p "$work"
    exec 9>"$work.lock"
    flock 9
    if ! complete; then  # another caller may have built it while this one waited
        echo "ensure-vc4c.sh: building VC4C in $work (WITH_VC4CL=$WITH_VC4CL)" >&2
        WITH_VC4CL=$WITH_VC4CL bash "$HERE/build.sh" "$work" 2>&1 | tee "$work/build.log" >&2
        complete || { echo "ensure-vc4c.sh: build in $work incomplete, see $work/build.log" >&2; exit 1; }
    fi
fi
echo "$prefix"
