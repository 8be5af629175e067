// The gradients of the element-wise activations, written in terms of the forward
// output, so layers need to keep only their output. The forward passes are the
// epilogue's activations (activation.h, run by elementwise.cl's activation_apply).

__kernel void relu_backward(const int n_items, __global const float *g,
                            __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    gx[i] = y[i] > 0.0f ? g[i] : 0.0f;
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

__kernel void sigmoid_backward(const int n_items, __global const float *g,
                               __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float s = y[i];
    gx[i] = g[i] * s * (1.0f - s);
}

__kernel void tanh_backward(const int n_items, __global const float *g,
                            __global const float *y, __global float *gx)
{
    const int i = get_global_id(0);
    if (i >= n_items) return;
    const float t = y[i];
    gx[i] = g[i] * (1.0f - t * t);
}
