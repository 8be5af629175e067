"""Seeded random weights for a model's layers, for benchmarks and comparisons.

The ONNX wheel's model-zoo test nets (onnx/backend/test/data/light/) hold one value in
every weight tensor (0.02; the files store only each weight's shape, filled by a
ConstantOfShape node), so every channel computes the same thing and any two
implementations agree on them: an output comparison proves nothing. These functions
tell such a model apart and give its layers random weights of a sensible scale.
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

# (op type, input index) -> role of a float initializer there
ROLES = {("Conv", 1): "weight", ("Conv", 2): "bias",
         ("ConvTranspose", 1): "weight_t", ("ConvTranspose", 2): "bias",
         ("Gemm", 1): "matrix", ("Gemm", 2): "bias", ("MatMul", 1): "matrix",
         ("BatchNormalization", 1): "positive", ("BatchNormalization", 2): "bias",
         ("BatchNormalization", 3): "bias", ("BatchNormalization", 4): "positive"}


def _materialize_filled_weights(proto) -> None:
    """ConstantOfShape nodes of a constant shape become initializers holding their value,
    so that the weights they fill are initializers like any other."""
    shapes = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in shapes:
            value = np.zeros(1, np.float32)
            for attr in node.attribute:
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
            filled = np.full(tuple(int(d) for d in shapes[node.input[0]]), value.flat[0],
                             value.dtype)
            proto.graph.initializer.append(numpy_helper.from_array(filled, node.output[0]))
            if proto.ir_version < 4:  # before IR 4 every initializer is a graph input too
                proto.graph.input.append(helper.make_tensor_value_info(
                    node.output[0], helper.np_dtype_to_tensor_dtype(filled.dtype),
                    filled.shape))
        else:
            keep.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    used = {name for node in keep for name in node.input} | {o.name for o in proto.graph.output}
    unused = [t for t in proto.graph.initializer if t.name not in used]
    for tensor in unused:  # the shapes the replaced nodes read
        proto.graph.initializer.remove(tensor)
    dropped = {t.name for t in unused}
    for value in [v for v in proto.graph.input if v.name in dropped]:
        proto.graph.input.remove(value)


def layer_initializers(proto) -> dict[str, str]:
    """{initializer name: role} for the float initializers layers read as weights."""
    floats = {t.name for t in proto.graph.initializer
              if numpy_helper.to_array(t).dtype.kind == "f"}
    roles = {}
    for node in proto.graph.node:
        for index, name in enumerate(node.input):
            role = ROLES.get((node.op_type, index))
            if role and name in floats:
                roles.setdefault(name, role)
    return roles


def has_constant_weights(proto) -> bool:
    """True when every layer weight tensor (more than one value) holds a single value.
    Turns weight-filling ConstantOfShape nodes into initializers first (same model)."""
    _materialize_filled_weights(proto)
    roles = layer_initializers(proto)
    weights = [numpy_helper.to_array(t) for t in proto.graph.initializer
               if roles.get(t.name) in ("weight", "weight_t", "matrix")]
    weights = [w for w in weights if w.size > 1]
    return bool(weights) and all(np.all(w == w.flat[0]) for w in weights)


def _random(rng, role: str, shape) -> np.ndarray:
    if role in ("weight", "weight_t", "matrix"):
        # He initialisation keeps activations in range through deep ReLU nets
        fan_in = (int(np.prod(shape[1:])) if role == "weight" else
                  int(shape[0]) * int(np.prod(shape[2:])) if role == "weight_t" else
                  int(shape[0]) if len(shape) == 2 else int(np.prod(shape[:-1])))
        return rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))
    if role == "positive":  # batch-norm scale and variance
        return rng.uniform(0.5, 1.5, shape)
    return rng.standard_normal(shape) * 0.1


def randomize_weights(proto, seed: int = 0) -> int:
    """Replace, in place, every layer weight of `proto` (convolution and GEMM weights and
    biases, batch-norm statistics) by seeded random values; returns how many tensors."""
    rng = np.random.default_rng(seed)
    _materialize_filled_weights(proto)
    roles = layer_initializers(proto)
    count = 0
    for tensor in proto.graph.initializer:
        role = roles.get(tensor.name)
        if role is None:
            continue
        old = numpy_helper.to_array(tensor)
        new = _random(rng, role, old.shape).astype(old.dtype)
        tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))
        count += 1
    return count
