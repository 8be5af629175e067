// TW-wide float vectors (TW = 4, 8 or 16, compiled in) and storing them at a row's end,
// shared by the depthwise kernels. store_span applies the activation (activation.h).
#ifndef CLCONV_VECTOR_SPAN_H
#define CLCONV_VECTOR_SPAN_H

#ifndef TW
#define TW 8            // outputs along a row per work-item
#endif
#include "activation.h"

#define DW_CAT_(a, b) a##b
#define DW_CAT(a, b) DW_CAT_(a, b)
#define DVEC DW_CAT(float, TW)
#define DVLOAD DW_CAT(vload, TW)
#define DVSTORE DW_CAT(vstore, TW)

#if TW == 4 || TW == 8 || TW == 16
// TW outputs to dst, the activation applied (after adding what dst holds, with
// ACCUMULATE); only the first n where the row ends sooner.
void store_span(DVEC v, __global float *dst, const int n, const float act_alpha,
                const float act_beta)
{
#if ACCUMULATE
    if (n >= TW) {
        v += DVLOAD(0, dst);
    } else {
        float r[TW];
#pragma unroll
        for (int i = 0; i < TW; ++i) r[i] = i < n ? dst[i] : 0.0f;  // unrolled, guarded
        v += DVLOAD(0, r);
    }
#endif
    v = ACTIVATE_WIDTH(TW)(v, act_alpha, act_beta);
    if (n >= TW) {
        DVSTORE(v, 0, dst);
        return;
    }
    // a row's last, partial span: the widest vector stores that fit, then single floats
    float s[TW];
    DVSTORE(v, 0, s);
    int j = 0;
#if TW == 16
    if (n >= 8) {
        vstore8(vload8(0, s), 0, dst);
        j = 8;
    }
#endif
#if TW >= 8
    if (n - j >= 4) {
        vstore4(vload4(0, s + j), 0, dst + j);
        j += 4;
    }
#endif
    // at most 3 floats left: unrolled, each guarded (a loop of unknown length here
    // becomes a memcpy, which VC4C cannot compile)
#pragma unroll
    for (int i = 0; i < 3; ++i)
        if (j + i < n) dst[j + i] = s[j + i];
}

#if ACCUMULATE
// v's lanes from `first` on to dst, each added to what dst holds and activated; the
// lanes before were stored already (a row's last span, overlapping the one before it).
void store_lanes_from(DVEC v, __global float *dst, const int first, const float act_alpha,
                      const float act_beta)
{
    float s[TW];
    DVSTORE(v, 0, s);
#pragma unroll
    for (int j = 0; j < TW; ++j)  // unrolled, guarded: no memcpy (VC4C)
        if (j >= first) dst[j] = activate(s[j] + dst[j], act_alpha, act_beta);
}
#endif

// The sum of v's lanes, added in lane order.
float lane_sum(const DVEC v)
{
    float lanes[TW];
    DVSTORE(v, 0, lanes);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < TW; ++j) s += lanes[j];
    return s;
}
#endif

#endif
