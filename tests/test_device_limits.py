"""Sizes past the device (one allocation, global memory, the kernels' int32 indices) raise
a ValueError naming the argument, the size and the limit, before any kernel is enqueued."""
import dataclasses

import numpy as np
import pytest

import clconv.functional as F
from clconv import build, runtime
from clconv.arrays import allocate, on_device


@pytest.fixture
def no_launch(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was enqueued for a size past the device")
    monkeypatch.setattr(build, "enqueue", refuse)


@pytest.fixture
def small_device(monkeypatch):
    """The current runtime with a 64 KiB allocation limit and 1 MiB of global memory."""
    rt = runtime.current()
    profile = dataclasses.replace(rt.profile, max_mem_alloc_size=1 << 16,
                                  global_mem_size=1 << 20)
    monkeypatch.setattr(runtime, "_current", dataclasses.replace(rt, profile=profile))
    return runtime._current


def rand(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


X, W = rand(1, 3, 16, 16), rand(4, 3, 3, 3)


@pytest.mark.parametrize("call, names", [
    (lambda: F.conv2d(X, W, padding=40000), ("output", "2147483647", "int32")),
    (lambda: F.conv2d(X, W, stride=10**12), ("stride", "1000000000000", "2147483647")),
    (lambda: F.conv2d(X, W, dilation=(1, 10**10)), ("dilation", "10000000000")),
    (lambda: F.conv2d(X, W, padding=2**30, stride=2**30), ("padding", "2147483647")),
    (lambda: F.conv2d(X, W, groups=2**40), ("groups", "2147483647")),
    (lambda: F.conv_transpose2d(X, rand(3, 4, 3, 3), stride=30000), ("output", "int32")),
    (lambda: F.max_pool2d(X, 2, stride=10**12), ("stride", "1000000000000")),
    (lambda: F.avg_pool2d(X, 2, padding=1, stride=2**31), ("stride", "2147483648")),
    (lambda: F.max_pool2d(X, 2, padding=2**31), ("padding", "2147483648")),
    (lambda: F.adaptive_avg_pool2d(X, 2**31), ("output_size", "2147483648")),
    (lambda: F.max_pool2d(X, 2, dilation=2**30), ("dilation 1073741824", "int32")),
    (lambda: F.conv2d(X, W, dilation=2**30, padding=2**30), ("dilation 1073741824", "int32")),
    (lambda: F.conv_transpose2d(X, rand(3, 4, 3, 3), stride=2**28, dilation=2**30),
     ("dilation 1073741824", "int32")),
    (lambda: F.linear(np.zeros((70000, 4), np.float32), np.zeros((70000, 4), np.float32)),
     ("output", "(70000, 70000)", "int32")),
])
def test_sizes_past_int32_raise_value_error_before_any_launch(no_launch, call, names):
    with pytest.raises(ValueError) as info:
        call()
    for name in names:
        assert name in str(info.value)


def test_an_allocation_past_max_mem_alloc_size_names_shape_and_limit(small_device, no_launch):
    with pytest.raises(ValueError, match=r"output: shape \(1, 4, 80, 80\).*max_mem_alloc_size "
                                         r"65536"):
        F.conv2d(X, W, padding=33)
    with pytest.raises(ValueError, match=r"input: shape \(1, 3, 128, 128\).*65536"):
        on_device(small_device, rand(1, 3, 128, 128))


def test_an_allocation_past_global_memory_names_it(small_device):
    profile = dataclasses.replace(small_device.profile, max_mem_alloc_size=1 << 30)
    rt = dataclasses.replace(small_device, profile=profile)
    with pytest.raises(ValueError, match=r"scratch: .*global memory \(1048576 bytes\)"):
        allocate(rt, (1024, 1024), np.float32, name="scratch")


def test_a_launch_past_int32_work_items_is_refused():
    rt = runtime.current()
    kernel = build.get_kernel(rt, "activation.cl", "relu_backward")
    with pytest.raises(ValueError, match="work-items.*2147483647"):
        build.launch_grid(rt, kernel, (2**16, 2**16), (8, 8))
    with pytest.raises(ValueError, match="work-items.*2147483647"):
        build.launch(rt, kernel, 2**31)


@pytest.mark.parametrize("stride", [2**30, 2**31 - 1])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_the_largest_strides_that_fit_give_the_reference(stride, algo):
    """The checks stop nothing the kernels can do; strides near INT_MAX used to overflow
    a ceil division in im2col (all zeros) and in the pooling gradients' window bounds."""
    from clconv import algos, reference as R

    with algos.force(algo):
        out = F.conv2d(X, W, stride=stride, padding=1).get()
    np.testing.assert_allclose(out, R.conv2d(X, W, stride=stride, padding=1), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(F.max_pool2d(X, 3, stride=stride, padding=1).get(),
                                  R.max_pool2d(X, 3, stride=stride, padding=1))
    grad = rand(1, 3, 1, 1) + 1
    np.testing.assert_allclose(
        F.avg_pool2d_backward(grad, X.shape, 3, stride=stride, padding=1).get(),
        R.avg_pool2d_backward(grad, X.shape, 3, stride=stride, padding=1), rtol=1e-5,
        atol=1e-7)
