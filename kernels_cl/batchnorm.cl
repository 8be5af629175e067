// Batch normalisation over (N, H, W) for each channel of an NCHW tensor.
// Statistics are one work-item per channel, summed in a fixed order: deterministic,
// no atomics. The element-wise passes are one work-item per element.

// mean[c] and invstd[c] = 1/sqrt(var[c] + eps) of x (biased variance, as torch uses to
// normalise); var_unbiased[c] feeds the running estimate. Two passes for accuracy.
__kernel void batch_norm_stats(
    const int n_items,
    __global const float *x, __global float *mean, __global float *invstd,
    __global float *var_unbiased,
    const int N, const int C, const int HW, const float eps)
{
    const int c = get_global_id(0);
    if (c >= n_items) return;
    const int count = N * HW;
    float sum = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *xp = x + (n * C + c) * HW;
        for (int i = 0; i < HW; ++i) sum += xp[i];
    }
    const float m = sum / (float)count;
    float sq = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *xp = x + (n * C + c) * HW;
        for (int i = 0; i < HW; ++i) { const float d = xp[i] - m; sq += d * d; }
    }
    mean[c] = m;
    invstd[c] = rsqrt(sq / (float)count + eps);
    var_unbiased[c] = count > 1 ? sq / (float)(count - 1) : sq;
}

// running = (1 - momentum) * running + momentum * batch, for mean and variance.
__kernel void batch_norm_update_running(
    const int n_items,
    __global float *running_mean, __global float *running_var,
    __global const float *mean, __global const float *var_unbiased, const float momentum)
{
    const int c = get_global_id(0);
    if (c >= n_items) return;
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean[c];
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * var_unbiased[c];
}

// y = (x - mean[c]) * invstd[c] * weight[c] + bias[c]; a missing weight is 1, bias 0.
__kernel void batch_norm_apply(
    const int n_items,
    __global const float *x, __global float *y,
    __global const float *mean, __global const float *invstd,
    __global const float *weight, const int has_weight,
    __global const float *bias, const int has_bias,
    const int C, const int HW)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const int c = (i / HW) % C;
    float v = (x[i] - mean[c]) * invstd[c];
    if (has_weight) v *= weight[c];
    if (has_bias) v += bias[c];
    y[i] = v;
}

// invstd[c] = 1/sqrt(var[c] + eps): evaluation mode normalises by the running variance.
__kernel void batch_norm_invstd(
    const int n_items,
    __global const float *var, __global float *invstd, const float eps)
{
    const int c = get_global_id(0);
    if (c >= n_items) return;
    invstd[c] = rsqrt(var[c] + eps);
}

// Per channel: sum_g[c] = sum(g), sum_gx[c] = sum(g * xhat) with xhat = (x - mean) * invstd.
__kernel void batch_norm_backward_reduce(
    const int n_items,
    __global const float *g, __global const float *x,
    __global const float *mean, __global const float *invstd,
    __global float *sum_g, __global float *sum_gx,
    const int N, const int C, const int HW)
{
    const int c = get_global_id(0);
    if (c >= n_items) return;
    const float m = mean[c], s = invstd[c];
    float a = 0.0f, b = 0.0f;
    for (int n = 0; n < N; ++n) {
        const int base = (n * C + c) * HW;
        for (int i = 0; i < HW; ++i) {
            a += g[base + i];
            b += g[base + i] * (x[base + i] - m) * s;
        }
    }
    sum_g[c] = a;
    sum_gx[c] = b;
}

// Training-mode input gradient:
// gx = weight * invstd * (g - sum_g / M - xhat * sum_gx / M), M = N*H*W.
__kernel void batch_norm_backward_input(
    const int n_items,
    __global const float *g, __global const float *x,
    __global const float *mean, __global const float *invstd,
    __global const float *weight, const int has_weight,
    __global const float *sum_g, __global const float *sum_gx,
    __global float *gx, const int C, const int HW, const float inv_count)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const int c = (i / HW) % C;
    const float s = invstd[c];
    const float xhat = (x[i] - mean[c]) * s;
    const float w = has_weight ? weight[c] : 1.0f;
    gx[i] = w * s * (g[i] - sum_g[c] * inv_count - xhat * sum_gx[c] * inv_count);
}
