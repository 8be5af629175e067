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
#include "window.h"
#include "vector_span.h"

#ifndef IN_H
#define IN_H 8
#endif
#ifndef IN_W
#define IN_W 8
#endif
#ifndef OUT_H
#define OUT_H 8
#endif
#ifndef OUT_W
#define OUT_W 8
#endif
#ifndef PAD_T
#define PAD_T 0
#endif
#ifndef PAD_L
#define PAD_L 0
#endif
#ifndef R
#define R 1             // input planes summed per output plane
#endif
#ifndef MB
#define MB 1            // output planes per work-item, sharing each loaded tap (R == 1)
#endif

#if (TW == 4 || TW == 8 || TW == 16) && (SW == 1 || SW == 2)

#ifndef USE_FMA
#define USE_FMA 0       // 1: fma() (fused; fast where the hardware has FMA), 0: mad()
#endif
#if USE_FMA
#define MAD(a, b, c) fma(a, b, c)
#else
#define MAD(a, b, c) mad(a, b, c)
#endif

#define SPAN (SW * TW)  // input columns a tap's TW outputs span

#ifndef PORTABLE_SHIFTS
#ifdef __clang__
#define PORTABLE_SHIFTS 0
#else
#define PORTABLE_SHIFTS 1
#endif
#endif

// Lane shifts by a power of two, zeros entering: UPk moves lane i to i + k, DOWNk to
// i - k. Clang's __builtin_shufflevector is one constant shuffle; the same shifts as
// vector constructors (the portable spelling) came out as partial loads and several
// permutes from POCL, 15 % slower on a whole depthwise layer.
#if !PORTABLE_SHIFTS
#if TW == 16
#define UP1(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
#define DOWN1(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
#define UP2(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    16, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
#define DOWN2(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16)
#define UP4(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    16, 16, 16, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
#define DOWN4(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16)
#define UP8(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    16, 16, 16, 16, 16, 16, 16, 16, 0, 1, 2, 3, 4, 5, 6, 7)
#define DOWN8(v) __builtin_shufflevector((v), (DVEC)(0.0f), \
    8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16, 16, 16, 16)
#elif TW == 8
#define UP1(v) __builtin_shufflevector((v), (DVEC)(0.0f), 8, 0, 1, 2, 3, 4, 5, 6)
#define DOWN1(v) __builtin_shufflevector((v), (DVEC)(0.0f), 1, 2, 3, 4, 5, 6, 7, 8)
#define UP2(v) __builtin_shufflevector((v), (DVEC)(0.0f), 8, 8, 0, 1, 2, 3, 4, 5)
#define DOWN2(v) __builtin_shufflevector((v), (DVEC)(0.0f), 2, 3, 4, 5, 6, 7, 8, 8)
#define UP4(v) __builtin_shufflevector((v), (DVEC)(0.0f), 8, 8, 8, 8, 0, 1, 2, 3)
#define DOWN4(v) __builtin_shufflevector((v), (DVEC)(0.0f), 4, 5, 6, 7, 8, 8, 8, 8)
#elif TW == 4
#define UP1(v) __builtin_shufflevector((v), (DVEC)(0.0f), 4, 0, 1, 2)
#define DOWN1(v) __builtin_shufflevector((v), (DVEC)(0.0f), 1, 2, 3, 4)
#define UP2(v) __builtin_shufflevector((v), (DVEC)(0.0f), 4, 4, 0, 1)
#define DOWN2(v) __builtin_shufflevector((v), (DVEC)(0.0f), 2, 3, 4, 4)
#endif
#else
#if TW == 16
#define UP1(v) (float16)(0.0f, (v).s0123, (v).s4567, (v).s89ab, (v).scde)
#define UP2(v) (float16)((float2)(0.0f), (v).s0123, (v).s4567, (v).s89ab, (v).scd)
#define UP4(v) (float16)((float4)(0.0f), (v).s0123, (v).s4567, (v).s89ab)
#define UP8(v) (float16)((float8)(0.0f), (v).lo)
#define DOWN1(v) (float16)((v).s1234, (v).s5678, (v).s9abc, (v).sdef, 0.0f)
#define DOWN2(v) (float16)((v).s2345, (v).s6789, (v).sabcd, (v).sef, (float2)(0.0f))
#define DOWN4(v) (float16)((v).s4567, (v).s89ab, (v).scdef, (float4)(0.0f))
#define DOWN8(v) (float16)((v).hi, (float8)(0.0f))
#elif TW == 8
#define UP1(v) (float8)(0.0f, (v).s0123, (v).s456)
#define UP2(v) (float8)((float2)(0.0f), (v).s0123, (v).s45)
#define UP4(v) (float8)((float4)(0.0f), (v).s0123)
#define DOWN1(v) (float8)((v).s1234, (v).s567, 0.0f)
#define DOWN2(v) (float8)((v).s2345, (v).s67, (float2)(0.0f))
#define DOWN4(v) (float8)((v).s4567, (float4)(0.0f))
#else
#define UP1(v) (float4)(0.0f, (v).s012)
#define UP2(v) (float4)((float2)(0.0f), (v).s01)
#define DOWN1(v) (float4)((v).s123, 0.0f)
#define DOWN2(v) (float4)((v).s23, (float2)(0.0f))
#endif
#endif

// v's lanes moved down by q (up by -q where q < 0), zeros entering; q is a constant
// where this is called, so only its own shifts are left.
DVEC shift_lanes(DVEC v, const int q)
{
    if (q <= -TW || q >= TW) return (DVEC)(0.0f);
    const int k = abs(q);
    if (q < 0) {
        if (k & 1) v = UP1(v);
        if (k & 2) v = UP2(v);
#if TW >= 8
        if (k & 4) v = UP4(v);
#endif
#if TW == 16
        if (k & 8) v = UP8(v);
#endif
    } else {
        if (k & 1) v = DOWN1(v);
        if (k & 2) v = DOWN2(v);
#if TW >= 8
        if (k & 4) v = DOWN4(v);
#endif
#if TW == 16
        if (k & 8) v = DOWN8(v);
#endif
    }
    return v;
}

// The inputs of one tap for TW neighbouring outputs: columns s, s + SW, ... of an input
// row, zero outside 0 .. IN_W-1. Inside the row, one load. At its ends, the SPAN
// columns from `a`, s moved inside the row so that no load leaves it, then the lanes
// shifted by the distance from a to s (at stride 2, of the even or odd columns).
DVEC tap(__global const float *row, const int s)
{
#if SPAN <= IN_W
#if SW == 1
    if (s >= 0 && s + SPAN <= IN_W) return DVLOAD(0, row + s);
    const int a = clamp(s, 0, IN_W - SPAN);
    return shift_lanes(DVLOAD(0, row + a), s - a);
#else
    const int a = clamp(s, 0, IN_W - SPAN), d = s - a;
#if TW == 16
    const float16 lo = vload16(0, row + a), hi = vload16(0, row + a + 16);
    const float16 even = (float16)(lo.even, hi.even), odd = (float16)(lo.odd, hi.odd);
#elif TW == 8
    const float16 both = vload16(0, row + a);
    const float8 even = both.even, odd = both.odd;
#else
    const float8 both = vload8(0, row + a);
    const float4 even = both.even, odd = both.odd;
#endif
    // column a + d + 2j: the even columns from lane d/2 where d is even, else the odd
    // ones from lane (d-1)/2 (d >> 1 rounds toward minus infinity)
    return shift_lanes(d & 1 ? odd : even, d >> 1);
#endif
#else
    float e[TW];  // a row narrower than the span
#pragma unroll
    for (int j = 0; j < TW; ++j) {
        const int c = s + j * SW;
        e[j] = c >= 0 && c < IN_W ? row[c] : 0.0f;
    }
    return DVLOAD(0, e);
#endif
}

// Output rows band*rows .. band*rows+rows-1 of MB output planes p = n*Ko + o0 + m,
// work-item (n*Ko/MB + o0/MB, band). Output plane o sums R input planes c = (o / mult) * R + r, each with window w[R == 1 ? o : c]:
//   forward:                                              mult = multiplier, R = 1;
//   grad_input (stride 1, flipped windows, padding d*(k-1)-p):  mult = 1, R = multiplier.
__kernel void depthwise_direct(
    __global const float *restrict x, __global const float *restrict w,
    __global const float *restrict bias, const int has_bias,
    __global float *restrict out, const int Ci, const int Ko, const int mult, const int rows)
{
    const int group = get_global_id(0), band = get_global_id(1);
    const int o0 = group % (Ko / MB) * MB, n = group / (Ko / MB);
    const int base = (o0 / mult) * R;
    const int oy_end = min(band * rows + rows, OUT_H);
    for (int oy = band * rows; oy < oy_end; ++oy) {
#pragma unroll
        for (int t = 0; t < OUT_W; t += TW) {
            // the last span ends at the row's end, overlapping the one before: whole
            // vector stores, and no load past the row's end where there is no padding
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
                    const int iy = oy * SH - PAD_T + ky * DH;
                    if (iy < 0 || iy >= IN_H) continue;  // the same for the whole row
                    __global const float *row = src + iy * IN_W;
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx) {
                        const DVEC v = tap(row, ox0 * SW - PAD_L + kx * DW);
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
            for (int m = 0; m < MB; ++m)
                store_span(acc[m], out + ((n * Ko + o0 + m) * OUT_H + oy) * OUT_W + ox0,
                           OUT_W - ox0);
        }
    }
}

// Up to TW gradients of row `g` from column ox0 on, zero past its end (n < TW: a plane
// narrower than TW).
DVEC gradient_span(__global const float *g, const int n)
{
    if (n >= TW) return DVLOAD(0, g);
    float e[TW];
#pragma unroll
    for (int j = 0; j < TW; ++j) e[j] = j < n ? g[j] : 0.0f;
    return DVLOAD(0, e);
}

float lane_sum(const DVEC v)
{
    float lanes[TW];
    DVSTORE(v, 0, lanes);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < TW; ++j) s += lanes[j];
    return s;
}

// grad_w[k, ky, kx] = sum over n, oy, ox of dy[n, k, oy, ox] * x[n, k / mult, iy, ix]:
// one work-item per output channel k, its KH*KW sums as TW-lane vectors over the same
// tap loads as the forward, added up across lanes at the end. No partial sums, no
// second pass. A row's last span overlaps the one before: its first lanes' gradients
// are zeroed there (a shift down and back up), so no product counts twice.
__kernel void depthwise_direct_grad_weight(
    __global const float *restrict x, __global const float *restrict dy,
    __global float *restrict grad_w, const int N, const int Ci, const int Ko,
    const int mult)
{
    const int k = get_global_id(0);
    if (k >= Ko) return;
    DVEC acc[KH * KW];
#pragma unroll
    for (int t = 0; t < KH * KW; ++t) acc[t] = (DVEC)(0.0f);
    for (int n = 0; n < N; ++n) {
        __global const float *src = x + (n * Ci + k / mult) * (IN_H * IN_W);
        __global const float *g = dy + (n * Ko + k) * (OUT_H * OUT_W);
        for (int oy = 0; oy < OUT_H; ++oy) {
#pragma unroll
            for (int t = 0; t < OUT_W; t += TW) {
                const int ox0 = OUT_W >= TW ? min(t, OUT_W - TW) : t;
                const int seen = t - ox0;  // lanes the span before already summed
                const DVEC gv = shift_lanes(shift_lanes(
                    gradient_span(g + oy * OUT_W + ox0, OUT_W - ox0), seen), -seen);
#pragma unroll
                for (int ky = 0; ky < KH; ++ky) {
                    const int iy = oy * SH - PAD_T + ky * DH;
                    if (iy < 0 || iy >= IN_H) continue;  // the same for the whole row
                    __global const float *row = src + iy * IN_W;
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx)
                        acc[ky * KW + kx] = MAD(tap(row, ox0 * SW - PAD_L + kx * DW), gv,
                                                acc[ky * KW + kx]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < KH * KW; ++t) grad_w[k * (KH * KW) + t] = lane_sum(acc[t]);
}
#endif
