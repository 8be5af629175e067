// Local response normalisation across channels (AlexNet, GoogLeNet), NCHW:
// y = x / (bias + alpha / size * sum of x^2 over channels [c - lo, c + hi])^beta
// with lo = (size - 1) / 2 and hi = size - 1 - lo. One work-item per output.
__kernel void lrn_forward(const int n_items, __global const float *x, __global float *y,
                          const int C, const int inner, const int size,
                          const float alpha, const float beta, const float bias)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int i = gid % inner;
    const int c = (gid / inner) % C;
    const int n = gid / (inner * C);
    const int lo = (size - 1) / 2;
    const int c0 = max(c - lo, 0), c1 = min(c + size - 1 - lo, C - 1);
    __global const float *xp = x + n * C * inner + i;
    float sum = 0.0f;
    for (int k = c0; k <= c1; ++k) {
        const float v = xp[k * inner];
        sum += v * v;
    }
    y[gid] = x[gid] / pow(bias + alpha / (float)size * sum, beta);
}
