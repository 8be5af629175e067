"""linear (x @ W.T + b) and its gradients, on a strided matrix-product kernel."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..runtime import current
from ..validation import check_array, check_shape
from .conv import channel_sum

KERNELS = "matmul.cl"


def _matmul(rt, a, b, bias, M, N, K, a_strides, b_strides, out_shape):
    """out[m, n] = sum_k a[m*a_m + k*a_k] * b[k*b_k + n*b_n] (+ bias[n])."""
    out = empty(rt, out_shape)
    launch(rt, get_kernel(rt, KERNELS, "matmul_strided"), M * N, a, b,
           bias if bias is not None else a, bias is not None, out, N, K, *a_strides, *b_strides)
    return out


def _check_linear(rt, input, weight):
    x_shape = check_array("input", input, rt, "(*, in_features)")
    w_shape = check_array("weight", weight, rt, "(out_features, in_features)")
    if w_shape[1] != x_shape[-1]:
        raise ValueError(f"weight: expected shape ({w_shape[0]}, {x_shape[-1]}) for input with "
                         f"{x_shape[-1]} features, got {w_shape}")
    return x_shape, w_shape


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, like torch.nn.functional.linear."""
    rt = current()
    x_shape, (out_f, in_f) = _check_linear(rt, input, weight)
    if bias is not None:
        check_shape("bias", check_array("bias", bias, rt, "(out_features,)"), (out_f,))
    rows = int(np.prod(x_shape[:-1], dtype=np.int64))
    b = on_device(rt, bias) if bias is not None else None
    return _matmul(rt, on_device(rt, input), on_device(rt, weight), b, rows, out_f, in_f,
                   (in_f, 1), (1, in_f), x_shape[:-1] + (out_f,))


def linear_backward(grad_output, input, weight):
    """(grad_input, grad_weight, grad_bias) of linear."""
    rt = current()
    x_shape, (out_f, in_f) = _check_linear(rt, input, weight)
    g_shape = check_array("grad_output", grad_output, rt, "(*, out_features)")
    check_shape("grad_output", g_shape, x_shape[:-1] + (out_f,))
    rows = int(np.prod(x_shape[:-1], dtype=np.int64))
    g, x, w = on_device(rt, grad_output), on_device(rt, input), on_device(rt, weight)
    # grad_input = g @ W: (rows, out) x (out, in)
    grad_input = _matmul(rt, g, w, None, rows, in_f, out_f, (out_f, 1), (in_f, 1), x_shape)
    # grad_weight = g.T @ x: (out, rows) x (rows, in)
    grad_weight = _matmul(rt, g, x, None, out_f, in_f, rows, (1, out_f), (in_f, 1),
                          (out_f, in_f))
    grad_bias = channel_sum(rt, g.reshape(rows, out_f))
    return grad_input, grad_weight, grad_bias
