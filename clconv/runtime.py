"""The OpenCL context, queue, memory pool and device profile that ops run on.

One runtime is current at a time. It is created lazily on the device that
`device.select_device` picks, or set explicitly with `use_device`.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from dataclasses import dataclass, field

import pyopencl as cl
import pyopencl.tools

from .device import ENV_LIMITS, DeviceProfile, select_device


@dataclass(frozen=True)
class Runtime:
    context: cl.Context
    queue: cl.CommandQueue
    profile: DeviceProfile
    allocator: cl.tools.MemoryPool  # reuses freed buffers instead of allocating per call
    selection_reason: str = ""
    # Held while a kernel's arguments are set and it is enqueued, and while the pool
    # hands out a buffer: OpenCL's clSetKernelArg is not thread-safe on one kernel
    # object, and ops from several threads share the kernels, the pool and the queue.
    lock: threading.RLock = field(default_factory=threading.RLock, compare=False,
                                  repr=False)


_current: Runtime | None = None


# Every runtime alive, so that the interpreter waits for their queues before it exits.
_runtimes: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _finish_queues():
    """Wait for enqueued work before the interpreter tears down: a script that ends with
    kernels still queued (nothing read back) left POCL compiling one of them on a worker
    thread while the process exited, which crashed in LLVM (a segfault after the
    script's last line, about 3 runs in 4 of the README's tour)."""
    for runtime in list(_runtimes):
        try:
            runtime.queue.finish()
        except cl.Error:  # a queue whose device failed has nothing left to wait for
            pass


def create_runtime(device, limits: str | None = None, reason: str = "") -> Runtime:
    """A runtime on `device`; `limits` names device limits to impose (e.g. 'videocore4')."""
    context = cl.Context([device])
    queue = cl.CommandQueue(context)
    profile = DeviceProfile.from_device(device)
    if limits:
        profile = profile.with_limits(limits)
    allocator = cl.tools.MemoryPool(cl.tools.ImmediateAllocator(queue))
    runtime = Runtime(context, queue, profile, allocator, reason)
    _runtimes.add(runtime)
    return runtime


def current() -> Runtime:
    """The runtime ops use, created on first use from the device selection rules."""
    if _current is None:
        use_device()
    return _current


def _limits_from_environment() -> str | None:
    return os.environ.get(ENV_LIMITS, "").strip() or None


def use_device(device=None, limits: str | None = None) -> Runtime:
    """Make ops run on `device` (a pyopencl.Device; None re-runs the selection rules).

    `limits` defaults to the `CLCONV_LIMITS` environment variable.

    Arrays made on the previous runtime stay valid there but cannot be passed to ops
    on the new one.
    """
    global _current
    if device is None:
        selection = select_device()
        device, reason = selection.candidate.device, selection.reason
    else:
        reason = "chosen by use_device()"
    if limits is None:
        limits = _limits_from_environment()
    _current = create_runtime(device, limits=limits, reason=reason)
    return _current
