// The activation every epilogue applies: the element-wise kernels and every convolution
// variant (#included; each including file still builds alone with clconv's -I option).
// ACTIVATION, compiled in (ids as in clconv/epilogue.py): 0 none, 1 relu,
// 2 leaky_relu(alpha), 3 clip(alpha=min, beta=max), 4 sigmoid, 5 tanh,
// 6 hard_sigmoid(alpha, beta), 7 hard_swish. alpha and beta are kernel arguments.
//
// NaN and +-inf give what torch gives: each comparison with NaN is false, so the
// select()s below keep a NaN (fmin/fmax would turn it into a number), and the products
// keep IEEE rules: leaky_relu(-inf) with slope 0 and hard_swish(-inf) are NaN (-inf * 0).
// select() rather than branches: one form for scalars and vectors, no divergence.
//   activate(v, alpha, beta)                 float
//   activate2/4/8/16(v, alpha, beta)         floatN, lane by lane
//   ACTIVATE_WIDTH(N)                        activateN (N a macro: TN, TW)
#ifndef CLCONV_ACTIVATION_H
#define CLCONV_ACTIVATION_H

#ifndef ACTIVATION
#define ACTIVATION 0
#endif
// ACCUMULATE=1 (convolution epilogues): the output already holds a tensor of its shape,
// a residual, which is added to each result before the activation, in the same pass
// (ResNet's conv + add + relu). Each epilogue reads it just before it stores.
#ifndef ACCUMULATE
#define ACCUMULATE 0
#endif

// x clipped to [lo, hi] (hi where lo > hi, as torch.clamp); NaN stays NaN. fmin/fmax
// are single instructions on the VideoCore IV (fewer registers than two compares and
// selects) but return the number for NaN: the select puts the NaN back.
#define CLCONV_CLIP(T, x, lo, hi) select(fmin(fmax(x, (T)(lo)), (T)(hi)), x, isnan(x))

#if ACTIVATION == 1
#define CLCONV_ACTIVATE_BODY(T) return select(v, (T)(0.0f), v < (T)(0.0f));
#elif ACTIVATION == 2
#define CLCONV_ACTIVATE_BODY(T) return select(v, v * alpha, v < (T)(0.0f));
#elif ACTIVATION == 3
#define CLCONV_ACTIVATE_BODY(T) return CLCONV_CLIP(T, v, alpha, beta);
#elif ACTIVATION == 4
// exp of a non-positive number only: no overflow and no Inf, which VC4CL lacks
#define CLCONV_ACTIVATE_BODY(T) \
    const T e = exp(-fabs(v)); \
    return select(e / (1.0f + e), 1.0f / (1.0f + e), v >= (T)(0.0f));
#elif ACTIVATION == 5
#define CLCONV_ACTIVATE_BODY(T) return tanh(v);
#elif ACTIVATION == 6
#define CLCONV_ACTIVATE_BODY(T) \
    const T h = alpha * v + beta; \
    return CLCONV_CLIP(T, h, 0.0f, 1.0f);
#elif ACTIVATION == 7
#define CLCONV_ACTIVATE_BODY(T) \
    const T h = v * (1.0f / 6.0f) + 0.5f; \
    return v * CLCONV_CLIP(T, h, 0.0f, 1.0f);
#else
#define CLCONV_ACTIVATE_BODY(T) return v;
#endif

#define CLCONV_DEFINE_ACTIVATE(NAME, T) \
    T NAME(const T v, const float alpha, const float beta) { CLCONV_ACTIVATE_BODY(T) }

CLCONV_DEFINE_ACTIVATE(activate, float)
CLCONV_DEFINE_ACTIVATE(activate2, float2)
CLCONV_DEFINE_ACTIVATE(activate4, float4)
CLCONV_DEFINE_ACTIVATE(activate8, float8)
CLCONV_DEFINE_ACTIVATE(activate16, float16)

#define CLCONV_ACTIVATE_CAT_(n) activate##n
#define ACTIVATE_WIDTH(n) CLCONV_ACTIVATE_CAT_(n)

#endif
