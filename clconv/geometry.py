"""Validated shapes of convolutions and pools, and the key a layer is tuned under.

A leaf module (it needs only `params`, `validation` and the `caches` registry), so the ops, the algorithm
variants, the tuner and the ONNX lowering can all share it without import cycles.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from . import caches, params
from .validation import check_int


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
caches.register("geometry.conv", _cached_geometry)


def transpose_geometry(input_shape, weight_shape, stride, padding, output_padding, groups,
                       dilation):
    """conv_transpose2d shapes, as the forward convolution it is the transpose of.

    Returns (geometry of the forward conv from the output to the input, output shape).
    Not grad_input_as_forward, which rewrites a stride-1 input gradient as a forward conv."""
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


def grad_input_as_forward(geo):
    """For stride 1: the forward convolution whose output is `geo`'s input gradient
    (input grad_out, flipped weights, padding d*(k-1) - p, possibly negative)."""
    return ConvGeometry(geo.N, geo.K, geo.Ho, geo.Wo, geo.C, geo.kh, geo.kw, geo.H, geo.W,
                        (1, 1), geo.dilation[0] * (geo.kh - 1) - geo.pad_top,
                        geo.dilation[1] * (geo.kw - 1) - geo.pad_left, geo.dilation,
                        geo.groups)


@dataclass(frozen=True)
class PoolGeometry:
    N: int
    C: int
    H: int
    W: int
    Ho: int
    Wo: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def output_shape(self):
        return (self.N, self.C, self.Ho, self.Wo)


def pool_geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> PoolGeometry:
    N, C, H, W = input_shape
    kernel = params.pair("kernel_size", kernel_size, minimum=1)
    # torch: stride=None (or an empty list) means stride = kernel_size.
    stride = kernel if stride is None or stride == [] or stride == () else \
        params.pair("stride", stride, minimum=1)
    padding = params.pair("padding", padding, minimum=0)
    dilation = params.pair("dilation", dilation, minimum=1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"padding: must be at most half the kernel size {kernel}, "
                         f"got {padding}")
    Ho = params.pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    Wo = params.pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if Ho <= 0 or Wo <= 0:
        raise ValueError(f"kernel_size: window {kernel} with dilation {dilation} is larger than "
                         f"the padded input {(H + 2 * padding[0], W + 2 * padding[1])}")
    return PoolGeometry(N, C, H, W, Ho, Wo, kernel, stride, padding, dilation)


def layer_key(geo, op: str) -> str:
    return (f"{op}:n{geo.N}c{geo.C}h{geo.H}w{geo.W}k{geo.K}r{geo.kh}x{geo.kw}"
            f"s{geo.stride[0]}x{geo.stride[1]}p{geo.pad_top}x{geo.pad_left}"
            f"o{geo.Ho}x{geo.Wo}d{geo.dilation[0]}x{geo.dilation[1]}g{geo.groups}")
