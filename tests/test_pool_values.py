"""Pooling without indices: on CPUs, max pooling takes pool_values.cl's max_pool2d_values
(runs of outputs in explicit vectors, masked at the rows' ends, each work-item walking
along the rows of a band of its plane and keeping the rows the next output row shares),
average pooling of
whole windows avg_pool2d_values, and whole-plane pooling global_avg_pool2d /
global_max_pool2d; other devices (CLCONV_LIMITS=videocore4 here) keep
the per-output kernels. Both against torch, NaN and +-inf placed in the windows."""
from __future__ import annotations

import numpy as np
import pytest

import clconv.functional as F
import clconv.ops.pool as pool
from clconv.arrays import empty, on_device, to_numpy
from clconv.build import sub_buffer_alignment
from clconv.ops import padded_pool
from clconv.runtime import current

torch = pytest.importorskip("torch", reason="torch is the oracle")


def _cpu() -> bool:
    return pool.values_only_kernels(current().profile)


def _input(rng, shape, specials=True):
    """Random values in every channel, with ties, NaNs and +-inf at random places (and
    a whole row of -inf) when `specials`."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., ::4, ::3] = np.round(x[..., ::4, ::3])  # ties
    if specials:
        flat = x.reshape(-1)
        for value in (np.nan, np.inf, -np.inf):
            flat[rng.choice(flat.size, max(1, flat.size // 60), replace=False)] = value
        x[..., -1, :] = -np.inf
    return x


def _kernel_names(monkeypatch):
    """The kernels pool.py launches, in order."""
    names = []
    for launcher in ("launch", "launch_grid"):
        real = getattr(pool, launcher)

        def record(rt, kernel, *args, real=real):
            names.append(kernel.function_name)
            return real(rt, kernel, *args)

        monkeypatch.setattr(pool, launcher, record)
    return names


MAX_CASES = [  # shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 23, 41), 3, 2, 0, 1, False),         # Wo = 20: a last run that overlaps
    ((1, 4, 24, 35), 3, 2, 1, 1, False),
    ((1, 3, 19, 30), 3, 2, 0, 1, True),          # ceil: the last window leaves the row
    ((1, 5, 17, 29), 3, 1, 1, 1, False),
    ((2, 2, 11, 37), 3, 3, 1, 1, True),          # stride 3: lane-by-lane loads
    ((1, 2, 13, 50), (2, 5), (1, 4), (1, 2), 1, True),
    ((1, 3, 9, 7), 3, 1, 1, 1, False),           # Wo < a run
    ((1, 3, 17, 26), 2, 3, 1, 1, True),          # row stride past the window: no row kept
    ((1, 3, 6, 2), 2, 1, 1, 1, True),            # W tiny
    ((2, 3, 1, 45), (1, 3), (1, 2), 0, 1, False),  # H = 1
    ((1, 2, 14, 31), 3, 2, 1, (2, 1), True),     # rows dilated: still the vector kernel
    ((1, 2, 14, 31), 3, 2, 1, (1, 2), False),    # columns dilated: the per-output kernel
    ((1, 2, 12, 40), 7, (2, 7), 3, 1, True),     # the largest compiled-in window
    ((1, 2, 12, 40), 8, 2, 4, 1, False),         # past it: the run-time kernel
    ((1, 2, 9, 150), 3, 2, 1, 1, False),         # Wo = 75: two chunks of runs per row
    ((1, 2, 40, 140), 3, 1, 1, 1, False),        # few planes: bands of rows, rows kept
]


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", MAX_CASES)
def test_max_pool2d_values_match_torch(shape, kernel, stride, padding, dilation, ceil_mode,
                                       rng, monkeypatch):
    x = _input(rng, shape)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
              ceil_mode=ceil_mode)
    names = _kernel_names(monkeypatch)
    y = to_numpy(F.max_pool2d(x, **kw))
    ty = torch.nn.functional.max_pool2d(torch.tensor(x), **kw).numpy()
    np.testing.assert_array_equal(y, ty)
    vector = (_cpu() and max(np.atleast_1d(kernel)) <= pool.FIXED_WINDOW_MAX
              and np.atleast_1d(dilation)[-1] == 1)
    assert ("max_pool2d_values" in names) == vector, names


def test_max_pool2d_values_first_and_last_rows_of_x(rng):
    """Runs at the ends of x's first and last rows cannot read across into the next
    row: their own path, with NaN and +inf right at the ends."""
    x = _input(rng, (1, 1, 5, 21), specials=False)
    x[0, 0, 0, 0], x[0, 0, -1, -1], x[0, 0, -1, -2] = np.nan, np.inf, np.nan
    for kw in (dict(kernel_size=3, stride=1, padding=1),
               dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)):
        y = to_numpy(F.max_pool2d(x, **kw))
        np.testing.assert_array_equal(y, torch.nn.functional.max_pool2d(
            torch.tensor(x), **kw).numpy())


def test_max_pool2d_values_into_out_and_windows_in_padding(rng):
    """ONNX's pads and output size allow windows wholly in the padding: -inf, as the
    per-output kernel gives; `out` is written in place."""
    x = _input(rng, (2, 3, 10, 18))
    out = empty(current(), (2, 3, 7, 12))
    kw = dict(kernel=(2, 2), stride=(2, 2), pads_begin=(3, 3), out_size=(7, 12))
    y = padded_pool.max_pool2d_padded(x, out=out, **kw)
    assert y is out
    # windows (oy, ox) cover rows 2*oy - 3, +1 and columns 2*ox - 3, +1 of x
    padded = np.full((2, 3, 3 + 10 + 1, 3 + 18 + 3), -np.inf, np.float32)
    padded[:, :, 3:13, 3:21] = x
    with np.errstate(invalid="ignore"):
        windows = padded[:, :, :14, :24].reshape(2, 3, 7, 2, 12, 2)
        expected = windows.max(axis=(3, 5))
    expected[np.isnan(windows).any(axis=(3, 5))] = np.nan
    assert np.isneginf(expected[:, :, 0, :]).all()  # the case this test is about
    np.testing.assert_array_equal(to_numpy(out), expected)


AVG_CASES = [  # shape, kernel, stride, padding, ceil_mode, divisor_override
    ((1, 6, 56, 56), 2, 2, 0, False, None),      # DenseNet's transition
    ((2, 3, 9, 7), 2, 2, 0, False, None),        # odd sizes: the last row and column left
    ((1, 3, 23, 41), 3, 2, 0, False, None),      # Wo = 20: a last run that overlaps
    ((1, 2, 9, 7), 3, 1, 0, False, 4),           # Wo < a run; a divisor override
    ((1, 2, 6, 36), (3, 2), (3, 2), 0, True, None),  # ceil mode, yet every window whole
    ((1, 2, 7, 12), 2, 2, 0, True, None),        # ceil mode's partial window: per output
    ((1, 2, 10, 12), 3, 2, 1, False, None),      # padding: the per-output kernel
]


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, divisor", AVG_CASES)
def test_avg_pool2d_values_of_whole_windows_match_torch(shape, kernel, stride, padding,
                                                        ceil_mode, divisor, rng, monkeypatch):
    """The same floats as torch (the sums in its order), NaN and +-inf included; the
    vector kernel where every window is whole, the per-output one elsewhere."""
    x = _input(rng, shape)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
              divisor_override=divisor)
    names = _kernel_names(monkeypatch)
    y = to_numpy(F.avg_pool2d(x, **kw))
    ty = torch.nn.functional.avg_pool2d(torch.tensor(x), **kw).numpy()
    np.testing.assert_array_equal(y, ty)  # NaN where torch has NaN
    whole = padding == 0 and not (ceil_mode and shape[-1] == 12)
    assert ("avg_pool2d_values" in names) == (_cpu() and whole), names


def test_avg_pool2d_values_at_the_end_of_x(rng):
    """A run narrower than the vector at x's last rows reads no float past x: its taps
    lane by lane, +inf and NaN right at the end."""
    x = _input(rng, (1, 2, 4, 5), specials=False)
    x[0, 1, -1, -1], x[0, 1, -2, -3] = np.inf, np.nan
    y = to_numpy(F.avg_pool2d(x, 2, 1))
    ty = torch.nn.functional.avg_pool2d(torch.tensor(x), 2, 1).numpy()
    np.testing.assert_array_equal(y, ty)  # NaN where torch has NaN


@pytest.mark.parametrize("shape", [(2, 5, 13, 13), (1, 7, 7, 7), (3, 2, 1, 1), (1, 3, 2, 3),
                                   (1, 4, 16, 16)])
def test_global_pools_match_torch(shape, rng, monkeypatch):
    names = _kernel_names(monkeypatch)
    x = _input(rng, shape, specials=False) * 10
    H, W = shape[2:]
    tx = torch.tensor(x)
    # float32 sums in another order than torch's: within a few ulps of the plane's sum
    close = dict(rtol=1e-5, atol=1e-6 * float(np.abs(x).max()))
    np.testing.assert_allclose(to_numpy(F.adaptive_avg_pool2d(x, 1)),
                               torch.nn.functional.adaptive_avg_pool2d(tx, 1).numpy(), **close)
    np.testing.assert_allclose(to_numpy(F.avg_pool2d(x, (H, W), divisor_override=3)),
                               torch.nn.functional.avg_pool2d(tx, (H, W), divisor_override=3)
                               .numpy(), **close)
    # ONNX's GlobalAveragePool: each plane as one row
    flat = x.reshape(shape[0], shape[1], 1, H * W)
    y = padded_pool.avg_pool2d_padded(flat, (1, H * W), (1, H * W), (0, 0, 0, 0), (1, 1))
    np.testing.assert_allclose(to_numpy(y).reshape(shape[:2]), x.mean(axis=(2, 3)), **close)
    x.reshape(-1)[rng.choice(x.size, x.size // 7 + 1, replace=False)] = np.inf
    x.reshape(-1)[rng.choice(x.size, x.size // 7 + 1, replace=False)] = np.nan
    x[0, 0] = -np.inf
    np.testing.assert_array_equal(to_numpy(F.max_pool2d(x, (H, W))),
                                  torch.nn.functional.max_pool2d(torch.tensor(x), (H, W)).numpy())
    expected = (["global_avg_pool2d"] * 3 + ["global_max_pool2d"]) if _cpu() else []
    assert [n for n in names if n.startswith("global")] == expected, names


def test_global_avg_pool_propagates_nan_and_inf(rng):
    x = _input(rng, (1, 4, 5, 9), specials=False)
    x[0, 0, 2, 3], x[0, 1, 4, 8], x[0, 2, 0, 0], x[0, 2, 1, 1] = np.nan, np.inf, np.inf, -np.inf
    y = to_numpy(F.adaptive_avg_pool2d(x, 1))
    ty = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), 1).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    np.testing.assert_allclose(y[~np.isnan(y)], ty[~np.isnan(ty)], rtol=1e-5)


def test_pools_from_and_into_sub_buffers(rng):
    """An ONNX plan pools into a slice of a concatenation's buffer (and from one): a
    sub-buffer at an offset, whose neighbours stay as they were."""
    import pyopencl as cl
    import pyopencl.array as cla
    rt = current()
    align = sub_buffer_alignment(rt.context.devices[0])  # bytes
    x = _input(rng, (2, 3, 13, 27))
    expected = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True).numpy()
    x_at = 3 * align  # the input, then the output, each at an aligned offset
    y_at = x_at + -(-x.nbytes // align) * align
    host = np.full((y_at + expected.nbytes) // 4 + 256, 7.0, np.float32)
    host[x_at // 4:x_at // 4 + x.size] = x.reshape(-1)
    big = cla.to_device(rt.queue, host)

    def view(offset, shape):
        region = big.base_data.get_sub_region(offset, int(np.prod(shape)) * 4,
                                              cl.mem_flags.READ_WRITE)
        return cla.Array(rt.queue, shape, np.float32, data=region)

    out = view(y_at, expected.shape)
    padded_pool.max_pool2d_padded(view(x_at, x.shape), (3, 3), (2, 2), (1, 1),
                                  expected.shape[2:], out=out)
    np.testing.assert_array_equal(out.get(), expected)
    written = big.get()
    np.testing.assert_array_equal(written[y_at // 4:y_at // 4 + expected.size],
                                  expected.reshape(-1))
    written[y_at // 4:y_at // 4 + expected.size] = 7.0
    written[x_at // 4:x_at // 4 + x.size] = 7.0
    assert (written == 7.0).all()  # nothing written outside the output's slice


@pytest.mark.parametrize("padding", [0, 1], ids=["in its loads", "a pass of its own"])
@pytest.mark.parametrize("act", ["relu", "none"])
def test_avg_pool_with_an_input_affine_is_the_pool_of_the_mapped_input(rng, act, padding):
    """An inference batch norm (+ ReLU) before the pool (ONNX plans fuse it): applied as
    the vector kernel loads its taps, or first in a pass of its own where another kernel
    pools; both the pool of channel_affine's result, NaN and +-inf included."""
    from clconv.epilogue import Activation
    from clconv.ops.elementwise import channel_affine
    x = _input(rng, (2, 5, 12, 18))
    scale = rng.standard_normal(5).astype(np.float32)
    shift = rng.standard_normal(5).astype(np.float32)
    scale[2] = 0.0  # times an infinity: NaN
    rt = current()
    affine = (on_device(rt, scale), on_device(rt, shift), Activation(act))
    pads = (padding,) * 4
    out_size = ((12 + 2 * padding - 2) // 2 + 1, (18 + 2 * padding - 2) // 2 + 1)
    got = to_numpy(padded_pool.avg_pool2d_padded(x, (2, 2), (2, 2), pads, out_size,
                                                 input_affine=affine))
    mapped = channel_affine(x, scale, shift, Activation(act))
    want = to_numpy(padded_pool.avg_pool2d_padded(mapped, (2, 2), (2, 2), pads, out_size))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6, atol=1e-6)


def test_avg_pool_input_affine_of_the_wrong_size_names_itself(rng):
    from clconv.epilogue import RELU
    x = _input(rng, (1, 3, 4, 4), specials=False)
    good = np.ones(3, np.float32)
    for bad, name in (((np.ones(2, np.float32), good), "scale"),
                      ((good, np.ones(4, np.float32)), "shift")):
        with pytest.raises(ValueError, match=rf"input_affine {name}: expected shape \(3,\)"):
            padded_pool.avg_pool2d_padded(x, (2, 2), (2, 2), (0, 0, 0, 0), (2, 2),
                                          input_affine=(*bad, RELU))
