"""Lowering of the network ops: convolutions, pooling, LRN, batch norm, softmax,
Gemm and MatMul (ONNX semantics; 1-D, 2-D and, for convolutions and pooling, 3-D
spatial inputs)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops import gemm as gemm_ops
from ..ops import lrn as lrn_ops
from ..ops import softmax as softmax_ops
from .. import params
from ..geometry import (conv_geometry, conv_geometry_nd, pool_geometry_nd, transpose_geometry,
                        transpose_geometry_nd)
from ..ops.elementwise import broadcast_shape
from ..ops.pool import whole_windows
from ..params import INT32_MAX, check_extent
from ..validation import check_finite, check_int
from .steps import (AffineStep, CallStep, ConvStep, ConvTransposeStep, GemmStep, MatMulStep,
                    avg_pool_call, max_pool_call, max_pool_with_indices_call)


def _spatial(ctx, what: str):
    """Input shape as (N, C, spatial...), with 1-D inputs run as 2-D (unit height)."""
    shape = ctx.shape(0)
    if len(shape) not in (3, 4, 5):
        ctx.fail(f"{what} supports 1-D, 2-D and 3-D inputs (N, C, W), (N, C, H, W) or "
                 f"(N, C, D, H, W); got shape {shape}")
    return shape


def _ints(ctx, name, count, default):
    value = ctx.attr(name)
    if value is None or len(value) == 0:
        return [default] * count
    if len(value) != count:
        ctx.fail(f"attribute {name}={list(value)}: expected {count} values")
    if any(abs(int(v)) > INT32_MAX for v in value):
        ctx.fail(f"attribute {name}={list(value)}: expected values within +-{INT32_MAX} "
                 "(the kernels' int32 range)")
    return [int(v) for v in value]


def resolve_pads(ctx, sizes, kernel, strides, dilations, transposed=False):
    """(begin, end) padding per spatial axis from auto_pad / pads."""
    n = len(sizes)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = _ints(ctx, "pads", 2 * n, 0)
        if min(pads) < 0:
            ctx.fail(f"negative pads {pads} are not supported")
        return pads[:n], pads[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.fail(f"auto_pad={auto_pad!r}: expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    begin, end = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return begin, end


def _as_2d(values, one):
    """A 1-D spatial parameter list as 2-D with `one` on the added height axis."""
    return [one] + list(values) if len(values) == 1 else list(values)


def lower_conv(ctx):
    shape = _spatial(ctx, "Conv")
    w_shape = ctx.shape(1)
    if len(w_shape) != len(shape):
        ctx.fail(f"weight W has shape {tuple(w_shape)}; expected a {len(shape)}-D weight "
                 "(M, C/group, kernel...) for the input of shape " + str(tuple(shape)))
    spatial = shape[2:]
    kernel = list(w_shape[2:])
    if ctx.attr("kernel_shape") is not None and list(ctx.attr("kernel_shape")) != kernel:
        ctx.fail(f"kernel_shape {ctx.attr('kernel_shape')} differs from the weight's {kernel}")
    strides = _ints(ctx, "strides", len(spatial), 1)
    dilations = _ints(ctx, "dilations", len(spatial), 1)
    begin, end = resolve_pads(ctx, spatial, kernel, strides, dilations)
    groups = int(ctx.attr("group", 1))
    one_d = len(spatial) == 1
    x4 = shape if not one_d else (shape[0], shape[1], 1, shape[2])
    w4 = tuple(w_shape) if not one_d else (w_shape[0], w_shape[1], 1, w_shape[2])
    strides2, dil2 = _as_2d(strides, 1), _as_2d(dilations, 1)
    begin2, end2 = _as_2d(begin, 0), _as_2d(end, 0)
    symmetric = begin2 == end2
    padding = tuple(begin2) if symmetric else tuple(min(b, e) for b, e in zip(begin2, end2))
    pre_pad = None
    padded = x4
    if not symmetric:  # pad only the excess explicitly; conv2d pads the symmetric part
        extra_b = [b - p for b, p in zip(begin2, padding)]
        extra_e = [e - p for e, p in zip(end2, padding)]
        pre_pad = ([0, 0] + extra_b, [0, 0] + extra_e)
        padded = x4[:2] + tuple(s + b + e for s, b, e in zip(x4[2:], extra_b, extra_e))
    geometry = conv_geometry_nd if len(spatial) == 3 else conv_geometry
    try:
        geo = geometry(padded, w4, tuple(strides2), padding, tuple(dil2), groups)
    except (ValueError, TypeError) as error:
        ctx.fail(str(error))
    out4 = geo.output_shape
    out = out4 if not one_d else (out4[0], out4[1], out4[3])
    inputs = [ctx.tensor(0, "X"), ctx.tensor(1, "W")]
    if ctx.has(2):
        if tuple(ctx.shape(2)) != (w_shape[0],):
            ctx.fail(f"bias B has shape {ctx.shape(2)}, expected ({w_shape[0]},)")
        inputs.append(ctx.tensor(2, "B"))
    constant = all(isinstance(ctx.value(i), np.ndarray) for i in range(1, len(inputs)))
    ctx.emit(ConvStep, inputs, [out], stride=tuple(strides2), padding=padding, pre_pad=pre_pad,
             dilation=tuple(dil2), groups=groups, constant_weights=constant,
             input_view=x4 if one_d else None, weight_view=w4 if one_d else None)


def lower_conv_transpose(ctx):
    shape = _spatial(ctx, "ConvTranspose")
    w_shape = ctx.shape(1)
    spatial, kernel = shape[2:], list(w_shape[2:])
    n = len(spatial)
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    out_pad = _ints(ctx, "output_padding", n, 0)
    if min(out_pad) < 0:
        ctx.fail(f"output_padding={out_pad}: expected sizes >= 0")
    groups = int(ctx.attr("group", 1))
    full = [s * (i - 1) + (k - 1) * d + 1 for i, k, s, d in zip(spatial, kernel, strides, dilations)]
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    output_shape = ctx.attr("output_shape")
    if output_shape is not None and len(output_shape):
        target = list(output_shape)[-n:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [i * s for i, s in zip(spatial, strides)]
    else:
        target = None
    if target is not None:
        begin, end = [], []
        for f, p, t in zip(full, out_pad, target):
            total = f + p - t
            if total < 0:  # a larger output than the transpose covers: zeros at the end
                begin.append(0)
                end.append(total)
                continue
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
    elif auto_pad == "VALID":
        begin, end = [0] * n, [0] * n
    else:
        pads = _ints(ctx, "pads", 2 * n, 0)
        begin, end = pads[:n], pads[n:]
    out_spatial = [f + p - b - e for f, p, b, e in zip(full, out_pad, begin, end)]
    if min(out_spatial) <= 0:
        ctx.fail(f"output size {out_spatial} is empty")
    one_d = n == 1
    x4 = shape if not one_d else (shape[0], shape[1], 1, shape[2])
    w4 = tuple(w_shape) if not one_d else (w_shape[0], w_shape[1], 1, w_shape[2])
    strides2, dil2 = _as_2d(strides, 1), _as_2d(dilations, 1)
    begin2, end2, out_pad2 = _as_2d(begin, 0), _as_2d(end, 0), _as_2d(out_pad, 0)
    direct = begin2 == end2 and min(begin2) >= 0 and all(
        p < s or p < d for p, s, d in zip(out_pad2, strides2, dil2))
    try:
        if n == 3:
            _, full4 = transpose_geometry_nd(x4, w4, tuple(strides2), 0, 0, groups,
                                             tuple(dil2), "ConvTranspose")
        else:
            _, full4 = transpose_geometry(x4, w4, tuple(strides2), 0, 0, groups, tuple(dil2))
    except (ValueError, TypeError) as error:
        ctx.fail(str(error))
    if not direct and int(np.prod(full4, dtype=object)) > INT32_MAX:
        # this path computes the whole transpose first, then crops it
        ctx.fail(f"the uncropped transpose {tuple(full4)} has more than {INT32_MAX} elements "
                 "(the kernels' int32 index range)")
    out = (shape[0], full4[1], *out_spatial)
    inputs = [ctx.tensor(0, "X"), ctx.tensor(1, "W")]
    if ctx.has(2):
        inputs.append(ctx.tensor(2, "B"))
    crop = None
    if not direct:  # pad-0 transpose, then crop begin/end and extend by output_padding
        crop = ([0, 0] + [-b for b in begin2],
                [0, 0] + [p - e for p, e in zip(out_pad2, end2)])
    ctx.emit(ConvTransposeStep, inputs, [out], stride=tuple(strides2), padding=tuple(begin2),
             output_padding=tuple(out_pad2), dilation=tuple(dil2), groups=groups, crop=crop,
             input_view=x4 if one_d else None, weight_view=w4 if one_d else None)


def pool_output_size(ctx, size, k, s, d, begin, end, ceil_mode):
    """The one pooling output-size rule (params.pool_output_size), failing the node."""
    try:
        out = params.pool_output_size(size, k, s, begin, d, ceil_mode, pad_end=end)
    except ValueError as error:
        ctx.fail(str(error))
    if out <= 0:
        ctx.fail(f"pooling window {k} (dilation {d}) is larger than the padded input {size}")
    return out


def _pool_geometry(ctx):
    shape = _spatial(ctx, ctx.node.op_type)
    spatial = shape[2:]
    n = len(spatial)
    kernel = _ints(ctx, "kernel_shape", n, 0)
    if min(kernel) < 1:
        ctx.fail(f"kernel_shape={kernel}: expected {n} sizes >= 1 (the attribute is required)")
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    for name, values in (("strides", strides), ("dilations", dilations)):
        if min(values) < 1:
            ctx.fail(f"{name}={values}: expected sizes >= 1")
    begin, end = resolve_pads(ctx, spatial, kernel, strides, dilations)
    for i, k, d, b, e in zip(spatial, kernel, dilations, begin, end):
        try:
            check_extent(i, b + e, k, d)
        except ValueError as error:
            ctx.fail(str(error))
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    if ctx.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-i // s) for i, s in zip(spatial, strides)]
    else:
        out = [pool_output_size(ctx, i, k, s, d, b, e, ceil_mode)
               for i, k, s, d, b, e in zip(spatial, kernel, strides, dilations, begin, end)]
    view = None if n != 1 else (shape[0], shape[1], 1, spatial[0])
    return (shape, (_as_2d(kernel, 1), _as_2d(strides, 1), _as_2d(begin, 0), _as_2d(end, 0),
                    _as_2d(out, 1), _as_2d(dilations, 1)), view, tuple(shape[:2]) + tuple(out))


def _pool3d_window(ctx, kernel, strides, begin, end, out, dil, out_shape):
    """The keyword arguments of max_pool3d / avg_pool3d for a 3-D ONNX pool: symmetric
    pads within half the window only (the 3-D kernels take torch's arguments)."""
    if begin != end:
        ctx.fail(f"3-D pooling supports symmetric pads only, got begin {begin}, end {end}")
    kw = dict(kernel_size=tuple(kernel), stride=tuple(strides), padding=tuple(begin),
              ceil_mode=bool(ctx.attr("ceil_mode", 0)))
    try:
        geo = pool_geometry_nd(ctx.shape(0), **kw, dilation=tuple(dil))
    except (ValueError, TypeError) as error:
        ctx.fail(str(error))
    if geo.output_shape != tuple(out_shape):
        ctx.fail(f"output shape {tuple(out_shape)} differs from the 3-D pool's "
                 f"{geo.output_shape}")
    return kw


def lower_max_pool(ctx):
    shape, (kernel, strides, begin, end, out, dil), view, out_shape = _pool_geometry(ctx)
    x = ctx.tensor(0, "X")
    if len(shape) == 5:
        kw = dict(_pool3d_window(ctx, kernel, strides, begin, end, out, dil, out_shape),
                  dilation=tuple(dil))
        if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
            if int(ctx.attr("storage_order", 0)):
                ctx.fail("storage_order=1 is supported for 2-D pooling only")
            volume = int(np.prod(shape[2:]))

            def volume_to_host(indices):  # int32 per-volume -> ONNX int64 flat indices
                idx = indices.get().astype(np.int64)
                vol = np.arange(int(np.prod(out_shape[:2]))).reshape(out_shape[:2] +
                                                                      (1, 1, 1))
                return vol * volume + idx

            step = ctx.emit(CallStep, [x], [out_shape, out_shape],
                            call=lambda t: list(F.max_pool3d(t, return_indices=True, **kw)),
                            description=f"max pool 3-D {kernel}/{strides} with indices")
            ctx.builder.values[step.outputs[1]].dtype = np.dtype(np.int32)
            ctx.builder.values[step.outputs[1]].to_host = volume_to_host
            return
        ctx.emit(CallStep, [x], [out_shape], call=lambda t: [F.max_pool3d(t, **kw)],
                 description=f"max pool 3-D {kernel}/{strides}")
        return
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        storage_order = int(ctx.attr("storage_order", 0))
        H, W = (1, shape[2]) if view else shape[2:]

        def to_host(indices):  # int32 per-plane row-major -> ONNX int64 flat indices
            idx = indices.get().astype(np.int64)
            plane = np.arange(int(np.prod(out_shape[:2]))).reshape(out_shape[:2] + (1,) *
                                                                      (len(out_shape) - 2))
            if storage_order:
                idx = (idx % W) * H + idx // W
            return plane * (H * W) + idx

        step = ctx.emit(CallStep, [x], [out_shape, out_shape],
                        call=max_pool_with_indices_call(kernel, strides, begin, out, dil, view,
                                                         out_shape),
                        description=f"max pool {kernel}/{strides} with indices")
        ctx.builder.values[step.outputs[1]].dtype = np.dtype(np.int32)
        ctx.builder.values[step.outputs[1]].to_host = to_host
        return
    ctx.emit(CallStep, [x], [out_shape],
             call=max_pool_call(kernel, strides, begin, out, dil, view, out_shape),
             writes_out=True, description=f"max pool {kernel}/{strides}",
             max_pool=(tuple(kernel), tuple(strides), tuple(begin), tuple(out))
             if view is None and tuple(dil) == (1, 1) else None)


def lower_average_pool(ctx):
    shape, (kernel, strides, begin, end, out, dil), view, out_shape = _pool_geometry(ctx)
    include = bool(ctx.attr("count_include_pad", 0))
    if len(shape) == 5:
        if max(dil) > 1:
            ctx.fail(f"dilations={dil}: 3-D average pooling supports dilation 1 only")
        kw = dict(_pool3d_window(ctx, kernel, strides, begin, end, out, dil, out_shape),
                  count_include_pad=include)
        ctx.emit(CallStep, [ctx.tensor(0, "X")], [out_shape],
                 call=lambda t: [F.avg_pool3d(t, **kw)],
                 description=f"average pool 3-D {kernel}/{strides}")
        return
    # every window whole (no padding, no window past the input's end): a fixed average
    whole = view is None and whole_windows(shape[2:], out, kernel, strides, (*begin, *end),
                                           dil)
    ctx.emit(CallStep, [ctx.tensor(0, "X")], [out_shape],
             call=avg_pool_call(kernel, strides, (*begin, *end), out, dil, include, view,
                                 out_shape),
             writes_out=True, description=f"average pool {kernel}/{strides}",
             pool_window=(kernel, strides, dil, include) if whole else None)


def _global_pool(ctx, reducer: str):
    shape = ctx.shape(0)
    if len(shape) < 3:
        ctx.fail(f"expected an input (N, C, spatial...), got shape {shape}")
    plane = int(np.prod(shape[2:]))
    view = (shape[0], shape[1], 1, plane)
    out_shape = tuple(shape[:2]) + (1,) * (len(shape) - 2)
    if reducer == "max":
        call = max_pool_call((1, plane), (1, plane), (0, 0), (1, 1), (1, 1), view, out_shape)
    else:
        call = avg_pool_call((1, plane), (1, plane), (0, 0, 0, 0), (1, 1), (1, 1), False, view,
                              out_shape)
    ctx.emit(CallStep, [ctx.tensor(0, "X")], [out_shape], call=call, writes_out=True,
             description=f"global {reducer} pool")


def lower_global_average_pool(ctx):
    _global_pool(ctx, "average")


def lower_global_max_pool(ctx):
    _global_pool(ctx, "max")


def lower_lrn(ctx):
    shape = ctx.shape(0)
    if ctx.attr("size") is None:
        ctx.fail("attribute size is required")
    # the checks lrn() makes at run time, made now (a ValueError becomes a PlanError)
    size = check_int("size", ctx.attr("size"), 1)
    alpha, beta, bias = (check_finite(name, float(ctx.attr(name, default)))
                         for name, default in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    ctx.emit(CallStep, [ctx.tensor(0, "X")], [shape],
             call=lambda x: [lrn_ops.lrn(x, size, alpha, beta, bias)],
             description=f"lrn size={size}")


def lower_batch_norm(ctx):
    if int(ctx.attr("training_mode", 0)) or len([o for o in ctx.node.outputs if o]) > 1:
        ctx.fail("training mode (running statistics outputs) is not supported; export the "
                 "model in eval mode")
    shape = ctx.shape(0)
    C = shape[1] if len(shape) > 1 else None
    params = [ctx.const(i, what) for i, what in
              ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var"))]
    for p, what in zip(params, ("scale", "B", "input_mean", "input_var")):
        if p.shape != (C,):
            ctx.fail(f"{what} has shape {p.shape}, expected ({C},)")
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(ctx.attr("epsilon", 1e-5)))
    shift = beta - mean * scale
    if ctx.all_const():
        x = ctx.value(0).astype(np.float64)
        bshape = (1, C) + (1,) * (len(shape) - 2)
        ctx.set_const((x * scale.reshape(bshape) + shift.reshape(bshape)).astype(np.float32))
        return
    names = [ctx.add_constant("scale", scale), ctx.add_constant("shift", shift)]
    ctx.emit(AffineStep, [ctx.tensor(0, "X")] + names, [shape])


def lower_softmax(ctx):
    shape = ctx.shape(0)
    rank = len(shape)
    default = -1 if ctx.node.opset >= 13 else 1
    axis = int(ctx.attr("axis", default))
    if not -rank <= axis < rank:
        ctx.fail(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    if ctx.node.opset >= 13:
        call = lambda x: [softmax_ops.softmax(x, axis)]  # noqa: E731
    else:  # opset < 13: softmax over the flattened axes [axis:]
        rows = int(np.prod(shape[:axis], dtype=np.int64))
        cols = int(np.prod(shape[axis:], dtype=np.int64))
        call = lambda x: [softmax_ops.softmax(x.reshape(rows, cols), 1).reshape(shape)]  # noqa
    ctx.emit(CallStep, [ctx.tensor(0, "input")], [shape], call=call,
             description=f"softmax axis={axis}")


def lower_gemm(ctx):
    a, b = ctx.shape(0), ctx.shape(1)
    if len(a) != 2 or len(b) != 2:
        ctx.fail(f"A and B must be 2-D, got {a} and {b}")
    trans_a, trans_b = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    M, K = a[::-1] if trans_a else a
    Kb, N = b[::-1] if trans_b else b
    if K != Kb:
        ctx.fail(f"inner dimensions differ: A {a}{' (transposed)' * trans_a}, "
                 f"B {b}{' (transposed)' * trans_b}")
    inputs = [ctx.tensor(0, "A"), ctx.tensor(1, "B")]
    if ctx.has(2):
        c = ctx.shape(2)
        try:
            if len(c) > 2 or broadcast_shape(c, (M, N)) != (M, N):
                raise ValueError
        except ValueError:
            ctx.fail(f"C has shape {c}, which does not broadcast to ({M}, {N})")
        inputs.append(ctx.tensor(2, "C"))
    ctx.emit(GemmStep, inputs, [(M, N)], alpha=float(ctx.attr("alpha", 1.0)),
             beta=float(ctx.attr("beta", 1.0)), trans_a=trans_a, trans_b=trans_b,
             constant_b=isinstance(ctx.value(1), np.ndarray))


def lower_matmul(ctx):
    a, b = ctx.shape(0), ctx.shape(1)
    if ctx.all_const():
        ctx.set_const(np.matmul(ctx.value(0), ctx.value(1)))
        return
    try:
        *_, out = gemm_ops.matmul_shapes(a, b)
    except ValueError as error:
        ctx.fail(str(error))
    ctx.emit(MatMulStep, [ctx.tensor(0, "A"), ctx.tensor(1, "B")], [out])


HANDLERS = {
    "Conv": lower_conv, "ConvTranspose": lower_conv_transpose,
    "MaxPool": lower_max_pool, "AveragePool": lower_average_pool,
    "GlobalAveragePool": lower_global_average_pool, "GlobalMaxPool": lower_global_max_pool,
    "LRN": lower_lrn, "BatchNormalization": lower_batch_norm, "Softmax": lower_softmax,
    "Gemm": lower_gemm, "MatMul": lower_matmul,
}
