"""clconv.onnx on real architectures (against ONNX Runtime), the plan's folding,
fusion and buffer reuse, and the error paths (all raised before any kernel runs)."""
import numpy as np
import pyopencl as cl
import pytest

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed: pip install 'clconv[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv  # noqa: E402
import clconv.algos  # noqa: E402
import clconv.onnx as conx  # noqa: E402
from clconv.onnx.steps import AffineStep, ConvStep  # noqa: E402

TOLERANCE = 1e-4  # relative to the largest |reference| output


def reference(data: bytes, feeds: dict):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def relative_error(out, ref):
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.fixture(scope="module")
def architectures():
    pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")
    from onnx_architectures import export  # noqa: PLC0415

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = export(name)
        return cache[name]
    return get


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail the test if any OpenCL kernel is enqueued."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"kernel {self.function_name} ran")
    monkeypatch.setattr(cl.Kernel, "__call__", refuse)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "resnet18", "mobilenet_v2", "squeezenet", "vgg"])
def test_architecture_matches_onnx_runtime_at_224(name, architectures):
    data = architectures(name)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    model = conx.load(data)
    (out,) = model.run({"input": x})
    (ref,) = reference(data, {"input": x})
    assert out.shape == ref.shape and out.dtype == np.float32
    error = relative_error(out, ref)
    print(f"{name}: max relative error {error:.2e}")
    assert error < TOLERANCE


def test_plan_folds_batch_norm_fuses_activations_and_shape_chains(architectures):
    plan = conx.load(architectures("resnet18")).plan
    ops = [step.op for step in plan.steps]
    assert not any(isinstance(s, AffineStep) for s in plan.steps), "every BN follows a conv"
    convs = [s for s in plan.steps if isinstance(s, ConvStep)]
    assert len(convs) == 20 and all("BatchNormalization" in s.op for s in convs)
    # stem + first conv of 8 blocks; the second conv of each block adds the shortcut and
    # applies the block's ReLU in its epilogue (a projection conv, where the shortcut has
    # one, takes the Add instead: it comes first in the graph)
    assert sum(s.act.name == "relu" for s in convs) == 17
    fused = [s for s in convs if s.residual_input is not None]
    assert len(fused) == 8 and all(s.op.endswith("+Add+Relu") for s in fused)
    assert not any("Add" in op and not op.startswith("Conv") for op in ops)
    assert not any(op.startswith(("Shape", "Gather", "Concat", "Unsqueeze")) for op in ops)


def test_buffer_reuse_keeps_peak_memory_at_the_largest_live_pair(architectures):
    model = conx.load(architectures("resnet18"))
    plan = model.plan
    total = sum(int(np.prod(v.shape)) * 4 for v in plan.values.values()
                if isinstance(v, conx.plan.Tensor))
    assert plan.peak_bytes <= 1.25 * plan.largest_pair_bytes
    assert plan.peak_bytes < total / 4
    assert any(s.reuse_input is not None for s in plan.steps)  # in-place residual adds
    pool = clconv.current_runtime().allocator
    if not hasattr(pool, "managed_bytes"):
        pytest.skip("this pyopencl's MemoryPool does not report managed_bytes")
    pool.free_held()
    before = pool.managed_bytes
    # The direct variant needs no scratch (im2col columns), so the pool's growth is the
    # activations alone, which is what the plan's buffer reuse governs, and the
    # classifier's weights, packed on this first run and kept for the later ones.
    with clconv.algos.force("direct"):
        model.run({"input": np.zeros((1, 3, 224, 224), np.float32)})
    packed = sum(s._packed_b[2].data.nbytes for s in plan.steps
                 if getattr(s, "_packed_b", None) is not None)
    assert packed > 0
    grown = pool.managed_bytes - before - packed
    # pool bins round sizes up; 2x leaves room for that, not for one buffer per tensor
    assert grown <= 2 * plan.peak_bytes + (1 << 20), (grown, plan.peak_bytes)


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, dtype=TensorProto.FLOAT):
    """A tensor value info; shape None means rank 4 with unknown sizes."""
    shape = ["d0", "d1", "d2", "d3"] if shape is None else shape
    return helper.make_tensor_value_info(name, dtype, shape)


def test_unsupported_ops_are_all_listed_with_op_type_and_opset(no_kernels):
    model = _model(
        [helper.make_node("Relu", ["x"], ["a"], name="ok"),
         helper.make_node("Einsum", ["a", "a"], ["b"], equation="ij,ij->ij", name="e1"),
         helper.make_node("Erf", ["b"], ["c"], name="e2"),
         helper.make_node("Relu", ["c"], ["y"], name="ok2")],
        [_vi("x", [2, 2])], [_vi("y", [2, 2])], opset=13)
    with pytest.raises(conx.UnsupportedModelError) as info:
        conx.load(model.SerializeToString())
    message = str(info.value)
    assert "2 node(s)" in message
    assert "'e1': Einsum (domain ai.onnx, opset 13)" in message
    assert "'e2': Erf (domain ai.onnx, opset 13)" in message
    assert "'ok'" not in message
    assert [n[:2] for n in info.value.nodes] == [("e1", "Einsum"), ("e2", "Erf")]


def test_truncated_file_is_a_clear_error(tmp_path, architectures, no_kernels):
    data = architectures("lenet")
    for cut in (len(data) // 2, len(data) - 7, 100):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(conx.OnnxImportError, match="truncated"):
            conx.load(str(path))
    with pytest.raises(conx.OnnxImportError, match="no such file"):
        conx.load(str(tmp_path / "missing.onnx"))


def test_wrong_input_shape_dtype_or_name_fails_before_any_kernel(monkeypatch):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    model = conx.load(_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                             [_vi("x", ["N", 3, 8, 8])], [_vi("y", ["N", 4, 8, 8])], [w]))
    assert model.input_shapes == {"x": (1, 3, 8, 8)}  # a symbolic batch defaults to 1

    def refuse(self, *args, **kwargs):
        raise AssertionError("a kernel ran")
    monkeypatch.setattr(cl.Kernel, "__call__", refuse)
    with pytest.raises(conx.InputError, match=r"expected shape \(1, 3, 8, 8\), got \(1, 3, 9, 8\)"):
        model.run({"x": np.zeros((1, 3, 9, 8), np.float32)})
    with pytest.raises(conx.InputError, match="dtype float32"):
        model.run({"x": np.zeros((1, 3, 8, 8), np.float64)})
    with pytest.raises(conx.InputError, match="missing"):
        model.run({"z": np.zeros((1, 3, 8, 8), np.float32)})


def test_bad_shapes_inside_the_graph_fail_at_load(no_kernels):
    w = numpy_helper.from_array(np.ones((4, 5, 3, 3), np.float32), "w")
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                   [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], [w])
    with pytest.raises(conx.PlanError, match="'c' .*Conv"):
        conx.load(model)


def test_symbolic_dims_take_input_shapes():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", "C"])],
                   [_vi("y", ["N", "C"])])
    with pytest.raises(conx.PlanError, match="symbolic"):
        conx.load(model)
    compiled = conx.load(model, input_shapes={"x": (2, 5)})
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(compiled.run([x])[0], np.maximum(x, 0))


def test_asymmetric_same_padding_and_ceil_mode_match_onnx_runtime(rng):
    w = numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
             helper.make_node("LeakyRelu", ["c"], ["r"], alpha=0.1),
             helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[0, 1, 1, 0], ceil_mode=1, count_include_pad=1),
             helper.make_node("LRN", ["p"], ["l"], size=3),
             helper.make_node("HardSigmoid", ["l"], ["y"])]
    data = _model(nodes, [_vi("x", [2, 3, 16, 15])], [_vi("y", None)], [w]).SerializeToString()
    x = rng.standard_normal((2, 3, 16, 15)).astype(np.float32)
    (out,) = conx.load(data).run([x])
    (ref,) = reference(data, {"x": x})
    assert relative_error(out, ref) < TOLERANCE


def test_per_channel_mul_add_sub_become_one_affine_step_and_fold_into_the_conv(rng):
    """Exporters that write batch norm as BN -> Mul -> Add (DenseNet's Caffe2 export):
    the per-channel Mul/Add/Sub become affine steps, merged into one, folded into the
    convolution before them; a channel-less broadcast stays an element-wise step."""
    def const(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [const("w", (6, 3, 3, 3)), const("s", (6, 1, 1)), const("b", (1, 6, 1, 1)),
             const("t", (6, 1, 1)), const("row", (1, 1, 1, 8))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s", "c"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Sub", ["t", "r"], ["d"]),       # c - x: scale -1
             helper.make_node("Sub", ["d", "t"], ["e"]),       # x - c
             helper.make_node("Mul", ["e", "row"], ["y"])]     # not per channel
    data = _model(nodes, [_vi("x", [2, 3, 5, 8])], [_vi("y", [2, 6, 5, 8])],
                  inits).SerializeToString()
    plan = conx.load(data).plan
    ops = [step.op for step in plan.steps]
    assert ops[0] == "Conv+Mul+Add+Relu" and ops[1] == "Sub+Sub", ops
    assert ops[2] == "Mul" and len(ops) == 3
    x = rng.standard_normal((2, 3, 5, 8)).astype(np.float32)
    x[0, 0, 0, :2] = (np.nan, np.inf)
    (out,) = conx.load(data).run([x])
    (ref,) = reference(data, {"x": x})
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], rtol=1e-5, atol=1e-5)
