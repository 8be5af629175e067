#!/bin/bash
# Usage: resize-image.sh IMAGE SIZE [--pow2] [-o OUT | --in-place] [--force] [-q]
#
# Grow (or shrink, never below the data it holds) a Raspberry Pi OS SD card
# image: the last partition (the ext4 root) is resized to fill the new image
# with sfdisk, then checked with e2fsck -f and resized with resize2fs.  No root
# and no loop device: the partition is copied out with dd into a sparse temp
# file, resized there (resize2fs cannot work at an offset inside an image: it
# truncates a regular file to the filesystem's size) and written back over the
# whole partition.  All of it happens on a sparse copy next to the output
# (reflinked where the filesystem can), renamed over the output only when
# everything succeeded: a failed or interrupted run leaves IMAGE (even with
# --in-place) and an existing OUT as they were.  The boot partition and every
# other partition are left byte for byte as they were, and so is every file
# in the root filesystem.
#
#   IMAGE       raw image (.img) or xz-compressed image (.img.xz, decompressed
#               to the output first)
#   SIZE        new image size: absolute (8G, 4096M, bytes) or relative to the
#               current size (+6G, -1G); K/M/G/T are powers of 1024
#   --pow2      round the new size up to the next power of two (QEMU's
#               -M raspi* machines need a power-of-two SD card)
#   -o OUT      write the result to OUT (default: IMAGE-resized.img next to it)
#   --in-place  modify IMAGE itself (not allowed for .xz)
#   --force     overwrite OUT if it exists
#   -q          quiet (only errors and the partition tables)
#   -h, --help  this text
#
# The partition table is printed before and after.  The image must not be
# mounted, attached to a loop device or open in another process (e.g. QEMU).
# With an extended partition, or when the last partition is not ext2/3/4, the
# script refuses with a message.  Temp space: the copy of the image next to
# the output (with --in-place, next to IMAGE), and up to the size of the new
# root partition (sparse) under $TMPDIR.
# Exit status: 0 ok, 2 bad input/refused, 3 missing tool, 1 other failure.
set -euo pipefail
PI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pi/lib.sh
. "$PI_DIR/lib.sh"

image="" size_arg="" out="" in_place=0 pow2=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage_from_header "$0"; exit 0 ;;
        --in-place) in_place=1 ;;
        --pow2) pow2=1 ;;
        --force) PI_FORCE=1 ;;
        -q|--quiet) PI_VERBOSE=0 ;;
        -o|--output) [[ $# -ge 2 ]] || die "$1 needs an argument"; out=$2; shift ;;
        --output=*) out=${1#*=} ;;
        -[0-9]*) [[ -z "$size_arg" && -n "$image" ]] || die "unexpected argument: $1"; size_arg=$1 ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) if [[ -z "$image" ]]; then image=$1
           elif [[ -z "$size_arg" ]]; then size_arg=$1
           else die "unexpected argument: $1 (see --help)"; fi ;;
    esac
    shift
done
[[ -n "$image" && -n "$size_arg" ]] || { usage_from_header "$0" >&2; exit 2; }
[[ $in_place == 0 || -z "$out" ]] || die "--in-place and -o exclude each other"

need_tools sfdisk:fdisk e2fsck:e2fsprogs resize2fs:e2fsprogs dumpe2fs:e2fsprogs dd:coreutils truncate:coreutils python3:python3
check_image_file "$image"
check_not_in_use "$image"
[[ -z "$out" || ! -e "$out" ]] || check_not_in_use "$out"

# Validate everything possible on the input before writing anything.
if [[ "$image" != *.xz ]]; then
    pt_require "$image"
    pt_check_complete "$image"
else
    need_tools xz:xz-utils
    xz -t -- "$image" 2>/dev/null || die "$image: not a valid xz file (truncated download?)"
fi
[[ -n "$out" || $in_place == 1 ]] || out=$(default_out "$image" resized)
make_tmp
prepare_output "$image" "$in_place" "$out"
img=$WORK

pt_require "$img"
pt_check_complete "$img"
print_table "$img" "partition table before" "$OUTPUT"

# The partition to grow: the one that ends last on the disk.
last=0
for (( i=1; i<PT_COUNT; i++ )); do
    (( PT_START[i] + PT_SIZE[i] > PT_START[last] + PT_SIZE[last] )) && last=$i
done
for (( i=0; i<PT_COUNT; i++ )); do
    is_extended_type "${PT_TYPE[i]}" && die "$image: has an extended partition (logical partitions); only images with primary partitions are supported"
done
sec=$PT_SECTOR
pnum=${PT_NUM[last]} pstart=${PT_START[last]} psize=${PT_SIZE[last]}
poff=$(( pstart * sec ))
has_ext_signature "$img" "$poff" \
    || die "$image: the last partition (number $pnum, type ${PT_TYPE[last]}) does not hold an ext2/3/4 filesystem; only the root filesystem at the end of the disk can be resized"
if (( PT_COUNT > 2 )); then
    info "$PT_COUNT partitions: resizing partition $pnum (the last one on the disk); the others are kept as they are"
fi

# New size.
cur=$(file_size "$img")
case $size_arg in
    +*) new=$(( cur + $(to_bytes "${size_arg#+}") )) ;;
    -*) new=$(( cur - $(to_bytes "${size_arg#-}") )) ;;
    *) new=$(to_bytes "$size_arg") ;;
esac
(( pow2 == 0 )) || new=$(next_pow2 "$new")
new=$(( (new + sec - 1) / sec * sec ))          # whole sectors
# GPT keeps a backup header in the last 33 sectors.
tail_reserve=0; [[ "$PT_LABEL" == gpt ]] && tail_reserve=$(( 33 * sec ))
new_psize_bytes=$(( new - poff - tail_reserve ))
(( new_psize_bytes > 0 )) || die "new size $(human "$new") would cut into the partitions before the root partition (it starts at $(human "$poff"))"

# Filesystem facts.
tmp_root=$PI_TMP/root.ext4
info "extracting partition $pnum ($(human $(( psize * sec )))) to a temp file"
dd_extract "$img" "$tmp_root" "$poff" $(( psize * sec ))
fsck_rc=0
e2fsck -f -p "$tmp_root" >"$PI_TMP/fsck.log" 2>&1 || fsck_rc=$?
if (( fsck_rc >= 4 )); then
    cat "$PI_TMP/fsck.log" >&2
    die 1 "e2fsck found errors it could not fix in partition $pnum (exit $fsck_rc); repair the image first (e2fsck -f on the partition)"
fi
bs=$(dumpe2fs -h "$tmp_root" 2>/dev/null | awk -F: '/^Block size/ { gsub(/ /, "", $2); print $2 }')
blocks=$(dumpe2fs -h "$tmp_root" 2>/dev/null | awk -F: '/^Block count/ { gsub(/ /, "", $2); print $2 }')
[[ -n "$bs" && -n "$blocks" ]] || die 1 "cannot read the ext4 superblock of partition $pnum"
minblocks=$(resize2fs -P "$tmp_root" 2>/dev/null | awk -F: '/minimum size/ { gsub(/ /, "", $2); print $2 }')
[[ -n "$minblocks" ]] || die 1 "resize2fs -P could not estimate the used size"
new_blocks=$(( new_psize_bytes / bs ))
new_psize=$(( new_psize_bytes / sec ))

if (( new_blocks < minblocks )); then
    die "refusing to shrink: the filesystem needs at least $(human $(( minblocks * bs ))) ($minblocks blocks of $bs), the new size leaves $(human $(( new_blocks * bs ))) for it; the smallest possible image is $(human $(( poff + minblocks * bs + tail_reserve )))"
fi

if (( new_psize == psize && new == cur )); then
    info "image is already $(human "$new"); nothing to resize"
else
    info "resizing image $(human "$cur") -> $(human "$new"), partition $pnum -> $(human $(( new_psize * sec ))), filesystem $blocks -> $new_blocks blocks"
    set_size() {
        truncate -s "$new" "$img"
        if [[ "$PT_LABEL" == gpt ]]; then
            sfdisk --relocate gpt-bak-std -- "$img" >/dev/null 2>&1 || die 1 "could not move the GPT backup header"
        fi
    }
    set_partition() {
        printf '%s, %s\n' "$pstart" "$new_psize" \
            | sfdisk --no-reread --no-tell-kernel -q -N "$pnum" -- "$img" >"$PI_TMP/sfdisk.log" 2>&1 \
            || { cat "$PI_TMP/sfdisk.log" >&2; die 1 "sfdisk could not resize partition $pnum"; }
    }
    if (( new_blocks < blocks )); then
        resize2fs -p "$tmp_root" "$new_blocks" >"$PI_TMP/resize.log" 2>&1 || { cat "$PI_TMP/resize.log" >&2; die 1 "resize2fs failed"; }
        truncate -s $(( new_psize * sec )) "$tmp_root"
    else
        truncate -s $(( new_psize * sec )) "$tmp_root"
        resize2fs "$tmp_root" "$new_blocks" >"$PI_TMP/resize.log" 2>&1 || { cat "$PI_TMP/resize.log" >&2; die 1 "resize2fs failed"; }
    fi
    e2fsck -f -n "$tmp_root" >"$PI_TMP/fsck2.log" 2>&1 || { cat "$PI_TMP/fsck2.log" >&2; die 1 "filesystem check after resize failed"; }
    # Growing: file first, then the partition; shrinking: the other way round.
    if (( new >= cur )); then set_size; set_partition; else set_partition; fi
    dd_overwrite "$tmp_root" "$img" "$poff"
    if (( new < cur )); then set_size; fi
fi
print_table "$img" "partition table after" "$OUTPUT"
commit_output
info "done: $OUTPUT ($(human "$(file_size "$OUTPUT")"))"
echo "$OUTPUT"
