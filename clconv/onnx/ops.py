"""The op table: ONNX op type -> how to lower a node of it into plan steps.

`const_inputs` are the input positions an op reads at plan time (shapes, axes,
pads, bounds, batch-norm statistics): they must be constants, and a backend feeds
graph inputs in these positions as host values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import ops_elementwise, ops_nn, ops_shape


@dataclass(frozen=True)
class OpSpec:
    lower: Callable
    const_inputs: frozenset = frozenset()


CONST_INPUTS = {
    "Clip": {1, 2}, "BatchNormalization": {1, 2, 3, 4}, "Reshape": {1}, "Squeeze": {1},
    "Unsqueeze": {1}, "Pad": {1, 2, 3}, "Gather": {1}, "ConstantOfShape": {0},
    "Dropout": {1, 2},
}

HANDLERS = {
    op: OpSpec(lower, frozenset(CONST_INPUTS.get(op, ())))
    for table in (ops_nn.HANDLERS, ops_elementwise.HANDLERS, ops_shape.HANDLERS)
    for op, lower in table.items()
}
