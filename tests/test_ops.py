"""Every OpenCL op and gradient against the float64 reference, and against torch when
it is installed, on seeded random configurations. New outputs are pre-filled with NaN
(conftest), so an element a kernel fails to write fails the comparison."""
import importlib.util
import zlib

import numpy as np
import pytest
from sweeps import conv_configs, conv_transpose_configs, pool_configs

import clconv.functional as F
from clconv import reference as R
from clconv import to_numpy
from clconv.compare import scaled_error

TOL = 1e-4
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def test_torch_oracle_is_available(torch):
    """Skips, with the reason, where torch is absent: the torch comparisons below then
    run against the reference only."""
    assert torch.__version__


def tt(array):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def assert_close(name, actual, expected, scale=None, tol=TOL):
    actual = to_numpy(actual)
    error = scaled_error(actual, np.asarray(expected), scale)
    assert error <= tol, f"{name}: scaled error {error:.3g} > {tol:g}"


def randn(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _conv_case(cfg, seed):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, cfg.input_shape), randn(rng, cfg.weight_shape)
    b = randn(rng, (cfg.weight_shape[0],)) if cfg.bias else None
    return rng, x, w, b


CONV = conv_configs(300, seed=1)


@pytest.mark.parametrize("cfg", CONV, ids=str)
def test_conv2d_and_gradients(cfg):
    rng, x, w, b = _conv_case(cfg, zlib.crc32(str(cfg).encode()))
    kw = cfg.kwargs
    y = F.conv2d(x, w, b, **kw)
    ab = np.abs(b) if b is not None else None
    assert_close("conv2d", y, R.conv2d(x, w, b, **kw), R.conv2d(np.abs(x), np.abs(w), ab, **kw))
    g = randn(rng, y.shape)
    mask = (True, True, b is not None)
    got = F.conv2d_backward(g, x, w, output_mask=mask, **kw)
    want = R.conv2d_backward(g, x, w, output_mask=mask, **kw)
    scale = R.conv2d_backward(np.abs(g), np.abs(x), np.abs(w), output_mask=mask, **kw)
    for name, a, e, s in zip(("grad_input", "grad_weight", "grad_bias"), got, want, scale):
        if e is None:
            assert a is None, f"{name} should be None when masked off"
        else:
            assert_close(name, a, e, s)
    if HAVE_TORCH:
        import torch

        tb = tt(b) if b is not None else None
        ty = torch.nn.functional.conv2d(tt(x), tt(w), tb, **kw)
        assert_close("conv2d vs torch", y, ty.numpy(),
                     R.conv2d(np.abs(x), np.abs(w), ab, **kw))
        stride, dilation = kw["stride"], kw["dilation"]
        if kw["padding"] in ("same", "valid"):
            return  # aten.convolution_backward takes numeric padding only
        pair = lambda v: [v, v] if isinstance(v, int) else list(v)
        tg = torch.ops.aten.convolution_backward(
            tt(g), tt(x), tt(w), [w.shape[0]] if b is not None else None, pair(stride),
            pair(kw["padding"]), pair(dilation), False, [0, 0], kw["groups"], list(mask))
        for name, a, e, s in zip(("grad_input", "grad_weight", "grad_bias"), got, tg, scale):
            if s is not None:
                assert_close(f"{name} vs torch", a, e.numpy(), s)


CONV_T = conv_transpose_configs(80, seed=2)


@pytest.mark.parametrize("cfg", CONV_T, ids=str)
def test_conv_transpose2d_and_gradients(cfg):
    rng, x, w, b = _conv_case(cfg, zlib.crc32(str(cfg).encode()))
    b = randn(rng, (w.shape[1] * cfg.kwargs["groups"],)) if cfg.bias else None
    kw = cfg.kwargs
    ab = np.abs(b) if b is not None else None
    y = F.conv_transpose2d(x, w, b, **kw)
    scale = R.conv_transpose2d(np.abs(x), np.abs(w), ab, **kw)
    assert_close("conv_transpose2d", y, R.conv_transpose2d(x, w, b, **kw), scale)
    g = randn(rng, y.shape)
    got = F.conv_transpose2d_backward(g, x, w, **kw)
    want = R.conv_transpose2d_backward(g, x, w, **kw)
    scales = R.conv_transpose2d_backward(np.abs(g), np.abs(x), np.abs(w), **kw)
    for name, a, e, s in zip(("grad_input", "grad_weight", "grad_bias"), got, want, scales):
        assert_close(name, a, e, s)
    if HAVE_TORCH:
        import torch

        ty = torch.nn.functional.conv_transpose2d(tt(x), tt(w), tt(b) if b is not None else None,
                                                  **kw)
        assert_close("conv_transpose2d vs torch", y, ty.numpy(), scale)


MAX_POOL = pool_configs(200, seed=3, max_pool=True)


@pytest.mark.parametrize("cfg", MAX_POOL, ids=str)
def test_max_pool2d_and_gradient(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    x = randn(rng, cfg.input_shape)
    y, idx = F.max_pool2d(x, return_indices=True, **cfg.kwargs)
    ry, ridx = R.max_pool2d(x, return_indices=True, **cfg.kwargs)
    np.testing.assert_array_equal(to_numpy(y), ry)  # a selection: exact
    np.testing.assert_array_equal(to_numpy(idx), ridx)
    y_only = F.max_pool2d(x, **cfg.kwargs)
    np.testing.assert_array_equal(to_numpy(y_only), ry)
    g = randn(rng, y.shape)
    gx = F.max_pool2d_backward(g, idx, x.shape)
    assert_close("max_pool2d_backward", gx, R.max_pool2d_backward(g, ridx, x.shape),
                 R.max_pool2d_backward(np.abs(g), ridx, x.shape))
    # given the window, each input gathers in parallel, adding in the same order
    gw = F.max_pool2d_backward(g, idx, x.shape, **cfg.kwargs)
    np.testing.assert_array_equal(to_numpy(gw), to_numpy(gx))
    if HAVE_TORCH:
        import torch

        ty, tidx = torch.nn.functional.max_pool2d(tt(x), return_indices=True, **cfg.kwargs)
        np.testing.assert_array_equal(to_numpy(y), ty.numpy())
        np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())


AVG_POOL = pool_configs(200, seed=4, max_pool=False)


@pytest.mark.parametrize("cfg", AVG_POOL, ids=str)
def test_avg_pool2d_and_gradient(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    x = randn(rng, cfg.input_shape)
    y = F.avg_pool2d(x, **cfg.kwargs)
    scale = R.avg_pool2d(np.abs(x), **cfg.kwargs)
    assert_close("avg_pool2d", y, R.avg_pool2d(x, **cfg.kwargs), scale)
    g = randn(rng, y.shape)
    gx = F.avg_pool2d_backward(g, x.shape, **cfg.kwargs)
    assert_close("avg_pool2d_backward", gx, R.avg_pool2d_backward(g, x.shape, **cfg.kwargs),
                 R.avg_pool2d_backward(np.abs(g), x.shape, **cfg.kwargs))
    if HAVE_TORCH:
        import torch

        ty = torch.nn.functional.avg_pool2d(tt(x), **cfg.kwargs)
        assert_close("avg_pool2d vs torch", y, ty.numpy(), scale)
        tg = torch.ops.aten.avg_pool2d_backward(
            tt(g), tt(x), *[_list(cfg.kwargs[k]) for k in ("kernel_size", "stride", "padding")],
            cfg.kwargs["ceil_mode"], cfg.kwargs["count_include_pad"], None)
        assert_close("avg_pool2d_backward vs torch", gx, tg.numpy(),
                     R.avg_pool2d_backward(np.abs(g), x.shape, **cfg.kwargs))


def _list(v):
    if v is None:
        return []
    return [v, v] if isinstance(v, int) else list(v)


@pytest.mark.parametrize("shape,output_size", [((2, 3, 7, 5), 1), ((1, 2, 9, 9), (1, 1)),
                                               ((2, 2, 7, 10), (3, 4)), ((1, 1, 5, 5), 5),
                                               ((3, 4, 1, 6), (1, 4))])
def test_adaptive_avg_pool2d_and_gradient(shape, output_size, rng):
    x = randn(rng, shape)
    y = F.adaptive_avg_pool2d(x, output_size)
    assert_close("adaptive_avg_pool2d", y, R.adaptive_avg_pool2d(x, output_size),
                 R.adaptive_avg_pool2d(np.abs(x), output_size))
    g = randn(rng, y.shape)
    assert_close("adaptive_avg_pool2d_backward", F.adaptive_avg_pool2d_backward(g, shape),
                 R.adaptive_avg_pool2d_backward(g, shape),
                 R.adaptive_avg_pool2d_backward(np.abs(g), shape))
    if HAVE_TORCH:
        import torch

        ty = torch.nn.functional.adaptive_avg_pool2d(tt(x), output_size)
        assert_close("adaptive_avg_pool2d vs torch", y, ty.numpy())


ACTIVATIONS = [("relu", {}), ("leaky_relu", {"negative_slope": 0.01}),
               ("leaky_relu", {"negative_slope": 0.2}), ("sigmoid", {}), ("tanh", {})]


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1,), (7,), (2, 3, 5, 4), (3, 1000)])
def test_activations_and_gradients(name, kwargs, shape, rng):
    x = randn(rng, shape) * 4
    x.flat[0] = 30.0  # saturating values must not overflow
    if x.size > 1:
        x.flat[1] = -30.0
    y = getattr(F, name)(x, **kwargs)
    ry = getattr(R, name)(x, **kwargs)
    assert_close(name, y, ry, np.abs(ry) + 1e-6)
    g = randn(rng, shape)
    gx = getattr(F, f"{name}_backward")(g, y, **kwargs)
    rg = getattr(R, f"{name}_backward")(g, to_numpy(y).astype(np.float64), **kwargs)
    assert_close(f"{name}_backward", gx, rg, np.abs(rg) + 1e-6)
    if HAVE_TORCH:
        import torch

        ty = getattr(torch.nn.functional, name)(tt(x), **kwargs)
        assert_close(f"{name} vs torch", y, ty.numpy(), np.abs(ty.numpy()) + 1e-6)


@pytest.mark.parametrize("x_shape,out_features,bias", [((4, 5), 3, True), ((1, 1), 1, False),
                                                       ((2, 3, 7), 6, True), ((9,), 2, True),
                                                       ((16, 100), 10, False)])
def test_linear_and_gradients(x_shape, out_features, bias, rng):
    x = randn(rng, x_shape)
    w = randn(rng, (out_features, x_shape[-1]))
    b = randn(rng, (out_features,)) if bias else None
    ab = np.abs(b) if bias else None
    y = F.linear(x, w, b)
    assert_close("linear", y, R.linear(x, w, b), R.linear(np.abs(x), np.abs(w), ab))
    g = randn(rng, y.shape)
    got = F.linear_backward(g, x, w)
    want = R.linear_backward(g, x, w)
    scale = R.linear_backward(np.abs(g), np.abs(x), np.abs(w))
    for name, a, e, s in zip(("grad_input", "grad_weight", "grad_bias"), got, want, scale):
        assert_close(name, a, e, s)
    if HAVE_TORCH:
        import torch

        ty = torch.nn.functional.linear(tt(x), tt(w), tt(b) if bias else None)
        assert_close("linear vs torch", y, ty.numpy(), R.linear(np.abs(x), np.abs(w), ab))


@pytest.mark.parametrize("shape,dim", [((4, 10), 1), ((4, 10), 0), ((2, 3, 5, 4), 1),
                                       ((2, 3, 5, 4), -1), ((7,), 0), ((3, 1), 1)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_family_and_gradients(shape, dim, log, rng):
    name = "log_softmax" if log else "softmax"
    x = randn(rng, shape) * 5
    y = getattr(F, name)(x, dim)
    ry = getattr(R, name)(x, dim)
    assert_close(name, y, ry, np.abs(ry) + np.abs(x) * 1e-2 + 1e-6)
    g = randn(rng, shape)
    gx = getattr(F, f"{name}_backward")(g, y, dim)
    rg = getattr(R, f"{name}_backward")(g, to_numpy(y).astype(np.float64), dim)
    assert_close(f"{name}_backward", gx, rg, np.abs(g).sum() / g.size + np.abs(rg))
    if HAVE_TORCH:
        import torch

        ty = getattr(torch.nn.functional, name)(tt(x), dim)
        assert_close(f"{name} vs torch", y, ty.numpy(), np.abs(ry) + np.abs(x) * 1e-2 + 1e-6)


@pytest.mark.parametrize("n,c", [(1, 2), (5, 3), (32, 10), (7, 100)])
def test_cross_entropy_and_gradient(n, c, rng):
    x = randn(rng, (n, c)) * 3
    t = rng.integers(0, c, n)
    loss = F.cross_entropy(x, t)
    assert loss.shape == ()
    assert_close("cross_entropy", loss, R.cross_entropy(x, t))
    gx = F.cross_entropy_backward(x, t)
    assert_close("cross_entropy_backward", gx, R.cross_entropy_backward(x, t),
                 np.full((n, c), 1.0 / n))
    if HAVE_TORCH:
        import torch

        tl = torch.nn.functional.cross_entropy(tt(x), torch.from_numpy(t))
        assert_close("cross_entropy vs torch", loss, tl.numpy())
        xt = tt(x).requires_grad_()
        torch.nn.functional.cross_entropy(xt, torch.from_numpy(t)).backward()
        assert_close("cross_entropy_backward vs torch", gx, xt.grad.numpy(),
                     np.full((n, c), 1.0 / n))


@pytest.mark.smoke
def test_ops_chain_on_device_without_copies():
    """Device arrays flow from op to op; only to_numpy copies back."""
    import pyopencl.array as cla

    rng = np.random.default_rng(0)
    x = randn(rng, (2, 3, 12, 12))
    h = F.conv2d(x, randn(rng, (4, 3, 3, 3)), padding="same")
    h = F.relu(h)
    h = F.max_pool2d(h, 2)
    h = F.adaptive_avg_pool2d(h, 1)
    logits = F.linear(h.reshape(2, 4), randn(rng, (5, 4)))
    assert isinstance(logits, cla.Array)
    assert to_numpy(logits).shape == (2, 5)
