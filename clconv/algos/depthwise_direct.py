"""Depthwise convolution loading straight from global memory, for CPU devices.

One work-item per MB output planes and band of rows, local size 1, the plane sizes and
padding compiled in (depthwise_direct.cl): no padding pass, no local-memory block, no
barrier. On POCL it ran the bench's small depthwise layers 1.7-4x faster than
depthwise_local, whose block copy and work-group of vector lanes cost more than the
convolution itself there. On GPUs a local size of 1 would leave most lanes idle, so the
heuristic takes it on CPUs only.

forward; grad_input at stride 1 (the forward of the flipped windows, summing the
multiplier's planes; the depthwise variant gathers strided ones); grad_weight, one
work-item per output channel summing its taps' products over the images and rows.
"""
from __future__ import annotations

from .. import caches
from ..build import get_kernel, launch_grid
from ..epilogue import NO_ACTIVATION
from ..geometry import grad_input_as_forward
from .base import Variant, flip_weights, fma_default, is_vc4cl, planes_per_item, \
    window_defines
from .depthwise import MAX_WINDOW, is_depthwise

KERNELS = "depthwise_direct.cl"
GRAD_WEIGHT_KERNELS = "depthwise_direct_grad_weight.cl"
WIDTHS = (4, 8, 16)
MAX_UNROLLED = 4096  # multiply-adds per output row, all unrolled; past it, code bloats


def validate(profile, geo, op, params):
    if not is_depthwise(geo):
        return "only depthwise convolutions (groups == in_channels)"
    if is_vc4cl(profile):
        # VC4CL runs a work-group's work-items on its 12 QPUs: groups of one leave 11
        # idle. And VC4C failed on some of its programs (e.g. 2x2 strides over 2-row
        # planes: "Normalizer: Invalid local type for memory area"; the weight
        # gradient's one accumulator vector per tap past a few taps).
        return "a CPU variant (work-groups of one); on VC4CL the depthwise variant runs"
    if geo.kh * geo.kw > MAX_WINDOW:
        return f"window {geo.kh}x{geo.kw} larger than {MAX_WINDOW} elements"
    tw, mb, th = int(params["TW"]), int(params.get("MB", 1)), int(params.get("TH", 0))
    if tw not in WIDTHS:
        return f"TW={tw}: expected a vector width, 4, 8 or 16"
    if not 1 <= mb <= 8:
        return f"MB={mb} outside 1..8"
    if th < 0:
        return f"TH={th}: expected rows per work-item, or 0 for the device's choice"
    if op == "grad_input":
        if geo.stride != (1, 1):
            return "grad_input at stride 1 only (the depthwise variant gathers strided ones)"
        geo, mb = grad_input_as_forward(geo), 1
    elif op == "grad_weight":
        mb = 1
    else:
        mb = planes_per_item(geo, "forward", params)
    if geo.stride[1] not in (1, 2):
        return f"column stride {geo.stride[1]}: vector loads need 1 or 2"
    unrolled = -(-geo.Wo // tw) * geo.kh * geo.kw * mb  # not the R loop
    if unrolled > MAX_UNROLLED:
        return f"{unrolled} unrolled multiply-adds per output row, more than {MAX_UNROLLED}"
    return None


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION):
    return _run(rt, geo, params, x, w, bias, out, geo.K, geo.K // geo.C, 1,
                planes_per_item(geo, "forward", params), act)


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    """The forward of the flipped windows over grad_out, each input plane summing the
    multiplier's gradient planes."""
    mult = geo.K // geo.C
    return _run(rt, grad_input_as_forward(geo), params, grad_out, flip_weights(rt, geo, w),
                bias, out, geo.C, 1, mult, 1)


def grad_weight(rt, geo, params, x, grad_out, out):
    kernel = _kernel(rt, geo, params, GRAD_WEIGHT_KERNELS, "depthwise_direct_grad_weight")
    launch_grid(rt, kernel, (geo.K,), (1,),
                x, grad_out, out, geo.N, geo.C, geo.K, geo.K // geo.C)
    return out


def _kernel(rt, geo, params, filename, name, **defines):
    """`name` built for geo's window, plane sizes and padding, and the tunables.
    Memoised on the arguments: spelling out the build options is a dozen lookups, which
    cost a small layer's call more than its launch."""
    key = (rt.context, rt.profile, geo, name, tuple(params.items()), tuple(defines.items()))
    kernel = _kernels.get(key)
    if kernel is None:
        if "PORTABLE" in params:  # else the kernel picks: clang's builtin where it can
            defines["PORTABLE_SHIFTS"] = int(params["PORTABLE"])
        kernel = _kernels[key] = get_kernel(rt, filename, name, {
            **window_defines(geo), "IN_H": geo.H, "IN_W": geo.W,
            "OUT_H": geo.Ho, "OUT_W": geo.Wo, "PAD_T": geo.pad_top,
            "PAD_L": geo.pad_left, "TW": int(params["TW"]),
            "USE_FMA": int(params.get("FMA", fma_default(rt.profile))), **defines})
    return kernel


_kernels: dict = caches.memo("depthwise_direct.kernels")


def _run(rt, geo, params, x, w, bias, out, planes_out, mult, reduce, mb, act=NO_ACTIVATION):
    """Output plane o of `planes_out` sums `reduce` planes of geo's input from
    (o // mult) * reduce (see depthwise_direct.cl)."""
    kernel = _kernel(rt, geo, params, KERNELS, "depthwise_direct", MB=mb, R=reduce,
                     **act.defines)
    groups = geo.N * planes_out // mb
    rows = _rows_per_item(rt.profile, geo.Ho, groups, int(params.get("TH", 0)))
    launch_grid(rt, kernel, (groups, -(-geo.Ho // rows)), (1, 1),
                x, w, bias if bias is not None else w, bias is not None, out,
                geo.C, planes_out, mult, rows, *act.scalars)
    return out


def _rows_per_item(profile, height, groups, rows) -> int:
    """`rows` if set, else the whole plane, split into bands only until there are a few
    work-items per compute unit."""
    if rows:
        return min(rows, height)
    bands = min(height, -(-4 * profile.compute_units // groups))
    return -(-height // bands)


def fit(geo, op, params):
    """Untuned TW: the widest that the rows hold (a span of TW outputs' inputs in one
    load; narrower planes fall back to single loads)."""
    params = dict(params)
    tgeo = grad_input_as_forward(geo) if op == "grad_input" else geo
    span = tgeo.stride[1] if tgeo.stride[1] in (1, 2) else 1
    tw = int(params["TW"])
    while tw > WIDTHS[0] and (tw * span > tgeo.W or tw > tgeo.Wo):
        tw //= 2
    params["TW"] = tw
    return params


def space(profile, geo, op):
    if op == "grad_weight":  # neither planes per work-item nor row bands
        return [{"TW": tw} for tw in WIDTHS]
    mbs = (1, 2, 4, 8) if op == "forward" and geo.K > geo.C else (1,)
    return [{"TW": tw, "MB": mb, "TH": th} for tw in WIDTHS for mb in mbs for th in (0, 1, 4)]


def defaults(profile, geo, op):
    return {"TW": 16, "MB": 8, "TH": 0}


DEPTHWISE_DIRECT = Variant(
    "depthwise_direct",
    "depthwise convolution loading from global memory, no local memory (CPUs)",
    validate, {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight},
    space, defaults, fit=fit,
    # mad, row bands, the portable shifts
    test_params=({"TW": 4, "MB": 2, "TH": 1, "FMA": 0},
                 {"TW": 16, "MB": 3, "TH": 4, "PORTABLE": 1},
                 {"TW": 8, "MB": 1, "TH": 0, "PORTABLE": 1}))
