"""ONNX models of the 3-D ops (Conv, ConvTranspose, MaxPool, AveragePool over D, H, W)
against ONNX Runtime. The 3-D ops themselves are in the op table (clconv.optable), so
tests/test_ops.py, test_validation.py and test_edge_values.py cover them (with fixed 3-D
cases from tests/sweeps.py); their layers are in tests/test_nn.py."""
from __future__ import annotations

import numpy as np
import pytest

from clconv.optable import randn


# ------------------------------------------------------------------ ONNX import

def _onnx_model(node_kwargs, x_shape, w_shape=None, bias=False, outputs=("y",), seed=0):
    """A one-node ONNX model (helper-built) with random constant weights, and its input."""
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    op = node_kwargs.pop("op")
    inits, inputs = [], ["x"]
    if w_shape is not None:
        inits.append(numpy_helper.from_array(randn(rng, w_shape), "w"))
        inputs.append("w")
        if bias:
            channels = w_shape[0] if op == "Conv" else w_shape[1] * node_kwargs.get("group", 1)
            inits.append(numpy_helper.from_array(randn(rng, (channels,)), "b"))
            inputs.append("b")
    node = helper.make_node(op, inputs, list(outputs), **node_kwargs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT if i == 0 else TensorProto.INT64,
                                       [f"{o}{a}" for a in range(5)])  # symbolic dims
         for i, o in enumerate(outputs)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString(), randn(rng, x_shape)


ONNX_CASES = [  # (node attributes, input shape, weight shape, bias, outputs)
    (dict(op="Conv", strides=[1, 2, 1], pads=[1, 0, 1, 1, 0, 1], dilations=[1, 1, 2], group=2),
     (2, 4, 5, 6, 7), (6, 2, 3, 2, 3), True, ("y",)),
    (dict(op="Conv", auto_pad="SAME_UPPER"), (1, 3, 4, 5, 6), (4, 3, 2, 3, 2), False, ("y",)),
    (dict(op="ConvTranspose", strides=[2, 1, 2], pads=[1, 0, 1, 1, 0, 1],
          output_padding=[1, 0, 1], group=2), (2, 4, 3, 4, 3), (4, 3, 3, 2, 3), True, ("y",)),
    (dict(op="ConvTranspose", strides=[2, 2, 2], pads=[0, 1, 0, 1, 0, 1]), (1, 3, 3, 3, 3),
     (3, 2, 2, 3, 2), True, ("y",)),
    (dict(op="MaxPool", kernel_shape=[3, 2, 3], strides=[2, 1, 2], pads=[1, 1, 0, 1, 1, 0],
          dilations=[1, 2, 1], ceil_mode=1), (2, 3, 7, 8, 9), None, False, ("y", "i")),
    (dict(op="MaxPool", kernel_shape=[2, 2, 2]), (2, 3, 6, 5, 4), None, False, ("y",)),
    (dict(op="AveragePool", kernel_shape=[3, 2, 3], strides=[2, 1, 2],
          pads=[1, 1, 0, 1, 1, 0]), (2, 3, 7, 8, 9), None, False, ("y",)),
    (dict(op="AveragePool", kernel_shape=[2, 3, 3], strides=[1, 2, 2], pads=[1, 1, 1, 1, 1, 1],
          count_include_pad=1), (2, 3, 5, 6, 7), None, False, ("y",)),
]


@pytest.mark.parametrize("attrs, x_shape, w_shape, bias, outputs", ONNX_CASES,
                         ids=[f"{c[0]['op']}-{i}" for i, c in enumerate(ONNX_CASES)])
def test_onnx_3d_nodes_match_onnx_runtime(attrs, x_shape, w_shape, bias, outputs):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clconv.onnx as conx

    data, x = _onnx_model(dict(attrs), x_shape, w_shape, bias, outputs)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = conx.load(data).run({"x": x})
    assert len(got) == len(want)
    for a, e in zip(got, want):
        if e.dtype.kind in "iu":
            np.testing.assert_array_equal(a, e)
        else:
            assert a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * (np.abs(e).max() + 1))


def test_onnx_3d_pool_with_asymmetric_pads_is_refused_naming_the_node():
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clconv.onnx as conx

    data, _ = _onnx_model(dict(op="MaxPool", kernel_shape=[2, 2, 2], pads=[0, 0, 0, 1, 1, 1]),
                          (1, 2, 4, 4, 4))
    with pytest.raises(Exception, match="3-D pooling supports symmetric pads only"):
        conx.load(data)
