// Winograd F(2x2, 3x3) convolution for 3x3, stride-1, undilated, ungrouped layers:
// Y = A^T [ (G g G^T) (.) (B^T d B) ] A over 4x4 input tiles d that overlap by 2, each
// giving a 2x2 block of outputs. The elementwise product summed over channels is 16
// GEMMs, one per tile position xi (gemm.cl); these kernels transform in and out.
//   U[xi, k, c] = (G g[k, c] G^T)[xi]            weights, (16, K, C)
//   V[xi, c, t] = (B^T d[c, t] B)[xi]            input tiles t = (n, ty, tx), (16, C, ldt)
//   M[xi, k, t] = sum_c U[xi, k, c] V[xi, c, t]  the GEMMs, (16, K, ldt)
// U's, V's and M's matrices start `plane` floats apart (a little more than K*C, C*ldt and
// K*ldt: see algos/winograd.py SKEW; U's exactly K*C where it is packed next).
//   out[n, k, 2ty.., 2tx..] = A^T M[., k, t] A   (+ bias), then the activation
// Each work-item transforms 8 input channels of one (k) window, or 8 neighbouring tiles
// of one channel, as float8 vectors: no local memory, no barriers.
//
// NaN and +-inf: the transforms add and subtract inputs that the exact result cancels
// (inf - inf is NaN), so a non-finite input can make NaN of outputs that torch gives as
// inf or as a number. An output the transforms give finite met no non-finite value, so
// it is right; each non-finite one is summed again directly from the input
// (direct_output), which costs nothing while the data are finite.

#include "winograd_store.h"  // direct_output, winograd_store_row: the epilogue
#if WINOGRAD_UNPADDED
#include "winograd_rows.h"   // row16: the input transform's loads
#endif

// grid (input channel group of 8, output channel k): 8 channels' windows as float8s
__kernel void winograd_weights(
    __global const float *w, __global float *U, const int K, const int C, const int plane)
{
    const int c0 = get_global_id(0) * 8, k = get_global_id(1);
    if (c0 >= C || k >= K) return;
    const int lanes = min(8, C - c0);
    __global const float *src = w + (k * C + c0) * 9;
    float g[72];  // 8 windows of 9 taps, as stored
    if (lanes == 8) {
        for (int q = 0; q < 9; ++q) vstore8(vload8(q, src), q, g);
    } else {
        for (int q = 0; q < 72; ++q) g[q] = q < lanes * 9 ? src[q] : 0.0f;
    }
    float8 tap[9];  // tap[j]: tap j of the 8 windows
    for (int j = 0; j < 9; ++j)
        tap[j] = (float8)(g[j], g[9 + j], g[18 + j], g[27 + j], g[36 + j], g[45 + j],
                          g[54 + j], g[63 + j]);
    // Gg (4x3), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
    float8 t[4][3];
    for (int j = 0; j < 3; ++j) {
        const float8 g0 = tap[j], g1 = tap[3 + j], g2 = tap[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5f * (g0 + g1 + g2);
        t[2][j] = 0.5f * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    __global float *u = U + k * C + c0;
    for (int i = 0; i < 4; ++i) {  // (Gg) G^T
        const float8 a = t[i][0], b = t[i][1], d = t[i][2];
        float8 row[4];
        row[0] = a;
        row[1] = 0.5f * (a + b + d);
        row[2] = 0.5f * (a - b + d);
        row[3] = d;
        for (int j = 0; j < 4; ++j) {
            __global float *dst = u + (i * 4 + j) * plane;
            if (lanes == 8) {
                vstore8(row[j], 0, dst);
            } else {
                float v[8];
                vstore8(row[j], 0, v);
                // unrolled and guarded: a loop of unknown length would become a memcpy,
                // which VC4C cannot compile
#pragma unroll
                for (int l = 0; l < 8; ++l)
                    if (l < lanes) dst[l] = v[l];
            }
        }
    }
}

// Tiles are indexed t = (n*tiles_h + ty)*tiles_w8 + tx, the tile row padded to a multiple
// of 8 (tiles_w8) so that each work-item takes 8 neighbouring tiles as float8 vectors.
// Built for a CPU (WINOGRAD_UNPADDED, as winograd4.cl), the input is read as it is:
// tile (ty, tx) covers rows 2*ty - pad_top .. +3 and columns 2*tx - pad_left .. +3 of the
// (N*C, H, W) planes x (x_size floats), and what lies outside them reads 0. Otherwise
// (VC4C's build) it arrives zero-bordered (depthwise.cl's pad_planes): no bounds tests.

#if WINOGRAD_UNPADDED
// the arguments and the grid: winograd_rows.h (UNPADDED_INPUT_ARGS, INPUT_TILES)
__kernel void winograd_input(UNPADDED_INPUT_ARGS)
{
    INPUT_TILES(2);
    const int16 in_a = lanes_inside(col, W), in_b = lanes_inside(col + 2, W);
    float8 d[4][4];  // d[i][j]: row i, column j of the 8 tiles' 4x4 inputs
    for (int i = 0; i < 4; ++i) {
        const int iy = 2 * ty + i - pad_top;
        float16 a = 0.0f, b = 0.0f;
        if ((uint)iy < (uint)H) {
            const int at = (nc * H + iy) * W + col;
            a = row16(x, x_size, at, col, W, in_a);
            b = row16(x, x_size, at + 2, col + 2, W, in_b);
        }
#else
// grid (tile column group, tile row, n*C + c) over the padded planes xp (N*C, Hp, Wp)
__kernel void winograd_input(
    __global const float *xp, __global float *V,
    const int C, const int Hp, const int Wp, const int tiles_h, const int tiles_w8,
    const int ldt, const int plane)
{
    const int tx0 = get_global_id(0) * 8, ty = get_global_id(1), nc = get_global_id(2);
    if (tx0 >= tiles_w8 || ty >= tiles_h) return;
    const int n = nc / C, c = nc - n * C;
    __global const float *src = xp + (nc * Hp + 2 * ty) * Wp + 2 * tx0;
    float8 d[4][4];  // d[i][j]: row i, column j of the 8 tiles' 4x4 inputs
    for (int i = 0; i < 4; ++i) {
        const float16 a = vload16(0, src + i * Wp), b = vload16(0, src + i * Wp + 2);
#endif
        d[i][0] = a.even;
        d[i][1] = a.odd;
        d[i][2] = b.even;
        d[i][3] = b.odd;
    }
    // B^T d (rows), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    float8 e[4][4];
    for (int j = 0; j < 4; ++j) {
        e[0][j] = d[0][j] - d[2][j];
        e[1][j] = d[1][j] + d[2][j];
        e[2][j] = d[2][j] - d[1][j];
        e[3][j] = d[1][j] - d[3][j];
    }
    __global float *v = V + c * ldt + (n * tiles_h + ty) * tiles_w8 + tx0;
    for (int i = 0; i < 4; ++i) {  // (B^T d) B (columns)
        vstore8(e[i][0] - e[i][2], 0, v + (i * 4 + 0) * plane);
        vstore8(e[i][1] + e[i][2], 0, v + (i * 4 + 1) * plane);
        vstore8(e[i][2] - e[i][1], 0, v + (i * 4 + 2) * plane);
        vstore8(e[i][1] - e[i][3], 0, v + (i * 4 + 3) * plane);
    }
}

// grid (tile column group, tile row, n*K + k); xp, w and C, Hp, Wp (and pad_top,
// pad_left: WINOGRAD_UNPADDED, the input as it is): the input the transform read and the
// weights, for the outputs summed again (see above)
__kernel void winograd_output(
    __global const float *M, __global const float *bias, const int has_bias,
    __global float *out,
    const int K, const int Ho, const int Wo, const int tiles_h, const int tiles_w8,
    const int ldt, const int plane, __global const float *xp, __global const float *w,
#if WINOGRAD_UNPADDED
    const int C, const int Hp, const int Wp, const int pad_top, const int pad_left,
#else
    const int C, const int Hp, const int Wp,
#endif
    const float act_alpha, const float act_beta)
{
#if !WINOGRAD_UNPADDED
    const int pad_top = 0, pad_left = 0;  // xp: zero-bordered
#endif
    const int tx0 = get_global_id(0) * 8, ty = get_global_id(1), nk = get_global_id(2);
    if (tx0 >= tiles_w8 || ty >= tiles_h) return;
    const int n = nk / K, k = nk - n * K;
    __global const float *m = M + k * ldt + (n * tiles_h + ty) * tiles_w8 + tx0;
    // A^T s A, A^T = [1 1 1 0; 0 1 -1 -1]; s (4x4) read a column at a time: with all 16
    // vectors loaded first, VC4C's register allocator failed the program now and then
    float8 a[2][4];
    for (int j = 0; j < 4; ++j) {
        const float8 s0 = vload8(0, m + j * plane), s1 = vload8(0, m + (4 + j) * plane);
        const float8 s2 = vload8(0, m + (8 + j) * plane), s3 = vload8(0, m + (12 + j) * plane);
        a[0][j] = s0 + s1 + s2;
        a[1][j] = s1 - s2 - s3;
    }
    const float8 b = (float8)(has_bias ? bias[k] : 0.0f);
    const int ox0 = 2 * tx0;
    for (int i = 0; i < 2; ++i) {
        const int oy = 2 * ty + i;
        if (oy >= Ho) continue;
        const float8 y0 = a[i][0] + a[i][1] + a[i][2] + b;  // column 2*tx of each tile
        const float8 y1 = a[i][1] - a[i][2] - a[i][3] + b;  // column 2*tx + 1
        float16 v = shuffle2(y0, y1, (uint16)(0, 8, 1, 9, 2, 10, 3, 11,
                                              4, 12, 5, 13, 6, 14, 7, 15));
        winograd_store_row(v, b.s0, out, xp, w, n, k, nk, C, Hp, Wp, pad_top, pad_left, Ho,
                           Wo, oy, ox0,
                           act_alpha, act_beta);
    }
}
