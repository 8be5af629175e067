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

On CPUs, a convolution of one group with packed weights runs the `channels` variant
instead (algos/channels.py: the output channels in the vector lanes); this one keeps
grouped layers there, and GPUs where it is forced or tuned.
"""
from __future__ import annotations

from ..build import get_kernel, launch_grid
from ..epilogue import NO_ACTIVATION
from .base import (LAYOUT, Variant, is_cpu, layout_group, pad, padded_input_reason,
                   scratch)
from .gemm import TEST_PARAMS, fit_tile, is_pointwise, output_planes, space
from .tiled_gemm import defaults, gemm, pack_a, validate_params


def padded_shape(geo) -> tuple[int, int]:
    """(Hp, Wp): the zero-bordered input planes whose shifted views are the taps."""
    return (geo.Ho + (geo.kh - 1) * geo.dilation[0], geo.Wo + (geo.kw - 1) * geo.dilation[1])


def validate(profile, geo, op, params):
    if geo.stride != (1, 1):
        return f"stride {geo.stride}: only stride 1 (the taps are shifts of one input)"
    if is_pointwise(geo):
        return "a 1x1 convolution is a plain GEMM (gemm1x1)"
    return validate_params(profile, params) or padded_input_reason(profile, geo, padded_shape(geo))


def _taps_major(rt, geo, w):
    """The weights (K, Cg, kh, kw) as (kh*kw, K, Cg): tap r's matrices contiguous."""
    rows, taps = geo.K * (geo.C // geo.groups), geo.kh * geo.kw
    wt = scratch(rt, (taps, rows))
    kernel = get_kernel(rt, LAYOUT, "transpose_batched")
    strips = -(-taps // 4)  # four columns each
    local = 1 if is_cpu(rt.profile) else layout_group(rt, strips)
    launch_grid(rt, kernel, (strips, 1), (local, 1), w, wt, rows, taps, rows, 1)
    return wt


def pack(rt, geo, params, w):
    """The weights as forward reads them given `packed`: each tap's (Kg x Cg) matrices
    in the GEMM's panels of TM rows (tiled_gemm.pack_a): (packed, lda, (group stride,
    tap stride))."""
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


SHIFTED = Variant("shifted", "stride-1 convolution as one GEMM over shifted views of the "
                  "zero-bordered input (no column matrix); forward only",
                  validate, {"forward": forward}, space, defaults, ops=("forward",),
                  fit=fit_tile, pack=pack, test_params=TEST_PARAMS)
