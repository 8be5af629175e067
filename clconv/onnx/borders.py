"""Zero-bordered tensors: a convolution writes its output inside zero borders, so that
the convolutions reading it need no padding pass.

A stride-1 convolution of padding p run as shifted views of its input (the `shifted`
variant, algos/shifted.py) first copies the input into planes with a zero border of p
(`pad_planes`): DenseNet-121 made 58 such copies per image, 2.1 ms of its 31 ms of
kernels (docs/performance.md, session 10). When the tensor's producer is a convolution
whose GEMM writes its output (gemm1x1, im2col, shifted: PackedForward.
writes_bordered_output) and every reader is such a shifted convolution with that
padding, the producer writes the planes inside the border straight away
(arrays.bordered_planes, gemm.cl's out_pitch/out_base) and the readers read them as a
convolution without padding (ConstantWeightConv2d.reads_border).

The borders must stay zero, so these tensors live in buffers of the compiled model's own
(BorderArena), zeroed once: tensors of one plane size share a buffer when their lives
(producer to last reader) do not overlap (placement.share_buffers, the rule the
concatenation buffers follow: the buffer freed last first), and kernels write only
inside the borders.
Graph outputs and tensors that lie in a concatenation never get a border.
"""
from __future__ import annotations

import numpy as np
import pyopencl as cl

from .. import algos
from ..arrays import bordered_planes
from ..geometry import conv_geometry
from .placement import lifetimes, returned_tensors, share_buffers
from .steps import ConvStep


def _geometry(plan, step):
    """The 2-D geometry of a constant-weight ConvStep as it runs, or None."""
    if (not isinstance(step, ConvStep) or not step.constant_weights or len(step.stride) != 2
            or step.input_view or step.pre_pad or step.max_pool is not None):
        return None
    return conv_geometry(tuple(plan.values[step.inputs[0]].shape),
                         tuple(plan.values[step.inputs[1]].shape), step.stride,
                         step.padding, step.dilation, step.groups)


def _variant(profile, geo):
    """The forward variant a prepared layer of this geometry will run (algos.choose)."""
    return algos.choose(profile, geo, "forward", packed=True)[0]


def _writes_border(plan, profile, step) -> bool:
    geo = _geometry(plan, step)
    return (geo is not None and step.writes_into() and len(step.outputs) == 1
            and _variant(profile, geo) in algos.OUTPUT_WRITERS)


def _border_read(plan, profile, step, position) -> int | None:
    """The border a reader takes at `position` without a padding pass, or None."""
    geo = _geometry(plan, step)
    if (geo is None or position != 0 or step.input_affine is not None
            or step.padding[0] != step.padding[1] or step.padding[0] < 1):
        return None
    return step.padding[0] if _variant(profile, geo) in algos.BORDER_READERS else None


def place_borders(plan, profile) -> dict[str, int]:
    """{tensor: border width} for every tensor that can live in bordered planes."""
    readers = {}
    for step in plan.steps:
        for position, name in enumerate(step.inputs):
            readers.setdefault(name, []).append((step, position))
    escaping = returned_tensors(plan)
    borders = {}
    for step in plan.steps:
        if not step.outputs:
            continue
        name = step.outputs[0]
        if name in escaping or name in plan.slots or name not in readers:
            continue
        if not _writes_border(plan, profile, step):
            continue
        pads = {_border_read(plan, profile, reader, position)
                for reader, position in readers[name]}
        if len(pads) != 1 or None in pads:
            continue
        pad = pads.pop()
        n, c, h, w = plan.values[name].shape
        if n * c * (h + 2 * pad) * (w + 2 * pad) * 4 <= profile.max_mem_alloc_size:
            borders[name] = pad
    return borders


class BorderArena:
    """The buffers of a plan's zero-bordered tensors, zeroed once: one per plane size
    and group of tensors whose lives do not overlap, with a bordered_planes array for
    every tensor."""

    def __init__(self, runtime, plan, borders: dict[str, int]):
        # buffers are shared within one plane size only: a tensor of another size would
        # lay its pixels over the borders of this one's planes
        by_planes: dict[tuple, dict[str, int]] = {}
        for name, pad in borders.items():
            n, c, h, w = plan.values[name].shape
            by_planes.setdefault((h, w, pad), {})[name] = 4 * n * c * (h + 2 * pad) * (w + 2 * pad)
        lives = lifetimes(plan, {name: name for name in borders})
        self.arrays, self.nbytes = {}, 0
        queue = runtime.queue
        for (*_, pad), sizes in by_planes.items():
            for names, nbytes in share_buffers(lives, sizes):
                buffer = cl.Buffer(runtime.context, cl.mem_flags.READ_WRITE, nbytes)
                cl.enqueue_fill_buffer(queue, buffer, np.float32(0), 0, nbytes)
                self.nbytes += nbytes
                for name in names:
                    self.arrays[name] = bordered_planes(queue, buffer,
                                                        plan.values[name].shape, pad)
        queue.finish()
