"""load(): read a model, settle its input shapes, build the plan, upload weights."""
from __future__ import annotations

import numpy as np

from ..params import INT32_MAX
from .errors import PlanError
from .loader import Graph, load_model, read_graph
from .model import CompiledModel
from .plan import build_plan, check_supported


def _shape_argument(name, shape) -> tuple[int, ...]:
    """An input's shape (given in input_shapes or declared by the model) as a tuple of
    ints >= 1 within the kernels' int32 range."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list, np.ndarray)):
        raise PlanError(f"input {name!r}: expected a tuple of ints, got {shape!r}")
    dims = list(np.asarray(shape, dtype=object).reshape(-1)) if isinstance(shape, np.ndarray) \
        else list(shape)
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) \
                or not 1 <= d <= INT32_MAX:
            raise PlanError(f"input {name!r}: expected ints in [1, {INT32_MAX}], got "
                            f"{tuple(shape)!r}")
    if int(np.prod(dims, dtype=object)) > INT32_MAX:
        raise PlanError(f"input {name!r}: {tuple(shape)} has more than {INT32_MAX} "
                        "elements (the kernels' int32 index range)")
    return tuple(int(d) for d in dims)


def model_inputs(graph: Graph, input_shapes=None, host_inputs=None) -> dict[str, tuple]:
    """Concrete shapes of the run-time inputs. Symbolic dims take `input_shapes`, and a
    symbolic leading (batch) dim defaults to 1."""
    input_shapes = dict(input_shapes or {})
    host_inputs = host_inputs or {}
    names = {i.name for i in graph.inputs}
    unknown = sorted(set(input_shapes) - names)
    if unknown:
        raise PlanError(f"input_shapes names {unknown}, which are not graph inputs "
                        f"{sorted(names)}")
    shapes = {}
    for graph_input in graph.inputs:
        if graph_input.name in host_inputs:
            continue
        if graph_input.dtype is not None and graph_input.dtype != np.float32:
            continue  # reported by the plan's support check / as a non-constant use
        if graph_input.name in input_shapes:
            shape = _shape_argument(graph_input.name, input_shapes[graph_input.name])
            declared = graph_input.shape
            if declared and (len(declared) != len(shape) or any(
                    isinstance(d, int) and d > 0 and d != s for d, s in zip(declared, shape))):
                raise PlanError(f"input {graph_input.name!r}: shape {shape} does not match the "
                                f"model's {declared}")
        else:
            shape = []
            for axis, d in enumerate(graph_input.shape):
                if isinstance(d, int) and d > 0:
                    shape.append(d)
                elif axis == 0:
                    shape.append(1)
                else:
                    raise PlanError(f"input {graph_input.name!r}: dimension {axis} is symbolic "
                                    f"({d!r}); pass input_shapes={{{graph_input.name!r}: (...)}}")
            shape = _shape_argument(graph_input.name, shape)
        shapes[graph_input.name] = shape
    return shapes


def compile_graph(graph: Graph, input_shapes=None, host_inputs=None, source="model"):
    """A CompiledModel for an already-read graph."""
    check_supported(graph)  # first: it lists every unsupported node at once
    shapes = model_inputs(graph, input_shapes, host_inputs)
    non_float = [i for i in graph.inputs if i.name not in shapes
                 and i.name not in (host_inputs or {}) and i.dtype is not None]
    if non_float:
        raise PlanError("graph input(s) " + ", ".join(f"{i.name!r} ({i.dtype})" for i in non_float)
                        + " are not float32; clconv runs float32 tensors and takes integer "
                        "inputs only as host values (host_inputs=) for shapes and indices")
    plan = build_plan(graph, shapes, host_inputs)
    return CompiledModel(plan, source)


def load(source, input_shapes=None, host_inputs=None):
    """Read an ONNX model (path, bytes or onnx.ModelProto) and compile it for clconv's
    current device.

    input_shapes: {name: shape} for inputs with symbolic dims (a symbolic batch dim
    defaults to 1). host_inputs: {name: array} graph inputs to fold as constants."""
    model = load_model(source)
    graph = read_graph(model)
    where = source if isinstance(source, str) else "model"
    return compile_graph(graph, input_shapes, host_inputs, where)
