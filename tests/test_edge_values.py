"""NaN and +-inf: every convolution variant with every fused activation, the activations
alone, and ONNX Conv + activation give what torch (and ONNX Runtime) give: NaN in the
same places, the same infinities, finite values within float32 rounding."""
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweeps import (AVG_POOL3D, CONV3D, CONV_TRANSPOSE3D, MAX_POOL3D, POOL3D_INPUT,
                    generic_profile)

import clconv
from clconv import algos
from clconv.arrays import empty, on_device
from clconv.epilogue import ACTIVATION_IDS, Activation
from clconv.ops import elementwise
from clconv.ops.conv import conv2d_activation, conv_geometry
from clconv.optable import BY_NAME

TOL = 1e-4  # relative to the sum of |terms| behind each output (see clconv.compare)
SPECIALS = (np.nan, np.inf, -np.inf)

# One of each id, with parameters that reach every branch: clip's bounds inside the
# data, hard_sigmoid as torch's (alpha 1/6, beta 1/2); leaky_relu also with slope 0,
# where torch gives NaN for -inf (-inf * 0).
ACTIVATIONS = [Activation("none"), Activation("relu"), Activation("leaky_relu", 0.1),
               Activation("leaky_relu", 0.0), Activation("clip", -0.5, 0.75),
               Activation("sigmoid"), Activation("tanh"),
               Activation("hard_sigmoid", 1 / 6, 0.5), Activation("hard_swish")]
assert {a.name for a in ACTIVATIONS} == set(ACTIVATION_IDS)

# geometries that reach every variant: direct, im2col, shifted and winograd (partial tiles);
# gemm1x1; depthwise with a multiplier (depthwise, depthwise_direct); grouped, strided
GEOMETRIES = [
    ((2, 5, 9, 11), (7, 5, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
    ((1, 6, 7, 9), (4, 6, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
    ((2, 4, 9, 13), (8, 1, 3, 3), dict(stride=1, padding=1, dilation=1, groups=4)),
    ((1, 4, 10, 9), (6, 2, 3, 3), dict(stride=2, padding=1, dilation=1, groups=2)),
    ((3, 6, 1, 1), (20, 6, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),  # linear
]
# non-default tunables whose epilogues differ: narrow GEMM vectors (float2, float4 and
# two per row), depthwise's padded kernel (PAD=1) and 4-wide spans, Winograd's F(4x4)
# tiles (CPUs; fit gives these small layers F(2x2))
EXTRA_PARAMS = {
    "winograd": [{"TM": 3, "TN": 4, "NV": 2, "WG": 5, "MFAST": 0, "FMA": 0, "WM": 4},
                 {"TM": 8, "TN": 16, "NV": 2, "WG": 1, "MFAST": 1, "FMA": 1, "WM": 4}],
    "im2col": [{"TM": 3, "TN": 4, "NV": 2, "WG": 5, "MFAST": 0, "FMA": 0},
               {"TM": 1, "TN": 2, "NV": 1, "WG": 1, "MFAST": 1}],
    "shifted": [{"TM": 3, "TN": 4, "NV": 2, "WG": 5, "MFAST": 0, "FMA": 0},
                {"TM": 1, "TN": 2, "NV": 1, "WG": 1, "MFAST": 1}],
    "depthwise": [{"TW": 4, "TH": 1, "WG": 8, "PAD": 1, "MB": 1}],
}


def torch_activation(torch, act: Activation, y):
    F = torch.nn.functional
    return {"none": lambda: y, "relu": lambda: F.relu(y),
            "leaky_relu": lambda: F.leaky_relu(y, act.alpha),
            "clip": lambda: torch.clamp(y, act.alpha, act.beta),
            "sigmoid": lambda: torch.sigmoid(y), "tanh": lambda: torch.tanh(y),
            "hard_sigmoid": lambda: torch.clamp(act.alpha * y + act.beta, 0, 1),
            "hard_swish": lambda: F.hardswish(y)}[act.name]()


def assert_same_values(got, want, scale, what):
    """NaN where `want` has NaN, the same infinities, finite values within TOL * scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    for test in (np.isnan, np.isposinf, np.isneginf):
        wrong = np.flatnonzero(test(got) != test(want))
        assert wrong.size == 0, (f"{what}: {test.__name__} differs at {wrong.size} places, "
                                 f"first flat index {wrong[:1]}: got {got.flat[wrong[0]]}, "
                                 f"torch {want.flat[wrong[0]]}")
    finite = np.isfinite(want)
    error = np.abs(got[finite] - want[finite]) / np.maximum(scale[finite], 1e-30)
    assert error.size == 0 or error.max() <= TOL, f"{what}: error {error.max():.3g}"


def with_specials(x, positions):
    """x with NaN, +inf, -inf in turn at the flat `positions`."""
    x = x.copy()
    for i, p in enumerate(positions):
        x.flat[p % x.size] = SPECIALS[i % 3]
    return x


def _data(x_shape, w_shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(np.float32),
            rng.standard_normal(w_shape).astype(np.float32),
            rng.standard_normal(w_shape[0]).astype(np.float32))


def _settings(profile, geo, op="forward"):
    for variant, params in algos.valid_variants(profile, geo, op):
        yield variant, params
        for extra in EXTRA_PARAMS.get(variant.name, []):
            extra = dict(extra, WG=min(extra["WG"], profile.max_work_group_size))
            if algos.valid(profile, variant, geo, op, extra):
                yield variant, extra


def test_the_geometries_reach_every_variant():
    # which variants the geometries reach under the rules every device shares (VC4CL
    # runs no depthwise_direct at all)
    profile = generic_profile(clconv.current_runtime().profile)
    reached = {variant.name for x, w, kw in GEOMETRIES
               for variant, _ in _settings(profile, conv_geometry(x, w, **kw))}
    assert reached == set(algos.VARIANTS)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: f"{a.name}{a.alpha:g}")
@pytest.mark.parametrize("case", GEOMETRIES, ids=lambda c: f"x{c[0]}-w{c[1]}-g{c[2]['groups']}")
def test_every_variant_with_every_activation_matches_torch_on_nan_and_inf(torch, case, act):
    x_shape, w_shape, kw = case
    rt = clconv.current_runtime()
    geo = conv_geometry(x_shape, w_shape, **kw)
    settings_ = list(_settings(rt.profile, geo))
    assert len(settings_) >= 2  # direct and at least one other
    x0, w, b = _data(x_shape, w_shape, zlib.crc32(repr(case).encode()))
    wd, bd = on_device(rt, w), on_device(rt, b)
    tw, tb = torch.from_numpy(w), torch.from_numpy(b)
    scale = torch.nn.functional.conv2d(torch.from_numpy(np.nan_to_num(np.abs(x0), posinf=0)),
                                       tw.abs(), tb.abs(), **kw).numpy()

    @settings(max_examples=6, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=7))
    def check(positions):
        x = with_specials(x0, positions)
        want = torch_activation(torch, act, torch.nn.functional.conv2d(
            torch.from_numpy(x), tw, tb, **kw)).numpy()
        xd = on_device(rt, x)
        for variant, params in settings_:
            out = empty(rt, geo.output_shape)
            variant.run["forward"](rt, geo, params, xd, wd, bd, out, act=act)
            assert_same_values(out.get(), want, scale, f"{variant.name} {params} {act.name}")

    check()


@pytest.mark.parametrize("case", GEOMETRIES, ids=lambda c: f"x{c[0]}-w{c[1]}-g{c[2]['groups']}")
def test_every_grad_input_variant_matches_torch_on_nan_and_inf(torch, case):
    """grad_input is a convolution of the output gradient too (winograd's the same
    forward, with flipped weights): NaN and inf in that gradient as torch has them."""
    x_shape, w_shape, kw = case
    rt = clconv.current_runtime()
    geo = conv_geometry(x_shape, w_shape, **kw)
    _, w, _ = _data(x_shape, w_shape, 3)
    g0 = np.random.default_rng(4).standard_normal(geo.output_shape).astype(np.float32)
    g = with_specials(g0, [3, 50, 97, 140, 201, 255])
    want = torch.nn.grad.conv2d_input(x_shape, torch.from_numpy(w), torch.from_numpy(g),
                                      **kw).numpy()
    scale = torch.nn.grad.conv2d_input(x_shape, torch.from_numpy(np.abs(w)),
                                       torch.from_numpy(np.abs(g0)), **kw).numpy()
    gd, wd = on_device(rt, g), on_device(rt, w)
    for variant, params in _settings(rt.profile, geo, "grad_input"):
        out = empty(rt, geo.input_shape)
        variant.run["grad_input"](rt, geo, params, gd, wd, out)
        assert_same_values(out.get(), want, scale, f"{variant.name} {params} grad_input")


def test_winograd_keeps_infinities_on_a_wide_layer(torch):
    """The issue's layer: 128 channels, one inf; the transforms alone made 895 NaNs."""
    rt = clconv.current_runtime()
    x, w, b = _data((1, 128, 32, 32), (64, 128, 3, 3), 7)
    x[0, 17, 9, 20] = np.inf
    x[0, 100, 0, 31] = -np.inf  # at a corner of the zero border
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b), padding=1).numpy()
    assert np.isinf(want).sum() > 0
    with algos.force("winograd"):
        geo = conv_geometry(x.shape, w.shape, 1, 1, 1, 1)
        assert algos.choose(rt.profile, geo, "forward")[0].name == "winograd"
        got = clconv.to_numpy(conv2d_activation(x, w, b, padding=1))
    scale = torch.nn.functional.conv2d(torch.from_numpy(np.abs(np.nan_to_num(x, posinf=0,
                                                                              neginf=0))),
                                       torch.from_numpy(np.abs(w)), torch.from_numpy(np.abs(b)),
                                       padding=1).numpy()
    assert_same_values(got, want, scale, "winograd")


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: f"{a.name}{a.alpha:g}")
def test_each_activation_alone_matches_torch(torch, act):
    rng = np.random.default_rng(zlib.crc32(act.name.encode()))
    x = (rng.standard_normal((3, 5, 67)) * 4).astype(np.float32)
    x = with_specials(x, rng.integers(0, x.size, 30))
    x.flat[:3] = SPECIALS  # each for sure
    want = torch_activation(torch, act, torch.from_numpy(x)).numpy()
    scale = np.maximum(np.abs(np.nan_to_num(x, posinf=0, neginf=0)), 1.0)
    got = elementwise.activation(x, act).get()
    assert_same_values(got, want, scale, act.name)
    assert_same_values(act.numpy(x), want, scale, f"{act.name} on the host")


def test_functional_activations_match_torch(torch):
    from clconv import functional as F

    x = with_specials(np.random.default_rng(3).standard_normal(50).astype(np.float32),
                      range(0, 50, 7))
    tx, scale = torch.from_numpy(x), np.ones(50)
    for ours, theirs in [(F.relu(x), torch.relu(tx)),
                         (F.leaky_relu(x, 0.2), torch.nn.functional.leaky_relu(tx, 0.2)),
                         (F.sigmoid(x), torch.sigmoid(tx)), (F.tanh(x), torch.tanh(tx))]:
        assert_same_values(ours.get(), theirs.numpy(), scale, "functional")


def test_conv2d_activation_takes_an_activation():
    with pytest.raises(TypeError, match="activation: expected a clconv.epilogue.Activation"):
        conv2d_activation(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32),
                          activation="relu")


ONNX_ACTIVATIONS = [("Relu", {}, "relu"), ("LeakyRelu", {"alpha": 0.1}, "leaky_relu"),
                    ("Clip", {}, "clip"), ("Sigmoid", {}, "sigmoid"), ("Tanh", {}, "tanh"),
                    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "hard_sigmoid"),
                    ("HardSwish", {}, "hard_swish")]


@pytest.mark.parametrize("op, attrs, name", ONNX_ACTIVATIONS, ids=[a[0] for a in ONNX_ACTIVATIONS])
def test_onnx_conv_fuses_every_activation_and_matches_onnx_runtime_on_nan(torch, op, attrs,
                                                                          name):
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    ort = pytest.importorskip("onnxruntime",
                              reason="onnxruntime not installed: pip install 'clconv[onnx]'")
    from onnx import TensorProto, helper, numpy_helper

    import clconv.onnx as conx
    from clconv.onnx.steps import ConvStep

    x0, w, b = _data((2, 8, 10, 11), (16, 8, 3, 3), zlib.crc32(op.encode()))
    x = with_specials(x0, [5, 300, 1000, 1650])  # NaN, inf, -inf, NaN in 4 channels
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    inputs = ["c"]
    if op == "Clip":
        inits += [numpy_helper.from_array(np.array(v, np.float32), n)
                  for n, v in (("lo", -0.5), ("hi", 0.75))]
        inputs += ["lo", "hi"]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(op, inputs, ["y"], **attrs)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "k", "h", "w"])], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = data.SerializeToString()
    (want,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.isnan(want).any() and np.isfinite(want).any()
    scale = torch.nn.functional.conv2d(torch.from_numpy(np.abs(x0)), torch.from_numpy(np.abs(w)),
                                       torch.from_numpy(np.abs(b)), padding=1).numpy()
    for forced in (None, "direct", "winograd"):
        with algos.force(forced):
            compiled = conx.load(data)
            (step,) = compiled.plan.steps  # the activation runs in the convolution
            assert isinstance(step, ConvStep) and step.act.name == name
            (got,) = compiled.run([x])
        assert_same_values(got, want, scale, f"Conv+{op} ({forced or 'heuristic'})")


SPATIAL = [name for dims in ("1d", "2d", "3d") for name in
           (f"conv{dims}", f"conv_transpose{dims}", f"max_pool{dims}", f"avg_pool{dims}",
            f"adaptive_avg_pool{dims}") if name in BY_NAME]


def check_specials_like_torch(torch, spec, args, kwargs, rng, what):
    """`spec`'s op with NaN, +inf and -inf at 3 random places of its input against torch;
    the outputs (max pooling's indices too, exactly) position by position."""
    x, *rest = args
    special = with_specials(x, rng.integers(0, x.size, 3))
    outputs = spec.op(special, *rest, **kwargs)
    got = [clconv.to_numpy(o) for o in (outputs if isinstance(outputs, tuple) else (outputs,))]
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in [special] + rest]
    want = getattr(torch.nn.functional, spec.torch)(*tensors, **kwargs)
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    finite_args = [np.where(np.isfinite(special), special, 0)] + rest
    scale = (spec.scale(finite_args, kwargs, None) if spec.scale
             else np.abs(np.where(np.isfinite(want[0]), want[0], 0)) + 1e-6)
    assert_same_values(got[0], want[0], np.asarray(scale, np.float64), what)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(g, w, err_msg=f"{what} indices")


@pytest.mark.parametrize("name", SPATIAL)
def test_op_table_convolutions_and_pools_match_torch_on_nan_and_inf(torch, name):
    """Each 1-D, 2-D and 3-D convolution and pool of the op table on one of its samples,
    with NaN, +inf and -inf in the input."""
    spec = BY_NAME[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    args, kwargs = spec.sample(rng)
    kwargs = dict(kwargs, return_indices=False) if "return_indices" in kwargs else kwargs
    check_specials_like_torch(torch, spec, args, kwargs, rng, name)


def _conv3d_case(name, case):
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(zlib.crc32(f"{name}{case}".encode()))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in name else w_shape[0]
    return (name, (x.astype(np.float32), w.astype(np.float32),
                   rng.standard_normal(channels).astype(np.float32)), kwargs)


def _pool3d_case(name, kwargs):
    rng = np.random.default_rng(zlib.crc32(f"{name}{kwargs}".encode()))
    return name, (rng.standard_normal(POOL3D_INPUT).astype(np.float32),), kwargs


# fixed 3-D cases beside the samples: 'same' with dilation, strided and padded windows,
# max pooling's indices, divisor_override
EDGE_3D = [_conv3d_case("conv3d", CONV3D[0]), _conv3d_case("conv3d", CONV3D[1]),
           _conv3d_case("conv_transpose3d", CONV_TRANSPOSE3D[0]),
           _pool3d_case("max_pool3d", dict(MAX_POOL3D[0], return_indices=True)),
           _pool3d_case("max_pool3d", dict(MAX_POOL3D[1], return_indices=True)),
           _pool3d_case("avg_pool3d", AVG_POOL3D[0]), _pool3d_case("avg_pool3d", AVG_POOL3D[2])]


@pytest.mark.parametrize("name,args,kwargs", EDGE_3D,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(EDGE_3D)])
def test_3d_cases_match_torch_on_nan_and_inf(torch, name, args, kwargs):
    """NaN and inf in the input only: torch's own backends disagree on 0 * inf in the
    weights' padding."""
    rng = np.random.default_rng(zlib.crc32(f"{name}{kwargs}specials".encode()))
    check_specials_like_torch(torch, BY_NAME[name], list(args), kwargs, rng, name)
