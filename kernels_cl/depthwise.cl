// Depthwise convolution forward (groups == in_channels, out_channels = multiplier * C),
// NCHW float32. Each work-item computes TW neighbouring outputs of one output row;
// the window size is compiled in (KH, KW) so the loops unroll. No local memory, any
// work-group size works.

#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef TW
#define TW 8            // outputs along a row per work-item
#endif
#ifndef ACT
#define ACT 0           // 0: none, 1: relu
#endif

__kernel void depthwise_forward(
    __global const float *x, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *out,
    const int C, const int H, const int W, const int K, const int Ho, const int Wo,
    const int sh, const int sw, const int ph, const int pw, const int dh, const int dw)
{
    const int ox0 = get_global_id(0) * TW;
    const int oy = get_global_id(1);
    const int nk = get_global_id(2);
    if (ox0 >= Wo || oy >= Ho) return;
    const int k = nk % K;
    const int n = nk / K;
    const int c = k / (K / C);
    __global const float *src = x + (n * C + c) * H * W;
    __global const float *wp = w + k * (KH * KW);
    const float b = has_bias ? bias[k] : 0.0f;
    float acc[TW];
#pragma unroll
    for (int j = 0; j < TW; ++j) acc[j] = b;
#pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        const int iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) continue;
        __global const float *row = src + iy * W;
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) {
            const float wv = wp[ky * KW + kx];
            const int x0 = kx * dw - pw;
#pragma unroll
            for (int j = 0; j < TW; ++j) {
                const int ix = (ox0 + j) * sw + x0;
                const float v = row[clamp(ix, 0, W - 1)];
                acc[j] += (ix >= 0 && ix < W) ? v * wv : 0.0f;
            }
        }
    }
    __global float *dst = out + (nk * Ho + oy) * Wo;
#pragma unroll
    for (int j = 0; j < TW; ++j) {
        float v = acc[j];
#if ACT == 1
        v = fmax(v, 0.0f);
#endif
        if (ox0 + j < Wo) dst[ox0 + j] = v;
    }
}
