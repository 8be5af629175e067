#!/bin/busybox sh
# /init of the initramfs made by build-os-image.sh (busybox sh): what Debian's
# initramfs-tools would do for this image, in a few lines built on the host.
#
# 1. loads the modules listed in /etc/clconv-modules (dependency order: the
#    SD controllers, ext4, the watchdog that makes `reboot` work under QEMU);
# 2. waits for root= from the kernel command line (/dev/NAME, or
#    PARTUUID=DISKID-NN as on Raspberry Pi OS: NN-th partition of the disk
#    whose MBR has that id) and mounts it read-only (read-write with `rw`);
# 3. switch_root to init= (default /sbin/init, i.e. systemd).
# On failure it says why and drops to a shell on the console.
# shellcheck shell=sh

/bin/busybox mkdir -p /proc /sys /dev /newroot /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

say() { echo "initramfs: $*"; }
rescue() { say "$*; starting a shell"; exec setsid cttyhack sh; }

while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null
done < /etc/clconv-modules

root="" fstype=ext4 mode=ro init=/sbin/init rootwait=60
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    case $arg in
        root=*) root=${arg#root=} ;;
        rootfstype=*) fstype=${arg#rootfstype=} ;;
        init=*) init=${arg#init=} ;;
        rw) mode=rw ;;
        ro) mode=ro ;;
    esac
done
[ -n "$root" ] || rescue "no root= on the kernel command line"

# find_root: print the device node of $root, or nothing yet.
find_root() {
    case $root in
        PARTUUID=*)
            id=${root#PARTUUID=}; disk_id=${id%-*}; part=${id##*-}
            for sys in /sys/block/*; do
                d=${sys##*/}
                [ -b "/dev/$d" ] || continue
                sig=$(dd if="/dev/$d" bs=1 skip=440 count=4 2>/dev/null | od -An -tx4 | tr -d ' \n')
                [ "$sig" = "$disk_id" ] || continue
                part=${part#0}
                case $d in *[0-9]) dev=/dev/${d}p$part ;; *) dev=/dev/$d$part ;; esac
                [ -b "$dev" ] && echo "$dev"
                return
            done ;;
        /dev/*) [ -b "$root" ] && echo "$root" ;;
    esac
}
i=0
dev=$(find_root)
while [ -z "$dev" ]; do
    i=$((i + 1))
    [ "$i" -le $((rootwait * 10)) ] || rescue "root device $root not found after ${rootwait}s (block devices: $(echo /sys/class/block/*))"
    usleep 100000
    dev=$(find_root)
done
mount -t "$fstype" -o "$mode" "$dev" /newroot || rescue "cannot mount $dev ($root)"
[ -x "/newroot$init" ] || [ -L "/newroot$init" ] || rescue "no $init in the root filesystem"
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /sys
umount /proc
exec switch_root /newroot "$init"
