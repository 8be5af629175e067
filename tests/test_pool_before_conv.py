"""A pointwise convolution read only by an average pool of whole windows runs after the
pool (onnx/plan.py pool_before_pointwise_convs: DenseNet's transitions), the batch norm +
ReLU before it applied as the pool loads its input, with the same numbers as ONNX
Runtime's conv-then-pool, NaN and infinities included; and every case where the two
would differ keeps the original order."""
import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv.onnx as conx  # noqa: E402
from clconv.onnx.steps import AffineStep, CallStep, ConvStep  # noqa: E402


def _model(rng, x_shape, out_channels, pool, bn_relu=True, conv_act=None, second_reader=False,
           bias=True):
    """[BN -> ReLU ->] 1x1 Conv [-> act] -> AveragePool(**pool) [and the conv's output
    also a graph output]."""
    c = x_shape[1]
    inits = [numpy_helper.from_array(rng.standard_normal((out_channels, c, 1, 1))
                                     .astype(np.float32), "w")]
    conv_inputs = ["h", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(out_channels)
                                             .astype(np.float32), "b"))
        conv_inputs.append("b")
    nodes = []
    if bn_relu:
        for name, value in (("s", rng.standard_normal(c)), ("t", rng.standard_normal(c)),
                            ("m", rng.standard_normal(c)), ("v", np.abs(rng.standard_normal(c)) + .5)):
            inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        nodes += [helper.make_node("BatchNormalization", ["x", "s", "t", "m", "v"], ["n"]),
                  helper.make_node("Relu", ["n"], ["h"])]
    else:
        nodes.append(helper.make_node("Identity", ["x"], ["h"]))
    nodes.append(helper.make_node("Conv", conv_inputs, ["c"]))
    pooled_input = "c"
    if conv_act:
        nodes.append(helper.make_node(conv_act, ["c"], ["ca"]))
        pooled_input = "ca"
    nodes.append(helper.make_node("AveragePool", [pooled_input], ["y"], **pool))
    dims = ["n", "k", "h", "w"]
    session_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)]
    if second_reader:
        session_outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, dims))
    graph = helper.make_graph(nodes, "transition", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(x_shape))], session_outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _swapped(model) -> bool:
    steps = model.plan.steps
    kinds = [type(s) for s in steps]
    pools = [i for i, s in enumerate(steps) if isinstance(s, CallStep) and "average" in s.describe()]
    convs = [i for i, s in enumerate(steps) if isinstance(s, ConvStep)]
    assert len(pools) == 1 and len(convs) == 1, kinds
    return pools[0] < convs[0]


def _check(rng, data, x_shape, runs=3):
    model = conx.load(data)
    session = ort.InferenceSession(data.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(runs):  # step by step, recorded, replayed
        x = rng.standard_normal(x_shape).astype(np.float32)
        x.flat[[3, 50, 51, 200]] = (np.nan, np.inf, -np.inf, np.inf)
        for got, want in zip(model.run([x]), session.run(None, {"x": x})):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            finite = np.isfinite(want)
            np.testing.assert_array_equal(got[~finite], want[~finite])
            scale = np.abs(want[finite]).max()
            np.testing.assert_allclose(got[finite] / scale, want[finite] / scale, atol=1e-5)
    return model


@pytest.mark.parametrize("x_shape,pool", [
    ((1, 24, 8, 10), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ((2, 40, 9, 7), dict(kernel_shape=[2, 2], strides=[2, 2])),  # odd sizes: floor drops
    ((1, 16, 11, 11), dict(kernel_shape=[3, 3], strides=[2, 2], count_include_pad=1)),
    ((1, 16, 12, 12), dict(kernel_shape=[3, 2], strides=[3, 2], ceil_mode=1)),  # exact
])
@pytest.mark.parametrize("bn_relu", [True, False], ids=["bn+relu", "plain"])
def test_the_pool_runs_first_and_gives_the_same_numbers(rng, x_shape, pool, bn_relu):
    data = _model(rng, x_shape, 13, pool, bn_relu=bn_relu)
    model = _check(rng, data, x_shape)
    assert _swapped(model)
    if bn_relu:  # the batch norm + ReLU now runs before the pool, as it loads its input
        assert not any(isinstance(s, AffineStep) for s in model.plan.steps)
        assert not any(isinstance(s, ConvStep) and s.input_affine for s in model.plan.steps)
        (pool,) = [s for s in model.plan.steps if isinstance(s, CallStep)]
        assert pool.op.startswith("BatchNormalization+Relu+") and len(pool.inputs) == 3


@pytest.mark.parametrize("why,pool,kw", [
    ("pool pads", dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0]), {}),
    ("ceil mode's partial window", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), {}),
    ("an activation between", dict(kernel_shape=[2, 2], strides=[2, 2]), {"conv_act": "Relu"}),
    ("another reader", dict(kernel_shape=[2, 2], strides=[2, 2]), {"second_reader": True}),
])
def test_the_order_stays_where_the_two_would_differ(rng, why, pool, kw):
    x_shape = (1, 12, 9, 9)
    data = _model(rng, x_shape, 7, pool, **kw)
    model = _check(rng, data, x_shape, runs=1)
    assert not _swapped(model), why
