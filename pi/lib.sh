# shellcheck shell=bash disable=SC2034
# (SC2034: variables set here are read by the scripts that source this file.)
# pi/lib.sh — functions shared by the pi/ scripts.  Source it, do not run it:
#   PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); . "$PI_DIR/lib.sh"
#
# Conventions: messages go to stderr; `die` exits with status 2 for usage and
# input errors (the caller's fault) unless another status is given; temporary
# files live under one directory ($PI_TMP) removed by an EXIT trap.

[[ -n "${_CLCONV_PI_LIB:-}" ]] && return 0
_CLCONV_PI_LIB=1

PI_DIR=${PI_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
PI_REPO=$(cd "$PI_DIR/.." && pwd)
PI_PROG=$(basename "$0")
PI_VERBOSE=${PI_VERBOSE:-1}
PI_SUITE=${CLCONV_PI_SUITE:-bookworm}
PI_MIRROR=${CLCONV_PI_MIRROR:-}   # empty: mmdebstrap's default (deb.debian.org + updates + security)
PI_CACHE=${CLCONV_PI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clconv/pi}
# Packages of the emulated test system (rootfs of build-test-image.sh).
PI_ROOTFS_PACKAGES=${CLCONV_PI_PACKAGES:-python3-pyopencl,pocl-opencl-icd,python3-numpy,python3-tqdm,python3-platformdirs,python3-filelock,python3-pytest,python3-hypothesis,clinfo}
# Packages of the Raspberry-Pi-OS-like image of build-os-image.sh (clconv's
# dependencies, an init system, SSH and sudo for the first-boot user).
PI_OS_PACKAGES=${CLCONV_PI_OS_PACKAGES:-systemd,systemd-sysv,udev,kmod,openssh-server,sudo,iproute2,netbase,python3-pyopencl,pocl-opencl-icd,python3-numpy,python3-tqdm,python3-platformdirs,python3-filelock,clinfo}
# Marker printed by the test image's init after the command has run.
PI_EXIT_MARKER="CLCONV-EXIT-CODE:"

# ---------------------------------------------------------------- messages --
info() { [[ "$PI_VERBOSE" -ge 1 ]] && printf '%s: %s\n' "$PI_PROG" "$*" >&2; return 0; }
warn() { printf '%s: warning: %s\n' "$PI_PROG" "$*" >&2; }
die() {
    local rc=2
    if [[ "$1" =~ ^[0-9]+$ ]] && [[ $# -gt 1 ]]; then rc=$1; shift; fi
    printf '%s: error: %s\n' "$PI_PROG" "$*" >&2
    exit "$rc"
}
# usage_from_header FILE: print the leading comment block of FILE (after the
# shebang) without the "# " prefix.  Every script documents itself there.
usage_from_header() {
    awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
}

# ------------------------------------------------------------------- tools --
# need_tools CMD:PACKAGE ...  Fail listing every missing command and the
# Debian package that provides it.  A command may be looked up in /sbin and
# /usr/sbin too (non-root PATHs often lack them).
export PATH="$PATH:/usr/sbin:/sbin"
need_tools() {
    local spec cmd pkg missing=() pkgs=()
    for spec in "$@"; do
        cmd=${spec%%:*}; pkg=${spec#*:}
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing+=("$cmd (Debian package: $pkg)")
            [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        printf '%s: error: missing tool: %s\n' "$PI_PROG" "${missing[@]}" >&2
        printf '%s: install with: apt-get install %s\n' "$PI_PROG" "${pkgs[*]}" >&2
        exit 3
    fi
}

# --------------------------------------------------------------- temp dirs --
PI_TMP=""
_pi_cleanup_hooks=()
# on_exit CMD...: run CMD (a string, eval'd) at exit, last registered first.
on_exit() { _pi_cleanup_hooks+=("$*"); }
_pi_exit() {
    local rc=$? i
    set +e
    for (( i=${#_pi_cleanup_hooks[@]}-1; i>=0; i-- )); do
        eval "${_pi_cleanup_hooks[$i]}"
    done
    [[ -n "$PI_TMP" && -d "$PI_TMP" ]] && rm -rf --one-file-system "$PI_TMP"
    exit "$rc"
}
trap _pi_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# make_tmp: create the script's temp dir (under $TMPDIR, default /tmp).
make_tmp() {
    [[ -n "$PI_TMP" ]] && return 0
    PI_TMP=$(mktemp -d "${TMPDIR:-/tmp}/clconv-pi.XXXXXX")
}

# ------------------------------------------------------------------- sizes --
# to_bytes SIZE: 8G, 512M, 100K, 4096, 1.5G (binary units; an optional
# trailing "iB" or "B" is accepted).
to_bytes() {
    local s=${1^^}
    s=${s%IB}; s=${s%B}
    [[ "$s" =~ ^([0-9]+)(\.[0-9]+)?([KMGT]?)$ ]] || die "not a size: '$1' (use e.g. 8G, 512M, 4096)"
    local int=${BASH_REMATCH[1]} frac=${BASH_REMATCH[2]} unit=${BASH_REMATCH[3]} mult=1
    case $unit in K) mult=1024 ;; M) mult=$((1024**2)) ;; G) mult=$((1024**3)) ;; T) mult=$((1024**4)) ;; esac
    if [[ -n "$frac" ]]; then
        local digits=${frac#.}
        local scale=$((10**${#digits}))
        echo $(( (int * scale + 10#$digits) * mult / scale ))
    else
        echo $(( int * mult ))
    fi
}
# next_pow2 N: smallest power of two >= N.
next_pow2() {
    local n=$1 p=1
    while (( p < n )); do p=$((p * 2)); done
    echo "$p"
}
is_pow2() { local n=$1; (( n > 0 && (n & (n - 1)) == 0 )); }
# human BYTES: 8.0G style.
human() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1" 2>/dev/null || echo "$1 bytes"; }
file_size() { stat -L -c %s "$1"; }

# ---------------------------------------------------------- image checks --
# check_image_file IMAGE: exists, is a regular file, readable.
check_image_file() {
    local img=$1
    [[ -e "$img" ]] || die "no such file: $img"
    [[ -f "$img" ]] || die "not a regular file: $img (pass an image file, not a device)"
    [[ -r "$img" ]] || die "cannot read: $img"
}
# check_not_in_use IMAGE: refuse an image attached to a loop device, listed
# as a mount source in /proc/mounts, or held open by a process.
check_not_in_use() {
    local img real
    img=$1; real=$(realpath -e "$img")
    if command -v losetup >/dev/null 2>&1; then
        local loops
        loops=$(losetup -j "$real" 2>/dev/null || true)
        [[ -z "$loops" ]] || die "image is attached to a loop device: ${loops%%:*} (detach it first: losetup -d ${loops%%:*})"
    fi
    if awk -v f="$real" '$1 == f { found = 1 } END { exit !found }' /proc/mounts 2>/dev/null; then
        die "image is mounted (see /proc/mounts): $real"
    fi
    if command -v fuser >/dev/null 2>&1; then
        local pids
        pids=$(fuser "$real" 2>/dev/null || true)
        pids=${pids//[[:space:]]/ }
        [[ -z "${pids// /}" ]] || die "image is in use by process(es):$pids (e.g. a running QEMU); stop them first"
    else
        info "fuser not found (Debian package psmisc): cannot check for processes using the image"
    fi
}

# -------------------------------------------------------- partition table --
# pt_read IMAGE: read the partition table (`sfdisk --json`, parsed with
# python3's json module: the image path and GPT partition names may hold any
# character) into
#   PT_LABEL (dos|gpt), PT_SECTOR (bytes), PT_ID, and arrays indexed 0..PT_COUNT-1
#   PT_NUM (partition number), PT_START, PT_SIZE (sectors), PT_TYPE.
# Returns 1 (without output) if IMAGE has no partition table.
_PT_JSON_TO_LINES='
import json, re, sys
t = json.load(sys.stdin)["partitiontable"]
device = t.get("device", "")
words = [("label", t["label"]), ("id", t.get("id") or "-"), ("sectorsize", int(t.get("sectorsize", 512)))]
for p in t.get("partitions", []):
    node = p["node"]
    # the node is the device name plus the number (with a "p" when the name ends in a digit)
    suffix = node[len(device):] if device and node.startswith(device) else node
    words.append(("part", int(re.search(r"([0-9]+)$", suffix).group(1)), int(p["start"]), int(p["size"]), p["type"]))
for w in words:
    assert all(str(v) and not re.search(r"\s", str(v)) for v in w), w
    print(*w)
'
pt_read() {
    local img=$1 lines kind a b c d
    need_tools python3:python3
    lines=$(sfdisk --json -- "$img" 2>/dev/null | python3 -c "$_PT_JSON_TO_LINES" 2>/dev/null) || return 1
    PT_LABEL=""; PT_SECTOR=512; PT_ID=""; PT_COUNT=0
    PT_NUM=(); PT_START=(); PT_SIZE=(); PT_TYPE=()
    while read -r kind a b c d; do
        case $kind in
            label) PT_LABEL=$a ;;
            id) PT_ID=${a#-} ;;
            sectorsize) PT_SECTOR=$a ;;
            part) PT_NUM+=("$a"); PT_START+=("$b"); PT_SIZE+=("$c"); PT_TYPE+=("$d")
                  PT_COUNT=$((PT_COUNT + 1)) ;;
        esac
    done <<< "$lines"
    [[ -n "$PT_LABEL" ]] || return 1
}
# pt_require IMAGE: pt_read or die with a clear message.
pt_require() {
    pt_read "$1" || die "$1: no partition table found — not a disk image (expected an SD card image with an MBR, e.g. a Raspberry Pi OS .img)"
    [[ "$PT_COUNT" -gt 0 ]] || die "$1: partition table has no partitions"
}
# pt_check_complete IMAGE: every partition lies inside the file.
pt_check_complete() {
    local img=$1 i end fsize
    fsize=$(file_size "$img")
    for (( i=0; i<PT_COUNT; i++ )); do
        end=$(( (PT_START[i] + PT_SIZE[i]) * PT_SECTOR ))
        if (( end > fsize )); then
            die "$img is truncated: partition ${PT_NUM[i]} ends at byte $end but the file has only $fsize bytes (incomplete download or copy?)"
        fi
    done
}
# is_fat_type TYPE: MBR FAT ids and the GPT basic-data / ESP GUIDs.
is_fat_type() {
    case ${1,,} in
        1|4|6|b|c|e|ef|ebd0a0a2-b9e5-4433-87c0-68b6b72699c7|c12a7328-f81f-11d2-ba4b-00a0c93ec93b) return 0 ;;
    esac
    return 1
}
is_extended_type() { case ${1,,} in 5|f|85) return 0 ;; esac; return 1; }
# has_fat_signature IMAGE OFFSET: boot sector says FAT12/16/32.
has_fat_signature() {
    local sig
    sig=$(dd if="$1" bs=1 skip=$(( $2 + 54 )) count=3 status=none 2>/dev/null | tr -d '\0')
    [[ "$sig" == FAT ]] && return 0
    sig=$(dd if="$1" bs=1 skip=$(( $2 + 82 )) count=5 status=none 2>/dev/null | tr -d '\0')
    [[ "$sig" == FAT32 ]]
}
# has_ext_signature IMAGE OFFSET: ext2/3/4 superblock magic 0xEF53.
has_ext_signature() {
    local m
    m=$(dd if="$1" bs=1 skip=$(( $2 + 1024 + 56 )) count=2 status=none 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [[ "$m" == 53ef ]]
}
# find_boot_partition IMAGE: print the index (into PT_*) of the first FAT
# partition (by type id, confirmed by the boot sector).  pt_read first.
find_boot_partition() {
    local img=$1 i
    for (( i=0; i<PT_COUNT; i++ )); do
        if is_fat_type "${PT_TYPE[i]}" && has_fat_signature "$img" $(( PT_START[i] * PT_SECTOR )); then
            echo "$i"; return 0
        fi
    done
    for (( i=0; i<PT_COUNT; i++ )); do
        if has_fat_signature "$img" $(( PT_START[i] * PT_SECTOR )); then echo "$i"; return 0; fi
    done
    return 1
}
# print_table IMAGE TITLE [NAME]: IMAGE's partition table, showing IMAGE's path
# as NAME (the output a work copy becomes).
print_table() {
    local listing
    printf '%s\n' "--- $2" >&2
    listing=$(sfdisk --list -- "$1" 2>/dev/null | sed -n '/^Disk \|^Device\|^\//,$p' | grep -v '^Units\|^Sector size\|^I/O size') || true
    [[ -z "${3:-}" ]] || listing=${listing//"$1"/"$3"}
    printf '%s\n' "$listing" >&2
}

# --------------------------------------------------------- mtools (no root) --
export MTOOLS_SKIP_CHECK=1
# fat_spec IMAGE OFFSET -> "IMAGE@@OFFSET" for mtools' -i option.
fat_spec() { printf '%s@@%s' "$1" "$2"; }
# fat_list SPEC: bare names of the files in the FAT root directory.
fat_list() { mdir -b -i "$1" ::/ 2>/dev/null | sed -e 's|^::/||' -e 's|/$||'; }
# fat_put SPEC FILE DEST: copy FILE into the FAT filesystem as DEST (overwrite).
fat_put() { mcopy -o -i "$1" "$2" "::/$3"; }
fat_mkdir() { mmd -i "$1" "::/$2" 2>/dev/null || true; }

# -------------------------------------------------------------- compression --
# prepare_output IMAGE IN_PLACE OUT: set OUTPUT to the file the result goes
# to (IMAGE itself with IN_PLACE=1, refused for .xz; otherwise OUT) and WORK to
# a new file next to OUTPUT for the caller to modify: a sparse copy of IMAGE
# (reflinked where the filesystem can), or for .xz the decompressed image.
# OUTPUT is not touched until commit_output renames WORK over it, so a run
# that fails or is interrupted leaves IMAGE and OUTPUT as they were (an EXIT
# hook removes WORK).
OUTPUT="" WORK="" _pi_work_dir=""
prepare_output() {
    local img=$1 in_place=$2 out=$3
    if [[ "$in_place" == 1 ]]; then
        [[ "$img" != *.xz ]] || die "--in-place cannot modify a compressed image ($img); decompress it first (xz -dk) or drop --in-place"
        out=$(realpath -e -- "$img")    # replace the file a symlink points to, not the link
    else
        [[ -n "$out" ]] || die "internal: no output path"
        if [[ -e "$out" ]] && [[ "$(realpath -- "$out")" == "$(realpath -- "$img")" ]]; then
            die "output $out is the input image; use --in-place to modify it"
        fi
        [[ ! -e "$out" || "${PI_FORCE:-0}" == 1 ]] || die "output exists: $out (remove it, choose another -o, or pass --force)"
        mkdir -p -- "$(dirname -- "$out")"
    fi
    OUTPUT=$out
    # A directory of our own next to OUTPUT: same filesystem, so the final
    # rename is atomic, and the copy gets fresh permissions from cp.
    _pi_work_dir=$(mktemp -d -- "$(dirname -- "$out")/.clconv-pi-work.XXXXXX") \
        || die 1 "cannot create a temporary directory next to $out"
    on_exit _pi_remove_work
    WORK=$_pi_work_dir/image
    if [[ "$img" == *.xz ]]; then
        need_tools xz:xz-utils
        info "decompressing $img -> $out"
        xz -dc -- "$img" > "$WORK" || die "cannot decompress $img (corrupt or not xz?)"
    elif [[ "$in_place" == 1 ]]; then
        info "working on a copy of $img (renamed over it when done)"
        cp --sparse=always --reflink=auto --preserve=mode -- "$img" "$WORK" || die 1 "cannot copy $img"
        chown --reference="$img" -- "$WORK" 2>/dev/null || true
    else
        info "copying $img -> $out (the original is left unchanged)"
        cp --sparse=always --reflink=auto -- "$img" "$WORK" || die 1 "cannot copy $img"
    fi
}
# commit_output: flush WORK to disk and rename it over OUTPUT (atomic: OUTPUT
# is either the old file or the complete new one); WORK becomes OUTPUT.
commit_output() {
    sync -- "$WORK" || die 1 "cannot flush $WORK to disk"
    mv -f -- "$WORK" "$OUTPUT" || die 1 "cannot rename $WORK to $OUTPUT"
    sync -- "$(dirname -- "$OUTPUT")" 2>/dev/null || true
    WORK=$OUTPUT
    _pi_remove_work
}
_pi_remove_work() {
    [[ -n "$_pi_work_dir" && -d "$_pi_work_dir" ]] && rm -rf --one-file-system -- "$_pi_work_dir"
    _pi_work_dir=""
}
# default_out IMAGE SUFFIX: foo.img.xz -> foo-SUFFIX.img next to it.
default_out() {
    local img=$1 base
    base=${img%.xz}; base=${base%.img}
    printf '%s-%s.img' "$base" "$2"
}
# dd with byte offsets (GNU dd).  dd_extract IMAGE FILE OFFSET LENGTH: a
# sparse copy of that range of IMAGE.
dd_extract() { dd if="$1" of="$2" bs=4M iflag=skip_bytes,count_bytes skip="$3" count="$4" conv=sparse status=none; }
# dd_into_hole SRC DEST OFFSET: write SRC into DEST at byte OFFSET, leaving
# holes for SRC's all-zero blocks.  Only for a range of DEST that reads as
# zeros (a fresh `truncate`d file): over old data, the skipped zero blocks
# would keep the old bytes.
dd_into_hole() { dd if="$1" of="$2" bs=4M oflag=seek_bytes seek="$3" conv=notrunc,sparse status=none; }
# dd_overwrite SRC DEST OFFSET: make that range of DEST exactly SRC.  The range
# is first punched out (it then reads as zeros and takes no space), so SRC's
# zero blocks can stay holes; where DEST's filesystem cannot punch holes,
# every byte of SRC is written.
dd_overwrite() {
    local len
    len=$(file_size "$1")
    if fallocate --punch-hole --offset "$3" --length "$len" -- "$2" 2>/dev/null; then
        dd_into_hole "$1" "$2" "$3"
    else
        dd if="$1" of="$2" bs=4M oflag=seek_bytes seek="$3" conv=notrunc status=none
    fi
}

# --------------------------------------------------------------- emulation --
# deb_arch ARCH -> multiarch triplet; qemu_user_name ARCH -> binfmt entry name
triplet() { case $1 in arm64) echo aarch64-linux-gnu ;; armhf) echo arm-linux-gnueabihf ;; *) die "unknown arch: $1" ;; esac; }
qemu_user_name() { case $1 in arm64) echo qemu-aarch64 ;; armhf) echo qemu-arm ;; *) die "unknown arch: $1" ;; esac; }
check_arch() { [[ "$1" == arm64 || "$1" == armhf ]] || die "--arch must be arm64 or armhf (got '$1')"; }
# setup_binfmt ARCH: make foreign ARCH binaries runnable (qemu-user-static).
setup_binfmt() {
    local name
    name=$(qemu_user_name "$1")
    [[ -e "/proc/sys/fs/binfmt_misc/$name" ]] && grep -q '^enabled' "/proc/sys/fs/binfmt_misc/$name" && return 0
    need_tools update-binfmts:binfmt-support
    [[ -e "/usr/libexec/qemu-binfmt/${name#qemu-}-binfmt-P" || -e "/usr/bin/$name-static" ]] \
        || die 3 "qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)"
    [[ $EUID -eq 0 ]] || die 4 "binfmt_misc entry $name is not enabled and enabling it needs root: sudo update-binfmts --enable $name"
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        # the arm64 and armhf tiers run side by side: the other may mount it first
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
            || [[ -e /proc/sys/fs/binfmt_misc/status ]] || die 4 "cannot mount binfmt_misc"
    fi
    update-binfmts --enable "$name" >/dev/null 2>&1 || update-binfmts --import "$name" >/dev/null 2>&1 || true
    grep -q '^enabled' "/proc/sys/fs/binfmt_misc/$name" 2>/dev/null || die 4 "could not enable binfmt_misc entry $name"
}
# cache_key ARCH: identifies a rootfs by suite, arch and package list.
cache_key() {
    local h
    h=$(printf '%s|%s|%s|%s|apt' "$PI_SUITE" "$1" "$PI_ROOTFS_PACKAGES" "$PI_MIRROR" | sha256sum | cut -c1-10)
    printf '%s-%s-%s' "$PI_SUITE" "$1" "$h"
}
# os_cache_key ARCH: the same for the OS image's package list.
os_cache_key() {
    local h
    h=$(printf '%s|%s|%s|%s|os' "$PI_SUITE" "$1" "$PI_OS_PACKAGES" "$PI_MIRROR" | sha256sum | cut -c1-10)
    printf '%s-%s-%s' "$PI_SUITE" "$1" "$h"
}
os_rootfs_tar_path() { printf '%s/os-rootfs-%s.tar' "$PI_CACHE" "$(os_cache_key "$1")"; }
# os_image_path ARCH: the cached image of build-os-image.sh.
os_image_path() { printf '%s/os-image-%s.img' "$PI_CACHE" "$(os_cache_key "$1")"; }
rootfs_tar_path() { printf '%s/rootfs-%s.tar' "$PI_CACHE" "$(cache_key "$1")"; }
# test_image_path ARCH: the cached SD card image of build-test-image.sh.
test_image_path() { printf '%s/test-image-%s.img' "$PI_CACHE" "$(cache_key "$1")"; }
# test_image_stale ARCH: true when that image is missing or older than its rootfs or
# the scripts that make it.
test_image_stale() {
    local image f
    image=$(test_image_path "$1")
    [[ -s "$image" ]] || return 0
    for f in "$(rootfs_tar_path "$1")" "$PI_DIR/build-test-image.sh" "$PI_DIR/initramfs-init.sh"; do
        [[ ! "$f" -nt "$image" ]] || return 0
    done
    return 1
}
# unpack_kernel KDIR DEST: dpkg-deb -x every linux-image-*.deb and
# busybox-static_*.deb of KDIR into DEST, run depmod there (on the host, no
# package scripts) and print the kernel version.
unpack_kernel() {
    local kdir=$1 dest=$2 deb kver
    mkdir -p "$dest"
    for deb in "$kdir"/linux-image-*.deb "$kdir"/busybox-static_*.deb; do
        dpkg-deb -x "$deb" "$dest" || die 1 "cannot unpack $deb"
    done
    kver=$(basename "$(compgen -G "$dest/boot/vmlinuz-*" | head -1)")
    kver=${kver#vmlinuz-}
    [[ -n "$kver" && -d "$dest/lib/modules/$kver" ]] || die 1 "kernel package has no vmlinuz/modules"
    depmod -b "$dest" "$kver"
    echo "$kver"
}
# make_initramfs KX KVER INIT OUT MODULE...: a gzipped cpio with KX's busybox,
# INIT as /init and the named modules of KX (after their dependencies, in
# that order in /etc/clconv-modules, for the init to insmod); modules built
# into the kernel are skipped.
make_initramfs() {
    local kx=$1 kver=$2 init=$3 out=$4; shift 4
    local ird moddep m pat rel
    ird=$(mktemp -d "$PI_TMP/initramfs.XXXXXX")
    mkdir -p "$ird/bin" "$ird/etc" "$ird/lib/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot"
    cp "$kx/bin/busybox" "$ird/bin/busybox"
    install -m 0755 "$init" "$ird/init"
    moddep=$kx/lib/modules/$kver/modules.dep
    local -A seen=()
    local order=()
    _add_module() {  # dependencies first
        local r=$1 d
        [[ -z "${seen[$r]:-}" ]] || return 0
        seen[$r]=1
        # shellcheck disable=SC2013  # module paths hold no spaces
        for d in $(awk -F': *' -v m="$r" '$1 == m { print $2 }' "$moddep"); do _add_module "$d"; done
        order+=("$r")
    }
    for m in "$@"; do
        pat=${m//[-_]/[-_]}
        rel=$(grep -E "/${pat}\.ko(\.[gx]z|\.zst)?:" "$moddep" | head -1 | cut -d: -f1 || true)
        if [[ -z "$rel" ]]; then
            grep -qE "/${pat}\.ko" "$kx/lib/modules/$kver/modules.builtin" 2>/dev/null \
                || warn "module $m neither built in nor found"
            continue
        fi
        _add_module "$rel"
    done
    : > "$ird/etc/clconv-modules"
    for rel in "${order[@]}"; do
        mkdir -p "$ird/lib/modules/$(dirname "$rel")"
        cp "$kx/lib/modules/$kver/$rel" "$ird/lib/modules/$rel"
        echo "$rel" >> "$ird/etc/clconv-modules"
    done
    ( cd "$ird" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 ) | gzip -9 > "$out"
    rm -rf "$ird"
    info "initramfs: ${#order[@]} modules, $(human "$(file_size "$out")")"
}
# repo_tar DIR OUT: tar of a source tree without VCS data, caches, venvs.
repo_tar() {
    tar -C "$1" --exclude=.git --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
        --exclude=.hypothesis --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.venv --exclude=venv \
        --exclude=.tox --exclude=build --exclude=dist --exclude='*.egg-info' --exclude='*.img' \
        --exclude='*.img.xz' --owner=0 --group=0 -cf "$2" .
}

# apt_download ARCH DESTDIR PKG...: download Debian packages of ARCH into
# DESTDIR with a private apt configuration (no root, host apt untouched).
# Prints nothing; PKG may be a virtual/meta package name, resolved one level
# by apt_resolve.
_apt_dir=""
_apt_opts=()
_apt_init() {
    local arch=$1
    [[ -n "$_apt_dir" ]] && return 0
    make_tmp
    _apt_dir=$PI_TMP/apt
    mkdir -p "$_apt_dir"/etc/apt/apt.conf.d "$_apt_dir"/etc/apt/preferences.d "$_apt_dir"/etc/apt/sources.list.d \
        "$_apt_dir"/var/lib/apt/lists/partial "$_apt_dir"/var/cache/apt/archives/partial "$_apt_dir"/var/lib/dpkg
    : > "$_apt_dir/var/lib/dpkg/status"; : > "$_apt_dir/apt.conf"
    local mirror=${PI_MIRROR:-http://deb.debian.org/debian} key=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -r "$key" ]] || die 3 "missing $key (Debian package: debian-archive-keyring)"
    printf 'deb [signed-by=%s] %s %s main\n' "$key" "$mirror" "$PI_SUITE" > "$_apt_dir/etc/apt/sources.list"
    _apt_opts=(-q -o "Dir=$_apt_dir" -o "Dir::State::status=$_apt_dir/var/lib/dpkg/status"
        -o "Dir::Etc::Parts=$_apt_dir/etc/apt/apt.conf.d" -o "APT::Architecture=$arch"
        -o "APT::Architectures::=$arch" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    APT_CONFIG=$_apt_dir/apt.conf apt-get "${_apt_opts[@]}" update >"$PI_TMP/apt-update.log" 2>&1 \
        || { cat "$PI_TMP/apt-update.log" >&2; die 1 "apt-get update (private, $arch) failed"; }
}
apt_depends() {  # apt_depends ARCH PKG: first Depends: of PKG
    _apt_init "$1"
    APT_CONFIG=$_apt_dir/apt.conf apt-cache "${_apt_opts[@]}" depends "$2" 2>/dev/null \
        | awk '/^ *Depends:/ { print $2; exit }'
}
apt_download() {
    local arch=$1 dest=$2; shift 2
    _apt_init "$arch"
    mkdir -p "$dest"
    ( cd "$dest" && APT_CONFIG=$_apt_dir/apt.conf apt-get "${_apt_opts[@]}" download "$@" ) >"$PI_TMP/apt-dl.log" 2>&1 \
        || { cat "$PI_TMP/apt-dl.log" >&2; die 1 "apt-get download $* failed"; }
}
