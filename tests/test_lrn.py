"""Local response normalisation (clconv.ops.lrn.lrn, ONNX LRN) against a float64
reference of ONNX's formula, for every form lrn.cl picks for beta, windows wider than
the channels, NaN and +-inf; and against torch's local_response_norm for odd windows,
where torch's window is ONNX's."""
import numpy as np
import pytest

from clconv.ops.lrn import BETA_FORMS, lrn


def reference(x, size, alpha, beta, bias):
    """ONNX LRN in float64: channels [c - (size-1)//2, c + size//2], clipped."""
    x = x.astype(np.float64)
    squares = x * x
    C = x.shape[1]
    lo = (size - 1) // 2
    total = np.zeros_like(x)
    for c in range(C):
        total[:, c] = squares[:, max(c - lo, 0):min(c + size - 1 - lo, C - 1) + 1].sum(axis=1)
    with np.errstate(all="ignore"):
        return x / np.power(bias + alpha / size * total, beta)


BETAS = sorted(BETA_FORMS) + [0.6, -0.3, 2.5]  # every exact form, and the general one


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("size", [1, 2, 5, 40])
def test_matches_reference(beta, size, rng):
    x = (rng.standard_normal((2, 9, 5, 7)) * 3).astype(np.float32)
    alpha, bias = 0.3, 1.5  # large enough that the window's sum moves every output
    got = lrn(x, size, alpha, beta, bias).get()
    np.testing.assert_allclose(got, reference(x, size, alpha, beta, bias), rtol=2e-6,
                               atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 6), (1, 4, 11), (2, 5, 3, 4, 2)])
def test_any_rank(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(lrn(x, 3, 0.5, 0.75, 1.0).get(),
                               reference(x, 3, 0.5, 0.75, 1.0), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("beta", BETAS)
def test_nan_and_infinities_as_pow_gives(beta, rng):
    """NaN, +-inf and zero windows (bias 0) give what x / pow(...) gives: NaN spreads
    over its window, an infinity sends its neighbours to 0 and itself to NaN."""
    x = rng.standard_normal((1, 8, 3, 3)).astype(np.float32)
    x[0, 1, 0, 0], x[0, 4, 1, 1], x[0, 6, 2, 2] = np.nan, np.inf, -np.inf
    x[0, :, 2, 0] = 0.0  # bias 0: a zero sum, 0 / 0
    for bias in (1.0, 0.0):
        got = lrn(x, 3, 0.2, beta, bias).get()
        want = reference(x, 3, 0.2, beta, bias).astype(np.float32)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite & ~np.isnan(want)],
                                      want[~finite & ~np.isnan(want)])
        np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_matches_torch_for_odd_windows(size, torch, rng):
    x = rng.standard_normal((2, 7, 6, 5)).astype(np.float32)
    want = torch.nn.functional.local_response_norm(torch.from_numpy(x), size, alpha=0.4,
                                                   beta=0.75, k=2.0).numpy()
    np.testing.assert_allclose(lrn(x, size, 0.4, 0.75, 2.0).get(), want, rtol=2e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name, value", [("size", 0), ("alpha", np.nan), ("beta", np.inf),
                                         ("bias", np.nan)])
def test_bad_parameters_name_themselves(name, value):
    args = dict(size=3, alpha=1e-4, beta=0.75, bias=1.0)
    args[name] = value
    with pytest.raises(ValueError, match=name):
        lrn(np.ones((1, 3, 2, 2), np.float32), **args)


def test_rejects_rank_one():
    with pytest.raises(ValueError, match="input"):
        lrn(np.ones(4, np.float32), 3)

