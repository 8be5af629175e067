"""A convolution followed by a max pool in one launch (conv_pool.cl, algos/channels.py
forward_max_pool): ConstantWeightConv2d's max_pool, against torch with NaN and +-inf in
the input, pool padding and windows past the output; and the ONNX plan fusing a stem's
max pool into the convolution before it (plan.fuse_max_pools), against ONNX Runtime.
Devices whose variant cannot fuse (GPUs, the VideoCore IV profile) run the pool after
the convolution, with the same numbers."""
from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv import algos
from clconv.algos import channels
from clconv.arrays import on_device
from clconv.device import DeviceKind
from clconv.epilogue import NO_ACTIVATION, RELU
from clconv.ops.conv import ConstantWeightConv2d

torch = pytest.importorskip("torch", reason="torch is the oracle")


def _torch(x, w, b, stride, padding, act, pool_kernel, pool_stride, pool_padding, ceil):
    y = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                   stride, padding)
    if act is RELU:
        y = torch.relu(y)
    return torch.nn.functional.max_pool2d(y, pool_kernel, pool_stride, pool_padding,
                                          ceil_mode=ceil).numpy()


CASES = [  # x shape, weight shape, stride, padding, pool kernel, stride, padding, ceil
    ((1, 3, 45, 47), (24, 3, 3, 3), 2, 0, 3, 2, 0, False),   # SqueezeNet's stem
    ((2, 3, 38, 40), (20, 3, 7, 7), 2, 3, 3, 2, 1, False),   # ResNet's: not fused on CPUs
    ((1, 3, 31, 29), (37, 3, 3, 3), 1, 1, 3, 2, 1, True),    # windows past the output,
    ((1, 2, 30, 33), (16, 2, 3, 3), 2, 0, 2, 2, 0, True),    # channels past K; no row kept
    ((1, 3, 16, 33), (16, 3, 3, 3), 1, 1, 3, 1, 1, False),   # stride 1: two rows kept
    ((1, 2, 7, 5), (8, 2, 3, 3), 1, 1, 3, 2, 1, False),      # fewer outputs than a run
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, pk, ps, pp, ceil", CASES)
@pytest.mark.parametrize("act", [RELU, NO_ACTIVATION])
def test_a_layer_with_a_max_pool_matches_torch(x_shape, w_shape, stride, padding, pk, ps,
                                               pp, ceil, act, rng, monkeypatch):
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)
    x = rng.standard_normal(x_shape).astype(np.float32)
    flat = x.reshape(-1)  # NaN and +-inf at random places
    for value in (np.nan, np.inf, -np.inf):
        flat[rng.choice(flat.size, max(1, flat.size // 1000), replace=False)] = value
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = _torch(x, w, b, stride, padding, act, pk, ps, pp, ceil)
    layer = ConstantWeightConv2d(x.shape, w, b, stride, padding, activation=act,
                                 max_pool=((pk, pk), (ps, ps), (pp, pp), want.shape[2:]))
    rt = clconv.current_runtime()
    if rt.profile.kind.name == "CPU":  # one launch where the convolution sums few terms
        terms = w_shape[1] * w_shape[2] * w_shape[3]
        assert (layer.max_pool_unfused is None) == (terms <= channels.POOL_MAX_TERMS), \
            layer.max_pool_unfused
    got = layer(x).get()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    finite = np.isfinite(want)
    assert finite.mean() > 0.3
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5,
                               atol=1e-5 * np.abs(want[finite]).max())
    out = on_device(rt, np.full(want.shape, 7, np.float32))
    assert layer(on_device(rt, x), out=out) is out
    np.testing.assert_array_equal(out.get(), got)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, pk, ps, pp, ceil",
                         [CASES[1], CASES[2], CASES[5]])
def test_on_any_device(x_shape, w_shape, stride, padding, pk, ps, pp, ceil, rng,
                       monkeypatch):
    """The fused kernel through forward_max_pool's own launch on whatever device this is
    (plain OpenCL C; inference picks it on CPUs only), at 4-float vectors: matches torch,
    and under Oclgrind every read stays inside the bordered planes, the pool's padding
    columns and the windows past the output included."""
    from clconv.arrays import empty
    from clconv.geometry import conv_geometry, explicit_pool
    rt = clconv.current_runtime()
    if rt.profile.kind == DeviceKind.VC4CL:  # build only what a VC4CL device would
        pytest.skip("conv_pool.cl is for CPUs only: VC4CL never builds it, and VC4C cannot "
                    "compile it (the CI's VC4C gate compiles every program this profile "
                    "builds)")
    monkeypatch.setattr(channels, "is_cpu", lambda profile: True)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = _torch(x, w, b, stride, padding, RELU, pk, ps, pp, ceil)
    geo = conv_geometry(x_shape, w_shape, stride, padding, 1, 1)
    pool = explicit_pool(geo.output_shape, (pk, pk), (ps, ps), (pp, pp), want.shape[2:])
    params = dict(algos.params_for(rt.profile, algos.CHANNELS, geo, "forward"), TN=4, NV=1,
                  WG=1)
    out = empty(rt, pool.output_shape)
    channels.forward_max_pool(rt, geo, params, on_device(rt, x), on_device(rt, w),
                              on_device(rt, b), out, RELU, pool)
    np.testing.assert_allclose(out.get(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_bad_max_pool_arguments_are_refused_naming_them(rng):
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="max_pool: expected"):
        ConstantWeightConv2d(x.shape, w, max_pool=(3, 2))
    with pytest.raises(ValueError, match=r"stride: expected two ints >= 1, got \(0, 2\)"):
        ConstantWeightConv2d(x.shape, w, max_pool=((3, 3), (0, 2), (0, 0), (4, 4)))
    with pytest.raises(ValueError, match=r"out_size: expected two ints >= 1"):
        ConstantWeightConv2d(x.shape, w, max_pool=((3, 3), (2, 2), (0, 0), (0, 4)))
    with pytest.raises(ValueError, match=r"kernel: expected two ints >= 1, got \(3.0, 3\)"):
        ConstantWeightConv2d(x.shape, w, max_pool=((3.0, 3), (2, 2), (0, 0), (4, 4)))
    with pytest.raises(ValueError, match=r"pads_begin: expected two ints >= 0, got \(-1, 0\)"):
        ConstantWeightConv2d(x.shape, w, max_pool=((3, 3), (2, 2), (-1, 0), (4, 4)))
    with pytest.raises(ValueError, match=r"kernel: expected two ints >= 1, got \(3, 3, 3\)"):
        ConstantWeightConv2d(x.shape, w, max_pool=((3, 3, 3), (2, 2), (0, 0), (4, 4)))
    layer = ConstantWeightConv2d(x.shape, w, max_pool=((3, 3), (2, 2), (0, 0), (4, 4)))
    with pytest.raises(ValueError, match="max_pool: a layer prepared with a max pool takes "
                                         "no residual"):
        layer(x, residual=np.zeros((1, 8, 10, 10), np.float32))
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 8, 4, 4\)"):
        layer(x, out=on_device(clconv.current_runtime(), np.zeros((1, 8, 10, 10), np.float32)))


onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed: pip install 'clconv[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv.onnx as conx  # noqa: E402
from clconv.onnx.steps import CallStep, ConvStep  # noqa: E402


def _stem_graph(rng, pool_read_twice=False):
    """Conv -> BatchNorm -> Relu -> MaxPool (a 3x3 stem, small), then a 1x1 conv; with
    pool_read_twice the ReLU's output is a graph output too (no fusion)."""
    def const(name, value):
        return numpy_helper.from_array(value.astype(np.float32), name)

    inits = [const("w", rng.standard_normal((12, 3, 3, 3)) / 5),
             const("scale", rng.uniform(0.5, 1.5, 12)), const("shift", rng.standard_normal(12)),
             const("mean", rng.standard_normal(12)), const("var", rng.uniform(0.5, 2, 12)),
             const("w2", rng.standard_normal((5, 12, 1, 1)) / 4)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"],
                              ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p", "w2"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 10, 11])]
    if pool_read_twice:
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 12, 20, 22]))
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 3, 40, 44])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("read_twice", [False, True])
def test_a_stems_max_pool_runs_in_its_convolution(read_twice, rng):
    proto = _stem_graph(rng, read_twice)
    model = conx.load(proto)
    convs = [s for s in model.plan.steps if isinstance(s, ConvStep)]
    pools = [s for s in model.plan.steps if isinstance(s, CallStep) and s.max_pool]
    assert (convs[0].max_pool is None) == read_twice
    assert len(pools) == int(read_twice)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    # (no NaN here: ONNX Runtime's MaxPool drops NaN where torch's keeps it, as clconv
    # does; the layer test above checks NaN against torch)
    for _ in range(3):  # step by step, recorded, replayed
        x = rng.standard_normal((2, 3, 40, 44)).astype(np.float32)
        for got, want in zip(model.run({"x": x}), session.run(None, {"x": x})):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if not read_twice:
        assert "max pool (3, 3)/(2, 2) (fused)" in convs[0].describe()
        if clconv.current_runtime().profile.kind.name == "CPU":
            assert convs[0]._prepared.max_pool_unfused is None


def test_a_pooled_convolution_takes_no_input_affine_and_keeps_its_place(rng):
    """BatchNorm -> Relu -> 1x1 Conv -> MaxPool -> AveragePool: the pooled convolution
    neither applies the batch norm as it loads its input (plan.fuse_input_affines) nor
    runs after the average pool (plan.pool_before_pointwise_convs: a max pool does not
    commute with it); the numbers are ONNX Runtime's."""
    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    inits = [const("scale", rng.uniform(0.5, 1.5, 4)), const("shift", rng.standard_normal(4)),
             const("mean", rng.standard_normal(4)), const("var", rng.uniform(0.5, 2, 4)),
             const("w", rng.standard_normal((6, 4, 1, 1)))]
    nodes = [helper.make_node("BatchNormalization", ["x", "scale", "shift", "mean", "var"],
                              ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["c"]),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2],
                              strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "pooled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4, 3])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = conx.load(proto)
    (conv,) = [s for s in model.plan.steps if isinstance(s, ConvStep)]
    assert conv.max_pool is not None and conv.input_affine is None
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for _ in range(3):
        x = rng.standard_normal((1, 4, 16, 12)).astype(np.float32)
        (got,), (want,) = model.run({"x": x}), session.run(None, {"x": x})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
