"""A small training loop: mini-batches, a tqdm progress bar, loss and accuracy per epoch."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .arrays import to_numpy
from .nn import CrossEntropyLoss


@dataclass
class History:
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays of consecutive mini-batches; shuffled when rng is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train_step(model, optimizer, loss_fn, x, y) -> tuple[float, np.ndarray]:
    """One forward/backward/update; returns (loss, logits on the host)."""
    model.zero_grad()
    logits = model(x)
    loss = loss_fn(logits, y)
    model.backward(loss_fn.backward())
    optimizer.step()
    return float(to_numpy(loss)), to_numpy(logits)


def evaluate(model, x, y, batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy) of model on (x, y) in evaluation mode."""
    was_training = model.training
    model.eval()
    loss_fn = CrossEntropyLoss()
    total_loss, correct = 0.0, 0
    for index in batches(len(x), batch_size, None):
        logits = model(np.ascontiguousarray(x[index]))
        total_loss += float(to_numpy(loss_fn(logits, y[index]))) * len(index)
        correct += int((to_numpy(logits).argmax(axis=1) == y[index]).sum())
    model.train(was_training)
    return total_loss / len(x), correct / len(x)


def fit(model, optimizer, x_train, y_train, epochs: int, batch_size: int = 32,
        x_val=None, y_val=None, seed: int = 0, progress: bool = True,
        val_label: str = "val") -> History:
    """Train with shuffled mini-batches; a progress bar per epoch shows loss and accuracy."""
    loss_fn = CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    history = History()
    for epoch in range(1, epochs + 1):
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(list(batches(len(x_train), batch_size, rng)), desc=f"epoch {epoch}/{epochs}",
                   unit="batch", disable=not progress, leave=True)
        for index in bar:
            loss, logits = train_step(model, optimizer, loss_fn,
                                      np.ascontiguousarray(x_train[index]), y_train[index])
            seen += len(index)
            loss_sum += loss * len(index)
            correct += int((logits.argmax(axis=1) == y_train[index]).sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        history.train_loss.append(loss_sum / seen)
        history.train_accuracy.append(correct / seen)
        if x_val is not None:
            val_loss, val_acc = evaluate(model, x_val, y_val)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
            bar.write(f"epoch {epoch}/{epochs}: train loss {loss_sum / seen:.4f} "
                      f"acc {correct / seen:.4f} | {val_label} loss {val_loss:.4f} acc {val_acc:.4f}")
    return history
