// 2-D pooling, NCHW float32, each (n, c) plane pooled independently.
// One work-item per output (or per input element for the gathering backward
// kernels); no local memory, any work-group size works.

// Max pooling. Padding never wins (as -inf); ties keep the first maximum in row-major
// window order; a NaN wins (the last one), as in torch. idx holds the flat index iy*W + ix of the
// maximum in its plane (int32: OpenCL 1.2 on the Pi has no 64-bit integers).
// Launched on a 3-D grid (ox, oy, plane): no integer division to find the output,
// which matters on CPUs and more on VC4CL, where division is emulated.
__kernel void max_pool2d_forward(
    __global const float *x, __global float *out, __global int *idx, const int write_idx,
    const int planes, const int H, const int W, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw)
{
    const int ox = get_global_id(0), oy = get_global_id(1), plane = get_global_id(2);
    if (ox >= Wo || oy >= Ho || plane >= planes) return;
    __global const float *xp = x + plane * H * W;
    // The taps that fall inside the input, so the loops need no bounds tests.
    const int ty = ph - oy * sh, tx = pw - ox * sw;
    const int ky0 = ty > 0 ? (ty + dh - 1) / dh : 0;
    const int kx0 = tx > 0 ? (tx + dw - 1) / dw : 0;
    const int ky1 = min(kh, (H - 1 + ty) / dh + 1), kx1 = min(kw, (W - 1 + tx) / dw + 1);
    float best = -INFINITY;
    int best_i = -1;
    if (ky0 < ky1 && kx0 < kx1) {
        best_i = (ky0 * dh - ty) * W + kx0 * dw - tx;
        best = xp[best_i];
    }
    int nan_i = -1;  // a NaN wins, the last one, as in torch; tracked apart so the
                     // comparison stays a single select the compiler can vectorise
    for (int ky = ky0; ky < ky1; ++ky) {
        const int row = (ky * dh - ty) * W - tx;
        for (int kx = kx0; kx < kx1; ++kx) {
            const int i = row + kx * dw;
            const float v = xp[i];
            if (v > best) {
                best = v;
                best_i = i;
            }
            nan_i = v != v ? i : nan_i;
        }
    }
    if (nan_i >= 0) {
        best = xp[nan_i];
        best_i = nan_i;
    }
    const int o = (plane * Ho + oy) * Wo + ox;
    out[o] = best;
    if (write_idx) idx[o] = best_i;
}

// grad_in[plane, idx[plane, o]] += gout[plane, o]. One work-item per plane walks its
// outputs in order, so overlapping windows need no atomics. Indices outside the plane
// are skipped rather than written.
__kernel void max_pool2d_backward(
    const int n_items,
    __global const float *gout, __global const int *idx, __global float *grad_in,
    const int HW, const int HoWo)
{
    const int plane = get_global_id(0);
    if (plane >= n_items) return;
    __global float *gp = grad_in + plane * HW;
    for (int i = 0; i < HW; ++i) gp[i] = 0.0f;
    __global const float *g = gout + plane * HoWo;
    __global const int *ip = idx + plane * HoWo;
    for (int o = 0; o < HoWo; ++o) {
        const int i = ip[o];
        if (i >= 0 && i < HW) gp[i] += g[o];
    }
}

#include "pool_window.h"  // first_window, last_window

// The same gradient when the windows are known: a 3-D grid (ix, iy, plane), each input
// element summing grad_out over the windows that contain it and chose it. Windows are
// visited in output order, as max_pool2d_backward adds them, so both agree exactly.
__kernel void max_pool2d_backward_windows(
    __global const float *gout, __global const int *idx, __global float *grad_in,
    const int planes, const int H, const int W, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw)
{
    const int ix = get_global_id(0), iy = get_global_id(1), plane = get_global_id(2);
    if (ix >= W || iy >= H || plane >= planes) return;
    const int i = iy * W + ix;
    __global const float *g = gout + plane * Ho * Wo;
    __global const int *ip = idx + plane * Ho * Wo;
    const int oy_lo = first_window(iy, ph, kh, dh, sh);
    const int oy_hi = last_window(iy, ph, sh, Ho);
    const int ox_lo = first_window(ix, pw, kw, dw, sw);
    const int ox_hi = last_window(ix, pw, sw, Wo);
    float acc = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
        for (int ox = ox_lo; ox <= ox_hi; ++ox) {
            const int o = oy * Wo + ox;
            acc += ip[o] == i ? g[o] : 0.0f;
        }
    grad_in[plane * H * W + i] = acc;
}

// Taps k < taps of an axis, d apart from t before element 0 (t = pad - o*s), whose element
// k*d - t lies before `limit`: min(taps, ceil((limit + t) / d)), 0 when none does.
int taps_before(const int limit, const int t, const int d, const int taps)
{
    const int span = limit + t;
    return span <= 0 ? 0 : min(taps, (span - 1) / d + 1);
}

// First tap of an axis inside the input: ceil(t / d), 0 when t <= 0.
int first_tap(const int t, const int d)
{
    return t > 0 ? (t + d - 1) / d : 0;
}

// What average pooling divides the window with (ty, tx) = (pt - oy*sh, pl - ox*sw) by.
int avg_pool_divisor(const int ty, const int tx, const int H, const int W,
                     const int kh, const int kw, const int pb, const int pr,
                     const int dh, const int dw, const int count_include_pad,
                     const int divisor_override)
{
    if (divisor_override > 0) return divisor_override;
    if (count_include_pad)
        return taps_before(H + pb, ty, dh, kh) * taps_before(W + pr, tx, dw, kw);
    return max(taps_before(H, ty, dh, kh) - first_tap(ty, dh), 0)
         * max(taps_before(W, tx, dw, kw) - first_tap(tx, dw), 0);
}

// Average pooling (torch's avg_pool2d and ONNX's AveragePool): window (oy, ox) starts at
// (oy*sh - pt, ox*sw - pl), taps (dh, dw) apart; the padded input spans [-pt, H + pb) x
// [-pl, W + pr) (pads may differ at both ends, as ONNX's). Divisor: divisor_override
// when > 0; else the taps inside the padded input (count_include_pad) or inside the
// input. 3-D grid (ox, oy, plane), as max_pool2d_forward.
__kernel void avg_pool2d_forward(
    __global const float *x, __global float *out,
    const int planes, const int H, const int W, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int pt, const int pl, const int pb, const int pr, const int dh, const int dw,
    const int count_include_pad, const int divisor_override)
{
    const int ox = get_global_id(0), oy = get_global_id(1), plane = get_global_id(2);
    if (ox >= Wo || oy >= Ho || plane >= planes) return;
    __global const float *xp = x + plane * H * W;
    // the taps inside the input, so the loops need no bounds tests
    const int ty = pt - oy * sh, tx = pl - ox * sw;
    const int ky0 = first_tap(ty, dh), kx0 = first_tap(tx, dw);
    const int ky1 = taps_before(H, ty, dh, kh), kx1 = taps_before(W, tx, dw, kw);
    float acc = 0.0f;
    for (int ky = ky0; ky < ky1; ++ky) {
        const int row = (ky * dh - ty) * W - tx;
        for (int kx = kx0; kx < kx1; ++kx) acc += xp[row + kx * dw];
    }
    const int divisor = avg_pool_divisor(ty, tx, H, W, kh, kw, pb, pr, dh, dw,
                                         count_include_pad, divisor_override);
    out[(plane * Ho + oy) * Wo + ox] = divisor > 0 ? acc / (float)divisor : 0.0f;
}

// Gather: each input element sums gout / divisor over the windows that contain it.
__kernel void avg_pool2d_backward(
    const int n_items,
    __global const float *gout, __global float *grad_in,
    const int H, const int W, const int Ho, const int Wo,
    const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int count_include_pad, const int divisor_override)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ix = gid % W;
    const int iy = (gid / W) % H;
    const int plane = gid / (W * H);
    __global const float *gp = gout + plane * Ho * Wo;
    const int oy_lo = first_window(iy, ph, kh, 1, sh);
    const int oy_hi = last_window(iy, ph, sh, Ho);
    const int ox_lo = first_window(ix, pw, kw, 1, sw);
    const int ox_hi = last_window(ix, pw, sw, Wo);
    float acc = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy) {
        for (int ox = ox_lo; ox <= ox_hi; ++ox) {
            const int divisor = avg_pool_divisor(ph - oy * sh, pw - ox * sw, H, W, kh, kw,
                                                 ph, pw, 1, 1, count_include_pad,
                                                 divisor_override);
            if (divisor > 0) acc += gp[oy * Wo + ox] / (float)divisor;
        }
    }
    grad_in[gid] = acc;
}

// Adaptive average pooling: window i covers [floor(i*H/Ho), ceil((i+1)*H/Ho)).
__kernel void adaptive_avg_pool2d_forward(
    const int n_items,
    __global const float *x, __global float *out,
    const int H, const int W, const int Ho, const int Wo)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ox = gid % Wo;
    const int oy = (gid / Wo) % Ho;
    const int plane = gid / (Wo * Ho);
    __global const float *xp = x + plane * H * W;
    const int y0 = (oy * H) / Ho, y1 = ((oy + 1) * H + Ho - 1) / Ho;
    const int x0 = (ox * W) / Wo, x1 = ((ox + 1) * W + Wo - 1) / Wo;
    float acc = 0.0f;
    for (int iy = y0; iy < y1; ++iy)
        for (int ix = x0; ix < x1; ++ix) acc += xp[iy * W + ix];
    out[gid] = acc / (float)((y1 - y0) * (x1 - x0));
}

__kernel void adaptive_avg_pool2d_backward(
    const int n_items,
    __global const float *gout, __global float *grad_in,
    const int H, const int W, const int Ho, const int Wo)
{
    const int gid = get_global_id(0);
    if (gid >= n_items) return;
    const int ix = gid % W;
    const int iy = (gid / W) % H;
    const int plane = gid / (W * H);
    __global const float *gp = gout + plane * Ho * Wo;
    // the windows holding (iy, ix): oy in [oy0, oy1), ox in [ox0, ox1), from the window
    // bounds above solved for the output index. Bounds first and no tests in the loops:
    // VC4C's register allocator failed on the loops that tested each window.
    const int oy0 = (iy * Ho) / H, oy1 = ((iy + 1) * Ho + H - 1) / H;
    const int ox0 = (ix * Wo) / W, ox1 = ((ix + 1) * Wo + W - 1) / W;
    float acc = 0.0f;
    for (int oy = oy0; oy < oy1; ++oy) {
        const int rows = ((oy + 1) * H + Ho - 1) / Ho - (oy * H) / Ho;
        for (int ox = ox0; ox < ox1; ++ox) {
            const int cols = ((ox + 1) * W + Wo - 1) / Wo - (ox * W) / Wo;
            acc += gp[oy * Wo + ox] / (float)(rows * cols);
        }
    }
    grad_in[gid] = acc;
}
