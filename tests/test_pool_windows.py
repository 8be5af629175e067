"""pool2d.cl's forward kernels come three ways: a window compiled in (up to
FIXED_WINDOW_MAX, not on VC4CL), read with clamped columns or, on the planes inner_planes
allows, unclamped (the *_inner kernels); and larger windows with run-time loops. The seeded
sweeps of test_ops use small windows on small inputs; these cases reach the largest
compiled-in window, the run-time one past it, and inputs wide enough that one call
splits its planes between both fixed-window kernels, against torch, NaN and -inf
included."""
from __future__ import annotations

import numpy as np
import pytest

import clconv.functional as F
import clconv.ops.pool as pool
from clconv.arrays import to_numpy
from clconv.device import DeviceKind
from clconv.runtime import current

torch = pytest.importorskip("torch", reason="torch is the oracle")

LARGEST = pool.FIXED_WINDOW_MAX


def _input(rng, shape):
    """Random values with NaNs, -inf runs (a window may hold nothing else) and ties."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., ::5, ::3] = np.round(x[..., ::5, ::3])  # ties
    x[:, :2, :, :LARGEST + 2] = -np.inf  # whole windows of -inf, in planes of both kernels
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, flat.size // 50, replace=False)] = np.nan
    return x


def _kernel_names(monkeypatch):
    """The pool2d.cl kernels each launch runs, in order."""
    names = []
    real = pool.launch_grid

    def record(rt, kernel, *args):
        names.append(kernel.function_name)
        return real(rt, kernel, *args)

    monkeypatch.setattr(pool, "launch_grid", record)
    return names


CASES = [  # kernel, stride, padding, dilation, ceil_mode
    (LARGEST, 1, 3, 1, False), (LARGEST, 2, 2, 1, True), (LARGEST, (3, LARGEST), 1, 1, True),
    (3, 2, 1, 2, True), ((2, 5), (1, 3), (1, 2), (2, 1), False),
    (LARGEST + 1, 2, 3, 1, True), (LARGEST + 2, (1, 3), 4, (2, 1), False),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode", CASES)
def test_max_pool2d_windows_match_torch(kernel, stride, padding, dilation, ceil_mode, rng,
                                        monkeypatch):
    x = _input(rng, (2, 3, 23, 41))
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    names = _kernel_names(monkeypatch)
    y, idx = F.max_pool2d(x, return_indices=True, **kw)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(to_numpy(y), ty.numpy())
    np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())
    _check_kernels(names, "max_pool2d_forward", kernel)


# torch's avg_pool2d has no dilation (test_avg_pool checks ONNX's against a brute force)
@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode",
                         [case for case in CASES if case[3] == 1])
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool2d_windows_match_torch(kernel, stride, padding, dilation, ceil_mode, include,
                                        rng, monkeypatch):
    x = _input(rng, (2, 3, 23, 41))
    x[np.isnan(x)] = 0.5  # NaN and -inf reach every sum: all NaN; keep the sums finite
    x[np.isinf(x)] = -3.0
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=include)
    names = _kernel_names(monkeypatch)
    y = to_numpy(F.avg_pool2d(x, **kw))
    ty = torch.nn.functional.avg_pool2d(torch.tensor(x), **kw).numpy()
    np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-6)
    _check_kernels(names, "avg_pool2d_forward", kernel)


def _check_kernels(names, name, kernel):
    """A compiled-in window splits its 6 planes between both kernels (plane 0 padded on
    the left or the last one read past its end keep the clamped one); a larger one, or
    any on VC4CL, runs the run-time kernel alone."""
    if max(np.atleast_1d(kernel)) > LARGEST or current().profile.kind == DeviceKind.VC4CL:
        assert names == [name]
    else:
        assert name in names and name + "_inner" in names, names


def test_inner_planes_keep_reads_inside_the_input():
    # 4 planes of 5x6; 8 work-items along x of stride 1, 3 taps, no padding: the last
    # reads column 7 + 2 = 9 of the last row, 4 past its last (5): plane 3 not.
    assert pool.inner_planes(4, 5, 6, 8, 3, 1, 1, 0) == (0, 3)
    # padding on the left reads before plane 0
    assert pool.inner_planes(4, 5, 6, 4, 3, 1, 1, 1) == (1, 4)
    # 14 past a 2x3 plane's last: the last three planes keep the clamped kernel
    assert pool.inner_planes(4, 2, 3, 16, 2, 1, 1, 0) == (0, 1)
