"""clconv run / inspect / bench-model on small ONNX models built with onnx.helper."""
import re

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'clconv[onnx]'")
Image = pytest.importorskip("PIL.Image", reason="Pillow not installed: pip install 'clconv[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from clconv.cli import main  # noqa: E402


def _classifier(path, classes=4, size=16, softmax=True):
    """Conv -> ReLU -> GlobalAveragePool -> Flatten -> Gemm (-> Softmax)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["l" if softmax else "y"], transB=1)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["l"], ["y"], axis=1))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def test_run_prints_top_k_with_labels(tmp_path, capsys):
    model = _classifier(tmp_path / "m.onnx")
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 30, 3), np.uint8)).save(image)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\nfish\n")
    assert main(["run", str(model), str(image), "--top", "3", "--labels", str(labels),
                 "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert str(image) in out and out.count("p=") == 3
    assert sum(name in out for name in ("cat", "dog", "bird", "fish")) == 3


def test_run_random_bench_reports_a_median(tmp_path, capsys):
    model = _classifier(tmp_path / "m.onnx")
    assert main(["run", str(model), "--random", "--bench", "--runs", "2", "--warmup", "1",
                 "--size", "16"]) == 0
    assert "median" in capsys.readouterr().out


def test_inspect_lists_steps_variants_and_support(tmp_path, capsys):
    model = _classifier(tmp_path / "m.onnx")
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "Conv+Relu" in out and "relu (fused)" in out and "all 6 nodes supported" in out
    assert "1x8x16x16" in out


def test_inspect_and_run_report_unsupported_models_with_exit_3(tmp_path, capsys):
    graph = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["y"], name="erf1")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "bad.onnx"
    path.write_bytes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert main(["inspect", str(path)]) == 3
    assert "'erf1': Erf" in capsys.readouterr().out
    assert main(["run", str(path), "--random"]) == 3
    assert "Erf" in capsys.readouterr().err
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(_classifier(tmp_path / "m.onnx").read_bytes()[:200])
    assert main(["run", str(truncated), "--random"]) == 3
    assert "truncated" in capsys.readouterr().err


def test_bench_model_compares_with_onnx_runtime(tmp_path, capsys):
    model = _classifier(tmp_path / "m.onnx")
    assert main(["bench-model", str(model), "--runs", "2", "--warmup", "1", "--profile",
                 "--no-tinygrad"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "ratio" in out and "Conv+Relu" in out
    assert "alternating run by run" in out and "best ms" in out and "median ms" in out
    assert "ncnn" in out  # measured, or why not
    assert "execution    clconv replays " in out  # a warm-up run, then one recorded
    # --profile's device times of a replayed run: a row per kernel
    assert "clconv device time per kernel (a replayed run on a profiling queue" in out
    assert re.search(r"launches busy [\d.]+ ms, first start to last end [\d.]+ ms", out)
    assert re.search(r"\n  gemm_tiled +[\d.]+ ms +\d+ launch\(es\)", out)


def test_bench_model_times_ncnn_when_installed(tmp_path, capsys):
    pytest.importorskip("ncnn", reason="ncnn not installed (pip install ncnn pnnx)")
    pytest.importorskip("pnnx", reason="pnnx not installed (pip install ncnn pnnx)")
    # no Softmax: the output compared is the model's first, the one ncnn returns
    model = _classifier(tmp_path / "m.onnx", softmax=False)
    assert main(["bench-model", str(model), "--runs", "2", "--warmup", "1",
                 "--batch", "2", "--no-tinygrad"]) == 0
    out = capsys.readouterr().out
    assert "clconv, onnxruntime, ncnn alternating" in out
    assert "ncnn / onnxruntime" in out and "ncnn         not measured" not in out
    ncnn_line = next(line for line in out.splitlines() if "(ncnn against" in line)
    assert float(ncnn_line.split()[4]) < 1e-4, ncnn_line


def test_bench_model_times_tinygrad_when_installed(tmp_path, capsys):
    pytest.importorskip("tinygrad", reason="tinygrad not installed (pip install tinygrad)")
    model = _classifier(tmp_path / "m.onnx")
    assert main(["bench-model", str(model), "--runs", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"clconv, onnxruntime, (ncnn, )?tinygrad alternating", out), out
    assert "tinygrad / onnxruntime" in out
    tinygrad_line = next(line for line in out.splitlines() if "(tinygrad against" in line)
    assert float(tinygrad_line.split()[4]) < 1e-4, tinygrad_line


def _fixed_batch(path):
    """The classifier with its batch dim fixed at 1 in the graph's input and output."""
    import onnx
    model = onnx.load(str(_classifier(path)))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("make", [_classifier, _fixed_batch])
def test_bench_model_batch_reports_images_per_second(tmp_path, capsys, make):
    model = make(tmp_path / "m.onnx")
    assert main(["bench-model", str(model), "--runs", "2", "--warmup", "0",
                 "--batch", "3", "--no-tinygrad"]) == 0
    out = capsys.readouterr().out
    assert "(3, 3, 16, 16)" in out and "images/s" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    best, median, per_second = (float(v) for v in lines["clconv"][1:4])
    # images/s = 3 / median, within the rounding of the printed median (0.1 ms)
    low, high = 3 / ((median + 0.05) / 1e3), 3 / (max(median - 0.05, 1e-9) / 1e3)
    assert low - 0.05 <= per_second <= high + 0.05, (per_second, median)
    difference = float(out.split("max relative output difference")[1].split()[0])
    assert difference < 1e-4


def test_bench_model_batch_on_a_model_that_reshapes_to_batch_1_says_why(tmp_path, capsys):
    """The model-zoo nets flatten with a Reshape to [1, C]: --batch cannot run them."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 4], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, shape])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert main(["bench-model", str(path), "--batch", "2", "--no-tinygrad"]) == 3
    err = capsys.readouterr().err
    assert "cannot reshape (2, 4, 1, 1) (8 elements) to [1, 4]" in err, err
    assert "with --batch 2: a model that fixes its batch elsewhere" in err


def test_run_rejects_a_labels_file_shorter_than_the_classes(tmp_path, capsys):
    model = _classifier(tmp_path / "m.onnx", classes=4)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    assert main(["run", str(model), "--random", "--size", "16", "--labels", str(labels)]) == 3
    err = capsys.readouterr().err
    assert "--labels" in err and "2 lines" in err and "4 classes" in err


@pytest.mark.parametrize("extra, message", [
    (["--size", "16", "16", "16"], "--size: expected 1 or 2 values"),
    (["--size", "16", "--mean", "0.1", "0.2"], "--mean: expected 1 or 3 values"),
    (["--size", "16", "--std", "1", "1"], "--std: expected 1 or 3 values"),
])
def test_run_rejects_option_counts_with_exit_2(tmp_path, capsys, extra, message):
    model = _classifier(tmp_path / "m.onnx")
    assert main(["run", str(model), "--random", *extra]) == 2
    assert message in capsys.readouterr().err


def test_timed_runs_alternate_between_the_sides():
    from clconv.commands.progress import time_alternating

    order = []
    times = time_alternating({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                             runs=3, warmup=1, pause_s=0)
    assert order == ["a", "b"] * 4  # one warm-up turn, then three timed ones
    assert {name: len(seconds) for name, seconds in times.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_alternating({"a": lambda: None}, runs=0, warmup=0)


def test_bench_model_gives_a_constant_weight_model_random_weights(tmp_path, capsys):
    """The model-zoo test nets hold one value per weight tensor (any two implementations
    agree on them): bench-model gives them seeded random weights and says so."""
    import onnx

    from clconv.onnx.random_weights import has_constant_weights, randomize_weights

    path = _classifier(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert not has_constant_weights(model)
    for tensor in model.graph.initializer:
        value = np.full(numpy_helper.to_array(tensor).shape, 0.02, np.float32)
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    assert has_constant_weights(model)
    constant = tmp_path / "zoo.onnx"
    constant.write_bytes(model.SerializeToString())
    assert main(["bench-model", str(constant), "--runs", "1", "--warmup", "0",
                 "--no-tinygrad"]) == 0
    out = capsys.readouterr().out
    assert "2 layer tensors given seeded random values (seed 0): every weight tensor" in out
    # the classifier ends in a Softmax: its input ('l') is what is compared
    assert "compared     the input of the final Softmax ('l')" in out
    assert "DISAGREES" not in out
    assert randomize_weights(model, seed=3) == 2
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not has_constant_weights(model)
    assert weights["w"].std() > 0.05 and len(np.unique(weights["fc"])) == weights["fc"].size


def test_weights_filled_by_constant_of_shape_count_as_constant(tmp_path):
    """The light model-zoo files store each weight's shape only, filled by ConstantOfShape."""
    import onnx

    from clconv.onnx.random_weights import has_constant_weights, randomize_weights

    model = onnx.load(str(_classifier(tmp_path / "m.onnx")))
    for tensor in list(model.graph.initializer):
        shape = numpy_helper.from_array(
            np.array(numpy_helper.to_array(tensor).shape, np.int64), tensor.name + "__SHAPE")
        model.graph.initializer.remove(tensor)
        model.graph.initializer.append(shape)
        model.graph.node.insert(0, helper.make_node(
            "ConstantOfShape", [shape.name], [tensor.name],
            value=numpy_helper.from_array(np.array([0.02], np.float32))))
    assert has_constant_weights(model)
    assert not any(n.op_type == "ConstantOfShape" for n in model.graph.node)
    assert not any(t.name.endswith("__SHAPE") for t in model.graph.initializer)
    assert randomize_weights(model, seed=0) == 2 and not has_constant_weights(model)


def test_random_weights_keep_batch_norm_statistics_valid():
    from clconv.onnx.random_weights import randomize_weights

    stats = [numpy_helper.from_array(np.ones(4, np.float32), n)
             for n in ("scale", "bias", "mean", "var")]
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["b"]),
         helper.make_node("Reshape", ["b", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], stats + [shape])
    model = helper.make_model(graph)
    assert randomize_weights(model, seed=1) == 4  # the int64 shape is left alone
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert values["var"].min() > 0 and values["scale"].min() > 0
    np.testing.assert_array_equal(values["shape"], [1, -1])


def test_the_light_model_zoo_nets_get_valid_random_weights():
    """The ONNX wheel's light SqueezeNet (IR 3: initializers are graph inputs too)."""
    import os

    import onnx

    from clconv.onnx.random_weights import has_constant_weights, randomize_weights

    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        "light_squeezenet.onnx")
    if not os.path.exists(path):
        pytest.skip(f"{path} is not in this onnx wheel")
    model = onnx.load(path)
    assert has_constant_weights(model)
    assert randomize_weights(model, seed=0) == 52
    onnx.checker.check_model(model)
    assert not has_constant_weights(model)
