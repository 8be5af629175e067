// A stride-1 convolution over shifted views of zero-bordered input planes, for CPUs, with
// the output channels in the vector lanes (algos/shifted.py, groups of 1, packed weights).
//
// The input planes are zero-bordered, row_in columns wide (algos/shifted.py padded_shape);
// output pixel (q, p) is column n = q * row_in + p of a plane, and tap (ky, kx) reads the
// planes at n + ky * tap_row + kx * tap_col. A work-item computes PX consecutive columns
// n0.. for VB vectors of VW output channels: for each input channel and tap, VB weight
// vectors (contiguous, packed once) and PX input floats (contiguous, each broadcast).
// gemm.cl's SHIFTED form holds pixels in the lanes instead: every tap's vector of pixels
// is an unaligned load, and a work-item shares it over only TM channels. This form ran
// SqueezeNet's 3x3 layers 1.2-1.4x faster (docs/performance.md, session 20).
//
// Weights: [K / VW (rounded up to VB)][C][KH * KW][VW], channels past K zero.
// The epilogue per output: + bias, + the output's value (ACCUMULATE: a residual), then
// activation.h's activation; columns in the border (p >= row_out) and channels past K
// are not stored. Output: image `img` at out + img * out_image, channel k's plane at
// k * out_plane, row q at out_base + q * out_pitch.
// No local memory and no barriers: any work-group size works. Built for CPUs only; VC4C
// compiles it at VideoCore sizes (VW=4, VB=1, PX=2) but not at the defaults (registers).

#ifndef VW
#define VW 16           // output channels per vector: the CPU's float lanes
#endif
#ifndef VB
#define VB 2            // vectors of channels per work-item
#endif
#ifndef PX
#define PX 8            // output columns per work-item
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif

#include "activation.h"
#include "mad.h"
#include "window.h"  // KH x KW taps (its strides and dilations unused: run-time tap offsets)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VEC CAT(float, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

__kernel __attribute__((vec_type_hint(VEC))) void shifted_channels(
    __global const float *x, __global const float *w, __global const float *bias,
    __global float *out, const int C, const int K, const int columns,
    const int in_plane, const int in_image, const int tap_row, const int tap_col,
    const int row_in, const int row_out, const int out_plane, const int out_image,
    const int out_pitch, const int out_base, const float act_alpha, const float act_beta)
{
    const int n0 = get_global_id(0) * PX;
    const int v0 = get_global_id(1) * VB;  // the work-item's first vector of channels
    const int img = get_global_id(2);
    if (n0 >= columns || v0 * VW >= K) return;
    VEC acc[VB][PX];
    #pragma unroll
    for (int b = 0; b < VB; ++b)
        #pragma unroll
        for (int p = 0; p < PX; ++p) acc[b][p] = (VEC)(0.0f);
    // the run's last columns clamped to the last computed one: its taps stay inside the
    // planes, and its results are not stored
    const int n_last = columns - 1;
    __global const float *xi = x + img * in_image;
    const int vector_stride = C * KH * KW * VW;  // from one vector of channels to the next
    __global const float *wv0 = w + v0 * vector_stride;
    for (int c = 0; c < C; ++c) {
        __global const float *xc = xi + c * in_plane;
        __global const float *wc = wv0 + c * (KH * KW * VW);
        #pragma unroll
        for (int t = 0; t < KH * KW; ++t) {
            const int shift = (t / KW) * tap_row + (t % KW) * tap_col;
            VEC wt[VB];
            #pragma unroll
            for (int b = 0; b < VB; ++b) wt[b] = VLOAD(0, wc + b * vector_stride + t * VW);
            #pragma unroll
            for (int p = 0; p < PX; ++p) {
                const VEC xv = (VEC)(xc[min(n0 + p, n_last) + shift]);
                #pragma unroll
                for (int b = 0; b < VB; ++b) acc[b][p] = MAD(xv, wt[b], acc[b][p]);
            }
        }
    }
    __global float *o = out + img * out_image + out_base;
    #pragma unroll
    for (int p = 0; p < PX; ++p) {
        const int n = n0 + p;
        const int q = n / row_in, col = n - q * row_in;
        if (n >= columns || col >= row_out) continue;
        __global float *op = o + q * out_pitch + col;
        #pragma unroll
        for (int b = 0; b < VB; ++b) {
            float lanes[VW];
            VSTORE(acc[b][p], 0, lanes);
            const int k0 = (v0 + b) * VW;
            #pragma unroll
            for (int j = 0; j < VW; ++j) {
                const int k = k0 + j;
                if (k >= K) break;
                float v = lanes[j];
#if HAS_BIAS
                v += bias[k];
#endif
#if ACCUMULATE
                v += op[k * out_plane];
#endif
                op[k * out_plane] = activate(v, act_alpha, act_beta);
            }
        }
    }
}
