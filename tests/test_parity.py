"""Training parity with PyTorch: the demo's network, the same initial weights, data order
and hyper-parameters, one epoch in clconv and in torch; losses agree step by step and the
final parameters agree to 1e-3 relative."""
import numpy as np
import pytest

from clconv.demo import lenet, load_digits_split
from clconv.nn import CrossEntropyLoss
from clconv.optim import SGD, Adam
from clconv.train import batches, train_step

pytest.importorskip("sklearn", reason="scikit-learn not installed: pip install scikit-learn")


def torch_lenet(torch):
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 16, 3, padding=1, bias=False), t.BatchNorm2d(16), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 32, 3, padding=1, bias=False), t.BatchNorm2d(32), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(128, 64), t.ReLU(), t.Dropout(0.0), t.Linear(64, 10))


@pytest.mark.parametrize("optimizer,kwargs", [("Adam", dict(lr=2e-3)),
                                              ("SGD", dict(lr=0.05, momentum=0.9,
                                                           weight_decay=1e-4))])
def test_one_epoch_matches_torch(torch, optimizer, kwargs):
    torch.manual_seed(0)
    reference = torch_lenet(torch)
    model = lenet(dropout=0.0)
    model.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    ours = {"Adam": Adam, "SGD": SGD}[optimizer](model.parameters(), **kwargs)
    theirs = getattr(torch.optim, optimizer)(reference.parameters(), **kwargs)
    loss_fn = CrossEntropyLoss()
    x_train, y_train, _, _ = load_digits_split(0)
    losses, torch_losses = [], []
    for index in batches(len(x_train), 32, np.random.default_rng(0)):
        x, y = np.ascontiguousarray(x_train[index]), y_train[index]
        losses.append(train_step(model, ours, loss_fn, x, y)[0])
        theirs.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)),
                                                 torch.from_numpy(y))
        loss.backward()
        theirs.step()
        torch_losses.append(loss.item())
    assert len(losses) == 45
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-3)
    assert losses[-1] < 0.5 * losses[0]  # it did learn
    torch_state = reference.state_dict()
    for key, value in model.state_dict().items():
        expected = torch_state[key].numpy()
        error = np.abs(value - expected).max() / max(np.abs(expected).max(), 1e-12)
        assert error <= 1e-3, f"{key}: relative difference {error:.2e}"
