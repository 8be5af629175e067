"""Import ONNX models and run them with clconv's OpenCL ops (inference).

    import clconv.onnx
    model = clconv.onnx.load("resnet18.onnx")          # plan built, weights uploaded
    (logits,) = model.run({"input": batch})             # numpy float32 in and out

Needs the onnx package (pip install 'clconv[onnx]'). Everything that can go wrong
with a model (unreadable file, unsupported ops, bad shapes) is raised by load(),
before any kernel runs.
"""
from __future__ import annotations

from .errors import InputError, OnnxImportError, PlanError, UnsupportedModelError
from .compile import compile_graph, load, model_inputs

__all__ = ["load", "compile_graph", "model_inputs", "OnnxImportError", "UnsupportedModelError",
           "PlanError", "InputError"]
