"""Element-wise ops with an optional fused activation: activations, broadcasting
arithmetic (numpy rules), and a per-channel affine map (inference batch norm).

`out` may be one of the inputs (in-place): the kernels read and write each
element from the same work-item.
"""
from __future__ import annotations

import numpy as np

from ..arrays import on_device, output
from ..build import DEFAULT_GROUP_SIZE, get_kernel, group_2d, launch, launch_grid
from ..epilogue import NO_ACTIVATION, Activation
from ..runtime import current
from ..validation import check_array, check_shape

KERNELS = "elementwise.cl"
MAX_RANK = 6  # the broadcasting kernel's index arithmetic is unrolled for 6 axes

BINARY_OP_IDS = {"add": 0, "sub": 1, "mul": 2, "div": 3}


def activation(input, act: Activation, out=None):
    """act(input), elementwise."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    y = output(rt, shape, out)
    launch(rt, get_kernel(rt, KERNELS, "activation_apply", act.defines), y.size,
           on_device(rt, input), y, *act.scalars)
    return y


def broadcast_shape(a_shape, b_shape) -> tuple[int, ...]:
    """numpy's broadcast shape, with an error naming both shapes."""
    try:
        return tuple(np.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    except ValueError:
        raise ValueError(f"shapes {tuple(a_shape)} and {tuple(b_shape)} do not broadcast") from None


def broadcast_strides(shape, out_shape) -> tuple[int, ...]:
    """Element strides to read an array of `shape` at each index of `out_shape`
    (0 along broadcast axes), right-aligned as numpy does."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step if size != 1 else 0)
        step *= size
    return tuple(reversed(strides))


def pad_rank(dims, strides_list, rank=MAX_RANK):
    """Left-pad dims with 1 and strides with 0 to `rank` axes."""
    extra = rank - len(dims)
    if extra < 0:
        raise ValueError(f"rank {len(dims)} is above the supported {rank}")
    return (1,) * extra + tuple(dims), [(0,) * extra + tuple(s) for s in strides_list]


def binary(op: str, a, b, act: Activation = NO_ACTIVATION, out=None):
    """act(a op b) for op in add, sub, mul, div, broadcasting as numpy does."""
    if op not in BINARY_OP_IDS:
        raise ValueError(f"op: expected one of {sorted(BINARY_OP_IDS)}, got {op!r}")
    rt = current()
    a_shape = check_array("a", a, rt, "(*)")
    b_shape = check_array("b", b, rt, "(*)")
    out_shape = broadcast_shape(a_shape, b_shape)
    y = output(rt, out_shape, out)
    defines = {**act.defines, "BINARY_OP": BINARY_OP_IDS[op]}
    da, db = on_device(rt, a), on_device(rt, b)
    if a_shape == b_shape:
        launch(rt, get_kernel(rt, KERNELS, "binary_same_shape", defines), y.size, da, db, y,
               *act.scalars)
        return y
    dims, (sa, sb) = pad_rank(out_shape, [broadcast_strides(a_shape, out_shape),
                                          broadcast_strides(b_shape, out_shape)])
    launch(rt, get_kernel(rt, KERNELS, "binary_broadcast", defines), y.size, da, db, y,
           *act.scalars, *dims[1:], *sa, *sb)
    return y


def channel_affine(input, scale, shift, act: Activation = NO_ACTIVATION, out=None):
    """act(input * scale[c] + shift[c]) along axis 1 of input (N, C, *)."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    if len(shape) < 2:
        raise ValueError(f"input: expected shape (N, C, *) with at least 2 axes, got {shape}")
    C = shape[1]
    check_shape("scale", check_array("scale", scale, rt, "(C,)"), (C,))
    check_shape("shift", check_array("shift", shift, rt, "(C,)"), (C,))
    y = output(rt, shape, out)
    inner = int(np.prod(shape[2:], dtype=np.int64))
    launch_grid(rt, get_kernel(rt, KERNELS, "channel_affine", act.defines), (inner, C, shape[0]),
                group_2d(DEFAULT_GROUP_SIZE, inner, C) + (1,),
                on_device(rt, input), on_device(rt, scale), on_device(rt, shift), y,
                shape[0], C, inner, *act.scalars)
    return y
