"""The main job: train a LeNet-style CNN on scikit-learn's bundled 8x8 digits with
clconv's kernels, save and reload it, and draw what it learned."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import nn
from .atomic_file import atomic_write, save_figure
from .arrays import to_numpy
from .nn.state import load, save
from .optim import Adam
from .random import manual_seed
from .runtime import current
from .train import evaluate, fit

CLASSES = 10


def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    """The 1,797 digits as (N, 1, 8, 8) float32 in [0, 1], split with a fixed permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the demo needs scikit-learn for its bundled digits data set: "
                         "pip install 'clconv[demo]'") from None
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def lenet(dropout: float = 0.25) -> nn.Sequential:
    """Two conv blocks (conv, batch norm, ReLU, 2x2 max pool) and two linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(64, CLASSES),
    )


def run_demo(out_dir, epochs: int = 15, batch_size: int = 32, lr: float = 2e-3,
             seed: int = 0, progress: bool = True, out=print) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runtime = current()
    out(f"device: {runtime.profile.label} ({runtime.profile.kind.name}); "
        f"{runtime.selection_reason}")
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    out(f"data:   scikit-learn digits, {len(x_train)} train / {len(x_test)} test, 8x8")
    manual_seed(seed)
    model = lenet()
    optimizer = Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(model, optimizer, x_train, y_train, epochs, batch_size, x_test, y_test,
                  seed=seed, progress=progress, val_label="test")
    seconds = time.perf_counter() - start
    _, accuracy = evaluate(model, x_test, y_test)
    out(f"test accuracy: {accuracy:.4f} after {epochs} epochs in {seconds:.1f} s")

    model_path = out_dir / "model.npz"
    save(model, model_path)
    reloaded = lenet()
    load(reloaded, model_path)
    _, reloaded_accuracy = evaluate(reloaded, x_test, y_test)
    identical = all(np.array_equal(a, b) for a, b in
                    zip(model.state_dict().values(), reloaded.state_dict().values()))
    out(f"saved {model_path}; reloaded: test accuracy {reloaded_accuracy:.4f}, "
        f"parameters {'bit-for-bit identical' if identical else 'DIFFERENT'}")

    metrics = {"test_accuracy": accuracy, "reloaded_test_accuracy": reloaded_accuracy,
               "reload_bit_identical": identical, "epochs": epochs, "seconds": seconds,
               "device": runtime.profile.label, "train_loss": history.train_loss,
               "test_loss": history.val_loss, "test_accuracy_per_epoch": history.val_accuracy}
    with atomic_write(out_dir / "metrics.json", "w") as f:
        f.write(json.dumps(metrics, indent=2) + "\n")
    pictures = _draw(out_dir, history, model, x_test[0], y_test[0])
    out("wrote " + ", ".join(str(p) for p in [out_dir / "metrics.json", model_path, *pictures]))
    return metrics


def _draw(out_dir: Path, history, model, digit, label) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the pictures (pip install 'clconv[demo]')")
        return []
    paths = [out_dir / "training_curve.png", out_dir / "filters.png",
             out_dir / "feature_maps.png"]
    epochs = np.arange(1, len(history.train_loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history.train_loss, label="train")
    ax_loss.plot(epochs, history.val_loss, label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross entropy", title="loss")
    ax_acc.plot(epochs, history.train_accuracy, label="train")
    ax_acc.plot(epochs, history.val_accuracy, label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, paths[0], dpi=100)
    plt.close(fig)

    filters = to_numpy(model[0].weight.data)[:, 0]
    fig, axes = plt.subplots(2, 8, figsize=(10, 3))
    for i, ax in enumerate(axes.flat):
        ax.imshow(filters[i], cmap="RdBu_r", vmin=-abs(filters).max(), vmax=abs(filters).max())
        ax.set_title(f"#{i}", fontsize=8)
        ax.axis("off")
    fig.suptitle("learned first-layer 3x3 filters")
    save_figure(fig, paths[1], dpi=100)
    plt.close(fig)

    model.eval()
    block = nn.Sequential(*[model[i] for i in range(3)])  # conv, batch norm, ReLU
    maps = to_numpy(block(np.ascontiguousarray(digit[None])))[0]
    fig, axes = plt.subplots(3, 8, figsize=(10, 4.5))
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(digit[0], cmap="gray_r")
    axes[0, 0].set_title(f"input ({label})", fontsize=8)
    for i in range(16):
        ax = axes[1 + i // 8, i % 8]
        ax.imshow(maps[i], cmap="viridis")
        ax.set_title(f"map {i}", fontsize=8)
    fig.suptitle("first-layer feature maps (after batch norm and ReLU) for one test digit")
    save_figure(fig, paths[2], dpi=100)
    plt.close(fig)
    return paths
