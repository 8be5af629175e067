// Average pooling with asymmetric padding and dilation (ONNX AveragePool), NCHW.
// One work-item per output; any work-group size works.
// The window of output (oy, ox) covers rows oy*sh - pt + ky*dh, ky < kh. With
// count_include_pad the divisor counts window positions inside the padded input
// [-pt, H + pb); otherwise only those inside the input.
__kernel void avg_pool2d_padded(const int n_items, __global const float *x, __global float *y,
                                const int H, const int W, const int Ho, const int Wo,
                                const int kh, const int kw, const int sh, const int sw,
                                const int pt, const int pl, const int pb, const int pr,
                                const int dh, const int dw, const int count_include_pad)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ox = gid % Wo;
    const int oy = (gid / Wo) % Ho;
    const int plane = gid / (Wo * Ho);
    __global const float *xp = x + plane * H * W;
    float acc = 0.0f;
    int inside = 0, padded = 0;
    for (int ky = 0; ky < kh; ++ky) {
        const int iy = oy * sh - pt + ky * dh;
        if (iy >= H + pb) break;
        const int row_in = iy >= 0 && iy < H;
        for (int kx = 0; kx < kw; ++kx) {
            const int ix = ox * sw - pl + kx * dw;
            if (ix >= W + pr) break;
            ++padded;
            if (row_in && ix >= 0 && ix < W) {
                acc += xp[iy * W + ix];
                ++inside;
            }
        }
    }
    const int divisor = count_include_pad ? padded : inside;
    y[gid] = divisor > 0 ? acc / (float)divisor : 0.0f;
}
