// A convolution for CPUs with the output channels in the vector lanes (algos/channels.py:
// one group, weights packed once), over zero-bordered input planes, any stride.
//
// The input planes are row_in columns wide and hold every tap (zero-bordered where the
// convolution pads). Tap (ky, kx) of output pixel (q, p) reads input row q * SH, column
// p * SW, shifted by ky * tap_row + kx * tap_col. A work-item computes PX columns for VB
// vectors of VW output channels: for each input channel and tap, VB weight vectors
// (contiguous, packed once) and PX input floats, each broadcast to every lane. Pixels in
// the lanes instead (gemm.cl's SHIFTED form) make every tap's vector of pixels an
// unaligned load shared by only TM channels: this form ran SqueezeNet's 3x3 layers
// 1.2-1.4x faster (docs/performance.md, session 20).
//
// Its columns, by ROW_RUNS:
//  0 (stride 1 only): the planes' flat columns. Output pixel (q, p) is column
//    n = q * row_in + p, which reads the planes at n + the tap's shift: a run of PX
//    columns may cross into the next row, and the border columns between (p >= row_out)
//    are computed but not stored. `columns`: the last row's last output column + 1.
//  1: runs of PX columns within one output row (PX at most the row), runs_per_row of
//    them per row, a row's last run moved back to end at the row's end.
//    `columns`: rows * runs_per_row * PX. With RUN_ROWS > 1, runs of RUN_ROWS whole
//    rows of RUN_W = PX / RUN_ROWS columns (the row's width; runs_per_row 1), the last
//    run moved back to end at the last row: narrow layers (ResNet-50's 7x7) read their
//    weights once per run, and runs of one 7-column row read them twice as often.
//    `columns`: rows * RUN_W.
//
// Weights: [K / VW (rounded up to VB)][C][KH * KW][VW], channels past K zero.
// The epilogue per output: + bias, + the output's value (ACCUMULATE: a residual), then
// activation.h's activation; channels past K are not stored. Output: image `img` at
// out + img * out_image, channel k's plane at k * out_plane, row q at
// out_base + q * out_pitch.
// No local memory and no barriers: any work-group size works. Built for CPUs only; VC4C
// compiles it at VideoCore sizes (VW=4, VB=1, PX=2) in row runs, and in flat ones with a
// bias or a residual but not both, and not at the defaults (its register allocator).

#ifndef VW
#define VW 16           // output channels per vector: the CPU's float lanes
#endif
#ifndef VB
#define VB 2            // vectors of channels per work-item
#endif
#ifndef PX
#define PX 8            // output columns per work-item
#endif
#ifndef ROW_RUNS
#define ROW_RUNS 0
#endif
#ifndef RUN_ROWS
#define RUN_ROWS 1      // ROW_RUNS 1: output rows per run
#endif
#define RUN_W (PX / RUN_ROWS)  // a run's columns in each of its rows
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif

#include "activation.h"
#include "mad.h"
#include "window.h"  // KH x KW taps, strides SH, SW (dilations: run-time tap offsets)
#include "channels.h"

#if !ROW_RUNS && (SH != 1 || SW != 1)
#error "flat columns (ROW_RUNS 0) need stride 1"
#endif
#if RUN_ROWS > 1 && (!ROW_RUNS || PX % RUN_ROWS)
#error "runs of whole rows need ROW_RUNS 1 and PX a multiple of RUN_ROWS"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VEC CAT(float, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

__kernel __attribute__((vec_type_hint(VEC))) void conv_channels(
    __global const float *x, __global const float *w, __global const float *bias,
    __global float *out, const int C, const int K, const int columns,
    const int in_plane, const int in_image, const int tap_row, const int tap_col,
    const int row_in, const int row_out, const int runs_per_row, const int out_plane,
    const int out_image, const int out_pitch, const int out_base, const float act_alpha,
    const float act_beta)
{
    const int v0 = get_global_id(1) * VB;  // the work-item's first vector of channels
    const int img = get_global_id(2);
    if (get_global_id(0) * PX >= columns || v0 * VW >= K) return;
    // A work-item's last run moves back to end at the last column (the host keeps PX
    // within the columns), computing some of the run before it again and storing only
    // its own: every tap then reads its PX floats at constant offsets from one base.
    // Clamping each column instead gave every tap's addresses indices of their own,
    // which spilled to the stack (a load per broadcast): 1.1-1.15x slower at stride 1.
#if ROW_RUNS && RUN_ROWS > 1
    const int own_q = get_global_id(0) * RUN_ROWS;  // the first row it stores
    const int q = min(own_q, columns / RUN_W - RUN_ROWS);  // its first row
    const int p0 = 0;
#elif ROW_RUNS
    const int q = get_global_id(0) / runs_per_row;  // the output row
    const int own_q = q;
    const int own0 = (get_global_id(0) - q * runs_per_row) * PX;  // its first column stored
    const int p0 = min(own0, row_out - PX);
#endif
#if ROW_RUNS
    __global const float *xn = x + img * in_image + q * SH * row_in + p0 * SW;
#else
    const int own0 = get_global_id(0) * PX;
    const int n0 = min(own0, columns - PX);
    __global const float *xn = x + img * in_image + n0;
#endif
    // Column p's input at a tap `shift` from it (xc: channel c's at the run's first
    // column). Written as for runs of whole rows, (p / RUN_W) * row_step + (p % RUN_W)
    // * SW, a run of one row cost the strided layers a quarter of their speed and the
    // flat ones 5-8 %, though the terms are constants: POCL's code changed.
#if ROW_RUNS && RUN_ROWS > 1
    const int row_step = SH * row_in;  // from a run's output row to its next
#define TAP(p, shift) (xc + (p) / RUN_W * row_step)[(p) % RUN_W * SW + (shift)]
#else
#define TAP(p, shift) xc[(p) * SW + (shift)]
#endif
    VEC acc[VB][PX];
    #pragma unroll
    for (int b = 0; b < VB; ++b)
        #pragma unroll
        for (int p = 0; p < PX; ++p) acc[b][p] = (VEC)(0.0f);
    CHANNELS_TAPS(acc, xn, w + v0 * (C * KH * KW * VW), C, in_plane, tap_row, tap_col, PX);
    // The epilogue, a vector of channels at a time: bias, residual and activation on
    // the vector (FINISH, in place; the residual read from the channels' planes at op).
    // A run wholly this work-item's and within its output rows is then stored as one run
    // of RUN_W floats per channel and row, through a private copy of the tile; other runs
    // lane by lane to the VW planes. Lane by lane only, the stores took 40 % of SqueezeNet's
    // 3-channel stem and 10 % of its first 3x3 layer (docs/performance.md, session 23).
#if HAS_BIAS
#define ADD_BIAS(v) v += bias_vector
#else
#define ADD_BIAS(v) (void)0
#endif
#if ACCUMULATE
#define ADD_RESIDUAL(v, op) do { \
        float residual[VW]; \
        _Pragma("unroll") \
        for (int j = 0; j < VW; ++j) residual[j] = j < lanes_out ? (op)[j * out_plane] : 0.0f; \
        v += VLOAD(0, residual); \
    } while (0)
#else
#define ADD_RESIDUAL(v, op) (void)0
#endif
#define FINISH(v, op) do { \
        ADD_BIAS(v); \
        ADD_RESIDUAL(v, op); \
        v = ACTIVATE_WIDTH(VW)(v, act_alpha, act_beta); \
    } while (0)
    __global float *o = out + img * out_image + out_base;
// Where column p of a run lies from its first output (orow, below)
#if ROW_RUNS && RUN_ROWS > 1
#define OUT_AT(p) ((p) / RUN_W * out_pitch + (p) % RUN_W)
#else
#define OUT_AT(p) (p)
#endif
#if ROW_RUNS && RUN_ROWS > 1
    const int transposed = q == own_q;
    const int run_row = q, run_col = 0;
#elif ROW_RUNS
    const int transposed = p0 == own0;
    const int run_row = q, run_col = p0;
#else
    const int run_row = n0 / row_in, run_col = n0 - run_row * row_in;
    const int transposed = n0 == own0 && run_col + PX <= row_out;
#endif
    #pragma unroll
    for (int b = 0; b < VB; ++b) {
        const int k0 = (v0 + b) * VW;
        if (k0 >= K) break;
        const int lanes_out = min(VW, K - k0);  // channels past K are not stored
        __global float *ok = o + k0 * out_plane;
#if HAS_BIAS
        VEC bias_vector;
        if (lanes_out == VW) {
            bias_vector = VLOAD(0, bias + k0);
        } else {
            float lanes[VW];
            #pragma unroll
            for (int j = 0; j < VW; ++j) lanes[j] = j < lanes_out ? bias[k0 + j] : 0.0f;
            bias_vector = VLOAD(0, lanes);
        }
#endif
        if (transposed && lanes_out == VW) {
            __global float *orow = ok + run_row * out_pitch + run_col;
            float tile[PX * VW];  // the run's outputs, column by column
            #pragma unroll
            for (int p = 0; p < PX; ++p) {
                VEC v = acc[b][p];
                FINISH(v, orow + OUT_AT(p));
                VSTORE(v, p, tile);
            }
            #pragma unroll
            for (int j = 0; j < VW; ++j) {
                #pragma unroll
                for (int rr = 0; rr < RUN_ROWS; ++rr) {
                    __global float *oj = orow + j * out_plane + OUT_AT(rr * RUN_W);
                    float run[RUN_W];
                    #pragma unroll
                    for (int p = 0; p < RUN_W; ++p) run[p] = tile[(rr * RUN_W + p) * VW + j];
                    STORE_FLOATS(run, oj, RUN_W);
                }
            }
            continue;
        }
        #pragma unroll
        for (int p = 0; p < PX; ++p) {
#if ROW_RUNS && RUN_ROWS > 1
            const int row = q + p / RUN_W, col = p % RUN_W;
            if (row < own_q) continue;  // the run before's
            __global float *op = ok + row * out_pitch + col;
#elif ROW_RUNS
            const int col = p0 + p;
            if (col < own0) continue;  // the run before's
            __global float *op = ok + q * out_pitch + col;
#else
            const int n = n0 + p;
            const int row = n / row_in, col = n - row * row_in;
            if (n < own0 || col >= row_out) continue;  // the run before's, or a border's
            __global float *op = ok + row * out_pitch + col;
#endif
            VEC v = acc[b][p];
            FINISH(v, op);
            float lanes[VW];
            VSTORE(v, 0, lanes);
            if (lanes_out == VW) {
                #pragma unroll
                for (int j = 0; j < VW; ++j) op[j * out_plane] = lanes[j];
            } else {
                for (int j = 0; j < lanes_out; ++j) op[j * out_plane] = lanes[j];
            }
        }
    }
}
