#!/usr/bin/env bash
# Build what the Pi tier needs before it starts, while the desktop tiers run: the
# armhf root filesystem and the arm64 test image (root filesystem, Debian's kernel,
# initramfs, SD card image), all cached in $CLCONV_PI_CACHE, so a warm cache makes
# this a no-op. The two mmdebstrap runs go side by side: they wait on the network
# and on dpkg under qemu-user more than on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PI_DIR=$PWD/pi
# shellcheck source=pi/lib.sh
. pi/lib.sh
start=$SECONDS
pi/build-test-image.sh --arch armhf --rootfs-only -q >/dev/null &
armhf=$!
rc=0
pi/build-test-image.sh --arch arm64 --rootfs-only -q >/dev/null || rc=$?
if (( rc == 0 )) && test_image_stale arm64; then
    pi/build-test-image.sh --arch arm64 --force "$(test_image_path arm64)" >/dev/null || rc=$?
fi
wait "$armhf" || { echo "pi-prepare: the armhf root filesystem failed (exit $?)" >&2; rc=1; }
echo "pi-prepare: done in $((SECONDS - start)) s, exit $rc"
exit "$rc"
