"""Loss modules."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    """Mean cross entropy of logits (N, C) and class indices (N,).

    forward(input, target) returns the loss as a 0-d device array; backward() returns
    the gradient w.r.t. input (for a loss gradient of 1, as loss.backward() in torch)."""

    def forward(self, input, target):
        self._input, self._target = input, target
        return F.cross_entropy(input, target)

    def backward(self, grad_output=1.0):
        return F.cross_entropy_backward(self._input, self._target, grad_output)
