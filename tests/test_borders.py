"""Zero-bordered tensors (clconv/onnx/borders.py, arrays.bordered_planes): a convolution
writes its output inside zero borders, every variant in place or through a copy, with
the borders left zero; a convolution whose padding is the border reads the planes as
they lie; ONNX plans place such tensors where every reader is a shifted convolution,
share their buffers, skip the readers' padding pass and still give ONNX Runtime's
numbers, run after run."""
import numpy as np
import pyopencl as cl
import pytest

from clconv import algos
from clconv import functional as F
from clconv.arrays import border, bordered_planes, image_stride, on_device, padded_planes
from clconv.epilogue import RELU
from clconv.ops.conv import ConstantWeightConv2d
from clconv.runtime import current


def _zeroed_planes(rt, shape, pad, spare_planes=0):
    """bordered_planes over a zeroed buffer (with spare planes after them), and it."""
    n, c, h, w = shape
    floats = (n * c + spare_planes) * (h + 2 * pad) * (w + 2 * pad)
    buffer = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, floats * 4)
    cl.enqueue_fill_buffer(rt.queue, buffer, np.float32(0), 0, floats * 4)
    return bordered_planes(rt.queue, buffer, shape, pad), buffer


def _host(rt, buffer, shape, pad):
    n, c, h, w = shape
    host = np.empty(n * c * (h + 2 * pad) * (w + 2 * pad), np.float32)
    cl.enqueue_copy(rt.queue, host, buffer)
    return host.reshape(n, c, h + 2 * pad, w + 2 * pad)


def test_bordered_planes_are_recognised_and_nothing_else():
    rt = current()
    planes, _ = _zeroed_planes(rt, (2, 3, 5, 4), 2)
    assert border(planes) == 2
    assert planes.shape == (2, 3, 5, 4) and image_stride(planes) is None
    padded = padded_planes(planes)
    assert padded.shape == (2, 3, 9, 8) and padded.offset == 0 and border(padded) is None
    plain = on_device(rt, np.zeros((2, 3, 5, 4), np.float32))
    assert border(plain) is None and border(np.zeros((2, 3, 5, 4), np.float32)) is None
    assert border(plain[:, 1:]) is None  # a channel slice: offset, no border
    with pytest.raises(ValueError, match="padded_planes: expected zero-bordered planes"):
        padded_planes(plain)


def test_copy_planes_takes_views_at_an_offset_and_refuses_other_strides(rng):
    """A C-contiguous view that starts inside its buffer (an image of a batch) is copied
    from where it starts; a view with gaps (a channel slice) is refused, not misread."""
    from clconv.ops.layout import copy_planes
    rt = current()
    host = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    images = on_device(rt, host)
    planes, buffer = _zeroed_planes(rt, (1, 2, 5, 4), 1)
    copy_planes(rt, planes, images[2:])  # offset: two images in
    got = _host(rt, buffer, (1, 2, 5, 4), 1)
    np.testing.assert_array_equal(got[:, :, 1:-1, 1:-1], host[2:])
    assert not got[:, :, [0, -1]].any() and not got[:, :, :, [0, -1]].any()
    back = on_device(rt, np.zeros((1, 2, 5, 4), np.float32))
    copy_planes(rt, back, planes)
    np.testing.assert_array_equal(back.get(), host[2:])
    with pytest.raises(ValueError, match=r"planes: expected a C-contiguous array or "
                                         r"zero-bordered planes, got strides"):
        copy_planes(rt, _zeroed_planes(rt, (3, 1, 5, 4), 1)[0], images[:, 1:])


def test_the_gemm_refuses_output_rows_it_cannot_store():
    from clconv.algos.gemm import output_planes
    from clconv.algos.tiled_gemm import _pixel_store
    from clconv.geometry import conv_geometry
    geo = conv_geometry((2, 4, 6, 6), (8, 4, 1, 1), 1, 0, 1, 1)
    assert output_planes(geo) == (36, None)
    assert output_planes(geo, out_border=1) == (64, (8, 9))
    with pytest.raises(ValueError, match="out_border: an output of strided images has no "
                                         "borders"):
        output_planes(geo, out_image=300, out_border=1)
    assert _pixel_store((3, 1, 8, 6), (10, 11)) == (1, 8, 6, 10, 11)
    with pytest.raises(ValueError, match="out_rows: only a shifted GEMM stores output rows"):
        _pixel_store(None, (10, 11))


@pytest.mark.parametrize("variant", ["gemm1x1", "im2col", "shifted", "winograd", "direct"])
def test_a_prepared_layer_writes_inside_zero_borders(variant, rng):
    """Every variant: the GEMM ones in place (gemm.cl's out_pitch/out_base), the others
    through a copy; the borders, and the planes after the tensor, stay zero."""
    rt = current()
    ks = 1 if variant == "gemm1x1" else 3
    x = rng.standard_normal((2, 6, 9, 7)).astype(np.float32)
    w = rng.standard_normal((5, 6, ks, ks)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    out, buffer = _zeroed_planes(rt, (2, 5, 9, 7), 2, spare_planes=3)
    with algos.force(variant):
        layer = ConstantWeightConv2d(x.shape, w, b, padding=ks // 2, activation=RELU)
        assert layer._forward.variant.name == variant
        assert layer._forward.writes_bordered_output() == (variant in ("gemm1x1", "im2col",
                                                                       "shifted"))
        for _ in range(2):
            assert layer(x, out=out) is out
    want = F.conv2d_activation(x, w, b, padding=ks // 2, activation=RELU).get()
    host = _host(rt, buffer, (2 * 5 + 3, 1, 9, 7), 2).reshape(-1, 13, 11)
    np.testing.assert_allclose(host[:10, 2:-2, 2:-2].reshape(want.shape), want, rtol=1e-5,
                               atol=1e-5)
    inside = np.zeros(host.shape, bool)
    inside[:10, 2:-2, 2:-2] = True
    assert (host[~inside] == 0).all()


@pytest.mark.parametrize("variant,stride,dilation", [
    ("shifted", 1, 1), ("shifted", 1, 2), ("im2col", 2, 1), ("winograd", 1, 1),
    ("direct", 2, 1)])
def test_a_prepared_layer_reads_zero_bordered_input(variant, stride, dilation, rng):
    """A border equal to the padding is read in place, as the convolution without
    padding over the bordered planes; any other border through a contiguous copy."""
    rt = current()
    x = rng.standard_normal((2, 4, 10, 9)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    pad = dilation
    want = F.conv2d_activation(x, w, b, stride, pad, dilation, activation=RELU).get()
    with algos.force(variant):
        layer = ConstantWeightConv2d(x.shape, w, b, stride, pad, dilation, activation=RELU)
        assert layer._forward.variant.name == variant
        for border_width in (pad, pad + 1):
            planes, _ = _zeroed_planes(rt, x.shape, border_width)
            padded_planes(planes).set(np.pad(x, ((0, 0), (0, 0)) + ((border_width,) * 2,) * 2))
            assert (layer.reads_border(border_width) is not None) == (border_width == pad)
            np.testing.assert_allclose(layer(planes).get(), want, rtol=1e-5, atol=1e-5)
        # an input batch norm moves the border's zeros: the layer copies the input first
        scale, shift = np.full(4, 2, np.float32), np.full(4, 0.5, np.float32)
        got = layer(planes, input_affine=(scale, shift, RELU)).get()
    want = F.conv2d_activation(np.maximum(x * 2 + 0.5, 0), w, b, stride, pad, dilation,
                               activation=RELU).get()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed: pip install 'clconv[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import clconv.onnx as conx  # noqa: E402


def chain_graph(rng, batch=1, size=8):
    """1x1 and 3x3/5x5 convolutions: a -> b -> c (pads 1, 1), d -> e (pad 2); g is read
    with two paddings, m is returned, n lives after a and b have died (same planes)."""
    def conv(x, out, k, c_in, c_out, pad, relu=False):
        w = numpy_helper.from_array(
            (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(
                np.float32), "w" + out)  # outputs of order one, layer after layer
        b = numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b" + out)
        nodes = [helper.make_node("Conv", [x, "w" + out, "b" + out],
                                  [out + "0" if relu else out], pads=[pad] * 4)]
        if relu:
            nodes.append(helper.make_node("Relu", [out + "0"], [out]))
        return nodes, [w, b]

    layers = [("x", "a", 1, 3, 6, 0, True), ("a", "b", 3, 6, 8, 1, True),
              ("b", "c", 3, 8, 4, 1, False), ("c", "d", 1, 4, 5, 0, False),
              ("d", "e", 5, 5, 4, 2, True), ("e", "g", 1, 4, 6, 0, False),
              ("g", "h", 3, 6, 4, 1, False), ("g", "k", 3, 6, 4, 0, False),
              ("x", "m", 1, 3, 2, 0, False), ("m", "p", 3, 2, 3, 1, False),
              ("h", "n", 1, 4, 7, 0, True), ("n", "o", 3, 7, 3, 1, False)]
    nodes, inits = [], []
    for layer in layers:
        more_nodes, more_inits = conv(*layer)
        nodes += more_nodes
        inits += more_inits
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       [batch, 3, size, size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "c", "h", "w"])
         for n in ("k", "m", "p", "o")],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def check_against_onnx_runtime(model, proto, rng, runs=3):
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for _ in range(runs):  # step by step, recorded, then replayed
        x = rng.standard_normal(model.input_shapes["x"]).astype(np.float32)
        for got, want in zip(model.run({"x": x}), session.run(None, {"x": x})):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def launched(model, name):
    return sum(1 for entry in model._launches.entries
               if entry[0] is not None and entry[0].function_name == name)


@pytest.mark.parametrize("batch", [1, 2])
def test_producers_write_inside_the_borders_their_shifted_readers_read(batch, rng):
    proto = chain_graph(rng, batch)
    with algos.force("shifted"):  # 3x3 and 5x5: shifted; 1x1: gemm1x1
        model = conx.load(proto)
        # c: read by a 1x1; g: read with paddings 1 and 0; m: returned
        assert model.plan.borders == {"a": 1, "b": 1, "d": 2, "n": 1}
        assert all(border(model._arena[name]) == pad
                   for name, pad in model.plan.borders.items())
        # a and b died before n is written: n takes the buffer freed last, b's (the one
        # placement.share_buffers picks); a and d have their own
        assert model._arena["n"].base_data is model._arena["b"].base_data
        assert model._arena["b"].base_data is not model._arena["a"].base_data
        h, w = 10, 10
        assert model.plan.border_bytes == 4 * batch * (6 * h * w + 8 * h * w + 5 * 12 * 12)
        check_against_onnx_runtime(model, proto, rng)
        assert model.replay_note.startswith("replays")
        assert launched(model, "pad_planes") == 2  # the inputs of h (g) and p (m) only


@pytest.mark.parametrize("variant", ["im2col", "winograd", None])
def test_no_border_unless_every_reader_is_shifted(variant, rng):
    proto = chain_graph(rng)
    with algos.force(variant):
        model = conx.load(proto)
        if variant == "im2col":  # valid for every layer: no reader is shifted
            assert model.plan.borders == {}
        if variant == "winograd":  # the 3x3s' inputs; the 5x5 runs what the heuristic says
            assert not {"a", "b", "n"} & set(model.plan.borders)
        check_against_onnx_runtime(model, proto, rng)
