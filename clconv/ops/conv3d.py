"""conv3d, conv_transpose3d and their gradients (torch.nn.functional semantics, NCDHW),
through vol2col and the one tuned GEMM (`algos/vol2col.py`)."""
from __future__ import annotations

from ..algos import vol2col
from ..arrays import empty, on_device
from ..epilogue import NO_ACTIVATION, Activation
from ..geometry import conv_geometry_nd, transpose_geometry_nd
from ..runtime import current
from ..validation import check_array, check_shape
from .conv import channel_sum, check_activation, check_bias, check_output_mask

WEIGHT = "(out_channels, in_channels/groups, kD, kH, kW)"
TRANSPOSED_WEIGHT = "(in_channels, out_channels/groups, kD, kH, kW)"


def _conv_setup(rt, input, weight, stride, padding, dilation, groups):
    x_shape = check_array("input", input, rt, "(N, C, D, H, W)")
    w_shape = check_array("weight", weight, rt, WEIGHT)
    return conv_geometry_nd(x_shape, w_shape, stride, padding, dilation, groups)


def _transpose_setup(rt, input, weight, stride, padding, output_padding, groups, dilation):
    x_shape = check_array("input", input, rt, "(N, C_in, D, H, W)")
    w_shape = check_array("weight", weight, rt, TRANSPOSED_WEIGHT)
    return transpose_geometry_nd(x_shape, w_shape, stride, padding, output_padding, groups,
                                 dilation, "conv_transpose3d")


def _params(rt, geo, op):
    params = vol2col.params_for(rt.profile, geo, op)
    vol2col.check_columns(rt.profile, geo, params)
    return params


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution (cross-correlation) like torch.nn.functional.conv3d."""
    return conv3d_activation(input, weight, bias, stride, padding, dilation, groups)


def conv3d_activation(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      activation: Activation = NO_ACTIVATION):
    """activation(conv3d(...)) in one pass: the activation (clconv.epilogue.Activation)
    is applied in the GEMM's epilogue."""
    check_activation(activation)
    rt = current()
    geo = _conv_setup(rt, input, weight, stride, padding, dilation, groups)
    check_bias(bias, rt, geo.K)
    params = _params(rt, geo, "forward")
    b = on_device(rt, bias) if bias is not None else None
    out = empty(rt, geo.output_shape)
    vol2col.forward(rt, geo, params, on_device(rt, input), on_device(rt, weight), b, out,
                    act=activation)
    return out


def conv3d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """Gradients of conv3d: (grad_input, grad_weight, grad_bias); None where masked off."""
    rt = current()
    geo = _conv_setup(rt, input, weight, stride, padding, dilation, groups)
    g_shape = check_array("grad_output", grad_output, rt, "(N, out_channels, Do, Ho, Wo)")
    check_shape("grad_output", g_shape, geo.output_shape)
    want_input, want_weight, want_bias = check_output_mask(output_mask)
    params = {op: _params(rt, geo, op) for op in ("grad_input", "grad_weight")}
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:
        grad_input = empty(rt, geo.input_shape)
        vol2col.grad_input(rt, geo, params["grad_input"], g, on_device(rt, weight),
                           grad_input)
    if want_weight:
        grad_weight = empty(rt, geo.weight_shape)
        vol2col.grad_weight(rt, geo, params["grad_weight"], on_device(rt, input), g,
                            grad_weight)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """3-D transposed convolution like torch.nn.functional.conv_transpose3d."""
    rt = current()
    geo, out_shape = _transpose_setup(rt, input, weight, stride, padding, output_padding,
                                      groups, dilation)
    check_bias(bias, rt, out_shape[1])
    params = _params(rt, geo, "grad_input")
    b = on_device(rt, bias) if bias is not None else None
    out = empty(rt, out_shape)
    return vol2col.grad_input(rt, geo, params, on_device(rt, input), on_device(rt, weight),
                              out, bias=b)


def conv_transpose3d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1,
                              output_mask=(True, True, True)):
    """Gradients of conv_transpose3d: (grad_input, grad_weight, grad_bias)."""
    rt = current()
    geo, out_shape = _transpose_setup(rt, input, weight, stride, padding, output_padding,
                                      groups, dilation)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C_out, Do, Ho, Wo)")
    check_shape("grad_output", g_shape, out_shape)
    want_input, want_weight, want_bias = check_output_mask(output_mask)
    params = {op: _params(rt, geo, op) for op in ("forward", "grad_weight")}
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:  # the forward convolution of grad_output with the same weight
        grad_input = empty(rt, geo.output_shape)
        vol2col.forward(rt, geo, params["forward"], g, on_device(rt, weight), None,
                        grad_input)
    if want_weight:  # roles swap: grad_output is the conv input, input its grad_output
        grad_weight = empty(rt, geo.weight_shape)
        vol2col.grad_weight(rt, geo, params["grad_weight"], g, on_device(rt, input),
                            grad_weight)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias
