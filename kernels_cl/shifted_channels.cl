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
    const int own0 = get_global_id(0) * PX;  // the first column this work-item stores
    const int v0 = get_global_id(1) * VB;  // the work-item's first vector of channels
    const int img = get_global_id(2);
    if (own0 >= columns || v0 * VW >= K) return;
    // The last run moves back to end at the last column (the host keeps PX <= columns),
    // computing some of the run before it again and storing only its own: every tap
    // then reads PX consecutive floats from one base, at constant offsets. Clamping
    // each column instead made every tap's addresses indices of their own, which
    // spilled to the stack (a load per broadcast) and ran the layer 1.1-1.15x slower.
    const int n0 = min(own0, columns - PX);
    VEC acc[VB][PX];
    #pragma unroll
    for (int b = 0; b < VB; ++b)
        #pragma unroll
        for (int p = 0; p < PX; ++p) acc[b][p] = (VEC)(0.0f);
    __global const float *xn = x + img * in_image + n0;
    const int vector_stride = C * KH * KW * VW;  // from one vector of channels to the next
    __global const float *wv0 = w + v0 * vector_stride;
    for (int c = 0; c < C; ++c) {
        __global const float *xc = xn + c * in_plane;
        __global const float *wc = wv0 + c * (KH * KW * VW);
        #pragma unroll
        for (int t = 0; t < KH * KW; ++t) {
            const int shift = (t / KW) * tap_row + (t % KW) * tap_col;
            VEC wt[VB];
            #pragma unroll
            for (int b = 0; b < VB; ++b) wt[b] = VLOAD(0, wc + b * vector_stride + t * VW);
            #pragma unroll
            for (int p = 0; p < PX; ++p) {
                const VEC xv = (VEC)(xc[p + shift]);
                #pragma unroll
                for (int b = 0; b < VB; ++b) acc[b][p] = MAD(xv, wt[b], acc[b][p]);
            }
        }
    }
    // The epilogue, a vector of channels at a time (bias, residual and activation on
    // the vector, then its lanes stored to their planes): per lane it cost ~1/4 of the
    // time of SqueezeNet's first 3x3 layer.
    __global float *o = out + img * out_image + out_base;
    #pragma unroll
    for (int b = 0; b < VB; ++b) {
        const int k0 = (v0 + b) * VW;
        if (k0 >= K) break;
        const int lanes_out = min(VW, K - k0);  // channels past K are not stored
        __global float *ok = o + k0 * out_plane;
#if HAS_BIAS
        VEC bias_vector;
        if (lanes_out == VW) {
            bias_vector = VLOAD(0, bias + k0);
        } else {
            float lanes[VW];
            #pragma unroll
            for (int j = 0; j < VW; ++j) lanes[j] = j < lanes_out ? bias[k0 + j] : 0.0f;
            bias_vector = VLOAD(0, lanes);
        }
#endif
        #pragma unroll
        for (int p = 0; p < PX; ++p) {
            const int n = n0 + p;
            const int q = n / row_in, col = n - q * row_in;
            if (n < own0 || col >= row_out) continue;  // another's column, or a border's
            __global float *op = ok + q * out_pitch + col;
            VEC v = acc[b][p];
#if HAS_BIAS
            v += bias_vector;
#endif
#if ACCUMULATE
            float residual[VW];
            #pragma unroll
            for (int j = 0; j < VW; ++j) residual[j] = j < lanes_out ? op[j * out_plane] : 0.0f;
            v += VLOAD(0, residual);
#endif
            v = ACTIVATE_WIDTH(VW)(v, act_alpha, act_beta);
            float lanes[VW];
            VSTORE(v, 0, lanes);
            if (lanes_out == VW) {
                #pragma unroll
                for (int j = 0; j < VW; ++j) op[j * out_plane] = lanes[j];
            } else {
                for (int j = 0; j < lanes_out; ++j) op[j * out_plane] = lanes[j];
            }
        }
    }
}
