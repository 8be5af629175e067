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

