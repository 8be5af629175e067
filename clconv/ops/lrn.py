"""Local response normalisation across channels, with ONNX's window rule."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch_grid
from ..runtime import current
from ..validation import check_array, check_finite, check_int


# betas with a faster exact form in lrn.cl (see its BETA_FORM); others use exp2/log2
BETA_FORMS = {0.75: 1, 0.5: 2, 1.0: 3, 0.0: 4}
RUN_POSITIONS = 8  # lrn.cl's RUN: positions per work-item


def lrn(input, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0):
    """y = x / (bias + alpha/size * sum of x^2 over channels [c - (size-1)//2, c + size//2])^beta

    The window is ONNX's; torch's local_response_norm centres even windows one
    channel later."""
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    if len(shape) < 2:
        raise ValueError(f"input: expected shape (N, C, *) with at least 2 axes, got {shape}")
    size = check_int("size", size, 1)
    alpha, beta = check_finite("alpha", alpha), check_finite("beta", beta)
    bias = check_finite("bias", bias)
    out = empty(rt, shape)
    inner = int(np.prod(shape[2:], dtype=np.int64))
    channels = shape[1]
    before = (size - 1) // 2
    kernel = get_kernel(rt, "lrn.cl", "lrn_forward",
                        {"LO": min(before, channels - 1),
                         "HI": min(size - 1 - before, channels - 1),
                         "BETA_FORM": BETA_FORMS.get(float(beta), 0)})
    # a work-item per RUN (8) positions (lrn.cl); small groups spread a small plane's
    # few work-items over every core
    runs = -(-inner // RUN_POSITIONS)
    launch_grid(rt, kernel, (runs, shape[0]), (8, 1), inner,
                on_device(rt, input), out, channels, alpha / size, beta, bias)
    return out
