"""Bad input raises a clear TypeError/ValueError naming the argument, before any kernel
is enqueued: every bad input of the op table (clconv.optable), then the cases that need
more than one bad argument or a device array."""
import zlib

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest

import clconv
import clconv.functional as F
from clconv import build
from clconv.optable import OPS, bind, first, grad_call, randn


@pytest.fixture(autouse=True)
def no_kernel_runs(monkeypatch, request):
    """Fail if a bad-input call enqueues a kernel: build.enqueue is the one point every
    launch (build.launch, build.launch_grid) goes through."""
    if "allow_launch" in request.keywords:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was launched for bad input")

    monkeypatch.setattr(build, "enqueue", refuse)


def x4(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


def _valid_calls(spec):
    """(op, args, kwargs) of the op's valid sample call and of its gradient's call."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    args, kwargs = spec.sample(rng)
    g = np.asarray(randn(rng, np.shape(first(spec.reference(*args, **kwargs)))))
    return (spec.op, args, kwargs), (spec.grad.op, *grad_call(spec, args, kwargs, g))


BAD = [(spec, bad) for spec in OPS for bad in spec.bad]


@pytest.mark.parametrize("spec,bad", BAD, ids=[f"{s.name}-{b}" for s, b in BAD])
def test_every_bad_input_of_the_op_table_raises_before_any_launch(spec, bad):
    forward, gradient = _valid_calls(spec)
    op, args, kwargs = gradient if bad.grad else forward
    args, kwargs = bind(op, args, kwargs, bad.argument, bad.value)
    with pytest.raises(bad.error, match=bad.match):
        op(*args, **kwargs)


@pytest.mark.parametrize("spec", OPS, ids=[s.name for s in OPS])
def test_the_valid_calls_the_bad_ones_come_from_reach_the_launch_point(spec):
    """Each bad case above differs from a call that launches a kernel in one argument,
    so its raising before the (refusing) launch point is what the guard proves."""
    for op, args, kwargs in _valid_calls(spec):
        with pytest.raises(AssertionError, match="a kernel was launched"):
            op(*args, **kwargs)


def test_groups_mismatch():
    with pytest.raises(ValueError, match="input: 6 input channels are not divisible by groups=4"):
        F.conv2d(x4(1, 6, 8, 8), x4(4, 1, 3, 3), groups=4)
    with pytest.raises(ValueError, match=r"weight: 3 output channels .* groups=2"):
        F.conv2d(x4(1, 4, 8, 8), x4(3, 2, 3, 3), groups=2)


@pytest.mark.parametrize("arg", ["stride", "dilation", "groups"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_parameters(arg, value):
    with pytest.raises(ValueError, match=f"{arg}: expected .*>= 1"):
        F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), **{arg: value})


@pytest.mark.allow_launch  # the first, valid call runs
@pytest.mark.parametrize("arg", ["stride", "dilation", "groups"])
@pytest.mark.parametrize("value", [1.0, True])
def test_non_int_parameters_are_rejected_even_after_the_int_was_memoised(arg, value):
    """The geometry memo must not answer for 1.0 or True (equal to 1 as dict keys)."""
    F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), **{arg: 1})
    with pytest.raises(TypeError, match=f"{arg}: expected an int"):
        F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), **{arg: value})


def test_negative_padding_and_bad_padding_string():
    with pytest.raises(ValueError, match="padding: expected values >= 0"):
        F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), padding=-1)
    with pytest.raises(ValueError, match="padding: expected an int, a pair, 'valid' or 'same'"):
        F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), padding="full")
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        F.conv2d(x4(1, 2, 8, 8), x4(2, 2, 3, 3), padding="same", stride=2)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"weight: kernel \(5, 5\) .* larger than the padded input \(4, 6\)"):
        F.conv2d(x4(1, 1, 4, 4), x4(1, 1, 5, 5), padding=(0, 1))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(x4(1, 1, 2, 2), 3)


@pytest.mark.allow_launch
def test_non_contiguous_device_array():
    rt = clconv.current_runtime()
    x = cla.to_device(rt.queue, x4(2, 3, 4, 4))
    with pytest.raises(ValueError, match="input: array of shape .* is not C-contiguous"):
        F.relu(x.transpose((0, 1, 3, 2)))


@pytest.mark.allow_launch
def test_array_from_another_context():
    device = clconv.current_runtime().context.devices[0]
    other_context = cl.Context([device])
    queue = cl.CommandQueue(other_context)
    x = cla.to_device(queue, x4(1, 2, 5, 5))
    with pytest.raises(ValueError, match="input: array belongs to another OpenCL context"):
        F.max_pool2d(x, 2)


@pytest.mark.parametrize("shape", [(0, 2, 8, 8), (1, 0, 8, 8), (1, 2, 0, 8)])
def test_empty_batches_and_zero_sizes(shape):
    with pytest.raises(ValueError, match=r"input: shape .* has a zero-size dimension"):
        F.conv2d(x4(*shape), x4(2, 2, 3, 3))


def test_conv_transpose2d_output_padding():
    with pytest.raises(ValueError, match="output_padding: must be smaller than stride"):
        F.conv_transpose2d(x4(1, 2, 4, 4), x4(2, 3, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, out_channels/groups"):
        F.conv_transpose2d(x4(1, 2, 4, 4), x4(3, 3, 3, 3))


def test_pool_parameters():
    with pytest.raises(ValueError, match="padding: must be at most half the kernel size"):
        F.max_pool2d(x4(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(ValueError, match="kernel_size: expected values >= 1"):
        F.avg_pool2d(x4(1, 1, 8, 8), 0)
    with pytest.raises(TypeError, match="kernel_size: expected an int or a pair"):
        F.avg_pool2d(x4(1, 1, 8, 8), 2.5)
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(1, 1, 4, 4\)"):
        F.avg_pool2d_backward(x4(1, 1, 3, 3), (1, 1, 8, 8), 2)
    with pytest.raises(ValueError, match="input_shape: expected 4 positive ints"):
        F.avg_pool2d_backward(x4(1, 1, 4, 4), (1, 8, 8), 2)


def test_max_pool2d_backward_indices():
    with pytest.raises(TypeError, match="indices: expected an integer dtype"):
        F.max_pool2d_backward(x4(1, 1, 2, 2), x4(1, 1, 2, 2), (1, 1, 4, 4))
    bad = np.full((1, 1, 2, 2), 16, np.int64)
    with pytest.raises(ValueError, match=r"indices: expected values in \[0, 16\)"):
        F.max_pool2d_backward(x4(1, 1, 2, 2), bad, (1, 1, 4, 4))
    # given the forward's window, grad_output must have that window's output shape
    idx = np.zeros((1, 1, 2, 2), np.int64)
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(1, 1, 1, 1\), got "
                                         r"\(1, 1, 2, 2\)"):
        F.max_pool2d_backward(x4(1, 1, 2, 2), idx, (1, 1, 4, 4), kernel_size=4)
    with pytest.raises(ValueError, match="stride: expected .*>= 1"):
        F.max_pool2d_backward(x4(1, 1, 2, 2), idx, (1, 1, 4, 4), kernel_size=2, stride=0)


X5, W5 = x4(1, 2, 4, 4, 4), x4(3, 2, 2, 2, 2)
POOL_INDICES = np.zeros((1, 2, 2, 2, 2), np.int32)
# (op, args, kwargs, error, message): the 3-D cases that take more than one bad argument
# or exact shapes, beside the table's
BAD_3D = [
    (F.conv3d, (X5, W5), {"padding": "same", "stride": 2}, ValueError,
     r"padding: 'same' is not supported for strided convolutions"),
    (F.conv3d, (X5, W5), {"groups": 3}, ValueError,
     r"input: 2 input channels are not divisible by groups=3"),
    (F.conv3d, (X5, x4(3, 2, 5, 2, 2)), {}, ValueError,
     r"weight: kernel \(5, 2, 2\) with dilation \(1, 1, 1\) spans \(5, 2, 2\), larger than "
     r"the padded input \(4, 4, 4\)"),
    (F.max_pool3d, (X5, (5, 2, 2)), {}, ValueError,
     r"kernel_size: window \(5, 2, 2\) with dilation \(1, 1, 1\) is larger than the padded "
     r"input \(4, 4, 4\)"),
    (F.max_pool3d_backward, (x4(1, 2, 3, 2, 2), POOL_INDICES, X5.shape), {}, ValueError,
     r"indices: expected shape \(1, 2, 3, 2, 2\), got \(1, 2, 2, 2, 2\)"),
    (F.max_pool3d_backward, (x4(1, 2, 2, 2, 2), POOL_INDICES, X5.shape), {"kernel_size": 3},
     ValueError, r"grad_output: expected shape \(1, 2, 1, 1, 1\), got \(1, 2, 2, 2, 2\)"),
]


@pytest.mark.parametrize("op, args, kwargs, error, message", BAD_3D,
                         ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD_3D)])
def test_3d_bad_input(op, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        op(*args, **kwargs)


def test_the_guard_itself_catches_launches(monkeypatch):
    """The autouse guard is live: a valid call does reach the (refusing) launcher."""
    with pytest.raises(AssertionError, match="a kernel was launched"):
        F.relu(x4(3))
    assert build.launch is not None
