"""How float32 device results are compared with the float64 reference."""
from __future__ import annotations

import numpy as np


def scaled_error(actual, expected, scale=None) -> float:
    """Largest |actual - expected| relative to `scale`.

    `scale` is the sum of the absolute values of the terms that produced each element
    (e.g. conv2d(|x|, |w|) + |b|): float32 rounding grows with that sum, not with the
    result, which may cancel to near zero. Without `scale`, the largest |expected|
    is used. NaN anywhere in `actual` (an element a kernel did not write) gives inf.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} differs from the reference {expected.shape}")
    if actual.size == 0:
        return 0.0
    if not np.all(np.isfinite(actual)):
        return float("inf")
    diff = np.abs(actual - expected)
    if scale is None:
        return float(diff.max() / max(np.abs(expected).max(), np.finfo(np.float32).tiny))
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), diff.shape)
    return float(np.max(diff / np.maximum(scale, np.finfo(np.float32).tiny)))


def outputs_error(actual, expected, scale=None, exact: bool = False) -> float:
    """The largest `scaled_error` over an op's outputs: one array or a tuple of them
    (None where an output is masked off, and then None on both sides). Integer outputs
    (indices) and `exact` ones must match exactly: inf where they do not."""
    if not isinstance(expected, tuple):
        actual, expected, scale = (actual,), (expected,), (scale,)
    elif not isinstance(scale, tuple):
        scale = (scale,) * len(expected)
    worst = 0.0
    for a, e, s in zip(actual, expected, scale):
        if e is None or a is None:
            if (a is None) != (e is None):
                return float("inf")
            continue
        a, e = np.asarray(a), np.asarray(e)
        if exact or e.dtype.kind in "iu":
            if a.shape != e.shape or not np.array_equal(a, e, equal_nan=e.dtype.kind == "f"):
                return float("inf")
            continue
        worst = max(worst, scaled_error(a, e, s))
    return worst
