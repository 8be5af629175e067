// Element-wise ops for imported models: activations, binary arithmetic with
// broadcasting, and a per-channel affine map (inference-time batch norm).
// One work-item per output; no local memory, so any work-group size works.
// Every kernel ends with an optional activation chosen at build time, so a
// residual Add + ReLU or a batch norm + ReLU is one pass over memory.
// y may alias x (in-place): each work-item reads and writes only its own element.

#include "activation.h"
#include "strided6.h"

// 0 add, 1 sub, 2 mul, 3 div
#ifndef BINARY_OP
#define BINARY_OP 0
#endif

float combine(const float a, const float b)
{
#if BINARY_OP == 1
    return a - b;
#elif BINARY_OP == 2
    return a * b;
#elif BINARY_OP == 3
    return a / b;
#else
    return a + b;
#endif
}

__kernel void activation_apply(const int n_items, __global const float *x, __global float *y,
                               const float alpha, const float beta)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    y[i] = activate(x[i], alpha, beta);
}

// a and b have the output's shape.
__kernel void binary_same_shape(const int n_items, __global const float *a,
                                __global const float *b, __global float *y,
                                const float alpha, const float beta)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    y[i] = activate(combine(a[i], b[i]), alpha, beta);
}

// Broadcasting over up to 6 axes: the output has dims (d0..d5) (d0 implied by
// n_items); a and b are read with per-axis strides, 0 along broadcast axes.
__kernel void binary_broadcast(const int n_items, __global const float *a,
                               __global const float *b, __global float *y,
                               const float alpha, const float beta,
                               const int d1, const int d2, const int d3, const int d4,
                               const int d5,
                               const int a0, const int a1, const int a2, const int a3,
                               const int a4, const int a5,
                               const int b0, const int b1, const int b2, const int b3,
                               const int b4, const int b5)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    UNRAVEL6(i, gid, d1, d2, d3, d4, d5);
    y[gid] = activate(combine(a[OFFSET6(i, a0, a1, a2, a3, a4, a5)],
                              b[OFFSET6(i, b0, b1, b2, b3, b4, b5)]), alpha, beta);
}

// y[n, c, i] = x[n, c, i] * scale[c] + shift[c], over (N, C, inner), on a 3-D grid
// (i, c, n): no work-item divides to find its channel (c = i / inner % C ran 4x slower
// on POCL; division is slower still on VC4CL).
__kernel void channel_affine(__global const float *x, __global const float *scale,
                             __global const float *shift, __global float *y,
                             const int N, const int C, const int inner,
                             const float alpha, const float beta)
{
    const int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (i >= inner || c >= C || n >= N) return;
    const int at = (n * C + c) * inner + i;
    y[at] = activate(x[at] * scale[c] + shift[c], alpha, beta);
}
