// Local response normalisation across channels (AlexNet, GoogLeNet), NCHW:
// y = x / (bias + scale * sum of x^2 over channels [c - LO, c + HI])^beta
// with scale = alpha / size, LO = (size - 1) / 2 and HI = size - 1 - LO (ONNX's
// window), each clamped to C - 1 by the host (a wider window adds nothing).
//
// One work-item per (spatial position, image), looping over the channels: every
// work-item of a group runs the same loop, so POCL vectorises across positions; a
// work-item per output (channel index from a division) kept it scalar.
// The power is where the time goes (pow() ran at about 150 ns per element on POCL's
// x86 library), so the host picks a form for beta (BETA_FORM):
//   1: beta = 0.75, the value of every published LRN net: rsqrt(b) * sqrt(rsqrt(b));
//   2: beta = 0.5: rsqrt(b);   3: beta = 1: 1 / b;   4: beta = 0: 1, as pow(b, 0) is;
//   0: any other beta: exp2(-beta * log2(b)), the same as 1 / pow(b, beta) for every
//      b (NaN for b < 0, inf for b = 0 when beta > 0), and 4x faster than pow.
#ifndef LO
#define LO 2            // channels before c in the window (ONNX's default size 5)
#endif
#ifndef HI
#define HI 2            // channels after c
#endif
#ifndef BETA_FORM
#define BETA_FORM 0
#endif

inline float inverse_power(const float b, const float beta)
{
#if BETA_FORM == 1
    const float r = rsqrt(b);
    return r * sqrt(r);
#elif BETA_FORM == 2
    return rsqrt(b);
#elif BETA_FORM == 3
    return 1.0f / b;
#elif BETA_FORM == 4
    return 1.0f;
#else
    return exp2(-beta * log2(b));
#endif
}

__kernel void lrn_forward(const int inner, __global const float *x, __global float *y,
                          const int C, const float scale, const float beta,
                          const float bias)
{
    const int i = get_global_id(0);
    if (i >= inner) return;
    const size_t image = (size_t)get_global_id(1) * C * inner + i;
    __global const float *xp = x + image;
    __global float *yp = y + image;
    for (int c = 0; c < C; ++c) {
        float sum = 0.0f;
        for (int k = -LO; k <= HI; ++k) {  // a fixed trip count: unrolled, no divergence
            const int ck = c + k;
            if (ck >= 0 && ck < C) {
                const float v = xp[ck * inner];
                sum += v * v;
            }
        }
        yp[c * inner] = xp[c * inner] * inverse_power(bias + scale * sum, beta);
    }
}
