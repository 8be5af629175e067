"""A batch norm (+ ReLU) applied to a convolution's input as the convolution loads it
(ConstantWeightConv2d's input_affine, gemm.cl's B_AFFINE), and the ONNX plan fusing
DenseNet's BN -> ReLU -> 1x1 Conv that way: same numbers as the separate ops, NaN and
inf included, on the pointwise GEMM and on the variants that take a pass of their own."""
import contextlib

import numpy as np
import pytest

import clconv.algos
from clconv.epilogue import NO_ACTIVATION, RELU, Activation
from clconv.ops.conv import ConstantWeightConv2d


def reference(x, scale, shift, before, w, bias, padding):
    """float64: conv2d(before(x * scale + shift)) + bias, torch's NaN rules."""
    import torch
    with np.errstate(invalid="ignore"):
        z = x.astype(np.float64) * scale[:, None, None].astype(np.float64) + \
            shift[:, None, None].astype(np.float64)
    z = torch.from_numpy(z)
    if before.name == "relu":
        z = torch.relu(z)
    y = torch.nn.functional.conv2d(z, torch.from_numpy(w.astype(np.float64)),
                                   torch.from_numpy(bias.astype(np.float64)), padding=padding)
    return y.numpy()


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared for it", "not"])
@pytest.mark.parametrize("before", [RELU, NO_ACTIVATION], ids=["relu", "none"])
@pytest.mark.parametrize("kernel, force", [(1, None), (1, "direct"), (3, None)],
                         ids=["1x1 gemm1x1", "1x1 direct", "3x3"])
def test_input_affine_matches_the_separate_ops(before, kernel, force, prepared, rng, torch,
                                               monkeypatch):
    """A layer prepared for an input_affine (ConstantWeightConv2d(input_affine=True)) or
    not; 29 output channels: a tail of rows for any tile."""
    monkeypatch.delenv(clconv.algos.ENV_ALGO, raising=False)  # emulated tiers force direct
    x = rng.standard_normal((2, 9, 7, 6)).astype(np.float32)
    x[0, 0, 0, :3] = (np.nan, np.inf, -np.inf)
    scale = rng.standard_normal(9).astype(np.float32)
    shift = rng.standard_normal(9).astype(np.float32)
    scale[4] = 0.0  # with an infinity there: NaN
    x[1, 4, 2, 2] = np.inf
    w = rng.standard_normal((29, 9, kernel, kernel)).astype(np.float32)
    bias = rng.standard_normal(29).astype(np.float32)
    padding = kernel // 2
    with clconv.algos.force(force) if force else contextlib.nullcontext():
        layer = ConstantWeightConv2d(x.shape, w, bias, padding=padding, input_affine=prepared)
        got = layer(x, input_affine=(scale, shift, before)).get()
    assert layer._forward.reads_input_affine(layer.geometry) == (kernel == 1 and not force)
    if kernel == 1 and not force:
        # the tunables for that use (the CPU class's taller tile on AVX-512), or not (this
        # small layer's own: memory-bound)
        profile, variant = layer.runtime.profile, layer._forward.variant
        use = clconv.algos.forward_use(variant, layer.geometry, prepared)
        assert (use == clconv.algos.INPUT_AFFINE) == prepared
        want_params = clconv.algos.params_for(profile, variant, layer.geometry, "forward", use)
        assert layer._forward.params == want_params
    want = reference(x, scale, shift, before, w, bias, padding)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-4)


def test_bad_input_affine_names_itself(rng):
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    layer = ConstantWeightConv2d(x.shape, rng.standard_normal((3, 4, 1, 1)).astype(np.float32))
    good = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"input_affine scale: expected shape \(4,\)"):
        layer(x, input_affine=(np.ones(3, np.float32), good, RELU))
    with pytest.raises(ValueError, match=r"input_affine shift: expected shape \(4,\)"):
        layer(x, input_affine=(good, np.ones(5, np.float32), RELU))
    with pytest.raises(ValueError, match="input_affine activation: expected none or relu"):
        layer(x, input_affine=(good, good, Activation("sigmoid")))
    with pytest.raises(TypeError, match="input_affine: expected"):
        layer(x, input_affine=(good, good))


def test_densenet_batch_norm_relu_runs_in_the_next_1x1_conv(rng):
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from onnx import TensorProto, helper, numpy_helper

    import clconv.onnx as conx
    from clconv.onnx.steps import AffineStep, ConvStep

    def const(name, shape, positive=False):
        value = rng.standard_normal(shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    inits = [const("w0", (8, 3, 3, 3)), const("w1", (6, 8, 1, 1)), const("w2", (4, 14, 3, 3)),
             const("w3", (5, 14, 1, 1)), const("b3", (5,))]
    for prefix, c in (("n1", 8), ("n2", 14), ("n3", 14)):
        inits += [const(f"{prefix}s", (c,)), const(f"{prefix}b", (c,)), const(f"{prefix}m", (c,)),
                  const(f"{prefix}v", (c,), positive=True)]

    def bn(prefix, x, y):
        return helper.make_node("BatchNormalization", [x] + [f"{prefix}{k}" for k in "sbmv"],
                                [y])
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             bn("n1", "c0", "a1"), helper.make_node("Relu", ["a1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w1"], ["c1"]),             # fused: BN+ReLU+1x1
             helper.make_node("Concat", ["c0", "c1"], ["cat"], axis=1),
             bn("n2", "cat", "a2"), helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w2"], ["y"], pads=[1, 1, 1, 1]),  # 3x3: apart
             bn("n3", "cat", "a3"),
             helper.make_node("Conv", ["a3", "w3", "b3"], ["z"])]        # fused, no ReLU
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 9, 10])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 9, 10]),
        helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 5, 9, 10])], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model = conx.load(data)
    fused = [s.op for s in model.plan.steps if isinstance(s, ConvStep) and s.input_affine]
    assert fused == ["BatchNormalization+Relu+Conv", "BatchNormalization+Conv"], fused
    assert [s.op for s in model.plan.steps if isinstance(s, AffineStep)] == \
        ["BatchNormalization+Relu"]
    session = ort.InferenceSession(data.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(3):  # step by step, recorded, replayed
        x = rng.standard_normal((1, 3, 9, 10)).astype(np.float32)
        for got, want in zip(model.run([x]), session.run(None, {"x": x})):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the fused 1x1 layers were prepared with the tile for that use
    for step in model.plan.steps:
        if isinstance(step, ConvStep) and step.input_affine:
            forward = step._prepared._forward
            assert forward.params == clconv.algos.params_for(
                model.runtime.profile, forward.variant, step._prepared.geometry, "forward",
                clconv.algos.INPUT_AFFINE)
