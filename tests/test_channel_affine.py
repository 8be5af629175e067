"""elementwise.channel_affine (inference batch norm, per-channel constants from ONNX) on
its (inner, C, N) grid: every rank it takes, inner sizes below, at and past a work-group,
channel counts past one, in place, with a fused activation, NaN and inf; against numpy in
float32 (a device that contracts x * scale + shift into one FMA rounds once less)."""
from __future__ import annotations

import numpy as np
import pytest

from clconv.arrays import on_device, to_numpy
from clconv.epilogue import NO_ACTIVATION, RELU, Activation
from clconv.ops import elementwise
from clconv.runtime import current


def _expected(x, scale, shift, act):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = x * scale.reshape(shape) + shift.reshape(shape)  # float32 throughout
    return act.numpy(y).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 5), (2, 7, 1), (1, 70, 9), (2, 3, 13, 11),
                                   (1, 130, 8, 8), (2, 2, 3, 4, 5)])
@pytest.mark.parametrize("act", [NO_ACTIVATION, RELU, Activation("clip", -0.5, 0.75)])
def test_channel_affine_matches_numpy(shape, act, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, max(1, flat.size // 20), replace=False)] = np.nan
    flat[::17] = np.inf
    flat[5::19] = -np.inf
    scale = rng.standard_normal(shape[1]).astype(np.float32)
    shift = rng.standard_normal(shape[1]).astype(np.float32)
    got = to_numpy(elementwise.channel_affine(x, scale, shift, act))
    # assert_allclose also wants NaN and infinities in the same places
    np.testing.assert_allclose(got, _expected(x, scale, shift, act), rtol=1e-6, atol=1e-6)


def test_channel_affine_in_place(rng):
    x = rng.standard_normal((2, 6, 5, 7)).astype(np.float32)
    scale = rng.standard_normal(6).astype(np.float32)
    shift = rng.standard_normal(6).astype(np.float32)
    d = on_device(current(), x)
    y = elementwise.channel_affine(d, scale, shift, RELU, out=d)
    assert y is d
    np.testing.assert_allclose(to_numpy(d), _expected(x, scale, shift, RELU), rtol=1e-6,
                               atol=1e-6)
