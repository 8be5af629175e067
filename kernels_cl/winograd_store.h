// The end of both Winograd output transforms (winograd.cl's F(2x2, 3x3) and
// winograd4.cl's F(4x4, 3x3)): a work-item's 16 neighbouring outputs of one row, their
// non-finite ones summed again directly (see winograd.cl), the residual (ACCUMULATE) and
// the activation applied, stored up to the row's end.
#ifndef CLCONV_WINOGRAD_STORE_H
#define CLCONV_WINOGRAD_STORE_H

#include "activation.h"  // the epilogue: ACTIVATION, ACCUMULATE, act_alpha, act_beta

// out[n, k, oy, ox] = acc (the bias) + the window's products, summed directly from the
// input planes x (N*C, H, W) and the weights w (K, C, 3, 3) as conv2d_forward does; the
// window's first row and column are oy - pad_top and ox - pad_left of x: zero-bordered
// planes with pads 0 (winograd.cl as VC4C builds it), or with WINOGRAD_UNPADDED (CPUs)
// the input as it is, taps outside it zero.
#ifndef WINOGRAD_UNPADDED
#define WINOGRAD_UNPADDED 0
#endif
float direct_output(float acc, __global const float *x, __global const float *w,
                    const int n, const int k, const int C, const int H, const int W,
                    const int pad_top, const int pad_left, const int oy, const int ox)
{
    const int iy0 = oy - pad_top, ix0 = ox - pad_left;
    for (int c = 0; c < C; ++c) {
        const int plane = (n * C + c) * H;
        __global const float *g = w + (k * C + c) * 9;
        for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
#if WINOGRAD_UNPADDED
                if ((uint)(iy0 + ky) >= (uint)H || (uint)(ix0 + kx) >= (uint)W) continue;
#endif
                acc += x[(plane + iy0 + ky) * W + ix0 + kx] * g[ky * 3 + kx];
            }
    }
    return acc;
}

// Stores v, outputs ox0 .. ox0+15 of row oy of plane nk = n*K + k (b: the bias, in v),
// up to the row's end Wo.
__attribute__((always_inline)) void winograd_store_row(
    float16 v, const float b, __global float *out, __global const float *x,
    __global const float *w, const int n, const int k, const int nk, const int C,
    const int H, const int W, const int pad_top, const int pad_left, const int Ho,
    const int Wo, const int oy, const int ox0, const float act_alpha, const float act_beta)
{
    // any(isnan(v) | isinf(v)), its lanes folded by halves: POCL made any() a test and a
    // branch per lane
    const int16 bad = isnan(v) | isinf(v);
    const int8 bad8 = bad.lo | bad.hi;
    const int4 bad4 = bad8.lo | bad8.hi;
    const int2 bad2 = bad4.lo | bad4.hi;
    if (bad2.x | bad2.y) {  // rare: sum those outputs again, directly
        float t[16];
        vstore16(v, 0, t);
        for (int j = 0; j < 16; ++j)
            if ((isnan(t[j]) || isinf(t[j])) && ox0 + j < Wo)
                t[j] = direct_output(b, x, w, n, k, C, H, W, pad_top, pad_left, oy,
                                     ox0 + j);
        v = vload16(0, t);
    }
    __global float *dst = out + (nk * Ho + oy) * Wo + ox0;
#if ACCUMULATE
    {
        // add the residual dst holds, one output at a time: read as a second
        // 16-wide vector, VC4C's register allocator failed it (3 of 3 tries)
        float t[16];
        vstore16(v, 0, t);
#pragma unroll
        for (int j = 0; j < 16; ++j)  // unrolled, guarded: no memcpy (VC4C)
            if (ox0 + j < Wo) dst[j] = activate(t[j] + dst[j], act_alpha, act_beta);
    }
#else
    v = activate16(v, act_alpha, act_beta);
    if (ox0 + 16 <= Wo) {
        vstore16(v, 0, dst);
    } else {
        float t[16];
        vstore16(v, 0, t);
#pragma unroll
        for (int j = 0; j < 16; ++j)  // unrolled, guarded: no memcpy (VC4C)
            if (ox0 + j < Wo) dst[j] = t[j];
    }
#endif
}

#endif
