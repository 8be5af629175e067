"""The public matrix products, all on the one tuned GEMM (`algos/tiled_gemm.py`):
gemm (ONNX Gemm: act(alpha * A' @ B' + beta * C), linear's bias along N included) and
matmul with numpy's broadcasting rules."""
from __future__ import annotations

from dataclasses import dataclass

from ..algos import tiled_gemm
from ..algos.tiled_gemm import STRIDED_BIAS, gemm as enqueue, matrix_params
from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..epilogue import NO_ACTIVATION, Activation
from ..runtime import current
from ..validation import check_array, check_finite
from .elementwise import MAX_RANK, broadcast_shape, broadcast_strides, pad_rank

EXPAND_KERNELS = "shape.cl"  # strided_copy: a broadcast operand made contiguous


@dataclass(frozen=True)
class PackedB:
    """gemm's B where it does not change (an ONNX Gemm's weights): packed once in the
    GEMM's column panels (tiled_gemm.pack_b), so that each call's K loop reads one
    contiguous stream per work-item instead of rows N floats apart (or, for a B stored
    transposed, gathering each vector lane by lane)."""
    params: dict
    data: object  # the panels, a device array
    ldb: int      # the panel stride
    shape: tuple  # (K, N) of B


def pack_b(b, M: int, trans_b: bool = False) -> PackedB:
    """B (op(b): b, or its transpose with trans_b) packed for gemm(a, packed, ...) with
    an `a` of M rows."""
    rt = current()
    b_shape = check_array("b", b, rt, "(K, N)")
    K, N = b_shape[::-1] if trans_b else b_shape
    params = matrix_params(rt.profile, M, N)
    data, ldb = tiled_gemm.pack_b(rt, params, on_device(rt, b), K, N, trans_b)
    return PackedB(params, data, ldb, (K, N))


def _enqueue(rt, a, b, M, N, K, out, trans_a=False, trans_b=False, batches=1, NB2=1,
             sa=(0, 0), sb=(0, 0), c=None, c_strides=(0, 0), alpha=1.0, beta=1.0,
             scale=False, act: Activation = NO_ACTIVATION):
    """out[b] (M x N) = act(alpha * op(a[b]) @ op(b[b]) + beta * c), C contiguous; b a
    device array, or a PackedB (one matrix, trans_b False)."""
    if isinstance(b, PackedB):
        params, b, ldb, b_layout = b.params, b.data, b.ldb, {"b_packed": True}
    else:
        params = matrix_params(rt.profile, M, N, trans_b)
        ldb, b_layout = K if trans_b else N, {"b_trans": trans_b}
    enqueue(rt, params, M, N, K, 1,
            a, M if trans_a else K, (*sa, 0),
            b, ldb, (*sb, 0),
            out, N, (NB2 * M * N, M * N), batches, NB2,
            a_kmajor=trans_a, bias=c, bias_kind=STRIDED_BIAS, bias_strides=(0, *c_strides),
            alpha=alpha, beta=beta, scale=scale, act=act, **b_layout)
    return out


def gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=False, trans_b=False,
         act: Activation = NO_ACTIVATION):
    """act(alpha * op(a) @ op(b) + beta * c); op transposes when trans_* is set; c
    broadcasts to (M, N) (shape (N,): a bias per column, as linear's). `b` may be a
    PackedB (pack_b: op(b) packed once; trans_b then False)."""
    rt = current()
    a_shape = check_array("a", a, rt, "(M, K)")
    if isinstance(b, PackedB):
        if trans_b:
            raise ValueError("trans_b: a PackedB is B as packed (pack_b transposed it); "
                             "pass trans_b=False")
        b_shape = b.shape
    else:
        b_shape = check_array("b", b, rt, "(K, N)")
    M, K = a_shape[::-1] if trans_a else a_shape
    Kb, N = b_shape[::-1] if trans_b else b_shape
    if K != Kb:
        raise ValueError(f"b: inner dimensions differ: a{' (transposed)' if trans_a else ''} "
                         f"{a_shape} and b{' (transposed)' if trans_b else ''} {b_shape}")
    c_strides = (0, 0)
    if c is not None:
        c_shape = check_array("c", c, rt, "(*)")
        try:
            fits = len(c_shape) <= 2 and broadcast_shape(c_shape, (M, N)) == (M, N)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"c: shape {c_shape} does not broadcast to ({M}, {N})")
        c_strides = broadcast_strides(c_shape, (M, N))
    alpha, beta = check_finite("alpha", alpha), check_finite("beta", beta)
    b_dev = b if isinstance(b, PackedB) else on_device(rt, b)
    return _enqueue(rt, on_device(rt, a), b_dev, M, N, K, empty(rt, (M, N)),
                    trans_a, trans_b, c=on_device(rt, c) if c is not None else None,
                    c_strides=c_strides, alpha=alpha, beta=beta,
                    scale=(alpha, beta) != (1.0, 1.0), act=act)


def matmul_shapes(a_shape, b_shape):
    """(batch shape, M, K, N, output shape) of numpy.matmul for these shapes."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise ValueError(f"b: matmul of shapes {tuple(a_shape)} and {tuple(b_shape)}: inner "
                         f"dimensions {a2[-1]} and {b2[-2]} differ")
    try:
        batch = broadcast_shape(a2[:-2], b2[:-2])
    except ValueError:
        raise ValueError(f"b: matmul of shapes {tuple(a_shape)} and {tuple(b_shape)}: batch "
                         f"axes {a2[:-2]} and {b2[:-2]} do not broadcast") from None
    M, K, N = a2[-2], a2[-1], b2[-1]
    out = batch + ((M,) if len(a_shape) > 1 else ()) + ((N,) if len(b_shape) > 1 else ())
    return batch, M, K, N, out


def _batch_strides(batch_shape, batch, matrix_size):
    """Element strides of each batch axis of `batch` (0 where the operand broadcasts)."""
    return tuple(s * matrix_size for s in broadcast_strides(batch_shape, batch))


def batch_levels(batch, strides_a, strides_b):
    """The broadcast batch as at most two levels (outer, inner) with each operand's
    stride per level: ((n1, n2), (sa1, sa2), (sb1, sb2)), or None when the operands'
    broadcasting needs more (gemm.cl splits its batch index in two)."""
    levels = []  # [size, stride a, stride b], outermost first
    for size, sa, sb in zip(batch, strides_a, strides_b):
        if size == 1:
            continue
        if levels and levels[-1][1] == sa * size and levels[-1][2] == sb * size:
            levels[-1] = [levels[-1][0] * size, sa, sb]  # merges with the axis before it
        else:
            levels.append([size, sa, sb])
    if len(levels) > 2:
        return None
    levels = [[1, 0, 0]] * (2 - len(levels)) + levels
    (n1, sa1, sb1), (n2, sa2, sb2) = levels
    return (n1, n2), (sa1, sa2), (sb1, sb2)


def _expand(rt, x, shape, out_shape):
    """x broadcast to out_shape, as a contiguous array."""
    dims, (strides,) = pad_rank(out_shape, [broadcast_strides(shape, out_shape)], MAX_RANK)
    out = empty(rt, out_shape)
    launch(rt, get_kernel(rt, EXPAND_KERNELS, "strided_copy"), out.size, x, out,
           *dims[1:], *strides)
    return out


def matmul(a, b, act: Activation = NO_ACTIVATION):
    """numpy.matmul: 1-D operands are promoted, batch axes broadcast."""
    rt = current()
    a_shape = check_array("a", a, rt, "(*)")
    b_shape = check_array("b", b, rt, "(*)")
    if not a_shape or not b_shape:
        raise ValueError(f"matmul needs at least 1-D operands, got {a_shape} and {b_shape}")
    batch, M, K, N, out_shape = matmul_shapes(a_shape, b_shape)
    a_batch = a_shape[:-2] if len(a_shape) > 2 else ()
    b_batch = b_shape[:-2] if len(b_shape) > 2 else ()
    a_dev, b_dev = on_device(rt, a), on_device(rt, b)
    levels = batch_levels(batch, _batch_strides(a_batch, batch, M * K),
                          _batch_strides(b_batch, batch, K * N))
    if levels is None:  # three or more broadcast patterns: both operands made whole
        a_dev = _expand(rt, a_dev, a_batch + (M, K), batch + (M, K))
        b_dev = _expand(rt, b_dev, b_batch + (K, N), batch + (K, N))
        levels = batch_levels(batch, _batch_strides(batch, batch, M * K),
                              _batch_strides(batch, batch, K * N))
    (n1, n2), sa, sb = levels
    out = empty(rt, out_shape)
    return _enqueue(rt, a_dev, b_dev, M, N, K, out, batches=n1 * n2, NB2=n2, sa=sa, sb=sb,
                    act=act)
