// Small reductions. One work-item per result, summed in a fixed order, so results
// are deterministic and need no atomics (VC4CL has no float atomics).

// out[c] = sum_{n, p} x[n, c, p] for x of shape (N, C, P): conv/linear bias gradients.
// Eight partial sums per plane, so the adds do not wait on one another.
__kernel void channel_sum(
    const int n_items,
    __global const float *x, __global float *out,
    const int N, const int C, const int P)
{
    const int c = get_global_id(0);
    if (c >= n_items) return;
    float8 acc8 = (float8)(0.0f);
    float acc = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *xp = x + (n * C + c) * P;
        int p = 0;
        for (; p + 8 <= P; p += 8) acc8 += vload8(0, xp + p);
        for (; p < P; ++p) acc += xp[p];
    }
    const float4 acc4 = acc8.lo + acc8.hi;
    out[c] = acc + ((acc4.x + acc4.y) + (acc4.z + acc4.w));
}

// out[0] = mean of x[0..count): one work-item.
__kernel void mean_all(
    const int n_items,
    __global const float *x, __global float *out, const int count)
{
    if (get_global_id(0) >= n_items) return;
    float acc = 0.0f;
    for (int i = 0; i < count; ++i) acc += x[i];
    out[0] = acc / (float)count;
}
