"""The layers. forward() keeps what backward() needs; backward(grad_output) returns the
gradient w.r.t. the input and accumulates the parameters' gradients."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import params
from ..arrays import empty, on_device
from ..build import get_kernel, launch
from ..ops.dropout import dropout_backward, dropout_with_mask
from ..ops.norm import batch_norm, batch_norm_backward, batch_norm_train
from ..random import generator
from ..runtime import current
from ..validation import check_int
from .module import Module, Parameter


def _uniform(shape, bound):
    return generator().uniform(-bound, bound, size=shape).astype(np.float32)


def _default_init(weight_shape, fan_in, bias_size):
    """torch's default init: kaiming_uniform_(a=sqrt(5)) for the weight, which is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.

    Returns (weight, bias); bias is None when bias_size is None."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    weight = Parameter(_uniform(weight_shape, bound))
    bias = Parameter(_uniform((bias_size,), bound)) if bias_size is not None else None
    return weight, bias


class _Conv(Module):
    """Shared by Conv2d, Conv3d and the transposed ones: checks, torch's init, forward,
    backward.

    Subclasses name their functional op (`op`), its spatial axes and the weight's layout."""

    op = ""
    spatial = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, bias, **conv_kwargs):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        groups = check_int("groups", conv_kwargs["groups"], 1)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"{name}: {value} is not divisible by groups={groups}")
        self.kernel_size = params.ntuple("kernel_size", kernel_size, self.spatial, minimum=1)
        self.conv_kwargs = conv_kwargs
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        # torch takes fan_in from weight.shape[1] for both layouts.
        fan_in = math.prod(shape[1:])
        self.weight, self.bias = _default_init(shape, fan_in, out_channels if bias else None)

    def forward(self, x):
        self._input = x
        return getattr(F, self.op)(x, self.weight.data,
                                   self.bias.data if self.bias else None, **self.conv_kwargs)

    def backward(self, grad_output):
        mask = (True, True, self.bias is not None)
        gx, gw, gb = getattr(F, f"{self.op}_backward")(
            grad_output, self._input, self.weight.data, output_mask=mask, **self.conv_kwargs)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        args = ", ".join(f"{k}={v}" for k, v in self.conv_kwargs.items())
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {args}"


class Conv2d(_Conv):
    op = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, bias, stride=stride,
                         padding=padding, dilation=dilation, groups=groups)


class ConvTranspose2d(_Conv):
    op = "conv_transpose2d"
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, bias, stride=stride,
                         padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation)


class Conv1d(Conv2d):
    op = "conv1d"
    spatial = 1


class ConvTranspose1d(ConvTranspose2d):
    op = "conv_transpose1d"
    spatial = 1


class Conv3d(Conv2d):
    op = "conv3d"
    spatial = 3


class ConvTranspose3d(ConvTranspose2d):
    op = "conv_transpose3d"
    spatial = 3


class MaxPool2d(Module):
    op = "max_pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                           dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, x):
        self._input_shape = x.shape
        out, self._indices = getattr(F, self.op)(x, return_indices=True, **self.kwargs)
        return out

    def backward(self, grad_output):
        return getattr(F, f"{self.op}_backward")(grad_output, self._indices,
                                                 self._input_shape, **self.kwargs)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


class MaxPool1d(MaxPool2d):
    op = "max_pool1d"


class MaxPool3d(MaxPool2d):
    op = "max_pool3d"


class AvgPool2d(Module):
    op = "avg_pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                           ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                           divisor_override=divisor_override)

    def forward(self, x):
        self._input_shape = x.shape
        return getattr(F, self.op)(x, **self.kwargs)

    def backward(self, grad_output):
        return getattr(F, f"{self.op}_backward")(grad_output, self._input_shape,
                                                 **self.kwargs)


class AvgPool3d(AvgPool2d):
    op = "avg_pool3d"


class AvgPool1d(AvgPool2d):
    op = "avg_pool1d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):  # torch's AvgPool1d has no divisor_override
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        del self.kwargs["divisor_override"]


class AdaptiveAvgPool2d(Module):
    op = "adaptive_avg_pool2d"

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        self._input_shape = x.shape
        return getattr(F, self.op)(x, self.output_size)

    def backward(self, grad_output):
        return getattr(F, f"{self.op}_backward")(grad_output, self._input_shape)


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    op = "adaptive_avg_pool1d"


class _Activation(Module):
    """Activations keep their output: every gradient here is a function of it."""

    name = ""

    def forward(self, x):
        self._output = getattr(F, self.name)(x, *self._args())
        return self._output

    def backward(self, grad_output):
        return getattr(F, f"{self.name}_backward")(grad_output, self._output, *self._args())

    def _args(self):
        return ()


class ReLU(_Activation):
    name = "relu"


class Sigmoid(_Activation):
    name = "sigmoid"


class Tanh(_Activation):
    name = "tanh"


class LeakyReLU(_Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def _args(self):
        return (self.negative_slope,)


class Flatten(Module):
    """Flattens dims start_dim..end_dim; a reshape of the device array, no copy."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        x = on_device(current(), x)
        self._input_shape = x.shape
        end = self.end_dim % len(x.shape)
        shape = x.shape[:self.start_dim] + (-1,) + x.shape[end + 1:]
        return x.reshape(*shape)

    def backward(self, grad_output):
        return grad_output.reshape(*self._input_shape)


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.weight, self.bias = _default_init((out_features, in_features), in_features,
                                               out_features if bias else None)

    def forward(self, x):
        self._input = x
        return F.linear(x, self.weight.data, self.bias.data if self.bias else None)

    def backward(self, grad_output):
        gx, gw, gb = F.linear_backward(grad_output, self._input, self.weight.data)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: dropout probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        out, self._mask = dropout_with_mask(x, self.p)
        return out

    def backward(self, grad_output):
        return grad_output if self._mask is None else dropout_backward(grad_output, self._mask)


class BatchNorm2d(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        self.num_features = check_int("num_features", num_features, 1)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        rt = current()
        if affine:
            self.weight = Parameter(np.ones(num_features, np.float32))
            self.bias = Parameter(np.zeros(num_features, np.float32))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", _filled(rt, num_features, 0.0))
            self.register_buffer("running_var", _filled(rt, num_features, 1.0))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x):
        weight = self.weight.data if self.affine else None
        bias = self.bias.data if self.affine else None
        self._input = x
        if self.training or not self.track_running_stats:
            out, self._mean, self._invstd, var = batch_norm_train(x, weight, bias, self.eps)
            if self.training and self.track_running_stats:
                rt = current()
                launch(rt, get_kernel(rt, "batchnorm.cl", "batch_norm_update_running"),
                       self.num_features, self.running_mean, self.running_var, self._mean,
                       var, float(self.momentum))
                self.num_batches_tracked = self.num_batches_tracked + 1
            self._training_forward = True
            return out
        self._training_forward = False
        return batch_norm(x, self.running_mean, self.running_var, weight, bias,
                          training=False, eps=self.eps)

    def backward(self, grad_output):
        if not self._training_forward:
            raise RuntimeError("BatchNorm2d.backward after an evaluation-mode forward is not "
                               "supported; call model.train() before training")
        weight = self.weight.data if self.affine else None
        gx, gw, gb = batch_norm_backward(grad_output, self._input, weight, self._mean,
                                         self._invstd)
        if self.affine:
            self.weight.accumulate_grad(gw)
            self.bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def _filled(rt, n, value):
    array = empty(rt, (n,))
    array.fill(value)
    return array
