"""Module, Parameter and Sequential: the torch.nn containers, with explicit backward."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyopencl.array as cla

from ..arrays import on_device
from ..build import get_kernel, launch
from ..runtime import current
from .state import check_state


class Parameter:
    """A trainable device array and its accumulated gradient (None until backward)."""

    def __init__(self, value):
        rt = current()
        self.data: cla.Array = on_device(rt, np.ascontiguousarray(value, np.float32)) \
            if isinstance(value, np.ndarray) else value
        self.grad: cla.Array | None = None

    @property
    def shape(self):
        return self.data.shape

    def accumulate_grad(self, grad: cla.Array) -> None:
        """Add `grad` to .grad, as torch does when a parameter is used more than once."""
        if self.grad is None:
            self.grad = grad
            return
        rt = current()
        launch(rt, get_kernel(rt, "train.cl", "accumulate"), grad.size, self.grad, grad)

    def __repr__(self):
        return f"Parameter(shape={self.shape})"


class Module:
    """Base class. Subclasses set Parameters, buffers (device arrays registered with
    `register_buffer`) and child Modules as attributes, and implement forward/backward."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails: buffers
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, value) -> None:
        self._buffers[name] = value

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    # --- traversal -------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def named_parameters(self):
        for prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                yield prefix + name, param

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def children(self):
        return list(self._modules.values())

    def train(self, mode: bool = True):
        for _, module in self.named_modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    # --- state -----------------------------------------------------------------------
    def _state_items(self):
        """(key, owner, attribute name, kind) for every parameter and buffer, torch order."""
        for prefix, module in self.named_modules():
            for name in module._parameters:
                yield prefix + name, module, name, "parameter"
            for name in module._buffers:
                yield prefix + name, module, name, "buffer"

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Host copies of every parameter and buffer, keyed as torch keys them."""
        state = OrderedDict()
        for key, module, name, kind in self._state_items():
            value = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            state[key] = value.get() if isinstance(value, cla.Array) else np.array(value)
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Load parameters and buffers from numpy arrays (a clconv state_dict, a loaded
        .npz, or a torch state_dict converted with `{k: v.numpy() ...}`).

        Keys and shapes are checked before anything is changed."""
        rt = current()
        items = list(self._state_items())
        values = check_state(state_dict, {k: self._current_shape(m, n, kind)
                                          for k, m, n, kind in items}, strict)
        for key, module, name, kind in items:
            if key not in values:
                continue
            value = values[key]
            if kind == "parameter":
                module._parameters[name].data = on_device(rt, value.astype(np.float32))
            elif isinstance(module._buffers[name], cla.Array):
                module._buffers[name] = on_device(rt, value.astype(np.float32))
            else:  # host scalars such as num_batches_tracked
                module._buffers[name] = np.array(value, dtype=np.asarray(module._buffers[name]).dtype)

    @staticmethod
    def _current_shape(module, name, kind):
        value = module._parameters[name].data if kind == "parameter" else module._buffers[name]
        return tuple(value.shape)

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")

    def extra_repr(self) -> str:
        return ""


class Sequential(Module):
    """Runs children in order; backward runs them in reverse."""

    def __init__(self, *layers: Module):
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{index}]: expected a clconv.nn.Module, got "
                                f"{type(layer).__name__}")
            setattr(self, str(index), layer)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad_output):
        for layer in reversed(self._modules.values()):
            grad_output = layer.backward(grad_output)
        return grad_output
