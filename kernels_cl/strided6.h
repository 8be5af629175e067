// Element `flat` of a row-major array of up to 6 axes (d0..d5; d0 is implied by the
// element count) read from another array through per-axis strides: 0 along a
// broadcast axis, permuted for a transpose. Shared by the broadcasting element-wise
// kernels and the layout kernels (#included; each including file still builds alone
// with clconv's -I option). Macros rather than functions taking a private array, so
// the coordinates stay plain registers on every driver.
#ifndef CLCONV_STRIDED6_H
#define CLCONV_STRIDED6_H

// Declares the coordinates i0..i5 of element `flat` (prefix p: p##0 .. p##5).
#define UNRAVEL6(p, flat, d1, d2, d3, d4, d5) \
    int p##r_ = (flat); \
    const int p##5 = p##r_ % (d5); p##r_ /= (d5); \
    const int p##4 = p##r_ % (d4); p##r_ /= (d4); \
    const int p##3 = p##r_ % (d3); p##r_ /= (d3); \
    const int p##2 = p##r_ % (d2); p##r_ /= (d2); \
    const int p##1 = p##r_ % (d1); \
    const int p##0 = p##r_ / (d1)

// The offset of coordinates p##0 .. p##5 through strides (s0..s5).
#define OFFSET6(p, s0, s1, s2, s3, s4, s5) \
    (p##0 * (s0) + p##1 * (s1) + p##2 * (s2) + p##3 * (s3) + p##4 * (s4) + p##5 * (s5))

#endif
