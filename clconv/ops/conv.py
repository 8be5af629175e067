"""conv2d, conv_transpose2d and their gradients (torch.nn.functional semantics, NCHW)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import algos, params
from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..epilogue import NO_ACTIVATION, RELU, Activation
from ..runtime import current
from ..validation import check_array, check_int, check_shape

KERNELS = "conv2d.cl"

# Each op below validates its arguments, then `algos.run` enqueues the variant chosen for
# the layer (forced by CLCONV_ALGO, tuned by `clconv tune`, or the heuristic).


@dataclass(frozen=True)
class ConvGeometry:
    """A validated convolution: input (N, C, H, W), weight (K, C/groups, kh, kw),
    output (N, K, Ho, Wo). Padding may be asymmetric (padding='same')."""

    N: int
    C: int
    H: int
    W: int
    K: int
    kh: int
    kw: int
    Ho: int
    Wo: int
    stride: tuple[int, int]
    pad_top: int
    pad_left: int
    dilation: tuple[int, int]
    groups: int

    @property
    def input_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self):
        return (self.K, self.C // self.groups, self.kh, self.kw)

    @property
    def output_shape(self):
        return (self.N, self.K, self.Ho, self.Wo)

    def kernel_args(self):
        return (self.kh, self.kw, *self.stride, self.pad_top, self.pad_left,
                *self.dilation, self.groups)


def _check_groups(groups, channels: int, name: str, channel_axis: str) -> int:
    groups = check_int("groups", groups, 1)
    if channels % groups:
        raise ValueError(f"{name}: {channels} {channel_axis} are not divisible by groups={groups}")
    return groups


def conv_geometry(input_shape, weight_shape, stride, padding, dilation, groups) -> ConvGeometry:
    """The validated geometry; memoised, as a layer asks with the same arguments on every
    call. Only plain ints, strings and tuples of ints are memo keys: 1.0 and True equal 1
    as keys, yet validation rejects them, and lists cannot be keys."""
    args = (tuple(input_shape), tuple(weight_shape), stride, padding, dilation, groups)
    if all(_plain(a) for a in args):
        return _cached_geometry(*args)
    return _conv_geometry(*args)


def _plain(value) -> bool:
    return type(value) in (int, str) or \
        type(value) is tuple and all(type(v) is int for v in value)


def _conv_geometry(input_shape, weight_shape, stride, padding, dilation, groups) -> ConvGeometry:
    N, C, H, W = input_shape
    K, c_per_group, kh, kw = weight_shape
    groups = _check_groups(groups, C, "input", "input channels")
    if K % groups:
        raise ValueError(f"weight: {K} output channels (weight.shape[0]) are not divisible "
                         f"by groups={groups}")
    if c_per_group != C // groups:
        raise ValueError(
            f"weight: expected shape ({K}, {C // groups}, {kh}, {kw}) for input with {C} "
            f"channels and groups={groups}, got {tuple(weight_shape)}")
    stride = params.pair("stride", stride, minimum=1)
    dilation = params.pair("dilation", dilation, minimum=1)
    (top, bottom), (left, right) = params.conv_padding(padding, (kh, kw), dilation, stride)
    Ho = params.conv_output_size(H, kh, stride[0], top, bottom, dilation[0])
    Wo = params.conv_output_size(W, kw, stride[1], left, right, dilation[1])
    if Ho <= 0 or Wo <= 0:
        effective = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
        raise ValueError(
            f"weight: kernel {(kh, kw)} with dilation {dilation} spans {effective}, larger "
            f"than the padded input {(H + top + bottom, W + left + right)}")
    return ConvGeometry(N, C, H, W, K, kh, kw, Ho, Wo, stride, top, left, dilation, groups)


_cached_geometry = functools.lru_cache(maxsize=1024)(_conv_geometry)


def _check_bias(bias, runtime, channels: int):
    if bias is None:
        return
    shape = check_array("bias", bias, runtime, "(out_channels,)")
    check_shape("bias", shape, (channels,))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) like torch.nn.functional.conv2d."""
    return conv2d_activation(input, weight, bias, stride, padding, dilation, groups)


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """relu(conv2d(...)) in one pass: the activation is fused into the conv's epilogue."""
    return conv2d_activation(input, weight, bias, stride, padding, dilation, groups, RELU)


def conv2d_activation(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      activation: Activation = NO_ACTIVATION):
    """activation(conv2d(...)) in one pass, whichever variant runs: the activation
    (clconv.epilogue.Activation) is applied in the convolution's epilogue."""
    if not isinstance(activation, Activation):
        raise TypeError(f"activation: expected a clconv.epilogue.Activation, got "
                        f"{type(activation).__name__}")
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C, H, W)")
    w_shape = check_array("weight", weight, rt, "(out_channels, in_channels/groups, kH, kW)")
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    _check_bias(bias, rt, geo.K)
    x, w = on_device(rt, input), on_device(rt, weight)
    b = on_device(rt, bias) if bias is not None else None
    out = empty(rt, geo.output_shape)
    algos.run(rt, "forward", geo, x, w, b, out, act=activation)
    return out


def _transposed_conv(rt, src, w, bias, out_shape, geo: ConvGeometry):
    """Transposed convolution of `src` (N, S, Hs, Ws) into out_shape (N, O, Ho, Wo).

    `geo` is the forward convolution that maps out_shape to src's shape."""
    out = empty(rt, out_shape)
    algos.run(rt, "grad_input", geo, src, w, out, bias=bias)
    return out


def _grad_weight(rt, x, grad_out, geo: ConvGeometry):
    grad_w = empty(rt, geo.weight_shape)
    algos.run(rt, "grad_weight", geo, x, grad_out, grad_w)
    return grad_w


def channel_sum(rt, x):
    """Sum of x over every axis but axis 1 (bias gradients)."""
    n, c = x.shape[0], x.shape[1]
    per_channel = int(np.prod(x.shape[2:], dtype=np.int64))
    out = empty(rt, (c,))
    launch(rt, get_kernel(rt, "reduce.cl", "channel_sum"), c, x, out, n, c, per_channel)
    return out


def _check_output_mask(output_mask):
    if len(output_mask) != 3:
        raise ValueError(f"output_mask: expected 3 booleans, got {output_mask!r}")
    return tuple(bool(m) for m in output_mask)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """Gradients of conv2d: (grad_input, grad_weight, grad_bias); None where masked off."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C, H, W)")
    w_shape = check_array("weight", weight, rt, "(out_channels, in_channels/groups, kH, kW)")
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    g_shape = check_array("grad_output", grad_output, rt, "(N, out_channels, Ho, Wo)")
    check_shape("grad_output", g_shape, geo.output_shape)
    want_input, want_weight, want_bias = _check_output_mask(output_mask)
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:
        grad_input = _transposed_conv(rt, g, on_device(rt, weight), None, geo.input_shape, geo)
    if want_weight:
        grad_weight = _grad_weight(rt, on_device(rt, input), g, geo)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias


def transpose_geometry(input_shape, weight_shape, stride, padding, output_padding, groups,
                       dilation):
    """conv_transpose2d shapes, as the forward convolution it is the transpose of.

    Returns (geometry of the forward conv from the output to the input, output shape)."""
    N, C_in, H, W = input_shape
    _, o_per_group, kh, kw = weight_shape
    groups = _check_groups(groups, C_in, "input", "input channels")
    if weight_shape[0] != C_in:
        raise ValueError(
            f"weight: expected shape ({C_in}, out_channels/groups, kH, kW) for input with "
            f"{C_in} channels, got {tuple(weight_shape)}")
    stride = params.pair("stride", stride, minimum=1)
    dilation = params.pair("dilation", dilation, minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"padding: conv_transpose2d takes an int or a pair, got {padding!r}")
    pad = params.pair("padding", padding, minimum=0)
    out_pad = params.pair("output_padding", output_padding, minimum=0)
    for op, s, d in zip(out_pad, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"output_padding: must be smaller than stride {stride} or dilation "
                             f"{dilation}, got {out_pad}")
    Ho = params.conv_transpose_output_size(H, kh, stride[0], pad[0], out_pad[0], dilation[0])
    Wo = params.conv_transpose_output_size(W, kw, stride[1], pad[1], out_pad[1], dilation[1])
    if Ho <= 0 or Wo <= 0:
        raise ValueError(f"input: output size {(Ho, Wo)} would be empty for input {(H, W)}, "
                         f"kernel {(kh, kw)}, stride {stride}, padding {pad}")
    C_out = o_per_group * groups
    # The forward convolution maps (N, C_out, Ho, Wo) back to (N, C_in, H, W).
    geo = ConvGeometry(N, C_out, Ho, Wo, C_in, kh, kw, H, W, stride, pad[0], pad[1],
                       dilation, groups)
    return geo, (N, C_out, Ho, Wo)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """2-D transposed convolution like torch.nn.functional.conv_transpose2d."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C_in, H, W)")
    w_shape = check_array("weight", weight, rt, "(in_channels, out_channels/groups, kH, kW)")
    geo, out_shape = transpose_geometry(x_shape, w_shape, stride, padding, output_padding,
                                        groups, dilation)
    _check_bias(bias, rt, out_shape[1])
    b = on_device(rt, bias) if bias is not None else None
    return _transposed_conv(rt, on_device(rt, input), on_device(rt, weight), b, out_shape, geo)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1,
                              output_mask=(True, True, True)):
    """Gradients of conv_transpose2d: (grad_input, grad_weight, grad_bias)."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C_in, H, W)")
    w_shape = check_array("weight", weight, rt, "(in_channels, out_channels/groups, kH, kW)")
    geo, out_shape = transpose_geometry(x_shape, w_shape, stride, padding, output_padding,
                                        groups, dilation)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C_out, Ho, Wo)")
    check_shape("grad_output", g_shape, out_shape)
    want_input, want_weight, want_bias = _check_output_mask(output_mask)
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:  # the forward convolution of grad_output with the same weight
        grad_input = empty(rt, geo.output_shape)
        algos.run(rt, "forward", geo, g, on_device(rt, weight), None, grad_input)
    if want_weight:  # roles swap: grad_output is the conv input, input its grad_output
        grad_weight = _grad_weight(rt, g, on_device(rt, input), geo)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias
