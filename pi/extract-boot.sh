#!/bin/bash
# Usage: extract-boot.sh IMAGE OUTDIR [--enable-ssh] [--user NAME:PASSWORD]
#                        [--in-place | -o OUT_IMAGE] [--force] [-q]
#
# Copy the files QEMU needs to boot a Raspberry Pi SD card image out of its
# FAT boot partition, without root (mtools on IMAGE@@OFFSET; the offset comes
# from `sfdisk --json`): kernel*.img, *.dtb, cmdline.txt, config.txt, and
# initramfs* / clconv-test-image (present in images from build-test-image.sh).
#
#   IMAGE          raw image (.img) or .img.xz (decompressed into OUTDIR first)
#   OUTDIR         created if needed; receives the boot files
#   --enable-ssh   write an empty `ssh` file into the boot partition
#                  (Raspberry Pi OS then starts sshd on first boot)
#   --user NAME:PASSWORD
#                  write userconf.txt ("NAME:" + `openssl passwd -6` hash) so
#                  Raspberry Pi OS (Bookworm) creates that user on first boot;
#                  PASSWORD may be omitted (--user NAME) and is then read from
#                  $CLCONV_PI_PASSWORD
#   -o OUT_IMAGE   where the modified image goes (default OUTDIR/<image name>)
#   --in-place     modify IMAGE itself instead of a copy
#   --force        overwrite an existing OUT_IMAGE
#
# --enable-ssh and --user never touch IMAGE without --in-place: they work on a
# sparse copy.  Either way the changes are made to a copy next to the result,
# renamed over it only when all of them succeeded.  The path of the image to
# boot (the copy, or IMAGE) is printed on stdout as the last line; the boot
# files are listed on stderr.
# Exit status: 0 ok, 2 bad input, 3 missing tool, 1 other failure.
set -euo pipefail
shopt -s extglob
PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pi/lib.sh
. "$PI_DIR/lib.sh"

image="" outdir="" out="" in_place=0 enable_ssh=0 user=""
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --enable-ssh) enable_ssh=1 ;;
        --user) [[ $# -ge 2 ]] || die "--user needs NAME:PASSWORD"; user=$2; shift ;;
        --user=*) user=${1#*=} ;;
        --in-place) in_place=1 ;;
        --force) PI_FORCE=1 ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        -o|--output) [[ $# -ge 2 ]] || die "$1 needs an argument"; out=$2; shift ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) if [[ -z "$image" ]]; then image=$1
           elif [[ -z "$outdir" ]]; then outdir=$1
           else die "unexpected argument: $1 (see --help)"; fi ;;
    esac
    shift
done
[[ -n "$image" && -n "$outdir" ]] || { usage_from_header "$0" >&2; exit 2; }
[[ $in_place == 0 || -z "$out" ]] || die "--in-place and -o exclude each other"
[[ "$outdir" == / ]] || outdir=${outdir%%+(/)}   # boot/ -> boot (printed paths)

need_tools sfdisk:fdisk mcopy:mtools mdir:mtools dd:coreutils
modify=0
[[ $enable_ssh == 0 && -z "$user" ]] || modify=1
if [[ -n "$user" ]]; then
    need_tools openssl:openssl
    uname=${user%%:*}
    if [[ "$user" == *:* ]]; then upass=${user#*:}; else upass=${CLCONV_PI_PASSWORD:-}; fi
    [[ "$uname" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "bad user name '$uname' (lower case letters, digits, _ and -)"
    [[ -n "$upass" ]] || die "--user $uname: no password (give NAME:PASSWORD or set CLCONV_PI_PASSWORD)"
fi
check_image_file "$image"
check_not_in_use "$image"
mkdir -p "$outdir"

src=$image
if [[ $modify == 1 ]]; then
    [[ $in_place == 1 || -n "$out" ]] || { out=$(basename "${image%.xz}"); out="$outdir/$out"; }
    [[ $in_place == 1 ]] || [[ ! -e "$out" ]] || check_not_in_use "$out"
    if [[ "$image" != *.xz ]]; then pt_require "$image"; fi
    prepare_output "$image" "$in_place" "$out"   # a copy; renamed over OUTPUT at the end
    src=$WORK
elif [[ "$image" == *.xz ]]; then
    # Read-only extraction still needs an uncompressed image for mtools.
    out=${out:-$outdir/$(basename "${image%.xz}")}
    prepare_output "$image" 0 "$out"
    commit_output
    src=$OUTPUT
fi

pt_require "$src"
pt_check_complete "$src"
bi=$(find_boot_partition "$src") || die "$image: no FAT boot partition found"
offset=$(( PT_START[bi] * PT_SECTOR ))
spec=$(fat_spec "$src" "$offset")
info "boot partition: number ${PT_NUM[bi]}, offset $offset"

mapfile -t names < <(fat_list "$spec")
[[ ${#names[@]} -gt 0 ]] || die 1 "cannot list the boot partition (mdir failed)"
copied=()
for n in "${names[@]}"; do
    case ${n,,} in
        kernel*.img|*.dtb|cmdline.txt|config.txt|initramfs*|initrd*|clconv-test-image)
            mcopy -n -o -i "$spec" "::/$n" "$outdir/$n"
            copied+=("$n") ;;
    esac
done
[[ ${#copied[@]} -gt 0 ]] || warn "no kernel*.img, *.dtb, cmdline.txt or config.txt in the boot partition"
info "copied to $outdir: ${copied[*]}"

if [[ $modify == 1 ]]; then
    make_tmp
    if [[ $enable_ssh == 1 ]]; then
        : > "$PI_TMP/ssh"
        fat_put "$spec" "$PI_TMP/ssh" ssh
        info "wrote ssh into $OUTPUT"
    fi
    if [[ -n "$user" ]]; then
        hash=$(printf '%s\n' "$upass" | openssl passwd -6 -stdin)
        printf '%s:%s\n' "$uname" "$hash" > "$PI_TMP/userconf.txt"
        fat_put "$spec" "$PI_TMP/userconf.txt" userconf.txt
        info "wrote userconf.txt (user $uname) into $OUTPUT"
    fi
    commit_output
    src=$OUTPUT
fi
echo "$src"
