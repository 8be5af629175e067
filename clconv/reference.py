"""Float64 numpy reference of every op and gradient: the oracle the OpenCL ops are tested against.

Semantics, argument names and defaults follow `torch.nn.functional` (NCHW layout).  Inputs may
be any numeric numpy array (or array-like); every result is a float64 array (pooling indices are
int64).  Argument normalisation and output sizes come from `params`, shared with the device ops.
The code favours clarity over speed but stays vectorised: small shapes take well under a
millisecond.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import params

__all__ = [
    # forward
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "relu", "leaky_relu", "sigmoid", "tanh", "linear", "softmax", "log_softmax",
    "cross_entropy", "batch_norm",
    "conv1d", "conv_transpose1d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d",
    # backward
    "conv2d_backward", "conv_transpose2d_backward", "max_pool2d_backward",
    "avg_pool2d_backward", "adaptive_avg_pool2d_backward", "relu_backward",
    "leaky_relu_backward", "sigmoid_backward", "tanh_backward", "linear_backward",
    "softmax_backward", "log_softmax_backward", "cross_entropy_backward",
    "batch_norm_backward", "conv1d_backward", "conv_transpose1d_backward",
    "max_pool1d_backward", "avg_pool1d_backward", "adaptive_avg_pool1d_backward",
]


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _nchw(name: str, x) -> np.ndarray:
    x = _f64(x)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) array, got shape {x.shape}")
    return x


def _windows(x, kernel, stride, dilation, pads, out_hw, fill=0.0) -> np.ndarray:
    """View (N, C, OH, OW, kH, kW) of the windows of `x` padded by pads=((top, bottom), (left,
    right)) with `fill`; extra `fill` is added at the bottom/right when windows overrun it
    (pooling's ceil mode), rows/columns no window reaches are ignored."""
    (pt, pb), (pl, pr) = pads
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    eh, ew = dh * (kernel[0] - 1) + 1, dw * (kernel[1] - 1) + 1  # dilated window extent
    pb = max(pb, (oh - 1) * sh + eh - x.shape[2] - pt)
    pr = max(pr, (ow - 1) * sw + ew - x.shape[3] - pl)
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    view = sliding_window_view(padded, (eh, ew), axis=(2, 3))
    return view[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


def _taps_add(out, contrib, stride, dilation):
    """out[:, :, i*d + h*s, j*d + w*s] += contrib[:, :, i, j, h, w]: the scatter that is the
    adjoint of `_windows` (for the unpadded `out`)."""
    _, _, kh, kw, h, w = contrib.shape
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh : i * dh + (h - 1) * sh + 1 : sh,
                j * dw : j * dw + (w - 1) * sw + 1 : sw] += contrib[:, :, i, j]
    return out


def _check_out(name, out_hw):
    if min(out_hw) <= 0:
        raise ValueError(f"{name}: computed output size {tuple(out_hw)} is too small")


# --------------------------------------------------------------------------- convolution

def _conv_geometry(input, weight, stride, padding, dilation, groups):
    x, w = _nchw("input", input), _nchw("weight", weight)
    stride = params.pair("stride", stride, minimum=1)
    dilation = params.pair("dilation", dilation, minimum=1)
    kernel = w.shape[2:]
    pads = params.conv_padding(padding, kernel, dilation, stride)
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups or w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"conv2d: input {x.shape}, weight {w.shape} and groups={groups} disagree")
    out_hw = [params.conv_output_size(x.shape[2 + a], kernel[a], stride[a], *pads[a], dilation[a])
              for a in range(2)]
    _check_out("conv2d", out_hw)
    return x, w, kernel, stride, dilation, pads, out_hw


def _grouped(a, groups, axis):
    """Split `axis` of `a` into (groups, size/groups)."""
    return a.reshape(a.shape[:axis] + (groups, -1) + a.shape[axis + 1 :])


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w, kernel, stride, dilation, pads, out_hw = _conv_geometry(
        input, weight, stride, padding, dilation, groups)
    cols = _grouped(_windows(x, kernel, stride, dilation, pads, out_hw), groups, 1)
    out = np.einsum("ngchwij,gocij->ngohw", cols, _grouped(w, groups, 0), optimize=True)
    out = out.reshape(x.shape[0], w.shape[0], *out_hw)
    if bias is not None:
        out += _f64(bias).reshape(1, -1, 1, 1)
    return out


def _transpose_scatter(x, w, stride, dilation, groups, size):
    """Zero buffer of `size` (>= the full extent) holding sum_c x[n, c, h, w] * w[c, o, i, j]
    at (o, h*s + i*d, w*s + j*d): the uncropped transposed convolution."""
    n, _, h, wd = x.shape
    contrib = np.einsum("ngchw,gcoij->ngoijhw", _grouped(x, groups, 1), _grouped(w, groups, 0),
                        optimize=True)
    contrib = contrib.reshape(n, -1, *w.shape[2:], h, wd)
    out = np.zeros((n, contrib.shape[1], *size))
    return _taps_add(out, contrib, stride, dilation)


def _transpose_geometry(input, weight, stride, padding, output_padding, groups, dilation):
    x, w = _nchw("input", input), _nchw("weight", weight)
    stride = params.pair("stride", stride, minimum=1)
    padding = params.pair("padding", padding, minimum=0)
    output_padding = params.pair("output_padding", output_padding, minimum=0)
    dilation = params.pair("dilation", dilation, minimum=1)
    if groups < 1 or x.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise ValueError(f"conv_transpose2d: input {x.shape}, weight {w.shape} and "
                         f"groups={groups} disagree")
    out_hw = [params.conv_transpose_output_size(x.shape[2 + a], w.shape[2 + a], stride[a],
                                                padding[a], output_padding[a], dilation[a])
              for a in range(2)]
    _check_out("conv_transpose2d", out_hw)
    return x, w, stride, padding, dilation, out_hw


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    x, w, stride, padding, dilation, out_hw = _transpose_geometry(
        input, weight, stride, padding, output_padding, groups, dilation)
    size = [o + 2 * p for o, p in zip(out_hw, padding)]
    full = _transpose_scatter(x, w, stride, dilation, groups, size)
    out = full[:, :, padding[0] : padding[0] + out_hw[0], padding[1] : padding[1] + out_hw[1]]
    if bias is not None:
        out = out + _f64(bias).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv2d; None where output_mask is False."""
    x, w, kernel, stride, dilation, pads, out_hw = _conv_geometry(
        input, weight, stride, padding, dilation, groups)
    g = _f64(grad_output)
    if g.shape != (x.shape[0], w.shape[0], *out_hw):
        raise ValueError(f"conv2d_backward: grad_output shape {g.shape} does not match the output")
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        # Full convolution with the rotated kernel = transposed convolution, cropped to the
        # input inside the (possibly asymmetric) padding.
        (pt, pb), (pl, pr) = pads
        size = (x.shape[2] + pt + pb, x.shape[3] + pl + pr)
        full = _transpose_scatter(g, w, stride, dilation, groups, size)
        grad_input = np.ascontiguousarray(full[:, :, pt : pt + x.shape[2], pl : pl + x.shape[3]])
    if output_mask[1]:
        cols = _grouped(_windows(x, kernel, stride, dilation, pads, out_hw), groups, 1)
        grad_weight = np.einsum("ngchwij,ngohw->gocij", cols, _grouped(g, groups, 1),
                                optimize=True).reshape(w.shape)
    if output_mask[2]:
        grad_bias = g.sum(axis=(0, 2, 3))
    return grad_input, grad_weight, grad_bias


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv_transpose2d; None where output_mask is False."""
    x, w, stride, padding, dilation, out_hw = _transpose_geometry(
        input, weight, stride, padding, output_padding, groups, dilation)
    g = _f64(grad_output)
    if g.shape != (x.shape[0], w.shape[1] * groups, *out_hw):
        raise ValueError(f"conv_transpose2d_backward: grad_output shape {g.shape} does not "
                         f"match the output")
    grad_input = grad_weight = grad_bias = None
    if output_mask[0] or output_mask[1]:
        # Input pixel (h, w) reached output (h*s + i*d - p, w*s + j*d - p) through tap (i, j):
        # the windows of the padded grad_output at the input's positions.
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
        cols = _grouped(_windows(g, w.shape[2:], stride, dilation, pads, x.shape[2:]), groups, 1)
    if output_mask[0]:
        grad_input = np.einsum("ngohwij,gcoij->ngchw", cols, _grouped(w, groups, 0),
                               optimize=True).reshape(x.shape)
    if output_mask[1]:
        grad_weight = np.einsum("ngohwij,ngchw->gcoij", cols, _grouped(x, groups, 1),
                                optimize=True).reshape(w.shape)
    if output_mask[2]:
        grad_bias = g.sum(axis=(0, 2, 3))
    return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------- pooling

def _pool_geometry(name, shape, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = params.pair("kernel_size", kernel_size, minimum=1)
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):  # torch: [] too
        stride = kernel
    stride = params.pair("stride", stride, minimum=1)
    padding = params.pair("padding", padding, minimum=0)
    dilation = params.pair("dilation", dilation, minimum=1)
    if len(shape) != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) shape, got {tuple(shape)}")
    out_hw = [params.pool_output_size(shape[2 + a], kernel[a], stride[a], padding[a], dilation[a],
                                      ceil_mode) for a in range(2)]
    _check_out(name, out_hw)
    return kernel, stride, padding, dilation, out_hw


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Padding never wins (-inf); ties take the first in row-major window order, NaN wins and
    the last NaN is taken (as torch).
    Indices are flat positions in each (n, c) plane of H*W."""
    x = _nchw("input", input)
    kernel, stride, padding, dilation, out_hw = _pool_geometry(
        "max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    cols = _windows(x, kernel, stride, dilation, pads, out_hw, fill=-np.inf)
    cols = cols.reshape(cols.shape[:4] + (-1,))
    tap = np.argmax(cols, axis=-1)
    nan = np.isnan(cols)
    if nan.any():  # torch keeps the last NaN of a window
        tap = np.where(nan.any(axis=-1), cols.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1),
                       tap)
    out = np.take_along_axis(cols, tap[..., None], axis=-1)[..., 0]
    if not return_indices:
        return out
    oh = np.arange(out_hw[0]).reshape(-1, 1)
    ow = np.arange(out_hw[1]).reshape(1, -1)
    row = oh * stride[0] - padding[0] + (tap // kernel[1]) * dilation[0]
    col = ow * stride[1] - padding[1] + (tap % kernel[1]) * dilation[1]
    return out, (row * x.shape[3] + col).astype(np.int64)


def max_pool2d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    """Scatter-add grad_output to the input positions named by `indices` (the forward's
    window, which the device op may take, changes nothing here)."""
    g = _f64(grad_output)
    n, c, h, w = input_shape
    grad = np.zeros((n * c, h * w))
    rows = np.arange(n * c).reshape(-1, 1)
    np.add.at(grad, (rows, np.asarray(indices).reshape(n * c, -1)), g.reshape(n * c, -1))
    return grad.reshape(n, c, h, w)


def _avg_divisors(size, kernel, stride, padding, out, count_include_pad):
    """Divisor of each output position along one axis, with torch's rule (the product of the
    two axes' divisors is the 2-D divisor)."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    pool = end - start
    if count_include_pad:
        return pool
    return np.minimum(end, size) - np.maximum(start, 0)


def _avg_setup(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override=None):
    kernel, stride, padding, _, out_hw = _pool_geometry(
        "avg_pool2d", shape, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        return kernel, stride, padding, out_hw, np.full(out_hw, float(divisor_override))
    div = [_avg_divisors(shape[2 + a], kernel[a], stride[a], padding[a], out_hw[a],
                         count_include_pad) for a in range(2)]
    return kernel, stride, padding, out_hw, np.outer(div[0], div[1]).astype(np.float64)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    x = _nchw("input", input)
    kernel, stride, padding, out_hw, divisor = _avg_setup(
        x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    cols = _windows(x, kernel, stride, (1, 1), pads, out_hw)
    return cols.sum(axis=(4, 5)) / divisor


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    kernel, stride, padding, out_hw, divisor = _avg_setup(
        input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override)
    g = _f64(grad_output) / divisor
    n, c, h, w = input_shape
    size = [(o - 1) * s + k for o, s, k in zip(out_hw, stride, kernel)]
    full = np.zeros((n, c, max(size[0], h + padding[0]), max(size[1], w + padding[1])))
    contrib = np.broadcast_to(g[:, :, None, None], (n, c, *kernel, *out_hw))
    _taps_add(full, contrib, stride, (1, 1))
    return np.ascontiguousarray(full[:, :, padding[0] : padding[0] + h,
                                     padding[1] : padding[1] + w])


def _adaptive_matrix(in_size, out_size):
    """(out, in) matrix averaging each adaptive window along one axis."""
    m = np.zeros((out_size, in_size))
    for i in range(out_size):
        start, end = params.adaptive_bounds(i, in_size, out_size)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _adaptive_matrices(input_shape, output_size):
    if len(input_shape) != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D shape, got {tuple(input_shape)}")
    out = params.pair("output_size", output_size, minimum=1)
    return [_adaptive_matrix(input_shape[2 + a], out[a]) for a in range(2)]


def adaptive_avg_pool2d(input, output_size):
    x = _nchw("input", input)
    mh, mw = _adaptive_matrices(x.shape, output_size)
    return np.einsum("ph,nchw,qw->ncpq", mh, x, mw, optimize=True)


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    g = _nchw("grad_output", grad_output)
    mh, mw = _adaptive_matrices(input_shape, g.shape[2:])
    return np.einsum("ph,ncpq,qw->nchw", mh, g, mw, optimize=True)


# --------------------------------------------------------------------------- 1-D
# torch's 1-D ops are its 2-D ones over planes of height 1; so are these (torch is the
# independent check of both).

def _planes(x):
    x = _f64(x)
    if x.ndim != 3:
        raise ValueError(f"expected a 3-D (N, C, L) array, got shape {x.shape}")
    return x[:, :, None, :]


def _lines(x):
    return None if x is None else x[:, :, 0, :]


def _height1(name, value, minimum):
    return (1, params.single(name, value, minimum=minimum))


def _pad1(padding):
    return padding if isinstance(padding, str) else \
        (0, params.single("padding", padding, minimum=0))


def _window1(kernel_size, stride, padding, dilation=1):
    k = params.single("kernel_size", kernel_size, minimum=1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        params.single("stride", stride, minimum=1)
    return ((1, k), (1, s), (0, params.single("padding", padding, minimum=0)),
            _height1("dilation", dilation, 1))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _lines(conv2d(_planes(input), _planes(weight), bias, _height1("stride", stride, 1),
                         _pad1(padding), _height1("dilation", dilation, 1), groups))


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    gx, gw, gb = conv2d_backward(_planes(grad_output), _planes(input), _planes(weight),
                                 _height1("stride", stride, 1), _pad1(padding),
                                 _height1("dilation", dilation, 1), groups, output_mask)
    return _lines(gx), _lines(gw), gb


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _lines(conv_transpose2d(
        _planes(input), _planes(weight), bias, _height1("stride", stride, 1), _pad1(padding),
        (0, params.single("output_padding", output_padding, minimum=0)), groups,
        _height1("dilation", dilation, 1)))


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, output_mask=(True, True, True)):
    gx, gw, gb = conv_transpose2d_backward(
        _planes(grad_output), _planes(input), _planes(weight), _height1("stride", stride, 1),
        _pad1(padding), (0, params.single("output_padding", output_padding, minimum=0)),
        groups, _height1("dilation", dilation, 1), output_mask)
    return _lines(gx), _lines(gw), gb


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Indices are positions along L."""
    out = max_pool2d(_planes(input), *_window1(kernel_size, stride, padding, dilation),
                     ceil_mode, return_indices)
    return (_lines(out[0]), _lines(out[1])) if return_indices else _lines(out)


def max_pool1d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    n, c, length = input_shape
    return _lines(max_pool2d_backward(_planes(grad_output), np.asarray(indices),
                                      (n, c, 1, length)))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    kernel, stride, padding, _ = _window1(kernel_size, stride, padding)
    return _lines(avg_pool2d(_planes(input), kernel, stride, padding, ceil_mode,
                             count_include_pad))


def avg_pool1d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    kernel, stride, padding, _ = _window1(kernel_size, stride, padding)
    n, c, length = input_shape
    return _lines(avg_pool2d_backward(_planes(grad_output), (n, c, 1, length), kernel, stride,
                                      padding, ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input, output_size):
    return _lines(adaptive_avg_pool2d(_planes(input),
                                      (1, params.single("output_size", output_size, minimum=1))))


def adaptive_avg_pool1d_backward(grad_output, input_shape):
    n, c, length = input_shape
    return _lines(adaptive_avg_pool2d_backward(_planes(grad_output), (n, c, 1, length)))


# --------------------------------------------------------------------------- activations

def relu(input):
    return np.maximum(_f64(input), 0.0)


def leaky_relu(input, negative_slope=0.01):
    x = _f64(input)
    return np.where(x > 0, x, x * negative_slope)


def sigmoid(input):
    x = _f64(input)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(input):
    return np.tanh(_f64(input))


def relu_backward(grad_output, output):
    return np.where(_f64(output) > 0, _f64(grad_output), 0.0)


def leaky_relu_backward(grad_output, output, negative_slope=0.01):
    """From the output, so valid for negative_slope >= 0."""
    g = _f64(grad_output)
    return np.where(_f64(output) > 0, g, g * negative_slope)


def sigmoid_backward(grad_output, output):
    out = _f64(output)
    return _f64(grad_output) * out * (1.0 - out)


def tanh_backward(grad_output, output):
    out = _f64(output)
    return _f64(grad_output) * (1.0 - out * out)


# --------------------------------------------------------------------------- linear

def linear(input, weight, bias=None):
    """input (*, in_features) @ weight(out, in).T + bias."""
    out = _f64(input) @ _f64(weight).T
    if bias is not None:
        out = out + _f64(bias)
    return out


def linear_backward(grad_output, input, weight):
    """(grad_input, grad_weight, grad_bias) of linear."""
    g, x, w = _f64(grad_output), _f64(input), _f64(weight)
    g2 = g.reshape(-1, w.shape[0])
    return g @ w, g2.T @ x.reshape(-1, w.shape[1]), g2.sum(axis=0)


# --------------------------------------------------------------------------- softmax and loss

def softmax(input, dim):
    x = _f64(input)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def log_softmax(input, dim):
    x = _f64(input)
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def softmax_backward(grad_output, output, dim):
    g, out = _f64(grad_output), _f64(output)
    return out * (g - (g * out).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_output, output, dim):
    g, out = _f64(grad_output), _f64(output)
    return g - np.exp(out) * g.sum(axis=dim, keepdims=True)


def _check_targets(x, target):
    t = np.asarray(target)
    if x.ndim != 2 or t.shape != (x.shape[0],) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"cross_entropy: expected (N, C) logits and (N,) integer targets, got "
                         f"{x.shape} and {t.shape} {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= x.shape[1]):
        raise ValueError(f"cross_entropy: targets must lie in [0, {x.shape[1]})")
    return t


def cross_entropy(input, target):
    """Mean over N of -log_softmax(input, 1)[n, target[n]]; a 0-d float64 array."""
    x = _f64(input)
    t = _check_targets(x, target)
    picked = np.take_along_axis(log_softmax(x, 1), t.reshape(-1, 1), axis=1)
    return np.asarray(-picked.mean(), dtype=np.float64)


def cross_entropy_backward(input, target, grad_output=1.0):
    """Gradient of the mean cross_entropy w.r.t. input, times grad_output:
    (softmax(input) - onehot(target)) / N."""
    x = _f64(input)
    t = _check_targets(x, target)
    grad = softmax(x, 1)
    grad[np.arange(x.shape[0]), t] -= 1.0
    return grad * (float(grad_output) / x.shape[0])


# --- batch normalisation ---------------------------------------------------------------

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Like torch.nn.functional.batch_norm, without updating the running statistics.

    Training mode normalises by the batch mean and biased variance over (N, H, W)."""
    x = _nchw("input", input)
    if training:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
    else:
        mean, var = _f64(running_mean), _f64(running_var)
    out = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    if weight is not None:
        out = out * _f64(weight)[None, :, None, None]
    if bias is not None:
        out = out + _f64(bias)[None, :, None, None]
    return out


def batch_norm_backward(grad_output, input, weight=None, eps=1e-5):
    """Gradients of training-mode batch_norm: (grad_input, grad_weight, grad_bias)."""
    g, x = _nchw("grad_output", grad_output), _nchw("input", input)
    axes = (0, 2, 3)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * invstd
    sum_g = g.sum(axis=axes, keepdims=True)
    sum_gx = (g * xhat).sum(axis=axes, keepdims=True)
    w = _f64(weight)[None, :, None, None] if weight is not None else 1.0
    grad_input = w * invstd * (g - sum_g / count - xhat * sum_gx / count)
    if weight is None:
        return grad_input, None, None
    return grad_input, sum_gx.reshape(-1), sum_g.reshape(-1)
