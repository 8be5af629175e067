"""Every op of the op table (clconv.optable) and its gradient against the float64
reference, and against torch (its autograd for the gradients) when it is installed, on
seeded random samples; the 2-D convolutions and pools also on the seeded sweeps of
sweeps.py. New outputs are pre-filled with NaN (conftest), so an element a kernel fails to
write fails the comparison."""
import importlib.util
import zlib

import numpy as np
import pytest
from sweeps import conv_configs, conv_transpose_configs, pool_configs

import clconv.functional as F
from clconv import to_numpy
from clconv.compare import outputs_error
from clconv.optable import BY_NAME, OPS, first, grad_call, randn

TOL = 1e-4
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def test_torch_oracle_is_available(torch):
    """Skips, with the reason, where torch is absent: the torch comparisons below then
    run against the reference only."""
    assert torch.__version__


def _tensor(value, grad=False):
    import torch

    if not isinstance(value, np.ndarray):
        return value
    tensor = torch.tensor(value)  # a copy: 0-d stays 0-d
    return tensor.requires_grad_() if grad else tensor


def _numpy(output):
    if isinstance(output, tuple):
        return tuple(None if o is None else to_numpy(o) for o in output)
    return to_numpy(output)


def _assert_close(name, actual, expected, scale=None, exact=False):
    error = outputs_error(actual, expected, scale, exact)
    assert error <= TOL, f"{name}: scaled error {error:.3g} > {TOL:g}"


def check_op(spec, args, kwargs, rng):
    """The op and its gradient against the reference and torch, on one call."""
    got = _numpy(spec.op(*args, **kwargs))
    want = spec.reference(*args, **kwargs)
    scale = spec.scale(args, kwargs, want) if spec.scale else None
    _assert_close(spec.name, got, want, scale, spec.exact)
    torch_args = None
    if HAVE_TORCH and spec.torch:
        import torch

        wanted = spec.grad.torch_inputs if spec.grad else ()
        torch_args = [_tensor(a, grad=i in wanted and a is not None and a.dtype.kind == "f")
                      for i, a in enumerate(args)]
        tout = getattr(torch.nn.functional, spec.torch)(*torch_args, **kwargs)
        tnumpy = tuple(t.detach().numpy() for t in tout) if isinstance(tout, tuple) \
            else tout.detach().numpy()
        _assert_close(f"{spec.name} vs torch", got, tnumpy, scale, spec.exact)
    if spec.grad is None:
        return
    g = np.asarray(randn(rng, np.shape(first(want))))
    gargs, gkwargs = grad_call(spec, args, kwargs, g)
    ggot = _numpy(spec.grad.op(*gargs, **gkwargs))
    gwant = spec.grad.reference(*gargs, **gkwargs)
    gscale = spec.grad.scale(gargs, gkwargs, gwant) if spec.grad.scale else None
    _assert_close(f"{spec.name} gradient", ggot, gwant, gscale)
    if torch_args is not None and spec.grad.torch_inputs:
        first(tout).backward(_tensor(g))
        outputs = ggot if isinstance(ggot, tuple) else (ggot,)
        scales = gscale if isinstance(gscale, tuple) else (gscale,) * len(outputs)
        for position, output, s in zip(spec.grad.torch_inputs, outputs, scales):
            if args[position] is not None:
                _assert_close(f"{spec.name} gradient {position} vs torch", output,
                              torch_args[position].grad.numpy(), s)


SAMPLES = [(spec, index) for spec in OPS for index in range(spec.samples)]


@pytest.mark.parametrize("spec,index", SAMPLES, ids=[f"{s.name}-{i}" for s, i in SAMPLES])
def test_op_and_gradient(spec, index):
    rng = np.random.default_rng(zlib.crc32(f"{spec.name}-{index}".encode()))
    args, kwargs = spec.sample(rng)
    check_op(spec, args, kwargs, rng)


def _conv_args(cfg, rng, transposed=False):
    x, w = randn(rng, cfg.input_shape), randn(rng, cfg.weight_shape)
    channels = w.shape[1] * cfg.kwargs["groups"] if transposed else w.shape[0]
    return x, w, randn(rng, (channels,)) if cfg.bias else None


CONV = conv_configs(300, seed=1)


@pytest.mark.parametrize("cfg", CONV, ids=str)
def test_conv2d_sweep(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    check_op(BY_NAME["conv2d"], _conv_args(cfg, rng), cfg.kwargs, rng)


CONV_T = conv_transpose_configs(80, seed=2)


@pytest.mark.parametrize("cfg", CONV_T, ids=str)
def test_conv_transpose2d_sweep(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    check_op(BY_NAME["conv_transpose2d"], _conv_args(cfg, rng, transposed=True), cfg.kwargs,
             rng)


MAX_POOL = pool_configs(200, seed=3, max_pool=True)


@pytest.mark.parametrize("cfg", MAX_POOL, ids=str)
def test_max_pool2d_sweep(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    x = randn(rng, cfg.input_shape)
    spec = BY_NAME["max_pool2d"]
    check_op(spec, (x,), dict(cfg.kwargs, return_indices=True), rng)
    # without the window, each plane is walked by one work-item: the same sums
    y, idx = spec.op(x, return_indices=True, **cfg.kwargs)
    np.testing.assert_array_equal(to_numpy(spec.op(x, **cfg.kwargs)), to_numpy(y))
    g = randn(rng, y.shape)
    np.testing.assert_array_equal(to_numpy(spec.grad.op(g, idx, x.shape)),
                                  to_numpy(spec.grad.op(g, idx, x.shape, **cfg.kwargs)))


AVG_POOL = pool_configs(200, seed=4, max_pool=False)


@pytest.mark.parametrize("cfg", AVG_POOL, ids=str)
def test_avg_pool2d_sweep(cfg):
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    check_op(BY_NAME["avg_pool2d"], (randn(rng, cfg.input_shape),), cfg.kwargs, rng)


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
