"""Float64 numpy reference of the 3-D ops and their gradients (NCDHW), the oracle the
OpenCL 3-D ops are tested against.

Written as a loop over the window's taps, each tap a strided slice of the padded
input: short and plainly torch's definition. Semantics,
argument names and defaults follow torch.nn.functional; argument normalisation and
output sizes come from `params`, shared with the device ops. Results are float64
(pooling indices int64).
"""
from __future__ import annotations

import itertools

import numpy as np

from . import params

__all__ = [
    "conv3d", "conv3d_backward", "conv_transpose3d", "conv_transpose3d_backward",
    "max_pool3d", "max_pool3d_backward", "avg_pool3d", "avg_pool3d_backward",
]

SPATIAL = 3


def _f64(name, x, rank=SPATIAL + 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != rank:
        raise ValueError(f"{name}: expected a {rank}-D array, got shape {x.shape}")
    return x


def _tap_slices(tap, stride, dilation, out):
    """The slice of a padded input that tap `tap` sees at every output position."""
    return tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                 for k, s, d, o in zip(tap, stride, dilation, out))


def _padded(x, pads, out, kernel, stride, dilation, fill):
    """x padded by pads ((begin, end) per axis) with `fill`, extended at the end where a
    window overruns it (pooling's ceil mode)."""
    widths = [(0, 0), (0, 0)]
    for a, (b, e) in enumerate(pads):
        need = (out[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
        widths.append((b, max(e, need - x.shape[2 + a] - b)))
    return np.pad(x, widths, constant_values=fill)


def _grouped(a, groups, axis):
    return a.reshape(a.shape[:axis] + (groups, -1) + a.shape[axis + 1:])


# --------------------------------------------------------------------------- convolution

def _conv_setup(x, w, stride, padding, dilation, groups):
    kernel = w.shape[2:]
    stride = params.ntuple("stride", stride, SPATIAL, minimum=1)
    dilation = params.ntuple("dilation", dilation, SPATIAL, minimum=1)
    pads = params.conv_padding(padding, kernel, dilation, stride)
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups or \
            w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"conv3d: input {x.shape}, weight {w.shape} and groups={groups} "
                         "disagree")
    out = tuple(params.conv_output_size(x.shape[2 + a], kernel[a], stride[a], *pads[a],
                                        dilation[a]) for a in range(SPATIAL))
    if min(out) <= 0:
        raise ValueError(f"conv3d: computed output size {out} is too small")
    return kernel, stride, dilation, pads, out


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w = _f64("input", input), _f64("weight", weight)
    kernel, stride, dilation, pads, out = _conv_setup(x, w, stride, padding, dilation, groups)
    xp = _grouped(_padded(x, pads, out, kernel, stride, dilation, 0.0), groups, 1)
    wg = _grouped(w, groups, 0)
    y = np.zeros((x.shape[0], groups, w.shape[0] // groups, *out))
    for tap in itertools.product(*map(range, kernel)):
        cols = xp[(slice(None),) * 3 + _tap_slices(tap, stride, dilation, out)]
        y += np.einsum("ngcdhw,goc->ngodhw", cols, wg[(Ellipsis,) + tap])
    y = y.reshape(x.shape[0], w.shape[0], *out)
    if bias is not None:
        y += np.asarray(bias, np.float64).reshape((1, -1) + (1,) * SPATIAL)
    return y


def _conv_input_grad(g, w, in_shape, kernel, stride, dilation, pads, out, groups):
    """The adjoint of conv3d's input: sum of grad_output * weight scattered back."""
    n, c = in_shape[:2]
    size = [in_shape[2 + a] + pads[a][0] + max(pads[a][1], 0) +
            (out[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
            for a in range(SPATIAL)]
    full = np.zeros((n, groups, c // groups, *size))
    gg, wg = _grouped(g, groups, 1), _grouped(w, groups, 0)
    for tap in itertools.product(*map(range, kernel)):
        full[(slice(None),) * 3 + _tap_slices(tap, stride, dilation, out)] += np.einsum(
            "ngodhw,goc->ngcdhw", gg, wg[(Ellipsis,) + tap])
    crop = tuple(slice(p, p + s) for (p, _), s in zip(pads, in_shape[2:]))
    return full.reshape(n, c, *size)[(slice(None),) * 2 + crop]


def _conv_weight_grad(x, g, w_shape, kernel, stride, dilation, pads, out, groups):
    xp = _grouped(_padded(x, pads, out, kernel, stride, dilation, 0.0), groups, 1)
    gg = _grouped(g, groups, 1)
    grad = np.zeros((groups, w_shape[0] // groups, w_shape[1], *kernel))
    for tap in itertools.product(*map(range, kernel)):
        cols = xp[(slice(None),) * 3 + _tap_slices(tap, stride, dilation, out)]
        grad[(Ellipsis,) + tap] = np.einsum("ngcdhw,ngodhw->goc", cols, gg)
    return grad.reshape(w_shape)


def conv3d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    x, w = _f64("input", input), _f64("weight", weight)
    g = _f64("grad_output", grad_output)
    kernel, stride, dilation, pads, out = _conv_setup(x, w, stride, padding, dilation, groups)
    grad_input = _conv_input_grad(g, w, x.shape, kernel, stride, dilation, pads, out,
                                  groups) if output_mask[0] else None
    grad_weight = _conv_weight_grad(x, g, w.shape, kernel, stride, dilation, pads, out,
                                    groups) if output_mask[1] else None
    grad_bias = g.sum(axis=(0, 2, 3, 4)) if output_mask[2] else None
    return grad_input, grad_weight, grad_bias


def _transpose_setup(x, w, stride, padding, output_padding, groups, dilation):
    kernel = w.shape[2:]
    stride = params.ntuple("stride", stride, SPATIAL, minimum=1)
    padding = params.ntuple("padding", padding, SPATIAL, minimum=0)
    output_padding = params.ntuple("output_padding", output_padding, SPATIAL, minimum=0)
    dilation = params.ntuple("dilation", dilation, SPATIAL, minimum=1)
    if groups < 1 or x.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise ValueError(f"conv_transpose3d: input {x.shape}, weight {w.shape} and "
                         f"groups={groups} disagree")
    size = tuple(params.conv_transpose_output_size(x.shape[2 + a], kernel[a], stride[a],
                                                   padding[a], output_padding[a], dilation[a])
                 for a in range(SPATIAL))
    if min(size) <= 0:
        raise ValueError(f"conv_transpose3d: computed output size {size} is too small")
    # the forward convolution from the output (N, C_out, *size) to the input
    out_shape = (x.shape[0], w.shape[1] * groups, *size)
    pads = tuple((p, p) for p in padding)
    return kernel, stride, dilation, pads, out_shape


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    x, w = _f64("input", input), _f64("weight", weight)
    kernel, stride, dilation, pads, out_shape = _transpose_setup(
        x, w, stride, padding, output_padding, groups, dilation)
    y = _conv_input_grad(x, w, out_shape, kernel, stride, dilation, pads, x.shape[2:], groups)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape((1, -1) + (1,) * SPATIAL)
    return y


def conv_transpose3d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1,
                              output_mask=(True, True, True)):
    x, w = _f64("input", input), _f64("weight", weight)
    g = _f64("grad_output", grad_output)
    kernel, stride, dilation, pads, out_shape = _transpose_setup(
        x, w, stride, padding, output_padding, groups, dilation)
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:  # the forward convolution of grad_output, at the input's positions
        # (an output_padding of stride or more, under a larger dilation, gives it more)
        full = conv3d(g, w, None, stride, [p for p, _ in pads], dilation, groups)
        grad_input = full[(slice(None),) * 2 + tuple(slice(0, n) for n in x.shape[2:])]
    if output_mask[1]:
        grad_weight = _conv_weight_grad(g, x, w.shape, kernel, stride, dilation, pads,
                                        x.shape[2:], groups)
    if output_mask[2]:
        grad_bias = g.sum(axis=(0, 2, 3, 4))
    return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------- pooling

def _pool_setup(shape, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = params.ntuple("kernel_size", kernel_size, SPATIAL, minimum=1)
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):
        stride = kernel
    stride = params.ntuple("stride", stride, SPATIAL, minimum=1)
    padding = params.ntuple("padding", padding, SPATIAL, minimum=0)
    dilation = params.ntuple("dilation", dilation, SPATIAL, minimum=1)
    out = tuple(params.pool_output_size(shape[2 + a], kernel[a], stride[a], padding[a],
                                        dilation[a], ceil_mode) for a in range(SPATIAL))
    if min(out) <= 0:
        raise ValueError(f"pool3d: computed output size {out} is too small")
    return kernel, stride, padding, dilation, out


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Padding never wins (-inf); ties take the first tap in (z, y, x) window order, NaN
    wins and the last NaN is taken (as torch). Indices are flat positions in each
    (n, c) volume of D*H*W."""
    x = _f64("input", input)
    kernel, stride, padding, dilation, out = _pool_setup(x.shape, kernel_size, stride,
                                                         padding, dilation, ceil_mode)
    xp = _padded(x, [(p, p) for p in padding], out, kernel, stride, dilation, -np.inf)
    best = np.full(x.shape[:2] + out, -np.inf)
    best_tap = np.zeros(best.shape, np.int64)
    nan_tap = np.full(best.shape, -1, np.int64)
    taps = list(itertools.product(*map(range, kernel)))
    for t, tap in enumerate(taps):
        v = xp[(slice(None),) * 2 + _tap_slices(tap, stride, dilation, out)]
        better = v > best
        best = np.where(better, v, best)
        best_tap = np.where(better, t, best_tap)
        nan_tap = np.where(np.isnan(v), t, nan_tap)
    best_tap = np.where(nan_tap >= 0, nan_tap, best_tap)
    best = np.where(nan_tap >= 0, np.nan, best)
    if not return_indices:
        return best
    offsets = np.array(taps)[best_tap]  # (..., 3) tap of each output
    flat = np.zeros(best.shape, np.int64)
    for a in range(SPATIAL):
        o = np.arange(out[a]).reshape((-1,) + (1,) * (SPATIAL - 1 - a))
        pos = o * stride[a] - padding[a] + offsets[..., a] * dilation[a]
        flat = flat * x.shape[2 + a] + pos
    return best, flat


def max_pool3d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    """Scatter-add grad_output to the input positions named by `indices` (the forward's
    window, which the device op may take, changes nothing here)."""
    g = np.asarray(grad_output, np.float64)
    n, c = input_shape[:2]
    volume = int(np.prod(input_shape[2:]))
    grad = np.zeros((n * c, volume))
    np.add.at(grad, (np.arange(n * c).reshape(-1, 1), np.asarray(indices).reshape(n * c, -1)),
              g.reshape(n * c, -1))
    return grad.reshape(input_shape)


def _avg_divisor(shape, kernel, stride, padding, out, count_include_pad, divisor_override):
    if divisor_override is not None:
        return np.full(out, float(divisor_override))
    div = np.ones(out)
    for a in range(SPATIAL):
        start = np.arange(out[a]) * stride[a] - padding[a]
        end = np.minimum(start + kernel[a], shape[2 + a] + padding[a])
        size = end - start if count_include_pad else \
            np.minimum(end, shape[2 + a]) - np.maximum(start, 0)
        div = div * size.reshape((-1,) + (1,) * (SPATIAL - 1 - a))
    return div


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    x = _f64("input", input)
    kernel, stride, padding, dilation, out = _pool_setup(x.shape, kernel_size, stride,
                                                         padding, 1, ceil_mode)
    xp = _padded(x, [(p, p) for p in padding], out, kernel, stride, dilation, 0.0)
    total = np.zeros(x.shape[:2] + out)
    for tap in itertools.product(*map(range, kernel)):
        total += xp[(slice(None),) * 2 + _tap_slices(tap, stride, dilation, out)]
    return total / _avg_divisor(x.shape, kernel, stride, padding, out, count_include_pad,
                                divisor_override)


def avg_pool3d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    kernel, stride, padding, dilation, out = _pool_setup(input_shape, kernel_size, stride,
                                                         padding, 1, ceil_mode)
    g = np.asarray(grad_output, np.float64) / _avg_divisor(
        input_shape, kernel, stride, padding, out, count_include_pad, divisor_override)
    full = np.zeros(input_shape)
    full = _padded(full, [(p, p) for p in padding], out, kernel, stride, dilation, 0.0)
    for tap in itertools.product(*map(range, kernel)):
        full[(slice(None),) * 2 + _tap_slices(tap, stride, dilation, out)] += g
    crop = tuple(slice(p, p + s) for p, s in zip(padding, input_shape[2:]))
    return np.ascontiguousarray(full[(slice(None),) * 2 + crop])
