// The windows o along one axis (stride s, padding p, k taps d apart, n windows) that
// hold element i, o*s - p <= i <= o*s - p + (k-1)*d, are first_window .. last_window
// (none when first > last): the gathering pooling gradients visit them.
#ifndef CLCONV_POOL_WINDOW_H
#define CLCONV_POOL_WINDOW_H

// clamp(i, 0, n - 1) as two selects: POCL left clamp() a call, which stops vectorisation
__attribute__((always_inline)) int inside(const int i, const int n)
{
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

int first_window(const int i, const int p, const int k, const int d, const int s)
{
    const int t = i + p - (k - 1) * d;  // ceil(t / s) as (t - 1) / s + 1: no overflow
    return t <= 0 ? 0 : (t - 1) / s + 1;
}

int last_window(const int i, const int p, const int s, const int n)
{
    return min(n - 1, (i + p) / s);
}

#endif
