"""Layout ops: transpose, pad, concatenate and gather along an axis (any rank <= 6).

Shapes, permutations, pads and indices are plain Python/numpy values worked out on
the host; kernels only move float32 elements.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..arrays import border, check_images, empty, image_stride, on_device, output
from ..build import enqueue_copy, get_kernel, launch
from ..runtime import current
from ..validation import check_array, check_dim, check_shape
from .elementwise import MAX_RANK, pad_rank

KERNELS = "shape.cl"
PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def transpose(input, perm: Sequence[int]):
    """input.transpose(perm) as a new contiguous array (numpy semantics)."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    perm = tuple(int(p) for p in perm)
    if sorted(perm) != list(range(len(shape))):
        raise ValueError(f"perm: expected a permutation of {list(range(len(shape)))}, got "
                         f"{list(perm)}")
    out_shape = tuple(shape[p] for p in perm)
    strides = _contiguous_strides(shape)
    dims, (src_strides,) = pad_rank(out_shape, [tuple(strides[p] for p in perm)])
    out = empty(rt, out_shape)
    launch(rt, get_kernel(rt, KERNELS, "strided_copy"), out.size, on_device(rt, input), out,
           *dims[1:], *src_strides)
    return out


def pad(input, pads_begin: Sequence[int], pads_end: Sequence[int], mode: str = "constant",
        value: float = 0.0):
    """Pad every axis by pads_begin/pads_end elements (negative values crop).

    mode: constant (with value), reflect (without repeating the edge), edge or wrap."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {sorted(PAD_MODES)}, got {mode!r}")
    begin, end = [int(p) for p in pads_begin], [int(p) for p in pads_end]
    if len(begin) != len(shape) or len(end) != len(shape):
        raise ValueError(f"pads: expected {len(shape)} values before and after for input of "
                         f"shape {shape}, got {begin} and {end}")
    out_shape = tuple(s + b + e for s, b, e in zip(shape, begin, end))
    if min(out_shape, default=1) <= 0:
        raise ValueError(f"pads: {begin}, {end} crop input {shape} to the empty {out_shape}")
    if mode == "reflect" and any(max(b, e) >= s for s, b, e in zip(shape, begin, end)
                                 if max(b, e) > 0):
        raise ValueError(f"pads: reflect padding must be smaller than each padded axis of "
                         f"input {shape}, got {begin}, {end}")
    extra = MAX_RANK - len(shape)
    dims, _ = pad_rank(out_shape, [])
    in_dims = (1,) * extra + shape
    begins = (0,) * extra + tuple(begin)
    out = empty(rt, out_shape)
    launch(rt, get_kernel(rt, KERNELS, "pad_nd", {"PAD_MODE": PAD_MODES[mode]}), out.size,
           on_device(rt, input), out, *dims[1:], *in_dims, *begins, float(value))
    return out


def _copy_blocks(rt, dest, source, blocks: int, block: int, src_pitch: int, dst_pitch: int,
                 dst_offset: int = 0) -> None:
    """Copy `blocks` runs of `block` floats, `src_pitch` floats apart in `source`, to
    `dst_pitch` floats apart from `dst_offset` in `dest`: one rectangular buffer copy,
    which drivers run at memcpy speed."""
    enqueue_copy(rt, dest.data, source.data, src_origin=(0, 0, 0),
                 dst_origin=(dst_offset * 4, 0, 0), region=(block * 4, blocks, 1),
                 src_pitches=(src_pitch * 4, src_pitch * 4 * blocks),
                 dst_pitches=(dst_pitch * 4, dst_pitch * 4 * blocks))


def copy_images(rt, dest, source) -> None:
    """Copy the N images of `source` into `dest`, two device arrays of one shape, each
    C-contiguous or strided images (arrays.image_stride): one rectangular copy."""
    per_image = int(np.prod(source.shape[1:], dtype=np.int64))
    _copy_blocks(rt, dest, source, int(source.shape[0]), per_image,
                 image_stride(source) or per_image, image_stride(dest) or per_image)


def _planes(x) -> tuple[int, int, int]:
    """(first float in its buffer, row pitch, plane pitch) of a C-contiguous (N, C, H, W)
    array or of zero-bordered planes (arrays.border)."""
    h, w = int(x.shape[2]), int(x.shape[3])
    if border(x) is not None:
        return x.offset // 4, x.strides[2] // 4, x.strides[1] // 4
    if not x.flags.c_contiguous:
        raise ValueError(f"planes: expected a C-contiguous array or zero-bordered planes, "
                         f"got strides {x.strides} for shape {tuple(x.shape)}")
    return x.offset // 4, w, h * w


def copy_planes(rt, dest, source) -> None:
    """Copy the planes of `source` into `dest`, two device arrays (N, C, H, W) of one
    shape, each C-contiguous or zero-bordered planes (arrays.bordered_planes): one
    rectangular copy, which writes inside the borders only."""
    n, c, h, w = (int(s) for s in source.shape)
    (src_at, src_row, src_plane), (dst_at, dst_row, dst_plane) = _planes(source), _planes(dest)
    enqueue_copy(rt, dest.base_data, source.base_data, src_origin=(src_at * 4, 0, 0),
                 dst_origin=(dst_at * 4, 0, 0), region=(w * 4, h, n * c),
                 src_pitches=(src_row * 4, src_plane * 4),
                 dst_pitches=(dst_row * 4, dst_plane * 4))


def contiguous_images(rt, x):
    """`x` itself, or a C-contiguous copy where it is strided images (image_stride) or
    zero-bordered planes (arrays.border)."""
    if border(x) is not None:
        copy = copy_planes
    elif image_stride(x) is not None:
        copy = copy_images
    else:
        return x
    out = empty(rt, x.shape)
    copy(rt, out, x)
    return out


def concat(inputs: Sequence, axis: int, out=None, in_place: Sequence[int] = ()):
    """Concatenate along `axis` (numpy.concatenate), into `out` when given (see
    arrays.output). in_place: positions of inputs their producers already wrote into
    their slice of `out` (ONNX plans do this, see onnx/placement.py); they are not
    copied. With every axis between the first and `axis` of size 1, the inputs and `out`
    may be strided images (arrays.image_stride): the copies take their image strides."""
    rt = current()
    if not inputs:
        raise ValueError("inputs: expected at least one array to concatenate")
    shapes = [check_images(f"inputs[{i}]", x, rt, "(*)") for i, x in enumerate(inputs)]
    axis = check_dim("axis", axis, len(shapes[0]))
    for i, s in enumerate(shapes):
        if len(s) != len(shapes[0]) or s[:axis] + s[axis + 1:] != \
                shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ValueError(f"inputs[{i}]: shape {s} does not match {shapes[0]} outside "
                             f"axis {axis}")
    total = sum(s[axis] for s in shapes)
    out_shape = shapes[0][:axis] + (total,) + shapes[0][axis + 1:]
    inner = int(np.prod(out_shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    if in_place and out is None:
        raise ValueError(f"in_place: {tuple(in_place)} names inputs already in `out`, but "
                         "out is None")
    # strided images are `outer` blocks at their image stride where axis 0 is the only
    # axis before `axis` larger than 1; otherwise they are made contiguous first
    blocks_are_images = axis > 0 and outer == out_shape[0]
    if image_stride(out) is not None and blocks_are_images:
        check_shape("out", check_images("out", out, rt, "(*)"), out_shape)
        out_pitch = image_stride(out)
    else:
        out = output(rt, out_shape, out)
        out_pitch = total * inner
    offset = 0
    for position, (x, s) in enumerate(zip(inputs, shapes)):
        block = s[axis] * inner
        if position not in in_place:
            # each input is `outer` contiguous blocks placed at a stride in the output
            src = on_device(rt, x if blocks_are_images else contiguous_images(rt, x))
            if outer == 1:
                enqueue_copy(rt, out.data, src.data, byte_count=block * 4,
                             dst_offset=offset * 4)
            else:
                _copy_blocks(rt, out, src, outer, block, image_stride(src) or block,
                             out_pitch, offset)
        offset += block
    return out


def gather(input, indices, axis: int):
    """numpy.take(input, indices, axis) with host integer indices (negative allowed)."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    axis = check_dim("axis", axis, len(shape))
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices: expected integers, got dtype {idx.dtype}")
    D = shape[axis]
    if idx.size and (idx.min() < -D or idx.max() >= D):
        raise ValueError(f"indices: expected values in [{-D}, {D}) for axis {axis} of input "
                         f"{shape}, got range [{idx.min()}, {idx.max()}]")
    out_shape = shape[:axis] + idx.shape + shape[axis + 1:]
    flat = np.where(idx < 0, idx + D, idx).astype(np.int32).reshape(-1)
    out = empty(rt, out_shape)
    if out.size == 0:
        return out
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    launch(rt, get_kernel(rt, KERNELS, "gather_axis"), out.size, on_device(rt, input),
           on_device(rt, flat, np.int32), out, flat.size, D, inner)
    return out
