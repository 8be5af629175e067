"""Moving arrays between numpy and the device, and allocating outputs."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os

import numpy as np
import pyopencl.array as cla

from . import caches
from .validation import check_allocation, check_array, check_shape, fits_device

ENV_POISON = "CLCONV_POISON_OUTPUTS"


def poison_outputs() -> bool:
    """Fill new outputs with NaN (float) or -1 (int) so elements a kernel fails to
    write show up in tests. Off by default: it costs a pass over memory."""
    return os.environ.get(ENV_POISON, "") not in ("", "0")


@functools.lru_cache(maxsize=4096)
def _layout(shape: tuple, dtype):
    """(shape as ints, dtype, size, C-contiguous strides) of a new array: shapes recur
    call after call, so even the int conversions are done once per shape."""
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    size, strides = 1, []
    for extent in reversed(shape):
        strides.append(size * dtype.itemsize)
        size *= extent
    return shape, dtype, size, tuple(reversed(strides))


caches.register("arrays.layouts", _layout)


# pyopencl's public constructor re-validates the shape with numpy on every call (about
# 9 us, more than a small kernel runs); its internal fast path skips that. Shapes here
# are already validated ints, so use it where this pyopencl has it.
_HAS_FAST_ARRAY = "_fast" in inspect.signature(cla.Array.__init__).parameters


def allocate(runtime, shape, dtype=np.float32, name: str = "output") -> cla.Array:
    """An uninitialised C-contiguous device array from the runtime's memory pool.

    Every device buffer of an op comes from here or `on_device`, so this is where sizes
    past the device (one allocation, global memory, int32 indices) become a ValueError
    naming `name`, before anything is enqueued."""
    shape, dtype, size, strides = _layout(tuple(shape), dtype)
    if not fits_device(runtime.profile, size, size * dtype.itemsize):
        check_allocation(runtime.profile, name, shape, dtype.itemsize)
    pool = _pool(runtime)
    with runtime.lock:  # the memory pool is shared by every thread's ops
        if not _HAS_FAST_ARRAY or size == 0:
            return cla.empty(runtime.queue, shape, dtype, allocator=pool)
        return cla.Array(None, shape, dtype, allocator=pool, strides=strides,
                         _fast=True, _size=size, _context=runtime.context,
                         _queue=runtime.queue)


# set by allocations_from, per thread (a ContextVar is per thread and per task)
_private_pool: contextvars.ContextVar = contextvars.ContextVar("clconv_private_pool",
                                                               default=None)


def _pool(runtime):
    """The memory pool this thread's new arrays come from."""
    return _private_pool.get() or runtime.allocator


@contextlib.contextmanager
def allocations_from(pool):
    """Within the block, this thread's new device arrays come from `pool` instead of the
    runtime's shared pool (a recorded run's buffers stay its own, see onnx/replay.py)."""
    token = _private_pool.set(pool)
    try:
        yield pool
    finally:
        _private_pool.reset(token)


def empty(runtime, shape, dtype=np.float32, name: str = "output") -> cla.Array:
    """A new output array from the runtime's memory pool (see poison_outputs)."""
    out = allocate(runtime, shape, dtype, name)
    if poison_outputs() and out.size:
        with runtime.lock:  # pyopencl's fill kernel is shared too (see Runtime.lock)
            out.fill(np.nan if out.dtype.kind == "f" else -1)
    return out


def output(runtime, shape, out=None, name: str = "out") -> cla.Array:
    """Where an op writes its result: a new array (see empty), or `out`, a float32 device
    array of exactly `shape` at offset 0 (kernels take plain buffers), which the caller
    lets the op overwrite (torch's out=)."""
    if out is None:
        return empty(runtime, shape)
    check_shape(name, check_array(name, out, runtime, "(*)"), shape)
    if not isinstance(out, cla.Array) or out.offset != 0:
        raise ValueError(f"{name}: expected a device array (pyopencl) at offset 0 to write "
                         "into, got " + (type(out).__name__ if not isinstance(out, cla.Array)
                                         else f"an array at offset {out.offset}"))
    return out


def image_stride(x) -> int | None:
    """Floats from one image of `x` to the next when `x` is a device array (N, ...) of
    float32 images each C-contiguous but lying further apart than their size (a channel
    slice of a concatenation of several images, as ONNX plans write in place:
    onnx/placement.py); None for any other array. Ops that take such an array say so."""
    if (not isinstance(x, cla.Array) or x.ndim < 2 or x.dtype != np.float32
            or x.flags.c_contiguous or x.offset != 0):
        return None
    _, _, per_image, inner = _layout(tuple(x.shape[1:]), np.float32)
    if tuple(x.strides[1:]) != inner or x.strides[0] % 4:
        return None
    stride = x.strides[0] // 4
    return stride if stride > per_image else None


def check_images(name: str, value, runtime, layout: str) -> tuple[int, ...]:
    """check_array's shape of `value`, which may also be strided images (image_stride)
    or zero-bordered planes (border) on the runtime's device: for the ops that take
    those."""
    if ((image_stride(value) is not None or border(value) is not None)
            and value.context == runtime.context):
        return tuple(int(s) for s in value.shape)
    return check_array(name, value, runtime, layout)


def bordered_planes(queue, buffer, shape, pad: int) -> cla.Array:
    """A device array (N, C, H, W) whose planes lie inside zero-bordered ones of
    (H + 2*pad) x (W + 2*pad) floats in `buffer`, one after another: a convolution of
    padding `pad` reads the bordered planes as they are, with no padding pass (the
    ONNX plans' zero-bordered tensors, onnx/borders.py). Whoever owns `buffer` keeps
    its borders zero; kernels that take such an array write inside the borders only."""
    n, c, h, w = (int(s) for s in shape)
    hp, wp = h + 2 * pad, w + 2 * pad
    return cla.Array(queue, (n, c, h, w), np.float32, data=buffer,
                     offset=(pad * wp + pad) * 4,
                     strides=(c * hp * wp * 4, hp * wp * 4, wp * 4, 4))


def border(x) -> int | None:
    """The zero border's width when `x` is bordered_planes' array; None for any other."""
    if (not isinstance(x, cla.Array) or x.ndim != 4 or x.dtype != np.float32
            or x.strides[3] != 4 or x.strides[2] % 4):
        return None
    n, c, h, w = (int(s) for s in x.shape)
    wp = x.strides[2] // 4
    pad = (wp - w) // 2
    if pad < 1 or wp != w + 2 * pad:
        return None
    hp = h + 2 * pad
    if (x.strides[1] != hp * wp * 4 or x.strides[0] != c * hp * wp * 4
            or x.offset != (pad * wp + pad) * 4):
        return None
    return pad


def padded_planes(x) -> cla.Array:
    """The zero-bordered planes (N, C, H + 2*pad, W + 2*pad) around `x`, an array of
    bordered_planes: C-contiguous, at offset 0 of its buffer."""
    pad = border(x)
    if pad is None:
        raise ValueError("padded_planes: expected zero-bordered planes (arrays.bordered_planes)")
    n, c, h, w = (int(s) for s in x.shape)
    return cla.Array(x.queue, (n, c, h + 2 * pad, w + 2 * pad), np.float32, data=x.base_data)


def strided_images(queue, buffer, shape, stride: int) -> cla.Array:
    """A device array of shape (N, ...) over `buffer` whose images lie `stride` floats
    apart (see image_stride)."""
    _, _, _, inner = _layout(tuple(shape[1:]), np.float32)
    return cla.Array(queue, tuple(shape), np.float32, data=buffer, strides=(stride * 4,) + inner)


def on_device(runtime, value, dtype=np.float32, name: str = "input") -> cla.Array:
    """`value` (already validated) as an offset-0 device array on `runtime`."""
    if isinstance(value, cla.Array):
        # Kernels take plain buffers, so a view with an offset is copied once.
        if value.offset == 0:
            return value
        with runtime.lock:
            return value.copy()
    host = np.ascontiguousarray(value, dtype=dtype)
    if not fits_device(runtime.profile, host.size, host.nbytes):
        check_allocation(runtime.profile, name, host.shape, host.itemsize)
    with runtime.lock:
        return cla.to_device(runtime.queue, host, allocator=_pool(runtime))


def to_numpy(value) -> np.ndarray:
    """A numpy copy of a device array (numpy arrays pass through)."""
    if isinstance(value, cla.Array):
        return value.get()
    return np.asarray(value)
