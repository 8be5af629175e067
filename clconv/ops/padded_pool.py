"""Pooling with explicit output sizes and asymmetric padding, as ONNX describes it
(auto_pad, pads begin/end, ceil_mode are resolved by the caller): argument checks, then
ops/pool.py's kernels."""
from __future__ import annotations

from ..arrays import on_device
from ..params import check_extent
from ..runtime import current
from ..validation import check_array
from .pool import avg_pool2d_windows, max_pool2d_windows


def _check(rt, input, out_size, kernel, stride, dilation, pads_begin):
    shape = check_array("input", input, rt, "(N, C, H, W)")
    for name, pair, minimum in (("out_size", out_size, 1), ("kernel", kernel, 1),
                                ("stride", stride, 1), ("dilation", dilation, 1),
                                ("pads_begin", pads_begin, 0)):
        if len(pair) != 2 or min(pair) < minimum:
            raise ValueError(f"{name}: expected two ints >= {minimum}, got {tuple(pair)}")
    for size, out, k, s, d, begin in zip(shape[2:], out_size, kernel, stride, dilation,
                                         pads_begin):
        # the windows span at most begin + (out - 1)*s of padding and input before the last
        check_extent(size, begin + (out - 1) * s, k, d)
    return shape


def max_pool2d_padded(input, kernel, stride, pads_begin, out_size, dilation=(1, 1),
                      return_indices=False, out=None):
    """Max over windows starting at o*stride - pads_begin; padding never wins.

    Indices (int32) are flat iy*W + ix within each plane. `out`: an array to write the
    result into (arrays.output)."""
    rt = current()
    _check(rt, input, out_size, kernel, stride, dilation, pads_begin)
    return max_pool2d_windows(rt, on_device(rt, input), out_size, kernel, stride, pads_begin,
                              dilation, return_indices, out)


def avg_pool2d_padded(input, kernel, stride, pads, out_size, dilation=(1, 1),
                      count_include_pad=False, out=None, input_affine=None):
    """Average over windows; pads = (top, left, bottom, right). With count_include_pad
    the divisor counts positions inside the padded input, otherwise inside the input.
    `out`: an array to write the result into (arrays.output). input_affine: (scale,
    shift, activation), the pool of activation(input * scale[c] + shift[c]) (see
    pool.avg_pool2d_windows)."""
    rt = current()
    if len(pads) != 4:
        raise ValueError(f"pads: expected (top, left, bottom, right), got {tuple(pads)}")
    _check(rt, input, out_size, kernel, stride, dilation, pads[:2])
    return avg_pool2d_windows(rt, on_device(rt, input), out_size, kernel, stride, pads,
                              dilation, count_include_pad, out=out, input_affine=input_affine)
