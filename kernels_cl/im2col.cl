// Layout kernels for the GEMM convolution variants, NCHW float32:
//   im2col: col[row, p] with row = ((n*C + c)*kh + ky)*kw + kx and p = oy*Wo + ox,
//           row length ldc (>= Ho*Wo; the padding columns are written as zeros);
//   im2col_panels: the same columns in the GEMM's B panels (gemm.cl B_PACKED), for CPUs;
//   col2im: the gather that sums columns back into an image (grad_input);
//   transpose_batched: (B, R, Ccols) -> (B, Ccols, ldo) for the grad_weight GEMM.
// Global dimension 0 runs along the contiguous axis, dimension 1 over rows; work-items
// past the end return, so any work-group size works.

#ifndef IM2COL_PAIRS
#define IM2COL_PAIRS 0  // 1: stride-2 rows as vector loads and even lanes (CPUs)
#endif

// The output columns [lo, hi) of a row whose input column ix = ox*sw + x0 lies inside
// [0, W), of Wo; ceil(a / sw) for a > 0 written as (a - 1) / sw + 1, which cannot
// overflow for strides near INT_MAX.
int2 inside_columns(const int x0, const int sw, const int W, const int Wo)
{
    const int lo = x0 >= 0 ? 0 : min(Wo, (-x0 - 1) / sw + 1);
    return (int2)(lo, max(lo, W - x0 <= 0 ? 0 : min(Wo, (W - x0 - 1) / sw + 1)));
}

__kernel void im2col(
    __global const float *x, __global float *col,
    const int rows, const int ldc, const int oy_chunk,
    const int C, const int H, const int W, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw)
{
    // One work-item per (row, chunk of oy_chunk output rows): it writes those rows'
    // Wo columns each. The host picks the chunk (whole rows on a CPU, where each
    // work-item costs a little, 1 on a GPU, which wants many work-items).
    const int oy0 = get_global_id(0) * oy_chunk;
    const int row = get_global_id(1);
    if (oy0 >= Ho || row >= rows) return;
    const int kx = row % kw;
    const int ky = (row / kw) % kh;
    const int nc = row / (kw * kh);       // n*C + c
    const int x0 = kx * dw - pw;
    const int2 inside = inside_columns(x0, sw, W, Wo);
    const int lo = inside.x, hi = inside.y;
    const int oy1 = min(Ho, oy0 + oy_chunk);
    for (int oy = oy0; oy < oy1; ++oy) {
        __global float *dst = col + row * ldc + oy * Wo;
        const int iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) {
            for (int ox = 0; ox < Wo; ++ox) dst[ox] = 0.0f;
            continue;
        }
        __global const float *src = x + (nc * H + iy) * W;
        for (int ox = 0; ox < lo; ++ox) dst[ox] = 0.0f;
        if (sw == 1) {
            for (int ox = lo; ox < hi; ++ox) dst[ox] = src[ox + x0];
#if IM2COL_PAIRS
        } else if (sw == 2) {
            // 16 columns from two vector loads of 32 floats, their even lanes: the
            // compiler made the strided loop a float-by-float gather. Loads stay in the
            // row: the last 32 floats, and the rest, go the scalar way.
            int ox = lo;
            for (; ox + 16 <= hi && 2 * ox + x0 + 32 <= W; ox += 16) {
                const float16 a = vload16(0, src + 2 * ox + x0);
                const float16 b = vload16(0, src + 2 * ox + x0 + 16);
                vstore16((float16)(a.even, b.even), 0, dst + ox);
            }
            for (; ox < hi; ++ox) dst[ox] = src[2 * ox + x0];
#endif
        } else {
            for (int ox = lo; ox < hi; ++ox) dst[ox] = src[ox * sw + x0];
        }
        for (int ox = hi; ox < Wo; ++ox) dst[ox] = 0.0f;
    }
    if (oy1 == Ho)
        for (int p = Ho * Wo; p < ldc; ++p) col[row * ldc + p] = 0.0f;
}

#include "window.h"  // im2col_panels, col2im: the window, its strides and dilation, compiled in

// Built only where the host defines PANEL (CPUs, whose GEMM reads B_PACKED): the GPUs
// keep the row-major columns, and VC4C fails on this kernel's pointer loops ("Failed to
// find recursive conditional address write"), so the other programs leave it out.
#ifdef PANEL

// The column matrix of im2col, each (image, group) b's in panels of PANEL columns:
// colp[((b*panels + p)*rows + k)*PANEL + j] = col[k, p*PANEL + j], 0 past Ho*Wo. One
// work-item per (panel, chunk of k_chunk rows, b) writes PANEL*k_chunk contiguous
// floats (row by row, each 32-float piece of a row would land a panel, 4 KB or more,
// after the last). A panel's columns are output pixels in pieces of output rows; each
// piece is copied like an im2col row. The window is compiled in (window.h): k's tap and
// the columns inside the input need no division.
__kernel void im2col_panels(
    __global const float *x, __global float *colp,
    const int rows, const int k_chunk, const int panels, const int groups,
    const int C, const int H, const int W, const int Ho, const int Wo,
    const int ph, const int pw)
{
    const int p = get_global_id(0), k0 = get_global_id(1) * k_chunk;
    const int b = get_global_id(2);
    if (p >= panels || k0 >= rows) return;
    const int k1 = min(rows, k0 + k_chunk);
    const int n = b / groups, g = b - n * groups;
    __global const float *xc = x + (n * C + g * (C / groups) + k0 / (KW * KH)) * H * W;
    __global float *dst = colp + ((b * panels + p) * rows + k0) * PANEL;
    const int oy0 = p * PANEL / Wo, ox0 = p * PANEL - oy0 * Wo;
    int kx = k0 % KW, ky = (k0 / KW) % KH;  // then counted, not divided
    for (int k = k0; k < k1; ++k, dst += PANEL) {
        const int x0 = kx * DW - pw;
        const int2 inside = inside_columns(x0, SW, W, Wo);
        const int lo = inside.x, hi = inside.y;
        int j = 0, oy = oy0, ox = ox0;
        while (j < PANEL) {
            const int len = min(PANEL - j, Wo - ox);  // this piece: output row oy
            const int iy = oy * SH - ph + ky * DH;
            __global float *d = dst + j;  // d[t - ox]: output column t of the piece
            if (oy >= Ho || iy < 0 || iy >= H) {
                for (int t = 0; t < len; ++t) d[t] = 0.0f;
            } else {
                __global const float *src = xc + iy * W + x0;
                const int a = clamp(lo, ox, ox + len), e = clamp(hi, a, ox + len);
                for (int t = ox; t < a; ++t) d[t - ox] = 0.0f;
                int t = a;
                // 16 columns at a time (a scalar loop here was most of the time): one
                // vector load, or at stride 2 the even lanes of two (staying in the row)
#if SW == 1
                for (; t + 16 <= e; t += 16) vstore16(vload16(0, src + t), 0, d + t - ox);
                for (; t + 4 <= e; t += 4) vstore4(vload4(0, src + t), 0, d + t - ox);
#elif SW == 2
                for (; t + 16 <= e && x0 + 2 * t + 32 <= W; t += 16) {
                    const float16 u = vload16(0, src + 2 * t), v = vload16(0, src + 2 * t + 16);
                    vstore16((float16)(u.even, v.even), 0, d + t - ox);
                }
#endif
                for (; t < e; ++t) d[t - ox] = src[t * SW];
                for (t = e; t < ox + len; ++t) d[t - ox] = 0.0f;
            }
            j += len;
            ++oy;
            ox = 0;
        }
        if (++kx == KW) {
            kx = 0;
            if (++ky == KH) {
                ky = 0;
                xc += H * W;
            }
        }
    }
}

// A row-major matrix's (rows x cols, each of `batches` matrices, cols floats a row) in
// panels of PANEL columns, as im2col_panels writes them: dst[((b*panels + p)*rows + k) *
// PANEL + j] = src[(b*rows + k)*cols + p*PANEL + j], 0 past cols. A 1x1 convolution's
// input is its own column matrix, so this is im2col_panels without its window: one
// work-item per (panel, b) copies PANEL floats of each row, contiguous on both sides
// (im2col_panels' per-row window bookkeeping took longer than its copy at PANEL 6).
__kernel void pack_column_panels(
    __global const float *src, __global float *dst,
    const int rows, const int cols, const int panels)
{
    const int p = get_global_id(0), b = get_global_id(1);
    if (p >= panels) return;
    const int n = min(PANEL, cols - p * PANEL);
    __global const float *s = src + b * rows * cols + p * PANEL;
    __global float *d = dst + (b * panels + p) * rows * PANEL;
    if (n == PANEL) {
        for (int k = 0; k < rows; ++k, s += cols, d += PANEL) {
            #pragma unroll
            for (int j = 0; j < PANEL; ++j) d[j] = s[j];
        }
    } else {
        for (int k = 0; k < rows; ++k, s += cols, d += PANEL) {
            #pragma unroll
            for (int j = 0; j < PANEL; ++j) d[j] = j < n ? s[j] : 0.0f;
        }
    }
}
#endif  // PANEL

// Built only where the host defines ROW_PANEL (CPUs, whose gradient GEMMs read packed
// operands), for the same reasons as PANEL.
#ifdef ROW_PANEL

// 8 pixels of 8 rows, v[i] row i's, stored pixel by pixel: pixel j's 8 floats at
// d + j * ROW_PANEL. An 8 x 8 transpose in three rounds of two-vector shuffles (stored
// element by element, it took 25 % longer at 56x56).
void store_transposed8(const float8 *v, __global float *d)
{
    // a0 = (00 10 01 11 | 04 14 05 15), ...: "ij" is pixel j of row i
    const float8 a0 = (float8)(v[0].s0, v[1].s0, v[0].s1, v[1].s1, v[0].s4, v[1].s4, v[0].s5, v[1].s5);
    const float8 a1 = (float8)(v[0].s2, v[1].s2, v[0].s3, v[1].s3, v[0].s6, v[1].s6, v[0].s7, v[1].s7);
    const float8 a2 = (float8)(v[2].s0, v[3].s0, v[2].s1, v[3].s1, v[2].s4, v[3].s4, v[2].s5, v[3].s5);
    const float8 a3 = (float8)(v[2].s2, v[3].s2, v[2].s3, v[3].s3, v[2].s6, v[3].s6, v[2].s7, v[3].s7);
    const float8 a4 = (float8)(v[4].s0, v[5].s0, v[4].s1, v[5].s1, v[4].s4, v[5].s4, v[4].s5, v[5].s5);
    const float8 a5 = (float8)(v[4].s2, v[5].s2, v[4].s3, v[5].s3, v[4].s6, v[5].s6, v[4].s7, v[5].s7);
    const float8 a6 = (float8)(v[6].s0, v[7].s0, v[6].s1, v[7].s1, v[6].s4, v[7].s4, v[6].s5, v[7].s5);
    const float8 a7 = (float8)(v[6].s2, v[7].s2, v[6].s3, v[7].s3, v[6].s6, v[7].s6, v[6].s7, v[7].s7);
    const float8 b0 = (float8)(a0.s01, a2.s01, a0.s45, a2.s45);  // 00 10 20 30 | 04 14 24 34
    const float8 b1 = (float8)(a0.s23, a2.s23, a0.s67, a2.s67);  // 01 11 21 31 | 05 15 25 35
    const float8 b2 = (float8)(a1.s01, a3.s01, a1.s45, a3.s45);  // 02 .. | 06 ..
    const float8 b3 = (float8)(a1.s23, a3.s23, a1.s67, a3.s67);  // 03 .. | 07 ..
    const float8 b4 = (float8)(a4.s01, a6.s01, a4.s45, a6.s45);  // 40 50 60 70 | 44 ..
    const float8 b5 = (float8)(a4.s23, a6.s23, a4.s67, a6.s67);
    const float8 b6 = (float8)(a5.s01, a7.s01, a5.s45, a7.s45);
    const float8 b7 = (float8)(a5.s23, a7.s23, a5.s67, a7.s67);
    vstore8((float8)(b0.lo, b4.lo), 0, d);
    vstore8((float8)(b1.lo, b5.lo), 0, d + ROW_PANEL);
    vstore8((float8)(b2.lo, b6.lo), 0, d + 2 * ROW_PANEL);
    vstore8((float8)(b3.lo, b7.lo), 0, d + 3 * ROW_PANEL);
    vstore8((float8)(b0.hi, b4.hi), 0, d + 4 * ROW_PANEL);
    vstore8((float8)(b1.hi, b5.hi), 0, d + 5 * ROW_PANEL);
    vstore8((float8)(b2.hi, b6.hi), 0, d + 6 * ROW_PANEL);
    vstore8((float8)(b3.hi, b7.hi), 0, d + 7 * ROW_PANEL);
}

// The column matrix of im2col, each (image, group) b's rows in panels of ROW_PANEL rows
// stored pixel-major: colr[((b*panels + q)*P + p)*ROW_PANEL + i] = col[q*ROW_PANEL + i,
// p], P = Ho*Wo, rows past `rows` zero. That is gemm.cl's B_PACKED of col^T (the B of
// grad_weight's dW = dY . col^T, ROW_PANEL = NV*TN) and its A_PACKED of col (TM =
// ROW_PANEL: weights packed per call, as a one-row image under a 1x1 window). One
// work-item per (panel q, b) writes the whole image's pixels, ROW_PANEL contiguous
// floats each (a work-item per output row spent more on POCL's per-work-group cost than
// on copying); a pixel's floats come from ROW_PANEL taps, each a load from its own
// input row.
__kernel void im2col_row_panels(
    __global const float *x, __global float *colr,
    const int rows, const int panels, const int groups,
    const int C, const int H, const int W, const int Ho, const int Wo,
    const int ph, const int pw)
{
    const int q = get_global_id(0), b = get_global_id(1);
    if (q >= panels) return;
    const int n = b / groups, g = b - n * groups;
    __global const float *xg = x + (n * C + g * (C / groups)) * H * W;
    for (int oy = 0; oy < Ho; ++oy) {
        __global float *dst = colr + ((b * panels + q) * Ho * Wo + oy * Wo) * ROW_PANEL;
        // per row i of the panel: its input row (at x offset 0 of the window) and the
        // output columns [lo, hi) that read inside it; an empty range for taps outside
        // the image and rows past `rows`
        int offset[ROW_PANEL], lo[ROW_PANEL], hi[ROW_PANEL];
        int inner_lo = 0, inner_hi = Wo;  // where every row reads inside
        #pragma unroll
        for (int i = 0; i < ROW_PANEL; ++i) {
            const int r = q * ROW_PANEL + i;
            const int kx = r % KW, ky = (r / KW) % KH, c = r / (KW * KH);
            const int iy = oy * SH - ph + ky * DH, x0 = kx * DW - pw;
            offset[i] = (c * H + clamp(iy, 0, H - 1)) * W + x0;
            const int2 inside = r >= rows || iy < 0 || iy >= H
                                    ? (int2)(0, 0) : inside_columns(x0, SW, W, Wo);
            lo[i] = inside.x;
            hi[i] = inside.y;
            inner_lo = max(inner_lo, lo[i]);
            inner_hi = min(inner_hi, hi[i]);
        }
        inner_hi = max(inner_lo, inner_hi);
        int ox = 0;
        for (; ox < inner_lo; ++ox) {
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; ++i)
                dst[ox * ROW_PANEL + i] =
                    ox >= lo[i] && ox < hi[i] ? xg[offset[i] + ox * SW] : 0.0f;
        }
#if SW == 1
        // 8 pixels at a time: a vector load from each row, stored transposed
        for (; ox + 8 <= inner_hi; ox += 8) {
            float8 v[ROW_PANEL];
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; ++i) v[i] = vload8(0, xg + offset[i] + ox);
#if ROW_PANEL % 8 == 0
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; i += 8)
                store_transposed8(v + i, dst + ox * ROW_PANEL + i);
#else
            float vs[ROW_PANEL][8];  // vs[i][j]: pixel ox + j of row i
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; ++i) vstore8(v[i], 0, vs[i]);
            #pragma unroll
            for (int j = 0; j < 8; ++j)
                #pragma unroll
                for (int i = 0; i < ROW_PANEL; ++i) dst[(ox + j) * ROW_PANEL + i] = vs[i][j];
#endif
        }
#endif
        for (; ox < inner_hi; ++ox) {
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; ++i)
                dst[ox * ROW_PANEL + i] = xg[offset[i] + ox * SW];
        }
        for (; ox < Wo; ++ox) {
            #pragma unroll
            for (int i = 0; i < ROW_PANEL; ++i)
                dst[ox * ROW_PANEL + i] =
                    ox >= lo[i] && ox < hi[i] ? xg[offset[i] + ox * SW] : 0.0f;
        }
    }
}
#endif  // ROW_PANEL

// dx[n, c, iy, ix] = sum_{ky, kx} col[((n*C + c)*KH + ky)*KW + kx, oy*Wo + ox]
// over the (ky, kx) whose output position (oy, ox) lands on (iy, ix), plus bias[c]
// when has_bias (conv_transpose2d). The window is compiled in, so the taps unroll and
// the stride tests are shifts or multiplies, not divisions (emulated on VC4CL, and most
// of this kernel's time with runtime strides on POCL). Each work-item sums an SH x SW
// block of inputs: which taps reach a block element then depends only on its place in
// the block and the padding, the same in every work-item, so neighbours take the same
// branches (CPU implementations run neighbouring work-items as vector lanes). Grid
// (blocks across, blocks down, n*C).
__kernel void col2im(
    __global const float *col, __global float *dx,
    __global const float *bias, const int has_bias, const int C,
    const int NC, const int ldc,
    const int H, const int W, const int Ho, const int Wo, const int ph, const int pw)
{
    const int ix0 = get_global_id(0) * SW, iy0 = get_global_id(1) * SH;
    const int nc = get_global_id(2);
    if (ix0 >= W || iy0 >= H || nc >= NC) return;
    const float b = has_bias ? bias[nc % C] : 0.0f;
    __global const float *src = col + nc * KH * KW * ldc;
#pragma unroll
    for (int jy = 0; jy < SH; ++jy) {
#pragma unroll
        for (int jx = 0; jx < SW; ++jx) {
            const int iy = iy0 + jy, ix = ix0 + jx;
            float acc = b;
#pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                if ((jy + ph - ky * DH) % SH != 0) continue;  // as (iy + ph - ky*DH) % SH
                const int ty = iy + ph - ky * DH;
                const int oy = ty / SH;  // exact: negative ty gives a negative oy
                const int row_ok = ty >= 0 && oy < Ho;
#pragma unroll
                for (int kx = 0; kx < KW; ++kx) {
                    if ((jx + pw - kx * DW) % SW != 0) continue;
                    const int tx = ix + pw - kx * DW;
                    const int ox = tx / SW;
                    const float v = src[(ky * KW + kx) * ldc + clamp(oy, 0, Ho - 1) * Wo +
                                        clamp(ox, 0, Wo - 1)];
                    acc += row_ok && tx >= 0 && ox < Wo ? v : 0.0f;
                }
            }
            if (iy < H && ix < W) dx[(nc * H + iy) * W + ix] = acc;
        }
    }
}

// out[b, j, i] = in[b, i, j] for i < R, j < Ccols; out rows have length ldo >= R and
// the padding columns are written as zeros. Work-item (j0/4, b) takes columns j0 ..
// j0+3 of batch b as 4x4 blocks: four vector loads down the rows, four vector stores
// along out's rows. One work-item per column, run as vector lanes by POCL, made every
// store a scattered single float: 3x slower on the bench's 1x1 layers.
// OUT_PANEL (> 0; CPUs, for a GEMM's packed operands): each batch of out in panels of
// OUT_PANEL columns instead, element (j, i) at (i / OUT_PANEL, j, i % OUT_PANEL), ldo
// then a multiple of OUT_PANEL (a 4x4 block across two panels stored float by float).
#ifndef OUT_PANEL
#define OUT_PANEL 0
#endif
#if OUT_PANEL
#define OUT_AT(j, i) ((((i) / OUT_PANEL) * Ccols + (j)) * OUT_PANEL + (i) % OUT_PANEL)
#else
#define OUT_AT(j, i) ((j) * ldo + (i))
#endif
__kernel void transpose_batched(
    __global const float *in, __global float *out,
    const int R, const int Ccols, const int ldo, const int batches)
{
    const int j0 = get_global_id(0) * 4, b = get_global_id(1);
    if (j0 >= Ccols || b >= batches) return;
    __global const float *src = in + b * R * Ccols + j0;
    __global float *dst = out + b * Ccols * ldo;
    int i = 0;
    if (j0 + 4 <= Ccols) {
        for (; i + 4 <= R; i += 4) {
            __global const float *s = src + i * Ccols;
            const float4 r0 = vload4(0, s), r1 = vload4(0, s + Ccols);
            const float4 r2 = vload4(0, s + 2 * Ccols), r3 = vload4(0, s + 3 * Ccols);
            const float4 c0 = (float4)(r0.s0, r1.s0, r2.s0, r3.s0);
            const float4 c1 = (float4)(r0.s1, r1.s1, r2.s1, r3.s1);
            const float4 c2 = (float4)(r0.s2, r1.s2, r2.s2, r3.s2);
            const float4 c3 = (float4)(r0.s3, r1.s3, r2.s3, r3.s3);
#if OUT_PANEL % 4
            if (i % OUT_PANEL + 4 > OUT_PANEL) {  // the block's rows straddle two panels
                float block[4][4];  // block[m][l]: out row j0 + m, column i + l
                vstore4(c0, 0, block[0]);
                vstore4(c1, 0, block[1]);
                vstore4(c2, 0, block[2]);
                vstore4(c3, 0, block[3]);
                #pragma unroll
                for (int m = 0; m < 4; ++m)
                    #pragma unroll
                    for (int l = 0; l < 4; ++l) dst[OUT_AT(j0 + m, i + l)] = block[m][l];
                continue;
            }
#endif
            vstore4(c0, 0, dst + OUT_AT(j0, i));
            vstore4(c1, 0, dst + OUT_AT(j0 + 1, i));
            vstore4(c2, 0, dst + OUT_AT(j0 + 2, i));
            vstore4(c3, 0, dst + OUT_AT(j0 + 3, i));
        }
    }
    for (int c = 0; c < min(4, Ccols - j0); ++c)  // the rest: the last rows, padding
        for (int r = i; r < ldo; ++r)
            dst[OUT_AT(j0 + c, r)] = r < R ? src[r * Ccols + c] : 0.0f;
}

// Built only where the host defines FLIP_PANEL (CPUs), for the same reasons as PANEL.
#ifdef FLIP_PANEL
// flip_weights' result in the GEMM's A panels of FLIP_PANEL rows (gemm.cl A_PACKED, as
// tiled_gemm.pack_a lays out weights): per group g, panel q, wp[((g*panels + q)*Kg*taps
// + kk*taps + t)*FLIP_PANEL + i] = wt[g*Cg + q*FLIP_PANEL + i, kk, t], rows past Cg
// zero. One work-item per (panel, group) writes its panel, contiguous; the FLIP_PANEL
// windows it reads for each kk are contiguous too.
#define TAPS (KH * KW)
__kernel void flip_weights_panels(
    __global const float *w, __global float *wp,
    const int Cg, const int Kg, const int panels)
{
    const int q = get_global_id(0), g = get_global_id(1);
    if (q >= panels) return;
    const int rows = min(FLIP_PANEL, Cg - q * FLIP_PANEL);
    __global float *dst = wp + (g * panels + q) * Kg * TAPS * FLIP_PANEL;
    for (int kk = 0; kk < Kg; ++kk, dst += TAPS * FLIP_PANEL) {
        __global const float *src = w + ((g * Kg + kk) * Cg + q * FLIP_PANEL) * TAPS;
        if (rows == FLIP_PANEL) {  // a whole panel: no bounds test
            #pragma unroll
            for (int t = 0; t < TAPS; ++t)
                #pragma unroll
                for (int i = 0; i < FLIP_PANEL; ++i)
                    dst[t * FLIP_PANEL + i] = src[i * TAPS + TAPS - 1 - t];
        } else {
            for (int t = 0; t < TAPS; ++t)
                #pragma unroll
                for (int i = 0; i < FLIP_PANEL; ++i)
                    dst[t * FLIP_PANEL + i] = i < rows ? src[i * TAPS + TAPS - 1 - t] : 0.0f;
        }
    }
}
#undef TAPS
#endif  // FLIP_PANEL

// The weights of a stride-1 convolution's input gradient as a forward convolution:
// wt[g*Cg + c, kk, ky, kx] = w[g*Kg + kk, c, kh-1-ky, kw-1-kx]
// (w is (K, Cg, kh, kw), wt is (C, Kg, kh, kw), C = groups*Cg, K = groups*Kg).
__kernel void flip_weights(
    __global const float *w, __global float *wt,
    const int C, const int Cg, const int Kg, const int taps)
{
    // One work-item per input channel cc = g*Cg + c: it writes the Kg rows (cc, kk) of
    // wt. Flipping both window axes reverses the flat tap index.
    const int cc = get_global_id(0);
    if (cc >= C) return;
    const int g = cc / Cg, c = cc - (cc / Cg) * Cg;
    for (int kk = 0; kk < Kg; ++kk) {
        __global const float *src = w + ((g * Kg + kk) * Cg + c) * taps;
        __global float *dst = wt + (cc * Kg + kk) * taps;
        for (int t = 0; t < taps; ++t) dst[t] = src[taps - 1 - t];
    }
}
