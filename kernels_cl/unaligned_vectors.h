// Float vectors loaded and stored at any float's address in one access each, for CPU
// kernels. POCL 3.1 splits vloadN and vstoreN into pieces: a vload16 from a private
// array into four 4-float loads and three inserts, a vstore16 to global memory into
// stores of 4, 4 and 8 floats (read from the disassembly, AVX-512). A vector type whose
// alignment is one float's is loaded and stored whole (one vmovups).
#ifndef CLCONV_UNALIGNED_VECTORS_H
#define CLCONV_UNALIGNED_VECTORS_H

typedef float2 float2_u __attribute__((aligned(4)));
typedef float4 float4_u __attribute__((aligned(4)));
typedef float8 float8_u __attribute__((aligned(4)));
typedef float16 float16_u __attribute__((aligned(4)));

#define UV_CAT_(a, b) a##b
#define UV_CAT(a, b) UV_CAT_(a, b)
#define UV_TYPE(n) UV_CAT(UV_CAT(float, n), _u)
// The n floats at p (n = 2, 4, 8 or 16; p a private or a global float pointer), and
// storing v there.
#define PRIVATE_LOAD(n, p) (*(const __private UV_TYPE(n) *)(p))
#define PRIVATE_STORE(n, v, p) (*(__private UV_TYPE(n) *)(p) = (v))
#define GLOBAL_LOAD(n, p) (*(const __global UV_TYPE(n) *)(p))
#define GLOBAL_STORE(n, v, p) (*(__global UV_TYPE(n) *)(p) = (v))

#endif
