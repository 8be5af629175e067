"""Read an ONNX model (path, bytes or ModelProto) into plain Python objects:
nodes with decoded attributes, initializers as numpy arrays, typed inputs."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import OnnxImportError

ONNX_DOMAINS = ("", "ai.onnx")


def require_onnx():
    """The onnx package, or an ImportError saying how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("clconv.onnx needs the onnx package: pip install 'clconv[onnx]' "
                          "(or pip install onnx)") from error
    return onnx


@dataclass
class Node:
    name: str
    op_type: str
    domain: str
    opset: int
    inputs: list[str]     # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict = field(default_factory=dict)

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def __str__(self):
        return f"node {self.name!r} ({self.op_type}, opset {self.opset})"


@dataclass
class GraphInput:
    name: str
    dtype: np.dtype | None    # None: not a tensor (sequence, map, optional)
    shape: tuple    # ints, or str/None for symbolic dims


@dataclass
class Graph:
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    inputs: list[GraphInput]      # graph inputs that are not initializers
    outputs: list[str]
    opsets: dict[str, int]


def load_model(source):
    """An onnx.ModelProto from a path, bytes or a ModelProto, checked by onnx.checker."""
    onnx = require_onnx()
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        model, where = source, "model"
    else:
        where = "model bytes" if isinstance(source, (bytes, bytearray)) else str(source)
        try:
            if isinstance(source, (bytes, bytearray)):
                model = onnx.load_from_string(bytes(source))
            else:
                if not os.path.isfile(source):
                    raise OnnxImportError(f"{source}: no such file")
                model = onnx.load(os.fspath(source))
        except OnnxImportError:
            raise
        except onnx.checker.ValidationError as error:  # e.g. external data outside its folder
            first = str(error).strip().splitlines()[0]
            raise OnnxImportError(f"{where}: refused by onnx: {first}") from None
        except (DecodeError, ValueError, RuntimeError, OSError, MemoryError) as error:
            raise OnnxImportError(f"{where}: not a readable ONNX model (truncated or corrupt "
                                  f"file?): {error}") from None
    if not model.graph.node:
        raise OnnxImportError(f"{where}: the model has no graph nodes (truncated or empty "
                              "file?)")
    try:
        onnx.checker.check_model(model)
    # a corrupt string field fails to decode as UTF-8 (a ValueError) inside the checker
    except (onnx.checker.ValidationError, ValueError, RuntimeError, MemoryError) as error:
        first = str(error).strip().splitlines()[0]
        raise OnnxImportError(f"{where}: invalid ONNX model (truncated or corrupt file?): "
                              f"{first}") from None
    return model


def _attribute_value(onnx, attribute):
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _dims(onnx, value_info) -> tuple:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in shape.dim)


def read_graph(model) -> Graph:
    """The model as plain Python objects; OnnxImportError when a tensor, attribute or type
    in it cannot be decoded (what onnx.checker lets through in a corrupt file)."""
    try:
        return _read_graph(model)
    except MemoryError as error:
        raise OnnxImportError(f"model: a tensor is larger than host memory ({error})") from None
    except (ValueError, TypeError, LookupError, ArithmeticError, AttributeError,
            UnicodeDecodeError) as error:
        raise OnnxImportError(f"model: cannot decode {type(error).__name__}: {error}") from error


def _read_graph(model) -> Graph:
    onnx = require_onnx()
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    if "ai.onnx" in opsets and "" not in opsets:
        opsets[""] = opsets["ai.onnx"]
    graph = model.graph
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for i, n in enumerate(graph.node):
        domain = "" if n.domain == "ai.onnx" else n.domain
        nodes.append(Node(
            name=n.name or f"{n.op_type}_{i}", op_type=n.op_type, domain=domain,
            opset=opsets.get(domain, 0), inputs=list(n.input), outputs=list(n.output),
            attrs={a.name: _attribute_value(onnx, a) for a in n.attribute}))
    inputs = []
    for vi in graph.input:
        if vi.name in initializers:  # IR < 4 lists initializers among the inputs
            continue
        if not vi.type.HasField("tensor_type"):  # sequences, maps, optionals
            inputs.append(GraphInput(vi.name, None, ()))
            continue
        elem = vi.type.tensor_type.elem_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        inputs.append(GraphInput(vi.name, dtype, _dims(onnx, vi)))
    return Graph(nodes, initializers, inputs, [o.name for o in graph.output], opsets)
