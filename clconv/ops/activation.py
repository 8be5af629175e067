"""Element-wise activations (the epilogue's, see clconv.epilogue); gradients are
computed from the forward output."""
from __future__ import annotations

from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..epilogue import Activation
from ..runtime import current
from ..validation import check_array, check_finite, check_shape
from . import elementwise

KERNELS = "activation.cl"


def _forward(name: str, input, alpha=0.0):
    """The epilogue's activation (activation.h) as an element-wise pass."""
    return elementwise.activation(input, Activation(name, alpha))


def _backward(name: str, grad_output, output, *scalars):
    rt = current()
    g_shape = check_array("grad_output", grad_output, rt, "(*)")
    y_shape = check_array("output", output, rt, "(*)")
    check_shape("output", y_shape, g_shape)
    grad_input = empty(rt, g_shape)
    launch(rt, get_kernel(rt, KERNELS, f"{name}_backward"), grad_input.size,
           on_device(rt, grad_output), on_device(rt, output), grad_input, *scalars)
    return grad_input


def relu(input):
    return _forward("relu", input)


def leaky_relu(input, negative_slope=0.01):
    return _forward("leaky_relu", input, check_finite("negative_slope", negative_slope))


def sigmoid(input):
    return _forward("sigmoid", input)


def tanh(input):
    return _forward("tanh", input)


def relu_backward(grad_output, output):
    return _backward("relu", grad_output, output)


def leaky_relu_backward(grad_output, output, negative_slope=0.01):
    """Needs negative_slope >= 0: only then does the output's sign tell the input's."""
    slope = check_finite("negative_slope", negative_slope)
    if slope < 0:
        raise ValueError(f"negative_slope: the gradient from the output needs a slope >= 0, "
                         f"got {negative_slope}")
    return _backward("leaky_relu", grad_output, output, slope)


def sigmoid_backward(grad_output, output):
    return _backward("sigmoid", grad_output, output)


def tanh_backward(grad_output, output):
    return _backward("tanh", grad_output, output)
