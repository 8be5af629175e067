// Layout ops for imported models: strided copies (transpose, broadcast), padding,
// concatenation and gathering along an axis. Index arithmetic only; shapes and
// indices are worked out on the host. One work-item per output element.

#include "strided6.h"

// 0 constant, 1 reflect, 2 edge, 3 wrap
#ifndef PAD_MODE
#define PAD_MODE 0
#endif

// y[i0..i5] = x[i0*s0 + ... + i5*s5] over output dims (d0..d5), d0 implied.
// With permuted strides this is a transpose.
__kernel void strided_copy(const int n_items, __global const float *x, __global float *y,
                           const int d1, const int d2, const int d3, const int d4, const int d5,
                           const int s0, const int s1, const int s2, const int s3,
                           const int s4, const int s5)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    UNRAVEL6(i, gid, d1, d2, d3, d4, d5);
    y[gid] = x[OFFSET6(i, s0, s1, s2, s3, s4, s5)];
}

// Map output coordinate o to an input coordinate along an axis of size n with
// `begin` elements of padding before it; -1 means "padding value".
int pad_source(const int o, const int begin, const int n)
{
    int i = o - begin;
    if (i >= 0 && i < n) return i;
#if PAD_MODE == 1
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i = i % period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
#elif PAD_MODE == 2
    return clamp(i, 0, n - 1);
#elif PAD_MODE == 3
    i = i % n;
    return i < 0 ? i + n : i;
#else
    return -1;
#endif
}

// Pad (or crop, with negative pads) a tensor of up to 6 dims. Output dims d1..d5,
// input dims n0..n5, padding before each axis p0..p5.
__kernel void pad_nd(const int n_items, __global const float *x, __global float *y,
                     const int d1, const int d2, const int d3, const int d4, const int d5,
                     const int n0, const int n1, const int n2, const int n3, const int n4,
                     const int n5,
                     const int p0, const int p1, const int p2, const int p3, const int p4,
                     const int p5, const float value)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    UNRAVEL6(o, gid, d1, d2, d3, d4, d5);
    const int i0 = pad_source(o0, p0, n0), i1 = pad_source(o1, p1, n1);
    const int i2 = pad_source(o2, p2, n2), i3 = pad_source(o3, p3, n3);
    const int i4 = pad_source(o4, p4, n4), i5 = pad_source(o5, p5, n5);
    if (i0 < 0 || i1 < 0 || i2 < 0 || i3 < 0 || i4 < 0 || i5 < 0) {
        y[gid] = value;
        return;
    }
    y[gid] = x[((((i0 * n1 + i1) * n2 + i2) * n3 + i3) * n4 + i4) * n5 + i5];
}


// y[o, j, i] = x[o, idx[j], i] with x seen as (outer, D, inner), idx in [0, D).
__kernel void gather_axis(const int n_items, __global const float *x,
                          __global const int *idx, __global float *y,
                          const int n_idx, const int D, const int inner)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int i = gid % inner;
    const int j = (gid / inner) % n_idx;
    const int o = gid / (inner * n_idx);
    y[gid] = x[(o * D + idx[j]) * inner + i];
}
