#!/usr/bin/env bash
# Oclgrind tier (called by .ci/run; also runs on its own from anywhere):
# `clconv check` and the op and variant sweeps on Oclgrind's simulated GPU with data-race
# detection. Oclgrind interprets every work-item and reports out-of-bounds reads and
# writes, data races between work-items and barrier divergence that POCL and the GPU
# drivers let pass silently. It prints its reports and still exits 0, so each run logs
# them to a file (--log) and any report fails the tier.
# Left out: --uninitialized crashes Oclgrind 21.10 (Debian bookworm's); --check-api
# reports CL_INVALID_VALUE for clGetDeviceInfo queries that pyopencl itself makes at
# each program build and array allocation (a bare pyopencl script shows them; Oclgrind
# is OpenCL 1.2), and prints those to stderr, not to the log.
# Needs: apt-get install oclgrind.
# Environment: PYTHON (see .ci/lib.sh);
#   CLCONV_TEST_SWEEP_SCALE  fraction of the seeded sweeps (default 0.25 for the op
#                            sweeps, 0.1 for the variant sweep; its hand-picked shapes
#                            always run)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. .ci/lib.sh
command -v oclgrind >/dev/null || { echo "oclgrind not found: apt-get install oclgrind"; exit 1; }
reports=$(mktemp -d)

# oclgrind_run NAME CMD...: CMD under Oclgrind; fails when CMD fails or Oclgrind reports.
oclgrind_run() {
    local log="$reports/$1.log" rc=0
    shift
    oclgrind --data-races --log "$log" "$@" || rc=$?
    if [[ -s $log ]]; then
        echo "Oclgrind's first report:"
        head -n 25 "$log"
        # one line per kind of report and kernel, for the tier's summary
        awk '/^[A-Z]/ {what = $0; sub(/ at .*/, "", what)} /^\tKernel: / {print what " in " $2}' \
            "$log" | sort | uniq -c | sort -rn | sed 's/^ */ERROR oclgrind: /'
        [[ $rc != 0 ]] || rc=1
    fi
    return "$rc"
}

scale=${CLCONV_TEST_SWEEP_SCALE:-}
run_tier "devices under Oclgrind" 900 oclgrind "$PYTHON" -m clconv.cli devices
run_tier "clconv check" 900 oclgrind_run check "$PYTHON" -m clconv.cli check --batch 2
run_tier "op sweeps (tests/test_ops.py)" 900 oclgrind_run ops \
    env CLCONV_TEST_SWEEP_SCALE="${scale:-0.25}" "$PYTHON" -m pytest -q -rfE -p no:cacheprovider tests/test_ops.py
run_tier "variant sweep (tests/test_variants.py, tests/test_im2col_panels.py)" 900 \
    oclgrind_run variants env CLCONV_TEST_SWEEP_SCALE="${scale:-0.1}" "$PYTHON" -m pytest -q \
    -rfE -p no:cacheprovider tests/test_variants.py tests/test_im2col_panels.py
# conv_channels.cl and conv_pool.cl run on CPUs only, so no sweep reaches them on
# Oclgrind's GPU
run_tier "CPU channels kernels (tests/test_channels.py, tests/test_conv_max_pool.py)" 300 \
    oclgrind_run channels "$PYTHON" -m pytest -q -rfE -p no:cacheprovider \
    tests/test_channels.py tests/test_conv_max_pool.py -k any_device
rm -rf "$reports"
tier_summary "Oclgrind tier" || exit 1
echo "=== Oclgrind tier passed"
