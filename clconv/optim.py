"""Optimizers with torch.optim's names, arguments and update rules, as OpenCL kernels."""
from __future__ import annotations

import math

from .arrays import empty
from .build import get_kernel, launch
from .runtime import current
from .validation import check_finite

KERNELS = "train.cl"


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.params = list(params)
        if not self.params:
            raise ValueError("params: optimizer got an empty parameter list")
        self.defaults = defaults
        self.state: dict[int, dict] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _zeros_like(self, p):
        buffer = empty(current(), p.data.shape)
        buffer.fill(0.0)
        return buffer


def _check_nonnegative(name, value):
    value = check_finite(name, value)
    if value < 0:
        raise ValueError(f"{name}: expected a value >= 0, got {value}")
    return value


class SGD(Optimizer):
    """torch.optim.SGD: momentum, dampening, weight decay (L2) and Nesterov."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        self.lr = _check_nonnegative("lr", lr)
        self.momentum = _check_nonnegative("momentum", momentum)
        self.dampening = check_finite("dampening", dampening)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: requires a momentum and zero dampening")
        self.nesterov = bool(nesterov)
        super().__init__(params, dict(lr=lr, momentum=momentum))

    def step(self) -> None:
        rt = current()
        kernel = get_kernel(rt, KERNELS, "sgd_step")
        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.setdefault(id(p), {})
            first = "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = empty(rt, p.data.shape) if self.momentum else p.grad
            launch(rt, kernel, p.data.size, p.data, p.grad, state["momentum_buffer"], self.lr,
                   self.momentum, self.dampening, self.weight_decay, self.nesterov, first)


class Adam(Optimizer):
    """torch.optim.Adam with L2 weight decay (not AdamW), amsgrad off."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr = _check_nonnegative("lr", lr)
        beta1, beta2 = betas
        for name, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not 0.0 <= check_finite(name, beta) < 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1), got {beta}")
        self.betas = (float(beta1), float(beta2))
        self.eps = _check_nonnegative("eps", eps)
        self.weight_decay = _check_nonnegative("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas))

    def step(self) -> None:
        rt = current()
        kernel = get_kernel(rt, KERNELS, "adam_step")
        beta1, beta2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.setdefault(id(p), {})
            if not state:
                state.update(step=0, exp_avg=self._zeros_like(p), exp_avg_sq=self._zeros_like(p))
            state["step"] += 1
            step = state["step"]
            launch(rt, kernel, p.data.size, p.data, p.grad, state["exp_avg"],
                   state["exp_avg_sq"], self.lr, beta1, beta2, self.eps, self.weight_decay,
                   1.0 - beta1 ** step, math.sqrt(1.0 - beta2 ** step))
