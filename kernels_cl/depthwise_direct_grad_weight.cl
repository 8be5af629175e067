// Depthwise weight gradient loading straight from global memory, for CPU devices: the
// same compiled-in geometry and tap loads as depthwise_direct.cl (depthwise_direct.h),
// built as its own program so that each layer compiles only the kernel it runs.
#include "depthwise_direct.h"

#if (TW == 4 || TW == 8 || TW == 16) && (SW == 1 || SW == 2)
// The first n <= TW gradients of a row from `g` on, zero after them.
DVEC gradient_span(__global const float *g, const int n)
{
    if (n >= TW) return DVLOAD(0, g);
    float e[TW];
#pragma unroll
    for (int j = 0; j < TW; ++j) e[j] = j < n ? g[j] : 0.0f;
    return DVLOAD(0, e);
}

#if TW == 16
#define LANE_INDEX (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#elif TW == 8
#define LANE_INDEX (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define LANE_INDEX (int4)(0, 1, 2, 3)
#endif

// v with lanes below lo and from hi on zeroed (lo, hi constants: one blend).
DVEC keep_lanes(const DVEC v, const int lo, const int hi)
{
    return select((DVEC)(0.0f), v, LANE_INDEX >= lo && LANE_INDEX < hi);
}

// grad_w[k, ky, kx] = sum over n, oy, ox of dy[n, k, oy, ox] * x[n, k / mult, iy, ix]:
// one work-item per output channel k, its KH*KW sums as TW-lane vectors over the same
// tap loads as the forward, added up across lanes at the end. No partial sums, no
// second pass. The lanes of a span that are not its own outputs (those a row's last,
// overlapping span shares with the one before, and those past a row narrower than TW)
// are zeroed in both factors, so no product counts twice and no input that feeds no
// output (an inf, say) enters a sum.
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
                // its own lanes: from those the span before summed to the row's end
                const int lo = t - ox0, hi = min(TW, OUT_W - ox0);
                const DVEC gv = keep_lanes(gradient_span(g + oy * OUT_W + ox0, hi), lo, hi);
#pragma unroll
                for (int ky = 0; ky < KH; ++ky) {
                    __global const float *row = tap_row(src, oy, ky);
                    if (!row) continue;
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx)
                        acc[ky * KW + kx] = MAD(keep_lanes(tap(row, ox0, kx), lo, hi), gv,
                                                acc[ky * KW + kx]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < KH * KW; ++t) grad_w[k * (KH * KW) + t] = lane_sum(acc[t]);
}
#endif
