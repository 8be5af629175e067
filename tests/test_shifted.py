"""The `shifted` variant (algos/shifted.py): a stride-1 convolution as one GEMM over
shifted views of the zero-bordered input, its border columns dropped as it stores.
tests/test_variants.py runs it on the whole sweep; here the parts of it that the sweep
may not reach: the residual read through the same column mapping, writing into part of
a larger buffer, infinities and NaN at the borders (whose taps wrap into the next row in
the dropped columns), and when the heuristic picks it. Its packed weights:
tests/test_packed_weights.py."""
from dataclasses import replace

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest

import clconv.functional as F
from clconv import algos
from clconv.algos import gemm as gemm_algo
from clconv.algos import shifted
from clconv.algos.shifted import SHIFTED, padded_shape
from clconv.arrays import on_device
from clconv.build import sub_buffer_alignment
from clconv.epilogue import RELU
from clconv.geometry import conv_geometry
from clconv.ops.conv import ConstantWeightConv2d
from clconv.runtime import current

torch = pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")

# (input, weight, kwargs): odd widths (vectors straddling rows), a row narrower than a
# vector, dilation, asymmetric padding, no padding (the input read in place), groups
GEOMETRIES = [
    ((2, 5, 9, 11), (7, 5, 3, 3), dict(padding=1)),
    ((1, 3, 6, 4), (9, 3, 3, 3), dict(padding=1)),
    ((1, 4, 13, 23), (6, 4, 5, 3), dict(padding=(2, 0), dilation=(1, 2))),
    ((2, 6, 7, 19), (8, 6, 3, 3), dict(padding=0)),
    ((2, 6, 10, 12), (4, 3, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((1, 8, 3, 40), (8, 8, 1, 7), dict(padding=(0, 3))),
    # dense output rows stored compacted (gemm.cl COMPACT_STORE, CPUs): rows wider than
    # a tile, exactly a vector, SqueezeNet's 13 (two row ends in a vector), 7 (three),
    # and two border lanes per row end at dilation 2
    ((1, 4, 9, 37), (16, 4, 3, 3), dict(padding=1)),
    ((1, 2, 6, 16), (5, 2, 3, 3), dict(padding=1)),
    ((1, 3, 13, 13), (20, 3, 3, 3), dict(padding=1)),
    ((2, 2, 9, 7), (9, 2, 3, 3), dict(padding=1)),
    ((1, 3, 5, 21), (6, 3, 3, 3), dict(padding=2, dilation=2)),
]


def _torch_conv(x, w, b, kwargs, residual=None, relu=False):
    y = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                   torch.from_numpy(b).double(), **kwargs)
    if residual is not None:
        y = y + torch.from_numpy(residual).double()
    return (torch.relu(y) if relu else y).numpy()


def _case(rng, x_shape, w_shape):
    return (rng.standard_normal(x_shape).astype(np.float32),
            rng.standard_normal(w_shape).astype(np.float32),
            rng.standard_normal(w_shape[0]).astype(np.float32))


@pytest.mark.parametrize("x_shape,w_shape,kwargs", GEOMETRIES)
@pytest.mark.parametrize("params", [None, *gemm_algo.TEST_PARAMS], ids=lambda p: str(p))
def test_residual_and_relu_match_torch(x_shape, w_shape, kwargs, params, rng):
    """conv + residual + ReLU: the residual is read at the same pixels the result is
    stored to, through the vectors that straddle output rows and those that do not."""
    rt = current()
    x, w, b = _case(rng, x_shape, w_shape)
    geo = conv_geometry(x.shape, w.shape, 1, kwargs.get("padding", 0),
                        kwargs.get("dilation", 1), kwargs.get("groups", 1))
    params = params or algos.params_for(rt.profile, SHIFTED, geo, "forward")
    if not algos.valid(rt.profile, SHIFTED, geo, "forward", params):
        pytest.skip(f"shifted {params} not valid on this device")
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    out = on_device(rt, residual.copy())
    act = replace(RELU, residual=True)  # as conv2d_activation(residual=) passes it
    SHIFTED.run["forward"](rt, geo, params, on_device(rt, x), on_device(rt, w),
                           on_device(rt, b), out, act)
    want = _torch_conv(x, w, b, kwargs, residual, relu=True)
    np.testing.assert_allclose(out.get(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("x_shape,w_shape,kwargs",
                         [g for g in GEOMETRIES if g[2].get("groups", 1) == 1])
@pytest.mark.parametrize("with_bias", [True, False])
def test_packed_forward_matches_torch(x_shape, w_shape, kwargs, with_bias, rng):
    """Packed weights (each tap's matrix in the GEMM's row panels), as a grouped layer or
    a GPU runs inference (CPUs run one group through algos/channels.py, tests/
    test_channels.py): conv + residual + ReLU, with and without a bias, NaN and infinity
    in the input."""
    rt = current()
    x, w, b = _case(rng, x_shape, w_shape)
    x[0, 0, 1, 2], x[-1, -1, -1, -1] = np.nan, np.inf
    geo = conv_geometry(x.shape, w.shape, 1, kwargs.get("padding", 0),
                        kwargs.get("dilation", 1), 1)
    params = algos.params_for(rt.profile, SHIFTED, geo, "forward")
    if not algos.valid(rt.profile, SHIFTED, geo, "forward", params):
        pytest.skip(f"shifted {params} not valid on this device")
    packed = shifted.pack(rt, geo, params, on_device(rt, w))
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    out = on_device(rt, residual.copy())
    bias = b if with_bias else np.zeros_like(b)
    SHIFTED.run["forward"](rt, geo, params, on_device(rt, x), None,
                           on_device(rt, b) if with_bias else None, out,
                           replace(RELU, residual=True), packed=packed)
    want = _torch_conv(x, w, bias, kwargs, residual, relu=True)
    got = out.get()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4,
                               atol=1e-4 * np.abs(want[finite]).max())
    assert (~finite).any()


def test_writes_only_its_part_of_a_larger_buffer(rng):
    """out= a channel slice of a concatenation: the neighbours' values are untouched,
    the border columns land nowhere."""
    rt = current()
    x, w, b = _case(rng, (1, 4, 8, 16), (6, 4, 3, 3))
    whole_buffer = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, 10 * 8 * 16 * 4)
    whole = cla.Array(rt.queue, (1, 10, 8, 16), np.float32, data=whole_buffer)
    whole.fill(7.0)
    # channels 2..7, contiguous for one image, as a sub-buffer (as the ONNX planner
    # places a Concat's inputs), at 1024 bytes: on the device's base alignment
    start, nbytes = 2 * 8 * 16 * 4, 6 * 8 * 16 * 4
    if start % sub_buffer_alignment(rt.context.devices[0]):
        pytest.skip("a sub-buffer at 1024 bytes is not on this device's base alignment")
    out = cla.Array(rt.queue, (1, 6, 8, 16), np.float32,
                    data=whole_buffer.get_sub_region(start, nbytes))
    with algos.force("shifted"):
        layer = ConstantWeightConv2d(x.shape, w, b, padding=1, activation=RELU)
        assert layer._forward.variant is SHIFTED
        layer(x, out=out)
    got = whole.get()
    np.testing.assert_allclose(got[:, 2:8], _torch_conv(x, w, b, dict(padding=1), relu=True),
                               rtol=1e-4, atol=1e-4)
    assert (got[:, :2] == 7).all() and (got[:, 8:] == 7).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_at_the_borders_reach_only_their_windows(value, rng):
    """A special value in the first and last column of a row feeds, through the wrapped
    taps, only border columns, which are dropped: every output matches torch's, NaN,
    infinity and finite alike."""
    x, w, b = _case(rng, (1, 3, 8, 10), (5, 3, 3, 3))
    x[0, 1, 3, 0] = x[0, 2, 5, 9] = x[0, 0, 0, 4] = value
    with algos.force("shifted"):
        got = F.conv2d(x, w, b, padding=1).get()
    want = _torch_conv(x, w, b, dict(padding=1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
    assert np.isfinite(want).sum() < want.size  # the value did reach some outputs


def test_only_stride_one_and_not_pointwise():
    profile = current().profile
    params = {"TM": 4, "TN": 8, "NV": 1, "WG": 1}
    strided = conv_geometry((1, 4, 9, 9), (4, 4, 3, 3), 2, 1, 1, 1)
    assert "stride" in SHIFTED.validate(profile, strided, "forward", params)
    pointwise = conv_geometry((1, 4, 9, 9), (4, 4, 1, 1), 1, 0, 1, 1)
    assert "gemm1x1" in SHIFTED.validate(profile, pointwise, "forward", params)
    assert SHIFTED.ops == ("forward",)
    geo = conv_geometry((1, 4, 9, 9), (4, 4, 5, 3), 1, (2, 0), (1, 2), 1)
    assert padded_shape(geo) == (9 + 4, 5 + 4)


def test_the_heuristic_picks_it_for_packed_grouped_layers_on_a_cpu():
    """Grouped inference layers (weights packed once) on a CPU where Winograd does not
    pay; one group runs algos/channels.py (tests/test_channels.py), unpacked im2col."""
    profile = current().profile
    geo = conv_geometry((1, 64, 13, 13), (256, 32, 3, 3), 1, 1, 1, 2)
    if profile.device_types != {"CPU"} and "CPU" not in profile.device_types:
        pytest.skip(f"the shifted heuristic is for CPUs; this device is {profile.label}")
    assert algos.heuristic(profile, geo, "forward", packed=True) == "shifted"
    assert algos.heuristic(profile, geo, "forward", packed=False) == "im2col"


def test_a_padded_input_past_the_device_allocation_limit_is_refused():
    """The zero-bordered copy must fit one allocation (small on 32-bit Pi GPUs): the
    reason names the bytes and the limit, and the variant is not valid there."""
    profile = replace(current().profile, max_mem_alloc_size=4 * 1024)
    geo = conv_geometry((1, 4, 30, 30), (4, 4, 3, 3), 1, 1, 1, 1)  # 4*4*32*32 bytes
    params = algos.params_for(profile, SHIFTED, geo, "forward")  # what the device would use
    reason = SHIFTED.validate(profile, geo, "forward", params)
    assert reason == ("padded input of 16384 bytes exceeds the device's max allocation "
                      "4096")
    assert not algos.valid(profile, SHIFTED, geo, "forward", params)
