// Local response normalisation across channels (AlexNet, GoogLeNet), NCHW:
// y = x / (bias + scale * sum of x^2 over channels [c - LO, c + HI])^beta
// with scale = alpha / size, LO = (size - 1) / 2 and HI = size - 1 - LO (ONNX's
// window), each clamped to C - 1 by the host (a wider window adds nothing).
//
// A work-item takes RUN consecutive positions of one image (float8 vectors: explicit, so
// every device gets vector code) and walks down the channels, keeping the window's
// values in registers: each input is loaded once, and the sum of squares is formed
// afresh at every channel (no running sum, whose subtractions would lose precision).
// With a work-item per position and the window re-read at every channel, POCL
// computed the power one lane at a time: 6x slower (docs/performance.md, session 10).
// The power is where the time goes (pow() ran at about 150 ns per element on POCL's
// x86 library), so the host picks a form for beta (BETA_FORM):
//   1: beta = 0.75, the value of every published LRN net: 1 / (s * sqrt(s)) with
//      s = sqrt(b), correctly rounded square roots and a division;
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
#define RUN 8           // positions per work-item: the vector width
#define SPAN (LO + 1 + HI)
#define MAX_RING 7      // windows up to this many channels stay in registers (VC4C
                        // failed to compile a ring of 17 vectors)

inline float8 inverse_power(const float8 b, const float beta)
{
#if BETA_FORM == 1
    const float8 s = sqrt(b);
    return 1.0f / (s * sqrt(s));
#elif BETA_FORM == 2
    return rsqrt(b);
#elif BETA_FORM == 3
    return 1.0f / b;
#elif BETA_FORM == 4
    return (float8)(1.0f);
#else
    return exp2(-beta * log2(b));
#endif
}

// The n (1..RUN) positions from p as a vector, lanes past n 0; and stored back. Lane by
// lane without a private array: VC4C cannot compile a loop of stores (or loads) into
// one (a copy of a run-time count).
inline float8 load_run(__global const float *p, const int n)
{
    if (n == RUN) return vload8(0, p);
    const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
    const int m = n - 1;  // lanes past n read the last position, then are zeroed
    const float8 v = (float8)(p[0], p[min(1, m)], p[min(2, m)], p[min(3, m)],
                              p[min(4, m)], p[min(5, m)], p[min(6, m)], p[min(7, m)]);
    return select((float8)(0.0f), v, lane < (int8)(n));
}

inline void store_run(const float8 v, __global float *p, const int n)
{
    if (n == RUN) {
        vstore8(v, 0, p);
        return;
    }
    p[0] = v.s0;
    if (n > 1) p[1] = v.s1;
    if (n > 2) p[2] = v.s2;
    if (n > 3) p[3] = v.s3;
    if (n > 4) p[4] = v.s4;
    if (n > 5) p[5] = v.s5;
    if (n > 6) p[6] = v.s6;
}

__kernel void lrn_forward(const int inner, __global const float *x, __global float *y,
                          const int C, const float scale, const float beta,
                          const float bias)
{
    const int i = get_global_id(0) * RUN;
    if (i >= inner) return;
    const int n = min(RUN, inner - i);
    const size_t image = (size_t)get_global_id(1) * C * inner + i;
    __global const float *xp = x + image;
    __global float *yp = y + image;
#if SPAN <= MAX_RING
    float8 v[SPAN];  // channels c - LO .. c + HI (0 outside 0 .. C-1)
    #pragma unroll
    for (int j = 0; j < SPAN; ++j)
        v[j] = j >= LO && j - LO < C ? load_run(xp + (j - LO) * inner, n) : (float8)(0.0f);
    for (int c = 0; c < C; ++c) {
        float8 sum = v[0] * v[0];
        #pragma unroll
        for (int j = 1; j < SPAN; ++j) sum += v[j] * v[j];
        store_run(v[LO] * inverse_power(bias + scale * sum, beta), yp + c * inner, n);
        #pragma unroll
        for (int j = 0; j + 1 < SPAN; ++j) v[j] = v[j + 1];
        v[SPAN - 1] = c + 1 + HI < C ? load_run(xp + (c + 1 + HI) * inner, n) : (float8)(0.0f);
    }
#else
    for (int c = 0; c < C; ++c) {  // a wide window: read again at every channel
        float8 sum = (float8)(0.0f);
        for (int ck = max(c - LO, 0); ck <= min(c + HI, C - 1); ++ck) {
            const float8 t = load_run(xp + ck * inner, n);
            sum += t * t;
        }
        const float8 xc = load_run(xp + c * inner, n);
        store_run(xc * inverse_power(bias + scale * sum, beta), yp + c * inner, n);
    }
#endif
}
