// Depthwise convolution (groups == in_channels, out_channels = multiplier * C) and its
// gradients, NCHW float32. The window size is compiled in (KH, KW) so the loops unroll.
// Any work-group size works; only depthwise_local uses local memory, sized by the host.

// The window (KH, KW, SH, DH, DW). SW, the column stride: in the padded and block
// kernels 1 or 2 vectorise and 0 means the runtime sw; depthwise_grad_input takes any.
#include "window.h"
#include "vector_span.h"

#ifndef TH
#define TH 1            // output rows per work-item (depthwise_local)
#endif
#ifndef R
#define R 1             // depthwise_local: input planes summed per output plane
#endif
#ifndef MB
#define MB 1            // depthwise_local: output planes per work-item (R == 1)
#endif
#ifndef TB
#define TB 4            // depthwise_grad_input: block columns per work-item, a vector width
#endif

// Depthwise weight gradient, pass 1: partial[k, n*Ho + oy, t] = sum_ox dy[n, k, oy, ox]
// * x[n, c, iy, ix] for each window tap t = ky*KW + kx. No atomics: pass 2 sums rows.
__kernel void depthwise_grad_weight_partial(
    __global const float *x, __global const float *dy, __global float *partial,
    const int N, const int C, const int H, const int W, const int K, const int Ho,
    const int Wo, const int sh, const int sw, const int ph, const int pw, const int dh,
    const int dw)
{
    const int noy = get_global_id(0);    // n*Ho + oy
    const int k = get_global_id(1);
    if (noy >= N * Ho || k >= K) return;
    const int n = noy / Ho, oy = noy - (noy / Ho) * Ho;
    const int c = k / (K / C);
    __global const float *src = x + (n * C + c) * H * W;
    __global const float *g = dy + ((n * K + k) * Ho + oy) * Wo;
    __global float *dst = partial + (k * N * Ho + noy) * (KH * KW);
    // one row of taps at a time, the gradient row read again for each: KW accumulators,
    // not KH*KW (VC4C holds each in a register of its own and fails on big windows)
#pragma unroll 1
    for (int ky = 0; ky < KH; ++ky) {
        const int iy = oy * sh - ph + ky * dh;
        const int oky = iy >= 0 && iy < H;
        __global const float *row = src + clamp(iy, 0, H - 1) * W;
        float acc[KW];
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) acc[kx] = 0.0f;
        for (int ox = 0; ox < Wo; ++ox) {
            const float gv = g[ox];
#pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int ix = ox * sw - pw + kx * dw;
                const float v = row[clamp(ix, 0, W - 1)];
                acc[kx] += (oky && ix >= 0 && ix < W) ? gv * v : 0.0f;
            }
        }
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) dst[ky * KW + kx] = acc[kx];
    }
}

// Pass 2: grad_w[k, t] = sum_r partial[k, r, t] over the rows r < rows.
__kernel void depthwise_grad_weight_reduce(
    __global const float *partial, __global float *grad_w, const int K, const int rows)
{
    const int kt = get_global_id(0);     // k*KH*KW + t
    if (kt >= K * KH * KW) return;
    const int k = kt / (KH * KW), t = kt - (kt / (KH * KW)) * (KH * KW);
    __global const float *src = partial + k * rows * (KH * KW) + t;
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += src[r * (KH * KW)];
    grad_w[kt] = acc;
}

// ---- padded variants: the input is first copied into a zero-bordered buffer, so the
// inner loops need no bounds checks and load TW outputs' inputs as one vector.
#if TW == 4 || TW == 8 || TW == 16
// The inputs of one window tap for TW neighbouring outputs: columns x0, x0 + sw, ...
// of `row`, as one vector load where the column stride is compiled in (SW = 1 or 2).
#if SW == 1
#define SPAN_LOAD(row, x0, sw) return DVLOAD(0, (row) + (x0))
#elif SW == 2 && TW == 4
#define SPAN_LOAD(row, x0, sw) return vload8(0, (row) + (x0)).even
#elif SW == 2 && TW == 8
#define SPAN_LOAD(row, x0, sw) return vload16(0, (row) + (x0)).even
#else
// unrolled: a loop here, inside the kernels' unrolled tap loops, made POCL's
// work-group compilation of depthwise_local run for many minutes
#define SPAN_LOAD(row, x0, sw) \
    float e[TW]; \
    _Pragma("unroll") \
    for (int j = 0; j < TW; ++j) e[j] = (row)[(x0) + j * (sw)]; \
    return DVLOAD(0, e)
#endif
DVEC span_global(__global const float *row, const int x0, const int sw)
{
    SPAN_LOAD(row, x0, sw);
}

DVEC span_local(__local const float *row, const int x0, const int sw)
{
    SPAN_LOAD(row, x0, sw);
}

#endif

// xp[p, py, px] = x[p, py - ph, px - pw] inside x, zero elsewhere; p runs over the planes.
__kernel void pad_planes(
    __global const float *x, __global float *xp,
    const int planes, const int H, const int W, const int Hp, const int Wp,
    const int ph, const int pw)
{
    const int py = get_global_id(0);
    const int p = get_global_id(1);
    if (py >= Hp || p >= planes) return;
    __global float *dst = xp + (p * Hp + py) * Wp;
    const int iy = py - ph;
    if (iy < 0 || iy >= H) {
        for (int px = 0; px < Wp; ++px) dst[px] = 0.0f;
        return;
    }
    __global const float *src = x + (p * H + iy) * W;
    const int lo = min(max(pw, 0), Wp), hi = min(max(W + pw, lo), Wp);
    for (int px = 0; px < lo; ++px) dst[px] = 0.0f;
    for (int px = lo; px < hi; ++px) dst[px] = src[px - pw];
    for (int px = hi; px < Wp; ++px) dst[px] = 0.0f;
}

#if TW == 4 || TW == 8 || TW == 16
// out[n, k, oy, ox0 .. ox0+TW) from the padded planes xp (N*C, Hp, Wp).
__kernel void depthwise_forward_padded(
    __global const float *xp, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *out,
    const int C, const int Hp, const int Wp, const int K, const int Ho, const int Wo,
    const int sh, const int sw, const int dh, const int dw,
    const float act_alpha, const float act_beta)
{
    const int ox0 = get_global_id(0) * TW;
    const int oy = get_global_id(1);
    const int nk = get_global_id(2);
    if (ox0 >= Wo || oy >= Ho) return;
    const int k = nk % K;
    const int n = nk / K;
    const int c = k / (K / C);
    __global const float *src = xp + ((n * C + c) * Hp + oy * sh) * Wp;
    __global const float *wp = w + k * (KH * KW);
    DVEC acc = (DVEC)(has_bias ? bias[k] : 0.0f);
#pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
        __global const float *row = src + ky * dh * Wp;
#pragma unroll
        for (int kx = 0; kx < KW; ++kx)
            acc = mad(span_global(row, ox0 * sw + kx * dw, sw), (DVEC)(wp[ky * KW + kx]),
                      acc);
    }
    store_span(acc, out + (nk * Ho + oy) * Wo + ox0, Wo - ox0, act_alpha, act_beta);
}
#endif

#if TW == 4 || TW == 8 || TW == 16
// Weight gradient pass 1 from padded planes: partial[k, n*Ho + oy, t] for every tap t,
// TW outputs of the row at a time (vector multiply-adds), then reduced across lanes.
__kernel void depthwise_grad_weight_partial_padded(
    __global const float *xp, __global const float *dy, __global float *partial,
    const int N, const int C, const int Hp, const int Wp, const int K, const int Ho,
    const int Wo, const int sh, const int sw, const int dh, const int dw)
{
    const int noy = get_global_id(0);    // n*Ho + oy
    const int k = get_global_id(1);
    if (noy >= N * Ho || k >= K) return;
    const int n = noy / Ho, oy = noy - (noy / Ho) * Ho;
    const int c = k / (K / C);
    __global const float *src = xp + ((n * C + c) * Hp + oy * sh) * Wp;
    __global const float *g = dy + ((n * K + k) * Ho + oy) * Wo;
    __global float *dst = partial + (k * N * Ho + noy) * (KH * KW);
    // one row of taps at a time, the gradient row read again for each: KW vector
    // accumulators, not KH*KW (VC4C's register allocator fails on a 3x3 window's 9)
#pragma unroll 1
    for (int ky = 0; ky < KH; ++ky) {
        __global const float *row = src + ky * dh * Wp;
        DVEC acc[KW];
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) acc[kx] = (DVEC)(0.0f);
        for (int ox0 = 0; ox0 < Wo; ox0 += TW) {
            DVEC gv;
            if (ox0 + TW <= Wo) {
                gv = DVLOAD(0, g + ox0);
            } else {
                float t[TW];
#pragma unroll
                for (int j = 0; j < TW; ++j) t[j] = ox0 + j < Wo ? g[ox0 + j] : 0.0f;
                gv = DVLOAD(0, t);
            }
#pragma unroll
            for (int kx = 0; kx < KW; ++kx)
                acc[kx] = mad(gv, span_global(row, ox0 * sw + kx * dw, sw), acc[kx]);
        }
#pragma unroll
        for (int kx = 0; kx < KW; ++kx) dst[ky * KW + kx] = lane_sum(acc[kx]);
    }
}
#endif

#if TW == 4 || TW == 8 || TW == 16
// Copy rows [iy0, iy0 + bh) x columns [ix0, ix0 + bw) of a plane into blk, zero outside
// the plane: the work-group's rows are shared out over its work-items. Rows lie `bp`
// floats apart, bw rounded up to 8 (block_pitch), so every store is a whole vector: a
// row is zeroed first, then its columns inside the plane copied, the last vector
// overlapping the one before rather than falling back to single floats. With a column
// stride of 2 (SW == 2) each row holds its even columns first, its odd ones from bp/2
// (block_column), so every tap's TW inputs are one contiguous vector load.
#define block_pitch(bw) (((bw) + 7) & ~7)
#if SW == 2
#define block_column(c, bp) ((((c) & 1) * ((bp) >> 1)) + ((c) >> 1))
#else
#define block_column(c, bp) (c)
#endif

// Columns c .. c+7 of a row (c even where SW == 2).
void copy8(__local float *d, __global const float *s, const int c, const int bp)
{
    const float8 v = vload8(0, s + c);
#if SW == 2
    vstore4(v.even, 0, d + (c >> 1));
    vstore4(v.odd, 0, d + (bp >> 1) + (c >> 1));
#else
    vstore8(v, 0, d + c);
#endif
}

// Zero d[from .. to) by whole float4 stores: from `from` rounded down to 4 up to `to`
// rounded up to 4. The extra elements are inside columns the copy writes next.
void zero4(__local float *d, const int from, const int to)
{
    for (int c = from & ~3; c < to; c += 4) vstore4((float4)(0.0f), 0, d + c);
}

void fill_block(__local float *blk, __global const float *src, const int H, const int W,
                const int iy0, const int ix0, const int bh, const int bw)
{
    const int bp = block_pitch(bw);
    const int lsize = get_local_size(0) * get_local_size(1);
    const int lo = clamp(-ix0, 0, bw), hi = clamp(W - ix0, lo, bw);
    for (int r = get_local_id(1) * get_local_size(0) + get_local_id(0); r < bh; r += lsize) {
        __local float *d = blk + r * bp;
        const int iy = iy0 + r;
        if (iy < 0 || iy >= H) {
            for (int c = 0; c < bp; c += 8) vstore8((float8)(0.0f), 0, d + c);
            continue;
        }
        // the border columns, before the copy: whole vectors may overlap the inside
#if SW == 2
        zero4(d, 0, (lo + 1) >> 1);                  // even columns < lo
        zero4(d + (bp >> 1), 0, lo >> 1);            // odd columns < lo
        zero4(d, (hi + 1) >> 1, bp >> 1);            // even columns >= hi
        zero4(d + (bp >> 1), hi >> 1, bp >> 1);      // odd columns >= hi
#else
        zero4(d, 0, lo);
        zero4(d, hi, bp);
#endif
        __global const float *s = src + iy * W + ix0;
        int c = lo;
        if (SW == 2 && (c & 1) && c < hi) {  // to an even column
            d[block_column(c, bp)] = s[c];
            ++c;
        }
        for (; c + 8 <= hi; c += 8) copy8(d, s, c, bp);
        if (c < hi) {
            // the last 8 columns again, from an even column
            const int last = SW == 2 ? (hi - 8) & ~1 : hi - 8;
            if (last >= lo) {
                copy8(d, s, last, bp);
                c = last + 8;
            }
            for (; c < hi; ++c) d[block_column(c, bp)] = s[c];
        }
    }
}

// The inputs of window column kx for the TW outputs from block column x0 / sw on.
DVEC block_tap(__local const float *row, const int x0, const int kx, const int sw,
               const int bp)
{
#if SW == 2
    const int c = kx * DW;
    return DVLOAD(0, row + block_column(c, bp) + x0);
#else
    return span_local(row, x0 * sw + kx * DW, sw);
#endif
}

// A TH x TW block of MB output planes p = n*Ko + o per work-item. The work-group first
// copies the input block it reads, zero border included, into local memory `blk` (R
// blocks, sized by the host from the local size), so neither a padding pass nor bounds
// checks in the inner loops are needed. The plane sums R input planes c = (o / mult) * R + r,
// r < R, each with window w[R == 1 ? o : c]. The row stride and the dilation are
// compiled in (SH, DH, DW), so the compiler sees which taps read the same block row
// and loads each once for all TH rows:
// With a channel multiplier, MB of its planes share each loaded tap (forward only).
//   forward:                                            mult = multiplier, R = 1;
//   grad_input (stride 1, flipped windows, padding d*(k-1)-p):  mult = 1, R = multiplier.
__kernel void depthwise_local(
    __global const float *x, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *out, __local float *blk,
    const int Ci, const int H, const int W, const int Ko, const int Ho, const int Wo,
    const int mult, const int sw, const int ph, const int pw,
    const float act_alpha, const float act_beta)
{
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int tiles_x = get_local_size(0) * TW, tiles_y = get_local_size(1) * TH;
    const int bw = (tiles_x - 1) * sw + (KW - 1) * DW + 1, bp = block_pitch(bw);
    const int bh = (tiles_y - 1) * SH + (KH - 1) * DH + 1;
    const int ox0 = get_group_id(0) * tiles_x + lx * TW;
    const int oy0 = get_group_id(1) * tiles_y + ly * TH;
    // the local size along z is 1: one group of MB output planes o0 .. o0 + MB per
    // work-group, all reading one input plane (MB divides the multiplier)
    const int o0 = get_global_id(2) % (Ko / MB) * MB, n = get_global_id(2) / (Ko / MB);
    const int base = (o0 / mult) * R;
    // every plane's block first, then one barrier: private values live across a
    // barrier cost a save and restore per work-item on CPU implementations
#pragma unroll
    for (int r = 0; r < R; ++r)
        fill_block(blk + r * bh * bp, x + (n * Ci + base + r) * H * W, H, W,
                   get_group_id(1) * tiles_y * SH - ph, get_group_id(0) * tiles_x * sw - pw,
                   bh, bw);
    barrier(CLK_LOCAL_MEM_FENCE);
    DVEC acc[MB * TH];
#pragma unroll
    for (int m = 0; m < MB; ++m) {
        const float b = has_bias ? bias[o0 + m] : 0.0f;
#pragma unroll
        for (int t = 0; t < TH; ++t) acc[m * TH + t] = (DVEC)(b);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int t = 0; t < TH; ++t) {
#pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                __local const float *row = blk + (r * bh + (ly * TH + t) * SH + ky * DH) * bp;
#pragma unroll
                for (int kx = 0; kx < KW; ++kx) {
                    const DVEC v = block_tap(row, lx * TW, kx, sw, bp);
#pragma unroll
                    for (int m = 0; m < MB; ++m) {  // each loaded tap serves MB windows
                        const int window = R == 1 ? o0 + m : base + r;
                        acc[m * TH + t] = mad(v, (DVEC)(w[window * (KH * KW) + ky * KW + kx]),
                                              acc[m * TH + t]);
                    }
                }
            }
        }
    }
    if (ox0 >= Wo) return;  // past the barriers: padding work-items may leave now
#pragma unroll
    for (int m = 0; m < MB; ++m) {
        const int p = n * Ko + o0 + m;
#pragma unroll
        for (int t = 0; t < TH; ++t) {
            if (oy0 + t < Ho)  // not break: the loop must stay unrollable
                store_span(acc[m * TH + t], out + (p * Ho + oy0 + t) * Wo + ox0, Wo - ox0,
                           act_alpha, act_beta);
        }
    }
}
#endif

// Depthwise input gradient by gathering, where depthwise_local does not (strides > 1,
// multipliers over 8, and multipliers with PAD=1):
// dx[n, c, iy, ix] = sum over the multiplier's output channels k of c and the window
// taps whose output (oy, ox) reads (iy, ix) of dy[n, k, oy, ox] * w[k, ky, kx]. Each
// work-item sums an SH x (SW*TB) block of one input plane. Which taps reach a block
// element depends only on its place in the block and the padding, the same in every
// work-item (neighbouring work-items, run as vector lanes on a CPU, take the same
// branches), and for one tap the block's TB columns of that place read TB neighbouring
// gradients: one vector load from dyp, the gradient with a zero border (bt rows, bl
// columns) wide enough that no load needs a bounds test. No tap reads a zero that a
// spread-out gradient would hold.
#if SW > 0  // SW = 0 builds (the block kernels' runtime stride) leave this kernel out
#define GVEC DW_CAT(float, TB)
#define GVLOAD DW_CAT(vload, TB)
#define GVSTORE DW_CAT(vstore, TB)
// stride 2: a block row is its two places' vectors interleaved, as one wider vector
#if SW == 2 && TB == 2
#define INTERLEAVED_STORE(a, b, dst) vstore4((float4)((a).s0, (b).s0, (a).s1, (b).s1), 0, dst)
#elif SW == 2 && TB == 4
#define INTERLEAVED_STORE(a, b, dst) \
    vstore8((float8)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3), 0, dst)
#elif SW == 2 && TB == 8
#define INTERLEAVED_STORE(a, b, dst) \
    vstore16((float16)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, \
                       (a).s4, (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7), 0, dst)
#endif
__kernel void depthwise_grad_input(
    __global const float *dyp, __global const float *w,
    __global const float *bias, const int has_bias,
    __global float *dx,
    const int C, const int H, const int W, const int K, const int Hq, const int Wq,
    const int ph, const int pw, const int bt, const int bl)
{
    const int bx = get_global_id(0) * TB;  // first block column: input column bx*SW
    const int by = get_global_id(1);       // block row: input rows by*SH ..
    const int nc = get_global_id(2);
    if (bx * SW >= W || by * SH >= H) return;
    const int c = nc % C, n = nc / C, mult = K / C;
    GVEC acc[SH][SW];
    const float b = has_bias ? bias[c] : 0.0f;
#pragma unroll
    for (int jy = 0; jy < SH; ++jy)
#pragma unroll
        for (int jx = 0; jx < SW; ++jx) acc[jy][jx] = (GVEC)(b);
    for (int m = 0; m < mult; ++m) {
        const int k = c * mult + m;
        __global const float *src = dyp + ((n * K + k) * Hq + by + bt) * Wq + bl + bx;
        __global const float *wp = w + k * (KH * KW);
#pragma unroll
        for (int jy = 0; jy < SH; ++jy) {
#pragma unroll
            for (int ky = 0; ky < KH; ++ky) {
                // (iy + ph - ky*DH) divisible by SH, iy = by*SH + jy; then oy = by + dy
                if ((jy + ph - ky * DH) % SH != 0) continue;
                __global const float *row = src + (jy + ph - ky * DH) / SH * Wq;
#pragma unroll
                for (int jx = 0; jx < SW; ++jx) {
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx) {
                        if ((jx + pw - kx * DW) % SW != 0) continue;
                        acc[jy][jx] = mad(GVLOAD(0, row + (jx + pw - kx * DW) / SW),
                                          (GVEC)(wp[ky * KW + kx]), acc[jy][jx]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int jy = 0; jy < SH; ++jy) {
        if (by * SH + jy >= H) continue;
        __global float *dst = dx + (nc * H + by * SH + jy) * W + bx * SW;
        const int n_out = min(SW * TB, W - bx * SW);
#if SW == 1
        if (n_out == TB) {
            GVSTORE(acc[jy][0], 0, dst);
            continue;
        }
#elif defined(INTERLEAVED_STORE)
        if (n_out == 2 * TB) {
            INTERLEAVED_STORE(acc[jy][0], acc[jy][1], dst);
            continue;
        }
#endif
        float lanes[SW][TB];  // the block row, its SW places interleaved on the way out
#pragma unroll
        for (int jx = 0; jx < SW; ++jx) GVSTORE(acc[jy][jx], 0, lanes[jx]);
#pragma unroll
        for (int j = 0; j < SW * TB; ++j)  // unrolled, guarded: no memcpy (VC4C)
            if (j < n_out) dst[j] = lanes[j % SW][j / SW];
    }
}
#endif
