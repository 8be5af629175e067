"""Depthwise convolution (groups == in_channels) and its gradients, window compiled in:
forward and grad_input compute a run of TW outputs of one row per work-item;
grad_weight sums per (image row, channel) partials, then reduces them (no atomics)."""
from __future__ import annotations

from ..build import get_kernel, launch_grid
from .base import Variant, scratch

KERNELS = "depthwise.cl"
MAX_WINDOW = 49  # kh*kw compiled in and unrolled; bigger windows take another variant


def is_depthwise(geo) -> bool:
    return geo.groups == geo.C


def validate(profile, geo, op, params):
    if not is_depthwise(geo):
        return "only depthwise convolutions (groups == in_channels)"
    if geo.kh * geo.kw > MAX_WINDOW:
        return f"window {geo.kh}x{geo.kw} larger than {MAX_WINDOW} elements"
    tw, wg = int(params["TW"]), int(params["WG"])
    if not 1 <= tw <= 32:
        return f"TW={tw} outside 1..32"
    if int(params.get("PAD", 1)) and tw not in (4, 8, 16):
        return f"PAD=1 needs TW in 4/8/16 (a vector width), got {tw}"
    if not 1 <= wg <= profile.max_work_group_size:
        return f"WG={wg} exceeds the device's max work-group size {profile.max_work_group_size}"
    return None


def padded_extent(geo, tw):
    """(Hp, Wp) of the zero-bordered input the padded kernel reads: every row and
    column a tile of TW outputs touches, tails included."""
    tiles = -(-geo.Wo // tw)
    hp = (geo.Ho - 1) * geo.stride[0] + (geo.kh - 1) * geo.dilation[0] + 1
    # SW=2 loads 2*TW columns per tap
    wp = (tiles * tw - 1) * geo.stride[1] + (geo.kw - 1) * geo.dilation[1] + 2
    return hp, wp


def _sw(geo, tw) -> int:
    """The column stride compiled in: 1 or 2 (vector loads), else 0 (gathered)."""
    sw = geo.stride[1]
    return sw if sw == 1 or (sw == 2 and tw <= 8) else 0


def pad(rt, x, geo, planes, H, W, hp, wp, top, left, wg, upsample=(1, 1)):
    xp = scratch(rt, (planes, hp, wp))
    kernel = get_kernel(rt, KERNELS, "pad_planes")
    lx = min(wg, hp)
    launch_grid(rt, kernel, (hp, planes), (lx, max(1, min(wg // lx, planes))),
                x, xp, planes, H, W, hp, wp, top, left, *upsample)
    return xp


def forward(rt, geo, params, x, w, bias, out, relu=False, source=None):
    """`source` = (H, W, uy, ux): x is really (N, C, H, W), to be spread out by
    (uy, ux) into geo's input (see pad_planes); None means x has geo's input shape."""
    tw, wg = int(params["TW"]), int(params["WG"])
    if int(params.get("PAD", 1)) and tw in (4, 8, 16):
        hp, wp = padded_extent(geo, tw)
        sh_, sw_, uy, ux = source if source is not None else (geo.H, geo.W, 1, 1)
        xp = pad(rt, x, geo, geo.N * geo.C, sh_, sw_, hp, wp, geo.pad_top,
                 geo.pad_left, wg, (uy, ux))
        kernel = get_kernel(rt, KERNELS, "depthwise_forward_padded",
                            {"KH": geo.kh, "KW": geo.kw, "TW": tw, "ACT": int(relu),
                             "SW": _sw(geo, tw)})
        tiles = -(-geo.Wo // tw)
        lx = min(wg, tiles)
        ly = max(1, min(wg // lx, geo.Ho))
        launch_grid(rt, kernel, (tiles, geo.Ho, geo.N * geo.K), (lx, ly, 1),
                    xp, w, bias if bias is not None else w, bias is not None, out,
                    geo.C, hp, wp, geo.K, geo.Ho, geo.Wo, *geo.stride, *geo.dilation)
        return out
    _rows(rt, geo, params, "depthwise_forward", geo.Wo, geo.Ho, geo.N * geo.K,
          x, w, bias, out, relu)
    return out


def _rows(rt, geo, params, name, width, height, planes, src, w, bias, out, relu=False):
    tw, wg = int(params["TW"]), int(params["WG"])
    kernel = get_kernel(rt, KERNELS, name,
                        {"KH": geo.kh, "KW": geo.kw, "TW": tw, "ACT": int(relu)})
    tiles = -(-width // tw)
    lx = min(wg, tiles)
    ly = max(1, min(wg // lx, height))
    launch_grid(rt, kernel, (tiles, height, planes), (lx, ly, 1),
                src, w, bias if bias is not None else w, bias is not None, out,
                geo.C, geo.H, geo.W, geo.K, geo.Ho, geo.Wo, *geo.stride,
                geo.pad_top, geo.pad_left, *geo.dilation)


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    tw = int(params["TW"])
    if geo.K == geo.C and int(params.get("PAD", 1)) and tw in (4, 8, 16):
        # multiplier 1: a stride-1 depthwise forward, with flipped windows, of grad_out
        # spread out by the stride (zeros between its elements)
        from ..ops.conv import ConvGeometry
        from .gemm import flip_weights

        (sh, sw), (dh, dw) = geo.stride, geo.dilation
        hd, wd = (geo.Ho - 1) * sh + 1, (geo.Wo - 1) * sw + 1
        tgeo = ConvGeometry(geo.N, geo.K, hd, wd, geo.C, geo.kh, geo.kw, geo.H, geo.W, (1, 1),
                            dh * (geo.kh - 1) - geo.pad_top, dw * (geo.kw - 1) - geo.pad_left,
                            geo.dilation, geo.groups)
        return forward(rt, tgeo, params, grad_out, flip_weights(rt, geo, w), bias, out,
                       source=(geo.Ho, geo.Wo, sh, sw))
    _rows(rt, geo, params, "depthwise_grad_input", geo.W, geo.H, geo.N * geo.C,
          grad_out, w, bias, out)
    return out


def grad_weight(rt, geo, params, x, grad_out, out):
    wg, tw = int(params["WG"]), int(params["TW"])
    defines = {"KH": geo.kh, "KW": geo.kw}
    rows = geo.N * geo.Ho
    taps = geo.kh * geo.kw
    partial = scratch(rt, (geo.K, rows, taps))
    lx = min(wg, rows)
    local = (lx, max(1, min(wg // lx, geo.K)))
    if int(params.get("PAD", 1)) and tw in (4, 8, 16):
        hp, wp = padded_extent(geo, tw)
        xp = pad(rt, x, geo, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top,
                 geo.pad_left, wg, (1, 1))
        kernel = get_kernel(rt, KERNELS, "depthwise_grad_weight_partial_padded",
                            dict(defines, TW=tw, SW=_sw(geo, tw)))
        launch_grid(rt, kernel, (rows, geo.K), local,
                    xp, grad_out, partial, geo.N, geo.C, hp, wp, geo.K, geo.Ho, geo.Wo,
                    *geo.stride, *geo.dilation)
    else:
        kernel = get_kernel(rt, KERNELS, "depthwise_grad_weight_partial", defines)
        launch_grid(rt, kernel, (rows, geo.K), local,
                    x, grad_out, partial, geo.N, geo.C, geo.H, geo.W, geo.K, geo.Ho,
                    geo.Wo, *geo.stride, geo.pad_top, geo.pad_left, *geo.dilation)
    kernel = get_kernel(rt, KERNELS, "depthwise_grad_weight_reduce", defines)
    launch_grid(rt, kernel, (geo.K * taps,), (min(wg, geo.K * taps),),
                partial, out, geo.K, rows)
    return out


def space(profile, geo, op):
    limit = profile.max_work_group_size
    wgs = sorted({w for w in (1, 4, 8, 12, 16, 32, 64, 128) if w <= limit} | {min(12, limit)})
    return [{"TW": tw, "WG": wg, "PAD": pad} for tw in (4, 8, 16) for wg in wgs
            for pad in (0, 1)]


def defaults(profile, geo, op):
    return {"TW": 8, "WG": profile.max_work_group_size}


DEPTHWISE = Variant("depthwise", "depthwise convolution, a row of outputs per work-item",
                    validate, {"forward": forward, "grad_input": grad_input,
                               "grad_weight": grad_weight}, space, defaults)
