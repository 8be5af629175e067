"""The activation an op applies to its results before storing them (its epilogue).

One definition, for the element-wise kernels and every convolution variant: the ids
are `ACTIVATION` in kernels_cl/activation.h, which implements each with torch's
results on NaN and +-inf; alpha and beta travel as two float kernel arguments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATION_IDS = {"none": 0, "relu": 1, "leaky_relu": 2, "clip": 3, "sigmoid": 4, "tanh": 5,
                  "hard_sigmoid": 6, "hard_swish": 7}


@dataclass(frozen=True)
class Activation:
    """An activation applied after an op. alpha/beta: leaky_relu slope (alpha),
    clip bounds (alpha=min, beta=max), hard_sigmoid alpha*x + beta."""

    name: str = "none"
    alpha: float = 0.0
    beta: float = 0.0
    # the output array already holds a residual, added before the activation (ACCUMULATE
    # in activation.h): set by conv2d_activation's `residual` argument, not by users
    residual: bool = False

    def __post_init__(self):
        if self.name not in ACTIVATION_IDS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATION_IDS)}, "
                             f"got {self.name!r}")

    @property
    def defines(self) -> dict[str, int]:
        """Build options: the activation compiled in."""
        defines = {"ACTIVATION": ACTIVATION_IDS[self.name]}
        if self.residual:
            defines["ACCUMULATE"] = 1
        return defines

    @property
    def scalars(self) -> tuple[float, float]:
        """The kernel arguments act_alpha, act_beta."""
        return (float(self.alpha), float(self.beta))

    def numpy(self, x):
        """The same on the host, in float64 (ONNX folds constants with it)."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            return {"none": lambda: x, "relu": lambda: np.where(x < 0, 0.0, x),
                    "leaky_relu": lambda: np.where(x < 0, x * self.alpha, x),
                    "clip": lambda: np.minimum(np.maximum(x, self.alpha), self.beta),
                    "sigmoid": lambda: 1 / (1 + np.exp(-x)), "tanh": lambda: np.tanh(x),
                    "hard_sigmoid": lambda: np.clip(self.alpha * x + self.beta, 0, 1),
                    "hard_swish": lambda: x * np.clip(x / 6 + 0.5, 0, 1)}[self.name]()

    def __str__(self):
        return f"add + {self.name}" if self.residual else self.name


NO_ACTIVATION = Activation()
RELU = Activation("relu")
