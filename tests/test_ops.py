"""Every op of the op table (clconv.optable) and its gradient against the float64
reference, and against torch (its autograd for the gradients) when it is installed, on
seeded random samples; the 2-D convolutions and pools also on the seeded sweeps of
sweeps.py, the 3-D ones on fixed cases. New outputs are pre-filled with NaN (conftest), so an element a kernel fails to
write fails the comparison."""
import importlib.util
import zlib

import numpy as np
import pytest
from sweeps import (AVG_POOL3D, CONV3D, CONV_TRANSPOSE3D, MAX_POOL3D, POOL3D_INPUT,
                    conv_configs, conv_transpose_configs, pool_configs)

import clconv.functional as F
from clconv import reference3d as R3
from clconv import to_numpy
from clconv.compare import outputs_error
from clconv.epilogue import Activation
from clconv.optable import BY_NAME, OPS, abs_scale, first, grad_call, randn

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


CONVOLUTIONS = [spec.name for spec in OPS if spec.name.startswith("conv")]


@pytest.mark.parametrize("name", CONVOLUTIONS)
def test_convolution_gradient_computes_only_what_output_mask_asks(name):
    """The weight gradient alone: the other outputs are None, the weight's as computed
    in full."""
    spec = BY_NAME[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}-mask".encode()))
    args, kwargs = spec.sample(rng)
    g = randn(rng, np.shape(spec.reference(*args, **kwargs)))
    gargs, gkwargs = grad_call(spec, args, kwargs, g)
    gkwargs = dict(gkwargs, output_mask=(False, True, False))
    gx, gw, gb = _numpy(spec.grad.op(*gargs, **gkwargs))
    assert gx is None and gb is None
    want = spec.grad.reference(*gargs, **gkwargs)
    _assert_close(f"{name} weight gradient", (gx, gw, gb), want,
                  spec.grad.scale(gargs, gkwargs, want))


def _case_rng(name, case):
    return np.random.default_rng(zlib.crc32(f"{name}{case}".encode()))


CONV3D_CASES = ([("conv3d",) + case for case in CONV3D]
                + [("conv_transpose3d",) + case for case in CONV_TRANSPOSE3D])


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", CONV3D_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CONV3D_CASES)])
def test_conv3d_cases(name, x_shape, w_shape, kwargs):
    rng = _case_rng(name, (x_shape, w_shape, kwargs))
    x, w = randn(rng, x_shape), randn(rng, w_shape)
    channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in name else w_shape[0]
    check_op(BY_NAME[name], (x, w, randn(rng, (channels,))), kwargs, rng)


@pytest.mark.parametrize("kwargs", MAX_POOL3D, ids=str)
def test_max_pool3d_cases(kwargs):
    spec = BY_NAME["max_pool3d"]
    rng = _case_rng("max_pool3d", kwargs)
    x = randn(rng, POOL3D_INPUT)
    check_op(spec, (x,), dict(kwargs, return_indices=True), rng)
    # the gradient without the forward's window (from the indices alone) is the same
    y, indices = spec.op(x, return_indices=True, **kwargs)
    g = randn(rng, y.shape)
    np.testing.assert_array_equal(to_numpy(spec.grad.op(g, indices, x.shape)),
                                  to_numpy(spec.grad.op(g, indices, x.shape, **kwargs)))


@pytest.mark.parametrize("kwargs", AVG_POOL3D, ids=str)
def test_avg_pool3d_cases(kwargs):
    rng = _case_rng("avg_pool3d", kwargs)
    check_op(BY_NAME["avg_pool3d"], (randn(rng, POOL3D_INPUT),), kwargs, rng)


def test_conv3d_activation_is_fused(torch):
    rng = np.random.default_rng(7)
    x, w, b = randn(rng, (2, 3, 4, 5, 6)), randn(rng, (4, 3, 2, 2, 2)), randn(rng, (4,))
    got = to_numpy(F.conv3d_activation(x, w, b, padding=1,
                                       activation=Activation("leaky_relu", 0.1)))
    want = torch.nn.functional.leaky_relu(torch.nn.functional.conv3d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1), 0.1)
    _assert_close("conv3d + leaky_relu", got, want.numpy(),
                  abs_scale(R3.conv3d)((x, w, b), dict(padding=1), None))


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
