"""What every convolution variant provides, and the helpers they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pyopencl.array as cla

from ..arrays import allocate
from ..build import DEFAULT_GROUP_SIZE, get_kernel, group_2d, launch_grid
from ..device import DeviceKind

LAYOUT = "im2col.cl"  # the layout kernels: im2col, col2im, flip_weights
PAD_KERNELS = "depthwise.cl"  # holds pad_planes

OPS = ("forward", "grad_input", "grad_weight")


@dataclass(frozen=True)
class Variant:
    """One algorithm family for conv2d and its gradients.

    `validate(profile, geo, op, params)` returns None when the variant can run `op` on
    geometry `geo` with tunables `params` on a device with `profile`, else the reason.
    `run[op](rt, geo, params, ...)` enqueues it. `space(profile, geo, op)` lists the
    tunable settings the tuner tries; `defaults(profile, geo, op)` is the untuned choice.
    `fit(geo, op, params)`, if given, adjusts untuned tunables (shipped or the
    variant's defaults) to the layer's shape; tuned ones are used as they were measured.
    `pack(rt, geo, params, w)`, if given, returns the weights in the layout the forward
    pass reads (the GEMM's row panels for gemm1x1 and im2col, Winograd's transformed
    weights in those panels), for layers whose weights do not change:
    `run["forward"](..., packed=that)` then skips its per-call transform.
    `test_params`: tunables besides the defaults that tests/test_variants.py runs
    (tails, loop orders, every code path the tunables select); where valid.
    """

    name: str
    description: str
    validate: Callable
    run: dict
    space: Callable
    defaults: Callable
    ops: tuple = field(default=OPS)
    fit: Callable | None = None
    pack: Callable | None = None
    test_params: tuple = ()


# VC4C, VC4CL's compiler, holds each vector (and each scalar) a work-item keeps live in a
# 16-lane QPU register of its own; its register allocator fails ("erroneous
# register-associations") on kernels that keep many. pi/vc4c/compile-programs.py
# measured depthwise kernels with 2 accumulator vectors compiling, and with 4 (MB=2 x
# TH=2) and 9 failing; variants reject settings past this on a VC4CL device.
VC4C_MAX_ACCUMULATORS = 2


def is_vc4cl(profile) -> bool:
    """A VideoCore IV GPU (VC4CL), whose compiler is VC4C."""
    return profile.kind == DeviceKind.VC4CL


def scratch(rt, shape) -> cla.Array:
    """A scratch device array from the runtime's memory pool (never poisoned: the
    kernels that fill scratch buffers write every element)."""
    return allocate(rt, shape)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def is_cpu(profile) -> bool:
    """A CPU device (see DeviceProfile.device_types)."""
    return "CPU" in profile.device_types


def fma_default(profile) -> int:
    """fma() where the device is a CPU (hardware FMA); mad() elsewhere (VC4CL has no FMA)."""
    return int(is_cpu(profile))


def padded_input_reason(profile, geo, extent: tuple[int, int]) -> str | None:
    """Why a convolution's zero-bordered input copy, planes of `extent` (rows, columns),
    cannot be one allocation on the device, or None."""
    nbytes = 4 * geo.N * geo.C * extent[0] * extent[1]
    if nbytes > profile.max_mem_alloc_size:
        return (f"padded input of {nbytes} bytes exceeds the device's max allocation "
                f"{profile.max_mem_alloc_size}")
    return None


def layout_group(rt, items: int) -> int:
    """Work-group size for the layout kernels: the device limit, capped to the items."""
    return max(1, min(items, rt.profile.max_work_group_size, DEFAULT_GROUP_SIZE))


def window_defines(geo) -> dict:
    """A convolution's window as build options (kernels_cl/window.h): KH x KW taps,
    strides SH, SW and dilations DH, DW, compiled into the kernels that take them."""
    return {"KH": geo.kh, "KW": geo.kw, "SH": geo.stride[0], "SW": geo.stride[1],
            "DH": geo.dilation[0], "DW": geo.dilation[1]}


def flip_weights(rt, geo, w):
    G = geo.groups
    wt = scratch(rt, (geo.C, geo.K // G, geo.kh, geo.kw))
    kernel = get_kernel(rt, LAYOUT, "flip_weights")
    launch_grid(rt, kernel, (geo.C,), (layout_group(rt, geo.C),),
                w, wt, geo.C, geo.C // G, geo.K // G, geo.kh * geo.kw)
    return wt


def pad(rt, x, planes, H, W, hp, wp, top, left, wg):
    """The (H, W) planes of x in (hp, wp) planes, `top` rows and `left` columns of zeros
    before them, zeros after."""
    xp = scratch(rt, (planes, hp, wp))
    kernel = get_kernel(rt, PAD_KERNELS, "pad_planes")
    launch_grid(rt, kernel, (hp, planes), group_2d(wg, hp, planes),
                x, xp, planes, H, W, hp, wp, top, left)
    return xp


def planes_per_item(geo, op, params) -> int:
    """MB: the output planes of one channel multiplier a work-item computes together
    (forward only; grad_input sums the multiplier instead). A tunable of up to 8, cut to
    the largest divisor of the multiplier, since shared loads pay only where it is > 1."""
    if op != "forward":
        return 1
    mult, mb = geo.K // geo.C, max(1, int(params.get("MB", 1)))
    while mult % mb:
        mb -= 1
    return mb
