// Pooling that returns no indices, for CPUs (ops/pool.values_only_kernels): explicit
// vectors, which POCL keeps as SIMD when it has no work-items to vectorise across. NCHW
// float32, each (n, c) plane pooled independently. Same values as pool2d.cl's kernels;
// GPUs keep those (VC4C never builds this file).

// The window and its column stride, compiled in (ops/pool.window_defines); the columns
// are not dilated.
#ifndef POOL_KH
#define POOL_KH 3
#endif
#ifndef POOL_KW
#define POOL_KW 3
#endif
#ifndef POOL_SW
#define POOL_SW 2
#endif

#include "pool_window.h"  // inside

// Max pooling for values only (no indices), on CPUs, columns not dilated: a work-item
// pools a run of POOL_RUN consecutive outputs of one row with explicit vectors. With the
// work-items along ox, POCL turned every tap of a strided window into a gather and
// carried the argmax per tap (3x slower); here each tap's POOL_RUN columns come from one
// contiguous load (stride 2: its even lanes). Same values as max_pool2d_forward: taps
// outside the input are -inf (a window wholly in the padding gives -inf), the strict >
// keeps the first of equal maxima (-0.0 vs 0.0), and any NaN tap makes the output NaN.
#ifndef POOL_RUN
#define POOL_RUN 8  // 4, 8 or 16
#endif
#define POOL_CAT_(a, b) a##b
#define POOL_CAT(a, b) POOL_CAT_(a, b)
#define RUNF POOL_CAT(float, POOL_RUN)
#define RUNI POOL_CAT(int, POOL_RUN)
#define RUN_LOAD POOL_CAT(vload, POOL_RUN)
#define RUN_STORE POOL_CAT(vstore, POOL_RUN)
#if POOL_RUN == 16
#define LANE_IDS (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#elif POOL_RUN == 8
#define LANE_IDS (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define LANE_IDS (int4)(0, 1, 2, 3)
#endif

// LOAD_TAP(p): a tap's POOL_RUN columns p[0], p[POOL_SW], ... (p global), reading no
// float past the last; LANES(p): the same lane by lane (p private).
#define LANE(p, j) (p)[(j) * POOL_SW]
#if POOL_RUN == 16
#define LANES(p) (float16)(LANE(p, 0), LANE(p, 1), LANE(p, 2), LANE(p, 3), \
                          LANE(p, 4), LANE(p, 5), LANE(p, 6), LANE(p, 7), \
                          LANE(p, 8), LANE(p, 9), LANE(p, 10), LANE(p, 11), \
                          LANE(p, 12), LANE(p, 13), LANE(p, 14), LANE(p, 15))
#elif POOL_RUN == 8
#define LANES(p) (float8)(LANE(p, 0), LANE(p, 1), LANE(p, 2), LANE(p, 3), \
                          LANE(p, 4), LANE(p, 5), LANE(p, 6), LANE(p, 7))
#else
#define LANES(p) (float4)(LANE(p, 0), LANE(p, 1), LANE(p, 2), LANE(p, 3))
#endif
#if POOL_SW == 1
#define LOAD_TAP(p) RUN_LOAD(0, p)
#elif POOL_SW == 2 && POOL_RUN == 16
#define LOAD_TAP(p) (float16)(vload16(0, p).even, vload16(0, (p) + 15).odd)
#elif POOL_SW == 2 && POOL_RUN == 8
#define LOAD_TAP(p) (float8)(vload8(0, p).even, vload8(0, (p) + 7).odd)
#elif POOL_SW == 2 && POOL_RUN == 4
#define LOAD_TAP(p) (float4)(vload4(0, p).even, vload4(0, (p) + 3).odd)
#else
#define LOAD_TAP(p) LANES(p)
#endif
#define ROW_SPAN ((POOL_RUN - 1) * POOL_SW + POOL_KW)  // the floats a run reads per row

// Rows kept from one output row to the next: POOL_KH - POOL_SH when the rows' stride
// POOL_SH is below POOL_KH (the host then sets it to the stride; POOL_KH: none kept).
#ifndef POOL_SH
#define POOL_SH 2
#endif

// The maximum over one input row iy of each lane's POOL_KW taps, NaN where any is NaN
// (-inf for a row outside the input).
__attribute__((always_inline)) RUNF row_max(
    __global const float *x, const int x_size, const int plane, const int iy, const int H,
    const int W, const int c0, const int inside_row)
{
    RUNF best = (RUNF)(-INFINITY);
    if ((uint)iy >= (uint)H) return best;
    RUNI nan = (RUNI)(0);
#define TAKE(tap) { const RUNF v = tap; best = v > best ? v : best; nan |= isnan(v); }
    const int at = (plane * H + iy) * W + c0;  // in x
    if (inside_row) {
#pragma unroll
        for (int kx = 0; kx < POOL_KW; ++kx) TAKE(LOAD_TAP(x + at + kx));
    } else if (at >= 0 && at + ROW_SPAN <= x_size) {
        // a run at the row's ends: loads that cross into the rows beside, their lanes
        // off this row -inf (as fast as the plain loads; lane by lane was 3x slower)
        const RUNI cols = LANE_IDS * POOL_SW + c0;  // tap 0's column in each lane
#pragma unroll
        for (int kx = 0; kx < POOL_KW; ++kx)
            TAKE(select((RUNF)(-INFINITY), LOAD_TAP(x + at + kx),
                        (RUNI)(POOL_CAT(convert_uint, POOL_RUN)(cols + kx) < (uint)W)));
    } else {  // x's first or last row: lane by lane, loaded clamped then masked
        __global const float *xr = x + at - c0;
        float row[ROW_SPAN];
#pragma unroll
        for (int i = 0; i < ROW_SPAN; ++i) {
            const float v = xr[inside(c0 + i, W)];
            row[i] = (uint)(c0 + i) < (uint)W ? v : -INFINITY;
        }
#pragma unroll
        for (int kx = 0; kx < POOL_KW; ++kx) TAKE(LANES(row + kx));
    }
#undef TAKE
    return select(best, (RUNF)(NAN), nan);
}

// A run's outputs to o: lanes first .. left-1 (the lanes before `first` the run before
// stores; lanes past `left` are past the row's end).
__attribute__((always_inline)) void store_run(const RUNF v, __global float *o,
                                              const int first, const int left)
{
    if (first == 0 && left >= POOL_RUN) {
        RUN_STORE(v, 0, o);
        return;
    }
    float s[POOL_RUN];
    RUN_STORE(v, 0, s);
#pragma unroll
    for (int j = 0; j < POOL_RUN; ++j)  // unrolled, guarded: no memcpy
        if (j >= first && j < left) o[j] = s[j];
}

// Runs of a row per work-item (POOL_RUNS, compiled in; the host keeps it within the
// registers' reach).
#ifndef POOL_RUNS
#define POOL_RUNS 4
#endif

// Grid (chunk, band, plane). A work-item pools POOL_RUNS runs of every output row of
// its band of `band` rows, top to bottom, keeping for each run the row maxima that the
// next output row shares. Run r (chunk * POOL_RUNS + j, below `runs`) pools outputs
// from min(r*POOL_RUN, Wo - POOL_RUN) (from 0 when Wo < POOL_RUN): the last run ends
// at the row's end, overlapping the one before, whose outputs it does not store again.
// A work-item per run walking the whole plane read it in strips down the plane; along
// the rows, SqueezeNet's first pool (64 x 111 x 111) took 0.15-0.18 -> 0.12-0.15 ms alone
// on AVX-512 and 0.27 -> 0.16 ms compiled for AVX2, ResNet's (64 x 112 x 112, padded)
// 0.14-0.15 -> 0.13 and 0.24 -> 0.16 (POCL 3.1, Xeon; docs/performance.md, session 26).
// x_size: the floats in x.
__kernel void max_pool2d_values(
    __global const float *x, __global float *out, const int x_size, const int runs,
    const int planes, const int H, const int W, const int Ho, const int Wo,
    const int sh, const int ph, const int pw, const int dh, const int band)
{
    const int chunk = get_global_id(0), oy0 = get_global_id(1) * band;
    const int plane = get_global_id(2);
    if (chunk * POOL_RUNS >= runs || oy0 >= Ho || plane >= planes) return;
    const int oy1 = min(oy0 + band, Ho);
    RUNF rows[POOL_RUNS][POOL_KH];
    for (int oy = oy0; oy < oy1; ++oy) {
        const int iy0 = oy * sh - ph;
        const int kept = oy > oy0 && dh == 1 ? max(POOL_KH - POOL_SH, 0) : 0;
#pragma unroll
        for (int j = 0; j < POOL_RUNS; ++j) {
            const int r = chunk * POOL_RUNS + j;
            if (r < runs) {
                const int ox0 = max(min(r * POOL_RUN, Wo - POOL_RUN), 0);
                const int c0 = ox0 * POOL_SW - pw;  // the run's first column
                const int inside_row = c0 >= 0 && c0 + ROW_SPAN <= W;
#pragma unroll
                for (int k = 0; k < POOL_KH; ++k) {
                    if (k + POOL_SH < POOL_KH && k < kept) rows[j][k] = rows[j][k + POOL_SH];
                    else rows[j][k] = row_max(x, x_size, plane, iy0 + k * dh, H, W, c0,
                                              inside_row);
                }
                RUNF best = (RUNF)(-INFINITY);
                RUNI nan = (RUNI)(0);
#pragma unroll
                for (int k = 0; k < POOL_KH; ++k) {
                    best = rows[j][k] > best ? rows[j][k] : best;
                    nan |= isnan(rows[j][k]);
                }
                store_run(select(best, (RUNF)(NAN), nan), out + (plane * Ho + oy) * Wo + ox0,
                          r * POOL_RUN - ox0, Wo - ox0);
            }
        }
    }
}

#ifndef POOL_AFFINE
#define POOL_AFFINE 0   // 1: each input x read as x * scale[c] + shift[c]; 2: then a ReLU
#endif                  // (an inference batch norm (+ ReLU) before the pool, in its loads)
#if POOL_AFFINE
#define AFFINE(v) affine_tap(v, s_, t_)
RUNF affine_tap(RUNF v, const float s, const float t)
{
    v = v * s + t;
#if POOL_AFFINE == 2
    v = select(v, (RUNF)(0.0f), v < (RUNF)(0.0f));  // activation.h's ReLU: NaN stays
#endif
    return v;
}
#else
#define AFFINE(v) (v)
#endif

// Average pooling of whole windows (no padding, no window past the input's end), values
// only, columns not dilated: the max kernel's runs of POOL_RUN outputs, each tap's
// columns from one contiguous load, summed row by row and column by column as
// pool2d.cl's avg_window sums them, then divided: the same numbers as
// avg_pool2d_forward. A run that would read past x (the last rows of the last plane,
// where Wo < POOL_RUN) takes its taps lane by lane. With POOL_AFFINE, plane p's inputs
// are mapped by channel p % channels first.
__kernel void avg_pool2d_values(
    __global const float *x, __global float *out, const int x_size, const int runs,
    const int planes, const int H, const int W, const int Ho, const int Wo,
    const int sh, const int dh, const float divisor,
    __global const float *scale, __global const float *shift, const int channels)
{
    const int r = get_global_id(0), plane = get_global_id(1);
    if (r >= runs || plane >= planes) return;
#if POOL_AFFINE
    const float s_ = scale[plane % channels], t_ = shift[plane % channels];
#endif
    const int ox0 = max(min(r * POOL_RUN, Wo - POOL_RUN), 0);
    const int c0 = ox0 * POOL_SW;  // the run's first column
    const int first = r * POOL_RUN - ox0;  // lanes the run before stores
    for (int oy = 0; oy < Ho; ++oy) {
        RUNF acc = (RUNF)(0.0f);
#pragma unroll
        for (int ky = 0; ky < POOL_KH; ++ky) {
            const int at = (plane * H + oy * sh + ky * dh) * W + c0;  // in x
            if (at + ROW_SPAN <= x_size) {
#pragma unroll
                for (int kx = 0; kx < POOL_KW; ++kx) acc += AFFINE(LOAD_TAP(x + at + kx));
            } else {
                float row[ROW_SPAN];
#pragma unroll
                for (int i = 0; i < ROW_SPAN; ++i) row[i] = x[min(at + i, x_size - 1)];
#pragma unroll
                for (int kx = 0; kx < POOL_KW; ++kx) acc += AFFINE(LANES(row + kx));
            }
        }
        store_run(acc / divisor, out + (plane * Ho + oy) * Wo + ox0, first, Wo - ox0);
    }
}

// Global pooling: a work-item per plane of P floats, in float8 loads, eight partial
// results apart so the adds do not wait on one another (a scalar walk of each plane
// made GlobalAveragePool's 1000 planes of 13x13 take 10x longer on POCL).
// out[plane] = the plane's sum / divisor.
__kernel void global_avg_pool2d(
    const int n_items,
    __global const float *x, __global float *out, const int P, const float divisor)
{
    const int plane = get_global_id(0);
    if (plane >= n_items) return;
    __global const float *xp = x + plane * P;
    float8 acc8 = (float8)(0.0f);
    int p = 0;
    for (; p + 8 <= P; p += 8) acc8 += vload8(0, xp + p);
    float acc = 0.0f;
    for (; p < P; ++p) acc += xp[p];
    const float4 acc4 = acc8.lo + acc8.hi;
    out[plane] = (((acc4.x + acc4.y) + (acc4.z + acc4.w)) + acc) / divisor;
}

// out[plane] = max of the plane; NaN when any element is NaN, as max_pool2d_forward.
__kernel void global_max_pool2d(
    const int n_items,
    __global const float *x, __global float *out, const int P)
{
    const int plane = get_global_id(0);
    if (plane >= n_items) return;
    __global const float *xp = x + plane * P;
    float8 best = (float8)(-INFINITY);
    int8 nan = (int8)(0);
    int p = 0;
    for (; p + 8 <= P; p += 8) {
        const float8 v = vload8(0, xp + p);
        best = fmax(best, v);
        nan |= isnan(v);
    }
    float b = -INFINITY;
    int any_nan = 0;
    for (; p < P; ++p) {
        const float v = xp[p];
        b = fmax(b, v);
        any_nan |= isnan(v);
    }
    const float4 b4 = fmax(best.lo, best.hi);
    b = fmax(b, fmax(fmax(b4.x, b4.y), fmax(b4.z, b4.w)));
    const int4 n4 = nan.lo | nan.hi;
    any_nan |= (n4.x | n4.y | n4.z | n4.w) != 0;
    out[plane] = any_nan ? NAN : b;
}
