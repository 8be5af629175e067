#!/usr/bin/env bash
# Mesa rusticl tier (called by .ci/run; also runs on its own from anywhere).
# Raspberry Pi 4/5 run OpenCL through Mesa's rusticl on the V3D GPU; every Mesa driver
# shares rusticl's front end (OpenCL C -> SPIR-V -> NIR). RUSTICL_ENABLE=llvmpipe gives
# a CPU device with that front end, so this tier runs clconv there with the V3D limits
# imposed (CLCONV_LIMITS=v3d: 256 work-items, 32 KiB local memory, 32-bit addresses):
#   1. every kernel file builds alone (tests/test_build.py), `clconv check`;
#   2. the op sweeps (tests/test_ops.py) at a tenth of their seeded size, and the
#      variant tests other than the exhaustive sweep;
#   3. the exhaustive variant test on three shapes that reach every variant
#      (depthwise, depthwise_direct, direct, im2col, winograd; gemm1x1; a depthwise
#      layer with 6 channels), with the other GEMM and depthwise tunables it tries.
# llvmpipe compiles each kernel for seconds at its first launch (Mesa 22.3), hence the
# subset: the desktop tiers run the whole sweeps on POCL.
# Needs: apt-get install mesa-opencl-icd (Debian bookworm: Mesa 22.3).
# Environment: PYTHON (see .ci/lib.sh); CLCONV_TEST_SWEEP_SCALE (default 0.1).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. .ci/lib.sh
export RUSTICL_ENABLE=llvmpipe CLCONV_DEVICE=rusticl CLCONV_LIMITS=v3d
export CLCONV_TEST_SWEEP_SCALE=${CLCONV_TEST_SWEEP_SCALE:-0.1}
pytest=("$PYTHON" -m pytest -q -rfE -p no:cacheprovider)
# A case's id changing in tests/test_variants.py fails step 3 as "not found".
variant=tests/test_variants.py::test_every_valid_variant_matches_the_reference
cases=(
    "${variant}[x(1, 1, 6, 7)-w(9, 1, 3, 3)-b1-stride=1,padding=1,dilation=1,groups=1]"
    "${variant}[x(2, 5, 7, 9)-w(11, 5, 1, 1)-b1-stride=1,padding=0,dilation=1,groups=1]"
    "${variant}[x(2, 6, 9, 7)-w(6, 1, 3, 3)-b1-stride=1,padding=1,dilation=1,groups=6]"
)

# `clconv devices` fails when CLCONV_DEVICE matches no device (no rusticl device).
run_tier "rusticl's llvmpipe device is found" 900 "$PYTHON" -m clconv.cli devices
run_tier "clconv check" 900 "$PYTHON" -m clconv.cli check --batch 2
run_tier "builds, op sweeps, variant tests" 900 "${pytest[@]}" tests/test_build.py tests/test_ops.py \
    tests/test_variants.py -m "not exhaustive"
run_tier "every variant on three shapes" 900 "${pytest[@]}" "${cases[@]}"
tier_summary "rusticl tier" || exit 1
echo "=== rusticl tier passed"
