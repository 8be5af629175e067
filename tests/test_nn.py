"""Layers, batch norm, dropout, state dicts and optimizers."""
import importlib.util

import numpy as np
import pytest

from clconv import nn, to_numpy
from clconv import reference as R
from clconv.compare import scaled_error
from clconv.nn.state import StateDictError, load, save
from clconv.ops.dropout import dropout, dropout_backward, dropout_with_mask
from clconv.ops.norm import batch_norm, batch_norm_backward, batch_norm_train
from clconv.optim import SGD, Adam
from clconv.random import manual_seed

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(actual, expected, tol=1e-4, scale=None):
    error = scaled_error(to_numpy(actual), expected, scale)
    assert error <= tol, f"scaled error {error:.3g} > {tol:g}"


# --- batch norm ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 1, 1, 7), (1, 5, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_forward_and_backward(shape, affine, rng):
    x = randn(rng, *shape) * 3 + 1
    w = randn(rng, shape[1]) if affine else None
    b = randn(rng, shape[1]) if affine else None
    out, mean, invstd, _ = batch_norm_train(x, w, b, 1e-5)
    close(out, R.batch_norm(x, None, None, w, b, training=True), scale=1.0)
    g = randn(rng, *shape)
    got = batch_norm_backward(g, x, w, mean, invstd)
    want = R.batch_norm_backward(g, x, w)
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), got, want):
        if e is None:
            assert a is None, name
        else:
            close(a, e, scale=np.abs(g).sum() / g.shape[1] + np.abs(e))


def test_reference_batch_norm_backward_by_finite_differences(rng):
    x = rng.standard_normal((3, 2, 2, 3))
    w, weights = rng.standard_normal(2), rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(2)
    objective = lambda x_, w_, b_: float((R.batch_norm(x_, None, None, w_, b_, True) * weights).sum())
    gx, gw, gb = R.batch_norm_backward(weights, x, w)
    eps = 1e-6
    for array, grad, arg in ((x, gx, 0), (w, gw, 1), (b, gb, 2)):
        numeric = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[arg][i] += eps
            up = objective(*args)
            args[arg][i] -= 2 * eps
            numeric[i] = (up - objective(*args)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_batch_norm_functional_updates_running_stats_and_matches_torch(torch, rng):
    from clconv.arrays import on_device
    from clconv.runtime import current

    x = randn(rng, 4, 3, 5, 5) * 2 + 0.5
    rm, rv = on_device(current(), np.zeros(3, np.float32)), on_device(current(), np.ones(3, np.float32))
    trm, trv = torch.zeros(3), torch.ones(3)
    out = batch_norm(x, rm, rv, training=True, momentum=0.2)
    tout = torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, training=True, momentum=0.2)
    close(out, tout.numpy(), scale=1.0)
    close(rm, trm.numpy())
    close(rv, trv.numpy())
    out = batch_norm(x, rm, rv, training=False)
    tout = torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, training=False)
    close(out, tout.numpy(), scale=1.0)


def test_batch_norm_rejects_single_value_per_channel_in_training():
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        batch_norm_train(np.ones((1, 3, 1, 1), np.float32))


# --- dropout ---------------------------------------------------------------------------

def test_dropout_mask_rate_scale_and_reproducibility():
    x = np.ones((200, 500), np.float32)
    out, mask = dropout_with_mask(x, p=0.3, seed=7)
    values = to_numpy(out)
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.01  # 100,000 draws: 0.01 is > 6 standard deviations
    np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    again, _ = dropout_with_mask(x, p=0.3, seed=7)
    np.testing.assert_array_equal(to_numpy(again), values)
    other, _ = dropout_with_mask(x, p=0.3, seed=8)
    assert (to_numpy(other) != values).any()
    g = np.full(x.shape, 2.0, np.float32)
    np.testing.assert_array_equal(to_numpy(dropout_backward(g, mask)), 2.0 * to_numpy(mask))


def test_dropout_edges_and_validation():
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(to_numpy(dropout(x, 0.0)), x)
    np.testing.assert_array_equal(to_numpy(dropout(x, 1.0)), 0 * x)
    np.testing.assert_array_equal(to_numpy(dropout(x, 0.5, training=False)), x)
    with pytest.raises(ValueError, match="p: dropout probability has to be between 0 and 1"):
        dropout(x, 1.5)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x


# --- layers against torch ------------------------------------------------------------

def _copy_weights(layer, torch_layer):
    layer.load_state_dict({k: v.detach().numpy() for k, v in torch_layer.state_dict().items()})


LAYERS = [
    ("Conv2d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 9, 9)),
    ("Conv2d", (4, 4, 3), dict(groups=4, padding="same", bias=False), (2, 4, 6, 6)),
    ("ConvTranspose2d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 4, 4)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 8, 8)),
    ("AvgPool2d", (2,), dict(count_include_pad=False, padding=1), (2, 3, 7, 7)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 5, 5)),
    ("ReLU", (), {}, (2, 3, 4, 4)),
    ("LeakyReLU", (0.1,), {}, (2, 3, 4, 4)),
    ("Sigmoid", (), {}, (2, 5)),
    ("Tanh", (), {}, (2, 5)),
    ("Flatten", (), {}, (2, 3, 4, 4)),
    ("Linear", (12, 5), {}, (3, 12)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1, dilation=2), (2, 3, 13)),
    ("Conv1d", (4, 8, (5,)), dict(groups=4, padding="same", bias=False), (2, 4, 9)),
    ("ConvTranspose1d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 6)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("AvgPool1d", (2,), dict(count_include_pad=False, padding=1), (2, 3, 7)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
    ("Conv3d", (3, 4, (3, 2, 3)), dict(stride=(2, 1, 1), padding=1), (2, 3, 5, 6, 7)),
    ("Conv3d", (4, 4, 3), dict(groups=2, padding="same", bias=False), (1, 4, 4, 5, 4)),
    ("ConvTranspose3d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1),
     (2, 3, 3, 4, 3)),
    ("MaxPool3d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 6, 7, 8)),
    ("AvgPool3d", (2,), dict(count_include_pad=False, padding=1), (2, 3, 5, 6, 7)),
    ("AvgPool3d", ((2, 3, 2),), dict(divisor_override=4), (2, 3, 5, 6, 7)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=[l[0] for l in LAYERS])
def test_layer_forward_backward_matches_torch(torch, name, args, kwargs, shape, rng):
    layer = getattr(nn, name)(*args, **kwargs)
    torch_layer = getattr(torch.nn, name)(*args, **kwargs)
    _copy_weights(layer, torch_layer)
    x = randn(rng, *shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch_layer(tx)
    y = layer(x)
    close(y, ty.detach().numpy(), scale=np.abs(ty.detach().numpy()).max() + 1)
    g = randn(rng, *ty.shape)
    ty.backward(torch.from_numpy(g))
    gx = layer.backward(g)
    close(gx, tx.grad.numpy(), scale=np.abs(tx.grad.numpy()).max() + 1)
    torch_grads = {k: p.grad.numpy() for k, p in torch_layer.named_parameters()}
    assert set(dict(layer.named_parameters())) == set(torch_grads)
    for key, param in layer.named_parameters():
        close(param.grad, torch_grads[key], scale=np.abs(torch_grads[key]).max() + 1)
    for key, value in torch_layer.state_dict().items():  # running stats included
        np.testing.assert_allclose(layer.state_dict()[key], value.numpy(), rtol=1e-4, atol=1e-5)


def test_conv3d_layer_init_follows_torch_fan_in():
    """torch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in from
    weight.shape[1:] (all three kernel axes)."""
    layer = nn.Conv3d(4, 6, (2, 3, 4), groups=2)
    w = to_numpy(layer.weight.data)
    assert w.shape == (6, 2, 2, 3, 4)
    bound = 1 / np.sqrt(2 * 2 * 3 * 4)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound


def test_batchnorm_eval_mode_uses_running_stats(torch, rng):
    layer, torch_layer = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for _ in range(3):
        x = randn(rng, 4, 3, 5, 5) * 2 + 1
        layer(x), torch_layer(torch.from_numpy(x))
    layer.eval(), torch_layer.eval()
    x = randn(rng, 2, 3, 5, 5)
    close(layer(x), torch_layer(torch.from_numpy(x)).detach().numpy(), scale=1.0)
    assert int(layer.state_dict()["num_batches_tracked"]) == 3
    with pytest.raises(RuntimeError, match="call model.train"):
        layer.backward(x)


def test_parameter_used_twice_accumulates_gradients(rng):
    layer = nn.Linear(4, 3)
    x = randn(rng, 2, 4)
    g = randn(rng, 2, 3)
    layer(x)
    layer.backward(g)
    once = to_numpy(layer.weight.grad).copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(to_numpy(layer.weight.grad), 2 * once, rtol=1e-6)
    layer.zero_grad()
    assert layer.weight.grad is None


# --- init, modes, state --------------------------------------------------------------

def test_default_init_bounds_and_seed_reproducibility():
    manual_seed(3)
    a = nn.Conv2d(4, 8, 3)
    manual_seed(3)
    b = nn.Conv2d(4, 8, 3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    bound = 1 / np.sqrt(4 * 3 * 3)
    w = a.state_dict()["weight"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert nn.Conv2d(4, 8, 3).state_dict()["weight"].tolist() != w.tolist()


def model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 3))


def test_train_eval_and_parameters():
    m = model()
    assert m.training and all(layer.training for layer in m.children())
    m.eval()
    assert not any(layer.training for layer in m.children())
    m.train()
    assert m[5].training
    names = [k for k, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "6.weight", "6.bias"]
    assert len(m.parameters()) == 6
    assert list(m.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                    "1.running_mean", "1.running_var",
                                    "1.num_batches_tracked", "6.weight", "6.bias"]


@pytest.mark.smoke
def test_state_dict_round_trips_bit_for_bit_through_npz(tmp_path, rng):
    m = model()
    m(randn(rng, 2, 1, 4, 4))  # moves the running statistics
    path = tmp_path / "m.npz"
    save(m, path)
    fresh = model()
    load(fresh, path)
    for (k, a), (k2, b) in zip(m.state_dict().items(), fresh.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    m.eval(), fresh.eval()
    x = randn(rng, 3, 1, 4, 4)
    np.testing.assert_array_equal(to_numpy(m(x)), to_numpy(fresh(x)))


def test_accepts_a_torch_state_dict(torch):
    torch_model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                      torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                      torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    m = model()
    m.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    m.eval(), torch_model.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    close(m(x), torch_model(torch.from_numpy(x)).detach().numpy(), scale=1.0)


def test_state_dict_mismatches_name_the_key(tmp_path):
    m = model()
    state = m.state_dict()
    bad_shape = dict(state, **{"6.weight": np.zeros((3, 15), np.float32)})
    with pytest.raises(StateDictError, match=r"6.weight: expected shape \(3, 16\), got \(3, 15\)"):
        m.load_state_dict(bad_shape)
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(StateDictError, match="missing keys: 0.bias"):
        m.load_state_dict(missing)
    with pytest.raises(StateDictError, match="unexpected keys: extra"):
        m.load_state_dict(dict(state, extra=np.zeros(1)))
    with pytest.raises(StateDictError, match="0.weight: contains NaN"):
        m.load_state_dict(dict(state, **{"0.weight": np.full((4, 1, 3, 3), np.nan, np.float32)}))
    before = to_numpy(m[0].weight.data).copy()
    np.testing.assert_array_equal(to_numpy(m[0].weight.data), before)  # nothing was changed


def test_float64_values_beyond_float32_are_refused_naming_the_key(tmp_path, rng):
    """Parameters are float32: a float64 1e300 would load as inf without a word."""
    m = model()
    state = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    state["6.bias"] = rng.standard_normal(3)
    state["6.bias"][1] = -1e300
    before = to_numpy(m[6].bias.data).copy()
    with pytest.raises(ValueError, match=r"6\.bias: holds -1e\+300, beyond float32"):
        m.load_state_dict(state)
    save_path = tmp_path / "wide.npz"
    np.savez(save_path, **state)
    with pytest.raises(StateDictError, match=r"6\.bias: holds -1e\+300"):
        load(m, save_path)
    np.testing.assert_array_equal(to_numpy(m[6].bias.data), before)  # nothing was changed
    state["6.bias"][1] = float(np.finfo(np.float32).max)  # the largest float32 still loads
    m.load_state_dict(state)
    assert to_numpy(m[6].bias.data)[1] == np.finfo(np.float32).max


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", None])
def test_corrupt_npz_raises_a_clear_error(tmp_path, content):
    m = model()
    path = tmp_path / "broken.npz"
    if content is None:  # a real archive, truncated
        save(m, path)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(StateDictError, match="not a readable .npz model file"):
        load(m, path)


# --- optimizers ------------------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS)
def test_optimizer_steps_match_torch(torch, name, kwargs, rng):
    layer = nn.Linear(6, 4)
    torch_layer = torch.nn.Linear(6, 4)
    _copy_weights(layer, torch_layer)
    ours = {"SGD": SGD, "Adam": Adam}[name](layer.parameters(), **kwargs)
    theirs = getattr(torch.optim, name)(torch_layer.parameters(), **kwargs)
    for _ in range(5):
        x, g = randn(rng, 3, 6), randn(rng, 3, 4)
        layer.zero_grad(), theirs.zero_grad()
        layer(x)
        layer.backward(g)
        torch_layer(torch.from_numpy(x)).backward(torch.from_numpy(g))
        ours.step(), theirs.step()
    for key, value in torch_layer.state_dict().items():
        close(layer.state_dict()[key], value.numpy(), tol=1e-5, scale=np.abs(value.numpy()).max())


def test_optimizer_argument_checks():
    params = nn.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match="lr: expected a value >= 0"):
        SGD(params, lr=-1)
    with pytest.raises(ValueError, match=r"betas\[1\]: expected a value in \[0, 1\)"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov: requires a momentum"):
        SGD(params, nesterov=True)
    with pytest.raises(ValueError, match="lr: expected a finite number"):
        Adam(params, lr=float("nan"))
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
