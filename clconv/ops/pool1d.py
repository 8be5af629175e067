"""max_pool1d, avg_pool1d, adaptive_avg_pool1d and their gradients (NCL).

As in PyTorch, 1-D pooling is the 2-D pooling of planes of height 1 (windows of height
1): arrays are viewed as (N, C, 1, L) and the 2-D ops do the work. Arguments are checked
here first, so messages speak of 1-D shapes."""
from __future__ import annotations

import numpy as np

from .. import params
from ..runtime import current
from ..validation import check_array
from .conv1d import as_lines, as_planes
from .pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                   avg_pool2d_backward, max_pool2d, max_pool2d_backward)


def _window(kernel_size, stride, padding, dilation=1):
    """The 2-D kernel_size, stride, padding and dilation of a 1-D window's."""
    k = params.single("kernel_size", kernel_size, minimum=1)
    # torch: stride=None (or an empty list) means stride = kernel_size
    s = k if stride is None or stride == [] or stride == () else \
        params.single("stride", stride, minimum=1)
    p = params.single("padding", padding, minimum=0)
    if p > k // 2:
        raise ValueError(f"padding: must be at most half the kernel size {k}, got {p}")
    return (1, k), (1, s), (0, p), (1, params.single("dilation", dilation, minimum=1))


def _input_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"input_shape: expected 3 positive ints (N, C, L), got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _planes_shape(shape):
    return (shape[0], shape[1], 1, shape[2])


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling like torch.nn.functional.max_pool1d; indices (int32) index L."""
    shape = check_array("input", input, current(), "(N, C, L)")
    kernel, stride, padding, dilation = _window(kernel_size, stride, padding, dilation)
    out = max_pool2d(as_planes(input, shape), kernel, stride, padding, dilation, ceil_mode,
                     return_indices)
    if return_indices:
        return as_lines(out[0]), as_lines(out[1])
    return as_lines(out)


def max_pool1d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    """Route grad_output to the input positions in `indices`; with the forward's window,
    each input element gathers its gradient in parallel (see max_pool2d_backward)."""
    rt = current()
    input_shape = _input_shape(input_shape)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Lo)")
    i_shape = check_array("indices", indices, rt, "(N, C, Lo)", dtype="int")
    window = {}
    if kernel_size is not None:
        kernel, stride, padding, dilation = _window(kernel_size, stride, padding, dilation)
        window = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
    return as_lines(max_pool2d_backward(as_planes(grad_output, g_shape),
                                        as_planes(indices, i_shape),
                                        _planes_shape(input_shape), **window))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Average pooling like torch.nn.functional.avg_pool1d."""
    shape = check_array("input", input, current(), "(N, C, L)")
    kernel, stride, padding, _ = _window(kernel_size, stride, padding)
    return as_lines(avg_pool2d(as_planes(input, shape), kernel, stride, padding, ceil_mode,
                               count_include_pad))


def avg_pool1d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    """Gradient of avg_pool1d w.r.t. its input."""
    input_shape = _input_shape(input_shape)
    g_shape = check_array("grad_output", grad_output, current(), "(N, C, Lo)")
    kernel, stride, padding, _ = _window(kernel_size, stride, padding)
    return as_lines(avg_pool2d_backward(as_planes(grad_output, g_shape),
                                        _planes_shape(input_shape), kernel, stride, padding,
                                        ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input, output_size):
    """Adaptive average pooling like torch.nn.functional.adaptive_avg_pool1d."""
    shape = check_array("input", input, current(), "(N, C, L)")
    size = params.single("output_size", output_size, minimum=1)
    return as_lines(adaptive_avg_pool2d(as_planes(input, shape), (1, size)))


def adaptive_avg_pool1d_backward(grad_output, input_shape):
    """Gradient of adaptive_avg_pool1d; the output size is grad_output's."""
    input_shape = _input_shape(input_shape)
    g_shape = check_array("grad_output", grad_output, current(), "(N, C, Lo)")
    return as_lines(adaptive_avg_pool2d_backward(as_planes(grad_output, g_shape),
                                                 _planes_shape(input_shape)))
