"""What every convolution variant provides, and the helpers they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pyopencl.array as cla

from ..arrays import allocate
from ..device import DeviceKind

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
    """

    name: str
    description: str
    validate: Callable
    run: dict
    space: Callable
    defaults: Callable
    ops: tuple = field(default=OPS)
    fit: Callable | None = None


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
