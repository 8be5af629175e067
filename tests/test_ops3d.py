"""The 3-D ops (conv3d, conv_transpose3d, max_pool3d, avg_pool3d and their gradients)
against the float64 reference (clconv.reference3d) and torch, on seeded random data in
every channel; NaN and ±inf against torch; bad input raising before any kernel runs.

The cases are plain data (`CASES`, `BAD_INPUT`): op, reference, torch op, input
generator, so an op table can take them over. New outputs are pre-filled with NaN
(conftest), so an element a kernel fails to write fails the comparison. Run it also with
CLCONV_LIMITS=videocore4 (12 work-items per group, VC4CL's tunables).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import clconv.functional as F
from clconv import build, to_numpy
from clconv import reference3d as R
from clconv.compare import scaled_error
from clconv.epilogue import Activation

TOL = 1e-4


def randn(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ torch ops (lazy)

def _t(a):
    import torch

    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def _grads(fn, tensors, grad_output):
    """torch's gradients of fn(*tensors) w.r.t. each float tensor (None for None)."""

    leaves = [None if a is None else _t(a).clone().requires_grad_(a.dtype.kind == "f")
              for a in tensors]
    out = fn(*leaves)
    out.backward(_t(grad_output))
    return tuple(None if a is None else a.grad.numpy() for a in leaves)


def torch_conv3d(x, w, b=None, **kw):
    import torch

    return torch.nn.functional.conv3d(_t(x), _t(w), _t(b), **kw).numpy()


def torch_conv3d_backward(g, x, w, output_mask=(True, True, True), **kw):
    import torch

    b = np.zeros(w.shape[0], np.float32) if output_mask[2] else None
    gx, gw, gb = _grads(lambda x_, w_, b_: torch.nn.functional.conv3d(x_, w_, b_, **kw),
                        (x, w, b), g)
    return tuple(v if m else None for v, m in zip((gx, gw, gb), output_mask))


def torch_conv_transpose3d(x, w, b=None, **kw):
    import torch

    return torch.nn.functional.conv_transpose3d(_t(x), _t(w), _t(b), **kw).numpy()


def torch_conv_transpose3d_backward(g, x, w, output_mask=(True, True, True), **kw):
    import torch

    b = np.zeros(w.shape[1] * kw.get("groups", 1), np.float32)
    gx, gw, gb = _grads(
        lambda x_, w_, b_: torch.nn.functional.conv_transpose3d(x_, w_, b_, **kw), (x, w, b), g)
    return tuple(v if m else None for v, m in zip((gx, gw, gb), output_mask))


def torch_max_pool3d(x, **kw):
    import torch

    out = torch.nn.functional.max_pool3d(_t(x), **kw)
    return tuple(o.numpy() for o in out) if kw.get("return_indices") else out.numpy()


def torch_max_pool3d_backward(g, indices, input_shape, x, **kw):
    """The gradient torch's max_pool3d gives `x` (whose indices `indices` are)."""
    import torch

    return _grads(lambda x_: torch.nn.functional.max_pool3d(x_, **kw), (x,), g)[0]


def torch_avg_pool3d(x, **kw):
    import torch

    return torch.nn.functional.avg_pool3d(_t(x), **kw).numpy()


def torch_avg_pool3d_backward(g, input_shape, x, **kw):
    import torch

    return _grads(lambda x_: torch.nn.functional.avg_pool3d(x_, **kw), (x,), g)[0]


# ------------------------------------------------------------------ the cases

@dataclass(frozen=True)
class Case:
    """op(*args, **kwargs) against reference(...) and torch_op(...); `make(rng)` returns
    (args, kwargs, torch_extra): torch_extra are extra keyword arguments torch's side
    needs (the forward input of a pooling gradient). `scale(args, kwargs)`, if given, is
    the reference on absolute values: float32 rounding grows with it."""

    name: str
    op: Callable
    reference: Callable
    torch_op: Callable
    make: Callable
    scale: Callable | None = None


def _abs(args):
    return [np.abs(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in args]


def conv_case(x_shape, w_shape, bias=True, **kw):
    def make(rng):
        x, w = randn(rng, x_shape), randn(rng, w_shape)
        b = randn(rng, (w_shape[0],)) if bias else None
        return [x, w, b], kw, {}
    return make


def conv_backward_case(x_shape, w_shape, mask=(True, True, True), **kw):
    def make(rng):
        x, w = randn(rng, x_shape), randn(rng, w_shape)
        g = randn(rng, R.conv3d(x, w, None, **kw).shape)
        return [g, x, w], dict(kw, output_mask=mask), {}
    return make


def transpose_case(x_shape, w_shape, bias=True, **kw):
    def make(rng):
        x, w = randn(rng, x_shape), randn(rng, w_shape)
        b = randn(rng, (w_shape[1] * kw.get("groups", 1),)) if bias else None
        return [x, w, b], kw, {}
    return make


def transpose_backward_case(x_shape, w_shape, mask=(True, True, True), **kw):
    def make(rng):
        x, w = randn(rng, x_shape), randn(rng, w_shape)
        g = randn(rng, R.conv_transpose3d(x, w, None, **kw).shape)
        return [g, x, w], dict(kw, output_mask=mask), {}
    return make


def pool_case(x_shape, **kw):
    def make(rng):
        return [randn(rng, x_shape)], kw, {}
    return make


def max_backward_case(x_shape, with_window=True, **kw):
    def make(rng):
        x = randn(rng, x_shape)
        out, idx = R.max_pool3d(x, return_indices=True, **kw)
        g = randn(rng, out.shape)
        window = dict(kw) if with_window else {}
        return [g, idx, x.shape], window, {"x": x, **kw}
    return make


def avg_backward_case(x_shape, **kw):
    def make(rng):
        x = randn(rng, x_shape)
        g = randn(rng, R.avg_pool3d(x, **kw).shape)
        return [g, x.shape], kw, {"x": x}
    return make


def _conv_scale(reference):
    return lambda args, kwargs: reference(*_abs(args), **kwargs)


CONV_GEOMETRIES = [  # (input, weight, kwargs): strides, padding kinds, dilation, groups
    ((2, 4, 5, 6, 7), (6, 2, 3, 2, 3), dict(stride=(1, 2, 1), padding=(1, 0, 2),
                                            dilation=(1, 1, 2), groups=2)),
    ((1, 3, 6, 5, 8), (4, 3, 3, 3, 3), dict(padding="same", dilation=(2, 1, 1))),
    ((2, 3, 7, 6, 5), (5, 3, 2, 3, 1), dict(stride=2, padding="valid")),
    ((2, 5, 3, 4, 6), (7, 5, 1, 1, 1), dict()),  # 1x1x1: the input is the column matrix
    ((1, 6, 4, 5, 5), (6, 1, 3, 3, 3), dict(stride=(2, 1, 3), padding=1, groups=6)),
]
TRANSPOSE_GEOMETRIES = [
    ((2, 4, 3, 4, 5), (4, 3, 3, 2, 3), dict(stride=(2, 1, 3), padding=(1, 0, 2),
                                            output_padding=(1, 0, 1), dilation=(1, 2, 1),
                                            groups=2)),
    ((1, 3, 4, 3, 4), (3, 5, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 4, 3, 3, 3), (4, 3, 1, 1, 1), dict()),
]
POOL_SHAPE = (2, 3, 7, 8, 9)
MAX_WINDOWS = [
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1),
         ceil_mode=True),
    dict(kernel_size=2),
    dict(kernel_size=(2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
]
AVG_WINDOWS = [
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True),
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True,
         count_include_pad=False),
    dict(kernel_size=2, divisor_override=5),
    dict(kernel_size=(2, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1), count_include_pad=False,
         divisor_override=3),
]

CASES = (
    [Case(f"conv3d-{i}", F.conv3d, R.conv3d, torch_conv3d, conv_case(x, w, **kw),
          _conv_scale(R.conv3d)) for i, (x, w, kw) in enumerate(CONV_GEOMETRIES)]
    + [Case(f"conv3d_backward-{i}", F.conv3d_backward, R.conv3d_backward,
            torch_conv3d_backward, conv_backward_case(x, w, **kw),
            _conv_scale(R.conv3d_backward)) for i, (x, w, kw) in enumerate(CONV_GEOMETRIES)]
    + [Case("conv3d_backward-masked", F.conv3d_backward, R.conv3d_backward,
            torch_conv3d_backward,
            conv_backward_case(*CONV_GEOMETRIES[0][:2], mask=(False, True, False),
                               **CONV_GEOMETRIES[0][2]), _conv_scale(R.conv3d_backward))]
    + [Case(f"conv_transpose3d-{i}", F.conv_transpose3d, R.conv_transpose3d,
            torch_conv_transpose3d, transpose_case(x, w, **kw), _conv_scale(R.conv_transpose3d))
       for i, (x, w, kw) in enumerate(TRANSPOSE_GEOMETRIES)]
    + [Case(f"conv_transpose3d_backward-{i}", F.conv_transpose3d_backward,
            R.conv_transpose3d_backward, torch_conv_transpose3d_backward,
            transpose_backward_case(x, w, **kw), _conv_scale(R.conv_transpose3d_backward))
       for i, (x, w, kw) in enumerate(TRANSPOSE_GEOMETRIES)]
    + [Case(f"max_pool3d-{i}", F.max_pool3d, R.max_pool3d, torch_max_pool3d,
            pool_case(POOL_SHAPE, return_indices=True, **kw))
       for i, kw in enumerate(MAX_WINDOWS)]
    + [Case(f"max_pool3d_backward-{i}", F.max_pool3d_backward,
            lambda g, idx, shape, **kw: R.max_pool3d_backward(g, idx, shape),
            torch_max_pool3d_backward, max_backward_case(POOL_SHAPE, **kw))
       for i, kw in enumerate(MAX_WINDOWS)]
    + [Case("max_pool3d_backward-indices-only", F.max_pool3d_backward,
            lambda g, idx, shape, **kw: R.max_pool3d_backward(g, idx, shape),
            torch_max_pool3d_backward,
            max_backward_case(POOL_SHAPE, with_window=False, **MAX_WINDOWS[0]))]
    + [Case(f"avg_pool3d-{i}", F.avg_pool3d, R.avg_pool3d, torch_avg_pool3d,
            pool_case(POOL_SHAPE, **kw)) for i, kw in enumerate(AVG_WINDOWS)]
    + [Case(f"avg_pool3d_backward-{i}", F.avg_pool3d_backward, R.avg_pool3d_backward,
            torch_avg_pool3d_backward, avg_backward_case(POOL_SHAPE, **kw))
       for i, kw in enumerate(AVG_WINDOWS)]
)


def _outputs(value):
    return value if isinstance(value, tuple) else (value,)


def assert_close(name, actual, expected, scale=None, tol=TOL):
    if expected is None:
        assert actual is None, f"{name}: expected None (masked off), got an array"
        return
    actual = to_numpy(actual)
    if np.asarray(expected).dtype.kind in "iu":  # pooling indices: exact
        np.testing.assert_array_equal(actual, expected, err_msg=name)
        return
    error = scaled_error(actual, np.asarray(expected), scale)
    assert error <= tol, f"{name}: scaled error {error:.3g} > {tol:g}"


def _seeded(case):
    return np.random.default_rng(zlib.crc32(case.name.encode()))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_against_reference(case):
    args, kwargs, _ = case.make(_seeded(case))
    got = _outputs(case.op(*args, **kwargs))
    want = _outputs(case.reference(*args, **kwargs))
    scale = _outputs(case.scale(args, kwargs)) if case.scale else (None,) * len(want)
    assert len(got) == len(want)
    for i, (a, e, s) in enumerate(zip(got, want, scale)):
        assert_close(f"{case.name}[{i}]", a, e, s)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_against_torch(case, torch):
    args, kwargs, extra = case.make(_seeded(case))
    got = _outputs(case.op(*args, **kwargs))
    want = _outputs(case.torch_op(*args, **{**kwargs, **extra}))
    scale = _outputs(case.scale(args, kwargs)) if case.scale else (None,) * len(want)
    for i, (a, e, s) in enumerate(zip(got, want, scale)):
        assert_close(f"{case.name}[{i}] vs torch", a, e, s)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reference_against_torch(case, torch):
    """The oracle itself (float64) against torch (float32): no kernel runs."""
    args, kwargs, extra = case.make(_seeded(case))
    want = _outputs(case.torch_op(*args, **{**kwargs, **extra}))
    got = _outputs(case.reference(*args, **kwargs))
    scale = _outputs(case.scale(args, kwargs)) if case.scale else (None,) * len(want)
    for i, (a, e, s) in enumerate(zip(got, want, scale)):
        if e is None:
            assert a is None
        elif e.dtype.kind in "iu":
            np.testing.assert_array_equal(a, e)
        else:
            error = scaled_error(a, e, s)
            assert error <= TOL, f"{case.name}[{i}] reference vs torch: {error:.3g}"


def test_conv3d_activation_is_fused(torch):
    rng = np.random.default_rng(7)
    x, w, b = randn(rng, (2, 3, 4, 5, 6)), randn(rng, (4, 3, 2, 2, 2)), randn(rng, (4,))
    got = F.conv3d_activation(x, w, b, padding=1, activation=Activation("leaky_relu", 0.1))
    want = torch.nn.functional.leaky_relu(_t(torch_conv3d(x, w, b, padding=1)), 0.1)
    assert_close("conv3d + leaky_relu", got, want.numpy(),
                 R.conv3d(np.abs(x), np.abs(w), np.abs(b), padding=1))


# ------------------------------------------------------------------ NaN and ±inf

def _with_edge_values(rng, x):
    x = x.copy()
    flat = x.reshape(-1)
    spots = rng.choice(flat.size, size=6, replace=False)
    flat[spots] = [np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf]
    return x


EDGE_CASES = [c for c in CASES if c.name in (
    "conv3d-0", "conv3d-1", "conv_transpose3d-0", "max_pool3d-0", "max_pool3d-1",
    "avg_pool3d-0", "avg_pool3d-2")]


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
def test_nan_and_inf_propagate_like_torch(case, torch):
    """NaN and ±inf in the input (not the weights: torch's own backends disagree on
    0 * inf in padding) give torch's NaN, ±inf and finite values, position by position."""
    rng = _seeded(case)
    args, kwargs, extra = case.make(rng)
    args[0] = _with_edge_values(rng, args[0])
    got = [to_numpy(a) for a in _outputs(case.op(*args, **kwargs))]
    want = _outputs(case.torch_op(*args, **{**kwargs, **extra}))
    for a, e in zip(got, want):
        if e.dtype.kind in "iu":
            np.testing.assert_array_equal(a, e)
            continue
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.isinf(a) & (a > 0), np.isinf(e) & (e > 0))
        np.testing.assert_array_equal(np.isinf(a) & (a < 0), np.isinf(e) & (e < 0))
        finite = np.isfinite(e)
        np.testing.assert_allclose(a[finite], e[finite], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ bad input

def _ones(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


X5, W5 = _ones(1, 2, 4, 4, 4), _ones(3, 2, 2, 2, 2)
G_CONV = _ones(1, 3, 3, 3, 3)
WT5 = _ones(2, 3, 2, 2, 2)
G_T = _ones(1, 3, 5, 5, 5)
G_POOL = _ones(1, 2, 2, 2, 2)
IDX = np.zeros((1, 2, 2, 2, 2), np.int32)

# (op, args, kwargs, exception, message regex): each names the argument, what it got
# and the limit, and is raised before any kernel is launched
BAD_INPUT = [
    (F.conv3d, (_ones(2, 4, 4, 4), W5), {}, ValueError,
     r"input: expected a 5-D array \(N, C, D, H, W\), got shape \(2, 4, 4, 4\)"),
    (F.conv3d, (X5, _ones(3, 2, 2, 2)), {}, ValueError, r"weight: expected a 5-D array"),
    (F.conv3d, (X5.astype(np.float64), W5), {}, TypeError,
     r"input: expected dtype float32, got float64"),
    (F.conv3d, (X5, _ones(3, 1, 2, 2, 2)), {}, ValueError,
     r"weight: expected shape \(3, 2, 2, 2, 2\) .* got \(3, 1, 2, 2, 2\)"),
    (F.conv3d, (X5, W5), {"stride": 0}, ValueError, r"stride: expected values >= 1, got 0"),
    (F.conv3d, (X5, W5), {"stride": (1, 1)}, TypeError,
     r"stride: expected an int or a triple of ints, got \(1, 1\)"),
    (F.conv3d, (X5, W5), {"dilation": 1.5}, TypeError, r"dilation: expected an int"),
    (F.conv3d, (X5, W5), {"padding": "full"}, ValueError,
     r"padding: expected an int, a triple, 'valid' or 'same', got 'full'"),
    (F.conv3d, (X5, W5), {"padding": "same", "stride": 2}, ValueError,
     r"padding: 'same' is not supported for strided convolutions"),
    (F.conv3d, (X5, W5), {"groups": 3}, ValueError,
     r"input: 2 input channels are not divisible by groups=3"),
    (F.conv3d, (X5, _ones(3, 2, 5, 2, 2)), {}, ValueError,
     r"weight: kernel \(5, 2, 2\) with dilation \(1, 1, 1\) spans \(5, 2, 2\), larger than "
     r"the padded input \(4, 4, 4\)"),
    (F.conv3d, (X5, W5, _ones(2)), {}, ValueError, r"bias: expected shape \(3,\), got \(2,\)"),
    (F.conv3d_backward, (_ones(1, 3, 2, 3, 3), X5, W5), {}, ValueError,
     r"grad_output: expected shape \(1, 3, 3, 3, 3\), got \(1, 3, 2, 3, 3\)"),
    (F.conv3d_backward, (G_CONV, X5, W5), {"output_mask": (True,)}, ValueError,
     r"output_mask: expected 3 booleans"),
    (F.conv_transpose3d, (X5, _ones(3, 3, 2, 2, 2)), {}, ValueError,
     r"weight: expected shape \(2, out_channels/groups, \*kernel_size\) .* got \(3, 3, 2, 2, 2\)"),
    (F.conv_transpose3d, (X5, WT5), {"output_padding": 1}, ValueError,
     r"output_padding: must be smaller than stride \(1, 1, 1\) or dilation \(1, 1, 1\)"),
    (F.conv_transpose3d, (X5, WT5), {"padding": "same"}, ValueError,
     r"padding: conv_transpose3d takes an int or a triple, got 'same'"),
    (F.conv_transpose3d, (X5, WT5, _ones(2)), {}, ValueError,
     r"bias: expected shape \(3,\), got \(2,\)"),
    (F.conv_transpose3d_backward, (_ones(1, 3, 4, 5, 5), X5, WT5), {}, ValueError,
     r"grad_output: expected shape \(1, 3, 5, 5, 5\), got \(1, 3, 4, 5, 5\)"),
    (F.max_pool3d, (_ones(2, 4, 4, 4), 2), {}, ValueError, r"input: expected a 5-D array"),
    (F.max_pool3d, (X5, 0), {}, ValueError, r"kernel_size: expected values >= 1, got 0"),
    (F.max_pool3d, (X5, 2), {"padding": 2}, ValueError,
     r"padding: must be at most half the kernel size \(2, 2, 2\), got \(2, 2, 2\)"),
    (F.max_pool3d, (X5, (5, 2, 2)), {}, ValueError,
     r"kernel_size: window \(5, 2, 2\) with dilation \(1, 1, 1\) is larger than the padded "
     r"input \(4, 4, 4\)"),
    (F.max_pool3d_backward, (G_POOL, IDX.astype(np.float32), X5.shape), {}, TypeError,
     r"indices: expected an integer dtype, got float32"),
    (F.max_pool3d_backward, (G_POOL, IDX + 64, X5.shape), {}, ValueError,
     r"indices: expected values in \[0, 64\) .* got range \[64, 64\]"),
    (F.max_pool3d_backward, (G_POOL, IDX, (1, 2, 4, 4)), {}, ValueError,
     r"input_shape: expected 5 positive ints \(N, C, D, H, W\), got \(1, 2, 4, 4\)"),
    (F.max_pool3d_backward, (_ones(1, 2, 3, 2, 2), IDX, X5.shape), {}, ValueError,
     r"indices: expected shape \(1, 2, 3, 2, 2\), got \(1, 2, 2, 2, 2\)"),
    (F.max_pool3d_backward, (G_POOL, IDX, X5.shape), {"kernel_size": 3}, ValueError,
     r"grad_output: expected shape \(1, 2, 1, 1, 1\), got \(1, 2, 2, 2, 2\)"),
    (F.avg_pool3d, (X5, 2), {"divisor_override": 0}, ValueError,
     r"divisor_override: expected an int >= 1, got 0"),
    (F.avg_pool3d, (X5, 2), {"divisor_override": 2.0}, TypeError,
     r"divisor_override: expected an int, got 2.0"),
    (F.avg_pool3d, (X5, 2), {"stride": (1, 2)}, TypeError,
     r"stride: expected an int or a triple of ints, got \(1, 2\)"),
    (F.avg_pool3d_backward, (G_POOL, X5.shape, 3), {}, ValueError,
     r"grad_output: expected shape \(1, 2, 1, 1, 1\), got \(1, 2, 2, 2, 2\)"),
]


@pytest.mark.parametrize("op, args, kwargs, error, message", BAD_INPUT,
                         ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD_INPUT)])
def test_bad_input_raises_before_any_launch(monkeypatch, op, args, kwargs, error, message):
    def refuse(*a, **k):
        raise AssertionError("a kernel was launched for bad input")

    monkeypatch.setattr(build, "_invoke", refuse)
    with pytest.raises(error, match=message):
        op(*args, **kwargs)


# ------------------------------------------------------------------ layers

LAYERS = [  # (torch.nn name, args, kwargs, input shape)
    ("Conv3d", (3, 4, (3, 2, 3)), dict(stride=(2, 1, 1), padding=1), (2, 3, 5, 6, 7)),
    ("Conv3d", (4, 4, 3), dict(groups=2, padding="same", bias=False), (1, 4, 4, 5, 4)),
    ("ConvTranspose3d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1),
     (2, 3, 3, 4, 3)),
    ("MaxPool3d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 6, 7, 8)),
    ("AvgPool3d", (2,), dict(count_include_pad=False, padding=1), (2, 3, 5, 6, 7)),
    ("AvgPool3d", ((2, 3, 2),), dict(divisor_override=4), (2, 3, 5, 6, 7)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", LAYERS, ids=[l[0] for l in LAYERS])
def test_layer_forward_backward_matches_torch(torch, name, args, kwargs, shape):
    import clconv.nn as nn

    rng = np.random.default_rng(zlib.crc32(f"{name}{args}{kwargs}".encode()))
    layer, torch_layer = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    layer.load_state_dict({k: v.detach().numpy() for k, v in torch_layer.state_dict().items()})
    x = randn(rng, shape)
    tx = _t(x).requires_grad_()
    ty = torch_layer(tx)
    y = to_numpy(layer(x))
    ref = ty.detach().numpy()
    assert_close(f"{name} forward", y, ref, np.abs(ref).max() + 1)
    g = randn(rng, ty.shape)
    ty.backward(_t(g))
    assert_close(f"{name} grad_input", layer.backward(g), tx.grad.numpy(),
                 np.abs(tx.grad.numpy()).max() + 1)
    torch_grads = {k: p.grad.numpy() for k, p in torch_layer.named_parameters()}
    assert set(dict(layer.named_parameters())) == set(torch_grads)
    for key, param in layer.named_parameters():
        assert_close(f"{name} {key}.grad", param.grad, torch_grads[key],
                     np.abs(torch_grads[key]).max() + 1)


def test_conv3d_layer_init_follows_torch_fan_in():
    """torch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in from
    weight.shape[1:] (all three kernel axes)."""
    import clconv.nn as nn

    layer = nn.Conv3d(4, 6, (2, 3, 4), groups=2)
    w = to_numpy(layer.weight.data)
    assert w.shape == (6, 2, 2, 3, 4)
    bound = 1 / np.sqrt(2 * 2 * 3 * 4)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound


# ------------------------------------------------------------------ ONNX import

def _onnx_model(node_kwargs, x_shape, w_shape=None, bias=False, outputs=("y",), seed=0):
    """A one-node ONNX model (helper-built) with random constant weights, and its input."""
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    op = node_kwargs.pop("op")
    inits, inputs = [], ["x"]
    if w_shape is not None:
        inits.append(numpy_helper.from_array(randn(rng, w_shape), "w"))
        inputs.append("w")
        if bias:
            channels = w_shape[0] if op == "Conv" else w_shape[1] * node_kwargs.get("group", 1)
            inits.append(numpy_helper.from_array(randn(rng, (channels,)), "b"))
            inputs.append("b")
    node = helper.make_node(op, inputs, list(outputs), **node_kwargs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT if i == 0 else TensorProto.INT64,
                                       [f"{o}{a}" for a in range(5)])  # symbolic dims
         for i, o in enumerate(outputs)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString(), randn(rng, x_shape)


ONNX_CASES = [  # (node attributes, input shape, weight shape, bias, outputs)
    (dict(op="Conv", strides=[1, 2, 1], pads=[1, 0, 1, 1, 0, 1], dilations=[1, 1, 2], group=2),
     (2, 4, 5, 6, 7), (6, 2, 3, 2, 3), True, ("y",)),
    (dict(op="Conv", auto_pad="SAME_UPPER"), (1, 3, 4, 5, 6), (4, 3, 2, 3, 2), False, ("y",)),
    (dict(op="ConvTranspose", strides=[2, 1, 2], pads=[1, 0, 1, 1, 0, 1],
          output_padding=[1, 0, 1], group=2), (2, 4, 3, 4, 3), (4, 3, 3, 2, 3), True, ("y",)),
    (dict(op="ConvTranspose", strides=[2, 2, 2], pads=[0, 1, 0, 1, 0, 1]), (1, 3, 3, 3, 3),
     (3, 2, 2, 3, 2), True, ("y",)),
    (dict(op="MaxPool", kernel_shape=[3, 2, 3], strides=[2, 1, 2], pads=[1, 1, 0, 1, 1, 0],
          dilations=[1, 2, 1], ceil_mode=1), (2, 3, 7, 8, 9), None, False, ("y", "i")),
    (dict(op="MaxPool", kernel_shape=[2, 2, 2]), (2, 3, 6, 5, 4), None, False, ("y",)),
    (dict(op="AveragePool", kernel_shape=[3, 2, 3], strides=[2, 1, 2],
          pads=[1, 1, 0, 1, 1, 0]), (2, 3, 7, 8, 9), None, False, ("y",)),
    (dict(op="AveragePool", kernel_shape=[2, 3, 3], strides=[1, 2, 2], pads=[1, 1, 1, 1, 1, 1],
          count_include_pad=1), (2, 3, 5, 6, 7), None, False, ("y",)),
]


@pytest.mark.parametrize("attrs, x_shape, w_shape, bias, outputs", ONNX_CASES,
                         ids=[f"{c[0]['op']}-{i}" for i, c in enumerate(ONNX_CASES)])
def test_onnx_3d_nodes_match_onnx_runtime(attrs, x_shape, w_shape, bias, outputs):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clconv.onnx as conx

    data, x = _onnx_model(dict(attrs), x_shape, w_shape, bias, outputs)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = conx.load(data).run({"x": x})
    assert len(got) == len(want)
    for a, e in zip(got, want):
        if e.dtype.kind in "iu":
            np.testing.assert_array_equal(a, e)
        else:
            assert a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * (np.abs(e).max() + 1))


def test_onnx_3d_pool_with_asymmetric_pads_is_refused_naming_the_node():
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clconv.onnx as conx

    data, _ = _onnx_model(dict(op="MaxPool", kernel_shape=[2, 2, 2], pads=[0, 0, 0, 1, 1, 1]),
                          (1, 2, 4, 4, 4))
    with pytest.raises(Exception, match="3-D pooling supports symmetric pads only"):
        conx.load(data)
