"""clconv as a standard ONNX backend (onnx.backend.base.Backend), so the ONNX
project's backend test runner can drive it:

    import clconv.onnx.backend as backend
    rep = backend.prepare(model)          # checks support, plans when it can
    outputs = rep.run([x])                # numpy outputs, graph order

Graph inputs that a node reads at plan time (shapes, axes, pads, indices, clip
bounds, batch-norm statistics) or that are not float32 are taken as host values:
the plan is specialised for their values on run() and memoised. The device is
whatever clconv selects (CLCONV_DEVICE picks one); the ONNX device string is "CPU".
"""
from __future__ import annotations

import numpy as np
from onnx.backend.base import Backend, BackendRep, namedtupledict

from .compile import compile_graph
from .loader import load_model, read_graph
from .ops import HANDLERS
from .plan import check_supported


def host_input_names(graph) -> list[str]:
    """Graph inputs to fold at plan time: not float32, or read only at constant positions."""
    uses: dict[str, list[bool]] = {}
    for node in graph.nodes:
        const_positions = HANDLERS[node.op_type].const_inputs
        for position, name in enumerate(node.inputs):
            if name:
                uses.setdefault(name, []).append(position in const_positions)
    return [i.name for i in graph.inputs
            if (i.dtype is not None and i.dtype != np.float32)
            or (uses.get(i.name) and all(uses[i.name]))]


class ClconvRep(BackendRep):
    def __init__(self, graph, source="model"):
        self.graph, self.source = graph, source
        self.input_names = [i.name for i in graph.inputs]
        self.host_names = host_input_names(graph)
        self._compiled = {}
        if not self.host_names:
            self._compiled[()] = compile_graph(graph, source=source)

    def _model_for(self, host_values: dict):
        key = tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in host_values.items())
        if key not in self._compiled:
            self._compiled[key] = compile_graph(self.graph, host_inputs=host_values,
                                                source=self.source)
        return self._compiled[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            by_name = dict(inputs)
        else:
            inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            by_name = dict(zip(self.input_names, inputs))
        host = {n: np.asarray(by_name.pop(n)) for n in self.host_names if n in by_name}
        model = self._model_for(host)
        outputs = model.run({n: by_name[n] for n in model.input_names if n in by_name}
                            if isinstance(inputs, dict) or len(by_name) != len(model.input_names)
                            else by_name)
        return namedtupledict("Outputs", model.output_names)(*outputs)


class ClconvBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        try:
            check_supported(read_graph(model))
        except ValueError:
            return False
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        graph = read_graph(load_model(model))
        check_supported(graph)
        return ClconvRep(graph)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        # clconv runs on the OpenCL device it selects; ONNX's CPU device names it.
        return str(device).upper().startswith("CPU")


prepare = ClconvBackend.prepare
run_model = ClconvBackend.run_model
run_node = ClconvBackend.run_node
supports_device = ClconvBackend.supports_device
is_compatible = ClconvBackend.is_compatible
