#!/bin/bash
# Usage: build-os-image.sh --arch arm64|armhf [--out IMG] [--size SIZE] [--force] [-q]
#        build-os-image.sh --arch arm64|armhf --rootfs-only
#
# Build a bootable SD card image laid out like Raspberry Pi OS, from Debian
# packages alone, without root and without loop devices:
#
#   partition 1  FAT32 "bootfs" (/boot/firmware): kernel8.img (arm64) or
#                kernel7.img (armhf), initramfs8 / initramfs7, Debian's device
#                trees (bcm2837-rpi-3-b*.dtb, bcm2836-rpi-2-b.dtb, ...),
#                config.txt, cmdline.txt
#   partition 2  ext4 "rootfs": Debian bookworm with systemd, openssh-server
#                (disabled until first boot says otherwise), sudo,
#                python3-pyopencl, pocl-opencl-icd, clinfo and clconv (this
#                repository, installed as a wheel would be, with the `clconv`
#                command), the kernel's modules, no users but root (locked)
#
# First boot works as on Raspberry Pi OS: the unit clconv-firstboot.service
# turns SSH on when the boot partition holds a file `ssh` (or ssh.txt), and
# creates the user named in userconf.txt ("NAME:HASH", HASH from
# `openssl passwd -6`; passwordless sudo, groups sudo and video); both files
# are removed once applied.  pi/extract-boot.sh --enable-ssh --user writes them.
#
# How it is made (no emulated installs of the kernel):
#   1. `mmdebstrap --variant=apt` of the packages above (qemu-user, 5-20 min),
#      kept as a tar in the cache (like build-test-image.sh's rootfs);
#   2. Debian's linux-image-arm64 / linux-image-armmp and busybox-static are
#      downloaded (`apt-get download`) and unpacked with dpkg-deb -x on the
#      host: the kernel's modules go into the root filesystem, depmod runs on
#      the host, and the initramfs is a small busybox one built on the host
#      (load the SD and ext4 modules, mount root=, switch_root to systemd) —
#      seconds instead of the 14-20 min of `apt install linux-image-*` under
#      qemu-user (update-initramfs under emulation).  dpkg does not list the
#      kernel package as installed;
#   3. `mkfs.ext4 -d` (under fakeroot when not root), mkfs.vfat + mcopy,
#      sfdisk, dd into a sparse file.
#
#   --arch A       arm64 (boots with run-qemu.sh --model pi3, QEMU -M raspi3b)
#                  or armhf (run-qemu.sh --model pi2, -M raspi2b)
#   --out IMG      where the image goes (default: the cache, see below); the
#                  image is written next to IMG and renamed over it at the end
#   --size SIZE    image size (default: the smallest power of two that fits,
#                  with ~1 GiB free in the root)
#   --rootfs-only  only make sure the cached rootfs tar exists; print its path
#   --force        rebuild even when the cached image is up to date, and
#                  overwrite an existing --out
#   -q             quiet
#
# Cache: ${CLCONV_PI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/clconv/pi}: the rootfs
# tar os-rootfs-<suite>-<arch>-<hash of the package list>.tar, the kernel
# packages, and the default image os-image-<same key>.img, rebuilt when the
# rootfs, these scripts or clconv's sources changed.  The path of the image is
# printed on stdout as the last line.
# Exit status: 0 ok, 2 bad input, 3 missing tool, 4 needs root (binfmt_misc),
# 1 other failure.
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
        --out|-o) [[ $# -ge 2 ]] || die "$1 needs a path"; out=$2; shift ;;
        --out=*) out=${1#*=} ;;
        --size) [[ $# -ge 2 ]] || die "--size needs a value"; size_arg=$2; shift ;;
        --rootfs-only) rootfs_only=1 ;;
        --force) PI_FORCE=1 ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ -n "$arch" ]] || die "--arch arm64|armhf is required (see --help)"
check_arch "$arch"
need_tools mmdebstrap:mmdebstrap tar:tar sha256sum:coreutils
mkdir -p "$PI_CACHE"
make_tmp
t0=$SECONDS

# ------------------------------------------------------------------ rootfs --
rootfs_tar=$(os_rootfs_tar_path "$arch")
if [[ -s "$rootfs_tar" ]]; then
    info "using cached rootfs $rootfs_tar"
else
    [[ "$(uname -m)" == aarch64 && "$arch" == arm64 ]] || setup_binfmt "$arch"
    info "mmdebstrap $PI_SUITE $arch with systemd and openssh-server (5-20 min) -> $rootfs_tar"
    mirror_args=()
    [[ -z "$PI_MIRROR" ]] || mirror_args=("$PI_MIRROR")
    part=${rootfs_tar%.tar}.part.tar
    for try in 1 2; do   # a mirror caught mid-sync fails once more often than twice
        if mmdebstrap --quiet --format=tar --arch="$arch" --variant=apt --include="$PI_OS_PACKAGES" \
            "$PI_SUITE" "$part" "${mirror_args[@]}"; then
            break
        fi
        rm -f "$part"
        [[ $try == 1 ]] || die 1 "mmdebstrap failed"
        warn "mmdebstrap failed; retrying in 20 s"
        sleep 20
    done
    mv -f "$part" "$rootfs_tar"
    info "rootfs built in $((SECONDS - t0)) s"
fi
if [[ $rootfs_only == 1 ]]; then
    echo "$rootfs_tar"
    exit 0
fi

need_tools sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs dpkg-deb:dpkg \
    apt-get:apt depmod:kmod cpio:cpio gzip:gzip dd:coreutils python3:python3

# What goes into the image besides the rootfs: clconv's sources and these scripts.
src_hash=$( { tar -C "$PI_REPO" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
                  --exclude=__pycache__ --exclude='*.pyc' -cf - clconv kernels_cl pyproject.toml README.md
              cat "$0" "$PI_DIR/os-initramfs-init.sh" "$PI_DIR/os-firstboot.sh" "$PI_DIR/lib.sh"; } \
            | sha256sum | cut -c1-10)
default_out=$(os_image_path "$arch")
[[ -n "$out" ]] || out=$default_out
stamp=$out.sources
if [[ -e "$out" && "${PI_FORCE:-0}" != 1 ]]; then
    if [[ "$out" == "$default_out" && "$(cat "$stamp" 2>/dev/null)" == "$src_hash" && ! "$rootfs_tar" -nt "$out" ]]; then
        info "cached image is up to date: $out"
        echo "$out"
        exit 0
    fi
    [[ "$out" == "$default_out" ]] || die "output exists: $out (pass --force to overwrite)"
fi
[[ ! -e "$out" ]] || check_not_in_use "$out"
mkdir -p -- "$(dirname -- "$out")"

# ------------------------------------------------------------------ kernel --
case $arch in
    arm64) kmeta=linux-image-arm64; kimg=kernel8.img; initrd=initramfs8
           console=ttyS1   # Debian's Pi 3 dtb: ttyAMA0 drives Bluetooth, the console is the mini UART
           dtbs=(broadcom/bcm2837-rpi-3-b.dtb broadcom/bcm2837-rpi-3-b-plus.dtb broadcom/bcm2837-rpi-3-a-plus.dtb
                 broadcom/bcm2711-rpi-4-b.dtb) ;;
    armhf) kmeta=linux-image-armmp; kimg=kernel7.img; initrd=initramfs7; console=ttyAMA0
           dtbs=(bcm2836-rpi-2-b.dtb bcm2837-rpi-3-b.dtb bcm2835-rpi-b-plus.dtb bcm2835-rpi-zero.dtb) ;;
esac
kdir=$PI_CACHE/kernel-$PI_SUITE-$arch
if ! compgen -G "$kdir/linux-image-*.deb" >/dev/null || ! compgen -G "$kdir/busybox-static_*.deb" >/dev/null; then
    info "downloading Debian's $arch kernel ($kmeta) and busybox-static"
    kpkg=$(apt_depends "$arch" "$kmeta")
    [[ "$kpkg" == linux-image-* ]] || die 1 "cannot resolve $kmeta (got '$kpkg')"
    rm -rf "$kdir.part"
    apt_download "$arch" "$kdir.part" "$kpkg" busybox-static
    rm -rf "$kdir"; mv "$kdir.part" "$kdir"
fi
kx=$PI_TMP/kernel
kver=$(unpack_kernel "$kdir" "$kx")
info "kernel $kver"
bootf=$PI_TMP/bootfiles
mkdir -p "$bootf"
cp "$kx/boot/vmlinuz-$kver" "$bootf/$kimg"
for d in "${dtbs[@]}"; do
    cp "$kx/usr/lib/linux-image-$kver/$d" "$bootf/" || die 1 "no $d in the kernel package"
done
make_initramfs "$kx" "$kver" "$PI_DIR/os-initramfs-init.sh" "$bootf/$initrd" \
    ext4 crc32c_generic sdhci sdhci-pltfm sdhci-iproc bcm2835 mmc_block bcm2835_wdt

# ------------------------------------------------------------------ clconv --
info "building clconv's wheel"
repo_tar "$PI_REPO" "$PI_TMP/repo.tar"
mkdir -p "$PI_TMP/repo" "$PI_TMP/wheel"
tar -C "$PI_TMP/repo" -xf "$PI_TMP/repo.tar"
# The wheel is built offline, with the host's setuptools and wheel (no build isolation).
py=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import setuptools, wheel, pip' 2>/dev/null; then py=$p; break; fi
done
[[ -n "$py" ]] || die 3 "no python3 with pip, setuptools and wheel (apt-get install python3-pip python3-setuptools python3-wheel)"
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$PI_TMP/wheel" "$PI_TMP/repo" >"$PI_TMP/wheel.log" 2>&1 \
    || { cat "$PI_TMP/wheel.log" >&2; die 1 "could not build clconv's wheel ($py -m pip wheel)"; }
wheel=$(compgen -G "$PI_TMP/wheel/clconv-*.whl" | head -1) || die 1 "no clconv wheel was built"

# ---------------------------------------------------------- root contents --
label_id=$(printf '%s' "$arch$src_hash" | sha256sum | cut -c1-8)
# populate_root ROOT: the rootfs tar, the kernel's modules and clconv, and the
# Raspberry Pi OS touches (fstab by PARTUUID, DHCP, first boot, SSH off).
populate_root() {
    local root=$1 pyver site w
    tar -C "$root" --numeric-owner -xpf "$rootfs_tar"
    mkdir -p "$root/lib/modules" "$root/usr/lib" "$root/boot/firmware" "$root/usr/local/bin" "$root/usr/local/sbin"
    cp -a "$kx/lib/modules/$kver" "$root/lib/modules/"
    cp -a "$kx/usr/lib/linux-image-$kver" "$root/usr/lib/"
    cp -a "$kx/boot/." "$root/boot/"
    # clconv, as pip installs its wheel (pure Python), plus the entry point.
    pyver=$(readlink "$root/usr/bin/python3"); pyver=${pyver##*/}
    [[ "$pyver" == python3.* ]] || { echo "cannot tell the rootfs's Python version" >&2; return 1; }
    site=$root/usr/local/lib/$pyver/dist-packages
    mkdir -p "$site"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$site"
    printf 'pip\n' > "$(compgen -G "$site/clconv-*.dist-info")/INSTALLER"
    printf '#!/usr/bin/python3\nimport sys\nfrom clconv.cli import main\nsys.exit(main())\n' > "$root/usr/local/bin/clconv"
    chmod 0755 "$root/usr/local/bin/clconv"

    echo raspberrypi > "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' > "$root/etc/hosts"
    # Under QEMU's TCG udev takes minutes to announce the SD card's partitions (it
    # loads every driver the Pi's device tree names first): systemd's default 90 s
    # wait for the boot partition ended in emergency mode.  So the boot partition
    # waits longer and never blocks booting; the root, mounted by the initramfs,
    # is not checked again (the initramfs mounts it read-only; fsck.repair=yes).
    printf 'PARTUUID=%s-01  /boot/firmware  vfat  defaults,nofail,x-systemd.device-timeout=20min  0  2\nPARTUUID=%s-02  /  ext4  defaults,noatime  0  0\n' \
        "$label_id" "$label_id" > "$root/etc/fstab"
    mkdir -p "$root/etc/systemd/network"
    printf '[Match]\nName=e* usb*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/20-wired.network"
    install -m 0755 "$PI_DIR/os-firstboot.sh" "$root/usr/local/sbin/clconv-firstboot"
    printf '%s\n' '[Unit]' \
        'Description=First boot as on Raspberry Pi OS: ssh and userconf.txt on the boot partition' \
        'RequiresMountsFor=/boot/firmware' 'After=local-fs.target' \
        'Before=ssh.service systemd-user-sessions.service' \
        'ConditionPathExists=|/boot/firmware/ssh' 'ConditionPathExists=|/boot/firmware/ssh.txt' \
        'ConditionPathExists=|/boot/firmware/userconf.txt' '' \
        '[Service]' 'Type=oneshot' 'ExecStart=/usr/local/sbin/clconv-firstboot' '' \
        '[Install]' 'WantedBy=multi-user.target' > "$root/etc/systemd/system/clconv-firstboot.service"
    w=$root/etc/systemd/system/multi-user.target.wants
    mkdir -p "$w"
    ln -sfn /etc/systemd/system/clconv-firstboot.service "$w/clconv-firstboot.service"
    ln -sfn /lib/systemd/system/systemd-networkd.service "$w/systemd-networkd.service"
    # SSH stays off until the boot partition asks for it; host keys are made then.
    rm -f "$w/ssh.service" "$root/etc/systemd/system/sshd.service" "$root"/etc/ssh/ssh_host_*
    # No background apt runs on an emulated CPU.
    rm -f "$root"/etc/systemd/system/timers.target.wants/apt-daily*.timer
    # Root stays locked; each image gets its own machine id on first boot.
    sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"
    : > "$root/etc/machine-id"
}
rootdir=$PI_TMP/root
mkdir -p "$rootdir"
fr_save=() fr_load=()
if [[ $EUID -ne 0 ]]; then   # one fakeroot database: mkfs.ext4 sees root's ownership
    fr_save=(fakeroot -s "$PI_TMP/fakeroot.db"); fr_load=(fakeroot -i "$PI_TMP/fakeroot.db")
fi
export -f populate_root
export rootfs_tar kx kver wheel PI_DIR label_id
# shellcheck disable=SC2016  # expanded by the inner bash
"${fr_save[@]}" bash -c 'set -euo pipefail; populate_root "$1"' bash "$rootdir" || die 1 "could not populate the root filesystem"

# ------------------------------------------------------------- boot files --
{
    echo "# Made by clconv's pi/build-os-image.sh: Debian's kernel and device trees, for"
    echo "# QEMU (pi/run-qemu.sh); a real Pi also needs its firmware (raspi-firmware)."
    [[ $arch != arm64 ]] || echo "arm_64bit=1"
    echo "kernel=$kimg"
    echo "initramfs $initrd followkernel"
    echo "enable_uart=1"
} > "$bootf/config.txt"
echo "console=$console,115200 console=tty1 root=PARTUUID=$label_id-02 rootfstype=ext4 fsck.repair=yes rootwait" \
    > "$bootf/cmdline.txt"

# ----------------------------------------------------------------- layout --
boot_start=8192                         # sectors (4 MiB), as Raspberry Pi OS
boot_bytes=$(( 512 * 1024 * 1024 ))     # bootfs: 512 MiB, as Raspberry Pi OS bookworm
used=$(du -s -B1 "$rootdir" | cut -f1)
if [[ -n "$size_arg" ]]; then
    total=$(to_bytes "$size_arg")
    is_pow2 "$total" || warn "--size $size_arg is not a power of two: QEMU's raspi machines will refuse it"
else
    total=$(next_pow2 $(( boot_start * 512 + boot_bytes + used * 12 / 10 + 1024 * 1024 * 1024 )))
fi
root_start=$(( boot_start + boot_bytes / 512 ))
root_sectors=$(( total / 512 - root_start ))
(( root_sectors * 512 > used * 11 / 10 )) || die "--size $size_arg is too small (the root alone needs $(human "$used"))"
info "root filesystem: $(human "$used") of files; image $(human "$total")"
"${fr_load[@]}" mkfs.ext4 -q -F -L rootfs -E root_owner=0:0 -d "$rootdir" "$PI_TMP/root.ext4" "$(( root_sectors / 2 ))K" \
    || die 1 "mkfs.ext4 failed"
rm -rf --one-file-system "$rootdir"

truncate -s "$boot_bytes" "$PI_TMP/boot.vfat"
mkfs.vfat -F 32 -n BOOTFS "$PI_TMP/boot.vfat" >/dev/null
for f in "$bootf"/*; do
    mcopy -o -i "$PI_TMP/boot.vfat" "$f" "::/$(basename "$f")" || die 1 "mcopy $f failed"
done

# ------------------------------------------------------------------ image --
# Assembled next to OUT and renamed over it at the end (atomic).
part_dir=$(mktemp -d -- "$(dirname -- "$out")/.clconv-pi-work.XXXXXX")
remove_part() { rm -rf --one-file-system -- "$part_dir"; }
on_exit remove_part
part=$part_dir/image
truncate -s "$total" "$part"
printf 'label: dos\nlabel-id: 0x%s\nstart=%s, size=%s, type=c\nstart=%s, size=%s, type=83\n' \
    "$label_id" "$boot_start" $(( boot_bytes / 512 )) "$root_start" "$root_sectors" | sfdisk -q "$part" \
    || die 1 "sfdisk failed"
dd_into_hole "$PI_TMP/boot.vfat" "$part" $(( boot_start * 512 ))
dd_into_hole "$PI_TMP/root.ext4" "$part" $(( root_start * 512 ))
sync -- "$part"
mv -f -- "$part" "$out"
if [[ "$out" == "$default_out" ]]; then echo "$src_hash" > "$stamp"; fi
print_table "$out" "OS image"
info "done in $((SECONDS - t0)) s: $out ($(human "$total"), $arch, kernel $kver)"
echo "$out"
