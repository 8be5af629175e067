"""conv1d, conv_transpose1d and their gradients (torch.nn.functional semantics, NCL).

As in PyTorch, a 1-D convolution is the 2-D one over planes of height 1: the arrays are
viewed as (N, C, 1, L), every 1-D argument becomes (1, value) for the height, and the
2-D ops (their variants and kernels) do the work. Arguments are checked here first, so
messages speak of 1-D shapes."""
from __future__ import annotations

from .. import params
from ..geometry import conv_geometry, transpose_geometry
from ..runtime import current
from ..validation import check_array, check_int, check_shape
from .conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward


def as_planes(array, shape):
    """`array` (numpy or device, C-contiguous) viewed as (N, C, 1, L) for `shape` (N, C, L)."""
    return array.reshape(shape[0], shape[1], 1, shape[2])


def as_lines(array):
    """The inverse of `as_planes`: an (N, C, 1, L) array viewed as (N, C, L)."""
    return None if array is None else array.reshape(array.shape[0], array.shape[1],
                                                    array.shape[3])


def _weight(array):
    """(K, C, k) weights viewed as (K, C, 1, k)."""
    return array.reshape(array.shape[0], array.shape[1], 1, array.shape[2])


def _conv_args(stride, padding, dilation):
    """The 2-D stride, padding and dilation of a 1-D convolution's."""
    pad = padding if isinstance(padding, str) else (0, params.single("padding", padding,
                                                                     minimum=0))
    return ((1, params.single("stride", stride, minimum=1)), pad,
            (1, params.single("dilation", dilation, minimum=1)))


def _check_conv(rt, input, weight, groups, transposed: bool):
    x_shape = check_array("input", input, rt, "(N, C, L)")
    layout = ("(in_channels, out_channels/groups, kL)" if transposed
              else "(out_channels, in_channels/groups, kL)")
    w_shape = check_array("weight", weight, rt, layout)
    groups = check_int("groups", groups, 1)
    C = x_shape[1]
    if transposed and w_shape[0] != C:
        raise ValueError(f"weight: expected shape ({C}, out_channels/groups, kL) for input "
                         f"with {C} channels, got {w_shape}")
    if not transposed and C % groups == 0 and w_shape[0] % groups == 0 \
            and w_shape[1] != C // groups:
        raise ValueError(f"weight: expected shape ({w_shape[0]}, {C // groups}, {w_shape[2]}) "
                         f"for input with {C} channels and groups={groups}, got {w_shape}")
    return x_shape, groups


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation) like torch.nn.functional.conv1d."""
    x_shape, groups = _check_conv(current(), input, weight, groups, transposed=False)
    stride, padding, dilation = _conv_args(stride, padding, dilation)
    return as_lines(conv2d(as_planes(input, x_shape), _weight(weight), bias, stride, padding,
                           dilation, groups))


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """Gradients of conv1d: (grad_input, grad_weight, grad_bias); None where masked off."""
    rt = current()
    x_shape, groups = _check_conv(rt, input, weight, groups, transposed=False)
    g_shape = check_array("grad_output", grad_output, rt, "(N, out_channels, Lo)")
    stride, padding, dilation = _conv_args(stride, padding, dilation)
    geo = conv_geometry(x_shape[:2] + (1, x_shape[2]), _weight(weight).shape, stride, padding,
                        dilation, groups)
    check_shape("grad_output", g_shape, (geo.N, geo.K, geo.Wo))
    gx, gw, gb = conv2d_backward(as_planes(grad_output, g_shape), as_planes(input, x_shape),
                                 _weight(weight), stride, padding, dilation, groups,
                                 output_mask)
    return as_lines(gx), as_lines(gw), gb


def _transpose_args(stride, padding, output_padding, dilation):
    if isinstance(padding, str):
        raise ValueError(f"padding: conv_transpose1d takes an int, got {padding!r}")
    return ((1, params.single("stride", stride, minimum=1)),
            (0, params.single("padding", padding, minimum=0)),
            (0, params.single("output_padding", output_padding, minimum=0)),
            (1, params.single("dilation", dilation, minimum=1)))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """1-D transposed convolution like torch.nn.functional.conv_transpose1d."""
    x_shape, groups = _check_conv(current(), input, weight, groups, transposed=True)
    stride, padding, output_padding, dilation = _transpose_args(stride, padding,
                                                                output_padding, dilation)
    return as_lines(conv_transpose2d(as_planes(input, x_shape), _weight(weight), bias, stride,
                                     padding, output_padding, groups, dilation))


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1,
                              output_mask=(True, True, True)):
    """Gradients of conv_transpose1d: (grad_input, grad_weight, grad_bias)."""
    rt = current()
    x_shape, groups = _check_conv(rt, input, weight, groups, transposed=True)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C_out, Lo)")
    stride, padding, output_padding, dilation = _transpose_args(stride, padding,
                                                                output_padding, dilation)
    _, out_shape = transpose_geometry(x_shape[:2] + (1, x_shape[2]), _weight(weight).shape,
                                      stride, padding, output_padding, groups, dilation)
    check_shape("grad_output", g_shape, (out_shape[0], out_shape[1], out_shape[3]))
    gx, gw, gb = conv_transpose2d_backward(
        as_planes(grad_output, g_shape), as_planes(input, x_shape), _weight(weight), stride,
        padding, output_padding, groups, dilation, output_mask)
    return as_lines(gx), as_lines(gw), gb
