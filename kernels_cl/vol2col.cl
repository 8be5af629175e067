// Layout kernels for 3-D convolution through the one tuned GEMM (gemm.cl), NCDHW float32:
//   vol2col: col[row, p] with row = ((n*C + c)*kd + kz)*kh*kw + ky*kw + kx and
//            p = (oz*Ho + oy)*Wo + ox, row length ldc (>= Do*Ho*Wo; the padding columns
//            are written as zeros);
//   col2vol: the gather that sums columns back into a volume (grad_input,
//            conv_transpose3d).
// Work-items past the end return, so any work-group size works (12 included).

__kernel void vol2col(
    __global const float *x, __global float *col,
    const int rows, const int ldc, const int line_chunk,
    const int C, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo,
    const int kd, const int kh, const int kw, const int sd, const int sh, const int sw,
    const int pd, const int ph, const int pw, const int dd, const int dh, const int dw)
{
    // One work-item per (row, chunk of line_chunk output lines (oz, oy)): it writes those
    // lines' Wo columns each. The host picks the chunk (all lines on a CPU, where each
    // work-item costs a little, 1 on a GPU, which wants many work-items). The divisions
    // run once per work-item, none in the loops.
    const int lines = Do * Ho;
    const int l0 = get_global_id(0) * line_chunk;
    const int row = get_global_id(1);
    if (l0 >= lines || row >= rows) return;
    const int kx = row % kw;
    const int t = row / kw;
    const int ky = t % kh;
    const int kz = (t / kh) % kd;
    const int nc = t / (kh * kd);  // n*C + c
    const int x0 = kx * dw - pw;
    // columns whose ix = ox*sw + x0 lies inside [0, W), as in im2col
    const int lo = x0 >= 0 ? 0 : min(Wo, (-x0 - 1) / sw + 1);
    const int hi = max(lo, W - x0 <= 0 ? 0 : min(Wo, (W - x0 - 1) / sw + 1));
    const int l1 = min(lines, l0 + line_chunk);
    int oz = l0 / Ho;
    int oy = l0 - oz * Ho;
    __global const float *plane = x + nc * D * H * W;
    for (int l = l0; l < l1; ++l) {
        __global float *dst = col + row * ldc + l * Wo;
        const int iz = oz * sd - pd + kz * dd;
        const int iy = oy * sh - ph + ky * dh;
        if (++oy == Ho) {
            oy = 0;
            ++oz;
        }
        if (iz < 0 || iz >= D || iy < 0 || iy >= H) {
            for (int ox = 0; ox < Wo; ++ox) dst[ox] = 0.0f;
            continue;
        }
        __global const float *src = plane + (iz * H + iy) * W;
        for (int ox = 0; ox < lo; ++ox) dst[ox] = 0.0f;
        for (int ox = lo; ox < hi; ++ox) dst[ox] = src[ox * sw + x0];
        for (int ox = hi; ox < Wo; ++ox) dst[ox] = 0.0f;
    }
    if (l1 == lines)
        for (int p = lines * Wo; p < ldc; ++p) col[row * ldc + p] = 0.0f;
}

#include "window.h"  // KH, KW, SH, SW, DH, DW
#ifndef KD
#define KD 3            // taps along D, compiled in like the rest of the window
#endif
#ifndef SD
#define SD 1
#endif
#ifndef DD
#define DD 1
#endif

// dx[n, c, iz, iy, ix] = sum over the taps (kz, ky, kx) whose output position
// (oz, oy, ox) lands on (iz, iy, ix) of col[((n*C + c)*KD + kz)*KH*KW + ky*KW + kx,
// (oz*Ho + oy)*Wo + ox], plus bias[c] when has_bias (conv_transpose3d). The window is
// compiled in, so the taps unroll and the stride tests are shifts or multiplies, not
// divisions (emulated on VC4CL). One output per work-item: one accumulator, small
// enough for VC4C's register allocator. Grid (W, H, n*C*D).
__kernel void col2vol(
    __global const float *col, __global float *dx,
    __global const float *bias, const int has_bias, const int C, const int NCD,
    const int ldc, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo, const int pd, const int ph, const int pw)
{
    const int ix = get_global_id(0), iy = get_global_id(1), z = get_global_id(2);
    if (ix >= W || iy >= H || z >= NCD) return;
    const int nc = z / D, iz = z - (z / D) * D;
    float acc = has_bias ? bias[nc % C] : 0.0f;
    __global const float *src = col + nc * (KD * KH * KW) * ldc;
#pragma unroll
    for (int kz = 0; kz < KD; ++kz) {
        const int tz = iz + pd - kz * DD;
        const int oz = tz / SD;  // exact when tz % SD == 0; negative tz: negative oz
        if (tz % SD != 0 || tz < 0 || oz >= Do) continue;
#pragma unroll
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = iy + ph - ky * DH;
            const int oy = ty / SH;
            if (ty % SH != 0 || ty < 0 || oy >= Ho) continue;
#pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int tx = ix + pw - kx * DW;
                const int ox = tx / SW;
                if (tx % SW != 0 || tx < 0 || ox >= Wo) continue;
                acc += src[((kz * KH + ky) * KW + kx) * ldc + (oz * Ho + oy) * Wo + ox];
            }
        }
    }
    dx[(z * H + iy) * W + ix] = acc;
}
