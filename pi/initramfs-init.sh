#!/bin/busybox sh
# /init of the initramfs made by build-test-image.sh (runs under busybox sh).
#
# 1. loads the modules listed in /etc/clconv-modules (dependency order);
# 2. mounts the root partition (partition 2 of /dev/vda, /dev/mmcblk0 or
#    /dev/sda, or clconv.root=DEV from the kernel command line) read-write,
#    and the FAT boot partition (partition 1) on /boot/firmware;
# 3. if the boot partition has clconv/repo.tar, unpacks it into a tmpfs /repo;
# 4. runs, chrooted into the root, the first of:
#      clconv/cmd.sh on the boot partition (written by run-qemu.sh),
#      the base64-encoded command given as clconv.cmd=... on the command line,
#      an interactive shell when clconv.shell=1,
#      a short OpenCL smoke check;
# 5. prints "CLCONV-EXIT-CODE: N" (N = the command's exit status) on the
#    console and reboots through sysrq (with QEMU -no-reboot: QEMU exits).
# shellcheck shell=sh

/bin/busybox mkdir -p /proc /sys /dev /newroot /usr/bin /usr/sbin /sbin /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 1 > /proc/sys/kernel/sysrq
echo 1 > /proc/sys/kernel/printk 2>/dev/null

say() { echo "clconv-init: $*"; }
finish() {
    cd /
    echo
    echo "CLCONV-EXIT-CODE: $1"
    sync
    for m in /newroot/repo /newroot/boot/firmware /newroot/tmp /newroot/dev/pts /newroot/dev /newroot/sys /newroot/proc /newroot; do
        umount "$m" 2>/dev/null
    done
    sync
    echo b > /proc/sysrq-trigger
    sleep 10
    poweroff -f
}

while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null
done < /etc/clconv-modules

root="" root_given="" cmd64="" shell=0 rootwait=30
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    case $arg in
        clconv.root=*) root=${arg#clconv.root=}; root_given=1 ;;
        clconv.cmd=*) cmd64=${arg#clconv.cmd=} ;;
        clconv.shell=1) shell=1 ;;
        clconv.rootwait=*) rootwait=${arg#clconv.rootwait=} ;;
    esac
done

i=0
while [ -z "$root" ] || [ ! -b "$root" ]; do
    if [ -z "$root_given" ]; then
        for d in /dev/vda2 /dev/mmcblk0p2 /dev/sda2; do
            [ -b "$d" ] && { root=$d; break; }
        done
    fi
    [ -n "$root" ] && [ -b "$root" ] && break
    i=$((i + 1))
    if [ "$i" -gt $((rootwait * 10)) ]; then
        say "no root device found after ${rootwait}s (block devices: $(echo /sys/class/block/*))"
        finish 120
    fi
    usleep 100000
done
say "root device $root"
mount -t ext4 -o rw "$root" /newroot || { say "cannot mount $root"; finish 121; }
case $root in
    *mmcblk*p2) boot=${root%p2}p1 ;;
    *) boot=${root%2}1 ;;
esac
B=/newroot/boot/firmware
mkdir -p $B /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
mount -t vfat -o rw "$boot" $B || say "cannot mount the boot partition $boot"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
if [ -f $B/clconv/repo.tar ]; then
    mkdir -p /newroot/repo
    mount -t tmpfs tmpfs /newroot/repo
    tar -xf $B/clconv/repo.tar -C /newroot/repo || say "cannot unpack repo.tar"
    say "repository unpacked in /repo"
fi

envs="HOME=/root TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONPATH=/repo PYTHONDONTWRITEBYTECODE=1 POCL_CACHE_DIR=/tmp/pocl-cache"
if [ -f $B/clconv/env ]; then
    envs="$envs $(cat $B/clconv/env)"
fi
if [ -f $B/clconv/cmd.sh ]; then
    say "running clconv/cmd.sh"
    # shellcheck disable=SC2086  # $envs is a list of NAME=VALUE words
    chroot /newroot /usr/bin/env -i $envs /bin/bash -c 'cd /repo 2>/dev/null || cd /; exec /bin/bash /boot/firmware/clconv/cmd.sh'
    rc=$?
elif [ -n "$cmd64" ]; then
    echo "$cmd64" | base64 -d > /newroot/tmp/cmd.sh
    say "running the command from clconv.cmd="
    # shellcheck disable=SC2086
    chroot /newroot /usr/bin/env -i $envs /bin/bash -c 'cd /repo 2>/dev/null || cd /; exec /bin/bash /tmp/cmd.sh'
    rc=$?
elif [ "$shell" = 1 ]; then
    say "interactive shell (exit to power off)"
    # shellcheck disable=SC2086
    setsid cttyhack chroot /newroot /usr/bin/env -i $envs /bin/bash -l
    rc=$?
else
    say "no command given: OpenCL smoke check"
    # shellcheck disable=SC2086
    chroot /newroot /usr/bin/env -i $envs /bin/sh -c 'clinfo -l && python3 -c "import pyopencl as cl; print(cl.get_platforms())"'
    rc=$?
fi
finish "$rc"
