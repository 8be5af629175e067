"""Depthwise convolution forward: each work-item a run of TW outputs of one row, window
compiled in. The gradients use the direct kernels."""
from __future__ import annotations

from ..build import get_kernel, launch_grid
from .base import Variant

KERNELS = "depthwise.cl"
MAX_WINDOW = 49  # kh*kw compiled in and unrolled; bigger windows take another variant


def is_depthwise(geo) -> bool:
    return geo.groups == geo.C


def validate(profile, geo, op, params):
    if op != "forward":
        return "forward only (the gradients use the direct kernels)"
    if not is_depthwise(geo):
        return "only depthwise convolutions (groups == in_channels)"
    if geo.kh * geo.kw > MAX_WINDOW:
        return f"window {geo.kh}x{geo.kw} larger than {MAX_WINDOW} elements"
    tw, wg = int(params["TW"]), int(params["WG"])
    if not 1 <= tw <= 32:
        return f"TW={tw} outside 1..32"
    if not 1 <= wg <= profile.max_work_group_size:
        return f"WG={wg} exceeds the device's max work-group size {profile.max_work_group_size}"
    return None


def forward(rt, geo, params, x, w, bias, out, relu=False):
    tw, wg = int(params["TW"]), int(params["WG"])
    kernel = get_kernel(rt, KERNELS, "depthwise_forward",
                        {"KH": geo.kh, "KW": geo.kw, "TW": tw, "ACT": int(relu)})
    tiles = -(-geo.Wo // tw)
    lx = min(wg, tiles)
    ly = max(1, min(wg // lx, geo.Ho))
    launch_grid(rt, kernel, (tiles, geo.Ho, geo.N * geo.K), (lx, ly, 1),
                x, w, bias if bias is not None else w, bias is not None, out,
                geo.C, geo.H, geo.W, geo.K, geo.Ho, geo.Wo, *geo.stride,
                geo.pad_top, geo.pad_left, *geo.dilation)
    return out


def space(profile, geo, op):
    wgs = sorted({w for w in (1, 4, 8, 12, 16, 32, 64) if w <= profile.max_work_group_size})
    return [{"TW": tw, "WG": wg} for tw in (4, 8, 16) for wg in wgs]


def defaults(profile, geo, op):
    return {"TW": 8, "WG": min(8, profile.max_work_group_size)}


DEPTHWISE = Variant("depthwise", "depthwise convolution, a row of outputs per work-item",
                    validate, {"forward": forward}, space, defaults, ops=("forward",))
