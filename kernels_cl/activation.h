// The activation epilogue shared by the element-wise and matrix-product kernels
// (#included; each including file still builds alone with clconv's -I option).
// 0 none, 1 relu, 2 leaky_relu(alpha), 3 clip(alpha=min, beta=max), 4 sigmoid,
// 5 tanh, 6 hard_sigmoid(alpha, beta), 7 hard_swish
#ifndef CLCONV_ACTIVATION_H
#define CLCONV_ACTIVATION_H

#ifndef ACTIVATION
#define ACTIVATION 0
#endif

float activate(const float v, const float alpha, const float beta)
{
#if ACTIVATION == 1
    return v > 0.0f ? v : (isnan(v) ? v : 0.0f);
#elif ACTIVATION == 2
    return v >= 0.0f ? v : v * alpha;
#elif ACTIVATION == 3
    return fmin(fmax(v, alpha), beta);
#elif ACTIVATION == 4
    // exp of a non-positive number only: no overflow and no Inf, which VC4CL lacks
    const float e = exp(-fabs(v));
    return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
#elif ACTIVATION == 5
    return tanh(v);
#elif ACTIVATION == 6
    return fmin(fmax(alpha * v + beta, 0.0f), 1.0f);
#elif ACTIVATION == 7
    return v * fmin(fmax(v * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
#else
    return v;
#endif
}

#endif
