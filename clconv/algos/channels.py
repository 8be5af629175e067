"""Convolution on CPUs with the output channels in the vector lanes (conv_channels.cl).

For inference on a CPU (weights packed once), one group, windows larger than 1x1, any
stride and dilation. The input is zero-bordered once (a pad pass, or planes the producer
already wrote inside zero borders: onnx/borders.py), and a work-item computes NV vectors
of TN output channels (the CPU class's GEMM tile) for as many output columns as the
class's registers hold: per input channel and tap, NV weight vectors (packed once,
contiguous) and one input float per column, broadcast to every lane. ONNX Runtime's
NCHWc kernels turn the roles the same way.

Against the GEMM forms on CPUs: the shifted GEMM (stride 1, pixels in the lanes) loads
every tap's vector of pixels unaligned and shares it over only TM channels; im2col
(strided layers) first writes a column matrix kh*kw times the input (ResNet-50's 7x7
stem: 7.4 MB, past the caches) and reads it back. Grouped layers, training and GPUs keep
those.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import cpu_class
from ..arrays import on_device
from ..build import get_kernel, group_2d, launch_grid, row_bands, spread_groups
from ..epilogue import NO_ACTIVATION
from .base import Variant, is_cpu, pad, padded_input_reason
from .gemm import TEST_PARAMS, fit_tile, output_planes, space
from .tiled_gemm import defaults, fma_default, validate_params

KERNELS = "conv_channels.cl"
VECTOR_WIDTHS = (4, 8, 16)  # the vector widths (TN) conv_channels.cl is built for

# Most columns per work-item: SqueezeNet's 3x3 layers ran as fast at 14 as at 12
# (AVX-512, 24 accumulators), 1.2x slower at 8 and 10 (docs/performance.md, session 20);
# 14 lets 28- and 112-wide rows of strided layers split into whole runs
MAX_COLUMNS = 14


@dataclass(frozen=True)
class ChannelPacked:
    """Weights as conv_channels.cl reads them: [vectors][C][kh*kw][TN], the vectors of
    TN output channels rounded up to a multiple of NV, channels past K zero."""

    weights: object


def columns_per_item(profile, tn: int, nv: int) -> int:
    """The most columns a work-item computes: as many as the CPU class's vector
    registers hold as accumulators (PX * NV vectors of TN floats) beside the NV weight
    vectors and the broadcast input (the GEMM's register count, CpuClass.fits, with the
    columns for TM), up to MAX_COLUMNS."""
    cls = cpu_class.of_profile(profile) or cpu_class.SSE
    return max([1] + [px for px in range(1, MAX_COLUMNS + 1) if cls.fits(px, tn, nv)])


def row_columns(width: int, most: int) -> int:
    """Columns per run where runs stay within an output row of `width`: of the widths
    from 2/3 of `most` to `most`, the one computing the fewest columns (a row's last run moves
    back to end at its end, computing some again), the widest of those. ResNet-50's
    28-wide 3x3 stride-2 layer took 0.83-0.90 ms in runs of 14 or 7, 1.0-1.3 in runs of
    8 to 13 (AVX-512, session 22)."""
    widths = range(min(-(-2 * most // 3), width), min(most, width) + 1)
    return min(widths, key=lambda px: (-(-width // px) * px, -px))


# A stride-1 layer runs in rows (ROW_RUNS 1) where they compute at most this share of
# the flat columns' work (the border columns between rows, the last run's columns past
# the planes) in no more runs (each run reads the layer's weights once): SqueezeNet's
# 13x13 layers 20-25 % faster (169 columns in 13 runs against 196 in 14). Runs of one
# 7-column row at ResNet-50's 7x7 layers (7 runs against 5 flat) were 6 % slower, its
# 9 MB of weights read 7 times; runs of two rows (4) were 12 % faster. At 55x55 (3025
# against 3136 columns, in runs of 11) rows ran 1.5x slower. AVX-512, session 23.
ROWS_SHARE = 0.9


class ColumnRuns(NamedTuple):
    """How conv_channels.cl walks a layer's output columns (its PX, ROW_RUNS, RUN_ROWS,
    runs_per_row and columns arguments), and the runs (work-items per vector block)."""
    px: int
    row_runs: int
    run_rows: int
    runs_per_row: int
    columns: int
    runs: int


def column_runs(geo, row_in: int, most: int) -> ColumnRuns:
    """conv_channels.cl's runs for input planes row_in wide and at most `most` columns
    per work-item: runs of whole output rows where `most` holds two or more of them,
    else runs within a row; at stride 1, the planes' flat columns where the rows save
    too little (ROWS_SHARE)."""
    run_rows = min(most // geo.Wo, geo.Ho)
    if run_rows > 1:
        runs = -(-geo.Ho // run_rows)
        rows = ColumnRuns(run_rows * geo.Wo, 1, run_rows, 1, geo.Ho * geo.Wo, runs)
        work = runs * rows.px
    else:
        px = row_columns(geo.Wo, most)
        runs_per_row = -(-geo.Wo // px)
        runs = geo.Ho * runs_per_row
        rows = ColumnRuns(px, 1, 1, runs_per_row, runs * px, runs)
        work = rows.columns
    if geo.stride != (1, 1):
        return rows
    columns = (geo.Ho - 1) * row_in + geo.Wo  # the planes' flat columns
    flat_px = min(most, columns)  # a run fits the planes
    flat_runs = -(-columns // flat_px)
    if work <= ROWS_SHARE * flat_runs * flat_px and runs <= flat_runs:
        return rows
    return ColumnRuns(flat_px, 0, 1, 1, columns, flat_runs)


def input_extent(geo) -> tuple[int, int]:
    """(rows, columns) of the zero-bordered input planes the taps read."""
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    return ((geo.Ho - 1) * sh + (geo.kh - 1) * dh + 1,
            (geo.Wo - 1) * sw + (geo.kw - 1) * dw + 1)


def validate(profile, geo, op, params):
    if not is_cpu(profile):
        return "CPUs only (a work-item's many vector accumulators)"
    if geo.groups != 1:
        return f"groups {geo.groups}: one group only"
    if geo.kh == geo.kw == 1:
        # stride 1 is a plain GEMM (gemm1x1); strided, im2col's subsampled columns + the
        # GEMM ran ResNet-50's shortcuts 1.1-1.6x faster than this kernel (session 22)
        return "a 1x1 convolution is a GEMM (gemm1x1, or im2col when strided)"
    if int(params.get("TN", 0)) not in VECTOR_WIDTHS:
        return f"TN {params.get('TN')}: expected one of {VECTOR_WIDTHS} (vector lanes)"
    cls = cpu_class.of_profile(profile)
    if cls is not None and cls.lanes < 4:
        return f"a CPU of {cls.lanes}-float vectors (no vector unit to fill)"
    return validate_params(profile, params) or padded_input_reason(profile, geo, input_extent(geo))


def pack(rt, geo, params, w) -> ChannelPacked:
    """The weights (K, C, kh, kw) in conv_channels.cl's layout. Made once on the host."""
    tn, nv, taps = int(params["TN"]), int(params.get("NV", 1)), geo.kh * geo.kw
    padded = -(-geo.K // (tn * nv)) * tn * nv
    host = np.zeros((padded, geo.C, taps), np.float32)
    host[:geo.K] = w.get().reshape(geo.K, geo.C, taps)
    host = host.reshape(padded // tn, tn, geo.C, taps).transpose(0, 2, 3, 1)
    return ChannelPacked(on_device(rt, np.ascontiguousarray(host)))


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None,
            out_image=None, out_border=None):
    """`packed`: pack()'s result for these weights and params, or None to pack `w` now.
    out_image: floats from one image of out to the next where out is strided images
    (arrays.image_stride); None: C-contiguous. out_border: the border of zero-bordered
    output planes (arrays.bordered_planes), written inside it."""
    if packed is None:
        packed = pack(rt, geo, params, w)
    hp, wp = input_extent(geo)
    if geo.pad_top or geo.pad_left or hp > geo.H or wp > geo.W:
        x = pad(rt, x, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top, geo.pad_left,
                int(params["WG"]))
    else:  # the planes as they lie (rows or columns past the last tap unread)
        hp, wp = geo.H, geo.W
    tn, nv = int(params["TN"]), int(params.get("NV", 1))
    runs = column_runs(geo, wp, columns_per_item(rt.profile, tn, nv))
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    plane, rows = output_planes(geo, out_image, out_border)
    pitch, base = rows if rows is not None else (geo.Wo, 0)
    defines = {"VW": tn, "VB": nv, "PX": runs.px, "ROW_RUNS": runs.row_runs,
               "RUN_ROWS": runs.run_rows, "KH": geo.kh,
               "KW": geo.kw, "SH": sh, "SW": sw, "HAS_BIAS": int(bias is not None),
               **act.defines, "USE_FMA": int(params.get("FMA", fma_default(rt.profile)))}
    kernel = get_kernel(rt, KERNELS, "conv_channels", defines)
    blocks = -(-geo.K // (tn * nv))
    local = spread_groups(rt.profile, group_2d(int(params["WG"]), runs.runs, blocks),
                          runs.runs, blocks, geo.N)
    launch_grid(rt, kernel, (runs.runs, blocks, geo.N), local + (1,),
                x, packed.weights, bias if bias is not None else packed.weights, out,
                geo.C, geo.K, runs.columns, hp * wp, geo.C * hp * wp, dh * wp, dw, wp,
                geo.Wo, runs.runs_per_row, plane, out_image or geo.K * plane, pitch, base,
                *act.scalars)
    return out


POOL_KERNELS = "conv_pool.cl"
# Pooled outputs per work-item and row of conv_max_pool_channels (PP), with one vector of
# channels (VB=1): 2 * 6 + 1 = 13 convolution columns' accumulators, and the kept and
# pooled rows' 6 each, in 32 vector registers. For SqueezeNet's stem + pool (AVX-512,
# session 26) 6 measured even with 4, 7 and 8, and with two vectors of 4; two vectors
# of 2 or 3 were slower.
POOL_COLUMNS = 6
POOL_VECTORS = 1
POOL_WINDOW_MAX = 7  # the largest pool window compiled in (ops/pool.FIXED_WINDOW_MAX's)
# Most terms per output (C * kh * kw) of a convolution that takes its max pool in: a
# 3x3 stem over 3 channels (27 terms) wrote and read back more than it computed, and
# fused ran SqueezeNet's stem + pool 0.55 -> 0.31-0.35 ms hot; ResNet-50's 7x7 stem (147
# terms, the same pool) ran even, 1.16 against 1.13-1.18 ms, and in the model the layers
# after it slower (AVX-512, session 26): there the channels kernel's two vectors of
# channels per broadcast input outrun the fused kernel's one.
POOL_MAX_TERMS = 32


def max_pool_reason(profile, geo, pool) -> str | None:
    """Why forward_max_pool cannot run `geo` followed by the max pool `pool` (a
    PoolGeometry over geo's output), or None."""
    if not is_cpu(profile):
        return "CPUs only"
    terms = geo.C * geo.kh * geo.kw
    if terms > POOL_MAX_TERMS:
        return (f"{terms} terms per output: the convolution's own kernel, then the pool, "
                f"faster (at most {POOL_MAX_TERMS} fused)")
    if (pool.N, pool.C, pool.H, pool.W) != geo.output_shape:
        return f"the pool reads {(pool.N, pool.C, pool.H, pool.W)}, not the convolution's output"
    if pool.dilation != (1, 1):
        return f"pool dilation {pool.dilation}: only 1"
    if max(pool.kernel) > POOL_WINDOW_MAX:
        return f"pool window {pool.kernel}: at most {POOL_WINDOW_MAX} compiled in"
    if pool.padding[0] >= pool.kernel[0] or pool.padding[1] >= pool.kernel[1]:
        return f"pool padding {pool.padding}: windows wholly in the padding"
    return padded_input_reason(profile, geo, _pooled_input_extent(geo, pool)[:2])


def _pooled_input_extent(geo, pool) -> tuple[int, int, int]:
    """(rows, columns, left) of the bordered input planes forward_max_pool reads: the
    convolution's own, with `left` columns more before them for the pool's padding
    columns, and after them for the last windows' columns past the output."""
    hp, wp = input_extent(geo)
    sw = geo.stride[1]
    last = (pool.Wo - 1) * pool.stride[1] - pool.padding[1] + pool.kernel[1] - 1
    left = pool.padding[1] * sw
    return hp, left + wp + max(0, last - (geo.Wo - 1)) * sw, left


def forward_max_pool(rt, geo, params, x, w, bias, out, act, pool, packed=None):
    """The convolution (+ bias + activation) and then the max pool `pool` over its output
    (where max_pool_reason allows), in one launch: conv_pool.cl writes only the pooled
    output, `out` (pool.output_shape). SqueezeNet's stem + pool took 0.55 -> 0.31-0.35 ms
    hot and 0.88 -> 0.54 with the caches emptied (AVX-512, Xeon, session 26)."""
    if packed is None:
        packed = pack(rt, geo, params, w)
    hp, wp, left = _pooled_input_extent(geo, pool)
    if geo.pad_top or geo.pad_left or left or hp > geo.H or wp > geo.W:
        x = pad(rt, x, geo.N * geo.C, geo.H, geo.W, hp, wp, geo.pad_top,
                geo.pad_left + left, int(params["WG"]))
    else:  # the planes as they lie (rows or columns past the last tap unread)
        hp, wp = geo.H, geo.W
    tn = int(params["TN"])
    columns = min(POOL_COLUMNS, pool.Wo)
    runs_per_row = -(-pool.Wo // columns)
    blocks = -(-geo.K // (tn * POOL_VECTORS))
    band, bands = row_bands(pool.Ho, runs_per_row * blocks * geo.N)
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    defines = {"VW": tn, "VB": POOL_VECTORS, "PP": columns, "KH": geo.kh, "KW": geo.kw,
               "SH": sh, "SW": sw, "POOL_KH": pool.kernel[0], "POOL_KW": pool.kernel[1],
               "POOL_SH": pool.stride[0], "POOL_SW": pool.stride[1],
               "HAS_BIAS": int(bias is not None), **act.defines,
               "USE_FMA": int(params.get("FMA", fma_default(rt.profile)))}
    kernel = get_kernel(rt, POOL_KERNELS, "conv_max_pool_channels", defines)
    items = runs_per_row * bands
    local = spread_groups(rt.profile, group_2d(int(params["WG"]), items, blocks), items,
                          blocks, geo.N)
    plane = pool.Ho * pool.Wo
    launch_grid(rt, kernel, (items, blocks, geo.N), local + (1,),
                x, packed.weights, bias if bias is not None else packed.weights, out,
                geo.C, geo.K, hp * wp, geo.C * hp * wp, dh * wp, dw, wp, left, geo.Ho,
                geo.Wo, pool.Ho, pool.Wo, *pool.padding, runs_per_row, band, plane,
                geo.K * plane, *act.scalars)
    return out


CHANNELS = Variant("channels", "direct convolution on CPUs with the output channels in "
                   "the vector lanes, over zero-bordered input (no column matrix), weights "
                   "packed once; one group, any stride; forward only",
                   validate, {"forward": forward}, space, defaults, ops=("forward",),
                   fit=fit_tile, pack=pack, test_params=TEST_PARAMS)
