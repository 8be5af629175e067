"""Models, shapes and files clconv cannot use raise OnnxImportError, UnsupportedModelError or
PlanError at load time, naming the node or input, before any kernel runs; never a raw
MemoryError, ValidationError or an error at run time."""
import zipfile

import numpy as np
import pyopencl as cl
import pytest

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv.onnx as co  # noqa: E402
from clconv.onnx import OnnxImportError, PlanError, UnsupportedModelError  # noqa: E402

CLCONV_ERRORS = (OnnxImportError, UnsupportedModelError, PlanError)


@pytest.fixture
def no_kernels(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"kernel {self.function_name} ran for a model load must refuse")
    monkeypatch.setattr(cl.Kernel, "__call__", refuse)


def _model(nodes, inits=(), x_shape=(1, 3, 8, 8), opset=17, rank_out=4):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [f"d{i}" for i in range(rank_out)])],
        list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def conv_model(w_shape=(4, 3, 3, 3), opset=17, x_shape=("N", 3, 8, 8), **attrs):
    w = np.random.default_rng(0).standard_normal(w_shape).astype(np.float32)
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], **attrs)],
                  [numpy_helper.from_array(w, "w")], x_shape, opset)


def pool_model(op, **attrs):
    return _model([helper.make_node(op, ["x"], ["y"], **attrs)])


def constant_of_shape_model(count):
    shape = numpy_helper.from_array(np.array([count], np.int64), "s")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("Add", ["x", "c"], ["y"])]
    return _model(nodes, [shape], x_shape=(1,), rank_out=1)


@pytest.mark.parametrize("make, error, words", [
    (lambda: constant_of_shape_model(10**18), PlanError,
     ["ConstantOfShape_0", "1000000000000000000", "2147483647"]),
    (lambda: conv_model(pads=[2**31] * 4), PlanError, ["Conv_0", "pads", "2147483648"]),
    (lambda: conv_model(kernel_shape=[0, 0]), PlanError, ["Conv_0", "kernel_shape [0, 0]"]),
    (lambda: conv_model(w_shape=(4, 3, 3)), PlanError, ["Conv_0", "(4, 3, 3)", "4-D weight"]),
    (lambda: conv_model(strides=[2**40, 1]), PlanError, ["Conv_0", "strides", "1099511627776"]),
    (lambda: conv_model(opset=999), UnsupportedModelError, ["Conv_0", "opset 999", "opsets 7 to"]),
    (lambda: pool_model("MaxPool", kernel_shape=[0, 0]), PlanError, ["MaxPool_0", "[0, 0]"]),
    (lambda: pool_model("MaxPool", kernel_shape=[2, 2], pads=[2**31] * 4), PlanError,
     ["MaxPool_0", "pads"]),
    (lambda: pool_model("AveragePool", kernel_shape=[2, 2], strides=[2**40, 1]), PlanError,
     ["AveragePool_0", "strides"]),
    (lambda: pool_model("MaxPool", kernel_shape=[2, 2], pads=[2**31 - 1] * 4), PlanError,
     ["MaxPool_0", "2147483647"]),
    # found by the fuzzing below: one failed in a launch, the other crashed POCL
    (lambda: pool_model("MaxPool", kernel_shape=[2, 2], dilations=[0, 0]), PlanError,
     ["MaxPool_0", "dilations=[0, 0]"]),
    (lambda: pool_model("MaxPool", kernel_shape=[2, 2], auto_pad="SAME_LOWER",
                        dilations=[2**31 - 1] * 2), PlanError,
     ["MaxPool_0", "dilation 2147483647", "int32"]),
], ids=["constant-of-shape-1e18", "conv-pads-2**31", "conv-kernel-shape-0", "conv-3d-weight",
        "conv-stride-2**40", "opset-999", "maxpool-kernel-0", "maxpool-pads-2**31",
        "avgpool-stride-2**40", "maxpool-pads-past-int32", "maxpool-dilation-0",
        "maxpool-same-dilation-2**31-1"])
def test_bad_models_fail_at_load_naming_the_node(no_kernels, make, error, words):
    with pytest.raises(error) as info:
        co.load(make())
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("shape, words", [
    ((-1, 3, 8, 8), ["'x'", "(-1, 3, 8, 8)", "[1, 2147483647]"]),
    ((0, 3, 8, 8), ["'x'", "(0, 3, 8, 8)"]),
    ((1, 3, 8.7, 8), ["'x'", "8.7"]),
    (8.7, ["'x'", "expected a tuple of ints, got 8.7"]),
    ("1,3,8,8", ["'x'", "expected a tuple of ints"]),
    ((True, 3, 8, 8), ["'x'", "True"]),
    ((2**20, 3, 2**10, 2**10), ["'x'", "more than 2147483647 elements"]),
])
def test_bad_input_shapes_fail_at_load(no_kernels, shape, words):
    with pytest.raises(PlanError) as info:
        co.load(conv_model(), input_shapes={"x": shape})
    for word in words:
        assert word in str(info.value)


def test_a_declared_input_dimension_past_int32_fails_at_load(no_kernels):
    with pytest.raises(PlanError, match="'x'.*2147483647"):
        co.load(conv_model(x_shape=(1, 3, 2**32, 8)))


def test_external_data_outside_the_model_folder_is_an_import_error(tmp_path, no_kernels):
    (tmp_path / "m").mkdir()
    np.zeros(108, np.float32).tofile(tmp_path / "outside.bin")
    weight = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3],
                              data_location=TensorProto.EXTERNAL)
    for key, value in {"location": "../outside.bin", "offset": "0", "length": "432"}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"])], [weight])
    path = tmp_path / "m" / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxImportError, match="outside.bin.*outside the directory"):
        co.load(str(path))


def test_a_model_that_does_not_fit_the_device_fails_at_load(monkeypatch, no_kernels):
    import dataclasses

    from clconv import runtime

    rt = runtime.current()
    small = dataclasses.replace(rt.profile, max_mem_alloc_size=512)
    monkeypatch.setattr(runtime, "_current", dataclasses.replace(rt, profile=small))
    with pytest.raises(PlanError, match="max_mem_alloc_size 512"):
        co.load(conv_model())


def test_an_npz_header_declaring_1e11_floats_is_a_state_dict_error(tmp_path):
    from clconv import nn
    from clconv.nn.state import StateDictError, load

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("weight.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)})
            member.write(np.zeros(4, np.float32).tobytes())
    with pytest.raises(StateDictError, match=r"weight.npy declares shape \(100000000000,\).*"
                                             r"holds 16 bytes"):
        load(nn.Linear(4, 2), path)


# -- fuzzing: whatever the bytes or attributes, only clconv's errors come out

def _small_model_bytes():
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["y"])]
    return _model(nodes, inits, rank_out=2).SerializeToString()


SMALL_MODEL = _small_model_bytes()


def _load_or_clconv_error(source, run=False):
    """Load `source`; a model that loads must also run (a bad attribute must not slip
    through the load to fail in a kernel launch)."""
    try:
        model = co.load(source)
    except CLCONV_ERRORS:
        return
    if run:
        feeds = {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)
                 for name, shape in model.input_shapes.items()}
        for out in model.run(feeds):
            assert out.size >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, len(SMALL_MODEL) - 1), st.integers(1, 255)),
                      max_size=6),
       cut=st.integers(0, len(SMALL_MODEL)))
def test_mutated_model_bytes_raise_only_clconv_errors(flips, cut):
    data = bytearray(SMALL_MODEL[:cut])
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    _load_or_clconv_error(bytes(data))


ODD_INTS = st.one_of(st.integers(-3, 5), st.sampled_from([0, 2**31 - 1, 2**31, 2**40, -2**31,
                                                           -2**63, 2**63 - 1]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(["Conv", "MaxPool", "AveragePool"]),
       attrs=st.fixed_dictionaries({}, optional={
           "kernel_shape": st.lists(ODD_INTS, min_size=1, max_size=3),
           "strides": st.lists(ODD_INTS, min_size=1, max_size=3),
           "pads": st.lists(ODD_INTS, min_size=1, max_size=5),
           "dilations": st.lists(ODD_INTS, min_size=1, max_size=3),
           "group": ODD_INTS,
           "ceil_mode": ODD_INTS,
           "auto_pad": st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "x"]),
       }))
def test_random_attribute_values_raise_only_clconv_errors(op, attrs):
    if op != "Conv":
        attrs.pop("group", None)
        attrs.setdefault("kernel_shape", [2, 2])
    else:
        attrs.pop("ceil_mode", None)
    inputs = ["x", "w"] if op == "Conv" else ["x"]
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    model = _model([helper.make_node(op, inputs, ["y"], **attrs)], [w] if op == "Conv" else [])
    _load_or_clconv_error(model, run=True)


ODD_FLOATS = st.one_of(st.floats(-3, 3), st.sampled_from([0.0, 1e30, -1e30]),
                       st.floats(allow_nan=True, allow_infinity=True))
OTHER_OPS = {
    "ConvTranspose": st.fixed_dictionaries({}, optional={
        "strides": st.lists(ODD_INTS, min_size=1, max_size=3),
        "pads": st.lists(ODD_INTS, min_size=1, max_size=5),
        "dilations": st.lists(ODD_INTS, min_size=1, max_size=3),
        "output_padding": st.lists(ODD_INTS, min_size=1, max_size=3),
        "group": ODD_INTS}),
    "LRN": st.fixed_dictionaries({"size": ODD_INTS}, optional={
        "alpha": ODD_FLOATS, "beta": ODD_FLOATS, "bias": ODD_FLOATS}),
    "Softmax": st.fixed_dictionaries({}, optional={"axis": ODD_INTS}),
    "Flatten": st.fixed_dictionaries({}, optional={"axis": ODD_INTS}),
    "Transpose": st.fixed_dictionaries({}, optional={
        "perm": st.lists(ODD_INTS, min_size=1, max_size=5)}),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), op=st.sampled_from(sorted(OTHER_OPS)))
def test_random_attributes_of_other_ops_raise_only_clconv_errors(data, op):
    attrs = data.draw(OTHER_OPS[op])
    inputs, inits = ["x"], []
    if op == "ConvTranspose":
        inputs.append("w")
        inits.append(numpy_helper.from_array(np.ones((3, 4, 3, 3), np.float32), "w"))
    rank_out = {"Flatten": 2}.get(op, 4)
    model = _model([helper.make_node(op, inputs, ["y"], **attrs)], inits, rank_out=rank_out)
    _load_or_clconv_error(model, run=True)
