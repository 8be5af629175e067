// 3-D pooling, NCDHW float32, each (n, c) volume pooled independently. One work-item
// per output (or per input element for the gathering gradients) on a grid
// (x, y, volume*depth + z): one division per work-item to split the third index, none
// in the loops. No local memory, so any work-group size works (12 included).

#include "pool_window.h"  // first_window, last_window

// Max pooling. Padding never wins (as -inf); ties keep the first maximum in the
// window's (z, y, x) order; a NaN wins (the last one), as in torch. idx holds the flat
// index (iz*H + iy)*W + ix of the maximum in its volume (int32: no 64-bit integers in
// OpenCL 1.2 on the Pi).
__kernel void max_pool3d_forward(
    __global const float *x, __global float *out, __global int *idx, const int write_idx,
    const int volumes, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo,
    const int kd, const int kh, const int kw, const int sd, const int sh, const int sw,
    const int pd, const int ph, const int pw, const int dd, const int dh, const int dw)
{
    const int ox = get_global_id(0), oy = get_global_id(1), z = get_global_id(2);
    if (ox >= Wo || oy >= Ho || z >= volumes * Do) return;
    const int vol = z / Do, oz = z - (z / Do) * Do;
    __global const float *xp = x + vol * D * H * W;
    // the taps that fall inside the input, so the loops need no bounds tests
    const int tz = pd - oz * sd, ty = ph - oy * sh, tx = pw - ox * sw;
    const int kz0 = tz > 0 ? (tz + dd - 1) / dd : 0;
    const int ky0 = ty > 0 ? (ty + dh - 1) / dh : 0;
    const int kx0 = tx > 0 ? (tx + dw - 1) / dw : 0;
    const int kz1 = min(kd, (D - 1 + tz) / dd + 1);
    const int ky1 = min(kh, (H - 1 + ty) / dh + 1);
    const int kx1 = min(kw, (W - 1 + tx) / dw + 1);
    float best = -INFINITY;
    int best_i = -1;
    if (kz0 < kz1 && ky0 < ky1 && kx0 < kx1) {
        best_i = ((kz0 * dd - tz) * H + ky0 * dh - ty) * W + kx0 * dw - tx;
        best = xp[best_i];
    }
    int nan_i = -1;  // tracked apart so the comparison stays a single select
    for (int kz = kz0; kz < kz1; ++kz) {
        const int slab = (kz * dd - tz) * H;
        for (int ky = ky0; ky < ky1; ++ky) {
            const int row = (slab + ky * dh - ty) * W - tx;
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
    }
    if (nan_i >= 0) {
        best = xp[nan_i];
        best_i = nan_i;
    }
    const int o = (z * Ho + oy) * Wo + ox;
    out[o] = best;
    if (write_idx) idx[o] = best_i;
}

// grad_in[vol, i] = sum of gout[vol, o] over the windows o that contain i and chose it,
// visited in output order. Grid (ix, iy, volume*D + iz).
__kernel void max_pool3d_backward_windows(
    __global const float *gout, __global const int *idx, __global float *grad_in,
    const int volumes, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo,
    const int kd, const int kh, const int kw, const int sd, const int sh, const int sw,
    const int pd, const int ph, const int pw, const int dd, const int dh, const int dw)
{
    const int ix = get_global_id(0), iy = get_global_id(1), z = get_global_id(2);
    if (ix >= W || iy >= H || z >= volumes * D) return;
    const int vol = z / D, iz = z - (z / D) * D;
    const int i = (iz * H + iy) * W + ix;
    __global const float *g = gout + vol * Do * Ho * Wo;
    __global const int *ip = idx + vol * Do * Ho * Wo;
    const int oz_lo = first_window(iz, pd, kd, dd, sd), oz_hi = last_window(iz, pd, sd, Do);
    const int oy_lo = first_window(iy, ph, kh, dh, sh), oy_hi = last_window(iy, ph, sh, Ho);
    const int ox_lo = first_window(ix, pw, kw, dw, sw), ox_hi = last_window(ix, pw, sw, Wo);
    float acc = 0.0f;
    for (int oz = oz_lo; oz <= oz_hi; ++oz)
        for (int oy = oy_lo; oy <= oy_hi; ++oy)
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const int o = (oz * Ho + oy) * Wo + ox;
                acc += ip[o] == i ? g[o] : 0.0f;
            }
    grad_in[(z * H + iy) * W + ix] = acc;
}

// The number torch's avg_pool3d divides window (oz, oy, ox) by: divisor_override when
// it is > 0, else the window's elements (padding included or not).
int avg_pool3d_divisor(const int oz, const int oy, const int ox,
                       const int D, const int H, const int W,
                       const int kd, const int kh, const int kw,
                       const int sd, const int sh, const int sw,
                       const int pd, const int ph, const int pw,
                       const int count_include_pad, const int divisor_override)
{
    if (divisor_override > 0) return divisor_override;
    int z0 = oz * sd - pd, y0 = oy * sh - ph, x0 = ox * sw - pw;
    int z1 = min(z0 + kd, D + pd), y1 = min(y0 + kh, H + ph), x1 = min(x0 + kw, W + pw);
    if (!count_include_pad) {
        z0 = max(z0, 0); y0 = max(y0, 0); x0 = max(x0, 0);
        z1 = min(z1, D); y1 = min(y1, H); x1 = min(x1, W);
    }
    return (z1 - z0) * (y1 - y0) * (x1 - x0);
}

// Grid (ox, oy, volume*Do + oz), as max_pool3d_forward.
__kernel void avg_pool3d_forward(
    __global const float *x, __global float *out,
    const int volumes, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo,
    const int kd, const int kh, const int kw, const int sd, const int sh, const int sw,
    const int pd, const int ph, const int pw,
    const int count_include_pad, const int divisor_override)
{
    const int ox = get_global_id(0), oy = get_global_id(1), z = get_global_id(2);
    if (ox >= Wo || oy >= Ho || z >= volumes * Do) return;
    const int vol = z / Do, oz = z - (z / Do) * Do;
    __global const float *xp = x + vol * D * H * W;
    const int z0 = max(oz * sd - pd, 0), z1 = min(oz * sd - pd + kd, D);
    const int y0 = max(oy * sh - ph, 0), y1 = min(oy * sh - ph + kh, H);
    const int x0 = max(ox * sw - pw, 0), x1 = min(ox * sw - pw + kw, W);
    float acc = 0.0f;
    for (int iz = z0; iz < z1; ++iz)
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) acc += xp[(iz * H + iy) * W + ix];
    const int divisor = avg_pool3d_divisor(oz, oy, ox, D, H, W, kd, kh, kw, sd, sh, sw,
                                           pd, ph, pw, count_include_pad, divisor_override);
    out[(z * Ho + oy) * Wo + ox] = divisor > 0 ? acc / (float)divisor : 0.0f;
}

// Gather: each input element sums gout / divisor over the windows that contain it.
// Grid (ix, iy, volume*D + iz).
__kernel void avg_pool3d_backward(
    __global const float *gout, __global float *grad_in,
    const int volumes, const int D, const int H, const int W,
    const int Do, const int Ho, const int Wo,
    const int kd, const int kh, const int kw, const int sd, const int sh, const int sw,
    const int pd, const int ph, const int pw,
    const int count_include_pad, const int divisor_override)
{
    const int ix = get_global_id(0), iy = get_global_id(1), z = get_global_id(2);
    if (ix >= W || iy >= H || z >= volumes * D) return;
    const int vol = z / D, iz = z - (z / D) * D;
    __global const float *gp = gout + vol * Do * Ho * Wo;
    const int oz_lo = first_window(iz, pd, kd, 1, sd), oz_hi = last_window(iz, pd, sd, Do);
    const int oy_lo = first_window(iy, ph, kh, 1, sh), oy_hi = last_window(iy, ph, sh, Ho);
    const int ox_lo = first_window(ix, pw, kw, 1, sw), ox_hi = last_window(ix, pw, sw, Wo);
    float acc = 0.0f;
    for (int oz = oz_lo; oz <= oz_hi; ++oz)
        for (int oy = oy_lo; oy <= oy_hi; ++oy)
            for (int ox = ox_lo; ox <= ox_hi; ++ox) {
                const int divisor = avg_pool3d_divisor(oz, oy, ox, D, H, W, kd, kh, kw,
                                                       sd, sh, sw, pd, ph, pw,
                                                       count_include_pad, divisor_override);
                if (divisor > 0) acc += gp[(oz * Ho + oy) * Wo + ox] / (float)divisor;
            }
    grad_in[(z * H + iy) * W + ix] = acc;
}
