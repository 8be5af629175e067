#!/bin/bash
# Raspberry Pi tier of CI (called by .ci/run; also runs on its own):
#   1. installs the Debian packages the pi/ tooling needs (apt-get update first)
#   2. shellcheck on pi/
#   3. the pi script tests (tests/pi, not the `emulation` ones)
#   4. the test suite in arm64 and armhf qemu-user chroots, side by side
#      (pi/test-emulated.sh; all but the exhaustive variant sweep and slow tests)
#   6. one raspi3b system boot of the arm64 test image running a smoke subset
# and prints how long each step took.  Needs root (or sudo) for apt-get,
# binfmt_misc, mmdebstrap and chroot.  The rootfs tars are cached in
# $CLCONV_PI_CACHE (default ~/.cache/clconv/pi): keep that directory between
# CI runs to save ~8 minutes of mmdebstrap.
# Environment:
#   PI_TIER_PYTEST_ARGS  pytest arguments for steps 4-5, as shell words
#                        (default: -q -m "not emulation and not exhaustive and not slow")
#   PI_TIER_SMOKE        pytest -k expression for step 6 (default: "smoke", the tests
#                        marked @pytest.mark.smoke)
#   PI_TIER_SKIP         space-separated step names to skip: apt shellcheck scripts
#                        arm64+armhf raspi3b
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SECONDS=0
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -E "$@"; fi; }
skip() { [[ " ${PI_TIER_SKIP:-} " == *" $1 "* ]]; }
times=()
failed=()
step() {  # step NAME CMD...: run, time, remember failures, go on
    local name=$1 start=$SECONDS rc=0
    shift
    if skip "$name"; then times+=("$(printf '%-11s skipped' "$name")"); return 0; fi
    echo
    echo "=== pi tier: $name ($(date -u +%H:%M:%S))"
    "$@" || rc=$?
    times+=("$(printf '%-11s %5d s  exit %d' "$name" $((SECONDS - start)) "$rc")")
    echo "=== pi tier: $name: exit $rc in $((SECONDS - start)) s"
    [[ $rc == 0 ]] || failed+=("$name")
}

install_packages() {
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends \
        qemu-user-static qemu-system-arm binfmt-support mmdebstrap arch-test debian-archive-keyring \
        mtools dosfstools e2fsprogs fdisk util-linux mount xz-utils openssl openssh-client \
        shellcheck kmod cpio gzip psmisc dpkg apt ca-certificates python3 python3-pytest >/dev/null
}
# Which python runs tests/pi: the project venv of .ci/run when present.
py=python3
[[ -x .venv/bin/python ]] && .venv/bin/python -c 'import pytest' 2>/dev/null && py=.venv/bin/python

step apt install_packages
step shellcheck shellcheck -x pi/*.sh
step scripts "$py" -m pytest -q -p no:cacheprovider tests/pi -m "not emulation"
if [[ -n "${PI_TIER_PYTEST_ARGS:-}" ]]; then
    eval "user_args=($PI_TIER_PYTEST_ARGS)"     # shell words, quotes allowed
else
    user_args=(-q -m "not emulation and not exhaustive and not slow")
fi
# The two qemu-user tiers run side by side: each is one single-threaded emulated
# process, mostly waiting on OpenCL builds, and the machine has two cores.
both_user_tiers() {
    local logs rc_arm64=0 rc_armhf=0
    logs=$(mktemp -d)
    # Under qemu-user every OpenCL build takes about 10 s, and the fast variants
    # build a program per kernel size and stride. So the emulated tiers run the ops on
    # the direct variant (tests that force a variant still build it) and a fifth of
    # the seeded op sweeps; the desktop tiers run every variant and the whole sweeps.
    export CLCONV_ALGO=${CLCONV_ALGO:-direct}
    export CLCONV_TEST_SWEEP_SCALE=${CLCONV_TEST_SWEEP_SCALE:-0.2}
    as_root pi/test-emulated.sh --arch arm64 -- -p no:cacheprovider "${user_args[@]}" \
        >"$logs/arm64.log" 2>&1 &
    local arm64=$!
    as_root pi/test-emulated.sh --arch armhf -- -p no:cacheprovider "${user_args[@]}" \
        >"$logs/armhf.log" 2>&1 &
    local armhf=$!
    wait "$arm64" || rc_arm64=$?
    wait "$armhf" || rc_armhf=$?
    echo "--- arm64 qemu-user tier: exit $rc_arm64"
    cat "$logs/arm64.log"
    echo "--- armhf qemu-user tier: exit $rc_armhf"
    cat "$logs/armhf.log"
    rm -rf "$logs"
    [[ $rc_arm64 == 0 && $rc_armhf == 0 ]]
}
step arm64+armhf both_user_tiers
# The booted Pi builds each OpenCL program slower still: smoke tests, direct variant.
step raspi3b as_root env CLCONV_ALGO="${CLCONV_ALGO:-direct}" pi/test-emulated.sh --arch arm64 --system raspi3b --timeout 1200 \
    -- -q -p no:cacheprovider -m "not emulation and not slow" -k "${PI_TIER_SMOKE:-smoke}"

echo
echo "=== pi tier summary (total $SECONDS s)"
printf '  %s\n' "${times[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "=== pi tier FAILED: ${failed[*]}"
    exit 1
fi
echo "=== pi tier passed"
