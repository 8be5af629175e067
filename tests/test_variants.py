"""Every convolution variant that is valid for a configuration — forced, not only the one
the heuristic picks — against the float64 reference, for forward, grad_input and
grad_weight, on a seeded sweep (groups, depthwise, stride, dilation, padding 'same', odd
sizes). Also: `validate` rejections, CLCONV_ALGO forcing, and the tuning database."""
import dataclasses
import zlib

import numpy as np
import pytest
from sweeps import conv_configs, generic_profile

import clconv
import clconv.functional as F
from clconv import algos, reference as R, tuning
from clconv.algos.base import is_cpu
from clconv.arrays import empty, on_device
from clconv.compare import scaled_error
from clconv.cpu_class import AVX512
from clconv.device import DeviceKind
from clconv.epilogue import NO_ACTIVATION, RELU
from clconv.geometry import conv_geometry

TOL = 1e-4
CONFIGS = conv_configs(40, seed=11) + conv_configs(1, seed=5)
# Shapes that reach the vector tails and the depthwise / 1x1 variants on purpose.
EXTRA = [
    ((2, 6, 9, 7), (6, 1, 3, 3), dict(stride=1, padding=1, dilation=1, groups=6)),
    ((1, 4, 11, 10), (8, 1, 3, 3), dict(stride=2, padding="valid", dilation=1, groups=4)),
    ((2, 5, 12, 19), (5, 1, 3, 3), dict(stride=2, padding=1, dilation=1, groups=5)),
    ((1, 3, 9, 21), (3, 1, 5, 3), dict(stride=1, padding="same", dilation=2, groups=3)),
    ((1, 3, 9, 21), (3, 1, 3, 3), dict(stride=(1, 3), padding=3, dilation=1, groups=3)),
    # depthwise multipliers: LeNet's first layer, a dilated one, a row stride, one past
    # what depthwise_local sums for grad_input
    ((2, 1, 12, 13), (6, 1, 5, 5), dict(stride=1, padding=0, dilation=1, groups=1)),
    ((1, 2, 10, 9), (6, 1, 3, 3), dict(stride=1, padding=2, dilation=(2, 1), groups=2)),
    ((1, 2, 11, 17), (4, 1, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=1, groups=2)),
    ((1, 1, 6, 7), (9, 1, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
    # column stride 2 (deinterleaved block): rows long enough for the vector fill, odd
    # taps with dilation, a multiplier with a 5-wide window and padding 2
    ((1, 3, 9, 41), (3, 1, 3, 3), dict(stride=2, padding=2, dilation=(1, 3), groups=3)),
    ((1, 2, 7, 57), (4, 1, 5, 5), dict(stride=(1, 2), padding=2, dilation=1, groups=2)),
    # depthwise_direct's lane shifts: 4 lanes with a dilated multiplier and rows of
    # three spans, the last overlapping; stride 2 with an odd shift; a grad_input whose
    # flipped padding is negative (3 > 3 - 1)
    ((1, 2, 6, 37), (4, 1, 3, 5), dict(stride=1, padding=(1, 4), dilation=(1, 2), groups=2)),
    ((1, 2, 5, 40), (2, 1, 3, 3), dict(stride=(1, 2), padding=3, dilation=1, groups=2)),
    ((1, 2, 6, 20), (2, 1, 3, 3), dict(stride=1, padding=3, dilation=1, groups=2)),
    ((2, 5, 7, 9), (11, 5, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
    # Winograd: odd output sizes (half tiles), a tile row past 8 tiles, padding 0 and 2
    ((2, 5, 9, 11), (7, 5, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
    ((1, 3, 6, 37), (4, 3, 3, 3), dict(stride=1, padding=0, dilation=1, groups=1)),
    ((1, 2, 5, 4), (3, 2, 3, 3), dict(stride=1, padding=(2, 1), dilation=1, groups=1)),
    ((1, 6, 6, 6), (10, 3, 1, 1), dict(stride=1, padding=0, dilation=2, groups=2)),
    ((2, 3, 13, 12), (17, 3, 3, 3), dict(stride=1, padding="same", dilation=2, groups=1)),
    ((1, 8, 9, 9), (20, 8, 5, 5), dict(stride=(2, 1), padding=(2, 1), dilation=1, groups=1)),
    # weight rows of 512 floats or more (gemm.LONG_WEIGHT_ROW): grad_input's GEMM then
    # reads the weights as rows on CPUs (col2im: stride 2; a 1x1 with a partial panel)
    ((1, 64, 4, 5), (24, 64, 3, 3), dict(stride=2, padding=1, dilation=1, groups=1)),
    ((2, 520, 3, 2), (12, 520, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
    # fully connected (linear): images as rows, a column tail, K past a vector
    ((3, 37, 1, 1), (45, 37, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
    ((1, 130, 1, 1), (70, 130, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
]
CASES = [(c.input_shape, c.weight_shape, c.bias, c.kwargs) for c in CONFIGS] + \
        [(x, w, True, kw) for x, w, kw in EXTRA]


def _case_id(case):
    x, w, b, kw = case
    return f"x{x}-w{w}-b{int(b)}-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _settings(profile, geo, op):
    """(variant, params) to run: each valid variant with its defaults and with the
    tunables it names for tests (Variant.test_params), work-groups cut to the device's."""
    out = []
    for variant in algos.VARIANTS.values():
        candidates = [algos.params_for(profile, variant, geo, op)]
        candidates += [dict(p, WG=min(p["WG"], profile.max_work_group_size)) if "WG" in p
                       else dict(p) for p in variant.test_params]
        for params in candidates:
            if algos.valid(profile, variant, geo, op, params):
                out.append((variant, params))
    return out


def _check(name, got, want, scale):
    error = scaled_error(clconv.to_numpy(got), want, scale)
    assert error <= TOL, f"{name}: scaled error {error:.3g} > {TOL:g}"


@pytest.mark.exhaustive
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_every_valid_variant_matches_the_reference(case):
    x_shape, w_shape, has_bias, kw = case
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if has_bias else None
    rt = clconv.current_runtime()
    geo = conv_geometry(x_shape, w_shape, kw["stride"], kw["padding"], kw["dilation"],
                        kw["groups"])
    ab = np.abs(b) if b is not None else None
    y_ref = R.conv2d(x, w, b, **kw)
    y_scale = R.conv2d(np.abs(x), np.abs(w), ab, **kw)
    g = rng.standard_normal(y_ref.shape).astype(np.float32)
    gi_ref, gw_ref, _ = R.conv2d_backward(g, x, w, output_mask=(True, True, False), **kw)
    gi_scale, gw_scale, _ = R.conv2d_backward(np.abs(g), np.abs(x), np.abs(w),
                                              output_mask=(True, True, False), **kw)
    xd, wd, gd = on_device(rt, x), on_device(rt, w), on_device(rt, g)
    bd = on_device(rt, b) if b is not None else None
    ran = set()
    for variant, params in _settings(rt.profile, geo, "forward"):
        # the fused relu once per variant (with its defaults): every build costs time
        default = params == algos.params_for(rt.profile, variant, geo, "forward")
        for act in (NO_ACTIVATION, RELU) if default else (NO_ACTIVATION,):
            out = empty(rt, geo.output_shape)
            variant.run["forward"](rt, geo, params, xd, wd, bd, out, act=act)
            want = np.maximum(y_ref, 0) if act == RELU else y_ref
            _check(f"{variant.name} {params} forward {act}", out, want, y_scale)
        ran.add(("forward", variant.name))
    for variant, params in _settings(rt.profile, geo, "grad_input"):
        out = empty(rt, geo.input_shape)
        variant.run["grad_input"](rt, geo, params, gd, wd, out)
        _check(f"{variant.name} {params} grad_input", out, gi_ref, gi_scale)
        ran.add(("grad_input", variant.name))
    for variant, params in _settings(rt.profile, geo, "grad_weight"):
        out = empty(rt, geo.weight_shape)
        variant.run["grad_weight"](rt, geo, params, xd, gd, out)
        _check(f"{variant.name} {params} grad_weight", out, gw_ref, gw_scale)
        ran.add(("grad_weight", variant.name))
    assert {("forward", "direct"), ("grad_input", "direct"), ("grad_weight", "direct")} <= ran


def test_the_sweep_reaches_every_variant():
    profile = clconv.current_runtime().profile
    seen = set()
    for x_shape, w_shape, _, kw in CASES:
        geo = conv_geometry(x_shape, w_shape, kw["stride"], kw["padding"], kw["dilation"],
                            kw["groups"])
        seen |= {v.name for v, _ in _settings(profile, geo, "forward")}
    assert seen == set(algos.VARIANTS) - _unreachable(profile)


def _unreachable(profile) -> set[str]:
    """Variants no layer can run on this device: the CPU-only ones (depthwise_direct
    runs on any device but VC4CL, channels on CPUs only)."""
    unreachable = {"depthwise_direct"} if profile.kind == DeviceKind.VC4CL else set()
    return unreachable if is_cpu(profile) else unreachable | {"channels"}


def _geo(x=(1, 4, 8, 8), w=(6, 4, 3, 3), **kw):
    kw = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1, **kw}
    return conv_geometry(x, w, **kw)


def test_validate_rejects_work_groups_beyond_the_device_limit():
    profile = clconv.current_runtime().profile
    too_big = {"TM": 4, "TN": 8, "NV": 1, "WG": profile.max_work_group_size + 1}
    reason = algos.VARIANTS["im2col"].validate(profile, _geo(), "forward", too_big)
    assert reason and "work-group" in reason
    reason = algos.VARIANTS["depthwise"].validate(
        profile, _geo(w=(4, 1, 3, 3), groups=4), "forward",
        {"TW": 8, "WG": profile.max_work_group_size + 1})
    assert reason and "work-group" in reason


def test_validate_rejects_the_videocore4_limits_on_any_device():
    """A tuned 16-item work-group is invalid on a VideoCore IV (12 items)."""
    profile = clconv.current_runtime().profile.with_limits("videocore4")
    params = {"TM": 1, "TN": 16, "NV": 1, "WG": 16, "MFAST": 0}
    assert "work-group" in algos.VARIANTS["im2col"].validate(profile, _geo(), "forward", params)
    params["WG"] = 12
    assert algos.VARIANTS["im2col"].validate(profile, _geo(), "forward", params) is None
    # the shipped defaults are clamped to the device
    assert algos.params_for(profile, algos.VARIANTS["im2col"], _geo(), "forward")["WG"] <= 12


def test_validate_rejects_what_vc4c_cannot_compile_on_vc4cl_only():
    """VC4C's register budget (measured with pi/vc4c/compile-programs.py): GEMM tiles of
    more than 1 row or 1 vector a row, depthwise kernels holding more than 2
    accumulator vectors. Other devices take them; the shipped VC4CL defaults pass."""
    base = clconv.current_runtime().profile
    vc4 = dataclasses.replace(base, kind=DeviceKind.VC4CL, device_type="GPU",
                              max_work_group_size=12)
    other = dataclasses.replace(generic_profile(base), max_work_group_size=12)
    im2col, dw, direct = (algos.VARIANTS[n] for n in ("im2col", "depthwise", "depthwise_direct"))
    geo = _geo()
    for params, words in (({"TM": 2, "TN": 4, "NV": 1, "WG": 12, "MFAST": 0}, "TM=2"),
                          ({"TM": 1, "TN": 16, "NV": 2, "WG": 12, "MFAST": 0}, "NV=2")):
        assert words in im2col.validate(vc4, geo, "forward", params)
        assert algos.VARIANTS["winograd"].validate(vc4, geo, "forward", params)
        assert im2col.validate(other, geo, "forward", params) is None
    ok = {"TM": 1, "TN": 16, "NV": 1, "WG": 12, "MFAST": 1}
    assert im2col.validate(vc4, geo, "forward", ok) is None
    stride3 = _geo(x=(1, 4, 12, 12), stride=3)
    assert "col2im" in im2col.validate(vc4, stride3, "grad_input", ok)
    assert im2col.validate(vc4, stride3, "forward", ok) is None
    assert im2col.validate(vc4, _geo(x=(1, 4, 12, 12), stride=2), "grad_input", ok) is None
    assert im2col.validate(other, stride3, "grad_input", ok) is None
    depthwise = _geo(x=(1, 4, 12, 12), w=(4, 1, 3, 3), groups=4)
    strided = _geo(x=(1, 4, 12, 12), w=(4, 1, 3, 3), groups=4, stride=3)
    params = {"TW": 8, "TH": 1, "WG": 12, "PAD": 1}
    assert dw.validate(vc4, depthwise, "grad_input", params) is None
    assert "stride 3x3" in dw.validate(vc4, strided, "grad_input", params)
    assert "9 accumulator" in dw.validate(vc4, _geo(x=(1, 4, 12, 12), w=(4, 1, 2, 1),
                                                    groups=4, stride=3), "forward", params)
    two = _geo(x=(1, 4, 12, 12), w=(4, 1, 3, 3), groups=4, stride=(1, 2))
    assert dw.validate(vc4, two, "forward", params) is None  # 18 strided taps
    assert "4 accumulator" in dw.validate(vc4, _geo(x=(1, 4, 12, 12), w=(4, 1, 3, 3),
                                                    groups=4, stride=2), "forward", params)
    assert "50 strided taps" in dw.validate(vc4, _geo(x=(1, 4, 12, 12), w=(4, 1, 5, 5),
                                                      groups=4, stride=(1, 2)), "forward",
                                            params)
    assert dw.validate(other, strided, "grad_input", params) is None
    local = {"TW": 8, "TH": 2, "MB": 2, "WG": 12, "PAD": 0}
    assert "4 accumulator" in dw.validate(vc4, depthwise, "forward", local)
    assert dw.validate(vc4, depthwise, "forward", dict(local, TH=1)) is None
    assert "TW=16" in dw.validate(vc4, depthwise, "forward", dict(params, TW=16))
    assert dw.validate(other, depthwise, "forward", dict(params, TW=16)) is None
    for op in direct.ops:
        assert "CPU variant" in direct.validate(vc4, depthwise, op, {"TW": 8})
        assert direct.validate(other, depthwise, op, {"TW": 8}) is None
    # what a VC4CL device gets untuned compiles
    for variant, g in (("im2col", geo), ("gemm1x1", _geo(w=(6, 4, 1, 1), padding=0)),
                       ("winograd", geo), ("depthwise", depthwise)):
        v = algos.VARIANTS[variant]
        for op in v.ops:
            params = algos.params_for(vc4, v, g, op)
            assert v.validate(vc4, g, op, params) is None, (variant, op, params)


def test_validate_rejects_column_buffers_beyond_the_max_allocation():
    profile = generic_profile(clconv.current_runtime().profile)
    small = dataclasses.replace(profile, max_mem_alloc_size=1 << 16)
    params = {"TM": 4, "TN": 8, "NV": 1, "WG": 1}
    geo = _geo(x=(2, 16, 32, 32), w=(16, 16, 3, 3))
    assert "max allocation" in algos.VARIANTS["im2col"].validate(small, geo, "forward", params)
    assert algos.VARIANTS["im2col"].validate(profile, geo, "forward", params) is None
    assert algos.choose(small, geo, "forward")[0].name == "direct"


def test_validate_rejects_bad_tunables_and_geometries():
    profile = generic_profile(clconv.current_runtime().profile)
    im2col, one, dw = (algos.VARIANTS[n] for n in ("im2col", "gemm1x1", "depthwise"))
    assert "vector width" in im2col.validate(profile, _geo(), "forward",
                                             {"TM": 4, "TN": 3, "WG": 1})
    assert "1x1" in one.validate(profile, _geo(), "forward", {"TM": 4, "TN": 8, "WG": 1})
    assert one.validate(profile, _geo(w=(6, 4, 1, 1), padding=0), "forward",
                        {"TM": 4, "TN": 8, "WG": 1}) is None
    assert "depthwise" in dw.validate(profile, _geo(), "forward", {"TW": 8, "WG": 1})
    assert dw.validate(profile, _geo(w=(4, 1, 3, 3), groups=4), "grad_input",
                       {"TW": 8, "WG": 1}) is None
    assert "TW=3" in dw.validate(profile, _geo(w=(4, 1, 3, 3), groups=4), "forward",
                                 {"TW": 3, "WG": 1})
    assert "TH=9" in dw.validate(profile, _geo(w=(4, 1, 3, 3), groups=4), "forward",
                                 {"TW": 8, "TH": 9, "WG": 1})
    wino = algos.VARIANTS["winograd"]
    params = {"TM": 4, "TN": 8, "NV": 1, "WG": 1}
    assert "3x3" in wino.validate(profile, _geo(w=(6, 4, 5, 5), padding=2), "forward", params)
    assert "3x3" in wino.validate(profile, _geo(stride=2), "forward", params)
    assert "padding 0..2" in wino.validate(profile, _geo(padding=3), "grad_input", params)
    assert wino.validate(profile, _geo(padding=3), "forward", params) is None
    assert "grad_weight" not in wino.ops


def test_depthwise_direct_validates_fits_and_bands_its_work():
    from clconv.algos import depthwise_direct as dd

    profile = generic_profile(clconv.current_runtime().profile)
    direct = algos.VARIANTS["depthwise_direct"]
    geo = _geo(x=(1, 4, 28, 28), w=(4, 1, 3, 3), groups=4)
    params = {"TW": 16, "MB": 1}
    assert direct.validate(profile, geo, "forward", params) is None
    assert "depthwise" in direct.validate(profile, _geo(), "forward", params)
    assert "TW=12" in direct.validate(profile, geo, "forward", dict(params, TW=12))
    assert "MB=9" in direct.validate(profile, geo, "forward", dict(params, MB=9))
    assert "TH=-1" in direct.validate(profile, geo, "forward", dict(params, TH=-1))
    stride3 = _geo(x=(1, 4, 28, 28), w=(4, 1, 3, 3), groups=4, stride=(1, 3))
    assert "column stride 3" in direct.validate(profile, stride3, "forward", params)
    strided = _geo(x=(1, 4, 28, 28), w=(4, 1, 3, 3), groups=4, stride=2)
    assert direct.validate(profile, strided, "forward", params) is None
    assert "stride 1 only" in direct.validate(profile, strided, "grad_input", params)
    many = _geo(x=(1, 1, 28, 28), w=(9, 1, 3, 3), padding=1)  # a runtime loop sums them
    assert direct.validate(profile, many, "grad_input", params) is None
    huge = _geo(x=(1, 2, 300, 1000), w=(16, 1, 7, 7), groups=2, padding=3)
    assert "unrolled" in direct.validate(profile, huge, "forward", dict(params, MB=8))
    assert direct.validate(profile, huge, "forward", params) is None  # MB=1: 63*49
    assert direct.validate(profile, strided, "grad_weight", params) is None
    assert "column stride 3" in direct.validate(profile, stride3, "grad_weight", params)
    # TW: the widest the rows hold, at stride 2 twice over; tuned settings stay
    assert direct.fit(geo, "forward", params)["TW"] == 16
    small = _geo(x=(1, 4, 14, 14), w=(4, 1, 3, 3), groups=4)
    assert direct.fit(small, "forward", params)["TW"] == 8
    half = _geo(x=(1, 4, 28, 28), w=(4, 1, 3, 3), groups=4, stride=2)
    assert direct.fit(half, "forward", params)["TW"] == 8  # 2 * 16 > 28
    tiny = _geo(x=(1, 4, 3, 3), w=(4, 1, 3, 3), groups=4)
    assert direct.fit(tiny, "forward", params)["TW"] == 4  # the smallest width
    # rows per work-item: a whole plane where planes alone keep the compute units busy
    busy = dataclasses.replace(profile, compute_units=2)
    assert dd._rows_per_item(busy, 28, 128, 0) == 28
    assert dd._rows_per_item(busy, 28, 2, 0) == 7  # 4 bands per plane
    assert dd._rows_per_item(busy, 3, 1, 0) == 1
    assert dd._rows_per_item(busy, 28, 2, 5) == 5  # TH given


def test_depthwise_direct_grad_weight_sums_each_product_once_even_an_inf():
    """Lanes that are not a span's own outputs stay out of the weight gradient in both
    factors: an inf that no output reads (the lanes past a row narrower than TW) leaves
    it finite, and an inf read in a row's overlapping last span gives inf, as in torch,
    not the NaN of inf * 0."""
    rt = clconv.current_runtime()
    direct = algos.VARIANTS["depthwise_direct"]
    w = np.ones((1, 1, 1, 2), np.float32)
    # (width, stride, dilation, column holding inf)
    for width, stride, dilation, col in ((6, (1, 2), (1, 3), 4), (40, 1, 1, 25)):
        geo = conv_geometry((1, 1, 3, width), w.shape, stride, 0, dilation, 1)
        x = np.ones((1, 1, 3, width), np.float32)
        x[..., col] = np.inf
        g = np.ones(geo.output_shape, np.float32)
        want = R.conv2d_backward(g, x, w, output_mask=(False, True, False), stride=stride,
                                 padding=0, dilation=dilation, groups=1)[1]
        assert np.isfinite(want).all() == (width == 6)  # else this test checks nothing
        for tw in (4, 8, 16):
            reason = direct.validate(rt.profile, geo, "grad_weight", {"TW": tw})
            if reason is not None:  # on VC4CL: build only what a VC4CL device would
                pytest.skip(f"depthwise_direct TW={tw} cannot run here: {reason}")
            out = empty(rt, geo.weight_shape)
            direct.run["grad_weight"](rt, geo, {"TW": tw}, on_device(rt, x), on_device(rt, g),
                                      out)
            np.testing.assert_array_equal(out.get(), want, err_msg=f"width {width} TW={tw}")


def test_depthwise_direct_leaves_the_lane_shift_spelling_to_the_kernel(monkeypatch):
    """Untuned, the kernel picks clang's builtin or the portable spelling itself
    (#ifdef __clang__); PORTABLE=1 forces the portable one."""
    from clconv.algos import depthwise_direct as dd

    seen = []
    monkeypatch.setattr(dd, "get_kernel", lambda rt, f, n, defines: seen.append(defines))
    monkeypatch.setattr(dd, "_kernels", {})
    rt = clconv.current_runtime()
    geo = _geo(x=(1, 4, 28, 28), w=(4, 1, 3, 3), groups=4)
    dd._kernel(rt, geo, {"TW": 16}, dd.KERNELS, "depthwise_direct")
    dd._kernel(rt, geo, {"TW": 16, "PORTABLE": 1}, dd.KERNELS, "depthwise_direct")
    assert "PORTABLE_SHIFTS" not in seen[0]
    assert seen[1]["PORTABLE_SHIFTS"] == 1


def test_validate_rejects_local_memory_and_transform_buffers_beyond_the_device():
    profile = generic_profile(clconv.current_runtime().profile)
    dw = algos.VARIANTS["depthwise"]
    geo = _geo(x=(1, 8, 64, 64), w=(8, 1, 3, 3), groups=8)
    local = {"TW": 16, "TH": 4, "WG": 1, "PAD": 0}
    tiny = dataclasses.replace(profile, local_mem_size=256)
    assert "local memory" in dw.validate(tiny, geo, "forward", local)
    assert "local memory" in dw.validate(tiny, geo, "grad_input", local)
    assert dw.validate(tiny, geo, "forward", dict(local, PAD=1)) is None  # no local memory
    assert dw.validate(profile, geo, "forward", local) is None
    assert "MB=9" in dw.validate(profile, geo, "forward", dict(local, MB=9))
    wino = algos.VARIANTS["winograd"]
    params = {"TM": 4, "TN": 8, "NV": 1, "WG": 1}
    wide = _geo(x=(2, 16, 32, 32), w=(16, 16, 3, 3))
    small = dataclasses.replace(profile, max_mem_alloc_size=1 << 16)
    assert "max allocation" in wino.validate(small, wide, "forward", params)
    assert wino.validate(profile, wide, "forward", params) is None


def test_winograd_refuses_unknown_tilings_and_f4_off_cpus():
    """WM names the tiling: 2 or 4 outputs per tile side, 4 (winograd4.cl) on CPUs only;
    the reason says what it got and what it takes."""
    base = generic_profile(clconv.current_runtime().profile)
    cpu = dataclasses.replace(base, device_type="CPU")
    gpu = dataclasses.replace(base, device_type="GPU")
    wino = algos.VARIANTS["winograd"]
    geo = _geo(x=(1, 32, 28, 28), w=(32, 32, 3, 3))
    params = algos.params_for(cpu, wino, geo, "forward")
    assert wino.validate(cpu, geo, "forward", dict(params, WM=4)) is None
    assert wino.validate(cpu, geo, "forward", dict(params, WM=3)) == \
        "WM=3: outputs per tile side must be one of [2, 4]"
    assert wino.validate(gpu, geo, "forward", dict(params, WM=4)) == \
        "WM=4: F(4x4, 3x3) is built for CPUs only (winograd4.cl)"
    assert wino.validate(gpu, geo, "forward", dict(params, WM=2)) is None


def test_heuristic_is_deterministic_and_sensible():
    # the choices on a CPU, whatever device runs the suite (Oclgrind is a GPU)
    profile = dataclasses.replace(generic_profile(clconv.current_runtime().profile), device_type="CPU")
    assert algos.heuristic(profile, _geo(), "forward") == "im2col"
    assert algos.heuristic(profile, _geo(w=(6, 4, 1, 1), padding=0), "forward") == "gemm1x1"
    # depthwise: on a CPU straight from global memory where that kernel runs the op,
    # on a GPU the local-memory block (a local size of 1 would leave its lanes idle)
    gpu = dataclasses.replace(profile, device_type="GPU")
    dw = _geo(w=(4, 1, 3, 3), groups=4)
    lenet = _geo(x=(2, 1, 28, 28), w=(6, 1, 5, 5), padding=0)
    strided = _geo(x=(2, 2, 28, 28), w=(6, 1, 3, 3), stride=2, groups=2)
    for geo in (dw, lenet):
        assert {algos.heuristic(profile, geo, op) for op in algos.OPS} == {"depthwise_direct"}
        assert {algos.heuristic(gpu, geo, op) for op in algos.OPS} == {"depthwise"}
    assert algos.heuristic(profile, strided, "forward") == "depthwise_direct"
    assert algos.heuristic(profile, strided, "grad_input") == "depthwise"  # the gather
    wide = _geo(x=(1, 128, 28, 28), w=(128, 128, 3, 3))  # many channels and tiles
    assert [algos.heuristic(profile, wide, op) for op in algos.OPS] == \
        ["winograd", "winograd", "im2col"]
    for few in (_geo(x=(1, 256, 14, 14), w=(256, 256, 3, 3)),
                _geo(x=(1, 128, 28, 28), w=(128, 128, 3, 3), stride=2)):
        assert algos.heuristic(profile, few, "forward") == "im2col"
        assert algos.heuristic(profile, few, "grad_input") == "im2col"
    # F(4x4) tiles on a CPU: Winograd from 32 channels where it has 48 tiles (fit), in
    # training too; on a GPU (F(2x2) only) the 64-channel layer stays on im2col
    r50 = _geo(x=(1, 64, 56, 56), w=(64, 64, 3, 3))
    for op in ("forward", "grad_input"):
        assert algos.heuristic(profile, r50, op) == "winograd"
        assert algos.params_for(profile, algos.VARIANTS["winograd"], r50, op)["WM"] == 4
        assert algos.heuristic(gpu, r50, op) == "im2col"
    # weights packed once (inference): no per-call transform, so Winograd from fewer tiles,
    # with F(2x2) tiles where F(4x4) would have too few (32 at 14x14, rows rounded to 8)
    mid = _geo(x=(1, 256, 14, 14), w=(256, 256, 3, 3))
    assert algos.heuristic(profile, mid, "forward", packed=True) == "winograd"
    assert algos.params_for(profile, algos.VARIANTS["winograd"], mid, "forward")["WM"] == 2
    # and elsewhere on a CPU, no column matrix: one group with the channels in the lanes
    # (any stride), grouped layers at stride 1 as shifted views; im2col on a GPU, and for
    # grouped strided layers
    for geo in (_geo(x=(1, 512, 7, 7), w=(512, 512, 3, 3)),
                _geo(x=(1, 64, 13, 13), w=(256, 64, 3, 3)),
                _geo(x=(1, 64, 56, 56), w=(64, 64, 3, 3), stride=2)):
        assert algos.heuristic(profile, geo, "forward", packed=True) == "channels"
        assert algos.heuristic(gpu, geo, "forward", packed=True) == "im2col"
    grouped = _geo(x=(1, 64, 13, 13), w=(256, 32, 3, 3), groups=2)
    assert algos.heuristic(profile, grouped, "forward", packed=True) == "shifted"
    assert algos.heuristic(profile, _geo(x=(1, 64, 56, 56), w=(64, 32, 3, 3), stride=2,
                                         groups=2), "forward", packed=True) == "im2col"


def test_clconv_algo_forces_a_variant(monkeypatch):
    profile = clconv.current_runtime().profile
    geo = _geo()
    monkeypatch.setenv("CLCONV_ALGO", "direct")
    variant, _, how = algos.choose(profile, geo, "forward")
    assert (variant.name, how) == ("direct", "forced")
    monkeypatch.setenv("CLCONV_ALGO", "gemm1x1")  # not valid for 3x3: falls back
    variant, _, how = algos.choose(profile, geo, "forward")
    assert variant.name != "gemm1x1" and how != "forced"
    x = np.ones((1, 4, 8, 8), np.float32)
    w = np.ones((6, 4, 3, 3), np.float32)
    for name in algos.VARIANTS:
        monkeypatch.setenv("CLCONV_ALGO", name)
        np.testing.assert_allclose(clconv.to_numpy(F.conv2d(x, w, padding=1)),
                                   R.conv2d(x, w, padding=1), rtol=1e-5)


def test_unknown_algorithm_name_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("CLCONV_ALGO", "winograd9000")
    with pytest.raises(algos.UnknownAlgorithmError) as info:
        F.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
    message = str(info.value)
    assert "winograd9000" in message
    for name in algos.VARIANTS:
        assert name in message
    with pytest.raises(algos.UnknownAlgorithmError):
        with algos.force("nope"):
            pass


def test_tuning_database_round_trip(tmp_path, monkeypatch):
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)  # a forced variant would win
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path))
    tuning.forget_cache()
    profile = generic_profile(clconv.current_runtime().profile)
    geo = _geo()
    assert tuning.lookup(profile, geo, "forward") is None
    params = {"TM": 2, "TN": 4, "NV": 1, "WG": 1, "MFAST": 0, "FMA": 0}
    path = tuning.save(profile, {tuning.layer_key(geo, "forward"):
                                 {"algo": "im2col", "params": params, "ms": 1.0}})
    assert path.parent == tmp_path and path.is_file()
    assert tuning.device_key(profile) in path.name
    tuning.forget_cache()
    assert tuning.lookup(profile, geo, "forward") == ("im2col", params)
    variant, got, how = algos.choose(profile, geo, "forward")
    assert (variant.name, got, how) == ("im2col", params, "tuned")
    # an entry that no longer validates (e.g. written for a bigger device) is ignored
    bad = dict(params, WG=profile.max_work_group_size + 1)
    tuning.save(profile, {tuning.layer_key(geo, "forward"): {"algo": "im2col", "params": bad}})
    assert algos.choose(profile, geo, "forward")[2] == "heuristic"
    tuning.forget_cache()


def test_shipped_defaults_exist_for_the_pi_and_cpus():
    table = tuning.shipped_defaults()
    assert table["kind"]["VC4CL"]["im2col"]["WG"] == 12
    assert table["kind"]["VC4CL"]["im2col"]["TN"] == 16  # float16 vectors
    assert "CPU" in table["device_type"]


def test_untuned_gemms_keep_the_class_column_vectors_at_every_size(tmp_path, monkeypatch):
    """Variant.fit: every op's GEMM, gradients included, keeps the shipped NV on small
    and large planes (the gradients read both operands in panels on CPUs, where two
    vectors measured faster); a tuned setting is used as measured."""
    profile = clconv.current_runtime().profile
    # a CPU whose class tile has two column vectors (not, say, the 1-vector vfp class
    # an armhf host gets)
    cpu = dataclasses.replace(profile, device_type="CPU", kind=DeviceKind.POCL_CPU,
                              device_name="pthread-skylake-avx512-test", address_bits=64)
    for name, k in (("im2col", 3), ("gemm1x1", 1)):
        variant = algos.VARIANTS[name]
        shipped = tuning.default_params(cpu, name, "forward")["NV"]
        assert shipped == 2  # else this test checks nothing
        for n in (7, 14, 28):
            geo = _geo(x=(1, 32, n, n), w=(32, 32, k, k), padding=k // 2)
            for op in ("forward", "grad_input", "grad_weight"):
                assert algos.params_for(cpu, variant, geo, op)["NV"] == shipped, (name, n, op)
    small = _geo(x=(1, 32, 7, 7), w=(32, 32, 3, 3), padding=1)
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)  # the emulated tiers force direct
    tuned = dict(algos.params_for(cpu, algos.VARIANTS["im2col"], small, "forward"), NV=1)
    tuning.save(cpu, {tuning.layer_key(small, "grad_weight"):
                      {"algo": "im2col", "params": tuned}})
    algos.clear_memo()
    assert algos.choose(cpu, small, "grad_weight")[1]["NV"] == 1


def test_repeated_calls_build_and_choose_nothing_new(monkeypatch):
    """Same shapes again: the choice is memoised and every kernel comes from the cache."""
    from clconv import build

    x = np.ones((2, 8, 10, 10), np.float32)
    w = np.ones((12, 8, 3, 3), np.float32)
    F.conv2d(x, w, padding=1)
    F.conv2d_backward(np.ones((2, 12, 10, 10), np.float32), x, w, padding=1)
    built = []
    original = build._build
    monkeypatch.setattr(build, "_build", lambda *a: built.append(a) or original(*a))
    chosen = []
    original_choose = algos.heuristic
    monkeypatch.setattr(algos, "heuristic", lambda *a: chosen.append(a) or original_choose(*a))
    for _ in range(3):
        F.conv2d(x, w, padding=1)
        F.conv2d_backward(np.ones((2, 12, 10, 10), np.float32), x, w, padding=1)
    assert built == [] and chosen == []


def test_shipped_defaults_apply_to_this_device_type():
    """POCL reports its type as 'ALL | CPU'; the CPU defaults must still be found."""

    profile = clconv.current_runtime().profile
    for spelled in ("CPU", "ALL | CPU"):
        cpu = dataclasses.replace(profile, device_type=spelled, kind=DeviceKind.POCL_CPU)
        shipped = tuning.shipped_defaults()["device_type"]["CPU"]["im2col"]
        common = {k: v for k, v in shipped.items() if not isinstance(v, dict)}
        tile = tuning.cpu_gemm_tile(cpu)  # the tile shape of this CPU's class
        assert tile["TM"] >= 1
        common.update({k: v for k, v in tile.items() if not isinstance(v, dict)})
        assert tuning.default_params(cpu, "im2col") == common
        assert tuning.default_params(cpu, "im2col", "forward") == common
        # an op-named member overrides the common tunables for that op only
        one = tuning.shipped_defaults()["device_type"]["CPU"]["gemm1x1"]
        one_common = {k: v for k, v in one.items() if not isinstance(v, dict)}
        one_common.update({k: v for k, v in tile.items() if not isinstance(v, dict)})
        assert tuning.default_params(cpu, "gemm1x1", "grad_input") == \
            {**one_common, **one["grad_input"], **tile.get("grad_input", {})}
        assert tuning.default_params(cpu, "gemm1x1", "forward") == one_common


# Geometries on which, together, every variant runs a residual epilogue (ACCUMULATE):
# odd widths leave partial vectors at each row's end.
RESIDUAL_CASES = [((2, 3, 7, 11), (5, 3, 3, 3), dict(stride=1, padding=1, groups=1)),
                  ((1, 6, 9, 13), (6, 6, 1, 1), dict(stride=1, padding=0, groups=1)),
                  ((1, 8, 10, 19), (8, 1, 3, 3), dict(stride=1, padding=1, groups=8)),
                  ((1, 4, 9, 9), (6, 4, 3, 3), dict(stride=2, padding=1, groups=1)),
                  ((3, 6, 1, 1), (20, 6, 1, 1), dict(stride=1, padding=0, groups=1))]


@pytest.mark.parametrize("case", RESIDUAL_CASES, ids=lambda c: f"x{c[0]}-w{c[1]}")
def test_every_variant_adds_a_residual_in_its_epilogue(case):
    """relu(conv2d + residual) in one pass, as torch computes relu(conv2d(...) + r):
    NaN and +-inf in the residual included. The output holds the residual before."""
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    x, w = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape))
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    rt = clconv.current_runtime()
    geo = conv_geometry(x_shape, w_shape, kw["stride"], kw["padding"], 1, kw["groups"])
    residual = rng.standard_normal(geo.output_shape).astype(np.float32)
    residual.flat[[0, 7, residual.size - 1]] = (np.nan, np.inf, -np.inf)
    with np.errstate(invalid="ignore"):
        total = R.conv2d(x, w, b, dilation=1, **kw) + residual
        want = np.where(total < 0, 0.0, total)
    scale = R.conv2d(np.abs(x), np.abs(w), np.abs(b), dilation=1, **kw) + np.abs(residual)
    finite = np.isfinite(want)
    xd, wd, bd = on_device(rt, x), on_device(rt, w), on_device(rt, b)
    act = dataclasses.replace(RELU, residual=True)
    ran = []
    for variant, params in _settings(rt.profile, geo, "forward"):
        if params != algos.params_for(rt.profile, variant, geo, "forward"):
            continue  # defaults only: every build costs time
        out = on_device(rt, residual.copy())
        variant.run["forward"](rt, geo, params, xd, wd, bd, out, act=act)
        got = clconv.to_numpy(out)
        name = f"{variant.name} {params} forward + residual + relu"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)], err_msg=name)
        _check(name, got[finite], want[finite], scale[finite])
        ran.append(variant.name)
    assert "direct" in ran


def test_residual_epilogues_reach_every_variant():
    profile = clconv.current_runtime().profile
    seen = set()
    for x_shape, w_shape, kw in RESIDUAL_CASES:
        geo = conv_geometry(x_shape, w_shape, kw["stride"], kw["padding"], 1, kw["groups"])
        seen |= {v.name for v, _ in _settings(profile, geo, "forward")}
    assert seen == set(algos.VARIANTS) - _unreachable(profile)


# im2col's stride-2 rows as vector loads and even lanes (IM2COL_PAIRS, CPUs): rows wide
# enough for several 16-column runs, with padding (runs start inside the row), column
# offsets (kx, dilation) that shift the runs by odd amounts, and a row whose last run
# would read past it, so it ends the scalar way; a batch of two with two groups.
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((2, 4, 10, 40), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 3, 40, 75), (8, 3, 7, 7), dict(stride=2, padding=3)),
    ((2, 2, 9, 97), (5, 2, 3, 3), dict(stride=2, padding=0)),
    ((1, 2, 11, 70), (4, 2, 3, 5), dict(stride=(1, 2), padding=(1, 2), dilation=(1, 3))),
    ((1, 1, 5, 64), (3, 1, 1, 2), dict(stride=2, padding=0)),
])
def test_im2col_stride_two_rows_match_the_reference(x_shape, w_shape, kwargs, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    with algos.force("im2col"):
        got = F.conv2d(x, w, b, **kwargs)
    want = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                    **kwargs)
    _check("im2col stride 2", got, want, np.abs(want).max())


@pytest.mark.parametrize("weights, use", [
    ((64, 3, 7, 7), "short_k"),     # ResNet's stem: K = 147
    ((24, 3, 3, 3), "short_k"),     # K = 27, a tail of rows
    ((64, 64, 3, 3), None),         # K = 576: the class's own tile
])
def test_packed_stem_takes_the_short_k_tile(monkeypatch, weights, use):
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)
    rt = clconv.current_runtime()
    rng = np.random.default_rng(7)
    geo = conv_geometry((2, weights[1], 37, 41), weights, 2, weights[2] // 2, 1, 1)
    w = rng.standard_normal(weights).astype(np.float32)
    x = rng.standard_normal(geo.input_shape).astype(np.float32)
    b = rng.standard_normal(weights[0]).astype(np.float32)
    with algos.force("im2col"):  # a CPU runs one group through `channels` (any stride)
        forward = algos.pack_forward(rt, geo, on_device(rt, w))
    assert forward.variant is algos.IM2COL
    _check_use_tile_and_result(rt, forward, geo, use, (4, 4), x, w, b,
                               stride=2, padding=weights[2] // 2)


def _check_use_tile_and_result(rt, forward, geo, use, avx512_tile, x, w, b, **conv):
    """A packed forward took the untuned tunables of `use` (AVX-512's (TM, NV) tile
    where there is one), and computes the reference's numbers with them."""
    assert algos.forward_use(forward.variant, geo, False) == use
    assert forward.params == algos.params_for(rt.profile, forward.variant, geo, "forward", use)
    if use and rt.profile.cpu_class is AVX512:
        assert (forward.params["TM"], forward.params["NV"]) == avx512_tile
    out = on_device(rt, np.zeros(geo.output_shape, np.float32))
    got = forward.run(rt, geo, on_device(rt, x), on_device(rt, w), on_device(rt, b), out,
                      NO_ACTIVATION).get()
    want = R.conv2d(x, w, b, **conv)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("weights, use", [
    ((16, 128, 1, 1), "memory_bound"),   # SqueezeNet's squeeze: 4096 flops, 576 bytes
    ((16, 16, 1, 1), "memory_bound"),    # as many outputs as inputs
    ((64, 16, 1, 1), None),              # its 1x1 expand writes more than it reads
    ((16, 192, 1, 1), None),             # Inception's: 192 channels' panel past the L1
    ((64, 64, 1, 1), None),              # ResNet's: 16 flops per byte
])
def test_memory_bound_pointwise_layers_take_their_tile(monkeypatch, weights, use, rng):
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)
    rt = clconv.current_runtime()
    geo = conv_geometry((1, weights[1], 23, 29), weights, 1, 0, 1, 1)
    w = rng.standard_normal(weights).astype(np.float32)
    x = rng.standard_normal(geo.input_shape).astype(np.float32)
    b = rng.standard_normal(weights[0]).astype(np.float32)
    forward = algos.pack_forward(rt, geo, on_device(rt, w))
    if forward.variant is not algos.GEMM_1X1:
        pytest.skip(f"{forward.variant.name} runs 1x1 layers here, not gemm1x1")
    _check_use_tile_and_result(rt, forward, geo, use, (2, 4), x, w, b)


@pytest.mark.parametrize("name, x_shape, weights, padding, mfast", [
    ("gemm1x1", (1, 512, 13, 13), (1000, 512, 1, 1), 0, 0),  # 1000 rows, 169 columns
    ("gemm1x1", (2, 64, 56, 56), (256, 64, 1, 1), 0, 1),     # 3136 columns per image
    ("im2col", (1, 1024, 14, 14), (2048, 1024, 1, 1), 0, 0),  # strided below: 49 columns
    ("winograd", (1, 256, 14, 14), (256, 256, 3, 3), 1, 0),  # 256 rows, 7 x 8 tiles
    ("winograd", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1),     # 64 rows, hundreds of tiles
])
def test_forward_gemms_taller_than_wide_read_each_weight_panel_once(name, x_shape, weights,
                                                                     padding, mfast):
    """Untuned, a forward GEMM with more rows (output channels) than columns runs its
    work-items along the columns first (MFAST=0, gemm.weights_first); the gradients and
    wide GEMMs keep the device's order, and so do devices whose order is that already or
    whose untuned tunables leave it to the kernel's default."""
    profile = clconv.current_runtime().profile
    variant = algos.VARIANTS[name]
    stride = 2 if name == "im2col" else 1
    geo = conv_geometry(x_shape, weights, stride, padding, 1, 1)
    shipped = tuning.default_params(profile, name, "forward") or \
        variant.defaults(profile, geo, "forward")
    if int(shipped.get("MFAST", 0)) == 0:
        pytest.skip(f"{profile.kind.name} defaults: {name} has no MFAST=1 to change (MFAST "
                    f"{shipped.get('MFAST', 'not named')})")
    assert int(algos.params_for(profile, variant, geo, "forward")["MFAST"]) == mfast
    assert int(algos.params_for(profile, variant, geo, "grad_input").get("MFAST", 1)) == 1


@pytest.mark.parametrize("x_shape, weights, mfast", [
    ((1, 16, 55, 55), (64, 16, 1, 1), 0),     # SqueezeNet's expand: 8 flops per byte
    ((1, 128, 55, 55), (16, 128, 1, 1), 1),   # its squeeze reads more than it writes
    ((2, 64, 56, 56), (256, 64, 1, 1), 1),    # ResNet's expand: 16 flops per byte
])
def test_memory_bound_expands_write_long_output_runs(x_shape, weights, mfast):
    """Untuned, a memory-bound pointwise forward with more output channels than input
    channels runs its work-items along the output rows (MFAST=0, gemm.output_rows_first);
    one that reads more than it writes, or computes more, keeps the device's order."""
    profile = clconv.current_runtime().profile
    geo = conv_geometry(x_shape, weights, 1, 0, 1, 1)
    shipped = tuning.default_params(profile, "gemm1x1", "forward") or \
        algos.GEMM_1X1.defaults(profile, geo, "forward")
    if int(shipped.get("MFAST", 0)) == 0:
        pytest.skip(f"{profile.kind.name} defaults: gemm1x1 has no MFAST=1 to change (MFAST "
                    f"{shipped.get('MFAST', 'not named')})")
    assert int(algos.params_for(profile, algos.GEMM_1X1, geo, "forward")["MFAST"]) == mfast
    assert int(algos.params_for(profile, algos.GEMM_1X1, geo, "grad_input")
               .get("MFAST", 1)) == 1


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("x_shape,padding", [((1, 3, 5, 4), 1), ((2, 2, 9, 37), 0),
                                             ((1, 2, 6, 17), (2, 1)), ((1, 1, 3, 3), 2)])
def test_winograd_reads_its_input_as_it_is_on_any_device(m, x_shape, padding, rng,
                                                         monkeypatch):
    """F(2x2) and F(4x4) as CPUs build them (WINOGRAD_UNPADDED), through forward's own
    launches on whatever device this is: the tiles read the input as it lies, zeros
    outside the planes, with no padded copy. A NaN at a row's last column is what a load
    of the next row's first tile reads beside that row: outputs whose windows miss it
    stay finite. Under Oclgrind every read stays inside the input, at the first and the
    last planes' ends too."""
    from clconv.algos import winograd
    rt = clconv.current_runtime()
    if rt.profile.kind == DeviceKind.VC4CL:  # build only what a VC4CL device would
        pytest.skip("the unpadded Winograd builds are for CPUs only: VC4CL keeps the "
                    "padded copy, and VC4C cannot compile winograd4.cl")
    monkeypatch.setattr(winograd, "is_cpu", lambda profile: True)
    x = rng.standard_normal(x_shape).astype(np.float32)
    x[0, 0, 1, -1] = np.nan
    w = rng.standard_normal((5, x_shape[1], 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    geo = conv_geometry(x_shape, w.shape, 1, padding, 1, 1)
    params = dict(algos.params_for(rt.profile, algos.VARIANTS["winograd"], geo, "forward"),
                  WM=m, WG=1)
    out = empty(rt, geo.output_shape)
    algos.VARIANTS["winograd"].run["forward"](rt, geo, params, on_device(rt, x),
                                              on_device(rt, w), on_device(rt, b), out)
    want = R.conv2d(x.astype(np.float64), w, b, 1, padding)
    got = out.get()
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isnan(got), ~finite)
    assert finite.any() and scaled_error(got[finite], want[finite]) < TOL


def test_a_pointwise_transposed_convolution_with_long_weight_rows_adds_its_bias(rng):
    """conv_transpose2d runs grad_input's GEMM with the bias in its epilogue; with 520
    output channels (weight rows past gemm.LONG_WEIGHT_ROW) a CPU's GEMM reads the
    weights as rows and stores its output transposed, the bias one per column."""
    x = rng.standard_normal((2, 7, 3, 5)).astype(np.float32)
    w = rng.standard_normal((7, 520, 1, 1)).astype(np.float32)
    b = rng.standard_normal(520).astype(np.float32)
    got = clconv.to_numpy(F.conv_transpose2d(x, w, b))
    want = R.conv_transpose2d(x, w, b)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
