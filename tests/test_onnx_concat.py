"""Concat without copies (clconv/onnx/placement.py): producers write into their slice
of the concatenation, nested Concats share one buffer, and every case the placement
must leave alone (a returned tensor, a tensor two Concats read, slices that are not
contiguous or not aligned, a device without sub-buffers) still gives ONNX Runtime's
numbers, run after run."""
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
from clconv.arrays import image_stride  # noqa: E402
from clconv.build import sub_buffer_alignment  # noqa: E402
import clconv.onnx.model  # noqa: E402
from clconv.onnx.placement import place_concat_inputs  # noqa: E402
from clconv.onnx.steps import ConcatStep  # noqa: E402


def dense_graph(rng, batch=1, size=8):
    """cat1 = [relu(conv a), maxpool b, conv c]; cat2 = [cat1, conv(relu(cat1)) e] (a
    dense block); outputs: cat3 = [a, e] (returned, and a and e already lie elsewhere)
    and an average pool of cat2."""
    def weight(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [weight("w1", (8, 3, 3, 3)), weight("w2", (5, 3, 1, 1)), weight("w3", (8, 16, 1, 1))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a0"], ["a"]),
             helper.make_node("MaxPool", ["x"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["c"]),
             helper.make_node("Concat", ["a", "b", "c"], ["cat1"], axis=1),
             helper.make_node("Relu", ["cat1"], ["d"]),
             helper.make_node("Conv", ["d", "w3"], ["e"]),
             helper.make_node("Concat", ["cat1", "e"], ["cat2"], axis=1),
             helper.make_node("Concat", ["a", "e"], ["cat3"], axis=1),
             helper.make_node("AveragePool", ["cat2"], ["f"], kernel_shape=[2, 2],
                              strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       [batch, 3, size, size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "c", "h", "w"])
         for n in ("cat3", "f")],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def check_against_onnx_runtime(model, proto, rng, runs=2):
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for _ in range(runs):  # the second run reuses the concatenation buffers
        x = rng.standard_normal(model.input_shapes["x"]).astype(np.float32)
        for got, want in zip(model.run({"x": x}), session.run(None, {"x": x})):
            # relative to the largest output: sums of many terms differ in their order
            np.testing.assert_allclose(got, want, rtol=1e-5,
                                       atol=1e-5 * max(1.0, float(np.abs(want).max())))


def concat_steps(model):
    return {step.outputs[0]: step for step in model.plan.steps if isinstance(step, ConcatStep)}


def aligned_side():
    """An image side whose channel planes (side² floats) are whole multiples of the
    device's sub-buffer alignment, so every channel slice may be a sub-buffer (POCL
    asks for 128 bytes, so 8; NVIDIA for 512, so 16)."""
    align_bytes = sub_buffer_alignment(clconv.current_runtime().context.devices[0])
    side = next((s for s in (8, 16, 32) if s * s * 4 % align_bytes == 0), None)
    if side is None:
        pytest.skip(f"sub-buffers must start at multiples of {align_bytes} bytes here")
    return side


def test_producers_write_in_place_and_nested_concats_share_one_buffer(rng):
    side = aligned_side()
    proto = dense_graph(rng, size=side)
    model = conx.load(proto)
    concats, slots, plane = concat_steps(model), model.plan.slots, side * side
    assert concats["cat1"].in_place == (0, 1, 2)
    assert concats["cat2"].in_place == (0, 1)
    assert concats["cat3"].in_place == ()  # returned: its buffer must outlive the run
    assert {name: (s.root, s.offset) for name, s in slots.items()} == {
        "cat2": ("cat2", 0), "cat1": ("cat2", 0), "a": ("cat2", 0), "b": ("cat2", 8 * plane),
        "c": ("cat2", 11 * plane), "e": ("cat2", 16 * plane)}
    # nothing in a concatenation is overwritten in place, though relu(cat1) could be
    assert all(step.reuse_input is None for step in model.plan.steps)
    check_against_onnx_runtime(model, proto, rng)


def test_device_arrays_returned_are_not_the_models_buffers(rng):
    proto = dense_graph(rng)
    model = conx.load(proto)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    first = [array.get() for array in model.run({"x": x}, as_numpy=False)]
    kept = model.run({"x": x}, as_numpy=False)
    model.run({"x": -x})
    for before, after in zip(first, kept):
        np.testing.assert_array_equal(after.get(), before)


def test_slices_not_aligned_are_copied(rng):
    """A 3x3 image: slices start at multiples of 36 bytes, and sub-buffers must start at
    multiples of the device's alignment (128 bytes on POCL)."""
    align_bytes = sub_buffer_alignment(clconv.current_runtime().context.devices[0])
    proto = dense_graph(rng, 1, 3)
    model = conx.load(proto)
    assert all(s.offset * 4 % align_bytes == 0 for s in model.plan.slots.values())
    assert concat_steps(model)["cat1"].in_place != (0, 1, 2)
    check_against_onnx_runtime(model, proto, rng)


def test_several_images_write_their_slices_as_strided_images(rng):
    """Two images: a channel slice is a run per image. The convolutions write theirs in
    place; the max pool (no strided output) and cat1 (read by a Relu, which takes no
    strided input) are copied."""
    side = aligned_side()
    proto = dense_graph(rng, batch=2, size=side)
    model = conx.load(proto)
    concats, slots, plane = concat_steps(model), model.plan.slots, side * side
    assert {name: step.in_place for name, step in concats.items()} == {
        "cat1": (0, 2), "cat2": (1,), "cat3": ()}
    assert {name: (s.root, s.offset) for name, s in slots.items()} == {
        "cat1": ("cat1", 0), "a": ("cat1", 0), "c": ("cat1", 11 * plane),
        "cat2": ("cat2", 0), "e": ("cat2", 16 * plane)}
    arrays = concatenation_arrays(model)
    assert image_stride(arrays["a"]) == 16 * plane and image_stride(arrays["e"]) == 24 * plane
    assert image_stride(arrays["cat1"]) is None  # a root: contiguous
    check_against_onnx_runtime(model, proto, rng, runs=3)


def concatenation_arrays(model) -> dict:
    """Every in-place tensor's array, as a run opens them (ConcatArena.open), each group
    over a buffer of its own."""
    arena, context = model._concatenations, model.runtime.context
    arrays = {}
    for _, _, first, _ in arena.groups:
        arrays.update(arena.open(first, lambda nbytes: cl.Buffer(
            context, cl.mem_flags.READ_WRITE, nbytes)))
    return arrays


def fire_graph(rng, batch, channels=6, size=8):
    """A SqueezeNet fire module and a dense block after it:
    squeeze = relu(conv1x1 x); fire = [relu(conv1x1 squeeze), relu(conv3x3 squeeze)];
    dense = [fire, conv1x1(relu(batchnorm(fire)))]; output: an average pool of dense."""
    def const(name, shape, low=None):
        values = (rng.uniform(low, 2.0, shape) if low is not None
                  else rng.standard_normal(shape)).astype(np.float32)
        return numpy_helper.from_array(values, name)

    inits = [const("ws", (4, channels, 1, 1)), const("we1", (8, 4, 1, 1)),
             const("we3", (8, 4, 3, 3)), const("be3", (8,)), const("wd", (4, 16, 1, 1)),
             const("gamma", (16,)), const("beta", (16,)), const("mean", (16,)),
             const("var", (16,), low=0.5)]
    nodes = [helper.make_node("Conv", ["x", "ws"], ["s0"]),
             helper.make_node("Relu", ["s0"], ["s"]),
             helper.make_node("Conv", ["s", "we1"], ["e1_0"]),
             helper.make_node("Relu", ["e1_0"], ["e1"]),
             helper.make_node("Conv", ["s", "we3", "be3"], ["e3_0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e3_0"], ["e3"]),
             helper.make_node("Concat", ["e1", "e3"], ["fire"], axis=1),
             helper.make_node("BatchNormalization", ["fire", "gamma", "beta", "mean", "var"],
                              ["bn"]),
             helper.make_node("Relu", ["bn"], ["bnr"]),
             helper.make_node("Conv", ["bnr", "wd"], ["d"]),
             helper.make_node("Concat", ["fire", "d"], ["dense"], axis=1),
             helper.make_node("AveragePool", ["dense"], ["y"], kernel_shape=[3, 3],
                              strides=[3, 3])]
    graph = helper.make_graph(
        nodes, "fire", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      [batch, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("variant", [None, "im2col", "shifted", "winograd", "direct"])
def test_fire_modules_and_dense_blocks_of_several_images_copy_nothing(variant, rng):
    """Three images. Every convolution variant writes its slice (the GEMM ones in place,
    the others through a copy of their own), and the batch-normalised 1x1 convolution
    reads the fire's output, itself a slice of the dense block, as strided images."""
    proto = fire_graph(rng, batch=3)
    with clconv.algos.force(variant):
        model = conx.load(proto)
        concats = concat_steps(model)
        assert concats["fire"].in_place == (0, 1) and concats["dense"].in_place == (0, 1)
        assert image_stride(concatenation_arrays(model)["fire"]) == 20 * 64
        check_against_onnx_runtime(model, proto, rng, runs=3)  # recorded, then replayed
        assert model.replay_note.startswith("replays")
        step = next(s for s in model.plan.steps if s.outputs == ["d"])
        assert step.input_affine is not None  # the batch norm, fused into the GEMM's loads


def test_a_device_without_sub_buffers_gets_the_copying_concat(monkeypatch, rng):
    def no_sub_buffers(*args):
        raise cl.RuntimeError("clCreateSubBuffer failed: INVALID_OPERATION (test)")

    monkeypatch.setattr(clconv.onnx.model, "ConcatArena", no_sub_buffers)
    proto = dense_graph(rng)
    model = conx.load(proto)
    assert not model.plan.slots and model.plan.arena_bytes == 0
    assert all(step.in_place == () for step in concat_steps(model).values())
    check_against_onnx_runtime(model, proto, rng)


def test_placement_respects_the_alignment_it_is_given(rng):
    plan = conx.load(dense_graph(rng)).plan
    slots = place_concat_inputs(plan, align_bytes=1024)
    assert {name: s.offset for name, s in slots.items() if s.root != name} == {
        "cat1": 0, "a": 0, "b": 8 * 64, "e": 16 * 64}  # c starts at 2816 bytes


def test_concat_in_place_needs_the_output_it_names(rng):
    from clconv.ops import layout

    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"in_place: \(0,\) names inputs already in `out`, "
                                         "but out is None"):
        layout.concat([x, x], 1, in_place=(0,))


def test_concatenations_whose_lives_do_not_overlap_share_a_buffer():
    from clconv.onnx.placement import share_buffers

    lifetimes = {"a": (0, 2), "c": (1, 4), "b": (3, 5), "d": (6, 7)}
    sizes = {"a": 10, "b": 30, "c": 20, "d": 5}
    # b starts after a's last read (2 < 3); d after both a/b's and c's, and takes the
    # buffer freed last (b's, at 5), not c's (at 4)
    assert share_buffers(lifetimes, sizes) == [(["a", "b", "d"], 30), (["c"], 20)]
    # a buffer is free only after the last step that reads it: sharing needs last < first
    assert share_buffers({"a": (0, 3), "b": (3, 4)}, {"a": 1, "b": 1}) == [
        (["a"], 1), (["b"], 1)]


def fire_chain_graph(rng, modules=3, keep_first=False, channels=8, size=6, stem=False):
    """SqueezeNet fire modules one after another, each read only by the next; with
    keep_first, the first module's output is also read at the end (a second output),
    so its buffer lives throughout and may be shared with none. stem: first layers
    before them, a 3x3 convolution of twice the size and a pool (an average pool: a max
    pool would run inside the convolution, plan.fuse_max_pools, and the convolution's
    output would be no tensor of the plan)."""
    def weight(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits, nodes, name, c = [], [], "x", channels
    if stem:
        # scaled to keep the outputs' size: ONNX Runtime's sums may differ in their order
        stem_weight = rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(channels * 9)
        inits.append(numpy_helper.from_array(stem_weight.astype(np.float32), "stem"))
        nodes += [helper.make_node("Conv", ["x", "stem"], ["stem_conv"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["stem_conv"], ["stem_relu"]),
                  helper.make_node("AveragePool", ["stem_relu"], ["pooled"],
                                   kernel_shape=[2, 2], strides=[2, 2])]
        name = "pooled"
    for k in range(modules):
        inits += [weight(f"s{k}", (4, c, 1, 1)), weight(f"e1_{k}", (8, 4, 1, 1)),
                  weight(f"e3_{k}", (8, 4, 3, 3))]
        nodes += [helper.make_node("Conv", [name, f"s{k}"], [f"sq{k}"]),
                  helper.make_node("Relu", [f"sq{k}"], [f"sr{k}"]),
                  helper.make_node("Conv", [f"sr{k}", f"e1_{k}"], [f"a{k}"]),
                  helper.make_node("Conv", [f"sr{k}", f"e3_{k}"], [f"b{k}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Concat", [f"a{k}", f"b{k}"], [f"fire{k}"], axis=1)]
        name, c = f"fire{k}", 16
    nodes.append(helper.make_node("GlobalAveragePool", [name], ["y"]))
    outputs = ["y"]
    if keep_first:
        nodes.append(helper.make_node("GlobalAveragePool", ["fire0"], ["z"]))
        outputs.append("z")
    graph = helper.make_graph(
        nodes, "fires", [helper.make_tensor_value_info(
            "x", TensorProto.FLOAT, [1, channels] + [size * (2 if stem else 1)] * 2)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "c", "h", "w"])
         for n in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("keep_first", [False, True])
def test_fire_modules_share_one_concatenation_buffer_only_where_their_lives_allow(
        keep_first, rng):
    proto = fire_chain_graph(rng, keep_first=keep_first)
    model = conx.load(proto)
    group = {root: index for index, (roots, *_) in enumerate(model._concatenations.groups)
             for root in roots}
    buffer = {name: group[name] for name in ("fire0", "fire1", "fire2")}
    one = 16 * 6 * 6 * 4
    if keep_first:  # fire0 is read after the others are written
        assert buffer["fire0"] not in (buffer["fire1"], buffer["fire2"])
        assert buffer["fire1"] == buffer["fire2"] and model.plan.arena_bytes == 2 * one
    else:
        assert len(set(buffer.values())) == 1 and model.plan.arena_bytes == one
    check_against_onnx_runtime(model, proto, rng, runs=3)  # recorded, then replayed
    assert model.replay_note.startswith("replays")


def test_a_run_writes_a_concatenation_into_a_block_a_step_just_let_go_of(rng, monkeypatch):
    """The recorded run takes the fire modules' shared buffer from its pool as the first
    module starts, so it is the block of a tensor that died just before (the stem's,
    read by its pool), still in the caches, not memory of the model's own last
    written a run ago; and gives it back after the last module's reader. Replays of
    that run still give ONNX Runtime's numbers, run after run."""
    from clconv.onnx import placement, replay

    handed = []  # (pointer, bytes) of each block the recording pool hands out, in order
    pool_call = replay.RecyclingPool.__call__

    def logged_pool_call(self, nbytes):
        handle = pool_call(self, nbytes)
        handed.append((handle.int_ptr, nbytes))
        return handle

    opened = []  # (pointer, handings of the pool so far) of each concatenation buffer
    arena_open = placement.ConcatArena.open

    def logged_open(self, step, allocate):
        def logged_allocate(nbytes):
            block = allocate(nbytes)
            opened.append((block.int_ptr, len(handed)))
            return block
        return arena_open(self, step, logged_allocate)

    monkeypatch.setattr(replay.RecyclingPool, "__call__", logged_pool_call)
    monkeypatch.setattr(placement.ConcatArena, "open", logged_open)
    proto = fire_chain_graph(rng, stem=True)
    model = conx.load(proto)
    assert len(model._concatenations.groups) == 1  # the three modules share one buffer
    check_against_onnx_runtime(model, proto, rng, runs=4)  # steps, recorded, replayed
    assert model.replay_note.startswith("replays")
    pool_pointers = [pointer for pointer, _ in handed]
    recorded = [(pointer, count) for pointer, count in opened if pointer in pool_pointers]
    assert recorded, "the recorded run took no concatenation buffer from its pool"
    # the pool handed that block out before, to a tensor of the stem (the last handing
    # before the open is the concatenation's own)
    pointer, count = recorded[0]
    assert pool_pointers[count - 1] == pointer and pointer in pool_pointers[:count - 1]
