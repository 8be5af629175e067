// Direct 2-D convolution, NCHW float32: forward, transposed (which is also the
// gradient w.r.t. the input), and the gradient w.r.t. the weights.
// One work-item per output element; no local memory, so any work-group size works
// (VideoCore IV allows 12). Shapes are arguments, so one build serves every layer.
// Every kernel gets the work-item count first and returns past it, because the
// host rounds the global size up to a multiple of the local size.

#include "activation.h"  // conv2d_forward's epilogue: ACTIVATION, act_alpha, act_beta

// out[n, k, oy, ox] = bias[k] + sum_{c in group, ky, kx} x[n, c, iy, ix] * w[k, c_local, ky, kx]
// with iy = oy*sh - ph + ky*dh (zero outside the input).
__kernel void conv2d_forward(
    const int n_items,
    __global const float *x, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *out,
    const int C, const int H, const int W,
    const int K, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw, const int groups,
    const float act_alpha, const float act_beta)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ox = gid % Wo;
    const int oy = (gid / Wo) % Ho;
    const int k = (gid / (Wo * Ho)) % K;
    const int n = gid / (Wo * Ho * K);
    const int cg = C / groups;                 // input channels per group
    const int c0 = (k / (K / groups)) * cg;    // first input channel of k's group
    float acc = has_bias ? bias[k] : 0.0f;
    for (int c = 0; c < cg; ++c) {
        __global const float *xp = x + ((n * C + c0 + c) * H) * W;
        __global const float *wp = w + ((k * cg + c) * kh) * kw;
        for (int ky = 0; ky < kh; ++ky) {
            const int iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < kw; ++kx) {
                const int ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += xp[iy * W + ix] * wp[ky * kw + kx];
            }
        }
    }
#if ACCUMULATE
    acc += out[gid];
#endif
    out[gid] = activate(acc, act_alpha, act_beta);
}

// Transposed convolution as a gather:
// out[n, o, oy, ox] = bias[o] + sum_{s in group, ky, kx} src[n, s, iy, ix] * w[s, o_local, ky, kx]
// where iy*sh - ph + ky*dh = oy. w has shape (S, O/groups, kh, kw), which is both the
// conv_transpose2d weight and, read as (K, C/groups, kh, kw), the conv2d weight: so
// this kernel is also conv2d's gradient w.r.t. its input (src = grad_output).
__kernel void conv_transpose2d_forward(
    const int n_items,
    __global const float *src, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *out,
    const int S, const int Hs, const int Ws,
    const int O, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw, const int groups)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ox = gid % Wo;
    const int oy = (gid / Wo) % Ho;
    const int o = (gid / (Wo * Ho)) % O;
    const int n = gid / (Wo * Ho * O);
    const int og = O / groups;               // output channels per group
    const int sg = S / groups;               // source channels per group
    const int g = o / og;
    const int o_local = o - g * og;
    float acc = has_bias ? bias[o] : 0.0f;
    for (int s = g * sg; s < (g + 1) * sg; ++s) {
        __global const float *sp = src + ((n * S + s) * Hs) * Ws;
        __global const float *wp = w + ((s * og + o_local) * kh) * kw;
        for (int ky = 0; ky < kh; ++ky) {
            const int ty = oy + ph - ky * dh;
            if (ty < 0 || ty % sh != 0) continue;
            const int iy = ty / sh;
            if (iy >= Hs) continue;
            for (int kx = 0; kx < kw; ++kx) {
                const int tx = ox + pw - kx * dw;
                if (tx < 0 || tx % sw != 0) continue;
                const int ix = tx / sw;
                if (ix >= Ws) continue;
                acc += sp[iy * Ws + ix] * wp[ky * kw + kx];
            }
        }
    }
    out[gid] = acc;
}

// grad_w[k, c_local, ky, kx] = sum_{n, oy, ox} gout[n, k, oy, ox] * x[n, c0 + c_local, iy, ix]
// with iy = oy*sh - ph + ky*dh. One work-item per weight element.
__kernel void conv2d_grad_weight(
    const int n_items,
    __global const float *x, __global const float *gout,
    __global float *grad_w,
    const int N, const int C, const int H, const int W,
    const int K, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw, const int groups)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int cg = C / groups;
    const int kx = gid % kw;
    const int ky = (gid / kw) % kh;
    const int c_local = (gid / (kw * kh)) % cg;
    const int k = gid / (kw * kh * cg);
    const int c = (k / (K / groups)) * cg + c_local;
    float acc = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *xp = x + ((n * C + c) * H) * W;
        __global const float *gp = gout + ((n * K + k) * Ho) * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
            const int iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= H) continue;
            for (int ox = 0; ox < Wo; ++ox) {
                const int ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += gp[oy * Wo + ox] * xp[iy * W + ix];
            }
        }
    }
    grad_w[gid] = acc;
}
