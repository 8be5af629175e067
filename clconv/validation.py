"""Argument checks that run before anything is enqueued.

Every failure names the argument, what it got and what was expected.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np
import pyopencl.array as cla

from . import caches
from .params import INT32_MAX


@functools.lru_cache(maxsize=None)
def _parse_layout(layout: str) -> tuple[bool, int]:
    """(any leading axes allowed, rank) of a layout such as "(N, C, H, W)"."""
    axes = [a.strip() for a in layout.strip("()").split(",") if a.strip()]
    any_leading = axes[0] == "*"
    return any_leading, len(axes) - 1 if any_leading else len(axes)


caches.register("validation.layouts", _parse_layout)


def check_array(name: str, value, runtime, layout: str, dtype=np.float32) -> tuple[int, ...]:
    """Check an op's array argument and return its shape.

    `layout` names the expected axes, e.g. "(N, C, H, W)"; its length sets the rank.
    A leading "*" (as in "(*, in_features)") allows any number of leading axes.
    dtype "int" accepts any integer dtype (it is converted to int32 for the kernel).
    """
    any_leading, ndim = _parse_layout(layout)
    if isinstance(value, cla.Array):
        if value.context != runtime.context:
            raise ValueError(
                f"{name}: array belongs to another OpenCL context than clconv's current "
                f"device {runtime.profile.label!r}; copy it with clconv.to_numpy() first"
            )
        contiguous = value.flags.c_contiguous
    elif isinstance(value, np.ndarray):
        contiguous = value.flags.c_contiguous
    else:
        raise TypeError(
            f"{name}: expected a numpy.ndarray or pyopencl.array.Array, got {type(value).__name__}"
        )
    shape = tuple(int(s) for s in value.shape)
    if dtype == "int":
        if value.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected an integer dtype, got {value.dtype}; "
                            f"cast with {name}.astype(numpy.int64)")
    elif value.dtype != np.dtype(dtype):
        raise TypeError(
            f"{name}: expected dtype {np.dtype(dtype).name}, got {value.dtype}; "
            f"cast with {name}.astype(numpy.{np.dtype(dtype).name})"
        )
    if len(shape) < ndim if any_leading else len(shape) != ndim:
        rank = f"at least {ndim}-D" if any_leading else f"{ndim}-D"
        raise ValueError(f"{name}: expected a {rank} array {layout}, got shape {shape}")
    if not contiguous:
        raise ValueError(
            f"{name}: array of shape {shape} is not C-contiguous; "
            f"pass numpy.ascontiguousarray({name}) or a contiguous copy"
        )
    if 0 in shape:
        raise ValueError(f"{name}: shape {shape} has a zero-size dimension; expected {layout} "
                         f"with every size >= 1")
    return shape


def check_shape(name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(shape)}")


def check_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_int(name: str, value, minimum: int, maximum: int = INT32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {value}")
    return int(value)


def fits_device(profile, size: int, nbytes: int) -> bool:
    """Whether a buffer of `size` elements and `nbytes` bytes fits one allocation on the
    device and the kernels' int32 indices (cheap: allocate runs it on every call)."""
    return (size <= INT32_MAX and nbytes <= profile.max_mem_alloc_size
            and nbytes <= profile.global_mem_size)


def check_allocation(profile, name: str, shape, itemsize: int) -> None:
    """Raise ValueError, naming `name`, its shape and the limit, when a buffer of `shape`
    would not fit the device (see fits_device); called before anything is enqueued."""
    size = math.prod(int(s) for s in shape)
    nbytes = size * itemsize
    what = f"{name}: shape {tuple(shape)} ({size} elements, {nbytes} bytes)"
    if size > INT32_MAX:
        raise ValueError(f"{what} has more than {INT32_MAX} elements, the kernels' int32 "
                         "index range")
    if nbytes > profile.max_mem_alloc_size:
        raise ValueError(f"{what} exceeds the device's largest allocation "
                         f"(max_mem_alloc_size {profile.max_mem_alloc_size} bytes)")
    if nbytes > profile.global_mem_size:
        raise ValueError(f"{what} exceeds the device's global memory "
                         f"({profile.global_mem_size} bytes)")


def check_launch(items) -> None:
    """Raise ValueError when a launch's work-item counts leave the kernels' int32 range."""
    total = math.prod(int(n) for n in items)
    if total > INT32_MAX or min(int(n) for n in items) < 0:
        raise ValueError(f"launch of {tuple(int(n) for n in items)} work-items: expected "
                         f"between 0 and {INT32_MAX} in all (the kernels' int32 index range)")


def check_dim(name: str, dim, ndim: int) -> int:
    """A possibly negative axis, normalised to [0, ndim)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name}: expected an int axis, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}], got {dim}")
    return int(dim) % ndim
