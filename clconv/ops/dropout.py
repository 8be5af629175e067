"""Dropout with a counter-based random mask generated on the device."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..runtime import current
from ..random import generator
from ..validation import check_array, check_finite, check_shape

KERNELS = "train.cl"


def _check_p(p):
    p = check_finite("p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability has to be between 0 and 1, got {p}")
    return p


def dropout_with_mask(input, p=0.5, seed=None):
    """(output, mask): output = input * mask, mask 0 or 1/(1-p) per element.

    The same seed gives the same mask; without one a seed is drawn from clconv.random."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    p = _check_p(p)
    if seed is None:
        seed = generator().integers(2**32)
    out, mask = empty(rt, shape), empty(rt, shape)
    if p == 1.0:  # everything dropped; 1/(1-p) is undefined
        with rt.lock:  # pyopencl's fill kernel is shared between threads
            out.fill(0.0)
            mask.fill(0.0)
        return out, mask
    launch(rt, get_kernel(rt, KERNELS, "dropout_forward"), out.size, on_device(rt, input),
           out, mask, np.uint32(int(seed) % 2**32), p)
    return out, mask


def dropout(input, p=0.5, training=True):
    """Like torch.nn.functional.dropout (a new array, never in place)."""
    if not training:
        rt = current()
        check_array("input", input, rt, "(*)")
        _check_p(p)
        return on_device(rt, input).copy()
    return dropout_with_mask(input, p)[0]


def dropout_backward(grad_output, mask):
    rt = current()
    shape = check_array("grad_output", grad_output, rt, "(*)")
    check_shape("mask", check_array("mask", mask, rt, "(*)"), shape)
    grad_input = empty(rt, shape)
    launch(rt, get_kernel(rt, KERNELS, "multiply"), grad_input.size,
           on_device(rt, grad_output), on_device(rt, mask), grad_input)
    return grad_input
