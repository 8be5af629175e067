"""Depthwise convolution (groups == in_channels) and its gradients, window compiled in.

forward and stride-1 grad_input: a TH x TW block of outputs per work-item. PAD=0: each
work-group copies the input block it reads, zero border included, into local memory;
PAD=1: a pass first writes a zero-bordered copy of the whole input to global memory.
Other grad_inputs (strided, a multiplier over 8, or a multiplier with PAD=1) gather: a
block of input pixels per work-item, the taps that reach each compiled in
(depthwise_grad_input). With a channel multiplier (LeNet's first layer: 1 -> 6
channels), a forward work-item computes MB of the multiplier's output planes from each
tap it loads.
grad_weight sums per (image row, channel) partials, then reduces them (no atomics)."""
from __future__ import annotations

import pyopencl as cl

from ..build import get_kernel, group_2d, launch_grid, resolve_local, spread_groups
from ..epilogue import NO_ACTIVATION
from ..geometry import grad_input_as_forward
from .base import VC4C_MAX_ACCUMULATORS, Variant, flip_weights, is_vc4cl, pad, planes_per_item, \
    scratch

KERNELS = "depthwise.cl"
MAX_WINDOW = 49  # kh*kw compiled in and unrolled; bigger windows take another variant


def is_depthwise(geo) -> bool:
    return geo.groups == geo.C


def validate(profile, geo, op, params):
    if not is_depthwise(geo):
        return "only depthwise convolutions (groups == in_channels)"
    if geo.kh * geo.kw > MAX_WINDOW:
        return f"window {geo.kh}x{geo.kw} larger than {MAX_WINDOW} elements"
    tw, wg, th = int(params["TW"]), int(params["WG"]), int(params.get("TH", 1))
    if tw not in (4, 8, 16):
        return f"TW={tw}: expected a vector width, 4, 8 or 16"
    if not 1 <= th <= 8:
        return f"TH={th} outside 1..8"
    if not 1 <= int(params.get("MB", 1)) <= 8:
        return f"MB={params['MB']} outside 1..8"
    if not 1 <= wg <= profile.max_work_group_size:
        return f"WG={wg} exceeds the device's max work-group size {profile.max_work_group_size}"
    if is_vc4cl(profile):
        reason = _vc4c_reason(geo, params)
        if reason is not None:
            return reason
    block_geo, reduce = geo, 1
    if op == "grad_input":
        if not _grad_input_is_local(geo, params):
            return None  # the padded or the gathering kernel: no local memory
        block_geo, reduce = grad_input_as_forward(geo), geo.K // geo.C
    if not int(params.get("PAD", 1)):
        _, _, lx, ly = _local_shape(profile, block_geo, params,
                                    planes_per_item(geo, op, params))
        need = _block_bytes(block_geo, params, lx, ly, reduce)
        if need > profile.local_mem_size:
            return f"input block needs {need} bytes of local memory, the device has " \
                   f"{profile.local_mem_size}"
    return None


VC4C_MAX_STRIDED_TAPS = 18  # stride cells x window taps that depthwise_grad_input unrolls
VC4C_MAX_STRIDE_CELLS = 2  # its SH*SW accumulator vectors


def _vc4c_reason(geo, params):
    """Settings whose programs VC4C cannot compile (see VC4C_MAX_ACCUMULATORS). The
    gathering grad_input kernel, in every program built with a row stride compiled in,
    keeps SH*SW vectors and unrolls SH*SW*KH*KW taps: measured, 2x1 and 1x2 strides
    with 3x3 windows (18) compiled; 1x2 with 5x5 (50 taps) failed; 2x2 strides compiled
    with 2x1 and 1x4 windows but failed with 4x1 and 3x3, and 3x3 strides with 2x1.
    (This rejects 2x2-strided layers for every op, though only the programs of the
    gathering grad_input and of depthwise_local compile the row stride in.)
    depthwise_local keeps MB*TH vectors. Spans of 16 floats failed too."""
    (sh, sw), limit = geo.stride, VC4C_MAX_ACCUMULATORS
    if int(params["TW"]) > 8:
        return (f"TW={params['TW']}: VC4C failed to allocate registers for float16 spans "
                "(a 3x4 window); TW=4 or 8")
    if sh * sw > VC4C_MAX_STRIDE_CELLS:
        return (f"stride {sh}x{sw}: depthwise_grad_input keeps {sh * sw} accumulator "
                f"vectors, VC4C compiles {VC4C_MAX_STRIDE_CELLS} (4 on some tries only)")
    taps = sh * sw * geo.kh * geo.kw
    if sh * sw > 1 and taps > VC4C_MAX_STRIDED_TAPS:
        return (f"stride {sh}x{sw} with a {geo.kh}x{geo.kw} window: depthwise_grad_input "
                f"unrolls {taps} strided taps, VC4C compiles at most {VC4C_MAX_STRIDED_TAPS}")
    local = int(params.get("PAD", 1)) == 0
    held = int(params.get("MB", 1)) * int(params.get("TH", 1)) if local else 1
    if held > limit:
        return (f"MB={params.get('MB', 1)} x TH={params.get('TH', 1)}: depthwise_local keeps "
                f"{held} accumulator vectors, VC4C compiles at most {limit}")
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


def _local_sw(geo) -> int:
    """depthwise_local's compiled-in column stride: 1, or 2 (its block is stored
    deinterleaved, see fill_block), else 0 (gathered)."""
    return geo.stride[1] if geo.stride[1] in (1, 2) else 0


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION):
    tw, wg = int(params["TW"]), int(params["WG"])
    if not int(params.get("PAD", 1)):
        return _local(rt, geo, params, x, w, bias, out, geo.K, geo.K // geo.C, 1,
                     (geo.pad_top, geo.pad_left), act,
                     planes_per_item(geo, "forward", params))
    hp, wp = padded_extent(geo, tw)
    xp = pad(rt, x, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top, geo.pad_left, wg)
    kernel = get_kernel(rt, KERNELS, "depthwise_forward_padded",
                        {"KH": geo.kh, "KW": geo.kw, "TW": tw, **act.defines,
                         "SW": _sw(geo, tw)})
    tiles = -(-geo.Wo // tw)
    launch_grid(rt, kernel, (tiles, geo.Ho, geo.N * geo.K), group_2d(wg, tiles, geo.Ho) + (1,),
                xp, w, bias if bias is not None else w, bias is not None, out,
                geo.C, hp, wp, geo.K, geo.Ho, geo.Wo, *geo.stride, *geo.dilation, *act.scalars)
    return out


def _local_shape(profile, geo, params, mb=1):
    """(tiles, bands, lx, ly): TW x TH output blocks across and down a plane, and the
    local size asked for (one plane per work-group). Groups shrink until there are a
    few per compute unit: a group's work-items share one input block, so too few
    groups would leave compute units idle."""
    tw, wg, th = int(params["TW"]), int(params["WG"]), int(params.get("TH", 1))
    tiles, bands = -(-geo.Wo // tw), -(-geo.Ho // th)
    planes = geo.N * geo.K // mb  # plane groups (geo is the transposed one for grad_input)
    lx, ly = spread_groups(profile, group_2d(wg, tiles, bands), tiles, bands, planes)
    return tiles, bands, lx, ly


def _block_bytes(geo, params, lx, ly, reduce=1):
    """Local memory for the `reduce` input blocks a work-group of (lx, ly) reads."""
    tw, th = int(params["TW"]), int(params.get("TH", 1))
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    bw = (lx * tw - 1) * sw + (geo.kw - 1) * dw + 1
    pitch = -(-bw // 8) * 8  # rows padded to whole vectors (block_pitch in depthwise.cl)
    bh = (ly * th - 1) * sh + (geo.kh - 1) * dh + 1
    return 4 * pitch * bh * reduce


def _local(rt, geo, params, x, w, bias, out, planes_out, mult, reduce, padding,
           act=NO_ACTIVATION, mb=1):
    """depthwise_local: output plane o of `planes_out` sums `reduce` input planes of
    geo's input, starting at (o // mult) * reduce (see depthwise.cl)."""
    tw, th = int(params["TW"]), int(params.get("TH", 1))
    kernel = get_kernel(rt, KERNELS, "depthwise_local",
                        {"KH": geo.kh, "KW": geo.kw, "TW": tw, "TH": th, **act.defines,
                         "SW": _local_sw(geo), "SH": geo.stride[0], "DH": geo.dilation[0],
                         "DW": geo.dilation[1], "R": reduce, "MB": mb})
    tiles, bands, lx, ly = _local_shape(rt.profile, geo, params, mb)
    items = (tiles, bands, geo.N * planes_out // mb)
    local = resolve_local(rt, kernel, items, (lx, ly, 1))
    block = cl.LocalMemory(_block_bytes(geo, params, local[0], local[1], reduce))
    launch_grid(rt, kernel, items, local,
                x, w, bias if bias is not None else w, bias is not None, out, block,
                geo.C, geo.H, geo.W, planes_out, geo.Ho, geo.Wo, mult, geo.stride[1],
                *padding, *act.scalars)
    return out


MAX_LOCAL_REDUCE = 8  # grad_input sums this many planes at most in depthwise_local


def _grad_input_is_local(geo, params) -> bool:
    return geo.stride == (1, 1) and geo.K // geo.C <= MAX_LOCAL_REDUCE \
        and not int(params.get("PAD", 1))


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    mult = geo.K // geo.C
    if _grad_input_is_local(geo, params):
        tgeo = grad_input_as_forward(geo)
        return _local(rt, tgeo, params, grad_out, flip_weights(rt, geo, w), bias, out,
                      geo.C, 1, mult, (tgeo.pad_top, tgeo.pad_left))
    if geo.stride == (1, 1) and mult == 1:  # PAD=1: the padded forward, flipped windows
        return forward(rt, grad_input_as_forward(geo), params, grad_out,
                       flip_weights(rt, geo, w), bias, out)
    # strided, a multiplier over 8, or a multiplier with PAD=1: gather
    tw, wg = int(params["TW"]), int(params["WG"])
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    tb = max(v for v in (2, 4, 8, 16) if v <= max(2, tw // sw))
    across, down = -(-geo.W // (sw * tb)), -(-geo.H // sh)  # work-items: TB blocks, rows
    # the gradient's zero border: every tap's rows and columns offsets (exact divisions)
    rows = [(j + geo.pad_top - k * dh) // sh for j in range(sh) for k in range(geo.kh)
            if (j + geo.pad_top - k * dh) % sh == 0]
    cols = [(j + geo.pad_left - k * dw) // sw for j in range(sw) for k in range(geo.kw)
            if (j + geo.pad_left - k * dw) % sw == 0]
    top, left = max(0, -min(rows)), max(0, -min(cols))
    hq = top + max(geo.Ho, down + max(rows))
    wq = left + max(geo.Wo, across * tb + max(cols))
    dyp = pad(rt, grad_out, geo.N * geo.K, geo.Ho, geo.Wo, hq, wq, top, left, wg)
    kernel = get_kernel(rt, KERNELS, "depthwise_grad_input",
                        {"KH": geo.kh, "KW": geo.kw, "TB": tb, "SH": sh, "SW": sw,
                         "DH": dh, "DW": dw})
    launch_grid(rt, kernel, (across, down, geo.N * geo.C), group_2d(wg, across, down) + (1,),
                dyp, w, bias if bias is not None else w, bias is not None, out,
                geo.C, geo.H, geo.W, geo.K, hq, wq, geo.pad_top, geo.pad_left, top, left)
    return out


def grad_weight(rt, geo, params, x, grad_out, out):
    wg, tw = int(params["WG"]), int(params["TW"])
    defines = {"KH": geo.kh, "KW": geo.kw}
    rows = geo.N * geo.Ho
    taps = geo.kh * geo.kw
    partial = scratch(rt, (geo.K, rows, taps))
    local = group_2d(wg, rows, geo.K)
    if int(params.get("PAD", 1)) and tw in (4, 8, 16):
        hp, wp = padded_extent(geo, tw)
        xp = pad(rt, x, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top, geo.pad_left,
                 wg)
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
    mbs = (1, 2, 4, 8) if op == "forward" and geo.K > geo.C else (1,)
    return [{"TW": tw, "TH": th, "WG": wg, "PAD": pad, "MB": mb} for tw in (4, 8, 16)
            for th in (1, 2, 4, 7) for wg in wgs for pad in (0, 1)
            for mb in (mbs if pad == 0 else (1,))]  # the padded kernel has no MB


def defaults(profile, geo, op):
    return {"TW": 8, "TH": 2, "WG": profile.max_work_group_size, "PAD": 0, "MB": 1}


DEPTHWISE = Variant("depthwise", "depthwise convolution, a row of outputs per work-item",
                    validate, {"forward": forward, "grad_input": grad_input,
                               "grad_weight": grad_weight}, space, defaults,
                    # tile widths and heights, multipliers, padded and local-memory paths
                    test_params=({"TW": 4, "TH": 3, "WG": 5, "PAD": 0, "MB": 4},
                                 {"TW": 8, "TH": 2, "WG": 2, "PAD": 0, "MB": 2},
                                 {"TW": 4, "WG": 7, "PAD": 1},
                                 {"TW": 16, "TH": 2, "WG": 1, "PAD": 1},
                                 {"TW": 8, "TH": 1, "WG": 3, "PAD": 0},
                                 {"TW": 16, "TH": 3, "WG": 8, "PAD": 0}))
