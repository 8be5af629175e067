"""im2col_panels (kernels_cl/im2col.cl), the CPU forward's column matrix in the GEMM's
B panels, against a numpy column matrix cut into the same panels: bit for bit, since
it only copies. The shapes reach each copy path: pieces of a panel across output rows
(Wo below and above the panel), the 16-lane vector copies at stride 1 and 2 (and the
stride-2 load stopping at the row's end), the scalar path at stride 3, dilation,
padding past the window, groups, a batch, and more rows than one work-item takes.
im2col_row_panels, grad_weight's column matrix in the GEMM's B panels (rows in panels,
pixel-major), transpose_planes' panels and flip_weights_panels' (grad_input's flipped
weights in A panels), the same way."""
import numpy as np
import pytest

from clconv.algos.gemm import PANEL_ROWS, flip_weights_panels, im2col_panels, im2col_row_panels, \
    pack_columns, transpose_planes
from clconv.algos.tiled_gemm import gemm, tile_n
from clconv.arrays import on_device
from clconv.geometry import conv_geometry
from clconv.runtime import current

CASES = [
    # x shape, w shape, stride, padding, dilation, groups, panel
    ((1, 3, 40, 40), (8, 3, 7, 7), 2, 3, 1, 1, 32),       # a stem: Wo 20 < panel
    ((2, 4, 9, 37), (6, 2, 3, 3), 1, 1, 1, 2, 32),        # Wo 37 > panel, groups, batch
    ((1, 8, 12, 70), (4, 8, 3, 3), 1, 1, 1, 1, 16),       # 72 rows: two row chunks
    ((1, 2, 11, 75), (3, 2, 3, 3), 2, 1, 1, 1, 32),       # stride 2, Wo 38: vector pairs
    ((1, 2, 10, 31), (3, 2, 3, 3), 2, 0, 1, 1, 32),       # stride 2 ending at the row
    ((1, 3, 13, 29), (2, 3, 3, 2), 3, 2, 2, 1, 8),        # stride 3, dilation 2
    ((1, 1, 5, 6), (2, 1, 5, 5), 1, 4, 1, 1, 8),          # padding past the window
    ((1, 2, 14, 14), (4, 2, 3, 3), (2, 1), (0, 1), (1, 2), 1, 4),
]


def _columns(x, geo):
    """The column matrix per (image, group): (N*G, CgRS, Ho*Wo), float64 -> float32."""
    N, C, H, W = x.shape
    G = geo.groups
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    # padding after: whatever the last window reaches past the input
    bottom = max(0, (geo.Ho - 1) * sh + (geo.kh - 1) * dh + 1 - H - geo.pad_top)
    right = max(0, (geo.Wo - 1) * sw + (geo.kw - 1) * dw + 1 - W - geo.pad_left)
    xp = np.pad(x, ((0, 0), (0, 0), (geo.pad_top, bottom), (geo.pad_left, right)))
    rows = []
    for c in range(C):
        for ky in range(geo.kh):
            for kx in range(geo.kw):
                y0, x0 = ky * dh, kx * dw
                rows.append(xp[:, c, y0:y0 + sh * (geo.Ho - 1) + 1:sh,
                               x0:x0 + sw * (geo.Wo - 1) + 1:sw].reshape(N, -1))
    col = np.stack(rows, axis=1)  # (N, C*kh*kw, Ho*Wo)
    return col.reshape(N * G, C // G * geo.kh * geo.kw, geo.Ho * geo.Wo)


def _panels(col, panel):
    """(B, K, P) -> (B, panels, K, panel), zero past P."""
    B, K, P = col.shape
    n = -(-P // panel)
    padded = np.zeros((B, K, n * panel), np.float32)
    padded[:, :, :P] = col
    return padded.reshape(B, K, n, panel).transpose(0, 2, 1, 3)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, panel", CASES)
def test_panels_hold_the_column_matrix(x_shape, w_shape, stride, padding, dilation, groups,
                                       panel, rng):
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    x = rng.standard_normal(x_shape).astype(np.float32)
    rt = current()
    colp, ld, per_group = im2col_panels(rt, on_device(rt, x), geo, panel)
    expected = _panels(_columns(x, geo), panel)
    assert ld == expected.shape[2] * panel
    assert per_group == expected.shape[1] * ld
    got = colp.get().reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)


def test_a_case_spans_two_work_items_of_rows():
    _, (_, cg, kh, kw), *_ = CASES[2]
    assert PANEL_ROWS < cg * kh * kw <= 2 * PANEL_ROWS


@pytest.mark.parametrize("params", [{"TM": 3, "TN": 4, "NV": 2, "WG": 5, "MFAST": 0},
                                    {"TM": 8, "TN": 16, "NV": 2, "WG": 1, "MFAST": 1}])
def test_the_gemm_reads_the_panels(params, rng):
    """gemm.cl B_PACKED: the product of weights and the panels, every image and group,
    columns past Ho*Wo (the last panel's zeros) not stored."""
    x_shape, w_shape, stride, padding, dilation, groups, _ = CASES[1]
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    rt = current()
    panel = tile_n(params)
    colp, ld, per_group = im2col_panels(rt, on_device(rt, x), geo, panel)
    G, P = groups, geo.Ho * geo.Wo
    Kg, crs = geo.K // G, w_shape[1] * geo.kh * geo.kw
    out = on_device(rt, np.full((geo.N, geo.K, P), np.nan, np.float32))
    gemm(rt, dict(params, KUNROLL=1), Kg, P, crs, 1, on_device(rt, w), crs, (0, Kg * crs, 0),
         colp, ld, (G * per_group, per_group, 0), out, P, (geo.K * P, Kg * P),
         geo.N * G, G, b_packed=True)
    col = _columns(x.astype(np.float64), geo).reshape(geo.N, G, crs, P)
    expected = np.einsum("gkr,ngrp->ngkp", w.reshape(G, Kg, crs), col).reshape(out.shape)
    np.testing.assert_allclose(out.get(), expected, rtol=1e-4, atol=1e-4)


def _row_panels(col, panel):
    """(B, K, P) -> (B, panels, P, panel), zero rows past K."""
    B, K, P = col.shape
    n = -(-K // panel)
    padded = np.zeros((B, n * panel, P), np.float32)
    padded[:, :K] = col
    return padded.reshape(B, n, panel, P).transpose(0, 1, 3, 2)


# rows per panel: 8 (the 8 x 8 shuffles of stride-1 rows), 6 and 3 (element by element),
# 1 (the row-major matrix itself)
@pytest.mark.parametrize("panel", [8, 6, 3, 1])
@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, _",
                         CASES + [((1, 5, 4, 9), (3, 5, 1, 1), 1, 0, 1, 1, None)])
def test_row_panels_hold_the_column_matrix(x_shape, w_shape, stride, padding, dilation,
                                           groups, _, panel, rng):
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    x = rng.standard_normal(x_shape).astype(np.float32)
    rt = current()
    colr, lda, per_image = im2col_row_panels(rt, on_device(rt, x), geo, panel)
    expected = _row_panels(_columns(x, geo), panel)
    assert lda == expected.shape[2] * panel
    assert per_image == expected.shape[1] * lda
    np.testing.assert_array_equal(colr.get().reshape(expected.shape), expected)


@pytest.mark.parametrize("width, panels", [(32, True), (8, True), (2, True), (8, False)])
def test_transposed_planes_in_rows_or_panels(width, panels, rng):
    """dY's (Kg x P) blocks per (image, group) as (P x Kg): rows of round_up(Kg, width)
    floats, zeros past Kg, or panels of `width` channels, pixel-major (grad_weight's A;
    2: no whole 4 x 4 block)."""
    geo = conv_geometry((2, 4, 9, 7), (18, 2, 3, 3), 1, 1, 1, 2)
    grad_out = rng.standard_normal(geo.output_shape).astype(np.float32)
    rt = current()
    G, P, Kg = geo.groups, geo.Ho * geo.Wo, geo.K // geo.groups
    out, ld = transpose_planes(rt, on_device(rt, grad_out), geo.N * G, Kg, P, width, panels)
    assert ld == -(-Kg // width) * width
    rows = np.zeros((geo.N * G, P, ld), np.float32)
    rows[:, :, :Kg] = grad_out.reshape(geo.N * G, Kg, P).transpose(0, 2, 1)
    if panels:
        rows = rows.reshape(geo.N * G, P, ld // width, width).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(out.get().reshape(rows.shape), rows)


@pytest.mark.parametrize("w_shape, groups, tm", [
    ((6, 20, 3, 3), 1, 8),   # 20 rows: two whole panels and a partial one
    ((6, 16, 3, 3), 1, 8),   # whole panels only
    ((8, 5, 2, 3), 2, 3),    # groups, a 2x3 window
    ((4, 3, 3, 3), 1, 1),    # one-row panels: the row-major flipped weights
])
def test_flipped_weights_in_panels(w_shape, groups, tm, rng):
    """grad_input's weights (K, Cg, kh, kw) flipped to (C, Kg, kh, kw), both window axes
    reversed, each group's (Cg x Kg*kh*kw) matrix in panels of TM rows, K-major."""
    K, cg, kh, kw = w_shape
    geo = conv_geometry((1, cg * groups, 7, 7), w_shape, 1, 1, 1, groups)
    w = rng.standard_normal(w_shape).astype(np.float32)
    rt = current()
    packed, lda, per_group = flip_weights_panels(rt, geo, on_device(rt, w), tm)
    kg, panels = K // groups, -(-cg // tm)
    flipped = w.reshape(groups, kg, cg, kh, kw)[..., ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    rows = np.zeros((groups, panels * tm, kg * kh * kw), np.float32)
    rows[:, :cg] = flipped.reshape(groups, cg, -1)
    expected = rows.reshape(groups, panels, tm, -1).transpose(0, 1, 3, 2)
    assert (lda, per_group) == (kg * kh * kw * tm, panels * kg * kh * kw * tm)
    np.testing.assert_array_equal(packed.get().reshape(expected.shape), expected)


@pytest.mark.parametrize("panel", [8, 6, 1])
def test_matrices_packed_in_column_panels(panel, rng):
    """pack_columns: three (5 x 29) matrices in panels of `panel` columns, zeros past
    the last column, as im2col_panels lays out a 1x1 convolution's input."""
    a = rng.standard_normal((3, 5, 29)).astype(np.float32)
    rt = current()
    packed, ld, per_matrix = pack_columns(rt, on_device(rt, a), 3, 5, 29, panel)
    expected = _panels(a, panel)
    assert (ld, per_matrix) == (5 * panel, expected.shape[1] * 5 * panel)
    np.testing.assert_array_equal(packed.get().reshape(expected.shape), expected)
