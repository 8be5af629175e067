"""softmax, log_softmax and cross_entropy (class-index targets, mean reduction)."""
from __future__ import annotations

import numpy as np

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..runtime import current
from ..validation import check_array, check_dim, check_shape

KERNELS = "softmax.cl"


def _lines(shape, dim):
    """View `shape` as (outer, D, inner) around axis `dim`."""
    D = shape[dim]
    inner = int(np.prod(shape[dim + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:dim], dtype=np.int64))
    return outer, D, inner


def _softmax(input, dim, log_output: bool):
    rt = current()
    shape = check_array("input", input, rt, "(*)")
    if dim is None:
        raise TypeError("dim: expected an int axis; softmax without dim is deprecated in torch")
    dim = check_dim("dim", dim, len(shape))
    outer, D, inner = _lines(shape, dim)
    out = empty(rt, shape)
    launch(rt, get_kernel(rt, KERNELS, "softmax_forward"), outer * inner,
           on_device(rt, input), out, D, inner, log_output)
    return out


def softmax(input, dim):
    return _softmax(input, dim, False)


def log_softmax(input, dim):
    return _softmax(input, dim, True)


def _softmax_backward(grad_output, output, dim, log_output: bool):
    rt = current()
    g_shape = check_array("grad_output", grad_output, rt, "(*)")
    check_shape("output", check_array("output", output, rt, "(*)"), g_shape)
    dim = check_dim("dim", dim, len(g_shape))
    outer, D, inner = _lines(g_shape, dim)
    grad_input = empty(rt, g_shape)
    launch(rt, get_kernel(rt, KERNELS, "softmax_backward"), outer * inner,
           on_device(rt, grad_output), on_device(rt, output), grad_input, D, inner, log_output)
    return grad_input


def softmax_backward(grad_output, output, dim):
    return _softmax_backward(grad_output, output, dim, False)


def log_softmax_backward(grad_output, output, dim):
    return _softmax_backward(grad_output, output, dim, True)


def _check_cross_entropy(rt, input, target):
    N, C = check_array("input", input, rt, "(N, C)")
    t_shape = check_array("target", target, rt, "(N,)", dtype="int")
    check_shape("target", t_shape, (N,))
    # Targets index the input: check them on the host so a bad one never reaches a kernel.
    host = target if isinstance(target, np.ndarray) else target.get()
    if host.min() < 0 or host.max() >= C:
        raise ValueError(f"target: class indices must be in [0, {C}) for input with {C} classes, "
                         f"got range [{host.min()}, {host.max()}]")
    t = on_device(rt, host, np.int32)
    return N, C, t


def cross_entropy(input, target):
    """Mean cross entropy of logits `input` (N, C) and class indices `target` (N,).

    Returns a device array of shape ()."""
    rt = current()
    N, C, t = _check_cross_entropy(rt, input, target)
    losses = empty(rt, (N,))
    launch(rt, get_kernel(rt, KERNELS, "cross_entropy_losses"), N, on_device(rt, input), t,
           losses, C)
    out = empty(rt, ())
    launch(rt, get_kernel(rt, "reduce.cl", "mean_all"), 1, losses, out, N)
    return out


def cross_entropy_backward(input, target, grad_output=1.0):
    """Gradient of the mean cross entropy w.r.t. `input`, times `grad_output`."""
    rt = current()
    N, C, t = _check_cross_entropy(rt, input, target)
    grad_input = empty(rt, (N, C))
    launch(rt, get_kernel(rt, KERNELS, "cross_entropy_backward"), N, on_device(rt, input), t,
           grad_input, C, float(grad_output) / N)
    return grad_input
