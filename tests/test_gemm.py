"""The public matrix products on the one GEMM (gemm.cl): ONNX Gemm's transposes, C
broadcasts, alpha/beta and fused activation; numpy's matmul broadcasting, the batch
levels gemm.cl takes and the expansion past them; linear's three products; NaN and inf
with every activation against torch."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_edge_values import (ACTIVATIONS, ONNX_ACTIVATIONS, SPECIALS, assert_same_values,
                              torch_activation)

import clconv
import clconv.functional as F
from clconv.algos import tiled_gemm
from clconv.arrays import to_numpy
from clconv.epilogue import RELU
from clconv.ops import gemm as G


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("c_shape", [None, (), (37,), (19, 1), (19, 37)])
def test_gemm_matches_numpy(trans_a, trans_b, c_shape, rng):
    M, K, N = 19, 23, 37  # partial tiles along M and N on every device
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    c = None if c_shape is None else rng.standard_normal(c_shape).astype(np.float32)
    alpha, beta = 0.75, -1.5
    y = to_numpy(G.gemm(a, b, c, alpha, beta, trans_a, trans_b))
    want = alpha * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b))
    if c is not None:
        want = want + beta * c
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((7,), (7,)), ((7,), (3, 7, 5)), ((2, 3, 4, 7), (7,)), ((5, 7), (7, 9)),
    ((2, 1, 4, 7), (3, 7, 6)),           # two levels: a broadcasts inner, b outer
    ((2, 1, 3, 4, 7), (1, 5, 3, 7, 6)),  # three patterns: both expanded
    ((6, 1, 2, 3), (3, 4)), ((1, 4, 3), (2, 1, 3, 5))])
def test_matmul_broadcasts_as_numpy(a_shape, b_shape, rng):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    y = to_numpy(G.matmul(a, b))
    want = np.matmul(a.astype(np.float64), b)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_batch_levels_merge_what_they_can():
    # (2, 3) batch, a whole, b broadcast along the first axis: one level for a's strides
    assert G.batch_levels((2, 3), (3 * 8, 8), (0, 5)) == ((2, 3), (24, 8), (0, 5))
    assert G.batch_levels((2, 3), (24, 8), (15, 5)) == ((1, 6), (0, 8), (0, 5))
    assert G.batch_levels((2, 3, 4), (0, 4, 1), (12, 0, 1)) is None


@pytest.mark.parametrize("x_shape, out_features", [((1, 40), 33), ((3, 5, 17), 64),
                                                   ((70, 9), 1)])
def test_linear_products(x_shape, out_features, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((out_features, x_shape[-1])).astype(np.float32)
    b = rng.standard_normal(out_features).astype(np.float32)
    g = rng.standard_normal(x_shape[:-1] + (out_features,)).astype(np.float32)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(to_numpy(F.linear(x, w, b)), x64 @ w.T + b, rtol=1e-4,
                               atol=1e-4)
    gi, gw, gb = (to_numpy(t) for t in F.linear_backward(g, x, w))
    np.testing.assert_allclose(gi, g64 @ w, rtol=1e-4, atol=1e-4)
    rows = g64.reshape(-1, out_features).T @ x64.reshape(-1, x_shape[-1])
    np.testing.assert_allclose(gw, rows, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, g64.reshape(-1, out_features).sum(0), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: f"{a.name}{a.alpha:g}")
def test_gemm_epilogue_matches_torch_on_nan_and_inf(torch, act, rng):
    M, K, N = 9, 6, 21
    a = rng.standard_normal((M, K)).astype(np.float32) * 4
    b = rng.standard_normal((N, K)).astype(np.float32)
    c = rng.standard_normal(N).astype(np.float32)
    a.flat[rng.integers(0, a.size, 6)] = np.resize(SPECIALS, 6)
    c[:3] = SPECIALS
    got = to_numpy(G.gemm(a, b, c, trans_b=True, act=act))
    ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
    want = torch_activation(torch, act, torch.addmm(tc, ta, tb.T)).numpy()
    scale = np.abs(np.nan_to_num(a, posinf=0, neginf=0)) @ np.abs(b.T) + np.abs(
        np.nan_to_num(c, posinf=0, neginf=0)) + 1.0
    assert_same_values(got, want, scale, act.name)


@pytest.mark.parametrize("limits", [None, "videocore4", "v3d"])
@pytest.mark.parametrize("trans_b", [False, True])
def test_untuned_tiles_are_valid_on_each_device(limits, trans_b):
    # tuning_defaults.json's "gemm" entries within each device's limits, VC4C's included
    profile = clconv.current_runtime().profile
    profile = profile.with_limits(limits) if limits else profile
    for M, N in [(1, 1), (1, 1000), (64, 3), (300, 300)]:
        params = tiled_gemm.matrix_params(profile, M, N, trans_b)
        assert tiled_gemm.validate_params(profile, params) is None, (limits, M, N, params)
        assert 1 <= params["TM"] <= M


@pytest.mark.parametrize("product", ["Gemm", "MatMul"])
@pytest.mark.parametrize("op, attrs, name", ONNX_ACTIVATIONS, ids=[a[0] for a in ONNX_ACTIVATIONS])
def test_onnx_products_fuse_every_activation_and_match_onnx_runtime(product, op, attrs, name,
                                                                    rng):
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    ort = pytest.importorskip("onnxruntime",
                              reason="onnxruntime not installed: pip install 'clconv[onnx]'")
    from onnx import TensorProto, helper, numpy_helper

    import clconv.onnx as conx
    from clconv.onnx.steps import GemmStep, MatMulStep

    x = rng.standard_normal((2, 5, 12) if product == "MatMul" else (5, 12)).astype(np.float32)
    x.flat[[3, 20, 41]] = SPECIALS
    w = rng.standard_normal((12, 19)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["p"]
    if op == "Clip":
        inits += [numpy_helper.from_array(np.array(v, np.float32), n)
                  for n, v in (("lo", -0.5), ("hi", 0.75))]
        inputs += ["lo", "hi"]
    first = (helper.make_node("Gemm", ["x", "w"], ["p"], alpha=0.5) if product == "Gemm"
             else helper.make_node("MatMul", ["x", "w"], ["p"]))
    graph = helper.make_graph(
        [first, helper.make_node(op, inputs, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape[:-1] + (19,))], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = data.SerializeToString()
    (want,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    compiled = conx.load(data)
    (step,) = compiled.plan.steps  # the activation runs in the GEMM's epilogue
    assert isinstance(step, GemmStep if product == "Gemm" else MatMulStep)
    assert step.act.name == name
    (got,) = compiled.run([x])
    scale = np.abs(np.nan_to_num(x, posinf=0, neginf=0)) @ np.abs(w) + 1.0
    assert_same_values(got, want, scale, f"{product}+{op}")


def test_bad_products_raise_before_any_kernel(monkeypatch):
    import clconv.algos.tiled_gemm as tg

    def no_launch(*args, **kwargs):
        raise AssertionError("a kernel was launched")
    monkeypatch.setattr(tg, "launch_grid", no_launch)
    a, b = np.ones((3, 4), np.float32), np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"b: inner dimensions differ"):
        G.gemm(a, b)
    with pytest.raises(ValueError, match=r"c: shape \(2,\) does not broadcast to \(3, 6\)"):
        G.gemm(a, np.ones((4, 6), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="alpha"):
        G.gemm(a, np.ones((4, 6), np.float32), alpha=float("nan"))
    with pytest.raises(ValueError, match=r"b: matmul of shapes \(3, 4\) and \(5, 6\)"):
        G.matmul(a, b)
    with pytest.raises(ValueError, match=r"b: .* batch axes \(2,\) and \(3,\) do not broadcast"):
        G.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 2), np.float32))


@pytest.mark.parametrize("packed", ["A", "A+B"])
@pytest.mark.parametrize("n", [*range(33, 49), 64, 65])
def test_last_column_panel_of_any_width(packed, n, rng):
    """Tiles of NV = 2 vectors of TN = 8 columns over N = 33..65: the last column panel
    holds each width from 1 to 16 columns, and one that a single vector covers runs the K loop on that
    vector alone (gemm.cl K_STEPS(1)); with packed A, packed B and the B_AFFINE prologue
    (+ ReLU) it has to match the whole-panel results."""
    rt = clconv.current_runtime()
    params = {"TM": 4, "TN": 8, "NV": 2, "WG": 1, "MFAST": 1}
    M, K = 11, 37
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, n)).astype(np.float32)
    scale = rng.standard_normal(K).astype(np.float32)
    shift = rng.standard_normal(K).astype(np.float32)
    bias = rng.standard_normal(M).astype(np.float32)
    dev = lambda v: clconv.arrays.on_device(rt, v)  # noqa: E731
    pa, lda, sa = tiled_gemm.pack_a(rt, params, dev(a), 1, M, K)
    if packed == "A+B":
        B, ldb = tiled_gemm.pack_b(rt, params, dev(b), K, n)
    else:
        B, ldb = dev(b), n
    c = dev(np.zeros((M, n), np.float32))
    tiled_gemm.gemm(rt, params, M, n, K, 1, pa, lda, (0, sa, 0), B, ldb, (0, 0, 0), c, n,
                    (0, 0), 1, 1, a_packed=True, b_packed=packed == "A+B", bias=dev(bias),
                    b_affine=(dev(scale), dev(shift), True))
    b_in = np.maximum(b.astype(np.float64) * scale[:, None] + shift[:, None], 0)
    want = a.astype(np.float64) @ b_in + bias[:, None]
    np.testing.assert_allclose(to_numpy(c), want, rtol=1e-4, atol=1e-4 * abs(want).max())


@pytest.mark.parametrize("width", [1, 3, 7, 8, 9, 14, 16, 17, 30])
@pytest.mark.parametrize("residual", [False, True])
def test_output_rows_inside_borders(width, residual, rng):
    """A 1x1 convolution's GEMM storing its output rows inside zero-bordered planes
    (gemm.cl's out_pitch/out_base, CPUs: the vectors that lie in one row stored whole,
    the others run by run): rows narrower and wider than a vector, vectors moved back
    at the last column and a last panel one vector covers; with a residual in the
    output (ACCUMULATE) too. Every border float keeps what it held."""
    rt = clconv.current_runtime()
    params = {"TM": 4, "TN": 8, "NV": 2, "WG": 1, "MFAST": 1}
    M, K, rows, pad = 6, 5, 3, 2
    n = rows * width
    pitch, plane_rows = width + 2 * pad + 1, rows + 2 * pad  # a wider right border too
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, n)).astype(np.float32)
    bias = rng.standard_normal(M).astype(np.float32)
    planes = np.full((M, plane_rows, pitch), 7.0, np.float32)  # borders: a sentinel
    inside = (slice(None), slice(pad, pad + rows), slice(pad, pad + width))
    held = rng.standard_normal((M, rows, width)).astype(np.float32)
    planes[inside] = held
    dev = lambda v: clconv.arrays.on_device(rt, v)  # noqa: E731
    pa, lda, sa = tiled_gemm.pack_a(rt, params, dev(a), 1, M, K)
    c = dev(planes)
    act = RELU if not residual else dataclasses.replace(RELU, residual=True)
    tiled_gemm.gemm(rt, params, M, n, K, 1, pa, lda, (0, sa, 0), dev(b), n, (0, 0, 0),
                    c, plane_rows * pitch, (0, 0), 1, 1, a_packed=True, bias=dev(bias),
                    act=act, shifted=(1, 0, width, width), out_rows=(pitch, pad * pitch + pad))
    product = (a.astype(np.float64) @ b + bias[:, None]).reshape(M, rows, width)
    want = planes.astype(np.float64)
    want[inside] = np.maximum(product + (held if residual else 0), 0)
    got = to_numpy(c)
    np.testing.assert_allclose(got[inside], want[inside], rtol=1e-5, atol=1e-5)
    border = np.ones(got.shape, bool)
    border[inside] = False
    assert (got[border] == 7.0).all()
