"""Exceptions of clconv.onnx; all are raised while loading or planning, before any
kernel runs."""
from __future__ import annotations


class OnnxImportError(ValueError):
    """The file or model cannot be read as ONNX (missing, truncated, malformed)."""


class UnsupportedModelError(ValueError):
    """The model uses ops (or op options) clconv cannot run.

    `nodes` lists (node name, op type, domain, opset) of every unsupported node."""

    def __init__(self, message: str, nodes=()):
        super().__init__(message)
        self.nodes = list(nodes)


class PlanError(ValueError):
    """A node's inputs, attributes or shapes are invalid or cannot be planned."""


class InputError(ValueError):
    """Inputs given to run() do not match the model's inputs (names, dtype, shape)."""
