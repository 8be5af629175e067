"""The host side of clconv's one matrix product, `kernels_cl/gemm.cl`: its tunables, the
tiles VC4C compiles, and the enqueue every GEMM goes through (the convolution
variants here, and `ops/gemm.py`'s gemm and matmul, which linear uses)."""
from __future__ import annotations

import numpy as np

from ..arrays import on_device
from ..build import get_kernel, group_2d, launch_grid, spread_groups
from ..epilogue import NO_ACTIVATION
from .. import tuning
from .base import fma_default, is_cpu, is_vc4cl

KERNELS = "gemm.cl"
VECTOR_WIDTHS = (2, 4, 8, 16)
# HAS_BIAS: what is added to the product (kernels_cl/gemm.cl)
NO_BIAS, ROW_BIAS, STRIDED_BIAS = 0, 1, 2


# On CPUs the K loop prefetches A's and B's rows this many K steps ahead (gemm.cl
# PREFETCH). A model's weights (ResNet-50: 100 MB) leave the caches between its runs, and
# a layer's own weights (up to 9.4 MB) are read as a stream per work-item: ResNet-50's
# 512-channel 1x1 at 7x7 with its weights out of cache went from 1.24 to 0.91 ms, and the
# whole model ran 3-7 % faster in four alternating A/B runs (POCL, AVX-512; 8 and 16 steps
# ahead gained less, 64 no more). B in packed panels (im2col_panels) is prefetched too:
# ResNet-50 0.6-1.3 ms (1.5-3 %) faster by its best run in three rounds loaded side by
# side in one process, Inception-v1 0.2 ms, DenseNet-121 and SqueezeNet unchanged (Xeon,
# AVX-512, session 19).
PREFETCH_STEPS = 32


def _params(params):
    return int(params["TM"]), int(params["TN"]), int(params["WG"]), int(params.get("KUNROLL", 1))


def tile_n(params) -> int:
    """Columns of C per work-item."""
    return int(params["TN"]) * int(params.get("NV", 1))


def validate_params(profile, params):
    """None if the tunables can run on the device, else why not."""
    tm, tn, wg, unroll = _params(params)
    if tn not in VECTOR_WIDTHS:
        return f"TN={tn} is not an OpenCL vector width in {VECTOR_WIDTHS}"
    if not 1 <= tm <= 16:
        return f"TM={tm} outside 1..16"
    if wg > profile.max_work_group_size:
        return f"WG={wg} exceeds the device's max work-group size {profile.max_work_group_size}"
    if wg < 1 or unroll < 1:
        return "WG and KUNROLL must be positive"
    if int(params.get("GI", 0)) not in (0, 1, 2):
        return "GI must be 0 (auto), 1 (flipped-weight forward) or 2 (GEMM + col2im)"
    if is_vc4cl(profile):
        return vc4c_reason(tm, int(params.get("NV", 1)))
    return None


# VC4C (VC4CL's compiler) keeps each accumulator vector of the tile in a 16-lane QPU
# register of its own, whatever TN, and its register allocator gives up ("erroneous
# register-associations") once the tile and the epilogue's values crowd the register
# file; near that point the same compile passes on one try and fails on the next. What
# pi/vc4c/compile-programs.py measured for gemm.cl at TN=16: TM=1, NV=1 compiled with
# every epilogue clconv uses, 3 tries of 3; TM=2 with C_TRANS failed 3 tries of 4 (and
# with bias + relu at MFAST=1); TM=4 and NV=2 failed every try.
VC4C_MAX_TILE_ROWS = 1


def vc4c_reason(tm: int, nv: int) -> str | None:
    """Why VC4C cannot (reliably) compile a GEMM tile of TM rows of NV vectors, or None."""
    if nv != 1:
        return f"NV={nv}: VC4C (VC4CL's compiler) compiles one vector per tile row only"
    if tm > VC4C_MAX_TILE_ROWS:
        return (f"TM={tm}: {tm} accumulator registers; VC4C's register allocator fails "
                f"past {VC4C_MAX_TILE_ROWS} (on some tries only at TM=2)")
    return None


def defaults(profile, geo=None, op=None):
    """The variants' untuned tunables where tuning_defaults.json has none."""
    return {"TM": 4, "TN": 16 if is_cpu(profile) else 8,
            "WG": min(16, profile.max_work_group_size), "KUNROLL": 1}


def matrix_params(profile, M: int, N: int, trans_b: bool = False) -> dict:
    """Untuned tunables for a plain (M x N) matrix product: tuning_defaults.json's "gemm"
    entry for the device (its "trans_b" member where B is stored transposed), else the
    defaults; the tile cut to M rows and to one vector of columns where N is narrower
    than two (linear on one sample: M = 1)."""
    params = dict(tuning.default_params(profile, "gemm", "trans_b" if trans_b else None)
                  or defaults(profile))
    params["TM"] = max(1, min(int(params["TM"]), M))
    if N <= int(params["TN"]):
        params["NV"] = 1
    params["WG"] = max(1, min(int(params["WG"]), profile.max_work_group_size))
    return params


def pack_a(rt, params, a, batches: int, M: int, Kd: int):
    """`batches` row-major (M x Kd) matrices `a` (a device array of batches*M*Kd floats)
    as gemm(a_packed=True) reads them: each cut into panels of the tile's TM rows, a
    panel stored K-major (Kd x TM, rows past M zero), so that a work-item's K step reads
    TM contiguous floats instead of TM rows Kd apart. Made once on the host (for weights
    that do not change). Returns (packed, lda, stride): the device array, the panel
    stride and the matrix stride to pass to gemm."""
    tm = int(params["TM"])
    if tm == 1:  # panels of one row: the row-major layout itself (VC4CL's tile)
        return a, Kd, M * Kd
    panels = -(-M // tm)
    host = np.zeros((batches, panels * tm, Kd), np.float32)
    host[:, :M] = a.get().reshape(batches, M, Kd)
    host = host.reshape(batches, panels, tm, Kd).transpose(0, 1, 3, 2)
    return on_device(rt, np.ascontiguousarray(host)), Kd * tm, panels * Kd * tm


def pack_b(rt, params, b, Kd: int, N: int, trans_b: bool = False):
    """A (Kd x N) matrix B, of a device array `b` that holds it row-major (or its
    transpose, N x Kd, with trans_b: a layer's weights), as gemm(b_packed=True) reads
    it: cut into panels of the tile's NV*TN columns, a panel stored row after row
    (Kd x NV*TN, columns past N zero), so that a work-item's K loop reads one contiguous
    stream. Made once on the host (for weights that do not change). Returns (packed,
    ldb): the device array and the panel stride to pass to gemm."""
    width = tile_n(params)
    panels = -(-N // width)
    host = np.zeros((Kd, panels * width), np.float32)
    values = b.get().reshape((N, Kd) if trans_b else (Kd, N))
    host[:, :N] = values.T if trans_b else values
    host = host.reshape(Kd, panels, width).transpose(1, 0, 2)
    return on_device(rt, np.ascontiguousarray(host)), Kd * width


def gemm(rt, params, M, N, Kd, R, A, lda, sa, B, ldb, sb, C, ldc, sc, batches, NB2,
         a_kmajor=False, a_packed=False, b_trans=False, c_trans=False, bias=None,
         bias_kind=ROW_BIAS, bias_strides=(0, 0, 0), alpha=1.0, beta=1.0, scale=False,
         act=NO_ACTIVATION, b_affine=None, shifted=None, b_packed=False, out_rows=None):
    """Enqueue the batched GEMM; sa/sb are (s1, s2, sr), sc is (s1, s2). The bias term
    is ROW_BIAS (bias[b2*M + m]) or STRIDED_BIAS (bias_strides: per b2, m and n); with
    `scale`, the product is multiplied by alpha and the bias term by beta. `a_packed`:
    A is in pack_a's layout for these params' TM, lda its panel stride. b_affine:
    (scale, shift, relu) read row k of B as relu(b * scale[k] + shift[k]) (relu a bool):
    see gemm.cl's B_AFFINE. shifted: (kw, sbr_w, row_in, row_out), the reduction
    steps as a stride-1 convolution's taps and C's columns as its output pixels (see
    gemm.cl's SHIFTED and algos/shifted.py). out_rows: (pitch, base), with `shifted`
    only: output row q of a plane starts at base + q * pitch (zero-bordered output
    planes, arrays.bordered_planes); None: the planes as they are (pitch row_out)."""
    tm, tn, wg, unroll = _params(params)
    nv, mfast = int(params.get("NV", 1)), int(params.get("MFAST", 1))
    has_bias = NO_BIAS if bias is None else bias_kind
    cpu = is_cpu(rt.profile)
    defines = {"TM": tm, "TN": tn, "NV": nv, "MFAST": mfast, "A_KMAJOR": int(a_kmajor),
               "A_PACKED": int(a_packed),
               "B_TRANS": int(b_trans), "C_TRANS": int(c_trans), "HAS_BIAS": has_bias,
               "SCALE": int(scale), **act.defines, "KUNROLL": unroll,
               "USE_FMA": int(params.get("FMA", fma_default(rt.profile)))}
    if b_affine is not None:  # named only when used: other programs stay as they were
        defines["B_AFFINE"] = 2 if b_affine[2] else 1
    if shifted is not None:
        defines["SHIFTED"] = int(shifted[0])
        if cpu:
            defines["COMPACT_STORE"] = 1
    if b_packed:
        defines["B_PACKED"] = 1
    if cpu:
        defines["PREFETCH"] = PREFETCH_STEPS
    kernel = get_kernel(rt, KERNELS, "gemm_tiled", defines)
    tiles_n, tiles_m = -(-N // (tn * nv)), -(-M // tm)
    fast, slow = (tiles_m, tiles_n) if mfast else (tiles_n, tiles_m)
    local = group_2d(wg, fast, slow)
    if cpu:  # small GEMMs (SqueezeNet's at 13x13 made 3 groups of 16)
        local = spread_groups(rt.profile, local, fast, slow, batches)
    if has_bias == ROW_BIAS:
        bias_strides = (M, 1, 0)
    return launch_grid(rt, kernel, (fast, slow, batches), local + (1,),
                       M, N, Kd, R, A, lda, *sa, B, ldb, *sb, C, ldc, *sc,
                       bias if bias is not None else C, *bias_strides, NB2,
                       float(alpha), float(beta), *act.scalars,
                       *(b_affine[:2] if b_affine is not None else (B, B)),
                       *_pixel_store(shifted, out_rows))


def _pixel_store(shifted, out_rows) -> tuple:
    """gemm.cl's last arguments: sbr_w, row_in, row_out, out_pitch, out_base."""
    if shifted is None:
        if out_rows is not None:
            raise ValueError("out_rows: only a shifted GEMM stores output rows")
        return 0, 1, 1, 1, 0
    _, sbr_w, row_in, row_out = shifted
    pitch, base = out_rows if out_rows is not None else (row_out, 0)
    return sbr_w, row_in, row_out, pitch, base
