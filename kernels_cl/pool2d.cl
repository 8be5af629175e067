// 2-D pooling, NCHW float32, each (n, c) plane pooled independently.
// One work-item per output (or per input element for the gathering backward
// kernels); no local memory, any work-group size works. On CPUs, pooling without
// indices takes pool_values.cl instead.

// The window and its column stride fixed at build time (the host sets all three for
// small windows), 0 when they come from the arguments. A fixed window reads every tap,
// masking the ones outside the input: loops of fixed length with no branches, which POCL
// unrolls and vectorises across work-items (the clipped loops of run-time length stay
// scalar there), and no integer division, which VC4CL emulates. Rows are clamped into the
// plane; columns are clamped too, except in the *_inner kernels (see there).
#ifndef POOL_KH
#define POOL_KH 0
#endif
#ifndef POOL_KW
#define POOL_KW 0
#endif
#ifndef POOL_SW
#define POOL_SW 0
#endif
#define POOL_FIXED_WINDOW (POOL_KH > 0 && POOL_KW > 0 && POOL_SW > 0)

#include "pool_window.h"  // inside, first_window, last_window

// The fixed-window kernels take their planes as [plane0, plane0 + planes), so that the
// host can split them between two kernels: the plain one clamps the columns it reads
// into the row; the *_inner one reads column ox*POOL_SW + kx*dw - pw as it is (masked
// when outside the row), for every work-item of the row including those past Wo, so its
// addresses are linear in ox and need no clamping selects (on POCL, average pooling ran
// about 3x faster with it, max pooling up to 2x). The host gives it only the planes where
// all those reads stay inside x: not the first plane when pw > 0, nor the last ones when
// a row's reads run past the end.

// Max pooling. Padding never wins (as -inf); ties keep the first maximum in row-major
// window order; a NaN wins (the last one), as in torch. idx holds the flat index iy*W + ix of the
// maximum in its plane (int32: OpenCL 1.2 on the Pi has no 64-bit integers), -1 for a
// window wholly in the padding.
// Launched on a 3-D grid (ox, oy, plane): no integer division to find the output,
// which matters on CPUs and more on VC4CL, where division is emulated.
#if POOL_FIXED_WINDOW
// Pools window (ox, oy) of `plane` into out (and idx) when `live`; work-items past the
// end compute a clamped window and store nothing. Always inlined: POCL's inliner left it
// a call, and POCL vectorises no loop with a call in it.
__attribute__((always_inline)) void max_window(
    __global const float *x, __global float *out, __global int *idx, const int write_idx,
    const int live, const int plane, const int ox, const int oy, const int H, const int W,
    const int Ho, const int Wo, const int sh, const int ph, const int pw, const int dh,
    const int dw, const int clamp_columns)
{
    __global const float *xp = x + plane * H * W;
    const int iy0 = oy * sh - ph, ix0 = ox * POOL_SW - pw;
    float best = -INFINITY;
    int best_i = -1;  // while no tap is inside
#pragma unroll
    for (int ky = 0; ky < POOL_KH; ++ky) {
        const int iy = iy0 + ky * dh;
        const int row_in = (uint)iy < (uint)H;
        const int row = inside(iy, H) * W;
#pragma unroll
        for (int kx = 0; kx < POOL_KW; ++kx) {
            const int ix = ix0 + kx * dw;
            const int in = row_in & ((uint)ix < (uint)W);
            const int i = row + ix;
            const float v = xp[clamp_columns ? row + inside(ix, W) : i];
            // the first tap inside, always; then a greater value or any NaN (once best
            // is NaN, only another NaN is taken: the last one wins)
            const int take = in & ((v > best) | (v != v) | (best_i < 0));
            best = take ? v : best;
            best_i = take ? i : best_i;
        }
    }
    if (!live) return;
    const int o = (plane * Ho + oy) * Wo + ox;
    out[o] = best;
    if (write_idx) idx[o] = best_i;
}

__kernel void max_pool2d_forward_inner(
    __global const float *x, __global float *out, __global int *idx, const int write_idx,
    const int plane0, const int planes, const int H, const int W, const int Ho,
    const int Wo, const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw)
{
    const int ox = get_global_id(0), gy = get_global_id(1), gz = get_global_id(2);
    // ox unclamped past Wo: consecutive loads
    max_window(x, out, idx, write_idx, ox < Wo && gy < Ho && gz < planes,
               plane0 + min(gz, planes - 1), ox, min(gy, Ho - 1), H, W, Ho, Wo, sh, ph,
               pw, dh, dw, 0);
}
#endif

__kernel void max_pool2d_forward(
    __global const float *x, __global float *out, __global int *idx, const int write_idx,
    const int plane0, const int planes, const int H, const int W, const int Ho,
    const int Wo, const int kh, const int kw, const int sh, const int sw,
    const int ph, const int pw, const int dh, const int dw)
{
    const int gx = get_global_id(0), gy = get_global_id(1), gz = get_global_id(2);
#if POOL_FIXED_WINDOW
    max_window(x, out, idx, write_idx, gx < Wo && gy < Ho && gz < planes,
               plane0 + min(gz, planes - 1), min(gx, Wo - 1), min(gy, Ho - 1), H, W, Ho, Wo,
               sh, ph, pw, dh, dw, 1);
#else
    const int ox = gx, oy = gy, plane = plane0 + gz;
    if (ox >= Wo || oy >= Ho || gz >= planes) return;
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
#endif
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
#if POOL_FIXED_WINDOW
// Window (ox, oy) of the plane at xp, as max_window reads it: the taps outside add 0
// (the same sum, in the same order), and the divisor is counted, not divided.
__attribute__((always_inline)) float avg_window(__global const float *xp, const int ox, const int oy, const int H,
                 const int W, const int sh, const int pt, const int pl, const int pb,
                 const int pr, const int dh, const int dw, const int count_include_pad,
                 const int divisor_override, const int clamp_columns)
{
    const int iy0 = oy * sh - pt, c0 = ox * POOL_SW;  // c: the column plus pl
    int cols = 0, cols_padded = 0;  // taps inside the input, inside the padded input
#pragma unroll
    for (int kx = 0; kx < POOL_KW; ++kx) {
        const int c = c0 + kx * dw;
        cols += (uint)(c - pl) < (uint)W;
        cols_padded += c < W + pl + pr;  // c >= 0 always
    }
    float acc = 0.0f;
    int rows = 0, rows_padded = 0;
#pragma unroll
    for (int ky = 0; ky < POOL_KH; ++ky) {
        const int iy = iy0 + ky * dh;
        const int row_in = (uint)iy < (uint)H;
        rows += row_in;
        rows_padded += iy < H + pb;
        // as in max_window: one pointer per row, loads ox*POOL_SW + constant
        __global const float *xr = xp + inside(iy, H) * W - pl;
#pragma unroll
        for (int kx = 0; kx < POOL_KW; ++kx) {
            const int c = c0 + kx * dw;
            const float v = xr[clamp_columns ? inside(c - pl, W) + pl : c];
            acc += (row_in & ((uint)(c - pl) < (uint)W)) ? v : 0.0f;
        }
    }
    const int divisor = divisor_override > 0 ? divisor_override
                      : count_include_pad ? rows_padded * cols_padded : rows * cols;
    return divisor > 0 ? acc / (float)divisor : 0.0f;
}

__kernel void avg_pool2d_forward_inner(
    __global const float *x, __global float *out,
    const int plane0, const int planes, const int H, const int W, const int Ho,
    const int Wo, const int kh, const int kw, const int sh, const int sw,
    const int pt, const int pl, const int pb, const int pr, const int dh, const int dw,
    const int count_include_pad, const int divisor_override)
{
    const int ox = get_global_id(0), gy = get_global_id(1), gz = get_global_id(2);
    const int oy = min(gy, Ho - 1), plane = plane0 + min(gz, planes - 1);
    const float mean = avg_window(x + plane * H * W, ox, oy, H, W, sh, pt, pl, pb, pr, dh,
                                  dw, count_include_pad, divisor_override, 0);
    if (ox >= Wo || gy >= Ho || gz >= planes) return;
    out[(plane * Ho + oy) * Wo + ox] = mean;
}
#endif

__kernel void avg_pool2d_forward(
    __global const float *x, __global float *out,
    const int plane0, const int planes, const int H, const int W, const int Ho,
    const int Wo, const int kh, const int kw, const int sh, const int sw,
    const int pt, const int pl, const int pb, const int pr, const int dh, const int dw,
    const int count_include_pad, const int divisor_override)
{
    const int gx = get_global_id(0), gy = get_global_id(1), gz = get_global_id(2);
#if POOL_FIXED_WINDOW
    const int ox = min(gx, Wo - 1), oy = min(gy, Ho - 1), plane = plane0 + min(gz, planes - 1);
    const float mean = avg_window(x + plane * H * W, ox, oy, H, W, sh, pt, pl, pb, pr, dh,
                                  dw, count_include_pad, divisor_override, 1);
    if (gx >= Wo || gy >= Ho || gz >= planes) return;
#else
    const int ox = gx, oy = gy, plane = plane0 + gz;
    if (ox >= Wo || oy >= Ho || gz >= planes) return;
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
    const float mean = divisor > 0 ? acc / (float)divisor : 0.0f;
#endif
    out[(plane * Ho + oy) * Wo + ox] = mean;
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
