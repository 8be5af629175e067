#!/usr/bin/env bash
# Run a command with clconv on VC4CL's emulated VideoCore IV GPU (the Raspberry Pi 0-3
# OpenCL driver, its GPU emulated on this CPU): VC4CL built from pi/vc4c's vendored
# sources by pi/vc4c/ensure-vc4c.sh (once, 10-30 min), preloaded so that pyopencl sees
# one platform, "VideoCore IV GPU (emulated)", with 12 work-items per group.
#
# usage: pi/vc4cl-emulated.sh [--] CMD [ARGS...]
#   e.g. pi/vc4cl-emulated.sh timeout 600 .venv/bin/python -m clconv.cli check
# Very slow (minutes per op), and VC4C's binaries differ from compile to compile: what
# this shows is a hint, never a pass/fail gate (pi/vc4c/README.md). The compile gate is
# pi/vc4c/compile-programs.py.
set -euo pipefail
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
    echo "usage: $0 [--] CMD [ARGS...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$(WITH_VC4CL=1 "$HERE/vc4c/ensure-vc4c.sh")
export VC4CL_EMULATOR=1
export LD_PRELOAD=$prefix/lib/libVC4CL.so${LD_PRELOAD:+:$LD_PRELOAD}
exec "$@"
