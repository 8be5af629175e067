"""A compiled model's prepared launch list: one run recorded, then replayed.

A run step by step spends Python time on every step: checks, variant lookups, array
objects, argument packing. On a 2-core CPU that time is not hidden behind the kernels,
since POCL's threads and Python share the cores. So after a model's first run (which
builds the kernels and packs the weights), its next run is recorded: every kernel launch
and buffer copy, in order, with its arguments (build.recording). Later runs copy the
inputs into the recorded input buffers and enqueue the list again.

The recorded run allocates from a pool of its own (arrays.allocations_from, a
RecyclingPool), so buffers are still reused within the run as the plan's liveness
allows, the one freed last first, and afterwards belong to the list alone: no other op
can be handed one of them. Launches are recorded with handles of their own on their
buffers (build.recording), so a recorded launch does not keep an array's buffer from
going back to the pool.

A list is trusted only once it has proved itself: a step-by-step run and a replay on a
second, random input must agree bit for bit (a write the recording missed, such as an
upload or a kernel enqueued outside build.enqueue, would make them differ). Otherwise
the model keeps running step by step, and `CompiledModel.replay_note` says why.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from ..arrays import allocations_from, on_device
from ..build import recording, scalar_dtype

ENV_REPLAY = "CLCONV_REPLAY"  # "0" runs every model step by step


def _bound(kernel: cl.Kernel, args) -> cl.Kernel:
    """A kernel object of this launch's own, its arguments set once: a replay then only
    enqueues it (setting a shared kernel's arguments on every launch was most of a
    replay's host time)."""
    own = cl.Kernel(kernel.program, kernel.function_name)
    own.set_scalar_arg_dtypes([scalar_dtype(a) for a in args])
    own.set_args(*args)
    return own


class LaunchList:
    """Every launch and copy of one recorded run, and the arrays its inputs were
    uploaded into and its outputs were left in."""

    def __init__(self, runtime, entries, inputs: dict, outputs: dict, scratch_blocks=()):
        """scratch_blocks: the device buffers the recorded run's arrays lay in (its
        RecyclingPool's blocks), which the list's launches keep."""
        self.runtime, self.inputs, self.outputs = runtime, inputs, outputs
        # kept here, not only through the launches' handles: a launch that writes a
        # slice of a block holds a sub-buffer, which on POCL does not keep its parent's
        # memory (a replay whose concatenation block was freed crashed, session 25)
        self.blocks = tuple(scratch_blocks)
        self.scratch_bytes = sum(block.size for block in scratch_blocks)
        self.scratch_count = len(scratch_blocks)
        self.entries = []
        for kind, *entry in entries:
            if kind == "kernel":
                kernel, global_size, local_size, args = entry
                self.entries.append((_bound(kernel, args),
                                     global_size, local_size, None))
            else:
                dest, source, region = entry
                self.entries.append((None, dest, source, region))

    def __len__(self):
        return len(self.entries)

    def run(self, feeds: dict) -> dict:
        """Enqueue the recorded run on `feeds` (float32 arrays of the recorded shapes,
        numpy or device arrays); returns the output arrays, which the next run
        overwrites."""
        self.enqueue(feeds, self.runtime.queue)
        return self.outputs

    def enqueue(self, feeds: dict, queue) -> list:
        """Enqueue the run on `queue` (the runtime's, or another queue of its device, such
        as a profiling one: onnx/profiling.py); returns each entry's (label, event) in
        order, the label a kernel's name or "buffer copy"."""
        rt = self.runtime
        events = []
        with rt.lock:  # the kernels' arguments are set on shared kernel objects
            for name, array in self.inputs.items():
                value = feeds[name]
                if isinstance(value, cla.Array):
                    value = on_device(rt, value)  # a view with an offset is copied first
                    cl.enqueue_copy(queue, array.base_data, value.base_data,
                                    byte_count=array.nbytes, dst_offset=array.offset)
                else:
                    cl.enqueue_copy(queue, array.base_data,
                                    np.ascontiguousarray(value, np.float32),
                                    dst_offset=array.offset, is_blocking=False)
            for kernel, first, second, rest in self.entries:
                if kernel is not None:
                    events.append((kernel.function_name,
                                   cl.enqueue_nd_range_kernel(queue, kernel, first, second)))
                else:
                    events.append(("buffer copy", cl.enqueue_copy(queue, first, second, **rest)))
        return events


class _Lease:
    """A block handed out by a RecyclingPool, back in the pool when the buffer handle
    that carries it (and so every array over it) is gone."""

    def __init__(self, pool, block):
        self.pool, self.block = pool, block

    def __del__(self):
        self.pool.free.append(self.block)


class RecyclingPool:
    """The recorded run's allocator (a callable, as pyopencl's allocators are): a new
    array gets the most recently freed block that holds it, else a block of its own.
    pyopencl's MemoryPool hands a freed block only to an array of its own size class,
    so a model's tensors of many sizes each took fresh memory: SqueezeNet's run touched
    ~20 MB, and a layer writing memory last touched a whole run before ran up to 2-3x
    slower than into memory still in the caches (docs/performance.md). Here the block a
    step just let go of, still cached, is the next one written. A block may go to an
    array smaller than itself, and a larger one then take a block of its own; for the
    four model-zoo nets measured the run kept 1.2-3x less memory than in size classes."""

    def __init__(self, context):
        self.context = context
        self.free: list[cl.Buffer] = []  # freed blocks, the most recent last
        self.blocks: list[cl.Buffer] = []

    def __call__(self, nbytes: int) -> cl.Buffer:
        nbytes = max(int(nbytes), 1)
        for i in range(len(self.free) - 1, -1, -1):
            if self.free[i].size >= nbytes:
                block = self.free.pop(i)
                break
        else:
            block = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, nbytes)
            self.blocks.append(block)
        # a handle of its own on the block's memory, carrying the lease: arrays and
        # their views hold the handle, recorded launches a retained handle of their own
        handle = cl.Buffer.from_int_ptr(block.int_ptr, retain=True)
        handle.lease = _Lease(self, block)
        return handle


def record(run_steps, runtime, feeds: dict):
    """Run `run_steps(feeds)` (a function returning the input arrays and {output name:
    array}) while recording it into a LaunchList, its buffers from a pool of their own.
    Returns the list and the run's outputs."""
    pool = RecyclingPool(runtime.context)
    with allocations_from(pool), recording(runtime) as entries:
        inputs, outputs = run_steps(feeds)
    device_outputs = {name: array for name, array in outputs.items()
                      if isinstance(array, cla.Array)}
    return LaunchList(runtime, entries, inputs, device_outputs, pool.blocks), outputs


def verification_feeds(shapes: dict, seed: int = 0) -> dict:
    """A second input, unlike the recorded one, to check a replay against."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32)
            for name, shape in shapes.items()}


def same_bits(first, second) -> bool:
    """Two results equal element for element, NaN where NaN."""
    first, second = np.asarray(first), np.asarray(second)
    return (first.shape == second.shape and first.dtype == second.dtype
            and np.array_equal(first, second, equal_nan=first.dtype.kind == "f"))
