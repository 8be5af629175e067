"""Max and average 3-D pooling and their gradients (torch.nn.functional semantics,
NCDHW)."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import DEFAULT_GROUP_SIZE, get_kernel, group_2d, launch, launch_grid
from ..geometry import pool_geometry_nd
from ..runtime import current
from ..validation import check_array, check_int, check_shape
from .pool import KERNELS as POOL2D_KERNELS, check_input_shape

KERNELS = "pool3d.cl"
LAYOUT = "(N, C, D, H, W)"


def _volume_grid(rt, kernel, shape, *args):
    """Launch a pooling kernel on a (W, H, N*C*D) grid over the NCDHW `shape` (the
    output for the forward kernels, the input for the gathering gradients)."""
    N, C, D, H, W = shape
    launch_grid(rt, kernel, (W, H, N * C * D), group_2d(DEFAULT_GROUP_SIZE, W, H) + (1,),
                *args)


def _window_args(geo):
    return (geo.N * geo.C, *geo.size, *geo.out, *geo.kernel, *geo.stride, *geo.padding)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling like torch.nn.functional.max_pool3d.

    With return_indices, also returns int32 flat indices into each D*H*W volume
    (torch returns int64; OpenCL 1.2 on the Pi has no 64-bit integers)."""
    rt = current()
    shape = check_array("input", input, rt, LAYOUT)
    geo = pool_geometry_nd(shape, kernel_size, stride, padding, dilation, bool(ceil_mode))
    out = empty(rt, geo.output_shape)
    indices = empty(rt, out.shape, np.int32) if return_indices else out
    _volume_grid(rt, get_kernel(rt, KERNELS, "max_pool3d_forward"), out.shape,
                 on_device(rt, input), out, indices, int(bool(return_indices)),
                 *_window_args(geo), *geo.dilation)
    return (out, indices) if return_indices else out


def max_pool3d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    """Route grad_output to the input positions recorded in `indices`.

    Given the forward pass's window, every input element gathers its gradient in
    parallel; without it, indices may be arbitrary and each volume is walked by one
    work-item (max_pool2d_backward's kernel: it sees flat planes of any size)."""
    rt = current()
    input_shape = check_input_shape(input_shape, LAYOUT)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Do, Ho, Wo)")
    i_shape = check_array("indices", indices, rt, "(N, C, Do, Ho, Wo)", dtype="int")
    check_shape("indices", i_shape, g_shape)
    if g_shape[:2] != input_shape[:2]:
        raise ValueError(f"grad_output: expected shape {input_shape[:2] + g_shape[2:]} "
                         f"(N, C of input_shape {input_shape}), got {g_shape}")
    geo = None
    if kernel_size is not None:
        geo = pool_geometry_nd(input_shape, kernel_size, stride, padding, dilation,
                               bool(ceil_mode))
        check_shape("grad_output", g_shape, geo.output_shape)
    volume = input_shape[2] * input_shape[3] * input_shape[4]
    if isinstance(indices, np.ndarray) and (indices.min() < 0 or indices.max() >= volume):
        raise ValueError(f"indices: expected values in [0, {volume}) for input_shape "
                         f"{input_shape}, got range [{indices.min()}, {indices.max()}]")
    if isinstance(indices, np.ndarray) or indices.dtype == np.int32:
        idx = on_device(rt, indices, np.int32)
    else:  # a device array of another integer type
        idx = on_device(rt, indices.astype(np.int32))
    grad_input = empty(rt, input_shape)
    g = on_device(rt, grad_output)
    if geo is not None:
        _volume_grid(rt, get_kernel(rt, KERNELS, "max_pool3d_backward_windows"), input_shape,
                     g, idx, grad_input, *_window_args(geo), *geo.dilation)
        return grad_input
    launch(rt, get_kernel(rt, POOL2D_KERNELS, "max_pool2d_backward"),
           g_shape[0] * g_shape[1], g, idx, grad_input, volume,
           g_shape[2] * g_shape[3] * g_shape[4])
    return grad_input


def _divisor(divisor_override) -> int:
    """0 (none) or the validated override."""
    return 0 if divisor_override is None else check_int("divisor_override",
                                                          divisor_override, 1)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling like torch.nn.functional.avg_pool3d."""
    rt = current()
    shape = check_array("input", input, rt, LAYOUT)
    geo = pool_geometry_nd(shape, kernel_size, stride, padding, 1, bool(ceil_mode))
    divisor = _divisor(divisor_override)
    out = empty(rt, geo.output_shape)
    _volume_grid(rt, get_kernel(rt, KERNELS, "avg_pool3d_forward"), out.shape,
                 on_device(rt, input), out, *_window_args(geo),
                 int(bool(count_include_pad)), divisor)
    return out


def avg_pool3d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of avg_pool3d w.r.t. its input."""
    rt = current()
    input_shape = check_input_shape(input_shape, LAYOUT)
    geo = pool_geometry_nd(input_shape, kernel_size, stride, padding, 1, bool(ceil_mode))
    divisor = _divisor(divisor_override)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Do, Ho, Wo)")
    check_shape("grad_output", g_shape, geo.output_shape)
    grad_input = empty(rt, input_shape)
    _volume_grid(rt, get_kernel(rt, KERNELS, "avg_pool3d_backward"), input_shape,
                 on_device(rt, grad_output), grad_input, *_window_args(geo),
                 int(bool(count_include_pad)), divisor)
    return grad_input
