// Training helpers: dropout, gradient accumulation and optimizer steps.
// All element-wise, one work-item per element.

// A 32-bit integer hash (lowbias32 by Chris Wellons): counter-based random numbers, so
// dropout needs no RNG state on the device and is reproducible from (seed, index).
uint hash32(uint x)
{
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

// Zero each element with probability p, scale the rest by 1/(1-p); mask keeps the
// factor applied (0 or 1/(1-p)) for the backward pass.
__kernel void dropout_forward(
    const int n_items,
    __global const float *x, __global float *y, __global float *mask,
    const uint seed, const float p)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const uint r = hash32((uint)i ^ hash32(seed));
    // Top 24 bits as a uniform number in [0, 1): exact in float32.
    const float u = (float)(r >> 8) * (1.0f / 16777216.0f);
    const float m = u < p ? 0.0f : 1.0f / (1.0f - p);
    mask[i] = m;
    y[i] = x[i] * m;
}

// c = a * b, element-wise (dropout's backward: grad * mask).
__kernel void multiply(const int n_items, __global const float *a, __global const float *b,
                       __global float *c)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    c[i] = a[i] * b[i];
}

// acc += x: gradients of a parameter used more than once add up, as in torch.
__kernel void accumulate(const int n_items, __global float *acc, __global const float *x)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    acc[i] += x[i];
}

// torch.optim.SGD: d = g + wd*p; buf = first ? d : momentum*buf + (1-dampening)*d;
// d = nesterov ? d + momentum*buf : buf (when momentum != 0); p -= lr*d.
__kernel void sgd_step(
    const int n_items,
    __global float *param, __global const float *grad, __global float *buf,
    const float lr, const float momentum, const float dampening, const float weight_decay,
    const int nesterov, const int first_step)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    float d = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
        const float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
    }
    param[i] -= lr * d;
}

// torch.optim.Adam (L2 weight decay, not AdamW), in torch's own order of operations:
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - beta^step.
__kernel void adam_step(
    const int n_items,
    __global float *param, __global const float *grad, __global float *m, __global float *v,
    const float lr, const float beta1, const float beta2, const float eps,
    const float weight_decay, const float bias_correction1, const float sqrt_bias_correction2)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float g = grad[i] + weight_decay * param[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= (lr / bias_correction1) * mi / (sqrt(vi) / sqrt_bias_correction2 + eps);
}
