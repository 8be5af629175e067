// Matrix products for imported models (Gemm, MatMul). One work-item per output.

#include "activation.h"

// y[m, n] = act(scale_ab * sum_k a[m*a_m + k*a_k] * b[k*b_k + n*b_n] + scale_c * c[m*c_m + n*c_n])
// Strides let the host express transA/transB and a broadcast C without copies.
__kernel void gemm(const int n_items, __global const float *a, __global const float *b,
                   __global const float *c, const int has_c, __global float *y,
                   const int N, const int K, const int a_m, const int a_k,
                   const int b_k, const int b_n, const int c_m, const int c_n,
                   const float scale_ab, const float scale_c,
                   const float act_alpha, const float act_beta)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int n = gid % N;
    const int m = gid / N;
    __global const float *ap = a + m * a_m;
    __global const float *bp = b + n * b_n;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += ap[k * a_k] * bp[k * b_k];
    acc *= scale_ab;
    if (has_c) acc += scale_c * c[m * c_m + n * c_n];
    y[gid] = activate(acc, act_alpha, act_beta);
}

// Batched y[p, m, n] = sum_k a[a_off[p] + m*K + k] * b[b_off[p] + k*N + n]; the
// per-batch offsets (computed on the host) express numpy's batch broadcasting.
__kernel void batched_matmul(const int n_items, __global const float *a,
                             __global const float *b, __global const int *a_off,
                             __global const int *b_off, __global float *y,
                             const int M, const int N, const int K)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int n = gid % N;
    const int m = (gid / N) % M;
    const int p = gid / (N * M);
    __global const float *ap = a + a_off[p] + m * K;
    __global const float *bp = b + b_off[p] + n;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += ap[k] * bp[k * N];
    y[gid] = acc;
}
