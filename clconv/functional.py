"""The ops, named and called like torch.nn.functional (NCHW, float32).

Each takes numpy arrays or pyopencl arrays on clconv's device and returns a
pyopencl.array.Array, so data stays on the device between ops; `clconv.to_numpy`
brings a result back. Arguments are checked before anything is enqueued.
"""
from .ops.activation import (leaky_relu, leaky_relu_backward, relu, relu_backward, sigmoid,
                             sigmoid_backward, tanh, tanh_backward)
from .ops.conv import (conv2d, conv2d_activation, conv2d_backward, conv2d_relu, conv_transpose2d,
                       conv_transpose2d_backward)
from .ops.conv1d import (conv1d, conv1d_backward, conv_transpose1d,
                         conv_transpose1d_backward)
from .ops.conv3d import (conv3d, conv3d_activation, conv3d_backward, conv_transpose3d,
                         conv_transpose3d_backward)
from .ops.linear import linear, linear_backward
from .ops.pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                       avg_pool2d_backward, max_pool2d, max_pool2d_backward)
from .ops.pool1d import (adaptive_avg_pool1d, adaptive_avg_pool1d_backward, avg_pool1d,
                         avg_pool1d_backward, max_pool1d, max_pool1d_backward)
from .ops.pool3d import avg_pool3d, avg_pool3d_backward, max_pool3d, max_pool3d_backward
from .ops.softmax import (cross_entropy, cross_entropy_backward, log_softmax,
                          log_softmax_backward, softmax, softmax_backward)

__all__ = [
    "conv1d", "conv1d_backward", "conv_transpose1d", "conv_transpose1d_backward",
    "max_pool1d", "max_pool1d_backward", "avg_pool1d", "avg_pool1d_backward",
    "adaptive_avg_pool1d", "adaptive_avg_pool1d_backward",
    "conv2d", "conv2d_relu", "conv2d_activation", "conv2d_backward", "conv_transpose2d",
    "conv_transpose2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "conv3d", "conv3d_activation", "conv3d_backward", "conv_transpose3d",
    "conv_transpose3d_backward",
    "max_pool3d", "max_pool3d_backward", "avg_pool3d", "avg_pool3d_backward",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "linear", "linear_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward",
]
