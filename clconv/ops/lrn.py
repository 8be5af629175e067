"""Local response normalisation across channels, with ONNX's window rule."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..runtime import current
from ..validation import check_array, check_finite, check_int


def lrn(input, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0):
    """y = x / (bias + alpha/size * sum of x^2 over channels [c - (size-1)//2, c + size//2])^beta

    The window is ONNX's; torch's local_response_norm centres even windows one
    channel later."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    if len(shape) < 2:
        raise ValueError(f"input: expected shape (N, C, *) with at least 2 axes, got {shape}")
    size = check_int("size", size, 1)
    out = empty(rt, shape)
    inner = int(np.prod(shape[2:], dtype=np.int64))
    launch(rt, get_kernel(rt, "lrn.cl", "lrn_forward"), out.size, on_device(rt, input), out,
           shape[1], inner, size, check_finite("alpha", alpha), check_finite("beta", beta),
           check_finite("bias", bias))
    return out
