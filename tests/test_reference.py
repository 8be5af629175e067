"""The float64 numpy reference (`clconv.reference`), the oracle of the device tests, checked
two ways: every backward against central finite differences of its forward, and, where torch
is installed, every forward and backward against torch in float64."""
import numpy as np
import pytest

from clconv import reference as R

EPS = 1e-6  # central-difference step


# --------------------------------------------------------------------------- configurations
# (input shape, weight shape, bias, kwargs), chosen to cover stride, int/pair/'valid'/'same'
# padding (even and odd kernels), dilation, groups (depthwise too), odd sizes and batch > 1.
CONV = [
    ((1, 1, 5, 5), (1, 1, 3, 3), True, {}),
    ((2, 3, 7, 6), (4, 3, 3, 3), True, dict(padding=1)),
    ((2, 2, 9, 8), (3, 2, 3, 2), False, dict(stride=2, padding=(1, 0))),
    ((1, 3, 8, 7), (2, 3, 2, 2), True, dict(padding="same")),
    ((2, 2, 6, 7), (3, 2, 4, 3), True, dict(padding="same", dilation=2)),
    ((1, 2, 7, 7), (2, 2, 3, 3), False, dict(padding="same")),
    ((2, 4, 8, 8), (6, 2, 3, 3), True, dict(stride=2, padding=1, groups=2)),
    ((2, 3, 7, 9), (3, 1, 3, 3), True, dict(padding=1, groups=3)),
    ((1, 4, 6, 6), (8, 1, 3, 3), False, dict(stride=(1, 2), groups=4)),
    ((3, 2, 11, 10), (2, 2, 3, 3), True, dict(padding=2, dilation=(2, 3))),
    ((1, 1, 5, 5), (2, 1, 5, 5), True, {}),
    ((2, 3, 5, 4), (4, 3, 1, 1), True, dict(stride=2)),
    ((1, 2, 10, 9), (3, 2, 3, 4), False, dict(stride=3, padding=(0, 2))),
    ((2, 6, 7, 7), (6, 2, 2, 3), True,
     dict(stride=(2, 1), padding="valid", dilation=(1, 2), groups=3)),
    ((1, 2, 1, 1), (3, 2, 1, 1), True, {}),
    ((2, 3, 12, 11), (2, 3, 4, 4), True, dict(stride=2, padding=3)),
    ((1, 2, 9, 9), (4, 2, 2, 2), False, dict(padding="same", dilation=3)),
    ((2, 4, 7, 5), (4, 1, 3, 2), True, dict(stride=2, padding=(2, 1), dilation=2, groups=4)),
    ((1, 3, 4, 12), (2, 3, 1, 5), True, dict(padding=(0, 2))),
    ((3, 1, 6, 6), (1, 1, 3, 3), False, dict(stride=4)),
    ((1, 2, 6, 5), (2, 2, 4, 2), True, dict(padding=(1, 2), dilation=(1, 3))),
]

# conv_transpose2d: weight (Cin, Cout/groups, kH, kW); output_padding < max(stride, dilation).
CONV_T = [
    ((2, 3, 4, 4), (3, 2, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    ((1, 2, 5, 3), (2, 3, 2, 2), True, {}),
    ((2, 4, 3, 4), (4, 1, 3, 3), False,
     dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2)),
    ((1, 2, 4, 4), (2, 2, 3, 2), True, dict(stride=3, output_padding=2)),
    ((2, 3, 3, 3), (3, 1, 3, 3), True, dict(output_padding=1, groups=3, dilation=2)),
    ((1, 2, 5, 4), (2, 3, 4, 4), False, dict(stride=2, padding=2, dilation=(1, 2))),
    ((2, 2, 1, 1), (2, 2, 3, 3), True, {}),
    ((1, 4, 4, 3), (4, 2, 2, 2), True, dict(stride=2, groups=4)),
    ((2, 2, 3, 5), (2, 2, 3, 3), True,
     dict(stride=(2, 3), padding=(1, 1), output_padding=(0, 2), dilation=(2, 1))),
]

MAX_POOL = [
    ((1, 1, 6, 6), dict(kernel_size=2)),
    ((2, 3, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 8, 7), dict(kernel_size=(2, 3), stride=(2, 1), padding=1, dilation=(1, 2))),
    ((1, 1, 9, 9), dict(kernel_size=3, stride=2, dilation=2, ceil_mode=True)),
    ((2, 2, 7, 6), dict(kernel_size=3, stride=3, ceil_mode=True)),
    ((1, 3, 5, 8), dict(kernel_size=(3, 1), stride=1, padding=(1, 0))),
    ((1, 1, 4, 4), dict(kernel_size=4, padding=2)),
    ((3, 2, 11, 12), dict(kernel_size=2, ceil_mode=True)),
    ((1, 1, 1, 1), dict(kernel_size=1)),
    ((2, 1, 10, 7), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1),
                         ceil_mode=True)),
]

AVG_POOL = [
    ((1, 1, 6, 6), dict(kernel_size=2)),
    ((2, 3, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 7, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ((1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((2, 2, 8, 7), dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((1, 1, 9, 9), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ((1, 3, 5, 8), dict(kernel_size=(3, 1), padding=(1, 0), count_include_pad=False)),
    ((3, 2, 11, 12), dict(kernel_size=3, ceil_mode=True)),
    ((1, 1, 10, 10), dict(kernel_size=3, stride=4, padding=1, ceil_mode=True)),
]

ADAPTIVE = [
    ((1, 2, 7, 9), (3, 4)),
    ((2, 1, 5, 5), 1),
    ((1, 1, 4, 6), (4, 6)),
    ((2, 3, 6, 5), (4, 7)),  # larger than the input: overlapping windows
    ((1, 1, 10, 3), (3, 2)),
]

SOFTMAX_DIMS = [0, 1, 2, -1]


def _ids(configs):
    return [str(c).replace(" ", "") for c in configs]


# --------------------------------------------------------------------------- helpers

def numeric_grad(f, x, eps=EPS):
    """Central differences of the scalar f() with respect to the array x, changed in place."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up = f()
        flat[i] = saved - eps
        down = f()
        flat[i] = saved
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_grads(forward, arrays, analytic, rtol=1e-6):
    """sum(forward() * weights) differentiated numerically w.r.t. each of `arrays` must match
    `analytic(weights)` (one gradient per array); weights are random, covering every output."""
    out = forward()
    weights = np.random.default_rng(99).standard_normal(np.shape(out))
    expected = analytic(weights)
    for name, x, grad in zip("abcdefgh", arrays, expected):
        numeric = numeric_grad(lambda: float(np.sum(forward() * weights)), x)
        assert grad.shape == x.shape and grad.dtype == np.float64, name
        scale = max(1.0, np.abs(numeric).max())
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"gradient {name}")


def assert_close(actual, expected, rtol=1e-10):
    """Within rtol of the expected values, relative to the largest of them."""
    expected = np.asarray(expected)
    assert np.shape(actual) == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def conv_data(config, transposed=False, seed=0):
    x_shape, w_shape, bias, kw = config
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out_channels = w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0]
    return x, w, rng.standard_normal(out_channels) if bias else None


def untied(shape, seed=0):
    """Distinct values at least 0.01 apart, so max pooling is differentiable at them."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0


def grad_for(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def t(array, grad=False):
    import torch

    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=grad)


def tgrad(tensor):
    return tensor.grad.numpy() if tensor is not None else None


# --------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("config", CONV, ids=_ids(CONV))
def test_conv2d_gradients(config):
    x, w, b = conv_data(config)
    kw = config[3]
    arrays = [x, w] + ([b] if b is not None else [])

    def analytic(g):
        gi, gw, gb = R.conv2d_backward(g, x, w, **kw)
        return [gi, gw] + ([gb] if b is not None else [])

    check_grads(lambda: R.conv2d(x, w, b, **kw), arrays, analytic)


@pytest.mark.parametrize("config", CONV_T, ids=_ids(CONV_T))
def test_conv_transpose2d_gradients(config):
    x, w, b = conv_data(config, transposed=True)
    kw = config[3]
    arrays = [x, w] + ([b] if b is not None else [])

    def analytic(g):
        gi, gw, gb = R.conv_transpose2d_backward(g, x, w, **kw)
        return [gi, gw] + ([gb] if b is not None else [])

    check_grads(lambda: R.conv_transpose2d(x, w, b, **kw), arrays, analytic)


def test_conv_backward_output_mask():
    x, w, b = conv_data(CONV[6])
    g = grad_for(R.conv2d(x, w, b, **CONV[6][3]).shape)
    full = R.conv2d_backward(g, x, w, **CONV[6][3])
    for mask in [(True, False, False), (False, True, False), (False, False, True)]:
        part = R.conv2d_backward(g, x, w, output_mask=mask, **CONV[6][3])
        for keep, got, want in zip(mask, part, full):
            assert (got is None) != keep
            if keep:
                np.testing.assert_array_equal(got, want)
    x, w, b = conv_data(CONV_T[2], transposed=True)
    g = grad_for(R.conv_transpose2d(x, w, b, **CONV_T[2][3]).shape)
    part = R.conv_transpose2d_backward(g, x, w, output_mask=(False, True, False), **CONV_T[2][3])
    assert part[0] is None and part[2] is None and part[1].shape == w.shape


@pytest.mark.parametrize("config", MAX_POOL, ids=_ids(MAX_POOL))
def test_max_pool2d_gradients(config):
    shape, kw = config
    x = untied(shape)
    _, indices = R.max_pool2d(x, return_indices=True, **kw)
    check_grads(lambda: R.max_pool2d(x, **kw), [x],
                lambda g: [R.max_pool2d_backward(g, indices, shape)])


@pytest.mark.parametrize("config", AVG_POOL, ids=_ids(AVG_POOL))
def test_avg_pool2d_gradients(config):
    shape, kw = config
    x = np.random.default_rng(0).standard_normal(shape)
    check_grads(lambda: R.avg_pool2d(x, **kw), [x],
                lambda g: [R.avg_pool2d_backward(g, shape, **kw)])


@pytest.mark.parametrize("config", ADAPTIVE, ids=_ids(ADAPTIVE))
def test_adaptive_avg_pool2d_gradients(config):
    shape, size = config
    x = np.random.default_rng(0).standard_normal(shape)
    check_grads(lambda: R.adaptive_avg_pool2d(x, size), [x],
                lambda g: [R.adaptive_avg_pool2d_backward(g, shape)])


ACTIVATIONS = [
    ("relu", R.relu, R.relu_backward),
    ("leaky_relu", R.leaky_relu, R.leaky_relu_backward),
    ("leaky_relu_0.2", lambda x: R.leaky_relu(x, 0.2), lambda g, y: R.leaky_relu_backward(g, y, 0.2)),
    ("sigmoid", R.sigmoid, R.sigmoid_backward),
    ("tanh", R.tanh, R.tanh_backward),
]


def activation_input(seed=0):
    """Values away from 0 (the kinks) by at least 1e-3, over a wide range."""
    x = np.random.default_rng(seed).standard_normal((2, 3, 4, 5)) * 3
    return np.where(np.abs(x) < 1e-3, 0.5, x)


@pytest.mark.parametrize("name,forward,backward", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_gradients(name, forward, backward):
    x = activation_input()
    check_grads(lambda: forward(x), [x], lambda g: [backward(g, forward(x))])


@pytest.mark.parametrize("x_shape", [(2, 3, 5), (4, 5), (5,)])
def test_linear_gradients(x_shape):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((4, 5)), rng.standard_normal(4)
    check_grads(lambda: R.linear(x, w, b), [x, w, b],
                lambda g: list(R.linear_backward(g, x, w)))


@pytest.mark.parametrize("dim", SOFTMAX_DIMS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_gradients(log, dim):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)) * 2
    forward, backward = ((R.log_softmax, R.log_softmax_backward) if log
                         else (R.softmax, R.softmax_backward))
    check_grads(lambda: forward(x, dim), [x], lambda g: [backward(g, forward(x, dim), dim)])


def test_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((5, 4)) * 2, np.array([0, 3, 1, 3, 2])
    check_grads(lambda: R.cross_entropy(x, target), [x],
                lambda g: [g * R.cross_entropy_backward(x, target)])


# --------------------------------------------------------------------------- sizes and semantics

def test_output_sizes():
    x = np.zeros((1, 1, 5, 5))
    # ceil mode: a 4th window would start at 6 = H + padding, in the right padding: dropped.
    assert R.max_pool2d(x, 2, 2, padding=1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert R.avg_pool2d(x, 2, 2, padding=1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert R.max_pool2d(x, 2, 2, padding=1).shape == (1, 1, 3, 3)
    # ceil mode keeps a partial last window that starts inside the input.
    assert R.max_pool2d(np.zeros((1, 1, 6, 6)), 3, 2, ceil_mode=True).shape == (1, 1, 3, 3)
    assert R.max_pool2d(np.zeros((1, 1, 6, 6)), 3, 2).shape == (1, 1, 2, 2)
    # 'same' keeps the size for even and odd kernels, with dilation.
    for k in [(2, 2), (3, 4), (1, 5)]:
        w = np.zeros((2, 1) + k)
        assert R.conv2d(np.zeros((1, 1, 7, 6)), w, padding="same", dilation=2).shape == (1, 2, 7, 6)
    assert R.conv2d(np.zeros((1, 1, 7, 6)), np.zeros((1, 1, 3, 3)), stride=2,
                    padding=(1, 0)).shape == (1, 1, 4, 2)
    assert R.conv_transpose2d(np.zeros((1, 2, 4, 3)), np.zeros((2, 3, 3, 3)), stride=2,
                              padding=1, output_padding=(1, 0)).shape == (1, 3, 8, 5)
    assert R.adaptive_avg_pool2d(np.zeros((2, 3, 7, 5)), (2, 3)).shape == (2, 3, 2, 3)
    with pytest.raises(ValueError):
        R.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError):
        R.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3)), groups=2)


def test_padding_resolution():
    """'same' with an even kernel puts the extra row/column at the bottom/right."""
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0  # picks the top-left of each window: the input itself
    np.testing.assert_array_equal(R.conv2d(x, w, padding="same"), x)
    assert R.conv2d(x, np.ones((1, 1, 2, 2)), padding="valid").shape == (1, 1, 3, 3)


def test_max_pool2d_ties_and_padding():
    x = np.full((1, 1, 4, 4), -5.0)  # negative: padding (as -inf) must still lose
    out, idx = R.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(out, -5.0)
    # the first element of each window in row-major order (clipped to the input)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [4, 5]])
    assert idx.dtype == np.int64


def test_avg_pool2d_divisors():
    x = np.ones((1, 1, 3, 3))
    # window (-1..0, -1..0): 1 real element of 4
    assert R.avg_pool2d(x, 2, 2, padding=1)[0, 0, 0, 0] == 0.25
    assert R.avg_pool2d(x, 2, 2, padding=1, count_include_pad=False)[0, 0, 0, 0] == 1.0
    # ceil mode: the last window overruns H + padding; only the part up to H + p counts.
    out = R.avg_pool2d(np.ones((1, 1, 4, 4)), 3, 2, padding=1, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)
    # windows start at -1, 1, 3 and end at min(start + 3, 4 + 1) = 2, 4, 5: pool sizes 3, 3, 2
    # holding 2, 3, 1 real rows (columns alike); the last row is 1/2 of each column's share.
    np.testing.assert_allclose(out[0, 0, 2], [1 / 2 * 2 / 3, 1 / 2 * 3 / 3, 1 / 2 * 1 / 2])


def test_dtypes_and_stability():
    x32 = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    w32 = np.ones((1, 2, 3, 3), np.float32)
    for out in [R.conv2d(x32, w32), R.avg_pool2d(x32, 2), R.relu(x32), R.softmax(x32, 1),
                R.max_pool2d(x32, 2), R.adaptive_avg_pool2d(x32, 3)]:
        assert out.dtype == np.float64
    big = np.array([[1000.0, -1000.0, 0.0], [-800.0, -801.0, -802.0]])
    assert np.all(np.isfinite(R.log_softmax(big, 1)))
    np.testing.assert_allclose(R.softmax(big, 1).sum(1), 1.0)
    assert np.all(np.isfinite(R.sigmoid(np.array([-1000.0, 1000.0]))))
    loss = R.cross_entropy(big, np.array([0, 2]))
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss, (0.0 + (2 + np.log1p(np.exp(-1) + np.exp(-2)))) / 2)


# --------------------------------------------------------------------------- against torch

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("config", CONV, ids=_ids(CONV))
def test_conv2d_matches_torch(config):
    torch = pytest.importorskip("torch")
    x, w, b = conv_data(config)
    kw = config[3]
    tx, tw, tb = t(x, True), t(w, True), (t(b, True) if b is not None else None)
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    out = R.conv2d(x, w, b, **kw)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    gi, gw, gb = R.conv2d_backward(g, x, w, **kw)
    assert_close(gi, tgrad(tx))
    assert_close(gw, tgrad(tw))
    if b is not None:
        assert_close(gb, tgrad(tb))


@pytest.mark.parametrize("config", CONV_T, ids=_ids(CONV_T))
def test_conv_transpose2d_matches_torch(config):
    torch = pytest.importorskip("torch")
    x, w, b = conv_data(config, transposed=True)
    kw = config[3]
    tx, tw, tb = t(x, True), t(w, True), (t(b, True) if b is not None else None)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    out = R.conv_transpose2d(x, w, b, **kw)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    gi, gw, gb = R.conv_transpose2d_backward(g, x, w, **kw)
    assert_close(gi, tgrad(tx))
    assert_close(gw, tgrad(tw))
    if b is not None:
        assert_close(gb, tgrad(tb))


def test_conv_backward_matches_aten_with_mask():
    torch = pytest.importorskip("torch")
    x_shape, w_shape, _, kw = CONV[6]
    x, w, _ = conv_data(CONV[6])
    g = grad_for(R.conv2d(x, w, **kw).shape)
    s, p = kw["stride"], kw["padding"]
    gi, gw, gb = torch.ops.aten.convolution_backward(
        t(g), t(x), t(w), [w_shape[0]], [s, s], [p, p], [1, 1], False, [0, 0], kw["groups"],
        [True, False, True])
    ri, rw, rb = R.conv2d_backward(g, x, w, output_mask=(True, False, True), **kw)
    assert gw is None and rw is None
    assert_close(ri, gi.numpy())
    assert_close(rb, gb.numpy())


@pytest.mark.parametrize("config", MAX_POOL, ids=_ids(MAX_POOL))
@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "ties"])
def test_max_pool2d_matches_torch(config, tied):
    torch = pytest.importorskip("torch")
    shape, kw = config
    x = untied(shape)
    if tied:  # many equal values: torch and the reference must pick the same (first) one
        x = np.round(x * 3)
    tx = t(x, True)
    ty, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kw)
    out, idx = R.max_pool2d(x, return_indices=True, **kw)
    assert_close(out, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert_close(R.max_pool2d(x, **kw), out)
    g = grad_for(out.shape)
    ty.backward(t(g))
    assert_close(R.max_pool2d_backward(g, idx, shape), tgrad(tx))
    ref = torch.ops.aten.max_pool2d_with_indices_backward(
        t(g), t(x), list(torch.nn.modules.utils._pair(kw["kernel_size"])),
        list(torch.nn.modules.utils._pair(kw.get("stride") or kw["kernel_size"])),
        list(torch.nn.modules.utils._pair(kw.get("padding", 0))),
        list(torch.nn.modules.utils._pair(kw.get("dilation", 1))),
        kw.get("ceil_mode", False), tidx)
    assert_close(R.max_pool2d_backward(g, idx, shape), ref.numpy())


def test_max_pool2d_nan_matches_torch():
    torch = pytest.importorskip("torch")
    x = untied((2, 2, 6, 7))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[1, 1, 5, 6] = x[0, 1, 2, 2] = np.nan
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    out, idx = R.max_pool2d(x, return_indices=True, **kw)
    ty, tidx = torch.nn.functional.max_pool2d(t(x), return_indices=True, **kw)
    np.testing.assert_array_equal(out, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())


@pytest.mark.parametrize("config", AVG_POOL, ids=_ids(AVG_POOL))
def test_avg_pool2d_matches_torch(config):
    torch = pytest.importorskip("torch")
    shape, kw = config
    x = np.random.default_rng(0).standard_normal(shape)
    tx = t(x, True)
    ty = torch.nn.functional.avg_pool2d(tx, **kw)
    out = R.avg_pool2d(x, **kw)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    assert_close(R.avg_pool2d_backward(g, shape, **kw), tgrad(tx))


@pytest.mark.parametrize("config", ADAPTIVE, ids=_ids(ADAPTIVE))
def test_adaptive_avg_pool2d_matches_torch(config):
    torch = pytest.importorskip("torch")
    shape, size = config
    x = np.random.default_rng(0).standard_normal(shape)
    tx = t(x, True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, size)
    out = R.adaptive_avg_pool2d(x, size)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    assert_close(R.adaptive_avg_pool2d_backward(g, shape), tgrad(tx))


@pytest.mark.parametrize("name,forward,backward", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_torch(name, forward, backward):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    torch_forward = {"relu": F.relu, "leaky_relu": F.leaky_relu,
                     "leaky_relu_0.2": lambda v: F.leaky_relu(v, 0.2),
                     "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
    x = np.concatenate([activation_input().ravel(), [-40.0, -1e-8, 0.0, 1e-8, 40.0, 700.0]])
    tx = t(x, True)
    ty = torch_forward(tx)
    out = forward(x)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    assert_close(backward(g, out), tgrad(tx))


@pytest.mark.parametrize("x_shape", [(2, 3, 5), (4, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(x_shape, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((4, 5)), rng.standard_normal(4)
    tx, tw, tb = t(x, True), t(w, True), t(b, True)
    ty = torch.nn.functional.linear(tx, tw, tb if bias else None)
    out = R.linear(x, w, b if bias else None)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    gi, gw, gb = R.linear_backward(g, x, w)
    assert_close(gi, tgrad(tx))
    assert_close(gw, tgrad(tw))
    if bias:
        assert_close(gb, tgrad(tb))


@pytest.mark.parametrize("dim", SOFTMAX_DIMS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_matches_torch(log, dim):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4)) * 2
    x[0, 0, 0] = 900.0  # stability
    forward, backward = ((R.log_softmax, R.log_softmax_backward) if log
                         else (R.softmax, R.softmax_backward))
    tx = t(x, True)
    ty = (torch.log_softmax if log else torch.softmax)(tx, dim)
    out = forward(x, dim)
    assert_close(out, ty.detach().numpy())
    g = grad_for(out.shape)
    ty.backward(t(g))
    assert_close(backward(g, out, dim), tgrad(tx))


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((6, 5)) * 3, np.array([0, 4, 1, 3, 2, 4])
    x[2, 1] = 500.0
    tx = t(x, True)
    loss = torch.nn.functional.cross_entropy(tx, torch.tensor(target))
    assert_close(R.cross_entropy(x, target), loss.detach().numpy())
    loss.backward()
    assert_close(R.cross_entropy_backward(x, target), tgrad(tx))
