"""Validated shapes of convolutions and pools, and the key a layer is tuned under.

A leaf module (it needs only `params`, `validation` and the `caches` registry), so the ops, the algorithm
variants, the tuner and the ONNX lowering can all share it without import cycles.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

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


def _check_conv_channels(C: int, weight_shape, groups) -> int:
    """The validated groups of a convolution of C input channels with `weight_shape`
    (K, C/groups, *kernel)."""
    K, c_per_group, *kernel = weight_shape
    groups = _check_groups(groups, C, "input", "input channels")
    if K % groups:
        raise ValueError(f"weight: {K} output channels (weight.shape[0]) are not divisible "
                         f"by groups={groups}")
    if c_per_group != C // groups:
        expected = ", ".join(str(v) for v in (K, C // groups, *kernel))
        raise ValueError(
            f"weight: expected shape ({expected}) for input with {C} "
            f"channels and groups={groups}, got {tuple(weight_shape)}")
    return groups


def _conv_axes(size, kernel, stride, padding, dilation):
    """(stride, (begin, end) pads, dilation, output size) per spatial axis: the one
    output-size rule of every convolution, whatever its rank."""
    n = len(size)
    stride = params.ntuple("stride", stride, n, minimum=1)
    dilation = params.ntuple("dilation", dilation, n, minimum=1)
    pads = params.conv_padding(padding, kernel, dilation, stride)
    out = tuple(params.conv_output_size(i, k, s, b, e, d)
                for i, k, s, (b, e), d in zip(size, kernel, stride, pads, dilation))
    if min(out) <= 0:
        effective = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = tuple(i + b + e for i, (b, e) in zip(size, pads))
        raise ValueError(
            f"weight: kernel {tuple(kernel)} with dilation {dilation} spans {effective}, larger "
            f"than the padded input {padded}")
    return stride, pads, dilation, out


def _conv_geometry(input_shape, weight_shape, stride, padding, dilation, groups) -> ConvGeometry:
    N, C, H, W = input_shape
    K, c_per_group, kh, kw = weight_shape
    groups = _check_conv_channels(C, weight_shape, groups)
    stride, pads, dilation, (Ho, Wo) = _conv_axes((H, W), (kh, kw), stride, padding,
                                                  dilation)
    (top, _), (left, _) = pads
    return ConvGeometry(N, C, H, W, K, kh, kw, Ho, Wo, stride, top, left, dilation, groups)


_cached_geometry = functools.lru_cache(maxsize=1024)(_conv_geometry)
caches.register("geometry.conv", _cached_geometry)


def _transpose_axes(size, kernel, stride, padding, output_padding, dilation, op):
    """(stride, padding, dilation, output size) per spatial axis of a transposed
    convolution (`op` names it in messages)."""
    n = len(size)
    stride = params.ntuple("stride", stride, n, minimum=1)
    dilation = params.ntuple("dilation", dilation, n, minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"padding: {op} takes an int or {params.tuple_name(n)}, "
                         f"got {padding!r}")
    pad = params.ntuple("padding", padding, n, minimum=0)
    out_pad = params.ntuple("output_padding", output_padding, n, minimum=0)
    for op_, s, d in zip(out_pad, stride, dilation):
        if op_ >= s and op_ >= d:
            raise ValueError(f"output_padding: must be smaller than stride {stride} or dilation "
                             f"{dilation}, got {out_pad}")
    out = tuple(params.conv_transpose_output_size(i, k, s, p, o, d)
                for i, k, s, p, o, d in zip(size, kernel, stride, pad, out_pad, dilation))
    if min(out) <= 0:
        raise ValueError(f"input: output size {out} would be empty for input {tuple(size)}, "
                         f"kernel {tuple(kernel)}, stride {stride}, padding {pad}")
    return stride, pad, dilation, out


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
    stride, pad, dilation, (Ho, Wo) = _transpose_axes((H, W), (kh, kw), stride, padding,
                                                      output_padding, dilation,
                                                      "conv_transpose2d")
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


def explicit_pool(input_shape, kernel, stride, pads_begin, out_size) -> PoolGeometry:
    """A 2-D pool of dilation 1 over input_shape (N, C, H, W) with its output size given,
    as ONNX describes pools once auto_pad, end pads and ceil_mode are resolved: windows
    start at o * stride - pads_begin. Each of kernel, stride, pads_begin and out_size is
    a pair of ints (kernel, stride, out_size >= 1, pads_begin >= 0) whose windows stay in
    the kernels' int32 range."""
    pairs = {}
    for name, pair, minimum in (("kernel", kernel, 1), ("stride", stride, 1),
                                ("pads_begin", pads_begin, 0), ("out_size", out_size, 1)):
        pair = tuple(pair)
        if (len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair)
                or min(pair) < minimum):
            raise ValueError(f"{name}: expected two ints >= {minimum}, got {pair}")
        pairs[name] = tuple(int(v) for v in pair)
    n, c, h, w = input_shape
    for size, out, k, s, begin in zip((h, w), pairs["out_size"], pairs["kernel"],
                                      pairs["stride"], pairs["pads_begin"]):
        params.check_extent(size, begin + (out - 1) * s, k, 1)
    return PoolGeometry(n, c, h, w, *pairs["out_size"], pairs["kernel"], pairs["stride"],
                        pairs["pads_begin"], (1, 1))


def _pool_axes(size, kernel_size, stride, padding, dilation, ceil_mode):
    """(kernel, stride, padding, dilation, output size) per spatial axis of a pool."""
    n = len(size)
    kernel = params.ntuple("kernel_size", kernel_size, n, minimum=1)
    # torch: stride=None (or an empty list) means stride = kernel_size.
    stride = kernel if stride is None or stride == [] or stride == () else \
        params.ntuple("stride", stride, n, minimum=1)
    padding = params.ntuple("padding", padding, n, minimum=0)
    dilation = params.ntuple("dilation", dilation, n, minimum=1)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding: must be at most half the kernel size {kernel}, "
                         f"got {padding}")
    out = tuple(params.pool_output_size(i, k, s, p, d, ceil_mode)
                for i, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if min(out) <= 0:
        padded = tuple(i + 2 * p for i, p in zip(size, padding))
        raise ValueError(f"kernel_size: window {kernel} with dilation {dilation} is larger than "
                         f"the padded input {padded}")
    return kernel, stride, padding, dilation, out


def pool_geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> PoolGeometry:
    N, C, H, W = input_shape
    kernel, stride, padding, dilation, (Ho, Wo) = _pool_axes(
        (H, W), kernel_size, stride, padding, dilation, ceil_mode)
    return PoolGeometry(N, C, H, W, Ho, Wo, kernel, stride, padding, dilation)


# Convolutions and pools over any number of spatial axes (conv3d's D, H, W), through
# the same per-axis rules as the 2-D geometry above.

@dataclass(frozen=True)
class ConvGeometryNd:
    """A validated convolution over len(size) spatial axes: input (N, C, *size), weight
    (K, C/groups, *kernel), output (N, K, *out); pads[a] is the padding before axis a
    (the padding after it follows from the output size)."""

    N: int
    C: int
    K: int
    size: tuple
    kernel: tuple
    out: tuple
    stride: tuple
    pads: tuple
    dilation: tuple
    groups: int

    @property
    def input_shape(self):
        return (self.N, self.C, *self.size)

    @property
    def weight_shape(self):
        return (self.K, self.C // self.groups, *self.kernel)

    @property
    def output_shape(self):
        return (self.N, self.K, *self.out)

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)

    @property
    def in_volume(self) -> int:
        return math.prod(self.size)

    @property
    def out_volume(self) -> int:
        return math.prod(self.out)


def conv_geometry_nd(input_shape, weight_shape, stride, padding, dilation,
                     groups) -> ConvGeometryNd:
    """The validated geometry of a convolution with input (N, C, *size)."""
    N, C, *size = input_shape
    groups = _check_conv_channels(C, weight_shape, groups)
    kernel = tuple(weight_shape[2:])
    stride, pads, dilation, out = _conv_axes(size, kernel, stride, padding, dilation)
    return ConvGeometryNd(N, C, weight_shape[0], tuple(size), kernel, out, stride,
                          tuple(b for b, _ in pads), dilation, groups)


def transpose_geometry_nd(input_shape, weight_shape, stride, padding, output_padding, groups,
                          dilation, op: str):
    """A transposed convolution (`op`, e.g. "conv_transpose3d") as the forward convolution
    it is the transpose of: (geometry of the forward conv from the output to the input,
    output shape)."""
    N, C_in, *size = input_shape
    o_per_group, kernel = weight_shape[1], tuple(weight_shape[2:])
    groups = _check_groups(groups, C_in, "input", "input channels")
    if weight_shape[0] != C_in:
        raise ValueError(
            f"weight: expected shape ({C_in}, out_channels/groups, *kernel_size) for input "
            f"with {C_in} channels, got {tuple(weight_shape)}")
    stride, pad, dilation, out = _transpose_axes(size, kernel, stride, padding,
                                                 output_padding, dilation, op)
    C_out = o_per_group * groups
    geo = ConvGeometryNd(N, C_out, C_in, out, kernel, tuple(size), stride, pad, dilation,
                         groups)
    return geo, (N, C_out, *out)


@dataclass(frozen=True)
class PoolGeometryNd:
    """A validated pool over len(size) spatial axes: input (N, C, *size), output
    (N, C, *out); symmetric padding."""

    N: int
    C: int
    size: tuple
    out: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def input_shape(self):
        return (self.N, self.C, *self.size)

    @property
    def output_shape(self):
        return (self.N, self.C, *self.out)


def pool_geometry_nd(input_shape, kernel_size, stride, padding, dilation,
                     ceil_mode) -> PoolGeometryNd:
    N, C, *size = input_shape
    kernel, stride, padding, dilation, out = _pool_axes(size, kernel_size, stride, padding,
                                                        dilation, ceil_mode)
    return PoolGeometryNd(N, C, tuple(size), out, kernel, stride, padding, dilation)


def layer_key(geo, op: str) -> str:
    return (f"{op}:n{geo.N}c{geo.C}h{geo.H}w{geo.W}k{geo.K}r{geo.kh}x{geo.kw}"
            f"s{geo.stride[0]}x{geo.stride[1]}p{geo.pad_top}x{geo.pad_left}"
            f"o{geo.Ho}x{geo.Wo}d{geo.dilation[0]}x{geo.dilation[1]}g{geo.groups}")
