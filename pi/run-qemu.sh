#!/bin/bash
# Usage: run-qemu.sh IMAGE [--model pi3|pi2|pi0|virt] [--ssh-port N]
#                    [--user NAME:PASSWORD] [--timeout S] [--boot-timeout S]
#                    [--repo DIR] [--env NAME=VALUE]... [--shell] [--in-place]
#                    [--keep-init] [--verbose] [--dry-run] [-- COMMAND...]
#
# Boot a Raspberry Pi SD card image under QEMU.  The kernel, dtb (and
# initramfs) are taken from the image's boot partition with extract-boot.sh.
#
# Models (RAM is what the machine requires):
#   pi3   qemu-system-aarch64 -M raspi3b, 1 GiB, 64-bit: kernel8.img +
#         bcm2710-rpi-3-b-plus.dtb (Raspberry Pi OS) or Debian's
#         bcm2837-rpi-3-b.dtb (test image)                       [default]
#   pi2   qemu-system-arm -M raspi2b, 1 GiB, 32-bit: kernel7.img +
#         bcm2709-rpi-2-b.dtb (Raspberry Pi OS) or Debian's bcm2836-rpi-2-b.dtb
#   pi0   qemu-system-arm -M raspi0, 512 MiB: kernel.img + bcm2708-rpi-zero.dtb
#   virt  qemu-system-aarch64 -M virt -cpu cortex-a72, 1 GiB, virtio disk;
#         test images only (much faster than raspi3b)
# The raspi machines need an SD image whose size is a power of two: use
# `pi/resize-image.sh IMAGE +0 --pow2` (or a bigger size) first.
#
# Two kinds of image, told apart by the file clconv-test-image on the boot
# partition:
#
# Raspberry Pi OS image (SSH mode).  USB network with the guest's port 22
# forwarded to localhost:PORT (--ssh-port, default 2222):
#   -device "usb-net,netdev=net0" -netdev user,id=net0,hostfwd=tcp::PORT-:22
#   Without COMMAND: boot with the serial console on this terminal.
#   With COMMAND: boot in the background (console in a log), wait for SSH
#   (--boot-timeout, default 900 s), run COMMAND over ssh, `sudo reboot`
#   (QEMU runs with -no-reboot, so it exits), kill QEMU if it has not exited
#   120 s later (saying so); the exit status is COMMAND's.  The image's
#   initramfs8 (pi3), initramfs7 (pi2) or initramfs (pi0) is passed with
#   -initrd when the boot partition has one.  --user NAME:PASSWORD writes
#   `ssh` and userconf.txt into the working copy (extract-boot.sh) and logs in
#   with that password (OpenSSH askpass, no sshpass needed); without it, ssh
#   uses your keys as user $CLCONV_PI_SSH_USER (default pi).  The kernel
#   command line is the image's cmdline.txt with the console set to ttyAMA0
#   and init=... (the first-boot resize script, which reboots) removed;
#   --keep-init keeps it.
#
# Test image from build-test-image.sh (serial mode; it has no sshd).  The
# initramfs runs the command itself: COMMAND is written to clconv/cmd.sh on
# the boot partition of the working copy (bash, run with cwd /repo and
# PYTHONPATH=/repo); with --repo DIR a tar of DIR goes to clconv/repo.tar and
# is unpacked into a tmpfs /repo; --env NAME=VALUE lines go to clconv/env.
# The guest prints its output on the serial console (this terminal), then
# "CLCONV-EXIT-CODE: N" and reboots (QEMU exits).  run-qemu.sh exits with N.
# No COMMAND: a short OpenCL check (clinfo -l); --shell: interactive shell.
#
# Common options:
#   --timeout S    kill QEMU after S seconds (default 1800; no limit for an
#                  interactive console unless given); exit status 124
#   --in-place     boot IMAGE itself (changes persist); otherwise a sparse
#                  working copy (test image, --user) or QEMU -snapshot
#   --verbose      kernel messages on the console
#   --dry-run      prepare, print the QEMU command line, do not run it
# Exit status: COMMAND's (or the guest's) status; 124 timeout; 2 bad input;
# 3 missing tool; 1 boot failure (no exit marker, no SSH).
set -euo pipefail
PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pi/lib.sh
. "$PI_DIR/lib.sh"

image="" model=pi3 ssh_port=2222 user="" timeout_s=1800 boot_timeout=900 repo=""
timeout_given=0 shell=0 in_place=0 keep_init=0 verbose=0 dry_run=0 envs=() cmd=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --model) [[ $# -ge 2 ]] || die "--model needs a value"; model=$2; shift ;;
        --model=*) model=${1#*=} ;;
        --ssh-port) [[ $# -ge 2 ]] || die "--ssh-port needs a value"; ssh_port=$2; shift ;;
        --user) [[ $# -ge 2 ]] || die "--user needs NAME:PASSWORD"; user=$2; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs a value"; timeout_s=$2; timeout_given=1; shift ;;
        --boot-timeout) [[ $# -ge 2 ]] || die "--boot-timeout needs a value"; boot_timeout=$2; shift ;;
        --repo) [[ $# -ge 2 ]] || die "--repo needs a directory"; repo=$2; shift ;;
        --env) [[ $# -ge 2 ]] || die "--env needs NAME=VALUE"; envs+=("$2"); shift ;;
        --shell) shell=1 ;;
        --in-place) in_place=1 ;;
        --keep-init) keep_init=1 ;;
        --verbose) verbose=1 ;;
        --dry-run) dry_run=1 ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        --) shift; cmd=("$@"); break ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) [[ -z "$image" ]] || die "unexpected argument: $1 (a command goes after --)"; image=$1 ;;
    esac
    shift
done
[[ -n "$image" ]] || { usage_from_header "$0" >&2; exit 2; }
if ! [[ "$ssh_port" =~ ^[0-9]+$ ]] || (( ssh_port < 1 || ssh_port > 65535 )); then die "bad --ssh-port: $ssh_port"; fi
[[ "$timeout_s" =~ ^[0-9]+$ && "$boot_timeout" =~ ^[0-9]+$ ]] || die "timeouts are whole seconds"
for e in "${envs[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] || die "--env $e: expected NAME=VALUE without spaces"
done
case $model in
    pi3|raspi3b) model=pi3; qemu="qemu-system-aarch64"; machine=(-M raspi3b -m 1G) ;;
    pi2|raspi2b) model=pi2; qemu="qemu-system-arm"; machine=(-M raspi2b -m 1G) ;;
    pi0|raspi0) model=pi0; qemu="qemu-system-arm"; machine=(-M raspi0 -m 512M) ;;
    virt) qemu="qemu-system-aarch64"; machine=(-M virt -cpu cortex-a72 -smp "${CLCONV_PI_SMP:-2}" -m 1G) ;;
    *) die "unknown --model '$model' (pi3, pi2, pi0 or virt)" ;;
esac
need_tools "$qemu:qemu-system-arm"
need_tools timeout:coreutils mcopy:mtools sfdisk:fdisk
check_image_file "$image"
[[ "$image" != *.xz ]] || die "decompress the image first (xz -dk $image), then resize it with resize-image.sh --pow2"
check_not_in_use "$image"
pt_require "$image"
pt_check_complete "$image"
if [[ $model != virt ]] && ! is_pow2 "$(file_size "$image")"; then
    die "QEMU's raspi machines need an SD image whose size is a power of two ($image is $(file_size "$image") bytes); run: $PI_DIR/resize-image.sh $image +0 --pow2"
fi
make_tmp
bootdir=$PI_TMP/boot
"$PI_DIR/extract-boot.sh" -q "$image" "$bootdir" >/dev/null
test_image=0
[[ -f "$bootdir/clconv-test-image" ]] && test_image=1

# ------------------------------------------------------- the disk to boot --
disk=$image snapshot=()
if [[ $test_image == 1 ]]; then
    [[ $model == pi3 || $model == virt ]] || die "test images carry an arm64 kernel: use --model pi3 or --model virt"
    [[ -z "$user" ]] || warn "--user is ignored for test images (no sshd; the command runs from the initramfs)"
    if [[ $in_place == 0 ]]; then
        disk=$PI_TMP/disk.img
        cp --sparse=always --reflink=auto "$image" "$disk"
    fi
    pt_read "$disk"
    bi=$(find_boot_partition "$disk")
    spec=$(fat_spec "$disk" $(( PT_START[bi] * PT_SECTOR )))
    mdeltree -i "$spec" ::/clconv >/dev/null 2>&1 || true
    fat_mkdir "$spec" clconv
    if [[ ${#cmd[@]} -gt 0 ]]; then
        if [[ ${#cmd[@]} -eq 1 ]]; then printf '%s\n' "${cmd[0]}"; else printf '%q ' "${cmd[@]}"; echo; fi > "$PI_TMP/cmd.sh"
        fat_put "$spec" "$PI_TMP/cmd.sh" clconv/cmd.sh
    fi
    if [[ ${#envs[@]} -gt 0 ]]; then
        printf '%s\n' "${envs[@]}" > "$PI_TMP/env"
        fat_put "$spec" "$PI_TMP/env" clconv/env
    fi
    if [[ -n "$repo" ]]; then
        [[ -d "$repo" ]] || die "--repo $repo: not a directory"
        repo_tar "$repo" "$PI_TMP/repo.tar"
        fat_put "$spec" "$PI_TMP/repo.tar" clconv/repo.tar || die 1 "repo.tar does not fit on the boot partition"
        info "repository $repo copied into the image ($(human "$(file_size "$PI_TMP/repo.tar")"))"
    fi
else
    [[ $model != virt ]] || die "--model virt boots test images only (Raspberry Pi OS kernels have no virtio drivers)"
    [[ $shell == 0 ]] || die "--shell is for test images; a Raspberry Pi OS image without COMMAND gives you its console"
    [[ -z "$repo" && ${#envs[@]} -eq 0 ]] || die "--repo and --env are for test images (copy files with scp over --ssh-port)"
    if [[ -n "$user" ]]; then
        args=(--enable-ssh --user "$user")
        if [[ $in_place == 1 ]]; then args+=(--in-place); else args+=(-o "$PI_TMP/disk.img"); fi
        disk=$("$PI_DIR/extract-boot.sh" -q "$image" "$PI_TMP/boot2" "${args[@]}" | tail -1)
    elif [[ $in_place == 0 ]]; then
        snapshot=(-snapshot)
    fi
    if [[ -z "$user" && ! -f "$bootdir/userconf.txt" ]]; then
        mdir -i "$(fat_spec "$image" "$(( PT_START[$(find_boot_partition "$image")] * PT_SECTOR ))")" ::/userconf.txt >/dev/null 2>&1 \
            || info "no userconf.txt in the image: Raspberry Pi OS (Bookworm) has no default user; pass --user NAME:PASSWORD"
    fi
fi

# ------------------------------------------------------ kernel, dtb, append --
pick() {  # pick FILE...: first that exists in $bootdir
    local f
    for f in "$@"; do [[ -f "$bootdir/$f" ]] && { echo "$bootdir/$f"; return 0; }; done
    return 1
}
loglevel=(quiet loglevel=3)
[[ $verbose == 0 ]] || loglevel=(loglevel=7)
qargs=("${machine[@]}" -display none -no-reboot)
# Interactive sessions get QEMU's monitor on the console (Ctrl-A X quits).
serial=stdio
if [[ $shell == 1 || ( $test_image == 0 && ${#cmd[@]} -eq 0 ) ]]; then serial=mon:stdio; else qargs+=(-monitor none); fi
initrd=()
if [[ $test_image == 1 ]]; then
    kernel=$(pick kernel8.img) || die "no kernel8.img in the test image"
    f=$(pick initramfs8) || die "no initramfs8 in the test image"
    initrd=(-initrd "$f")
    append=("${loglevel[@]}" rdinit=/init panic=-1)
    [[ $shell == 0 ]] || append+=(clconv.shell=1)
    if [[ $model == virt ]]; then
        qargs+=(-serial "$serial" -drive "if=none,id=hd,file=$disk,format=raw" -device "virtio-blk-pci,drive=hd")
        append=(console=ttyAMA0 "${append[@]}")
        dtb=()
    else
        # Debian's dtb: the PL011 is ttyAMA0 wired to the BT pins; the console
        # is the mini UART ttyS1, QEMU's second serial port.
        f=$(pick bcm2837-rpi-3-b.dtb) || die "no bcm2837-rpi-3-b.dtb in the test image"
        dtb=(-dtb "$f")
        qargs+=(-serial null -serial "$serial" -drive "if=sd,file=$disk,format=raw")
        append=("console=ttyS1,115200" "${append[@]}")
    fi
else
    case $model in
        pi3) kernel=$(pick kernel8.img) || die "no kernel8.img (64-bit kernel) in $image; a 32-bit image boots with --model pi2"
             f=$(pick bcm2710-rpi-3-b-plus.dtb bcm2710-rpi-3-b.dtb bcm2837-rpi-3-b.dtb) || die "no Pi 3 dtb in $image" ;;
        pi2) kernel=$(pick kernel7.img) || die "no kernel7.img in $image"
             f=$(pick bcm2709-rpi-2-b.dtb bcm2836-rpi-2-b.dtb) || die "no bcm2709-rpi-2-b.dtb in $image" ;;
        pi0) kernel=$(pick kernel.img) || die "no kernel.img in $image"
             f=$(pick bcm2708-rpi-zero.dtb bcm2708-rpi-zero-w.dtb) || die "no Pi Zero dtb in $image" ;;
    esac
    dtb=(-dtb "$f")
    # Debian's (mainline) Pi 3 device tree gives the PL011 (ttyAMA0) to Bluetooth:
    # the console is the mini UART, ttyS1, QEMU's second serial port.
    console=ttyAMA0 serials=(-serial "$serial")
    if [[ $model == pi3 && "$(basename "$f")" == bcm2837-* ]]; then console=ttyS1 serials=(-serial null -serial "$serial"); fi
    # The initramfs the image boots with (Raspberry Pi OS: auto_initramfs in config.txt).
    case $model in pi3) f=$(pick initramfs8) ;; pi2) f=$(pick initramfs7) ;; pi0) f=$(pick initramfs) ;; esac \
        && initrd=(-initrd "$f")
    append=()
    if [[ -f "$bootdir/cmdline.txt" ]]; then
        read -r -a words < "$bootdir/cmdline.txt" || true
        for w in "${words[@]}"; do
            case $w in
                console=*|quiet|splash|plymouth.*) ;;
                init=*) [[ $keep_init == 1 ]] && append+=("$w") ;;
                *) append+=("$w") ;;
            esac
        done
    else
        append=(root=/dev/mmcblk0p2 rootfstype=ext4 rootwait)
    fi
    append=("console=$console,115200" "${append[@]}" "dwc_otg.fiq_fsm_enable=0")
    [[ $verbose == 1 ]] || append+=(quiet)
    qargs+=("${serials[@]}" -drive "if=sd,file=$disk,format=raw" "${snapshot[@]}"
            -device "usb-net,netdev=net0" -netdev "user,id=net0,hostfwd=tcp::$ssh_port-:22")
fi
qcmd=("$qemu" "${qargs[@]}" -kernel "$kernel" "${initrd[@]}" "${dtb[@]}" -append "${append[*]}")

if [[ $dry_run == 1 ]]; then
    printf '%q ' "${qcmd[@]}"; echo
    exit 0
fi

# ------------------------------------------------------------------- run --
if [[ $test_image == 1 ]]; then
    log=$PI_TMP/console.log
    info "booting $model (test image, serial mode, timeout ${timeout_s}s)"
    stdin=/dev/null
    [[ $shell == 0 ]] || stdin=/dev/stdin
    set +e
    timeout --kill-after=15 "$timeout_s" "${qcmd[@]}" < "$stdin" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    code=$(tr -d '\r' < "$log" | sed -n "s/^$PI_EXIT_MARKER \([0-9][0-9]*\)$/\1/p" | tail -1)
    if [[ -n "$code" ]]; then
        info "guest exit code $code"
        exit "$code"
    fi
    if [[ $rc == 124 || $rc == 137 ]]; then
        warn "QEMU killed after ${timeout_s}s (no '$PI_EXIT_MARKER' line)"; exit 124
    fi
    warn "QEMU exited ($rc) without a '$PI_EXIT_MARKER' line: the guest did not boot or the init failed"
    exit 1
fi

if [[ ${#cmd[@]} -eq 0 ]]; then
    info "booting $model; serial console here; ssh -p $ssh_port <user>@localhost once it is up; Ctrl-A X quits"
    [[ $timeout_given == 1 ]] || exec "${qcmd[@]}"
    exec timeout --foreground "$timeout_s" "${qcmd[@]}"
fi

need_tools ssh:openssh-client
log=$PI_TMP/console.log
info "booting $model in the background (console log: $log), SSH on localhost:$ssh_port"
timeout --kill-after=15 "$timeout_s" "${qcmd[@]}" < /dev/null > "$log" 2>&1 &
qpid=$!
stop_qemu() {
    if kill -0 "$qpid" 2>/dev/null; then
        kill "$qpid" 2>/dev/null; sleep 2; kill -9 "$qpid" 2>/dev/null
    fi
}
on_exit stop_qemu
ssh_user=${user%%:*}; ssh_user=${ssh_user:-${CLCONV_PI_SSH_USER:-pi}}
ssh_opts=(-p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o ConnectTimeout=10 -o ServerAliveInterval=15)
password=""
if [[ "$user" == *:* ]]; then password=${user#*:}; elif [[ -n "$user" ]]; then password=${CLCONV_PI_PASSWORD:-}; fi
if [[ -n "$password" ]]; then
    # shellcheck disable=SC2016  # expanded by the askpass script
    printf '#!/bin/sh\nprintf "%%s\\n" "$CLCONV_PI_PASSWORD"\n' > "$PI_TMP/askpass"
    chmod 700 "$PI_TMP/askpass"
    export SSH_ASKPASS=$PI_TMP/askpass SSH_ASKPASS_REQUIRE=force CLCONV_PI_PASSWORD=$password
    ssh_opts+=(-o "PreferredAuthentications=password,keyboard-interactive" -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1)
else
    ssh_opts+=(-o BatchMode=yes)
fi
# shellcheck disable=SC2029  # the command is meant to run remotely as given
rssh() { ssh "${ssh_opts[@]}" "$ssh_user@localhost" "$@" < /dev/null; }
start=$SECONDS
until rssh true 2>/dev/null; do
    kill -0 "$qpid" 2>/dev/null || { tail -30 "$log" >&2; die 1 "QEMU exited before SSH came up (console log above)"; }
    (( SECONDS - start < boot_timeout )) || { tail -30 "$log" >&2; die 1 "no SSH on localhost:$ssh_port after ${boot_timeout}s"; }
    sleep 5
done
info "SSH up after $((SECONDS - start)) s; running the command"
rc=0
if [[ ${#cmd[@]} -eq 1 ]]; then rssh "${cmd[0]}" || rc=$?; else rssh "$(printf '%q ' "${cmd[@]}")" || rc=$?; fi
info "command exit status $rc; rebooting the guest (QEMU -no-reboot exits)"
rssh 'sudo -n reboot || sudo -n systemctl reboot' >/dev/null 2>&1 || true
down=$SECONDS
while kill -0 "$qpid" 2>/dev/null && (( SECONDS - down < 120 )); do sleep 1; done
if kill -0 "$qpid" 2>/dev/null; then
    warn "QEMU had not exited 120 s after the reboot; killing it (last console lines below)"
    tail -15 "$log" >&2
    stop_qemu
else
    info "guest shut down: QEMU exited $((SECONDS - down)) s after the reboot"
fi
exit "$rc"
