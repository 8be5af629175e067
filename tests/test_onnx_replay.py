"""The prepared launch list (clconv/onnx/replay.py): from its second run on, a model
replays one recorded run. Replays must give what running step by step gives, bit for
bit, on every new input; outputs handed out must not change under later runs; a run
whose recording misses a write must never be replayed."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv  # noqa: E402
import clconv.functional as F  # noqa: E402
from clconv.arrays import on_device  # noqa: E402
import clconv.onnx as conx  # noqa: E402
from clconv.epilogue import RELU  # noqa: E402
from clconv.onnx.steps import CallStep  # noqa: E402


@pytest.fixture(scope="module")
def architectures():
    pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")
    from onnx_architectures import export  # noqa: PLC0415
    return export


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet"])
def test_replays_match_step_by_step_runs_bit_for_bit(name, architectures, rng):
    data = architectures(name, size=64)
    replayed, stepped = conx.load(data), conx.load(data)
    stepped._launches = False  # as CLCONV_REPLAY=0 does
    for run in range(4):
        x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
        if run == 3:
            x[0, 0, 5, :3] = (np.nan, np.inf, -np.inf)
        (got,), (want,) = replayed.run([x]), stepped.run([x])
        np.testing.assert_array_equal(got, want)
    assert replayed.replay_note.startswith("replays"), replayed.replay_note
    assert stepped.replay_note.startswith("runs step by step")


def _conv_relu_model(rng):
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 6, 5])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 6, 5])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_outputs_handed_out_do_not_change_under_later_runs(rng):
    model = conx.load(_conv_relu_model(rng))
    inputs = [rng.standard_normal((1, 3, 6, 5)).astype(np.float32) for _ in range(5)]
    kept = [model.run([x], as_numpy=False)[0] for x in inputs]  # recorded, then replayed
    assert model.replay_note.startswith("replays")
    for x, array in zip(inputs, kept):
        want = F.conv2d_activation(x, model.plan.values["w"], padding=1,
                                   activation=RELU).get()
        np.testing.assert_allclose(array.get(), want, rtol=1e-6, atol=1e-6)
    # other ops between runs get buffers of their own, never the launch list's
    other = F.conv2d(inputs[0], model.plan.values["w"], padding=1)
    np.testing.assert_allclose(model.run([inputs[1]])[0], kept[1].get(), rtol=0, atol=0)
    assert np.isfinite(other.get()).all()


def test_device_array_inputs_are_replayed_too(rng):
    model = conx.load(_conv_relu_model(rng))
    rt = clconv.current_runtime()
    for _ in range(4):
        x = rng.standard_normal((1, 3, 6, 5)).astype(np.float32)
        want = F.conv2d_relu(x, model.plan.values["w"], padding=1).get()
        np.testing.assert_allclose(model.run([on_device(rt, x)])[0], want, rtol=1e-6,
                                   atol=1e-6)
    assert model.replay_note.startswith("replays")


def test_a_write_the_recording_misses_keeps_the_model_step_by_step(rng):
    """A step that computes with pyopencl's own array arithmetic (not build.enqueue):
    the recording misses it, the verification replay differs, and the model runs step
    by step, with right results, and says why."""
    model = conx.load(_conv_relu_model(rng))
    last = model.plan.steps[-1]
    model.plan.steps.append(CallStep(nodes=["double"], op="Double", inputs=list(last.outputs),
                                     outputs=["y2"], output_shapes=list(last.output_shapes),
                                     call=lambda y: [y * 2]))
    model.plan.releases.append([])
    model.plan.outputs = ["y2"]
    model.plan.values["y2"] = model.plan.values[last.outputs[0]]
    for _ in range(4):
        x = rng.standard_normal((1, 3, 6, 5)).astype(np.float32)
        want = 2 * F.conv2d_relu(x, model.plan.values["w"], padding=1).get()
        np.testing.assert_allclose(model.run([x])[0], want, rtol=1e-6, atol=1e-6)
    assert model.replay_note.startswith("runs step by step: a replay"), model.replay_note


def test_replay_can_be_turned_off_and_profiling_runs_step_by_step(monkeypatch, rng):
    monkeypatch.setenv("CLCONV_REPLAY", "0")
    assert conx.load(_conv_relu_model(rng)).replay_note == "runs step by step (CLCONV_REPLAY=0)"
    monkeypatch.delenv("CLCONV_REPLAY")
    model = conx.load(_conv_relu_model(rng))
    x = rng.standard_normal((1, 3, 6, 5)).astype(np.float32)
    for _ in range(3):
        model.run([x])
    steps = []
    model.run([x], on_step=lambda step, seconds: steps.append(step.op))
    assert steps == ["Conv+Relu"]


def test_launch_times_time_every_entry_of_the_replayed_list(rng):
    """Two images: the Concat copies its inputs (a slice of two images is two runs), so
    the list holds kernels and copies; every entry gets its device time, in order."""
    from test_onnx_concat import dense_graph  # noqa: PLC0415
    proto = dense_graph(rng, batch=2)
    model, stepped = conx.load(proto), conx.load(proto)
    stepped._launches = False  # as CLCONV_REPLAY=0 does
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(RuntimeError, match="no launch list to time: it runs step by step"):
        model.launch_times([x])
    for _ in range(2):
        model.run([x])
    assert model.replay_note.startswith("replays")
    launches = model._launches
    times = model.launch_times([x], runs=3)
    want = [("buffer copy" if kernel is None else kernel.function_name)
            for kernel, *_ in launches.entries]
    assert list(times.labels) == want and "buffer copy" in want
    assert len(times.best) == len(want) and all(t >= 0 for t in times.best)
    assert sum(times.best) <= times.busy * (1 + 1e-6) and times.busy <= times.span * (1 + 1e-6)
    assert times.span <= times.wall
    rows = times.by_label()
    assert sum(count for _, _, count in rows) == len(want)
    assert [seconds for _, seconds, _ in rows] == sorted((s for _, s, _ in rows), reverse=True)
    # timing leaves the model replaying, with the step-by-step results
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    for got, want in zip(model.run([x]), stepped.run([x])):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="runs: expected at least 1, got 0"):
        model.launch_times([x], runs=0)


def test_launch_times_of_an_empty_list_say_so():
    from clconv.onnx.profiling import time_launches
    from clconv.runtime import current

    class Empty:  # a launch list with no entry (a model of views only)
        runtime = current()

        def enqueue(self, feeds, queue):
            return []

    with pytest.raises(ValueError, match="launches: the list holds no launch to time"):
        time_launches(Empty(), {}, 2)


def test_the_recycling_pool_hands_out_the_block_freed_last_that_holds_the_array():
    """Any freed block at least as large, the most recent first (not only one of the
    same size class); a block some view still holds is not handed out."""
    from clconv.arrays import allocate, allocations_from
    from clconv.onnx.replay import RecyclingPool
    from clconv.runtime import current

    rt = current()
    pool = RecyclingPool(rt.context)
    with allocations_from(pool):
        big, small = allocate(rt, (1000,)), allocate(rt, (100,))
        big_block, small_block = big.base_data.int_ptr, small.base_data.int_ptr
        del big
        smaller = allocate(rt, (300,))  # the 1000-float block, freed last
        assert smaller.base_data.int_ptr == big_block
        del small
        larger = allocate(rt, (2000,))  # held by none free: a block of its own
        assert larger.base_data.int_ptr not in (big_block, small_block)
        view = smaller.reshape(10, 30)
        del smaller
        again = allocate(rt, (50,))  # the 100-float block: the view holds the other
        assert again.base_data.int_ptr == small_block
        assert view.base_data.int_ptr == big_block
    assert len(pool.blocks) == 3


def _chain_model(rng, widths, size=12):
    """1x1 Conv + Relu layers of the given output channels, one after another (1x1: no
    zero-bordered outputs, which live in the model's own buffers, onnx/borders.py)."""
    inits, nodes, channels, name = [], [], 3, "x"
    for k, width in enumerate(widths):
        inits.append(numpy_helper.from_array(
            rng.standard_normal((width, channels, 1, 1)).astype(np.float32), f"w{k}"))
        nodes += [helper.make_node("Conv", [name, f"w{k}"], [f"c{k}"]),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"])]
        channels, name = width, f"r{k}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, size, size])], [helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [1, channels, size, size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_replayed_run_keeps_few_buffers_whatever_its_tensor_sizes(rng):
    """Ten layers whose outputs alternate between three sizes: the recorded run reuses
    freed buffers across sizes, so it keeps a few, not one per tensor, and the replay
    still gives the step-by-step result bit for bit."""
    proto = _chain_model(rng, [8, 32, 16] * 3 + [8])
    replayed, stepped = conx.load(proto), conx.load(proto)
    stepped._launches = False  # as CLCONV_REPLAY=0 does
    for _ in range(3):
        x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
        (got,), (want,) = replayed.run([x]), stepped.run([x])
        np.testing.assert_array_equal(got, want)
    launches = replayed._launches
    assert replayed.replay_note.startswith("replays")
    largest = 32 * 12 * 12 * 4  # a 32-channel output
    # the input's, and four the outputs take turns in: the 8-, 32- and 16-channel
    # outputs of the first layers find no free block large enough yet (one buffer
    # per tensor: 11)
    assert launches.scratch_count <= 5, launches.scratch_count
    assert launches.scratch_bytes <= 3 * largest, launches.scratch_bytes
