#!/bin/bash
# Usage: build-test-image.sh --arch arm64|armhf OUT [--size SIZE] [--force]
#        build-test-image.sh --arch arm64|armhf --rootfs-only
#
# Build a Raspberry-Pi-OS-like test system from Debian packages alone.
#
# 1. Root filesystem: `mmdebstrap --variant=apt` of Debian $CLCONV_PI_SUITE
#    (bookworm) for ARCH with python3-pyopencl, pocl-opencl-icd, python3-numpy,
#    python3-tqdm, python3-pytest, python3-hypothesis and clinfo
#    ($CLCONV_PI_PACKAGES; keep it in step with pyproject's dependencies), kept
#    as a tar in the cache dir; later runs reuse it (no mmdebstrap).  Needs
#    binfmt_misc for ARCH (set up here when run as root) and takes ~4 min.
# 2. Kernel: Debian's arm64 linux-image and busybox-static packages are
#    fetched with `apt-get download` (private apt config, also cached) and
#    unpacked with dpkg-deb -x; nothing is installed in the rootfs.
# 3. Initramfs: busybox + the modules for virtio, ext4, vfat, the Pi's SD
#    controllers and watchdog; its /init is pi/initramfs-init.sh (mounts the
#    root, runs clconv/cmd.sh from the boot partition, prints
#    "CLCONV-EXIT-CODE: N" and reboots, so QEMU -no-reboot exits).
# 4. SD card image OUT: MBR, FAT32 boot partition (kernel8.img, initramfs8,
#    bcm2837-rpi-3-b*.dtb, cmdline.txt, config.txt, clconv-test-image) and an
#    ext4 root made with `mkfs.ext4 -d`, assembled with sfdisk, mkfs.vfat,
#    mtools and dd — no loop devices.  The size is a power of two (QEMU raspi).
#
#   --arch A       arm64 (boots under raspi3b and virt) or armhf (the arm64
#                  kernel runs the 32-bit userland; the qemu-user tier only
#                  needs the rootfs tar)
#   OUT            image to write (refused if it exists, unless --force)
#   --size SIZE    image size (default: smallest power of two that fits)
#   --rootfs-only  only make sure the cached rootfs tar exists; print its path
#   --force        overwrite OUT
#   -q             quiet
#
# Cache: ${CLCONV_PI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/clconv/pi} (currently
# resolved to the path printed by --rootfs-only).  Building the image (step 4)
# needs root or fakeroot (file ownership in the ext4 root), step 1 needs root
# or unprivileged user namespaces (mmdebstrap's unshare mode).
set -euo pipefail
PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pi/lib.sh
. "$PI_DIR/lib.sh"

arch="" out="" size_arg="" rootfs_only=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --arch) [[ $# -ge 2 ]] || die "--arch needs a value"; arch=$2; shift ;;
        --arch=*) arch=${1#*=} ;;
        --size) [[ $# -ge 2 ]] || die "--size needs a value"; size_arg=$2; shift ;;
        --rootfs-only) rootfs_only=1 ;;
        --force) PI_FORCE=1 ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) [[ -z "$out" ]] || die "unexpected argument: $1"; out=$1 ;;
    esac
    shift
done
[[ -n "$arch" ]] || die "--arch arm64|armhf is required (see --help)"
check_arch "$arch"
[[ $rootfs_only == 1 || -n "$out" ]] || die "OUT is required (or --rootfs-only)"
if [[ -n "$out" && -e "$out" && "${PI_FORCE:-0}" != 1 ]]; then
    die "output exists: $out (pass --force to overwrite)"
fi
need_tools mmdebstrap:mmdebstrap tar:tar sha256sum:coreutils
mkdir -p "$PI_CACHE"
make_tmp

# ------------------------------------------------------------------ rootfs --
rootfs_tar=$(rootfs_tar_path "$arch")
if [[ -s "$rootfs_tar" ]]; then
    info "using cached rootfs $rootfs_tar"
else
    [[ "$(uname -m)" == aarch64 && "$arch" == arm64 ]] || setup_binfmt "$arch"
    info "mmdebstrap $PI_SUITE $arch (a few minutes) -> $rootfs_tar"
    mirror_args=()
    [[ -z "$PI_MIRROR" ]] || mirror_args=("$PI_MIRROR")
    start=$SECONDS
    part=${rootfs_tar%.tar}.part.tar
    # Two tries: a mirror caught mid-sync ("File has unexpected size") is
    # common; the second try leaves out the security suite when no mirror was
    # given (the usual culprit), saying so.
    for try in 1 2; do
        if mmdebstrap --quiet --format=tar --arch="$arch" --variant=apt --include="$PI_ROOTFS_PACKAGES" \
            "$PI_SUITE" "$part" "${mirror_args[@]}"; then
            break
        fi
        rm -rf "$part"
        [[ $try == 1 ]] || die 1 "mmdebstrap failed"
        if [[ -z "$PI_MIRROR" ]]; then
            mirror_args=("deb http://deb.debian.org/debian $PI_SUITE main" "deb http://deb.debian.org/debian $PI_SUITE-updates main")
            warn "mmdebstrap failed; retrying in 20 s without $PI_SUITE-security"
        else
            warn "mmdebstrap failed; retrying in 20 s"
        fi
        sleep 20
    done
    mv -f "$part" "$rootfs_tar"
    info "rootfs built in $((SECONDS - start)) s"
fi
if [[ $rootfs_only == 1 ]]; then
    echo "$rootfs_tar"
    exit 0
fi

need_tools sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs dpkg-deb:dpkg \
    apt-get:apt depmod:kmod cpio:cpio gzip:gzip dd:coreutils
as_root=()
if [[ $EUID -ne 0 ]]; then
    need_tools fakeroot:fakeroot
    as_root=(fakeroot)
fi

# ------------------------------------------------------------------ kernel --
kdir=$PI_CACHE/kernel-$PI_SUITE-arm64
if ! compgen -G "$kdir/linux-image-*.deb" >/dev/null || ! compgen -G "$kdir/busybox-static_*.deb" >/dev/null; then
    info "downloading Debian's arm64 kernel and busybox-static"
    kpkg=$(apt_depends arm64 linux-image-arm64)
    [[ "$kpkg" == linux-image-* ]] || die 1 "cannot resolve linux-image-arm64 (got '$kpkg')"
    rm -rf "$kdir.part"
    apt_download arm64 "$kdir.part" "$kpkg" busybox-static
    rm -rf "$kdir"; mv "$kdir.part" "$kdir"
fi
kx=$PI_TMP/kernel
kver=$(unpack_kernel "$kdir" "$kx")
info "kernel $kver"

# --------------------------------------------------------------- initramfs --
make_initramfs "$kx" "$kver" "$PI_DIR/initramfs-init.sh" "$PI_TMP/initramfs8" \
    virtio_pci virtio_blk virtio_mmio ext4 crc32c_generic vfat nls_cp437 nls_ascii nls_iso8859-1 \
    sdhci sdhci-pltfm sdhci-iproc bcm2835 bcm2835_wdt

# -------------------------------------------------------------- boot files --
bootf=$PI_TMP/bootfiles
mkdir -p "$bootf"
cp "$kx/boot/vmlinuz-$kver" "$bootf/kernel8.img"
cp "$PI_TMP/initramfs8" "$bootf/initramfs8"
for dtb in bcm2837-rpi-3-b.dtb bcm2837-rpi-3-b-plus.dtb; do
    cp "$kx/usr/lib/linux-image-$kver/broadcom/$dtb" "$bootf/$dtb"
done
cat > "$bootf/config.txt" <<'EOF'
# clconv test image (Debian kernel; for QEMU, also boots a Pi 3 with firmware)
arm_64bit=1
kernel=kernel8.img
initramfs initramfs8 followkernel
enable_uart=1
EOF
echo "console=ttyS1,115200 console=tty1 rdinit=/init panic=-1 quiet" > "$bootf/cmdline.txt"
cat > "$bootf/clconv-test-image" <<EOF
# made by pi/build-test-image.sh; run it with pi/run-qemu.sh
arch=$arch
suite=$PI_SUITE
kernel=$kver
rootfs=$(basename "$rootfs_tar")
EOF

# ------------------------------------------------------------------ rootfs --
boot_start=8192                         # sectors: 4 MiB
boot_bytes=$(( 256 * 1024 * 1024 ))
rootdir=$PI_TMP/root
root_img=$PI_TMP/root.ext4
mkdir -p "$rootdir"
used=$(( $(tar -tvf "$rootfs_tar" | awk '{ s += $3 } END { print s }') ))
if [[ -n "$size_arg" ]]; then
    total=$(to_bytes "$size_arg")
    is_pow2 "$total" || warn "--size $size_arg is not a power of two: QEMU's raspi machines will refuse it"
else
    total=$(next_pow2 $(( boot_start * 512 + boot_bytes + used * 13 / 10 + 512 * 1024 * 1024 )))
fi
root_start=$(( boot_start + boot_bytes / 512 ))
root_sectors=$(( total / 512 - root_start ))
(( root_sectors * 512 > used )) || die "--size $size_arg is too small (the root alone needs $(human "$used"))"
info "building the root filesystem ($(human "$used") of files, image $(human "$total"))"
# One fakeroot session (when not root) so that mkfs.ext4 sees the ownership.
# shellcheck disable=SC2016  # expanded by the inner sh
"${as_root[@]}" sh -c '
    set -e
    tar -C "$1" --numeric-owner -xpf "$2"
    mkdir -p "$1/boot/firmware" "$1/repo"
    echo clconv-pi > "$1/etc/hostname"
    mkfs.ext4 -q -F -L rootfs -E root_owner=0:0 -d "$1" "$3" "$4" >&2
' sh "$rootdir" "$rootfs_tar" "$root_img" "$(( root_sectors / 2 ))K"
rm -rf "$rootdir"

# -------------------------------------------------------------------- boot --
boot_img=$PI_TMP/boot.vfat
truncate -s "$boot_bytes" "$boot_img"
mkfs.vfat -F 32 -n BOOT "$boot_img" >/dev/null
for f in "$bootf"/*; do
    mcopy -o -i "$boot_img" "$f" "::/$(basename "$f")"
done

# ------------------------------------------------------------------- image --
part=$out.part
rm -f "$part"
remove_part() { rm -f "$part"; }
on_exit remove_part
truncate -s "$total" "$part"
printf 'label: dos\nlabel-id: 0xc1c0c0de\nstart=%s, size=%s, type=c\nstart=%s, size=%s, type=83\n' \
    "$boot_start" $(( boot_bytes / 512 )) "$root_start" "$root_sectors" | sfdisk -q "$part"
dd_into_hole "$boot_img" "$part" $(( boot_start * 512 ))
dd_into_hole "$root_img" "$part" $(( root_start * 512 ))
mv -f "$part" "$out"
print_table "$out" "test image"
info "done: $out ($(human "$total"), kernel $kver)"
echo "$out"
