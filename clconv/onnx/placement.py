"""Concatenation without copies: the steps that produce a Concat's inputs write straight
into their slice of its output.

Along the channel axis of one image (every axis before the concatenation's has size 1)
each input is one contiguous run of the output's buffer. OpenCL names such a run as a
buffer of its own (a sub-buffer) when its start is a multiple of the device's
CL_DEVICE_MEM_BASE_ADDR_ALIGN, and kernels write into it unchanged. A Concat whose
output is itself an input of a later one (DenseNet's growing blocks, Inception's
modules feeding a pool) lies in that one's buffer, so a dense block shares one buffer
and its Concat steps copy nothing.

With several images (the batch axis before the channel axis, every other axis before it
of size 1), an input's slice is one run per image, the runs an output image apart:
strided images (arrays.image_stride), over a sub-buffer from the slice's start in the
first image to its end in the last. Only steps that take such arrays get one: its
producer must write them (Step.writes_strided_images: constant-weight convolutions,
Concat) and every other step that reads it must read them
(Step.reads_strided_images), else the Concat copies that input as before.

A run takes the buffers that hold concatenations from its memory pool while they live
(ConcatArena), concatenations whose lives do not overlap sharing one (share_buffers);
tensors the graph returns never live in them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from ..arrays import strided_images
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
    readers = {}  # tensor -> [(step, input position)]
    for step in steps:
        for position, name in enumerate(step.inputs):
            readers.setdefault(name, []).append((step, position))
    escaping = returned_tensors(plan)
    slots: dict[str, Slot] = {}
    for step in reversed(steps):
        if not isinstance(step, ConcatStep):
            continue
        step.in_place = ()
        name, shape, axis = step.outputs[0], step.output_shapes[0], step.axis
        if axis < 1 or int(np.prod(shape[1:axis])) != 1 or name in escaping:
            continue  # slices would not be runs per image, or the buffer must outlive the run
        images = int(shape[0])  # > 1: each input's slice is strided images
        base = slots.get(name, Slot(name, 0))
        inner = int(np.prod(shape[axis + 1:]))
        offset, in_place = base.offset, []
        for position, source in enumerate(step.inputs):
            maker = producer.get(source)
            if (maker is not None and len(maker.outputs) == 1 and maker.writes_into()
                    and source not in slots and source not in escaping
                    and step.inputs.index(source) == position
                    and offset * 4 % align_bytes == 0
                    and (images == 1 or _takes_strided_images(maker, readers[source]))):
                slots[source] = Slot(base.root, offset)
                in_place.append(position)
            offset += plan.values[source].shape[axis] * inner
        if in_place:
            step.in_place = tuple(in_place)
            slots.setdefault(name, base)
    return slots


def _takes_strided_images(maker, readers) -> bool:
    """Whether a tensor can be strided images: its producer writes them and every step
    that reads it reads them."""
    return maker.writes_strided_images() and all(
        step.reads_strided_images(position) for step, position in readers)


def clear_placement(plan) -> None:
    """Every Concat copies its inputs again (a device that cannot make sub-buffers)."""
    for step in plan.steps:
        if isinstance(step, ConcatStep):
            step.in_place = ()
    plan.slots = {}


def returned_tensors(plan) -> set[str]:
    """Graph outputs and the tensors they are views of: their buffers leave the run."""
    returned = set(plan.outputs)
    for step in reversed(plan.steps):
        if step.is_view and returned.intersection(step.outputs):
            returned.add(step.inputs[0])
    return returned


class ConcatArena:
    """The buffers of the concatenations a plan writes in place: one per group of roots
    whose lives do not overlap (share_buffers), taken from the run's memory pool as the
    group's first step starts and given back after its last (open, close), with a device
    array for every slot over a sub-buffer of its root's. A run's pool hands out the block
    a step just let go of (onnx/replay.py's RecyclingPool), still in the caches: buffers
    of the model's own, made once, were memory last touched a whole run before, and
    SqueezeNet's first fire modules wrote theirs 2-3x slower than a hot one after a pause
    (docs/performance.md, session 25)."""

    def __init__(self, runtime, plan, slots: dict[str, Slot]):
        self.runtime, self.plan, self.slots = runtime, plan, slots
        lives = root_lifetimes(plan, slots)
        self.groups = []  # [(roots, bytes, first step, last step)]
        for names, nbytes in share_buffers(lives, {
                root: int(np.prod(plan.values[root].shape)) * 4
                for root in {slot.root for slot in slots.values()}}):
            self.groups.append((names, nbytes, min(lives[name][0] for name in names),
                                max(lives[name][1] for name in names)))
        self.nbytes = sum(group[1] for group in self.groups)
        # made once now, so that a device that cannot make them fails at load time
        probe = cl.Buffer(runtime.context, cl.mem_flags.READ_WRITE,
                          max(group[1] for group in self.groups))
        self._slot_arrays(probe, {slot.root for slot in slots.values()})

    def open(self, step: int, allocate) -> dict[str, cla.Array]:
        """The arrays of every slot whose group's life starts at `step`, over a block of
        `allocate(nbytes)` (a pool: pyopencl's, or a recorded run's)."""
        arrays = {}
        for roots, nbytes, first, _ in self.groups:
            if first == step:
                arrays.update(self._slot_arrays(_as_buffer(allocate(nbytes)), set(roots)))
        return arrays

    def close(self, step: int) -> list[str]:
        """The slots whose group's life ends with `step`: the run lets go of their
        arrays, and the block goes back to the pool once nothing holds it."""
        return [name for roots, _, _, last in self.groups if last == step
                for name, slot in self.slots.items() if slot.root in roots]

    def _slot_arrays(self, buffer, roots: set) -> dict[str, cla.Array]:
        queue, plan, arrays = self.runtime.queue, self.plan, {}
        for name, slot in self.slots.items():
            if slot.root not in roots:
                continue
            shape = tuple(plan.values[name].shape)
            if name == slot.root:
                arrays[name] = cla.Array(queue, shape, np.float32, data=buffer)
                continue
            # one run per image, an image of the root apart (one image: one run)
            images, per_image = shape[0], int(np.prod(shape[1:]))
            stride = int(np.prod(plan.values[slot.root].shape[1:]))
            nbytes = ((images - 1) * stride + per_image) * 4
            data = buffer.get_sub_region(slot.offset * 4, nbytes)
            data.holds = buffer  # the block is the pool's again only when no slot holds it
            arrays[name] = (cla.Array(queue, shape, np.float32, data=data)
                            if images == 1 else strided_images(queue, data, shape, stride))
        return arrays


def _as_buffer(block) -> cl.Buffer:
    """A pool's block as a cl.Buffer that can make sub-buffers, holding the block (a
    pyopencl PooledBuffer goes back to its pool when nothing holds it)."""
    if isinstance(block, cl.Buffer):
        return block
    buffer = cl.Buffer.from_int_ptr(block.int_ptr, retain=True)
    buffer.holds = block
    return buffer


def root_lifetimes(plan, slots: dict[str, Slot]) -> dict[str, tuple[int, int]]:
    """{concatenation buffer (root): (first step that writes it, last step that reads
    it)}: written by the producers of its slots, read through its slots, itself and
    views of any of them (a view's reader reads the buffer too)."""
    owner = {name: slot.root for name, slot in slots.items()}
    for step in plan.steps:
        if step.is_view and step.inputs[0] in owner:
            owner.update(dict.fromkeys(step.outputs, owner[step.inputs[0]]))
    return lifetimes(plan, owner)


def lifetimes(plan, owner: dict[str, str]) -> dict[str, tuple[int, int]]:
    """{buffer: (first step that writes it, last step that reads it)}, where owner maps
    each tensor to the buffer it lies in (a tensor of its own: owner[t] == t)."""
    first, last = {}, {}
    for i, step in enumerate(plan.steps):
        for name in step.outputs:
            if name in owner:
                first.setdefault(owner[name], i)
        for name in step.inputs:
            if name in owner:
                last[owner[name]] = i
    return {root: (first.get(root, 0), last.get(root, len(plan.steps)))
            for root in set(owner.values())}


def share_buffers(lifetimes: dict[str, tuple[int, int]], nbytes: dict[str, int]):
    """[(names, bytes)]: one buffer per group of names whose lifetimes (first, last step)
    do not overlap, each name taking, of the buffers free since before its first step,
    the one freed last (the one most likely still in the caches), else a new one. A
    model's concatenations then share a few buffers instead of one each: SqueezeNet's
    eight fire modules, each read only by the next, share one (5.8 -> 1.5 MB), so a
    module writes memory the one before it just read, not memory last touched a whole
    run before (docs/performance.md)."""
    groups: list[list] = []  # [last step, bytes, names]
    for name in sorted(nbytes, key=lambda n: (lifetimes[n][0], n)):
        start, end = lifetimes[name]
        free = [g for g in groups if g[0] < start]
        if free:
            group = max(free, key=lambda g: g[0])
            group[0], group[1] = end, max(group[1], nbytes[name])
            group[2].append(name)
        else:
            groups.append([end, nbytes[name], [name]])
    return [(names, size) for _, size, names in groups]
