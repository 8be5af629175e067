#!/bin/bash
# Usage: test-emulated.sh --arch arm64|armhf [--system raspi3b|virt]
#                         [--repo DIR] [--command CMD] [--timeout S] [-- PYTEST_ARGS...]
#
# Run the project's test suite on emulated ARM (Debian bookworm with
# python3-pyopencl, POCL, numpy, pytest, hypothesis; no torch, so torch tests
# skip).  The rootfs comes from build-test-image.sh (cached; the first run
# spends ~4 min in mmdebstrap).
#
# Fast tier (default): qemu-user chroot.  Needs root.  binfmt_misc is set up
# for ARCH (qemu-user-static, binfmt-support), the cached rootfs is unpacked
# once next to its tar and used through an overlay (or unpacked afresh into a
# temp dir when overlayfs is unavailable), /proc, /sys, /dev (POCL aborts
# without them), /dev/pts and /dev/shm are bind-mounted, and a copy of the
# repository (without .git, caches, venvs) goes to /repo.  Then, chrooted:
#     cd /repo && PYTHONPATH=/repo python3 -m pytest tests PYTEST_ARGS
# (`tests` only when PYTEST_ARGS name no test path of their own: tests/...)
# For armhf OCL_ICD_VENDORS is set to the rootfs's libpocl.so.2.* file
# (ocl-icd does not find POCL by its bare name under qemu-user).  CLCONV_*
# variables of the caller are passed through.  POCL's kernel cache is kept in
# the cache dir (pocl-cache-*) between runs.  Mounts are always undone.
#
# System tier (--system): boots the test image (build-test-image.sh, cached)
# under qemu-system-aarch64 through run-qemu.sh — raspi3b (1 GiB, ~40-70 s to
# boot) or virt (-cpu cortex-a72, ~10 s) — with the repository copied onto
# the boot partition, and runs
#     cd /repo && python3 -m pytest tests PYTEST_ARGS   (default: -q -k smoke)
# or --command CMD.  The guest prints the pytest summary and an exit-code
# marker on the serial console; this script exits with that code.  arm64 is
# the supported arch (armhf rootfs + arm64 kernel is best effort).
#
#   --repo DIR     tree to test (default: the repository holding this script)
#   --timeout S    kill the run after S seconds (default 3000)
#   -q             quiet
# Exit status: pytest's (or CMD's); 124 timeout; 2 bad input; 3 missing
# tool; 4 needs root.
set -euo pipefail
PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pi/lib.sh
. "$PI_DIR/lib.sh"

arch="" system="" repo=$PI_REPO command="" timeout_s=3000 pytest_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --arch) [[ $# -ge 2 ]] || die "--arch needs a value"; arch=$2; shift ;;
        --arch=*) arch=${1#*=} ;;
        --system) [[ $# -ge 2 ]] || die "--system needs raspi3b or virt"; system=$2; shift ;;
        --system=*) system=${1#*=} ;;
        --repo) [[ $# -ge 2 ]] || die "--repo needs a directory"; repo=$2; shift ;;
        --command) [[ $# -ge 2 ]] || die "--command needs a value"; command=$2; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs a value"; timeout_s=$2; shift ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) die "unknown argument: $1 (pytest arguments go after --; see --help)" ;;
    esac
    shift
done
[[ -n "$arch" ]] || die "--arch arm64|armhf is required (see --help)"
# The whole suite unless the pytest arguments name tests of their own.
given_args=${#pytest_args[@]} names_tests=0
for arg in "${pytest_args[@]}"; do [[ $arg == tests || $arg == tests/* ]] && names_tests=1; done
(( names_tests )) || pytest_args=(tests "${pytest_args[@]}")
check_arch "$arch"
case $system in ""|raspi3b|virt) ;; *) die "--system must be raspi3b or virt" ;; esac
[[ -d "$repo" ]] || die "--repo $repo: not a directory"
repo=$(cd "$repo" && pwd)
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout needs whole seconds"
t0=$SECONDS

# ------------------------------------------------------------ system tier --
if [[ -n "$system" ]]; then
    need_tools qemu-system-aarch64:qemu-system-arm
    image=$(test_image_path "$arch")
    if test_image_stale "$arch"; then
        info "building the test image $image"
        "$PI_DIR/build-test-image.sh" --arch "$arch" --force "$image" >/dev/null
    fi
    if [[ -z "$command" ]]; then
        (( given_args )) || pytest_args=(tests -q -k smoke)
        # CLCONV_* settings reach the guest as they reach the qemu-user chroot.
        guest_env=()
        while IFS= read -r name; do
            # not the PI_* settings of these scripts, nor a host path for the test trace
            [[ "$name" == CLCONV_PI_* || "$name" == CLCONV_TEST_TRACE ]] || guest_env+=("$name=${!name}")
        done < <(compgen -e | grep '^CLCONV_' || true)
        command="cd /repo && ${guest_env[*]:+env $(printf '%q ' "${guest_env[@]}")}python3 -m pytest $(printf '%q ' "${pytest_args[@]}")"
    fi
    model=pi3; [[ $system == virt ]] && model=virt
    rc=0
    "$PI_DIR/run-qemu.sh" "$image" --model "$model" --repo "$repo" --timeout "$timeout_s" -- "$command" || rc=$?
    info "system tier ($system, $arch): exit $rc, $((SECONDS - t0)) s"
    [[ $rc != 5 || -n "${command##*pytest*}" ]] || warn "pytest collected no tests (exit 5): is there a test matching the selection?"
    exit "$rc"
fi

# ------------------------------------------------------- qemu-user tier --
[[ $EUID -eq 0 ]] || die 4 "the qemu-user tier needs root (chroot and bind mounts); run it with sudo"
need_tools chroot:coreutils mount:mount umount:mount tar:tar
rootfs_tar=$("$PI_DIR/build-test-image.sh" --arch "$arch" --rootfs-only -q)
setup_binfmt "$arch"
make_tmp
mounts=()
# shellcheck disable=SC2317  # called from the EXIT trap
undo_mounts() {
    local i
    for (( i=${#mounts[@]}-1; i>=0; i-- )); do
        umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null || warn "cannot unmount ${mounts[$i]}"
    done
    mounts=()
    # Never let the temp-dir removal walk into a mount that is still there.
    if [[ -n "$PI_TMP" ]] && grep -q " $PI_TMP/" /proc/mounts; then
        warn "mounts remain under $PI_TMP; leaving it in place"
        PI_TMP=""
    fi
}
on_exit undo_mounts
domount() {  # domount TARGET MOUNT-ARGS...
    local target=$1; shift
    mount "$@" "$target"
    mounts+=("$target")
}

# The unpacked rootfs: cached next to the tar, used read-only under an overlay.
lower=${rootfs_tar%.tar}.d
if [[ ! -f "$lower/.clconv-unpacked" || "$rootfs_tar" -nt "$lower/.clconv-unpacked" ]]; then
    info "unpacking $rootfs_tar -> $lower"
    rm -rf --one-file-system "$lower"
    mkdir -p "$lower"
    tar -C "$lower" --numeric-owner -xpf "$rootfs_tar"
    touch "$lower/.clconv-unpacked"
fi
root=$PI_TMP/root
mkdir -p "$root" "$PI_TMP/upper" "$PI_TMP/work"
if ! domount "$root" -t overlay overlay -o "lowerdir=$lower,upperdir=$PI_TMP/upper,workdir=$PI_TMP/work" 2>/dev/null; then
    info "overlayfs unavailable: unpacking a private copy of the rootfs"
    tar -C "$root" --numeric-owner -xpf "$rootfs_tar"
fi
mkdir -p "$root/repo"
repo_tar "$repo" "$PI_TMP/repo.tar"
tar -C "$root/repo" -xf "$PI_TMP/repo.tar"
for d in proc sys dev; do domount "$root/$d" --bind "/$d"; done
[[ ! -d /dev/pts ]] || domount "$root/dev/pts" --bind /dev/pts
mkdir -p "$root/tmp"
domount "$root/tmp" -t tmpfs tmpfs
[[ ! -d "$root/dev/shm" ]] || domount "$root/dev/shm" -t tmpfs tmpfs
# POCL's compiled-kernel cache survives between runs (LLVM under qemu-user is slow).
pocl_cache=$PI_CACHE/pocl-cache-$(cache_key "$arch")
mkdir -p "$pocl_cache" "$root/var/cache/clconv-pocl"
domount "$root/var/cache/clconv-pocl" --bind "$pocl_cache"

envs=(HOME=/root "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LANG=C.UTF-8
      PYTHONPATH=/repo PYTHONDONTWRITEBYTECODE=1 POCL_CACHE_DIR=/var/cache/clconv-pocl "TERM=${TERM:-dumb}")
if [[ $arch == armhf ]]; then
    icd=$(find "$root/usr/lib/$(triplet armhf)" -maxdepth 1 -name 'libpocl.so.*' -type f 2>/dev/null | sort | tail -1)
    [[ -n "$icd" ]] || die 1 "no libpocl.so.* in the armhf rootfs"
    envs+=("OCL_ICD_VENDORS=${icd#"$root"}")
fi
while IFS='=' read -r name _; do
    [[ "$name" == CLCONV_* && "$name" != CLCONV_PI_* && "$name" != CLCONV_TEST_TRACE ]] && envs+=("$name=${!name}")
done < <(env)
# The tests started are written to a file in the chroot (tests/conftest.py), so a run
# that dies says in which test; Python's faulthandler prints where a crash happened.
guest_trace=/repo/.clconv-test-trace
envs+=(PYTHONFAULTHANDLER=1 "CLCONV_TEST_TRACE=$guest_trace")

info "running pytest in the $arch chroot (qemu-user)"
rc=0
# shellcheck disable=SC2016  # $@ is expanded by the chroot's sh
timeout --kill-after=15 "$timeout_s" chroot "$root" /usr/bin/env -i "${envs[@]}" \
    /bin/sh -c 'cd /repo && exec python3 -m pytest "$@"' sh "${pytest_args[@]}" || rc=$?
[[ $rc != 124 ]] || warn "timed out after ${timeout_s}s"
info "qemu-user tier ($arch): exit $rc, $((SECONDS - t0)) s"
if [[ $rc != 0 ]]; then
    [[ ! -s "$root$guest_trace" ]] || warn "last test started: $(tail -n 1 "$root$guest_trace")"
    [[ -z "${CLCONV_TEST_TRACE:-}" || ! -s "$root$guest_trace" ]] || cp "$root$guest_trace" "$CLCONV_TEST_TRACE"
    if [[ $rc == 126 || $rc == 127 ]]; then
        # a command could not be run: say which of the pieces is missing now
        qemu=$(qemu_user_name "$arch")
        warn "binfmt_misc $qemu: $(head -n 1 "/proc/sys/fs/binfmt_misc/$qemu" 2>/dev/null || echo 'not registered')"
        for f in /usr/bin/env /bin/sh /usr/bin/python3; do
            [[ -e "$root$f" ]] || warn "$f is missing in the chroot"
        done
    fi
fi
exit "$rc"
