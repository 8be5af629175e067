// Depthwise convolution that loads its inputs straight from global memory: no padding
// pass, no local-memory block, for CPU devices (POCL). Run with a local size of 1: a
// work-item's border tests then branch alone, where POCL would otherwise run
// neighbouring work-items as vector lanes that diverge at the borders; the vectors are
// the explicit TW-wide ones below.
//
// Everything that decides a border is compiled in: the window (window.h), the plane
// sizes IN_H x IN_W -> OUT_H x OUT_W and the top/left padding PAD_T, PAD_L (bottom and
// right padding follow from the sizes). The loop over a row's TW-wide output spans
// unrolls, so each tap's first column is a constant, and the compiler keeps, per tap,
// only the load its border case needs: one vector load inside the row, a vector load
// and a constant lane shift at its ends (see tap).
#include "depthwise_direct.h"

#ifndef R
#define R 1             // input planes summed per output plane
#endif
#ifndef MB
#define MB 1            // output planes per work-item, sharing each loaded tap (R == 1)
#endif

#if (TW == 4 || TW == 8 || TW == 16) && (SW == 1 || SW == 2)
// Output rows band*rows .. band*rows+rows-1 of MB output planes p = n*Ko + o0 + m,
// work-item (n*Ko/MB + o0/MB, band). Output plane o sums R input planes
// c = (o / mult) * R + r, each with window w[R == 1 ? o : c]:
//   forward:                                              mult = multiplier, R = 1;
//   grad_input (stride 1, flipped windows, padding d*(k-1)-p):  mult = 1, R = multiplier.
__kernel void depthwise_direct(
    __global const float *restrict x, __global const float *restrict w,
    __global const float *restrict bias, const int has_bias,
    __global float *restrict out, const int Ci, const int Ko, const int mult, const int rows,
    const float act_alpha, const float act_beta)
{
    const int group = get_global_id(0), band = get_global_id(1);
    const int o0 = group % (Ko / MB) * MB, n = group / (Ko / MB);
    const int base = (o0 / mult) * R;
    const int oy_end = min(band * rows + rows, OUT_H);
    for (int oy = band * rows; oy < oy_end; ++oy) {
#pragma unroll
        for (int t = 0; t < OUT_W; t += TW) {
            // the last span ends at the row's end, overlapping the one before: whole
            // vector stores, and its taps inside the row need no lane shift
            const int ox0 = OUT_W >= TW ? min(t, OUT_W - TW) : t;
            DVEC acc[MB];
#pragma unroll
            for (int m = 0; m < MB; ++m) acc[m] = (DVEC)(has_bias ? bias[o0 + m] : 0.0f);
            // not unrolled: with R planes of taps the loop over spans would not unroll,
            // which needs constant tap columns
            for (int r = 0; r < R; ++r) {
                __global const float *src = x + (n * Ci + base + r) * (IN_H * IN_W);
#pragma unroll
                for (int ky = 0; ky < KH; ++ky) {
                    __global const float *row = tap_row(src, oy, ky);
                    if (!row) continue;
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx) {
                        const DVEC v = tap(row, ox0, kx);
#pragma unroll
                        for (int m = 0; m < MB; ++m) {
                            const int window = R == 1 ? o0 + m : base + r;
                            acc[m] = MAD(v, (DVEC)(w[window * (KH * KW) + ky * KW + kx]),
                                         acc[m]);
                        }
                    }
                }
            }
#pragma unroll
            for (int m = 0; m < MB; ++m) {
                __global float *dst = out + ((n * Ko + o0 + m) * OUT_H + oy) * OUT_W + ox0;
#if ACCUMULATE
                if (ox0 != t) {  // the lanes before t hold results, the residual added
                    store_lanes_from(acc[m], dst, t - ox0, act_alpha, act_beta);
                    continue;
                }
#endif
                store_span(acc[m], dst, OUT_W - ox0, act_alpha, act_beta);
            }
        }
    }
}
#endif
