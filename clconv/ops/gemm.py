"""Gemm (alpha * A' @ B' + beta * C, with an optional fused activation) and matmul
with numpy's broadcasting rules."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..epilogue import NO_ACTIVATION, Activation
from ..runtime import current
from ..validation import check_array, check_finite
from .elementwise import broadcast_shape, broadcast_strides

KERNELS = "linalg.cl"


def gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=False, trans_b=False,
         act: Activation = NO_ACTIVATION):
    """act(alpha * op(a) @ op(b) + beta * c); op transposes when trans_* is set; c
    broadcasts to (M, N)."""
    rt = current()
    a_shape = check_array("a", a, rt, "(M, K)")
    b_shape = check_array("b", b, rt, "(K, N)")
    M, K = a_shape[::-1] if trans_a else a_shape
    Kb, N = b_shape[::-1] if trans_b else b_shape
    if K != Kb:
        raise ValueError(f"b: inner dimensions differ: a{' (transposed)' if trans_a else ''} "
                         f"{a_shape} and b{' (transposed)' if trans_b else ''} {b_shape}")
    a_strides = (1, M) if trans_a else (K, 1)   # (step per m, step per k)
    b_strides = (1, K) if trans_b else (N, 1)   # (step per k, step per n)
    c_strides = (0, 0)
    if c is not None:
        c_shape = check_array("c", c, rt, "(*)")
        if len(c_shape) > 2 or broadcast_shape(c_shape, (M, N)) != (M, N):
            raise ValueError(f"c: shape {c_shape} does not broadcast to ({M}, {N})")
        c_strides = broadcast_strides(c_shape, (M, N))
    out = empty(rt, (M, N))
    a_dev = on_device(rt, a)
    launch(rt, get_kernel(rt, KERNELS, "gemm", act.defines), out.size, a_dev, on_device(rt, b),
           on_device(rt, c) if c is not None else a_dev, c is not None, out, N, K,
           *a_strides, *b_strides, *c_strides, check_finite("alpha", alpha),
           check_finite("beta", beta), *act.scalars)
    return out


def matmul_shapes(a_shape, b_shape):
    """(batch shape, M, K, N, output shape) of numpy.matmul for these shapes."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise ValueError(f"b: matmul of shapes {tuple(a_shape)} and {tuple(b_shape)}: inner "
                         f"dimensions {a2[-1]} and {b2[-2]} differ")
    batch = broadcast_shape(a2[:-2], b2[:-2])
    M, K, N = a2[-2], a2[-1], b2[-1]
    out = batch + ((M,) if len(a_shape) > 1 else ()) + ((N,) if len(b_shape) > 1 else ())
    return batch, M, K, N, out


def _batch_offsets(shape, batch, matrix_size):
    """Element offset of each (broadcast) batch entry's matrix, flattened in batch order."""
    shape = tuple(shape[:-2])
    index = np.arange(int(np.prod(shape, dtype=np.int64)) if shape else 1).reshape(shape)
    return (np.broadcast_to(index, batch).reshape(-1) * matrix_size).astype(np.int32)


def matmul(a, b):
    """numpy.matmul: 1-D operands are promoted, batch axes broadcast."""
    rt = current()
    a_shape = check_array("a", a, rt, "(*)")
    b_shape = check_array("b", b, rt, "(*)")
    if not a_shape or not b_shape:
        raise ValueError(f"matmul needs at least 1-D operands, got {a_shape} and {b_shape}")
    batch, M, K, N, out_shape = matmul_shapes(a_shape, b_shape)
    a_batch = a_shape[:-2] if len(a_shape) > 2 else ()
    b_batch = b_shape[:-2] if len(b_shape) > 2 else ()
    a_off = _batch_offsets(a_batch + (M, K), batch, M * K)
    b_off = _batch_offsets(b_batch + (K, N), batch, K * N)
    out = empty(rt, out_shape)
    launch(rt, get_kernel(rt, KERNELS, "batched_matmul"), out.size, on_device(rt, a),
           on_device(rt, b), on_device(rt, a_off, np.int32), on_device(rt, b_off, np.int32),
           out, M, N, K)
    return out
