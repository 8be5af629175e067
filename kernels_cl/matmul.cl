// Strided matrix product, enough for linear and its gradients:
// c[m, n] = sum_k a[m*a_m + k*a_k] * b[k*b_k + n*b_n] (+ bias[n]).
// Strides let the host pass transposed views without copying.
__kernel void matmul_strided(
    const int n_items,
    __global const float *a, __global const float *b,
    __global const float *bias, const int has_bias,
    __global float *c,
    const int N, const int K,
    const int a_m, const int a_k, const int b_k, const int b_n)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int n = gid % N;
    const int m = gid / N;
    float acc = has_bias ? bias[n] : 0.0f;
    for (int k = 0; k < K; ++k) acc += a[m * a_m + k * a_k] * b[k * b_k + n * b_n];
    c[gid] = acc;
}
