// Shared by depthwise_direct.cl and depthwise_direct_grad_weight.cl: the compiled-in
// geometry, and the tap loads with their lane shifts (see depthwise_direct.cl).
#ifndef CLCONV_DEPTHWISE_DIRECT_H
#define CLCONV_DEPTHWISE_DIRECT_H

#include "mad.h"
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

#if (TW == 4 || TW == 8 || TW == 16) && (SW == 1 || SW == 2)

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

// The input row that tap row ky reads for output row oy, or 0 where that row is
// padding: then the taps of the whole row add nothing and are skipped.
__global const float *tap_row(__global const float *plane, const int oy, const int ky)
{
    const int iy = oy * SH - PAD_T + ky * DH;
    return iy >= 0 && iy < IN_H ? plane + iy * IN_W : 0;
}

// The inputs of tap column kx for the TW outputs from column ox0 on: input columns
// s, s + SW, ... of `row`, zero outside 0 .. IN_W-1. Inside the row, one load. At its
// ends, the SPAN columns from `a`, s moved inside the row so that no load leaves it,
// then the lanes shifted by the distance from a to s (at stride 2, of the even or odd
// columns).
DVEC tap(__global const float *row, const int ox0, const int kx)
{
    const int s = ox0 * SW - PAD_L + kx * DW;
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
#endif

#endif
