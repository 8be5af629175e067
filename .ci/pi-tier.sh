#!/bin/bash
# Raspberry Pi tier of CI (called by .ci/run; also runs on its own):
#   1. installs the Debian packages the pi/ tooling needs (apt-get update first)
#   2. shellcheck on pi/
#   3. the pi script tests (tests/pi, not the `emulation` ones)
#   4. the ARM set of tests (below) in arm64 and armhf qemu-user chroots, side by
#      side (pi/test-emulated.sh)
#   6. one raspi3b system boot of the arm64 test image running a smoke subset
# and prints how long each step took; a failing step says why (.ci/lib.sh).  Needs root (or sudo) for apt-get,
# binfmt_misc, mmdebstrap and chroot.  The rootfs tars are cached in
# $CLCONV_PI_CACHE (default ~/.cache/clconv/pi): keep that directory between
# CI runs to save ~8 minutes of mmdebstrap.
# Environment:
#   PI_TIER_PYTEST_ARGS  pytest arguments for steps 4-5, as shell words (default: the
#                        ARM set below; -q -m "not emulation and not exhaustive and not
#                        slow" runs the whole suite: from a cold cache 38-48 % of it ran
#                        in 20 min per arch on 2026-12-03, so 40-50 min in all)
#   PI_TIER_SMOKE        pytest -k expression for step 6 (default: "smoke", the tests
#                        marked @pytest.mark.smoke)
#   PI_TIER_SKIP         space-separated step names to skip: apt shellcheck scripts
#                        arm64+armhf raspi3b
#   CI_DEADLINE          seconds from this script's start by which every step must end
#                        (.ci/run passes what is left of its budget)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export DEBIAN_FRONTEND=noninteractive PYTHONFAULTHANDLER=1
SECONDS=0
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -E "$@"; fi; }
skip() { [[ " ${PI_TIER_SKIP:-} " == *" $1 "* ]]; }
step() {  # step NAME LIMIT_S CMD...: a tier of its own unless skipped
    if skip "$1"; then echo "=== pi tier: $1 skipped (PI_TIER_SKIP)"; return 0; fi
    run_tier "$@"
}

# shellcheck disable=SC2086  # PI_APT_PACKAGES_STR: package names, split on purpose
install_packages() {
    as_root apt-get update -qq &&
    as_root apt-get install -y -qq --no-install-recommends $PI_APT_PACKAGES_STR >/dev/null
}
# Which python runs tests/pi: the project venv of .ci/run when present.
py=python3
[[ -x .venv/bin/python ]] && .venv/bin/python -c 'import pytest' 2>/dev/null && py=.venv/bin/python

if ! skip apt; then
    export -f install_packages as_root
    export PI_APT_PACKAGES_STR="${PI_APT_PACKAGES[*]}"  # arrays do not reach the child bash
    step apt 1200 bash -c install_packages
fi
step shellcheck 120 shellcheck -x pi/*.sh pi/vc4c/*.sh docker/*.sh .ci/run .ci/*.sh
step scripts 900 "$py" -m pytest -q -p no:cacheprovider tests/pi -m "not emulation"
if [[ -n "${PI_TIER_PYTEST_ARGS:-}" ]]; then
    eval "user_args=($PI_TIER_PYTEST_ARGS)"     # shell words, quotes allowed
else
    # The ARM set: every op of the op table and its gradients against the numpy
    # reference (clconv check), the CPU class and device profile POCL reports on ARM,
    # that POCL inlines its builtins there, the CLI and the smoke tests. From empty POCL
    # caches it took 416 s (arm64) and 366 s (armhf) side by side on 2 cores
    # (2026-12-03); of the whole suite 38-48 % ran in the first 20 minutes, so 40-50
    # minutes each, which with the other tiers is more than CI's 90. The desktop tiers
    # run the rest on x86.
    user_args=(-q -m "not emulation and not exhaustive and not slow"
               tests/test_cli.py tests/test_cpu_class.py tests/test_device.py
               tests/test_build.py::test_pocl_on_arm_inlines_its_builtins
               tests/test_ops.py::test_ops_chain_on_device_without_copies
               tests/test_nn.py::test_state_dict_round_trips_bit_for_bit_through_npz)
fi
# Under qemu-user every OpenCL build takes about 10 s, and the fast variants build a
# program per kernel size and stride. So the emulated tiers run the ops on the direct
# variant (tests that force a variant still build it) and a fifth of the seeded op
# sweeps; the desktop tiers run every variant and the whole sweeps.
export CLCONV_ALGO=${CLCONV_ALGO:-direct}
export CLCONV_TEST_SWEEP_SCALE=${CLCONV_TEST_SWEEP_SCALE:-0.2}
# The two qemu-user tiers run side by side: each is one single-threaded emulated
# process, mostly waiting on OpenCL builds, and the machine has two cores. Each
# writes its own log; a failing one's report (exit status, last test started,
# the end of its log) comes from test-emulated.sh itself.
both_user_tiers() {
    local logs rc_arm64=0 rc_armhf=0
    logs=$(mktemp -d)
    as_root pi/test-emulated.sh --arch arm64 -- -p no:cacheprovider "${user_args[@]}" \
        >"$logs/arm64.log" 2>&1 &
    local arm64=$!
    as_root pi/test-emulated.sh --arch armhf -- -p no:cacheprovider "${user_args[@]}" \
        >"$logs/armhf.log" 2>&1 &
    local armhf=$!
    wait "$arm64" || rc_arm64=$?
    wait "$armhf" || rc_armhf=$?
    echo "--- arm64 qemu-user tier: exit $rc_arm64: $(exit_meaning "$rc_arm64")"
    cat "$logs/arm64.log"
    echo "--- armhf qemu-user tier: exit $rc_armhf: $(exit_meaning "$rc_armhf")"
    cat "$logs/armhf.log"
    rm -rf "$logs"
    [[ $rc_arm64 == 0 && $rc_armhf == 0 ]]
}
export -f both_user_tiers as_root exit_meaning
export user_args_str
user_args_str=$(printf '%q ' "${user_args[@]}")
# shellcheck disable=SC2016  # expanded by the inner bash
step arm64+armhf 2400 bash -c 'eval "user_args=($user_args_str)"; both_user_tiers'
# The booted Pi builds each OpenCL program slower still: smoke tests, direct variant.
step raspi3b 1500 env CLCONV_ALGO="$CLCONV_ALGO" pi/test-emulated.sh --arch arm64 --system raspi3b \
    --timeout 1400 -- -v -p no:cacheprovider -m "not emulation and not slow" -k "${PI_TIER_SMOKE:-smoke}"

tier_summary "pi tier" || exit 1
echo "=== pi tier passed"
