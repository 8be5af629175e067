"""Stride-1 convolution as one GEMM over shifted views of the input: no column matrix.

With the input zero-bordered to Hp x Wp planes (Hp = Ho + (kh-1)*dh, Wp = Wo +
(kw-1)*dw), the output pixel (oy, ox) taken as column n = oy*Wp + ox reads, for tap
(ky, kx), the padded input at n + ky*dh*Wp + kx*dw: every tap is the same planes shifted.
So out[n, g] = sum over taps r of W_r[g] (Kg x Cg) . Xp[n, g] shifted by tap r, which
`gemm.cl` runs as its reduction batch (SHIFTED=kw): one launch, the taps summed in
registers, the epilogue (bias, residual, activation) applied once. The columns past Wo
in each row (the border's) are computed and dropped as they are stored.

im2col writes a column matrix kh*kw times the input (DenseNet's 3x3 layers at 56x56:
14 MB per layer, more than the caches) and the GEMM reads it back; here the GEMM reads
the input itself, from cache, paying Wp/Wo extra columns instead.

On CPUs, a convolution of one group with packed weights runs `shifted_channels.cl`
instead of the GEMM: the same shifted views, with the output channels in the vector
lanes and the pixels broadcast (no unaligned vector loads, each input float shared by
NV*TN channels): NV vectors of TN channels (the CPU class's GEMM tile) by as many
columns as its registers hold (channel_columns).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import cpu_class
from ..arrays import on_device
from ..build import get_kernel, group_2d, launch_grid, spread_groups
from ..epilogue import NO_ACTIVATION
from .base import LAYOUT, Variant, is_cpu, layout_group, pad, scratch
from .gemm import SMALL_PLANE, TEST_PARAMS, fit_columns, is_pointwise, output_planes, space
from .tiled_gemm import defaults, fma_default, gemm, pack_a, validate_params


def padded_shape(geo) -> tuple[int, int]:
    """(Hp, Wp): the zero-bordered input planes whose shifted views are the taps."""
    return (geo.Ho + (geo.kh - 1) * geo.dilation[0], geo.Wo + (geo.kw - 1) * geo.dilation[1])


def validate(profile, geo, op, params):
    if geo.stride != (1, 1):
        return f"stride {geo.stride}: only stride 1 (the taps are shifts of one input)"
    if is_pointwise(geo):
        return "a 1x1 convolution is a plain GEMM (gemm1x1)"
    reason = validate_params(profile, params)
    if reason is None:
        hp, wp = padded_shape(geo)
        nbytes = 4 * geo.N * geo.C * hp * wp
        if nbytes > profile.max_mem_alloc_size:
            reason = (f"padded input of {nbytes} bytes exceeds the device's max "
                      f"allocation {profile.max_mem_alloc_size}")
    return reason


def _taps_major(rt, geo, w):
    """The weights (K, Cg, kh, kw) as (kh*kw, K, Cg): tap r's matrices contiguous."""
    rows, taps = geo.K * (geo.C // geo.groups), geo.kh * geo.kw
    wt = scratch(rt, (taps, rows))
    kernel = get_kernel(rt, LAYOUT, "transpose_batched")
    strips = -(-taps // 4)  # four columns each
    local = 1 if is_cpu(rt.profile) else layout_group(rt, strips)
    launch_grid(rt, kernel, (strips, 1), (local, 1), w, wt, rows, taps, rows, 1)
    return wt


CHANNELS_KERNELS = "shifted_channels.cl"
CHANNEL_VECTORS = (4, 8, 16)  # the vector widths (TN) shifted_channels.cl is built for


@dataclass(frozen=True)
class ChannelPacked:
    """Weights as shifted_channels.cl reads them: [vectors][C][kh*kw][TN], the vectors
    of TN output channels rounded up to a multiple of NV, channels past K zero."""

    weights: object


# Most columns per work-item: SqueezeNet's 3x3 layers ran as fast at 14 as at 12
# (AVX-512, 24 accumulators), 1.2x slower at 8 and 10 (docs/performance.md, session 20)
MAX_COLUMNS = 12


def channel_columns(profile, tn: int, nv: int) -> int:
    """PX: the columns a work-item computes, as many as the CPU class's vector registers
    hold as accumulators (PX * NV vectors of TN floats) beside the NV weight vectors and
    the broadcast input (the GEMM's register count, CpuClass.fits, with PX for TM), up to
    MAX_COLUMNS."""
    cls = cpu_class.of_profile(profile) or cpu_class.SSE
    return max([1] + [px for px in range(1, MAX_COLUMNS + 1) if cls.fits(px, tn, nv)])


def runs_channels(rt, geo, params) -> bool:
    """Whether a packed forward runs shifted_channels.cl rather than the GEMM."""
    cls = cpu_class.of_profile(rt.profile)
    return (is_cpu(rt.profile) and geo.groups == 1 and int(params["TN"]) in CHANNEL_VECTORS
            and (cls is None or cls.lanes >= 4))  # not on a CPU without vectors (VFP)


def pack_channels(rt, geo, params, w) -> ChannelPacked:
    """The weights (K, C, kh, kw) in shifted_channels.cl's layout. Made once on the host."""
    tn, nv, taps = int(params["TN"]), int(params.get("NV", 1)), geo.kh * geo.kw
    padded = -(-geo.K // (tn * nv)) * tn * nv
    host = np.zeros((padded, geo.C, taps), np.float32)
    host[:geo.K] = w.get().reshape(geo.K, geo.C, taps)
    host = host.reshape(padded // tn, tn, geo.C, taps).transpose(0, 2, 3, 1)
    return ChannelPacked(on_device(rt, np.ascontiguousarray(host)))


def pack(rt, geo, params, w):
    """The weights as forward reads them given `packed`: shifted_channels.cl's layout
    where it runs (runs_channels), else each tap's (Kg x Cg) matrices in the GEMM's
    panels of TM rows (tiled_gemm.pack_a): (packed, lda, (group stride, tap stride))."""
    if runs_channels(rt, geo, params):
        return pack_channels(rt, geo, params, w)
    G, taps = geo.groups, geo.kh * geo.kw
    Kg, Cg = geo.K // G, geo.C // G
    packed, lda, stride = pack_a(rt, params, _taps_major(rt, geo, w), taps * G, Kg, Cg)
    return packed, lda, (stride, G * stride)


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None,
            out_image=None, out_border=None):
    """`packed`: pack()'s result for these weights and params, or None to reorder `w`.
    out_image: floats from one image of out to the next where out is strided images
    (arrays.image_stride); None: C-contiguous. out_border: as gemm.forward's."""
    G, taps = geo.groups, geo.kh * geo.kw
    Kg, Cg = geo.K // G, geo.C // G
    hp, wp = padded_shape(geo)
    if (hp, wp, geo.pad_top, geo.pad_left) != (geo.H, geo.W, 0, 0):
        x = pad(rt, x, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top, geo.pad_left,
                int(params["WG"]))
    # the last row's border columns are not computed: their taps would read past the planes
    columns = (geo.Ho - 1) * wp + geo.Wo
    plane, rows = output_planes(geo, out_image, out_border)
    if isinstance(packed, ChannelPacked):
        return _forward_channels(rt, geo, params, x, packed, bias, out, act, (hp, wp),
                                 columns, plane, rows, out_image)
    if packed is None:
        a, lda, (sa, sar) = _taps_major(rt, geo, w), Cg, (Kg * Cg, geo.K * Cg)
    else:
        a, lda, (sa, sar) = packed
    dh, dw = geo.dilation
    gemm(rt, params, Kg, columns, Cg, taps,
         a, lda, (0, sa, sar),
         x, hp * wp, (geo.C * hp * wp, Cg * hp * wp, dh * wp),
         out, plane, (out_image or geo.K * plane, Kg * plane),
         geo.N * G, G, a_packed=packed is not None, bias=bias, act=act,
         shifted=(geo.kw, dw, wp, geo.Wo), out_rows=rows)
    return out


def _forward_channels(rt, geo, params, xp, packed, bias, out, act, padded, columns, plane,
                      rows, out_image):
    """forward() through shifted_channels.cl: xp the zero-bordered input planes of
    `padded` (hp, wp), the rest as forward() computed them for the GEMM."""
    hp, wp = padded
    tn, nv = int(params["TN"]), int(params.get("NV", 1))
    px = min(channel_columns(rt.profile, tn, nv), columns)  # a run fits in the planes
    defines = {"VW": tn, "VB": nv, "PX": px, "KH": geo.kh, "KW": geo.kw,
               "HAS_BIAS": int(bias is not None), **act.defines,
               "USE_FMA": int(params.get("FMA", fma_default(rt.profile)))}
    kernel = get_kernel(rt, CHANNELS_KERNELS, "shifted_channels", defines)
    pitch, base = rows if rows is not None else (geo.Wo, 0)
    runs, blocks = -(-columns // px), -(-geo.K // (tn * nv))
    local = spread_groups(rt.profile, group_2d(int(params["WG"]), runs, blocks), runs,
                          blocks, geo.N)
    dh, dw = geo.dilation
    launch_grid(rt, kernel, (runs, blocks, geo.N), local + (1,),
                xp, packed.weights, bias if bias is not None else packed.weights, out,
                geo.C, geo.K, columns, hp * wp, geo.C * hp * wp, dh * wp, dw, wp, geo.Wo,
                plane, out_image or geo.K * plane, pitch, base, *act.scalars)
    return out


SHIFTED = Variant("shifted", "stride-1 convolution as one GEMM over shifted views of the "
                  "zero-bordered input (no column matrix); forward only",
                  validate, {"forward": forward}, space, defaults, ops=("forward",),
                  fit=fit_columns(SMALL_PLANE), pack=pack, test_params=TEST_PARAMS)
