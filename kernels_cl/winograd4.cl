// Winograd F(4x4, 3x3), for CPUs (VC4C never builds this file; the GPUs keep
// winograd.cl's F(2x2, 3x3)): Y = A^T [ (G g G^T) (.) (B^T d B) ] A over 6x6 input tiles
// d that overlap by 2, each giving a 4x4 block of outputs: 36 GEMMs (gemm.cl) of a
// quarter of the direct product's multiply-adds, against F(2x2)'s 16 of 4/9.
//   U[xi, k, c] = (G g[k, c] G^T)[xi]            weights, (36, K, C)
//   V[xi, c, t] = (B^T d[c, t] B)[xi]            input tiles t = (n, ty, tx), (36, C, ldt)
//   M[xi, k, t] = sum_c U[xi, k, c] V[xi, c, t]  the GEMMs, (36, K, ldt)
//   out[n, k, 4ty.., 4tx..] = A^T M[., k, t] A   (+ bias), then the activation
// (U's, V's and M's matrices `plane` floats apart, as in winograd.cl)
// with the points 0, 1, -1, 2, -2 and infinity (Lavin and Gray's matrices):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//          0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Each work-item transforms 8 input channels of one (k) window, or 8 neighbouring tiles
// of one channel as float8 vectors (4 tiles, float4, stored 16 bytes to each of the 36
// matrices, took the transforms 2-3 times as long in a whole model). NaN and +-inf as in
// winograd.cl: each non-finite output is summed again directly.

#ifndef WINOGRAD_UNPADDED
#define WINOGRAD_UNPADDED 1  // the input as it is: no zero-bordered copy (see below)
#endif
#include "winograd_rows.h"   // row16: the input transform's loads
#include "winograd_store.h"  // direct_output, winograd_store_row: the epilogue

// o[0..5] = G (x0, x1, x2)^T: one column (or row) of G g G^T
#define G_ROWS(o, x0, x1, x2)                                          \
    do {                                                               \
        o[0] = 0.25f * (x0);                                           \
        o[1] = (-1.0f / 6.0f) * ((x0) + (x1) + (x2));                  \
        o[2] = (-1.0f / 6.0f) * ((x0) - (x1) + (x2));                  \
        o[3] = (1.0f / 24.0f) * (x0) + (1.0f / 12.0f) * (x1) + (1.0f / 6.0f) * (x2); \
        o[4] = (1.0f / 24.0f) * (x0) - (1.0f / 12.0f) * (x1) + (1.0f / 6.0f) * (x2); \
        o[5] = (x2);                                                   \
    } while (0)

// o[0..5] = B^T (x[0..5])
#define BT_ROWS(o, x)                                                  \
    do {                                                               \
        o[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];                       \
        o[1] = -4.0f * (x[1] + x[2]) + x[3] + x[4];                    \
        o[2] = 4.0f * (x[1] - x[2]) - x[3] + x[4];                     \
        o[3] = 2.0f * (x[3] - x[1]) - x[2] + x[4];                     \
        o[4] = 2.0f * (x[1] - x[3]) - x[2] + x[4];                     \
        o[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];                       \
    } while (0)

// o[0..3] = A^T (x[0..5])
#define AT_ROWS(o, x)                                                  \
    do {                                                               \
        o[0] = x[0] + (x[1] + x[2]) + (x[3] + x[4]);                   \
        o[1] = (x[1] - x[2]) + 2.0f * (x[3] - x[4]);                   \
        o[2] = (x[1] + x[2]) + 4.0f * (x[3] + x[4]);                   \
        o[3] = (x[1] - x[2]) + 8.0f * (x[3] - x[4]) + x[5];            \
    } while (0)

// grid (input channel group of 8, output channel k): 8 channels' windows as float8s
__kernel void winograd4_weights(
    __global const float *w, __global float *U, const int K, const int C, const int plane)
{
    const int c0 = get_global_id(0) * 8, k = get_global_id(1);
    if (c0 >= C || k >= K) return;
    const int lanes = min(8, C - c0);
    __global const float *src = w + (k * C + c0) * 9;
    float g[72];  // 8 windows of 9 taps, as stored
    for (int q = 0; q < 72; ++q) g[q] = q < lanes * 9 ? src[q] : 0.0f;
    float8 tap[9];  // tap[j]: tap j of the 8 windows
    for (int j = 0; j < 9; ++j)
        tap[j] = (float8)(g[j], g[9 + j], g[18 + j], g[27 + j], g[36 + j], g[45 + j],
                          g[54 + j], g[63 + j]);
    float8 t[3][6];  // t[j]: column j of G g (6x3)
    for (int j = 0; j < 3; ++j) G_ROWS(t[j], tap[j], tap[3 + j], tap[6 + j]);
    __global float *u = U + k * C + c0;
    for (int i = 0; i < 6; ++i) {  // row i of (G g) G^T
        float8 row[6];
        G_ROWS(row, t[0][i], t[1][i], t[2][i]);
        for (int j = 0; j < 6; ++j) {
            __global float *dst = u + (i * 6 + j) * plane;
            if (lanes == 8) {
                vstore8(row[j], 0, dst);
            } else {
                float v[8];
                vstore8(row[j], 0, v);
                // unrolled and guarded: a loop of run-time length becomes a memcpy,
                // which VC4C cannot compile (as in winograd.cl)
#pragma unroll
                for (int l = 0; l < 8; ++l)
                    if (l < lanes) dst[l] = v[l];
            }
        }
    }
}

// Tiles are indexed t = (n*tiles_h + ty)*tiles_w8 + tx, the tile row padded to a multiple
// of 8 (tiles_w8). The input is read as it is, (N*C, H, W) planes of x_size floats in
// all: tile (ty, tx) covers rows 4*ty - pad_top .. +5 and columns 4*tx - pad_left .. +5,
// and what lies outside the planes reads 0. A zero-bordered copy made first (a pass of
// its own, pad_planes) took DenseNet-121 18 launches and 1.0 ms of its 21 ms of kernels.

// the arguments and the grid: winograd_rows.h (UNPADDED_INPUT_ARGS, INPUT_TILES)
__kernel void winograd4_input(UNPADDED_INPUT_ARGS)
{
    INPUT_TILES(4);
    // the lanes of the row's four loads (columns col + 0, 16, 4 and 20 on) inside it
    const int16 in_a = lanes_inside(col, W), in_b = lanes_inside(col + 16, W);
    const int16 in_a4 = lanes_inside(col + 4, W), in_b4 = lanes_inside(col + 20, W);
    float8 e[6][6];  // e[j]: column j of B^T d, for the 8 tiles
    {
        float8 d[6][6];  // d[j][i]: row i, column j of the 8 tiles' 6x6 inputs
        #pragma unroll
        for (int i = 0; i < 6; ++i) {
            // columns 4t + j of the row: from loads of 32 floats, and 4 floats on
            const int iy = 4 * ty + i - pad_top;
            float16 a = 0.0f, b = 0.0f, a4 = 0.0f, b4 = 0.0f;
            if ((uint)iy < (uint)H) {
                const int at = (nc * H + iy) * W + col;
                a = row16(x, x_size, at, col, W, in_a);
                b = row16(x, x_size, at + 16, col + 16, W, in_b);
                a4 = row16(x, x_size, at + 4, col + 4, W, in_a4);
                b4 = row16(x, x_size, at + 20, col + 20, W, in_b4);
            }
            d[0][i] = (float8)(a.s048c, b.s048c);
            d[1][i] = (float8)(a.s159d, b.s159d);
            d[2][i] = (float8)(a.s26ae, b.s26ae);
            d[3][i] = (float8)(a.s37bf, b.s37bf);
            d[4][i] = (float8)(a4.s048c, b4.s048c);
            d[5][i] = (float8)(a4.s159d, b4.s159d);
        }
        #pragma unroll
        for (int j = 0; j < 6; ++j) BT_ROWS(e[j], d[j]);
    }
    __global float *v = V + c * ldt + (n * tiles_h + ty) * tiles_w8 + tx0;
    #pragma unroll
    for (int i = 0; i < 6; ++i) {  // row i of (B^T d) B
        float8 r[6], o[6];
        #pragma unroll
        for (int j = 0; j < 6; ++j) r[j] = e[j][i];
        BT_ROWS(o, r);
        #pragma unroll
        for (int j = 0; j < 6; ++j) vstore8(o[j], 0, v + (i * 6 + j) * plane);
    }
}

// Outputs 4t + j of a row of 4 tiles, y[j] (float4, lane t): one row of 16 floats.
float16 interleave4(const float4 y0, const float4 y1, const float4 y2, const float4 y3)
{
    const float8 lo = shuffle2(y0, y1, (uint8)(0, 4, 1, 5, 2, 6, 3, 7));
    const float8 hi = shuffle2(y2, y3, (uint8)(0, 4, 1, 5, 2, 6, 3, 7));
    return shuffle2(lo, hi, (uint16)(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
}

// grid (tile column group, tile row, n*K + k); x, w and C, H, W, pad_top, pad_left: the
// input as winograd4_input read it and the weights, for the outputs summed again
__kernel void winograd4_output(
    __global const float *M, __global const float *bias, const int has_bias,
    __global float *out,
    const int K, const int Ho, const int Wo, const int tiles_h, const int tiles_w8,
    const int ldt, const int plane, __global const float *x, __global const float *w,
    const int C, const int H, const int W, const int pad_top, const int pad_left,
    const float act_alpha, const float act_beta)
{
    const int tx0 = get_global_id(0) * 8, ty = get_global_id(1), nk = get_global_id(2);
    if (tx0 >= tiles_w8 || ty >= tiles_h) return;
    const int n = nk / K, k = nk - n * K;
    __global const float *m = M + k * ldt + (n * tiles_h + ty) * tiles_w8 + tx0;
    float8 a[6][4];  // a[j]: column j of A^T s (4x6)
    #pragma unroll
    for (int j = 0; j < 6; ++j) {
        float8 s[6];  // column j of the 6x6 products
        #pragma unroll
        for (int i = 0; i < 6; ++i) s[i] = vload8(0, m + (i * 6 + j) * plane);
        AT_ROWS(a[j], s);
    }
    const float b = has_bias ? bias[k] : 0.0f;
    const int ox0 = 4 * tx0;
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int oy = 4 * ty + i;
        if (oy >= Ho) continue;
        float8 r[6], y[4];  // y[j]: column 4*tx + j of each tile
        #pragma unroll
        for (int j = 0; j < 6; ++j) r[j] = a[j][i];
        AT_ROWS(y, r);
        // tiles 0-3, then 4-7 (the second half only where the row has outputs there)
        float16 v = interleave4(y[0].lo, y[1].lo, y[2].lo, y[3].lo) + b;
        winograd_store_row(v, b, out, x, w, n, k, nk, C, H, W, pad_top, pad_left, Ho, Wo,
                           oy, ox0, act_alpha, act_beta);
        if (ox0 + 16 < Wo) {
            v = interleave4(y[0].hi, y[1].hi, y[2].hi, y[3].hi) + b;
            winograd_store_row(v, b, out, x, w, n, k, nk, C, H, W, pad_top, pad_left, Ho,
                               Wo, oy, ox0 + 16, act_alpha, act_beta);
        }
    }
}
