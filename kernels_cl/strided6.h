// Element `flat` of a row-major array of up to 6 axes (d0..d5; d0 is implied by the
// element count) read from another array through per-axis strides: 0 along a
// broadcast axis, permuted for a transpose. Shared by the broadcasting element-wise
// kernels and the layout kernels (#included; each including file still builds alone
// with clconv's -I option).
#ifndef CLCONV_STRIDED6_H
#define CLCONV_STRIDED6_H

// (i0..i5) of element `flat`.
void unravel6(int flat, const int d1, const int d2, const int d3, const int d4,
              const int d5, int *i)
{
    i[5] = flat % d5; flat /= d5;
    i[4] = flat % d4; flat /= d4;
    i[3] = flat % d3; flat /= d3;
    i[2] = flat % d2; flat /= d2;
    i[1] = flat % d1;
    i[0] = flat / d1;
}

// The offset of coordinates i through strides (s0..s5).
int offset6(const int *i, const int s0, const int s1, const int s2, const int s3,
            const int s4, const int s5)
{
    return i[0] * s0 + i[1] * s1 + i[2] * s2 + i[3] * s3 + i[4] * s4 + i[5] * s5;
}

#endif
