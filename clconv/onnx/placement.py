"""Concatenation without copies: the steps that produce a Concat's inputs write straight
into their slice of its output.

Along the channel axis of one image (every axis before the concatenation's has size 1)
each input is one contiguous run of the output's buffer. OpenCL names such a run as a
buffer of its own (a sub-buffer) when its start is a multiple of the device's
CL_DEVICE_MEM_BASE_ADDR_ALIGN, and kernels write into it unchanged. A Concat whose
output is itself an input of a later one (DenseNet's growing blocks, Inception's
modules feeding a pool) lies in that one's buffer, so a dense block shares one buffer
and its Concat steps copy nothing.

The buffers that hold concatenations belong to the compiled model and are reused by
every run (ConcatArena); tensors the graph returns never live in them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from .steps import ConcatStep


@dataclass(frozen=True)
class Slot:
    root: str     # the Concat output whose buffer holds the tensor
    offset: int   # where the tensor starts in it, in float32 elements


def place_concat_inputs(plan, align_bytes: int) -> dict[str, Slot]:
    """Slots for every tensor that can be written in place, and each Concat step's
    in_place set accordingly. Later Concats are placed first, so an earlier one that
    feeds them is already known to lie inside their buffer."""
    steps = plan.steps
    producer = {name: step for step in steps for name in step.outputs}
    escaping = _returned(plan)
    slots: dict[str, Slot] = {}
    for step in reversed(steps):
        if not isinstance(step, ConcatStep):
            continue
        step.in_place = ()
        name, shape, axis = step.outputs[0], step.output_shapes[0], step.axis
        if int(np.prod(shape[:axis])) != 1 or name in escaping:
            continue  # slices would not be contiguous, or the buffer must outlive the run
        base = slots.get(name, Slot(name, 0))
        inner = int(np.prod(shape[axis + 1:]))
        offset, in_place = base.offset, []
        for position, source in enumerate(step.inputs):
            maker = producer.get(source)
            if (maker is not None and len(maker.outputs) == 1 and maker.writes_into()
                    and source not in slots and source not in escaping
                    and step.inputs.index(source) == position
                    and offset * 4 % align_bytes == 0):
                slots[source] = Slot(base.root, offset)
                in_place.append(position)
            offset += plan.values[source].shape[axis] * inner
        if in_place:
            step.in_place = tuple(in_place)
            slots.setdefault(name, base)
    return slots


def clear_placement(plan) -> None:
    """Every Concat copies its inputs again (a device that cannot make sub-buffers)."""
    for step in plan.steps:
        if isinstance(step, ConcatStep):
            step.in_place = ()
    plan.slots = {}


def _returned(plan) -> set[str]:
    """Graph outputs and the tensors they are views of: their buffers leave the run."""
    returned = set(plan.outputs)
    for step in reversed(plan.steps):
        if step.is_view and returned.intersection(step.outputs):
            returned.add(step.inputs[0])
    return returned


class ConcatArena:
    """The buffers of the concatenations a plan writes in place: one per root, made
    once, with a device array for every slot over a sub-buffer of its root."""

    def __init__(self, runtime, plan, slots: dict[str, Slot]):
        roots = {}
        for root in sorted({slot.root for slot in slots.values()}):
            nbytes = int(np.prod(plan.values[root].shape)) * 4
            roots[root] = cl.Buffer(runtime.context, cl.mem_flags.READ_WRITE, nbytes)
        self.arrays: dict[str, cla.Array] = {}
        for name, slot in slots.items():
            shape = tuple(plan.values[name].shape)
            nbytes = int(np.prod(shape)) * 4
            data = (roots[slot.root] if name == slot.root
                    else roots[slot.root].get_sub_region(slot.offset * 4, nbytes))
            self.arrays[name] = cla.Array(runtime.queue, shape, np.float32, data=data)
        self.nbytes = sum(buffer.size for buffer in roots.values())
