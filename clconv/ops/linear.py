"""linear (x @ W.T + b) and its gradients, as products on the one GEMM (`ops/gemm.py`)."""
from __future__ import annotations

import numpy as np

from ..arrays import on_device
from ..runtime import current
from ..validation import check_array, check_shape
from .conv import channel_sum
from .gemm import gemm


def _check_linear(rt, input, weight):
    x_shape = check_array("input", input, rt, "(*, in_features)")
    w_shape = check_array("weight", weight, rt, "(out_features, in_features)")
    if w_shape[1] != x_shape[-1]:
        raise ValueError(f"weight: expected shape ({w_shape[0]}, {x_shape[-1]}) for input with "
                         f"{x_shape[-1]} features, got {w_shape}")
    return x_shape, w_shape


def _rows(rt, x, x_shape):
    """x as a (rows, features) matrix on the device."""
    rows = int(np.prod(x_shape[:-1], dtype=np.int64))
    return on_device(rt, x).reshape(rows, x_shape[-1])


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, like torch.nn.functional.linear."""
    rt = current()
    x_shape, (out_f, in_f) = _check_linear(rt, input, weight)
    if bias is not None:
        check_shape("bias", check_array("bias", bias, rt, "(out_features,)"), (out_f,))
    y = gemm(_rows(rt, input, x_shape), weight, bias, trans_b=True)
    return y.reshape(x_shape[:-1] + (out_f,))


def linear_backward(grad_output, input, weight):
    """(grad_input, grad_weight, grad_bias) of linear."""
    rt = current()
    x_shape, (out_f, in_f) = _check_linear(rt, input, weight)
    g_shape = check_array("grad_output", grad_output, rt, "(*, out_features)")
    check_shape("grad_output", g_shape, x_shape[:-1] + (out_f,))
    g, x = _rows(rt, grad_output, g_shape), _rows(rt, input, x_shape)
    grad_input = gemm(g, weight).reshape(x_shape)          # g @ W: (rows, out) x (out, in)
    grad_weight = gemm(g, x, trans_a=True)                 # g.T @ x: (out, rows) x (rows, in)
    grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias
