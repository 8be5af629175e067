// MAD(a, b, c) = a * b + c, as the host chose by USE_FMA: fma() is fused (one rounding)
// and fast where the hardware has FMA (CPUs); mad() lets the compiler pick the fastest
// form (VC4CL has no FMA).
#ifndef CLCONV_MAD_H
#define CLCONV_MAD_H

#ifndef USE_FMA
#define USE_FMA 0
#endif
#if USE_FMA
#define MAD(a, b, c) fma(a, b, c)
#else
#define MAD(a, b, c) mad(a, b, c)
#endif

#endif
