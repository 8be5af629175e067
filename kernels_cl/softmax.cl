// Softmax family over one axis of a tensor viewed as (outer, D, inner); one
// work-item per (outer, inner) line of D elements, max-subtracted for stability.

__kernel void softmax_forward(const int n_items, __global const float *x, __global float *y,
                              const int D, const int inner, const int log_output)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int base = (gid / inner) * D * inner + gid % inner;
    float m = x[base];
    for (int d = 1; d < D; ++d) m = fmax(m, x[base + d * inner]);
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s += exp(x[base + d * inner] - m);
    if (log_output) {
        const float log_s = log(s);
        for (int d = 0; d < D; ++d) y[base + d * inner] = x[base + d * inner] - m - log_s;
    } else {
        const float inv = 1.0f / s;
        for (int d = 0; d < D; ++d) y[base + d * inner] = exp(x[base + d * inner] - m) * inv;
    }
}

// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)
__kernel void softmax_backward(const int n_items, __global const float *g,
                               __global const float *y, __global float *gx,
                               const int D, const int inner, const int log_output)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int base = (gid / inner) * D * inner + gid % inner;
    float s = 0.0f;
    for (int d = 0; d < D; ++d) {
        const int i = base + d * inner;
        s += log_output ? g[i] : g[i] * y[i];
    }
    for (int d = 0; d < D; ++d) {
        const int i = base + d * inner;
        gx[i] = log_output ? g[i] - exp(y[i]) * s : y[i] * (g[i] - s);
    }
}

// Per-sample loss of cross entropy with class-index targets:
// loss[n] = logsumexp(x[n, :]) - x[n, target[n]].
__kernel void cross_entropy_losses(const int n_items, __global const float *x,
                                   __global const int *target, __global float *loss,
                                   const int C)
{
    const int n = get_global_id(0);
    if (n >= n_items) return;
    __global const float *row = x + n * C;
    float m = row[0];
    for (int c = 1; c < C; ++c) m = fmax(m, row[c]);
    float s = 0.0f;
    for (int c = 0; c < C; ++c) s += exp(row[c] - m);
    loss[n] = m + log(s) - row[target[n]];
}

// Gradient of the mean cross entropy: (softmax(x[n]) - onehot(target[n])) * scale,
// scale = grad_output / N.
__kernel void cross_entropy_backward(const int n_items, __global const float *x,
                                     __global const int *target, __global float *gx,
                                     const int C, const float scale)
{
    const int n = get_global_id(0);
    if (n >= n_items) return;
    __global const float *row = x + n * C;
    __global float *grow = gx + n * C;
    float m = row[0];
    for (int c = 1; c < C; ++c) m = fmax(m, row[c]);
    float s = 0.0f;
    for (int c = 0; c < C; ++c) s += exp(row[c] - m);
    const float inv = 1.0f / s;
    const int t = target[n];
    for (int c = 0; c < C; ++c)
        grow[c] = (exp(row[c] - m) * inv - (c == t ? 1.0f : 0.0f)) * scale;
}
