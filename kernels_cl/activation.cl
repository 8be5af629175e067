// Element-wise activations and their gradients. The gradients are written in terms
// of the forward output, so layers need to keep only their output.

__kernel void relu_forward(const int n_items, __global const float *x, __global float *y)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float v = x[i];
    y[i] = v > 0.0f ? v : (isnan(v) ? v : 0.0f);
}

__kernel void relu_backward(const int n_items, __global const float *g,
                            __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    gx[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

__kernel void leaky_relu_forward(const int n_items, __global const float *x,
                                 __global float *y, const float negative_slope)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float v = x[i];
    y[i] = v > 0.0f ? v : v * negative_slope;
}

// Valid for negative_slope >= 0, where the output has the sign of the input.
__kernel void leaky_relu_backward(const int n_items, __global const float *g,
                                  __global const float *y, __global float *gx,
                                  const float negative_slope)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    gx[i] = y[i] > 0.0f ? g[i] : g[i] * negative_slope;
}

__kernel void sigmoid_forward(const int n_items, __global const float *x, __global float *y)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    // Evaluate exp of a non-positive number only: no overflow, and no Inf needed,
    // which VC4CL does not have.
    const float v = x[i];
    const float e = exp(-fabs(v));
    y[i] = v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

__kernel void sigmoid_backward(const int n_items, __global const float *g,
                               __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float s = y[i];
    gx[i] = g[i] * s * (1.0f - s);
}

__kernel void tanh_forward(const int n_items, __global const float *x, __global float *y)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    y[i] = tanh(x[i]);
}

__kernel void tanh_backward(const int n_items, __global const float *g,
                            __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float t = y[i];
    gx[i] = g[i] * (1.0f - t * t);
}
