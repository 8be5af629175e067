"""Lowering of activations and broadcasting arithmetic. With constant inputs only,
they are folded on the host with numpy."""
from __future__ import annotations

import numpy as np

from ..epilogue import Activation
from ..ops.elementwise import broadcast_shape
from .steps import ActivationStep, AffineStep, BinaryStep, ViewStep

FLOAT_MAX = float(np.finfo(np.float32).max)


def _activation(ctx) -> Activation:
    op = ctx.node.op_type
    if op == "Relu":
        return Activation("relu")
    if op == "LeakyRelu":
        return Activation("leaky_relu", float(ctx.attr("alpha", 0.01)))
    if op == "Sigmoid":
        return Activation("sigmoid")
    if op == "Tanh":
        return Activation("tanh")
    if op == "HardSigmoid":
        return Activation("hard_sigmoid", float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5)))
    if op == "HardSwish":
        return Activation("hard_swish")
    if op == "Clip":
        if ctx.node.opset < 11:
            low, high = ctx.attr("min", -FLOAT_MAX), ctx.attr("max", FLOAT_MAX)
        else:
            low = ctx.const(1, "min", np.float32(-FLOAT_MAX))
            high = ctx.const(2, "max", np.float32(FLOAT_MAX))
            for bound, what in ((low, "min"), (high, "max")):
                if np.size(bound) != 1:
                    ctx.fail(f"{what} must be a scalar, got shape {np.shape(bound)}")
        return Activation("clip", float(np.asarray(low).reshape(())),
                          float(np.asarray(high).reshape(())))
    raise AssertionError(op)


def lower_activation(ctx):
    act = _activation(ctx)
    if ctx.is_const(0):
        x = ctx.value(0)
        y = act.numpy(x)
        ctx.set_const(y.astype(x.dtype) if x.dtype.kind == "f" else np.round(y).astype(x.dtype))
        return
    if ctx.value(0).dtype != np.float32:
        ctx.fail(f"input has dtype {ctx.value(0).dtype}; device ops take float32")
    ctx.emit(ActivationStep, [ctx.tensor(0, "X")], [ctx.shape(0)], act=act)


NUMPY_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}


def _numpy_binary(op, a, b):
    if op == "Div":
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":  # ONNX integer Div truncates
            return (np.trunc(a / b)).astype(np.result_type(a, b))
        return np.divide(a, b)
    return NUMPY_BINARY[op](a, b)


def _emit_binary(ctx, op_name, a_index_or_name, b_index, a_shape, b_shape, output):
    try:
        out_shape = broadcast_shape(a_shape, b_shape)
    except ValueError as error:
        ctx.fail(str(error))
    overwritable = tuple(k for k, s in enumerate((a_shape, b_shape)) if tuple(s) == out_shape)
    a = a_index_or_name if isinstance(a_index_or_name, str) else ctx.tensor(a_index_or_name, "A")
    ctx.emit(BinaryStep, [a, ctx.tensor(b_index, "B")], [out_shape], outputs=[output],
             binary_op=op_name, overwritable_inputs=overwritable,
             broadcasts=tuple(a_shape) != tuple(b_shape))
    return out_shape


def _per_channel(value, x_shape):
    """`value` (a host constant) as one float64 number per channel of x's axis 1, or None
    when it broadcasts otherwise (or would broadcast x itself)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or len(x_shape) < 2 \
            or value.ndim > len(x_shape):
        return None
    shape = (1,) * (len(x_shape) - value.ndim) + value.shape
    C = x_shape[1]
    if shape[0] != 1 or shape[1] not in (1, C) or any(d != 1 for d in shape[2:]):
        return None
    return np.broadcast_to(value.astype(np.float64).reshape(shape[1]), (C,))


def _lower_channel_affine(ctx) -> bool:
    """x + c, c + x, x - c, c - x, x * c, c * x with c a per-channel constant (the
    batch-norm scale and shift that some exporters write as Mul and Add): one
    AffineStep, x * scale[c] + shift[c], which the planner merges with its neighbours,
    folds into a convolution before it and fuses the activation after it into.
    Exactly the same result: x*1 + c, x*(-1) + c and x*c + 0 round as x + c, c - x and
    x * c do."""
    op = ctx.node.op_type
    if op not in ("Add", "Sub", "Mul"):
        return False
    for x_i, c_i in ((0, 1), (1, 0)):
        if ctx.is_const(x_i) or not ctx.is_const(c_i):
            continue
        x_shape = tuple(ctx.shape(x_i))
        if ctx.value(x_i).dtype != np.float32:
            return False
        c = _per_channel(ctx.value(c_i), x_shape)
        if c is None:
            return False
        ones, zeros = np.ones_like(c), np.zeros_like(c)
        scale, shift = {"Add": (ones, c), "Mul": (c, zeros),
                        "Sub": (ones, -c) if x_i == 0 else (-ones, c)}[op]
        names = [ctx.add_constant("scale", scale), ctx.add_constant("shift", shift)]
        ctx.emit(AffineStep, [ctx.tensor(x_i, "X")] + names, [x_shape])
        return True
    return False


def lower_binary(ctx):
    if ctx.all_const():
        ctx.set_const(_numpy_binary(ctx.node.op_type, ctx.value(0), ctx.value(1)))
        return
    if _lower_channel_affine(ctx):
        return
    _emit_binary(ctx, ctx.node.op_type.lower(), 0, 1, ctx.shape(0), ctx.shape(1),
                 ctx.node.outputs[0])


def lower_sum(ctx):
    count = len(ctx.node.inputs)
    if ctx.all_const():
        total = ctx.value(0)
        for i in range(1, count):
            total = total + ctx.value(i)
        ctx.set_const(total)
        return
    if count == 1:
        ctx.emit(ViewStep, [ctx.tensor(0, "data_0")], [ctx.shape(0)])
        return
    current, shape = 0, ctx.shape(0)
    for i in range(1, count):
        name = ctx.node.outputs[0] if i == count - 1 else f"{ctx.node.outputs[0]}::partial{i}"
        shape = _emit_binary(ctx, "add", current, i, shape, ctx.shape(i), name)
        current = name


HANDLERS = {op: lower_activation for op in
            ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip")}
HANDLERS.update({op: lower_binary for op in ("Add", "Sub", "Mul", "Div")})
HANDLERS["Sum"] = lower_sum
