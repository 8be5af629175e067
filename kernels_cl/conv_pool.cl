// A convolution whose output only a max pool reads, with the pool in its epilogue (a
// network's stem: conv + bias + activation, then a 3x3 max pool of stride 2), for CPUs
// (algos/channels.py forward_max_pool; VC4C never builds this file). The convolution is
// conv_channels.cl's form, the output channels in the vector lanes: per input channel
// and tap, VB weight vectors and one input float per column, broadcast to every lane.
// The convolution's output never goes to memory: SqueezeNet's stem wrote 3.2 MB that
// the pool read back, each run with the caches emptied by another runtime's run.
//
// A work-item computes PP pooled outputs of each pooled row of its band, for VB vectors
// of VW channels. It walks its band top to bottom, computing each convolution row it
// needs once: for that row, the PXC convolution columns its PP windows cover, then each
// window's maximum along the row; the rows a window shares with the next pooled row
// (POOL_KH - POOL_SH) are kept. Its run of pooled outputs starts at min(run * PP, Wp -
// PP), the last run moved back to end at the row's end (its overlap not stored again).
//
// The input planes are zero-bordered for the convolution's padding and, beside that,
// col0 columns on the left (and as many as needed on the right) for the pool's padding:
// the pool's padding columns are computed over zeros and then taken as -inf, as the
// max pool takes its padding. Rows of the pool's padding are -inf without computing.
// A window takes the maximum of its taps, NaN where any tap is NaN (pool_values.cl's
// rule: max_pool2d's). Weights: conv_channels.cl's layout. Output: image `img` at
// out + img * out_image, channel k's plane at k * out_plane, pooled row q at q * Wp.

#ifndef VW
#define VW 16           // output channels per vector: the CPU's float lanes
#endif
#ifndef VB
#define VB 1            // vectors of channels per work-item
#endif
#ifndef PP
#define PP 4            // pooled outputs per work-item and row
#endif
#ifndef POOL_KH
#define POOL_KH 3
#endif
#ifndef POOL_KW
#define POOL_KW 3
#endif
#ifndef POOL_SH
#define POOL_SH 2
#endif
#ifndef POOL_SW
#define POOL_SW 2
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif

#include "activation.h"
#include "mad.h"
#include "window.h"  // the convolution's KH x KW taps, strides SH, SW
#include "channels.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VEC CAT(float, VW)
#define IVEC CAT(int, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)
#define PXC ((PP - 1) * POOL_SW + POOL_KW)  // convolution columns per run
#define TAP(p, shift) xc[(p) * SW + (shift)]  // column p's input at a tap (channels.h)
// pooled rows' shared convolution rows (0: none, a row stride past the window)
#define KEPT (POOL_KH > POOL_SH ? POOL_KH - POOL_SH : 0)

// Along convolution row `row`, each of the PP windows' maximum over its POOL_KW
// columns, NaN where any is NaN (xi: the input of the run's first column in row 0): a
// row of the pool's padding (outside 0..Hc-1) is -inf, as are columns outside 0..Wc-1.
__attribute__((always_inline)) void row_maxima(
    VEC maxima[VB][PP], __global const float *xi, const int row_in,
    __global const float *wv0, const int C, const int in_plane, const int tap_row,
    const int tap_col, const int row, const int Hc, const int cc0, const int Wc,
    const VEC bias_vector[VB], const float act_alpha, const float act_beta)
{
    if (row < 0 || row >= Hc) {
        #pragma unroll
        for (int b = 0; b < VB; ++b)
            #pragma unroll
            for (int j = 0; j < PP; ++j) maxima[b][j] = (VEC)(-INFINITY);
        return;
    }
    __global const float *xr = xi + row * SH * row_in;
    VEC acc[VB][PXC];
    #pragma unroll
    for (int b = 0; b < VB; ++b)
        #pragma unroll
        for (int p = 0; p < PXC; ++p) acc[b][p] = (VEC)(0.0f);
    CHANNELS_TAPS(acc, xr, wv0, C, in_plane, tap_row, tap_col, PXC);
    #pragma unroll
    for (int b = 0; b < VB; ++b) {
        #pragma unroll
        for (int p = 0; p < PXC; ++p) {
            VEC v = acc[b][p];
#if HAS_BIAS
            v += bias_vector[b];
#endif
            v = ACTIVATE_WIDTH(VW)(v, act_alpha, act_beta);
            // a column of the pool's padding: -inf (computed over zeros, never taken)
            acc[b][p] = (uint)(cc0 + p) < (uint)Wc ? v : (VEC)(-INFINITY);
        }
        #pragma unroll
        for (int j = 0; j < PP; ++j) {
            VEC best = (VEC)(-INFINITY);
            IVEC nan = (IVEC)(0);
            #pragma unroll
            for (int kx = 0; kx < POOL_KW; ++kx) {
                const VEC v = acc[b][j * POOL_SW + kx];
                best = v > best ? v : best;
                nan |= isnan(v);
            }
            maxima[b][j] = select(best, (VEC)(NAN), nan);
        }
    }
}

// Grid (run + band * runs_per_row, vector block, image). in_plane, in_image, row_in:
// the bordered input planes; tap_row, tap_col: a tap's step down and across them (with
// the dilations); col0: the input column of convolution column 0's window. (Hc, Wc):
// the convolution's output, (Hp, Wp) the pool's; pool_top, pool_left: the pool's
// padding before its first row and column.
__kernel __attribute__((vec_type_hint(VEC))) void conv_max_pool_channels(
    __global const float *x, __global const float *w, __global const float *bias,
    __global float *out, const int C, const int K, const int in_plane, const int in_image,
    const int tap_row, const int tap_col, const int row_in, const int col0, const int Hc,
    const int Wc, const int Hp, const int Wp, const int pool_top, const int pool_left,
    const int runs_per_row, const int band, const int out_plane, const int out_image,
    const float act_alpha, const float act_beta)
{
    const int band_index = get_global_id(0) / runs_per_row;
    const int run = get_global_id(0) - band_index * runs_per_row;
    const int oy0 = band_index * band, v0 = get_global_id(1) * VB;
    const int img = get_global_id(2);
    if (oy0 >= Hp || v0 * VW >= K) return;
    const int oy1 = min(oy0 + band, Hp);
    const int ox0 = max(min(run * PP, Wp - PP), 0);  // the run's first pooled output
    const int first = run * PP - ox0;  // its outputs the run before stores
    const int cc0 = ox0 * POOL_SW - pool_left;  // the convolution column of its first
    __global const float *xi = x + img * in_image + col0 + cc0 * SW;
    __global const float *wv0 = w + v0 * (C * KH * KW * VW);  // its channels' weights
    VEC bias_vector[VB];
    #pragma unroll
    for (int b = 0; b < VB; ++b) {
#if HAS_BIAS
        float lanes[VW];
        #pragma unroll
        for (int j = 0; j < VW; ++j)
            lanes[j] = (v0 + b) * VW + j < K ? bias[(v0 + b) * VW + j] : 0.0f;
        bias_vector[b] = VLOAD(0, lanes);
#else
        bias_vector[b] = (VEC)(0.0f);
#endif
    }
    VEC rows[POOL_KH][VB][PP];  // the window rows' maxima of the pooled row
    for (int oy = oy0; oy < oy1; ++oy) {
        const int row0 = oy * POOL_SH - pool_top;  // its first convolution row
        const int kept = oy > oy0 ? KEPT : 0;
        #pragma unroll
        for (int k = 0; k < POOL_KH; ++k) {
            if (k < kept) {
                #pragma unroll
                for (int b = 0; b < VB; ++b)
                    #pragma unroll
                    for (int j = 0; j < PP; ++j) rows[k][b][j] = rows[k + POOL_SH][b][j];
            } else {
                row_maxima(rows[k], xi, row_in, wv0, C, in_plane, tap_row, tap_col, row0 + k,
                           Hc, cc0, Wc, bias_vector, act_alpha, act_beta);
            }
        }
        #pragma unroll
        for (int b = 0; b < VB; ++b) {
            const int k0 = (v0 + b) * VW;
            if (k0 >= K) break;
            const int lanes_out = min(VW, K - k0);  // channels past K are not stored
            float tile[PP * VW];  // the pooled outputs, column by column
            #pragma unroll
            for (int j = 0; j < PP; ++j) {
                VEC best = (VEC)(-INFINITY);
                IVEC nan = (IVEC)(0);
                #pragma unroll
                for (int k = 0; k < POOL_KH; ++k) {
                    best = rows[k][b][j] > best ? rows[k][b][j] : best;
                    nan |= isnan(rows[k][b][j]);
                }
                VSTORE(select(best, (VEC)(NAN), nan), j, tile);
            }
            __global float *o = out + img * out_image + k0 * out_plane + oy * Wp + ox0;
            if (first == 0 && lanes_out == VW) {  // each channel's PP outputs as vectors
                #pragma unroll
                for (int l = 0; l < VW; ++l) {
                    float run[PP];
                    #pragma unroll
                    for (int j = 0; j < PP; ++j) run[j] = tile[j * VW + l];
                    STORE_FLOATS(run, o + l * out_plane, PP);
                }
            } else {
                for (int l = 0; l < lanes_out; ++l) {
                    #pragma unroll
                    for (int j = 0; j < PP; ++j)
                        if (j >= first) o[l * out_plane + j] = tile[j * VW + l];
                }
            }
        }
    }
}
