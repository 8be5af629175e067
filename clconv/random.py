"""The random source for weight initialisation and dropout seeds.

`manual_seed(seed)` makes model initialisation and dropout masks reproducible,
like torch.manual_seed."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator
