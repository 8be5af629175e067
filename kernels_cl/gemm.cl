// Register-tiled, vectorised batched GEMM with a fused epilogue: clconv's one matrix
// product (convolution variants, linear and its gradients, ONNX Gemm and MatMul).
//
//   C[b] (M x N) = act(alpha * sum_{r < R} A[b, r] (M x Kd) . B[b, r] (Kd x N)
//                      (+ beta * bias term))
//
// B is row-major with unit stride along N (B_TRANS=0: B[k*ldb + n], loaded as TN-wide
// vectors), stored transposed (B_TRANS=1: B[n*ldb + k], gathered into the vectors), or
// packed in panels of the tile's NV*TN columns (B_PACKED=1: B[(n / (NV*TN))*ldb +
// k*NV*TN + n % (NV*TN)], columns past N present; im2col_panels writes it), so that the
// K loop reads one contiguous stream instead of rows ldb apart (rows a multiple of 4 KB
// apart also share L1 sets, and every row is a new page).
// A is row-major (A_KMAJOR=0: A[m*lda + k]), stored K-major (A_KMAJOR=1: A[k*lda + m]),
// or packed in panels of the tile's TM rows (A_PACKED=1: A[(m / TM)*lda + k*TM + m % TM],
// rows past M present; weights packed once, algos/tiled_gemm.py pack_a), so that a
// K step reads TM contiguous floats instead of TM rows lda apart.
// C is row-major (C_TRANS=0: C[m*ldc + n]) or transposed (C_TRANS=1: C[n*ldc + m]).
// The bias term: none (HAS_BIAS=0), one value per row, bias[b2*sbias2 + m] (HAS_BIAS=1,
// a convolution's), or any broadcast of a matrix, bias[b2*sbias2 + m*sbm + n*sbn]
// (HAS_BIAS=2: linear's bias along N, ONNX Gemm's C). SCALE=1 multiplies the product by
// alpha and the bias term by beta (ONNX Gemm); SCALE=0 adds them as they are.
// The batch index b (global dimension 2) splits as b1 = b / NB2, b2 = b % NB2 and each
// matrix is offset by b1*s1 + b2*s2 (and by r*sr for the reduction batch).
// Each work-item computes a TM x TN tile of C, holding it in TM vector registers: the
// K loop is an outer product of TM scalars of A with one TN-vector of B. No local memory
// and no barriers, so any work-group size works (VideoCore IV allows 12).
//
// SHIFTED=kw (> 0) runs a stride-1 convolution of window width kw without a column
// matrix (algos/shifted.py): the input planes, zero-bordered, are row_in columns wide,
// and reduction step r is the kernel's tap (r / kw, r % kw), whose B is the planes
// shifted by (r / kw) * sbr + (r % kw) * sbr_w (kw compiled in: no run-time division).
// Column n of C is then output pixel (n / row_in, n % row_in), stored at
// out_base + (n / row_in) * out_pitch + n % row_in; the border columns (n % row_in >=
// row_out) are computed and dropped. out_pitch = row_out and out_base = 0 store the
// output planes as they are; a wider out_pitch and an out_base inside the first row
// store them inside zero-bordered planes, as the next shifted convolution reads them
// (a 1x1 convolution does so as SHIFTED=1: one tap, row_in = row_out).

#ifndef TM
#define TM 4            // rows of C per work-item
#endif
#ifndef TN
#define TN 8            // columns of C per work-item: the vector width, 2/4/8/16
#endif
#ifndef A_KMAJOR
#define A_KMAJOR 0
#endif
#ifndef A_PACKED
#define A_PACKED 0
#endif
#ifndef B_PACKED
#define B_PACKED 0
#endif
#ifndef C_TRANS
#define C_TRANS 0
#endif
#ifndef B_TRANS
#define B_TRANS 0
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef SCALE
#define SCALE 0
#endif
#ifndef NV
#define NV 1            // TN-vectors per row of the tile: the tile is TM x (NV*TN)
#endif
#ifndef MFAST
#define MFAST 1         // 1: global dimension 0 runs over row tiles (work-items that share
#endif                  // a column panel of B run one after another), 0: over column tiles
#ifndef PREFETCH
#define PREFETCH 0      // >0 (CPUs): prefetch the rows of A and B this many K steps ahead
#endif
#ifndef LINE_FLOATS
#define LINE_FLOATS 16  // floats per cache line (64 bytes), for PREFETCH
#endif
#ifndef KUNROLL
#define KUNROLL 1       // unroll factor hint for the K loop
#endif
#ifndef SHIFTED
#define SHIFTED 0
#endif
#ifndef COMPACT_STORE
#define COMPACT_STORE 0 // SHIFTED into dense planes (CPUs): straddling vectors stored whole
#endif
#ifndef B_AFFINE
#define B_AFFINE 0      // row k of B is read as b * b_scale[k] + b_shift[k] (1), then
#endif                  // through a ReLU (2): an inference batch norm (+ ReLU) applied to
                        // a 1x1 convolution's input as it is loaded, not in a pass of its own

#include "activation.h"  // the epilogue: ACTIVATION, act_alpha, act_beta
#include "mad.h"
#include "unaligned_vectors.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VEC CAT(float, TN)
#define VLOAD CAT(vload, TN)
#define VSTORE CAT(vstore, TN)
#if TN == 2
#define LANE_INDEX ((int2)(0, 1))
#elif TN == 4
#define LANE_INDEX ((int4)(0, 1, 2, 3))
#elif TN == 8
#define LANE_INDEX ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define LANE_INDEX ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#endif

// Row i of the tile, clamped to the last row of A (the stores skip rows past M).
// Computed where used, not kept in a private array: VC4C holds each element of such an
// array in a register of its own and its register allocator then fails at TM=2.
#define ROW(i) min(m0 + (i), M - 1)

// Element (m0 + i, k) of A (a: this batch's A; ap: its panel of rows m0..m0+TM-1)
#if A_PACKED
#define A_TILE(i, k) ap[(k) * TM + (i)]
#elif A_KMAJOR
#define A_TILE(i, k) a[(k) * lda + ROW(i)]
#else
#define A_TILE(i, k) a[ROW(i) * lda + (k)]
#endif

// One K step: the tile += column k of A's tile (A_AT(i): its element in row i) times
// the first VECTORS of the NV vectors bv of B's row k.
#define A_AT_K(i) A_TILE(i, k)
#define A_AT_ROW(i) arow[i]   // (arow: packed A's row k, stepped along the K loop)
#define OUTER_PRODUCT(bv, A_AT, VECTORS) do { \
        _Pragma("unroll") \
        for (int i = 0; i < TM; ++i) { \
            const VEC av = (VEC)(A_AT(i)); \
            _Pragma("unroll") \
            for (int v = 0; v < (VECTORS); ++v) acc[i][v] = MAD(av, bv[v], acc[i][v]); \
        } \
    } while (0)

#if SCALE
#define BIAS_TERM(x) (beta * (x))
#else
#define BIAS_TERM(x) (x)
#endif

// The epilogue's first part, in place, for row m of the tile on one vector: alpha
// (SCALE), then a convolution's bias (HAS_BIAS=1), as two statements (not contracted
// into one fma); HAS_BIAS=2's per-column term is added where used.
#if SCALE
#define SCALE_IN_PLACE(val) (val) *= alpha
#else
#define SCALE_IN_PLACE(val) (void)0
#endif
#if HAS_BIAS == 1
#define ROW_BIAS_IN_PLACE(val, m) (val) += BIAS_TERM((VEC)(bias[b2 * sbias2 + (m)]))
#else
#define ROW_BIAS_IN_PLACE(val, m) (void)0
#endif
#define SCALE_AND_ROW_BIAS(val, m) do { SCALE_IN_PLACE(val); ROW_BIAS_IN_PLACE(val, m); } while (0)

// Element (k, n0 + j) of B, from bp (B's panel at column n0).
// Where reduction step r's B starts.
#if SHIFTED
#define B_STEP(r) (((r) / SHIFTED) * sbr + ((r) % SHIFTED) * sbr_w)
#else
#define B_STEP(r) ((r) * sbr)
#endif

#if B_PACKED
#define B_AT(j, k) bp[(k) * (TN * NV) + (j)]
#define B_PANEL(n0) (((n0) / (TN * NV)) * ldb)
#elif B_TRANS
#define B_AT(j, k) bp[(j) * ldb + (k)]
#define B_PANEL(n0) ((n0) * ldb)
#else
#define B_AT(j, k) bp[(k) * ldb + (j)]
#define B_PANEL(n0) (n0)
#endif

// The B_AFFINE prologue on the first VECTORS vectors of row k just loaded. The ReLU is
// activation.h's: NaN stays NaN, as in torch.
#if B_AFFINE
#define B_PROLOGUE(bv, k, VECTORS) do { \
        const VEC s_ = (VEC)(b_scale[k]), t_ = (VEC)(b_shift[k]); \
        _Pragma("unroll") \
        for (int v_ = 0; v_ < (VECTORS); ++v_) { \
            bv[v_] = MAD(bv[v_], s_, t_); \
            if (B_AFFINE == 2) bv[v_] = select(bv[v_], (VEC)(0.0f), bv[v_] < (VEC)(0.0f)); \
        } \
    } while (0)
#else
#define B_PROLOGUE(bv, k, VECTORS) do { } while (0)
#endif

// The K loop of a tile whose B is read as vectors (not B_TRANS) over its first VECTORS
// vectors, with brow and arow (packed A) at row 0 of its panels; b_step: floats from
// one row of B to the next.
#if PREFETCH
// B's row k + PREFETCH, in either layout: a packed panel is one stream, but the hardware
// prefetcher alone left ResNet-50's packed-B layers (stem, strided and 7x7) waiting on
// memory. An unpacked row's floats need not start a cache line: every line is fetched.
#if B_PACKED
#define PREFETCH_B(VECTORS) __builtin_prefetch(brow + PREFETCH * b_step)
#else
#define PREFETCH_B(VECTORS) do { \
        _Pragma("unroll") \
        for (int v = 0; v < (VECTORS); ++v) \
            if (v * TN % LINE_FLOATS == 0) __builtin_prefetch(brow + PREFETCH * b_step + OFF(v)); \
        __builtin_prefetch(brow + PREFETCH * b_step + OFF((VECTORS) - 1) + TN - 1); \
    } while (0)
#endif
#else
#define PREFETCH_B(VECTORS) (void)0
#endif
#if A_PACKED
#define A_AT_STEP A_AT_ROW
#define NEXT_A_ROW() arow += TM
#if PREFETCH
#define PREFETCH_A() __builtin_prefetch(arow + PREFETCH * TM)
#else
#define PREFETCH_A() (void)0
#endif
#else
#define A_AT_STEP A_AT_K
#define NEXT_A_ROW() (void)0
#define PREFETCH_A() (void)0
#endif
#define PRAGMA_(x) _Pragma(#x)
#define PRAGMA(x) PRAGMA_(x)
#if KUNROLL > 1
#define K_LOOP_HINT PRAGMA(unroll KUNROLL)
#else
#define K_LOOP_HINT
#endif
#define K_STEPS(VECTORS) do { \
        K_LOOP_HINT \
        for (int k = 0; k < Kd; ++k) { \
            VEC bv[NV]; \
            PREFETCH_B(VECTORS); \
            PREFETCH_A(); \
            _Pragma("unroll") \
            for (int v = 0; v < (VECTORS); ++v) bv[v] = VLOAD(0, brow + OFF(v)); \
            B_PROLOGUE(bv, k, VECTORS); \
            OUTER_PRODUCT(bv, A_AT_STEP, VECTORS); \
            brow += b_step; \
            NEXT_A_ROW(); \
        } \
    } while (0)

// COMPACT_STORE: the kernel is vectorised by hand; without the hint POCL's implicit
// vectorisation across work-items ran it at half speed at a local size of 4.
#if COMPACT_STORE
#define GEMM_HINT __attribute__((vec_type_hint(VEC)))
#else
#define GEMM_HINT
#endif

#if SHIFTED && COMPACT_STORE && HAS_BIAS != 2
// A run of n floats (n <= TN) between a private copy of a vector and C: the whole
// vector, or the widest pieces that fit (OUT: to C, IN: from C; unaligned_vectors.h).
#define COPY_RUN(DIR, dst, src, n) do { \
        if ((n) == TN) { \
            CAT(COPY_, DIR)(TN, dst, src); \
        } else { \
            int j_ = 0; \
            COPY_PIECE(DIR, 8, dst, src, n, j_); \
            COPY_PIECE(DIR, 4, dst, src, n, j_); \
            COPY_PIECE(DIR, 2, dst, src, n, j_); \
            if (j_ < (n)) (dst)[j_] = (src)[j_]; \
        } \
    } while (0)
#define COPY_OUT(w, dst, src) GLOBAL_STORE(w, PRIVATE_LOAD(w, src), dst)
#define COPY_IN(w, dst, src) PRIVATE_STORE(w, GLOBAL_LOAD(w, src), dst)
#define COPY_PIECE(DIR, w, dst, src, n, j) do { \
        if ((w) < TN && (n) - (j) >= (w)) { \
            CAT(COPY_, DIR)(w, (dst) + (j), (src) + (j)); \
            (j) += (w); \
        } \
    } while (0)
void copy_run_out(__global float *dst, const float *src, const int n) { COPY_RUN(OUT, dst, src, n); }
void copy_run_in(float *dst, __global const float *src, const int n) { COPY_RUN(IN, dst, src, n); }

#endif

__kernel GEMM_HINT void gemm_tiled(
    const int M, const int N, const int Kd, const int R,
    __global const float *A, const int lda, const int sa1, const int sa2, const int sar,
    __global const float *B, const int ldb, const int sb1, const int sb2, const int sbr,
    __global float *C, const int ldc, const int sc1, const int sc2,
    __global const float *bias, const int sbias2, const int sbm, const int sbn,
    const int NB2, const float alpha, const float beta,
    const float act_alpha, const float act_beta,
    __global const float *b_scale, __global const float *b_shift,
    const int sbr_w, const int row_in, const int row_out, const int out_pitch,
    const int out_base)
{
#if MFAST
    const int m0 = get_global_id(0) * TM;
    const int n0 = get_global_id(1) * (TN * NV);
#else
    const int n0 = get_global_id(0) * (TN * NV);
    const int m0 = get_global_id(1) * TM;
#endif
    const int b = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    const int b1 = b / NB2, b2 = b - (b / NB2) * NB2;
    __global const float *a0 = A + b1 * sa1 + b2 * sa2;
    __global const float *bb0 = B + b1 * sb1 + b2 * sb2;
    VEC acc[TM][NV];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int v = 0; v < NV; ++v) acc[i][v] = (VEC)(0.0f);
    // Vector v of the tile starts at column n0 + OFF(v): n0 + v * TN, except in the last,
    // partial column panel, where a vector reaching past N moves back to end at column
    // N - 1, overlapping the one before it. So every B load is a whole vector wherever B
    // is at least a vector wide; the epilogue stores only the columns the vector owns
    // (from n0 + v * TN on). Narrower B (N < TN) is gathered lane by lane. Packed B
    // has every panel whole.
#if B_PACKED
    const int last_off = TN * NV;
#else
    const int last_off = N >= TN ? N - n0 - TN : TN * NV;
#endif
#define OFF(v) min((v) * TN, last_off)
    for (int r = 0; r < R; ++r) {
        __global const float *a = a0 + r * sar;
#if A_PACKED
        __global const float *ap = a + (m0 / TM) * lda;
#endif
        __global const float *bp = bb0 + B_STEP(r) + B_PANEL(n0);
#if B_PACKED
        if (1) {  // every panel is whole: no lane-by-lane gather
#else
        if (N >= TN) {
#endif
#if B_TRANS
            K_LOOP_HINT
            for (int k = 0; k < Kd; ++k) {
                VEC bv[NV];
                float bs[TN * NV];
                #pragma unroll
                for (int v = 0; v < NV; ++v)
                    #pragma unroll
                    for (int j = 0; j < TN; ++j) bs[v * TN + j] = B_AT(OFF(v) + j, k);
                #pragma unroll
                for (int v = 0; v < NV; ++v) bv[v] = VLOAD(v, bs);
                B_PROLOGUE(bv, k, NV);
                OUTER_PRODUCT(bv, A_AT_K, NV);
            }
#else
            // Row k of B and (packed) of A are pointers stepped once per k: indexing
            // them by k cost the loop an address computation per load, and registers
            // POCL then found on the stack.
#if B_PACKED
            const int b_step = TN * NV;
#else
            const int b_step = ldb;
#endif
            __global const float *brow = bp;
#if A_PACKED
            __global const float *arow = ap;
#endif
            // A last column panel that one vector covers (N - n0 <= TN) runs the loop
            // on that vector alone: the others would repeat it, and the panel took as
            // long as a whole one (SqueezeNet's last 1x1 layer, 169 = 5 x 32 + 9
            // columns: 0.75 -> 0.67 ms).
            if (NV > 1 && N - n0 <= TN) {
                K_STEPS(1);
            } else {
                K_STEPS(NV);
            }
#endif
        } else {
            for (int k = 0; k < Kd; ++k) {
                float bs[TN * NV];
                #pragma unroll
                for (int j = 0; j < TN * NV; ++j) bs[j] = (n0 + j < N) ? B_AT(j, k) : 0.0f;
                VEC bv[NV];
                #pragma unroll
                for (int v = 0; v < NV; ++v) bv[v] = VLOAD(v, bs);
                B_PROLOGUE(bv, k, NV);  // lanes past N read 0 and are not stored
                OUTER_PRODUCT(bv, A_AT_K, NV);
            }
        }
    }
    __global float *c = C + b1 * sc1 + b2 * sc2;
#if SHIFTED && COMPACT_STORE && HAS_BIAS != 2
    // Dense output planes (out_pitch == row_out): the tile's output pixels are one
    // contiguous run of L floats from d_first, its lanes minus the D = row_in - row_out
    // border lanes at each row end. Store that run as whole vectors (the last one moved
    // back to end the run, overlapping the one before it: same floats, same work-item),
    // each gathered from the tile's lanes by unaligned loads from a private copy of the
    // row, one per row end it crosses. The lane-by-lane stores below cost a third of a
    // layer with few input channels per tap (SqueezeNet's 16-64), whose vectors cross
    // row ends often (every one of them at 13x13).
    if (out_pitch == row_out && n0 + TN * NV <= N) {
        const int D = row_in - row_out;
        const int q0 = n0 / row_in, p0 = n0 - q0 * row_in;
        const int l_first = p0 < row_out ? 0 : row_in - p0;       // first pixel's lane
        const int p_first = p0 < row_out ? p0 : 0;
        const int d_first = (p0 < row_out ? q0 : q0 + 1) * row_out + p_first;
        const int n1 = n0 + TN * NV - 1, q1 = n1 / row_in, p1 = n1 - q1 * row_in;
        const int L = q1 * row_out + min(p1, row_out - 1) + 1 - d_first;  // pixels in the tile
        if (L >= TN && !(l_first == 0 && L == TN * NV)) {  // (all lanes one row's: below)
            const CAT(int, TN) lane = LANE_INDEX;
            #pragma unroll
            for (int i = 0; i < TM; ++i) {
                const int m = m0 + i;
                if (m >= M) break;
                float row[TN * NV];
                #pragma unroll
                for (int v = 0; v < NV; ++v) PRIVATE_STORE(TN, acc[i][v], row + v * TN);
                __global float *crow = c + m * ldc + out_base + d_first;
                VEC val[NV];
                #pragma unroll
                for (int w = 0; w < NV; ++w) {
                    if (w * TN >= L) break;
                    const int t0 = min(w * TN, L - TN);  // the window's first pixel
                    const int u0 = p_first + t0, ends = u0 / row_out;  // row ends before it
                    int s = l_first + t0 + D * ends;                  // its first lane
                    val[w] = PRIVATE_LOAD(TN, row + s);
                    for (int r = (ends + 1) * row_out - u0; r < TN; r += row_out) {
                        s += D;  // lanes from window lane r on are past one more row end
                        val[w] = select(val[w], PRIVATE_LOAD(TN, row + s),
                                        lane >= (CAT(int, TN))(r));
                    }
                    SCALE_AND_ROW_BIAS(val[w], m);
#if ACCUMULATE
                    val[w] += VLOAD(0, crow + t0);  // every window read before any store
#endif
                }
                #pragma unroll
                for (int w = 0; w < NV; ++w) {
                    if (w * TN >= L) break;
                    VSTORE(ACTIVATE_WIDTH(TN)(val[w], act_alpha, act_beta), 0,
                           crow + min(w * TN, L - TN));
                }
            }
            return;
        }
    }
    // Zero-bordered output planes (out_pitch > row_out), whose border columns between
    // rows must stay zero. A vector whose lanes are one row's own pixels is stored from
    // its register; any other (one crossing a row end, or moved back to end at N - 1)
    // through a private copy, as runs within rows: whole vectors, or shorter, in the
    // widest pieces that fit. The runs of each vector are found once per tile. Lane by
    // lane (below), with each lane's row computed in every row of the tile, the stores
    // took a 1x1 layer writing 56x56 planes (128 x 3136 x 128) a quarter of its time.
    if (out_pitch != row_out) {
        int first[NV], runs[NV];  // vector v's runs: run_at[first[v] .. first[v] + runs[v])
        int run_lane[TN * NV], run_at[TN * NV], run_len[TN * NV];
        int count = 0;
        #pragma unroll
        for (int v = 0; v < NV; ++v) {
            const int nv = n0 + OFF(v);  // the column of its lane 0
            first[v] = count;
            // its own lanes: from column n0 + v * TN (lanes before it the vector before
            // stores), up to column N - 1
            for (int j = max(v * TN - OFF(v), 0); j < TN && nv + j < N;) {
                const int n = nv + j, q = n / row_in, p = n - q * row_in;
                if (p >= row_out) {  // a shifted convolution's border columns: skipped
                    j += row_in - p;
                    continue;
                }
                const int len = min(min(TN - j, N - n), row_out - p);
                run_lane[count] = j;
                run_at[count] = out_base + q * out_pitch + p;
                run_len[count++] = len;
                j += len;
            }
            runs[v] = count - first[v];
        }
        #pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + i;
            if (m >= M) break;
            __global float *cm = c + m * ldc;
            #pragma unroll
            for (int v = 0; v < NV; ++v) {
                VEC val = acc[i][v];
                SCALE_AND_ROW_BIAS(val, m);
                if (runs[v] == 1 && run_len[first[v]] == TN) {  // one row's, in place
                    __global float *dst = cm + run_at[first[v]];
#if ACCUMULATE
                    val += GLOBAL_LOAD(TN, dst);
#endif
                    GLOBAL_STORE(TN, ACTIVATE_WIDTH(TN)(val, act_alpha, act_beta), dst);
                    continue;
                }
                float lanes[TN];
#if ACCUMULATE
                PRIVATE_STORE(TN, (VEC)(0.0f), lanes);  // lanes it does not store add 0
                for (int r = first[v]; r < first[v] + runs[v]; ++r)
                    copy_run_in(lanes + run_lane[r], cm + run_at[r], run_len[r]);
                val += PRIVATE_LOAD(TN, lanes);
#endif
                PRIVATE_STORE(TN, ACTIVATE_WIDTH(TN)(val, act_alpha, act_beta), lanes);
                for (int r = first[v]; r < first[v] + runs[v]; ++r)
                    copy_run_out(cm + run_at[r], lanes + run_lane[r], run_len[r]);
            }
        }
        return;
    }
#endif
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + i;
        if (m >= M) break;
        #pragma unroll
        for (int v = 0; v < NV; ++v) {
            const int own = n0 + v * TN;  // the first column this vector stores
            const int nv = n0 + OFF(v);   // the column of its first lane
            if (own >= N) continue;
            // every lane this vector's own column, all within N
            const int whole = nv == own && own + TN <= N;
            VEC val = acc[i][v];
            SCALE_AND_ROW_BIAS(val, m);
#if HAS_BIAS == 2
            {
                // columns past N read column N - 1 (their results are not stored)
                float cs[TN];
                #pragma unroll
                for (int j = 0; j < TN; ++j)
                    cs[j] = bias[b2 * sbias2 + m * sbm + min(nv + j, N - 1) * sbn];
                val += BIAS_TERM(VLOAD(0, cs));
            }
#endif
#if SHIFTED
            // lane 0's output pixel (q, p); a vector within one output row is stored
            // whole, others lane by lane (border columns dropped)
            const int q = nv / row_in, p = nv - q * row_in;
            __global float *crow = c + m * ldc + out_base + q * out_pitch;  // output row q
            if (whole && p + TN <= row_out) {
#if ACCUMULATE
                val += VLOAD(0, crow + p);
#endif
                VSTORE(ACTIVATE_WIDTH(TN)(val, act_alpha, act_beta), 0, crow + p);
            } else {
                int dst[TN];  // each lane's offset from crow, -1 where not stored
                int pj = p, rows = 0;  // lane j's column, and its row after q
                #pragma unroll
                for (int j = 0; j < TN; ++j) {
                    dst[j] = nv + j >= own && nv + j < N && pj < row_out
                                 ? rows * out_pitch + pj : -1;
                    rows += pj + 1 == row_in;
                    pj = pj + 1 == row_in ? 0 : pj + 1;
                }
#if ACCUMULATE
                float rs[TN];
                #pragma unroll
                for (int j = 0; j < TN; ++j) rs[j] = dst[j] >= 0 ? crow[dst[j]] : 0.0f;
                val += VLOAD(0, rs);
#endif
                float vs[TN];
                VSTORE(ACTIVATE_WIDTH(TN)(val, act_alpha, act_beta), 0, vs);
                #pragma unroll
                for (int j = 0; j < TN; ++j)
                    if (dst[j] >= 0) crow[dst[j]] = vs[j];
            }
#else
#if ACCUMULATE && !C_TRANS
            if (whole) {
                val += VLOAD(0, c + m * ldc + nv);  // C already holds a residual: add it
            } else
#endif
#if ACCUMULATE
            {
                // a partial or overlapping vector (or a transposed C): the lanes this
                // vector does not store read 0
                float rs[TN];
                #pragma unroll
                for (int j = 0; j < TN; ++j)
#if C_TRANS
                    rs[j] = nv + j >= own && nv + j < N ? c[(nv + j) * ldc + m] : 0.0f;
#else
                    rs[j] = nv + j >= own && nv + j < N ? c[m * ldc + nv + j] : 0.0f;
#endif
                val += VLOAD(0, rs);
            }
#endif
            val = ACTIVATE_WIDTH(TN)(val, act_alpha, act_beta);
#if C_TRANS
            float vs[TN];
            VSTORE(val, 0, vs);
            #pragma unroll
            for (int j = 0; j < TN; ++j)
                if (nv + j >= own && nv + j < N) c[(nv + j) * ldc + m] = vs[j];
#else
            if (whole) {
                VSTORE(val, 0, c + m * ldc + nv);
            } else {
                float vs[TN];
                VSTORE(val, 0, vs);
                #pragma unroll
                for (int j = 0; j < TN; ++j)
                    if (nv + j >= own && nv + j < N) c[m * ldc + nv + j] = vs[j];
            }
#endif
#endif  // SHIFTED
        }
    }
}
