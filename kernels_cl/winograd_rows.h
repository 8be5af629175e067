// The Winograd input transforms' loads on CPUs (WINOGRAD_UNPADDED: winograd4.cl, and
// winograd.cl built for a CPU), which read the input as it is, no zero-bordered copy.
#ifndef CLCONV_WINOGRAD_ROWS_H
#define CLCONV_WINOGRAD_ROWS_H

// 16 floats of a row from column col on, at x[at] (lanes whose column lies outside the
// row read 0): one load where all lie in the row; else one whose lanes outside are
// replaced (`inside`: the lanes that lie in it; the floats beside the row are read,
// from inside x); else, at x's very first and last floats, column by column.
__attribute__((always_inline)) float16 row16(
    __global const float *x, const int x_size, const int at, const int col, const int W,
    const int16 inside)
{
    if (col >= 0 && col + 16 <= W) return vload16(0, x + at);
    if (at >= 0 && at + 16 <= x_size) return select((float16)(0.0f), vload16(0, x + at), inside);
    float t[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) t[j] = col + j >= 0 && col + j < W ? x[at + j] : 0.0f;
    return vload16(0, t);
}

// The unpadded input transforms' arguments: the input planes x (N*C, H, W), x_size floats
// in all, where tile (ty, tx) of m x m outputs starts at row m*ty - pad_top and column
// m*tx - pad_left; V its transformed tiles (`plane` floats from one matrix to the next,
// ldt from one channel to the next), tiles_w8 tiles per row rounded up to 8.
#define UNPADDED_INPUT_ARGS                                                               \
    __global const float *x, __global float *V, const int C, const int H, const int W,   \
    const int pad_top, const int pad_left, const int x_size, const int tiles_h,           \
    const int tiles_w8, const int ldt, const int plane
// A work-item's 8 neighbouring tiles (grid: tile column group, tile row, n*C + c): from
// tile tx0 of tile row ty of plane nc = n*C + c, col their first column in x.
#define INPUT_TILES(m)                                                                    \
    const int tx0 = get_global_id(0) * 8, ty = get_global_id(1), nc = get_global_id(2);  \
    if (tx0 >= tiles_w8 || ty >= tiles_h) return;                                         \
    const int n = nc / C, c = nc - n * C;                                                 \
    const int col = (m) * tx0 - pad_left

// The lanes of 16 floats from column col on that lie in a row of W columns (-1).
int16 lanes_inside(const int col, const int W)
{
    const int16 cols = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) + col;
    return cols >= 0 & cols < W;
}

#endif
