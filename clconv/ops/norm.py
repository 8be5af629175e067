"""Batch normalisation (torch.nn.functional.batch_norm) and its training gradient."""
from __future__ import annotations

import pyopencl.array as cla

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..runtime import current
from ..validation import check_array, check_finite, check_shape

KERNELS = "batchnorm.cl"


def _check(rt, input, named_vectors):
    shape = check_array("input", input, rt, "(N, C, H, W)")
    for name, value in named_vectors.items():
        if value is not None:
            check_shape(name, check_array(name, value, rt, "(C,)"), (shape[1],))
    return shape


def batch_norm_train(input, weight=None, bias=None, eps=1e-5):
    """Normalise with the batch's statistics.

    Returns (output, mean, invstd, var_unbiased), the per-channel statistics on the device,
    for the backward pass and the running estimates."""
    rt = current()
    N, C, H, W = _check(rt, input, {"weight": weight, "bias": bias})
    eps = check_finite("eps", eps)
    if N * H * W < 2:
        raise ValueError(f"input: expected more than 1 value per channel when training, "
                         f"got shape {(N, C, H, W)}")
    x = on_device(rt, input)
    mean, invstd, var = empty(rt, (C,)), empty(rt, (C,)), empty(rt, (C,))
    launch(rt, get_kernel(rt, KERNELS, "batch_norm_stats"), C, x, mean, invstd, var,
           N, C, H * W, eps)
    out = _apply(rt, x, mean, invstd, weight, bias)
    return out, mean, invstd, var


def _apply(rt, x, mean, invstd, weight, bias):
    N, C, H, W = x.shape
    out = empty(rt, x.shape)
    w = on_device(rt, weight) if weight is not None else mean  # mean: an unread placeholder
    b = on_device(rt, bias) if bias is not None else mean
    launch(rt, get_kernel(rt, KERNELS, "batch_norm_apply"), out.size, x, out, mean, invstd,
           w, weight is not None, b, bias is not None, C, H * W)
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Like torch.nn.functional.batch_norm. In training mode the running statistics,
    which must then be device arrays, are updated in place."""
    rt = current()
    _check(rt, input, {"running_mean": running_mean, "running_var": running_var,
                       "weight": weight, "bias": bias})
    eps = check_finite("eps", eps)
    if training:
        momentum = check_finite("momentum", momentum)
        for name, value in (("running_mean", running_mean), ("running_var", running_var)):
            if value is not None and not isinstance(value, cla.Array):
                raise TypeError(f"{name}: must be a pyopencl array to be updated in training "
                                f"mode, got {type(value).__name__}")
        out, mean, _, var = batch_norm_train(input, weight, bias, eps)
        if running_mean is not None and running_var is not None:
            launch(rt, get_kernel(rt, KERNELS, "batch_norm_update_running"), mean.size,
                   running_mean, running_var, mean, var, momentum)
        return out
    if running_mean is None or running_var is None:
        raise ValueError("running_mean: evaluation mode needs running_mean and running_var")
    mean, var = on_device(rt, running_mean), on_device(rt, running_var)
    invstd = empty(rt, var.shape)
    launch(rt, get_kernel(rt, KERNELS, "batch_norm_invstd"), var.size, var, invstd, eps)
    return _apply(rt, on_device(rt, input), mean, invstd, weight, bias)


def batch_norm_backward(grad_output, input, weight, mean, invstd):
    """Gradients of training-mode batch_norm: (grad_input, grad_weight, grad_bias).

    `mean` and `invstd` are the statistics batch_norm_train returned; grad_weight and
    grad_bias are None when weight is None."""
    rt = current()
    N, C, H, W = _check(rt, input, {"weight": weight, "mean": mean, "invstd": invstd})
    check_shape("grad_output", check_array("grad_output", grad_output, rt, "(N, C, H, W)"),
                (N, C, H, W))
    g, x = on_device(rt, grad_output), on_device(rt, input)
    mean, invstd = on_device(rt, mean), on_device(rt, invstd)
    sum_g, sum_gx = empty(rt, (C,)), empty(rt, (C,))
    launch(rt, get_kernel(rt, KERNELS, "batch_norm_backward_reduce"), C, g, x, mean, invstd,
           sum_g, sum_gx, N, C, H * W)
    grad_input = empty(rt, x.shape)
    affine = weight is not None
    launch(rt, get_kernel(rt, KERNELS, "batch_norm_backward_input"), grad_input.size, g, x,
           mean, invstd, on_device(rt, weight) if affine else mean, affine, sum_g, sum_gx,
           grad_input, C, H * W, 1.0 / (N * H * W))
    if not affine:
        return grad_input, None, None
    return grad_input, sum_gx, sum_g
