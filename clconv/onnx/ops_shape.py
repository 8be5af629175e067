"""Lowering of shape, layout and constant ops. Shapes, axes and indices are int64
host constants; reshapes are views (no kernel); anything on constants only is
folded on the host."""
from __future__ import annotations

import numpy as np

from ..ops import layout
from ..params import INT32_MAX
from .steps import CallStep, ConcatStep, ViewStep


def _axis(ctx, axis, rank, what="axis"):
    axis = int(axis)
    if not -rank <= axis < rank:
        ctx.fail(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def _view_or_fold(ctx, out_shape, fold):
    """Constants fold with `fold(value)`; run-time tensors get a view step."""
    if ctx.is_const(0):
        ctx.set_const(fold(ctx.value(0)))
    else:
        ctx.emit(ViewStep, [ctx.tensor(0, "data")], [tuple(out_shape)])


def lower_identity(ctx):
    _view_or_fold(ctx, ctx.shape(0), lambda v: v)


def lower_dropout(ctx):
    training = ctx.const(2, "training_mode", np.array(False)) if ctx.node.opset >= 12 else \
        np.array(not ctx.attr("is_test", 1) if ctx.node.opset < 7 else False)
    if bool(np.asarray(training).reshape(())):
        ctx.fail("training_mode=True is not supported (inference only)")
    shape = ctx.shape(0)
    _view_or_fold(ctx, shape, lambda v: v)
    ctx.set_const(np.ones(shape, dtype=bool), out=1)  # eval-mode mask keeps everything


def reshape_target(ctx, in_shape, requested, allow_zero):
    out = [int(d) for d in requested]
    requested = list(out)  # plain ints in the messages, not numpy scalars
    if not allow_zero:
        out = [in_shape[i] if d == 0 and i < len(in_shape) else d for i, d in enumerate(out)]
    if out.count(-1) > 1:
        ctx.fail(f"shape {requested} has more than one -1")
    size = int(np.prod(in_shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            ctx.fail(f"cannot reshape {tuple(in_shape)} to {requested}")
        out[out.index(-1)] = size // known
    if int(np.prod(out, dtype=np.int64)) != size or min(out, default=0) < 0:
        ctx.fail(f"cannot reshape {tuple(in_shape)} ({size} elements) to {requested}")
    return tuple(out)


def lower_reshape(ctx):
    target = reshape_target(ctx, ctx.shape(0), ctx.const(1, "shape"),
                            bool(ctx.attr("allowzero", 0)))
    _view_or_fold(ctx, target, lambda v: v.reshape(target))


def lower_flatten(ctx):
    shape = ctx.shape(0)
    axis = int(ctx.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        ctx.fail(f"axis {axis} is out of range for rank {len(shape)}")
    if axis < 0:
        axis += len(shape)
    target = (int(np.prod(shape[:axis], dtype=np.int64)),
              int(np.prod(shape[axis:], dtype=np.int64)))
    _view_or_fold(ctx, target, lambda v: v.reshape(target))


def _axes(ctx, attr_before_13=True):
    if ctx.node.opset < 13 and attr_before_13:
        axes = ctx.attr("axes")
    else:
        axes = ctx.const(1, "axes")
    return None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]


def lower_squeeze(ctx):
    shape = ctx.shape(0)
    axes = _axes(ctx)
    if axes is None:
        axes = [i for i, s in enumerate(shape) if s == 1]
    axes = sorted({_axis(ctx, a, len(shape), "axes") for a in axes})
    for a in axes:
        if shape[a] != 1:
            ctx.fail(f"cannot squeeze axis {a} of size {shape[a]} (shape {shape})")
    target = tuple(s for i, s in enumerate(shape) if i not in axes)
    _view_or_fold(ctx, target, lambda v: v.reshape(target))


def lower_unsqueeze(ctx):
    shape = ctx.shape(0)
    axes = _axes(ctx)
    if axes is None:
        ctx.fail("axes is required")
    rank = len(shape) + len(axes)
    axes = [_axis(ctx, a, rank, "axes") for a in axes]
    if len(set(axes)) != len(axes):
        ctx.fail(f"axes {axes} repeat an axis")
    rest = iter(shape)
    target = tuple(1 if i in axes else next(rest) for i in range(rank))
    _view_or_fold(ctx, target, lambda v: v.reshape(target))


def lower_transpose(ctx):
    shape = ctx.shape(0)
    perm = ctx.attr("perm")
    perm = list(range(len(shape)))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(len(shape))):
        ctx.fail(f"perm {perm} is not a permutation of the {len(shape)} axes")
    if ctx.is_const(0):
        ctx.set_const(np.ascontiguousarray(np.transpose(ctx.value(0), perm)))
        return
    out = tuple(shape[p] for p in perm)
    ctx.emit(CallStep, [ctx.tensor(0, "data")], [out],
             call=lambda x: [layout.transpose(x, perm)], description=f"transpose {perm}")


def lower_concat(ctx):
    count = len(ctx.node.inputs)
    shapes = [ctx.shape(i) for i in range(count)]
    if ctx.attr("axis") is None:
        ctx.fail("attribute axis is required")
    axis = _axis(ctx, ctx.attr("axis"), len(shapes[0]))
    if ctx.all_const():
        ctx.set_const(np.concatenate([ctx.value(i) for i in range(count)], axis=axis))
        return
    for i, s in enumerate(shapes):
        if len(s) != len(shapes[0]) or s[:axis] + s[axis + 1:] != \
                shapes[0][:axis] + shapes[0][axis + 1:]:
            ctx.fail(f"input {i} shape {s} does not match {shapes[0]} outside axis {axis}")
    out = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]
    ctx.emit(ConcatStep, [ctx.tensor(i, f"inputs[{i}]") for i in range(count)], [out],
             axis=axis)


def lower_constant(ctx):
    attrs = ctx.node.attrs
    if "value" in attrs:
        value = attrs["value"]
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], np.int64)
    else:
        ctx.fail(f"unsupported Constant attribute(s) {sorted(attrs)}")
    ctx.set_const(np.asarray(value))


def lower_constant_of_shape(ctx):
    shape = [int(d) for d in ctx.const(0, "input").reshape(-1)]
    if min(shape, default=0) < 0 or int(np.prod(shape, dtype=object)) > INT32_MAX:
        ctx.fail(f"shape {shape}: expected sizes >= 0 and at most {INT32_MAX} elements in all")
    value = ctx.attr("value")
    fill = np.asarray(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    ctx.set_const(np.full(shape, fill[0], dtype=fill.dtype))


def lower_shape(ctx):
    shape = ctx.shape(0)
    rank = len(shape)
    start, end = int(ctx.attr("start", 0)), ctx.attr("end")
    end = rank if end is None else int(end)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    ctx.set_const(np.array(shape[start:end], dtype=np.int64))


def lower_gather(ctx):
    shape = ctx.shape(0)
    axis = _axis(ctx, ctx.attr("axis", 0), len(shape))
    indices = ctx.const(1, "indices")
    D = shape[axis]
    if indices.size and (indices.min() < -D or indices.max() >= D):
        ctx.fail(f"indices range [{indices.min()}, {indices.max()}] is outside [{-D}, {D}) "
                 f"for axis {axis} of shape {shape}")
    if ctx.is_const(0):
        ctx.set_const(np.take(ctx.value(0), indices, axis=axis))
        return
    out = shape[:axis] + indices.shape + shape[axis + 1:]
    ctx.emit(CallStep, [ctx.tensor(0, "data")], [out],
             call=lambda x: [layout.gather(x, indices, axis)], description=f"gather axis={axis}")


NUMPY_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def lower_pad(ctx):
    shape = ctx.shape(0)
    rank = len(shape)
    mode = ctx.attr("mode", "constant")
    if ctx.node.opset < 11:
        pads, value = list(ctx.attr("pads")), float(ctx.attr("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(p) for p in ctx.const(1, "pads")]
        value = ctx.const(2, "constant_value", np.zeros((), np.float32))
        value = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
        axes = ctx.const(3, "axes")
        axes = list(range(rank)) if axes is None else \
            [_axis(ctx, a, rank, "axes") for a in axes.reshape(-1)]
    if len(pads) != 2 * len(axes):
        ctx.fail(f"pads {pads} should have 2 x {len(axes)} values")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a], end[a] = pads[k], pads[k + len(axes)]
    if mode not in layout.PAD_MODES:
        ctx.fail(f"mode {mode!r}: expected one of {sorted(layout.PAD_MODES)}")
    out = tuple(s + b + e for s, b, e in zip(shape, begin, end))
    if min(out, default=1) <= 0:
        ctx.fail(f"pads {pads} leave an empty output {out}")
    if ctx.is_const(0):
        x = ctx.value(0)
        cropped = x[tuple(slice(max(-b, 0), s - max(-e, 0)) for s, b, e in zip(shape, begin, end))]
        widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
        extra = {"constant_values": value} if mode == "constant" else {}
        ctx.set_const(np.pad(cropped, widths, mode=NUMPY_PAD_MODES[mode], **extra)
                      .astype(x.dtype))
        return
    ctx.emit(CallStep, [ctx.tensor(0, "data")], [out],
             call=lambda x: [layout.pad(x, begin, end, mode, value)],
             description=f"pad ({mode})")


HANDLERS = {
    "Identity": lower_identity, "Dropout": lower_dropout, "Reshape": lower_reshape,
    "Flatten": lower_flatten, "Squeeze": lower_squeeze, "Unsqueeze": lower_unsqueeze,
    "Transpose": lower_transpose, "Concat": lower_concat, "Constant": lower_constant,
    "ConstantOfShape": lower_constant_of_shape, "Shape": lower_shape, "Gather": lower_gather,
    "Pad": lower_pad,
}
