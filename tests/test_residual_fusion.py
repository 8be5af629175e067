"""conv + add + activation in one pass: conv2d_activation's `residual`, and the ONNX plan
fusing a ResNet block's Add (and the ReLU after it) into the convolution before it."""
import numpy as np
import pytest

import clconv
import clconv.functional as F
from clconv.arrays import on_device
from clconv.epilogue import RELU, Activation


def _torch_like(x, w, b, residual, **kw):
    total = F.conv2d(x, w, b, **kw).get() + residual
    with np.errstate(invalid="ignore"):
        return np.where(total < 0, 0.0, total)


def test_conv2d_activation_adds_the_residual_before_the_activation(rng):
    x = rng.standard_normal((2, 4, 9, 10)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    r = rng.standard_normal((2, 6, 9, 10)).astype(np.float32)
    r[0, 0, 0, :3] = (np.nan, np.inf, -np.inf)
    want = _torch_like(x, w, b, r, padding=1)
    got = F.conv2d_activation(x, w, b, padding=1, activation=RELU, residual=r).get()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # NaN and inf where torch's
    kept = on_device(clconv.current_runtime(), r)
    again = F.conv2d_activation(x, w, b, padding=1, activation=RELU, residual=kept,
                                overwrite_residual=True)
    assert again is kept
    np.testing.assert_allclose(kept.get(), want, rtol=1e-5, atol=1e-5)


def test_bad_residual_arguments_are_refused_naming_them(rng):
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"residual: expected shape \(1, 6, 6, 6\)"):
        F.conv2d_activation(x, w, residual=np.zeros((1, 6, 8, 8), np.float32))
    with pytest.raises(ValueError, match="overwrite_residual: True needs a residual"):
        F.conv2d_activation(x, w, overwrite_residual=True)
    with pytest.raises(ValueError, match="overwrite_residual: True needs the residual as a "
                                         "device array"):
        F.conv2d_activation(x, w, residual=np.zeros((1, 6, 6, 6), np.float32),
                            overwrite_residual=True)
    with pytest.raises(ValueError, match="activation: residual=True is set by"):
        F.conv2d_activation(x, w, activation=Activation("relu", residual=True))
    with pytest.raises(TypeError, match="residual"):
        F.conv2d_activation(x, w, residual=np.zeros((1, 6, 6, 6), np.float64))


def test_out_receives_the_result_with_or_without_a_residual(rng):
    """out= (torch's convention): the result goes into the caller's array, which may be a
    view of a bigger buffer (a concatenation's slice); the residual is left as it was."""
    rt = clconv.current_runtime()
    x = rng.standard_normal((1, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    r = on_device(rt, rng.standard_normal((1, 5, 7, 6)).astype(np.float32))
    kept = r.get()
    out = on_device(rt, np.full((1, 5, 7, 6), np.nan, np.float32))
    assert F.conv2d_activation(x, w, padding=1, activation=RELU, out=out) is out
    np.testing.assert_allclose(out.get(), F.conv2d_relu(x, w, padding=1).get(), rtol=1e-6)
    assert F.conv2d_activation(x, w, padding=1, activation=RELU, residual=r, out=out) is out
    np.testing.assert_allclose(out.get(), _torch_like(x, w, None, kept, padding=1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r.get(), kept)
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 5, 5, 4\), got \(1, 5, 7"):
        F.conv2d_activation(x, w, out=out)  # padding 0: a 5x4 output
    with pytest.raises(ValueError, match="out: give either out or overwrite_residual"):
        F.conv2d_activation(x, w, padding=1, residual=r, overwrite_residual=True, out=out)
    with pytest.raises(ValueError, match="out: expected a device array"):
        F.conv2d_activation(x, w, padding=1, out=np.zeros((1, 5, 7, 6), np.float32))
    wide = on_device(rt, np.zeros(1 + 5 * 7 * 6, np.float32))
    with pytest.raises(ValueError, match="out: expected a device array .* at offset 0 to "
                                         "write into, got an array at offset 4"):
        F.conv2d_activation(x, w, padding=1, out=wide[1:].reshape(1, 5, 7, 6))


def _resnet_block(rng, identity: bool):
    """x -> Conv -> BN -> (+ shortcut) -> Relu; the shortcut is x itself (identity) or a
    1x1 projection conv of x."""
    onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    from onnx import helper, numpy_helper

    def init(name, shape, positive=False):
        value = (rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape) * 0.3)
        return numpy_helper.from_array(value.astype(np.float32), name)

    inits = [init("w", (8, 8, 3, 3)), init("s", (8,), True), init("bb", (8,)),
             init("m", (8,)), init("v", (8,), True)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"])]
    shortcut = "x"
    if not identity:
        inits.append(init("p", (8, 8, 1, 1)))
        nodes.insert(0, helper.make_node("Conv", ["x", "p"], ["proj"]))
        shortcut = "proj"
    nodes += [helper.make_node("Add", ["n", shortcut], ["a"]),
              helper.make_node("Relu", ["a"], ["y"])]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "block", [vi("x", onnx.TensorProto.FLOAT, [1, 8, 12, 12])],
                              [vi("y", onnx.TensorProto.FLOAT, [1, 8, 12, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("identity", [False, True], ids=["projection", "identity"])
def test_a_resnet_blocks_add_and_relu_run_in_the_convolution(identity, rng):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import clconv.onnx as conx
    from clconv.onnx.steps import BinaryStep, ConvStep

    model = _resnet_block(rng, identity)
    compiled = conx.load(model)
    steps = compiled.plan.steps
    assert not any(isinstance(s, BinaryStep) for s in steps)
    (fused,) = [s for s in steps if isinstance(s, ConvStep) and s.residual_input is not None]
    assert fused.op.endswith("+Add+Relu") and fused.act.name == "relu"
    assert len(steps) == (1 if identity else 2)  # batch norm folded, Add and Relu fused
    # a projection dies at the fused step, so its buffer takes the result; x (a graph
    # input, and the conv's own input) is never overwritten
    assert fused.reuse_input == (None if identity else fused.residual_input)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x})
    for _ in range(2):  # the second run reuses the prepared layers
        (got,) = compiled.run([x.copy()])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
