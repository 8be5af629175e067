// Shared by the kernels with the output channels in the vector lanes (conv_channels.cl,
// conv_pool.cl). Their multiply-adds: CHANNELS_TAPS(acc, xn, wv0, C, in_plane, tap_row,
// tap_col, columns) adds to acc[VB][columns], for each input channel c (its input at
// xn + c * in_plane, as `xc`) and tap t (`shift` = its row * tap_row + its column *
// tap_col), VB weight vectors times, for each column p, the input float TAP(p, shift)
// broadcast to every lane. The including file defines VEC, VLOAD, TAP (reading xc) and
// the window (window.h); the weights are [channel vectors][C][KH * KW][VW], one vector
// of channels C * KH * KW * VW floats from the next.
#ifndef CLCONV_CHANNELS_H
#define CLCONV_CHANNELS_H

#define CHANNELS_TAPS(acc, xn, wv0, C, in_plane, tap_row, tap_col, columns) \
    for (int c = 0; c < (C); ++c) { \
        __global const float *xc = (xn) + c * (in_plane); \
        __global const float *wc = (wv0) + c * (KH * KW * VW); \
        _Pragma("unroll") \
        for (int t = 0; t < KH * KW; ++t) { \
            const int shift = (t / KW) * (tap_row) + (t % KW) * (tap_col); \
            VEC wt[VB]; \
            _Pragma("unroll") \
            for (int b = 0; b < VB; ++b) \
                wt[b] = VLOAD(0, wc + b * ((C) * KH * KW * VW) + t * VW); \
            _Pragma("unroll") \
            for (int p = 0; p < (columns); ++p) { \
                const VEC xv = (VEC)(TAP(p, shift)); \
                _Pragma("unroll") \
                for (int b = 0; b < VB; ++b) acc[b][p] = MAD(xv, wt[b], acc[b][p]); \
            } \
        } \
    }

// STORE_FLOATS(run, dst, n): a private run of n floats (n compiled in) to dst in the
// widest vector stores that fit: a channel's run of outputs, stored per plane after the
// tile of channel vectors is transposed through a private copy.
#define STORE_FLOATS(run, dst, n) do { \
        int f_ = 0; \
        _Pragma("unroll") \
        for (; f_ + 8 <= (n); f_ += 8) vstore8(vload8(0, (run) + f_), 0, (dst) + f_); \
        if ((n) % 8 >= 4) { vstore4(vload4(0, (run) + f_), 0, (dst) + f_); f_ += 4; } \
        if ((n) % 4 >= 2) { vstore2(vload2(0, (run) + f_), 0, (dst) + f_); f_ += 2; } \
        if ((n) % 2) (dst)[f_] = (run)[f_]; \
    } while (0)

#endif
