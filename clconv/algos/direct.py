"""The direct kernels of `conv2d.cl`: one work-item per output element, no local memory.

Always valid (any geometry, any work-group size), so it is the fallback of every op.
"""
from __future__ import annotations

from ..build import get_kernel, launch
from ..epilogue import NO_ACTIVATION
from .base import Variant

KERNELS = "conv2d.cl"


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION):
    kernel = get_kernel(rt, KERNELS, "conv2d_forward", act.defines)
    launch(rt, kernel, out.size, x, w, bias if bias is not None else w, bias is not None, out,
           geo.C, geo.H, geo.W, geo.K, geo.Ho, geo.Wo, *geo.kernel_args(), *act.scalars)
    return out


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    """The transposed convolution of grad_out (also conv_transpose2d's forward)."""
    kernel = get_kernel(rt, KERNELS, "conv_transpose2d_forward")
    launch(rt, kernel, out.size, grad_out, w, bias if bias is not None else w,
           bias is not None, out, geo.K, geo.Ho, geo.Wo, geo.C, geo.H, geo.W,
           *geo.kernel_args())
    return out


def grad_weight(rt, geo, params, x, grad_out, out):
    kernel = get_kernel(rt, KERNELS, "conv2d_grad_weight")
    launch(rt, kernel, out.size, x, grad_out, out,
           geo.N, geo.C, geo.H, geo.W, geo.K, geo.Ho, geo.Wo, *geo.kernel_args())
    return out


def _validate(profile, geo, op, params):
    return None


DIRECT = Variant(
    "direct", "one work-item per output element (always valid; the fallback)", _validate,
    {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight},
    space=lambda profile, geo, op: [{}], defaults=lambda profile, geo, op: {})
