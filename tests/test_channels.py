"""The `channels` variant (algos/channels.py, kernels_cl/conv_channels.cl): inference
convolutions on CPUs with the output channels in the vector lanes, any stride. The
variant sweep (tests/test_variants.py) runs it where it is valid; here what the sweep may
not reach: strided windows of every kind against torch in float64, with residual, ReLU,
NaN and infinity, runs that do not fill a row or the planes, and the kernel on any
device, where Oclgrind (.ci/tier-oclgrind.sh) checks that every read stays in bounds."""
from dataclasses import replace

import numpy as np
import pytest

from clconv import algos
from clconv.algos import channels
from clconv.algos.channels import CHANNELS, row_columns
from clconv.arrays import bordered_planes, on_device, padded_planes
from clconv.epilogue import RELU
from clconv.geometry import conv_geometry
from clconv.runtime import current

torch = pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")

# (input, weight, stride, padding, dilation): ResNet's 7x7 stem and 3x3 stride-2 layers
# (scaled down; the 3x3 in runs of two whole rows), stride 3 and unequal strides with
# dilation, no padding (runs of three rows), stride 1 in flat runs (a 30-wide plane;
# rows of 6 narrower than a run, a plane of one column), in row runs (11 wide) and in
# runs of two whole rows (4 wide), and channel counts that leave a vector or a block of
# vectors partial
GEOMETRIES = [
    ((1, 3, 30, 30), (20, 3, 7, 7), 2, 3, 1),
    ((2, 5, 14, 14), (33, 5, 3, 3), 2, 1, 1),
    ((1, 4, 17, 19), (9, 4, 5, 5), 3, 2, 1),
    ((1, 3, 16, 23), (7, 3, 3, 3), (2, 3), 2, (1, 2)),
    ((1, 6, 9, 9), (16, 6, 3, 3), 2, 0, 1),
    ((2, 5, 9, 11), (40, 5, 3, 3), 1, 1, 1),
    ((1, 3, 30, 30), (18, 3, 3, 3), 1, 1, 1),
    ((1, 3, 3, 8), (5, 3, 3, 3), 1, 0, 1),
    ((1, 2, 4, 6), (3, 2, 3, 3), 1, 0, 1),
    ((1, 4, 1, 1), (4, 4, 3, 3), 1, 1, 1),
]


def _torch_conv(x, w, b, stride, padding, dilation, residual):
    y = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                   torch.from_numpy(b).double(), stride=stride,
                                   padding=padding, dilation=dilation)
    return torch.relu(y + torch.from_numpy(residual).double()).numpy()


def _run(rt, geo, params, x, w, b, residual):
    packed = channels.pack(rt, geo, params, on_device(rt, w))
    out = on_device(rt, residual.copy())
    CHANNELS.run["forward"](rt, geo, params, on_device(rt, x), None,
                            None if b is None else on_device(rt, b), out,
                            replace(RELU, residual=True), packed=packed)
    return out.get()


def _params_or_skip(rt, geo):
    """The device's own tunables for `geo`, or a skip saying why the variant is not
    valid here."""
    params = algos.params_for(rt.profile, CHANNELS, geo, "forward")
    if not algos.valid(rt.profile, CHANNELS, geo, "forward", params):
        pytest.skip(f"channels not valid on this device: "
                    f"{CHANNELS.validate(rt.profile, geo, 'forward', params)}")
    return params


def _check(got, want):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4,
                               atol=1e-4 * np.abs(want[finite]).max())


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_torch(x_shape, w_shape, stride, padding, dilation, with_bias, rng):
    """conv + residual + ReLU at the device's own tunables, with and without a bias,
    NaN and infinity in the input reaching only their windows."""
    rt = current()
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, 1)
    params = _params_or_skip(rt, geo)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    if x_shape[2] * x_shape[3] > 1:  # (a one-pixel plane would be all NaN)
        x[0, 0, 0, 0], x[-1, -1, -1, -1] = np.nan, np.inf
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    got = _run(rt, geo, params, x, w, b if with_bias else None, residual)
    _check(got, _torch_conv(x, w, b if with_bias else np.zeros_like(b), stride, padding,
                            dilation, residual))


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", GEOMETRIES)
def test_on_any_device(x_shape, w_shape, stride, padding, dilation, rng, monkeypatch):
    """The kernel through forward()'s own launch on whatever device this is (plain
    OpenCL C; inference picks it on CPUs only), at 4-float vectors by 2, the columns per
    run of a 16-register class: matches torch, and under Oclgrind every read stays inside
    the planes, including the runs moved back to end at a row's or the planes' end."""
    rt = current()
    monkeypatch.setattr(channels, "is_cpu", lambda profile: True)
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, 1)
    params = dict(algos.params_for(rt.profile, CHANNELS, geo, "forward"), TN=4, NV=2, WG=1)
    reason = CHANNELS.validate(rt.profile, geo, "forward", params)
    assert reason is None, reason
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    _check(_run(rt, geo, params, x, w, b, residual),
           _torch_conv(x, w, b, stride, padding, dilation, residual))


def test_row_runs_cover_a_row_in_whole_runs_where_they_can():
    """A strided layer's runs: 28 columns as two runs of 14 (8-13 ran 1.2-1.5x slower),
    112 as eight, 55 as five of 11; never wider than the row or the registers allow."""
    assert row_columns(28, 14) == 14 and row_columns(112, 14) == 14
    assert row_columns(55, 14) == 11 and row_columns(7, 14) == 7
    assert row_columns(1, 14) == 1 and row_columns(3, 6) == 3
    for width in range(1, 120):
        for most in (1, 4, 6, 12, 14):
            px = row_columns(width, most)
            assert 1 <= px <= min(width, most)


@pytest.mark.parametrize("x_shape,w_shape,stride", [
    ((1, 5, 7, 7), (20, 5, 3, 3), 1),  # runs of two whole rows
    ((2, 4, 14, 14), (18, 4, 3, 3), 2),  # strided, runs of two whole rows
    ((1, 3, 13, 13), (17, 3, 3, 3), 1),  # one run per row
    ((1, 3, 30, 30), (18, 3, 3, 3), 1),  # flat columns
])
def test_writes_inside_zero_borders_over_a_residual(x_shape, w_shape, stride, rng):
    """Output planes inside zero borders of 2 (as the ONNX plans give a reader of
    padding 2, arrays.bordered_planes), already holding the residual: conv + residual +
    ReLU lands inside, every run reading its residual at its own rows, and the borders
    stay zero."""
    rt = current()
    geo = conv_geometry(x_shape, w_shape, stride, 1, 1, 1)
    params = _params_or_skip(rt, geo)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    n, k, ho, wo = geo.output_shape
    host = np.zeros((n * k, ho + 4, wo + 4), np.float32)
    host[:, 2:-2, 2:-2] = residual.reshape(n * k, ho, wo)
    buffer = on_device(rt, host)
    out = bordered_planes(rt.queue, buffer.base_data, geo.output_shape, 2)
    CHANNELS.run["forward"](rt, geo, params, on_device(rt, x), None, on_device(rt, b),
                            padded_planes(out), replace(RELU, residual=True),
                            packed=channels.pack(rt, geo, params, on_device(rt, w)),
                            out_border=2)
    got = buffer.get()
    _check(got[:, 2:-2, 2:-2].reshape(geo.output_shape),
           _torch_conv(x, w, b, stride, 1, 1, residual))
    inside = np.zeros(got.shape, bool)
    inside[:, 2:-2, 2:-2] = True
    assert (got[~inside] == 0).all()


def test_runs_of_whole_rows_where_two_fit_and_rows_where_they_save_work():
    """Runs of two or more whole output rows where the register budget holds them
    (7-wide: two rows, 4 runs, so ResNet-50's 7x7 layers read their weights 4 times, not
    5 or 7); at stride 1, rows where the flat columns would compute over 1/0.9 as many
    in as many runs or more (13x13: 169 in 13 runs against 196 in 14); flat at 55x55 and
    56x56 (3-4 % more columns)."""
    def runs(size, stride=1, most=14):
        geo = conv_geometry((1, 8, size, size), (16, 8, 3, 3), stride, 1, 1, 1)
        return channels.column_runs(geo, size + 2, most)
    Runs = channels.ColumnRuns
    assert runs(7) == Runs(14, 1, 2, 1, 49, 4) and runs(14, 2) == Runs(14, 1, 2, 1, 49, 4)
    assert runs(13) == Runs(13, 1, 1, 1, 169, 13) and runs(14) == Runs(14, 1, 1, 1, 196, 14)
    assert runs(55) == Runs(14, 0, 1, 1, 54 * 57 + 55, 224)
    assert runs(56).row_runs == 0 and runs(30).row_runs == 0
    assert runs(56, 2) == Runs(14, 1, 1, 2, 28 * 2 * 14, 56)
    assert runs(7, most=6).run_rows == 1 and runs(5, 2, most=6) == Runs(6, 1, 2, 1, 9, 2)


def test_pointwise_layers_stay_on_the_gemm():
    profile = current().profile
    params = {"TM": 8, "TN": 16, "NV": 2, "WG": 1}
    for stride in (1, 2):
        geo = conv_geometry((1, 8, 14, 14), (16, 8, 1, 1), stride, 0, 1, 1)
        assert CHANNELS.validate(profile, geo, "forward", params) is not None


def test_the_heuristic_picks_it_for_packed_layers_on_a_cpu():
    """Inference layers of one group on a CPU, stride 1 where Winograd does not pay
    (SqueezeNet's 64 -> 256 at 13x13: too few tiles) and strided (ResNet's stem and 3x3
    stride 2); a strided 1x1 stays on im2col, and so does every layer without packing."""
    profile = current().profile
    if "CPU" not in profile.device_types:
        pytest.skip(f"the channels heuristic is for CPUs; this device is {profile.label}")
    for x_shape, w_shape, stride, padding in [((1, 64, 13, 13), (256, 64, 3, 3), 1, 1),
                                              ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3),
                                              ((1, 128, 56, 56), (128, 128, 3, 3), 2, 1)]:
        geo = conv_geometry(x_shape, w_shape, stride, padding, 1, 1)
        assert algos.heuristic(profile, geo, "forward", packed=True) == "channels"
        assert algos.heuristic(profile, geo, "forward", packed=False) == "im2col"
    shortcut = conv_geometry((1, 256, 56, 56), (512, 256, 1, 1), 2, 0, 1, 1)
    assert algos.heuristic(profile, shortcut, "forward", packed=True) == "im2col"
