"""The one average pooling kernel serves torch's avg_pool2d (divisor_override included)
and ONNX's AveragePool (asymmetric pads, dilation): checked against torch and a
float64 brute force over the windows."""
from __future__ import annotations

import numpy as np
import pytest

import clconv.functional as F
from clconv import reference as R
from clconv.arrays import to_numpy
from clconv.ops.padded_pool import avg_pool2d_padded

torch = pytest.importorskip("torch", reason="torch is the second oracle")


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, include, divisor", [
    (3, 2, 1, False, True, 5), (2, 1, 0, True, False, 3), (3, 2, 1, True, False, None),
    ((2, 3), (2, 1), (1, 1), False, True, 7)])
def test_avg_pool2d_and_gradient_match_torch(kernel, stride, padding, ceil_mode, include,
                                             divisor, rng):
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=include, divisor_override=divisor)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, **kw)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y = to_numpy(F.avg_pool2d(x, **kw))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, R.avg_pool2d(x, **kw), rtol=1e-5, atol=1e-6)
    gx = to_numpy(F.avg_pool2d_backward(g, x.shape, **kw))
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_divisor_override_must_be_positive():
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)


def _brute_force(x, kernel, stride, pads, out_size, dilation, include):
    """Average of each window's taps inside the input, divided by the taps inside the
    padded input [-top, H + bottom) (include) or inside the input."""
    N, C, H, W = x.shape
    top, left, bottom, right = pads
    y = np.zeros((N, C) + tuple(out_size))
    for oy in range(out_size[0]):
        for ox in range(out_size[1]):
            rows = [oy * stride[0] - top + k * dilation[0] for k in range(kernel[0])]
            cols = [ox * stride[1] - left + k * dilation[1] for k in range(kernel[1])]
            rows_in = [r for r in rows if 0 <= r < H]
            cols_in = [c for c in cols if 0 <= c < W]
            if include:
                n = (sum(r < H + bottom for r in rows) * sum(c < W + right for c in cols))
            else:
                n = len(rows_in) * len(cols_in)
            total = x[:, :, rows_in][:, :, :, cols_in].astype(np.float64).sum(axis=(2, 3))
            y[:, :, oy, ox] = total / n if n else 0.0
    return y


@pytest.mark.parametrize("pads, dilation, include", [
    ((0, 1, 2, 0), (1, 1), True), ((2, 0, 1, 2), (1, 2), False), ((1, 1, 0, 0), (2, 1), True)])
def test_asymmetric_pads_and_dilation(pads, dilation, include, rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    kernel, stride = (3, 2), (2, 1)
    out_size = tuple((size + p0 + p1 - d * (k - 1) - 1) // s + 1 for size, p0, p1, k, s, d in
                     zip(x.shape[2:], pads[:2], pads[2:], kernel, stride, dilation))
    y = to_numpy(avg_pool2d_padded(x, kernel, stride, pads, out_size, dilation, include))
    np.testing.assert_allclose(y, _brute_force(x, kernel, stride, pads, out_size, dilation,
                                               include), rtol=1e-5, atol=1e-6)
