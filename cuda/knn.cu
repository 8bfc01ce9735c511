/*
 * knn.cu — exact k-NN over a GPU-resident block of vectors: tiled
 * similarity fused with top-k selection, for the gpuivf index (issue 6).
 *
 * Design
 * ------
 * What "exact" means.  Every reported distance is the canonical distance of
 * knn.h (fp32, fused multiply-adds, a fixed summation order that a warp
 * computes naturally and a CPU loop reproduces bit for bit).  A query's
 * result is the k rows of smallest canonical distance, ties broken by lower
 * row id: what a CPU scan computing codevec_canonical_distance() for every
 * row and sorting by (distance, id) returns.  Keys are 64-bit: the distance
 * mapped to an order-preserving uint32 (NaN after +inf, -0 folded into +0)
 * in the high word, the row id in the low word, so one integer comparison
 * orders by (distance, id) and no two keys are equal.
 *
 * Phase 1, similarity + per-block top-k (knn_f32_kernel / knn_f16_kernel).
 * The grid is (query tiles) x (row blocks); query tiles vary fastest, so the
 * tiles of one row block run side by side and share its rows through L2.
 * A block holds QB queries in registers (each lane the chunks it needs),
 * streams its rows with coalesced 16-byte loads (a warp reads whole rows,
 * several rows in flight per lane), reduces each dot product across the
 * lanes, and offers (key) to a per-query candidate buffer in shared memory
 * when it beats the query's threshold.  Every round of RR rows the block
 * synchronises; a buffer that could overflow in the next round is sorted
 * (bitonic) and cut back to its best kc keys, which sets a new threshold.
 * With random order the threshold rises fast and few keys pass it, so the
 * sort runs a handful of times per block.  Each block writes its kc best
 * keys per query: nb*kc keys per query, never an n-long distance array.
 *
 * Phase 2, merge (topk_select_kernel): one block per query streams the
 * nb*kc candidates through the same threshold buffer and keeps kout.
 *
 * fp32 storage: phase 1 computes the canonical distance itself (the lane
 * layout is the canonical order), so phase 2's top k is the answer.
 *
 * fp16 storage: phase 1 reads half the bytes and computes an approximate
 * score (fp16 data, fp32 query, fp32 accumulation, any order); blocks keep
 * kc = kc2+1 keys, phase 2 keeps kout = kc2+1, and rerank_kernel computes
 * the canonical distance of the first kc2 from the fp32 copy, sorts them
 * and proves the answer: every row not re-ranked has approximate score >=
 * cut (the (kc2+1)-th key), and a bound on |approximate - true| plus a
 * bound on |canonical - true| (from the rounding unit of fp16 and fp32,
 * the dimension and the norms; see RerankPasses) shows its canonical
 * distance is strictly above the k-th re-ranked one.  A query that cannot
 * be proven (near-duplicates crowding the cut, a zero query for cosine)
 * is answered again by the fp32 path, so the result is exact either way.
 *
 * Autotuning (end of file): tile sizes (queries per tile), warps per block,
 * blocks per multiprocessor, lanes per row (fp16) and the storage
 * precision are measured on the present GPU for a dimension and cached per
 * GPU model.
 *
 * Error bounds follow Higham, "Accuracy and Stability of Numerical
 * Algorithms", ch. 3 (|fl(sum) - sum| <= gamma_n sum|terms|).
 */
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <pthread.h>

#include "knn.h"

#define KEY_NONE 0xffffffffffffffffULL
#define FULL_MASK 0xffffffffu

/* ------------------------------------------------------------------ */
/* error handling                                                      */
/* ------------------------------------------------------------------ */

static void
SetError(char *errbuf, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (errbuf && errlen > 0)
    {
        snprintf(errbuf, errlen, fmt, a, b);
        errbuf[errlen - 1] = '\0';
    }
}

/* Check a CUDA call; on failure write the message and return the status. */
#define CUDA_CHECK(call)                                                    \
    do {                                                                    \
        cudaError_t err_ = (call);                                          \
        if (err_ != cudaSuccess)                                            \
        {                                                                   \
            SetError(errbuf, errlen, "cuda error in %s: %s", #call,         \
                     cudaGetErrorString(err_));                             \
            return CODEVEC_CUDA_ERR_CUDA;                                   \
        }                                                                   \
    } while (0)

/* Check the last launch. */
#define LAUNCH_CHECK(what)                                                  \
    do {                                                                    \
        cudaError_t err_ = cudaGetLastError();                              \
        if (err_ != cudaSuccess)                                            \
        {                                                                   \
            SetError(errbuf, errlen, "cuda error launching %s: %s", what,   \
                     cudaGetErrorString(err_));                             \
            return CODEVEC_CUDA_ERR_CUDA;                                   \
        }                                                                   \
    } while (0)

static inline int NextPow2(int v) { int p = 1; while (p < v) p <<= 1; return p; }
static inline int MaxInt(int a, int b) { return a > b ? a : b; }
static inline int MinInt(int a, int b) { return a < b ? a : b; }
static inline int64_t MinInt64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ */
/* keys                                                                */
/* ------------------------------------------------------------------ */

/* Map a float to a uint32 with the same order; NaN last, -0 == +0. */
static __device__ __forceinline__ uint32_t
OrderedFromFloat(float f)
{
    uint32_t u = __float_as_uint(f);

    if (f != f)
        u = 0x7fc00000u;
    else if (f == 0.0f)
        u = 0u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Invert OrderedFromFloat. */
static __device__ __forceinline__ float
FloatFromOrdered(uint32_t o)
{
    uint32_t u = (o & 0x80000000u) ? (o ^ 0x80000000u) : ~o;

    return __uint_as_float(u);
}

static __device__ __forceinline__ uint64_t
MakeKey(float dist, uint32_t id)
{
    return ((uint64_t) OrderedFromFloat(dist) << 32) | id;
}

/* ------------------------------------------------------------------ */
/* top-k: block-wide threshold buffer                                  */
/* ------------------------------------------------------------------ */

static __device__ __forceinline__ int
NextPow2Dev(int v)
{
    int p = 2;

    while (p < v)
        p <<= 1;
    return p;
}

/* Sort buf[0..P) ascending (P a power of two) with the whole block. */
static __device__ void
BlockBitonicSort(uint64_t *buf, int P)
{
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1)
        {
            for (int i = threadIdx.x; i < P; i += blockDim.x)
            {
                int ixj = i ^ j;

                if (ixj > i)
                {
                    uint64_t a = buf[i], b = buf[ixj];
                    bool     asc = (i & k) == 0;

                    if ((a > b) == asc)
                    {
                        buf[i] = b;
                        buf[ixj] = a;
                    }
                }
            }
            __syncthreads();
        }
}

/*
 * Sort a query's buffer and keep its best kc keys; set the threshold to the
 * kc-th key once there are kc.  Called by the whole block after a barrier;
 * ends with one.
 */
static __device__ void
TopkMerge(uint64_t *buf, int *cnt, uint64_t *thr, int S, int kc)
{
    int c = *cnt;
    int P = NextPow2Dev(c);

    (void) S;
    for (int i = c + threadIdx.x; i < P; i += blockDim.x)
        buf[i] = KEY_NONE;
    __syncthreads();
    BlockBitonicSort(buf, P);
    if (threadIdx.x == 0)
    {
        *cnt = c < kc ? c : kc;
        *thr = c >= kc ? buf[kc - 1] : KEY_NONE;
    }
    __syncthreads();
}

/*
 * The same as TopkMerge by one warp alone (no block barrier), so that the
 * warps of a block merge different queries' buffers at the same time.
 */
static __device__ void
WarpMerge(uint64_t *buf, int *cnt, uint64_t *thr, int kc)
{
    const int lane = threadIdx.x & 31;
    int       c = *cnt;
    int       P = NextPow2Dev(c);

    for (int i = c + lane; i < P; i += 32)
        buf[i] = KEY_NONE;
    __syncwarp();
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1)
        {
            for (int i = lane; i < P; i += 32)
            {
                int ixj = i ^ j;

                if (ixj > i)
                {
                    uint64_t a = buf[i], b = buf[ixj];
                    bool     asc = (i & k) == 0;

                    if ((a > b) == asc)
                    {
                        buf[i] = b;
                        buf[ixj] = a;
                    }
                }
            }
            __syncwarp();
        }
    if (lane == 0)
    {
        *cnt = c < kc ? c : kc;
        *thr = c >= kc ? buf[kc - 1] : KEY_NONE;
    }
    __syncwarp();
}

/*
 * After a round of pushes (whole block): read the nqt queries' fill levels,
 * then merge the buffers that could overflow (more than S - RR keys) before
 * the next round.  Shared by the fp32 and fp16 scan kernels.
 */
static __device__ __forceinline__ void
TopkMergeFull(uint64_t *s_buf, int *s_cnt, uint64_t *s_thr, int nqt, int S, int RR, int kc)
{
    __syncthreads();
    unsigned need = 0;

    for (int qi = 0; qi < nqt; qi++)
        need |= (s_cnt[qi] > S - RR ? 1u : 0u) << qi;
    __syncthreads();
    for (int qi = 0; qi < nqt; qi++)
        if (need & (1u << qi))
            TopkMerge(s_buf + (size_t) qi * S, s_cnt + qi, s_thr + qi, S, kc);
}

/*
 * End of a block (whole block): merge each of its nqt queries' buffers and
 * write their best kc keys, KEY_NONE past the end, to the block's slot of
 * cand ([nq][nb][kc]: query q0 + qi, row block blockIdx.y).
 */
static __device__ __forceinline__ void
TopkWriteBlock(uint64_t *s_buf, int *s_cnt, uint64_t *s_thr, int nqt, int S, int kc,
               uint64_t *cand, int q0, int nb)
{
    __syncthreads();
    for (int qi = 0; qi < nqt; qi++)
    {
        uint64_t *buf = s_buf + (size_t) qi * S;
        uint64_t *out = cand + ((size_t) (q0 + qi) * nb + blockIdx.y) * kc;

        TopkMerge(buf, s_cnt + qi, s_thr + qi, S, kc);
        for (int i = threadIdx.x; i < kc; i += blockDim.x)
            out[i] = i < s_cnt[qi] ? buf[i] : KEY_NONE;
    }
}

/* Offer a key to a query's buffer (any thread, any time between merges). */
static __device__ __forceinline__ void
TopkPush(uint64_t key, uint64_t *buf, int *cnt, const uint64_t *thr)
{
    if (key < *thr)
    {
        int pos = atomicAdd(cnt, 1);

        buf[pos] = key;
    }
}

/* ------------------------------------------------------------------ */
/* similarity                                                          */
/* ------------------------------------------------------------------ */

typedef struct KnnArgs
{
    const float4 *x32;      /* n x dpad4 float4, zero padded */
    const uint4  *x16;      /* n x dpad8 uint4 (8 halves), zero padded */
    const float  *norm2;    /* n canonical squared norms */
    const float4 *q;        /* nq x dpad4 float4, zero padded */
    const float  *qn2;      /* nq canonical squared norms */
    uint64_t     *cand;     /* out: [nq][nb][kc] keys */
    int64_t       n;
    int64_t       rows_per_block;
    int           dpad4;    /* float4 chunks per row */
    int           dpad8;    /* 8-half chunks per row */
    int           nq;
    int           metric;
    int           kc;       /* keys kept per block and query */
    int           S;        /* buffer entries per query (power of two) */
    int           RR;       /* rows per round */
    int           nb;       /* row blocks (gridDim.y) */
    int           g;        /* fp16: lanes per row */
    const __half *qh;       /* tensor-core path: nq x (8*dpad8) scaled fp16 queries */
    const float  *qinv;     /* nq: 1 / query scale (a power of two) */
    const int64_t *blk;     /* NULL, or nb x 2 row ranges [rb, re): block y
                             * scans rows blk[2y] .. blk[2y+1] (IVF lists) */
    int           blk_pq;   /* blk has a table per query (one query a tile):
                             * block (x, y) scans blk[2(x nb + y)] .. */
} KnnArgs;

/* The rows block blockIdx.y scans: a slice of [0, n), or its table entry. */
static __device__ __forceinline__ void
BlockRows(const KnnArgs &a, int64_t *rb, int64_t *re)
{
    if (a.blk)
    {
        int64_t t = a.blk_pq ? (int64_t) blockIdx.x * a.nb + blockIdx.y : blockIdx.y;

        *rb = a.blk[2 * t];
        *re = a.blk[2 * t + 1];
    }
    else
    {
        *rb = (int64_t) blockIdx.y * a.rows_per_block;
        *re = min(a.n, *rb + a.rows_per_block);
    }
}

/* Finish a canonical distance from its sum (mirrors knn.h). */
static __device__ __forceinline__ float
CanonFinish(int metric, float sum, float qn2, float xn2)
{
    if (metric == CODEVEC_METRIC_L2)
        return sqrtf(sum);
    if (metric == CODEVEC_METRIC_IP)
        return -sum;
    {
        float denom = sqrtf(qn2 * xn2);
        float sim = sum / denom;

        if (sim > 1.0f)
            sim = 1.0f;
        else if (sim < -1.0f)
            sim = -1.0f;
        return 1.0f - sim;
    }
}

/* Add one float4 chunk to a canonical lane sum, element by element. */
static __device__ __forceinline__ float
CanonChunk(bool l2, float4 a, float4 b, float acc)
{
    if (l2)
    {
        float d;

        d = a.x - b.x; acc = fmaf(d, d, acc);
        d = a.y - b.y; acc = fmaf(d, d, acc);
        d = a.z - b.z; acc = fmaf(d, d, acc);
        d = a.w - b.w; acc = fmaf(d, d, acc);
    }
    else
    {
        acc = fmaf(a.x, b.x, acc);
        acc = fmaf(a.y, b.y, acc);
        acc = fmaf(a.z, b.z, acc);
        acc = fmaf(a.w, b.w, acc);
    }
    return acc;
}

/* Butterfly sum over the warp: every lane gets the canonical pairwise sum. */
static __device__ __forceinline__ float
WarpSum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v = v + __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

/*
 * Canonical distances of QB queries against a stream of fp32 rows, fused
 * with per-block top-k.  A warp owns U whole rows at a time; lane j holds
 * float4 chunks j, j+32, ... of each row and query (the canonical order).
 * Grid: x = query tile (QB queries), y = row block.
 */
template <int CH, int QB, int U>
static __global__ void __launch_bounds__(256)
knn_f32_kernel(KnnArgs a)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_thr = (uint64_t *) smem_raw;
    uint64_t *s_buf = s_thr + QB;
    int      *s_cnt = (int *) (s_buf + (size_t) QB * a.S);
    float    *s_qn2 = (float *) (s_cnt + QB);

    const int     lane = threadIdx.x & 31;
    const int     warp = threadIdx.x >> 5;
    const int     nwarps = blockDim.x >> 5;
    const int     q0 = blockIdx.x * QB;
    const int     nqt = min(QB, a.nq - q0);
    int64_t       rb, re;

    BlockRows(a, &rb, &re);
    const bool    l2 = a.metric == CODEVEC_METRIC_L2;

    if (threadIdx.x < QB)
    {
        s_cnt[threadIdx.x] = 0;
        s_thr[threadIdx.x] = KEY_NONE;
        s_qn2[threadIdx.x] = (int) threadIdx.x < nqt ? a.qn2[q0 + threadIdx.x] : 1.0f;
    }

    float4 qv[QB][CH];
#pragma unroll
    for (int qi = 0; qi < QB; qi++)
#pragma unroll
        for (int t = 0; t < CH; t++)
        {
            int c = lane + 32 * t;

            qv[qi][t] = (qi < nqt && c < a.dpad4)
                ? a.q[(size_t) (q0 + qi) * a.dpad4 + c]
                : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    __syncthreads();

    const int iters = a.RR / (nwarps * U);

    for (int64_t base = rb; base < re; base += a.RR)
    {
        for (int it = 0; it < iters; it++)
        {
            int64_t r = base + (int64_t) (it * nwarps + warp) * U;

            if (r >= re)
                break;                          /* warp-uniform */

            float4 xv[U][CH];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int t = 0; t < CH; t++)
                {
                    int c = lane + 32 * t;

                    xv[u][t] = (r + u < re && c < a.dpad4)
                        ? __ldg(&a.x32[(size_t) (r + u) * a.dpad4 + c])
                        : make_float4(0.f, 0.f, 0.f, 0.f);
                }

            float mine = 0.0f;
#pragma unroll
            for (int qi = 0; qi < QB; qi++)
#pragma unroll
                for (int u = 0; u < U; u++)
                {
                    float acc = 0.0f;
#pragma unroll
                    for (int t = 0; t < CH; t++)
                        acc = CanonChunk(l2, qv[qi][t], xv[u][t], acc);
                    acc = WarpSum(acc);
                    if (lane == qi * U + u)
                        mine = acc;
                }

            if (lane < QB * U)
            {
                int     qi = lane / U;
                int64_t row = r + lane % U;

                if (qi < nqt && row < re)
                {
                    float xn2 = a.metric == CODEVEC_METRIC_COSINE ? a.norm2[row] : 0.0f;
                    float d = CanonFinish(a.metric, mine, s_qn2[qi], xn2);

                    TopkPush(MakeKey(d, (uint32_t) row), s_buf + (size_t) qi * a.S,
                             s_cnt + qi, s_thr + qi);
                }
            }
        }
        TopkMergeFull(s_buf, s_cnt, s_thr, nqt, a.S, a.RR, a.kc);
    }
    TopkWriteBlock(s_buf, s_cnt, s_thr, nqt, a.S, a.kc, a.cand, q0, a.nb);
}

/*
 * Approximate scores of QB queries against fp16 rows, fused with per-block
 * top-k (the candidates for rerank_kernel).  g lanes share a row; lane
 * `sub` holds 8-half chunks sub, sub+g, ...; U row groups in flight.
 * Scores: L2 |q|^2 + |x|^2 - 2 q.x, IP -q.x, cosine 1 - q.x/|q||x|.
 */
template <int CHH, int QB, int U>
static __global__ void __launch_bounds__(256)
knn_f16_kernel(KnnArgs a)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_thr = (uint64_t *) smem_raw;
    uint64_t *s_buf = s_thr + QB;
    int      *s_cnt = (int *) (s_buf + (size_t) QB * a.S);
    float    *s_qn2 = (float *) (s_cnt + QB);

    const int     lane = threadIdx.x & 31;
    const int     warp = threadIdx.x >> 5;
    const int     nwarps = blockDim.x >> 5;
    const int     g = a.g;
    const int     slot = lane / g;
    const int     sub = lane % g;
    const int     RW = 32 / g;
    const int     q0 = blockIdx.x * QB;
    const int     nqt = min(QB, a.nq - q0);
    int64_t       rb, re;

    BlockRows(a, &rb, &re);
    const float  *qf = (const float *) a.q;
    const int     qstride = a.dpad4 * 4;

    if (threadIdx.x < QB)
    {
        s_cnt[threadIdx.x] = 0;
        s_thr[threadIdx.x] = KEY_NONE;
        s_qn2[threadIdx.x] = (int) threadIdx.x < nqt ? a.qn2[q0 + threadIdx.x] : 1.0f;
    }

    float qv[QB][CHH][8];
#pragma unroll
    for (int qi = 0; qi < QB; qi++)
#pragma unroll
        for (int t = 0; t < CHH; t++)
#pragma unroll
            for (int e = 0; e < 8; e++)
            {
                int c = sub + g * t;
                int i = 8 * c + e;

                qv[qi][t][e] = (qi < nqt && c < a.dpad8 && i < qstride)
                    ? qf[(size_t) (q0 + qi) * qstride + i] : 0.0f;
            }
    __syncthreads();

    const int rows_step = U * RW;
    const int iters = a.RR / (nwarps * rows_step);

    for (int64_t base = rb; base < re; base += a.RR)
    {
        for (int it = 0; it < iters; it++)
        {
            int64_t r = base + (int64_t) (it * nwarps + warp) * rows_step;

            if (r >= re)
                break;                          /* warp-uniform */

            uint4 xv[U][CHH];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int t = 0; t < CHH; t++)
                {
                    int64_t row = r + u * RW + slot;
                    int     c = sub + g * t;

                    xv[u][t] = (row < re && c < a.dpad8)
                        ? __ldg(&a.x16[(size_t) row * a.dpad8 + c])
                        : make_uint4(0u, 0u, 0u, 0u);
                }

            float mine = 0.0f;
#pragma unroll
            for (int qi = 0; qi < QB; qi++)
#pragma unroll
                for (int u = 0; u < U; u++)
                {
                    float acc = 0.0f;
#pragma unroll
                    for (int t = 0; t < CHH; t++)
                    {
                        const __half2 *h = (const __half2 *) &xv[u][t];
#pragma unroll
                        for (int e = 0; e < 4; e++)
                        {
                            float2 f = __half22float2(h[e]);

                            acc = fmaf(qv[qi][t][2 * e], f.x, acc);
                            acc = fmaf(qv[qi][t][2 * e + 1], f.y, acc);
                        }
                    }
                    for (int off = g >> 1; off > 0; off >>= 1)
                        acc += __shfl_xor_sync(FULL_MASK, acc, off);
                    if (sub == qi * U + u)
                        mine = acc;
                }

            if (sub < QB * U)
            {
                int     qi = sub / U;
                int64_t row = r + (sub % U) * RW + slot;

                if (qi < nqt && row < re)
                {
                    float s;

                    if (a.metric == CODEVEC_METRIC_L2)
                        s = (s_qn2[qi] + a.norm2[row]) - 2.0f * mine;
                    else if (a.metric == CODEVEC_METRIC_IP)
                        s = -mine;
                    else
                        s = 1.0f - mine / sqrtf(s_qn2[qi] * a.norm2[row]);
                    TopkPush(MakeKey(s, (uint32_t) row), s_buf + (size_t) qi * a.S,
                             s_cnt + qi, s_thr + qi);
                }
            }
        }
        TopkMergeFull(s_buf, s_cnt, s_thr, nqt, a.S, a.RR, a.kc);
    }
    TopkWriteBlock(s_buf, s_cnt, s_thr, nqt, a.S, a.kc, a.cand, q0, a.nb);
}

#define MMA_WARPS 4
#define MMA_ROWS 16                             /* rows per warp and step */

/* D += A B on the tensor cores: m16n8k16, fp16 inputs, fp32 accumulators. */
static __device__ __forceinline__ void
Mma16816(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
         unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/*
 * Approximate scores of 8*NT queries against fp16 rows on the tensor cores
 * (mma.sync m16n8k16, fp16 inputs, fp32 accumulation), fused with per-block
 * top-k.  A warp owns 16 rows a step.  A dot product does not care in which
 * order k runs, so each lane loads 16 contiguous bytes of its row (lane
 * g = lane/4 takes rows g and g+8, lane t = lane%4 takes k = 8t..8t+7 of
 * each 32-wide k block) and uses them as the A fragments of two k16 steps;
 * the queries' B fragments are read from shared memory with the same
 * permutation of k.  So the rows stream from device memory in full 16-byte,
 * fully used sectors, straight into registers.  Scores leave the
 * accumulators for the candidate buffers; the block synchronises once per
 * step of 64 rows to merge, each warp merging its share of the queries.
 */
template <int NT>
static __global__ void __launch_bounds__(MMA_WARPS * 32, 4)
knn_f16_mma_kernel(KnnArgs a)
{
    constexpr int NQT = 8 * NT;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int CPR = a.dpad8;                    /* 16-byte chunks per stored row */
    const int KB = (CPR + 3) / 4;               /* 32-wide k blocks */
    const int LDQ = KB * 32 + 8;                /* halves per shared query row, padded */
    __half   *sQ = (__half *) smem_raw;
    uint64_t *s_thr = (uint64_t *) (sQ + (size_t) NQT * LDQ);
    uint64_t *s_need = s_thr + NQT;
    uint64_t *s_buf = s_need + 1;
    int      *s_cnt = (int *) (s_buf + (size_t) NQT * a.S);
    float    *s_qf = (float *) (s_cnt + NQT);   /* |q|^2 (L2) or 1/|q| (cosine) */
    float    *s_qinv = s_qf + NQT;

    const int     lane = threadIdx.x & 31;
    const int     warp = threadIdx.x >> 5;
    const int     g = lane >> 2;
    const int     t4 = lane & 3;
    const int     q0 = blockIdx.x * NQT;
    const int     nqt = min(NQT, a.nq - q0);
    int64_t       rb, re;

    BlockRows(a, &rb, &re);
    const int     RR = MMA_WARPS * MMA_ROWS;
    const int64_t steps = re > rb ? (re - rb + RR - 1) / RR : 0;

    for (int i = threadIdx.x; i < NQT * KB * 4; i += blockDim.x)
    {
        int  q = i / (KB * 4), c = i % (KB * 4);
        uint4 v = q < nqt && c < CPR ? ((const uint4 *) a.qh)[(size_t) (q0 + q) * CPR + c]
                                     : make_uint4(0u, 0u, 0u, 0u);

        *(uint4 *) (sQ + (size_t) q * LDQ + 8 * c) = v;
    }
    for (int i = threadIdx.x; i < NQT; i += blockDim.x)
    {
        float qn2 = i < nqt ? a.qn2[q0 + i] : 1.0f;

        s_cnt[i] = 0;
        s_thr[i] = KEY_NONE;
        s_qf[i] = a.metric == CODEVEC_METRIC_COSINE ? 1.0f / sqrtf(qn2) : qn2;
        s_qinv[i] = i < nqt ? a.qinv[q0 + i] : 1.0f;
    }
    __syncthreads();

    for (int64_t t = 0; t < steps; t++)
    {
        int64_t r = rb + t * RR + warp * MMA_ROWS;

        if (r < re)
        {
            /* the copy has 16 zero rows past n: a partial tile stays in bounds */
            const uint4 *xa = a.x16 + (size_t) (r + g) * CPR;
            const uint4 *xb = xa + (size_t) 8 * CPR;
            float        acc[NT][4];
            float        rxa = 0.0f, rxb = 0.0f;

            if (a.metric != CODEVEC_METRIC_IP)
            {
                /* the rows' norms, early: their latency hides behind the products */
                rxa = r + g < re ? a.norm2[r + g] : 0.0f;
                rxb = r + g + 8 < re ? a.norm2[r + g + 8] : 0.0f;
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll 4
            for (int kb = 0; kb < KB; kb++)
            {
                int   c = kb * 4 + t4;
                uint4 va = c < CPR ? __ldg(xa + c) : make_uint4(0u, 0u, 0u, 0u);
                uint4 vb = c < CPR ? __ldg(xb + c) : make_uint4(0u, 0u, 0u, 0u);

#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                {
                    uint4 qv = *(const uint4 *) (sQ + (size_t) (nt * 8 + g) * LDQ + kb * 32 + 8 * t4);

                    Mma16816(acc[nt], va.x, vb.x, va.y, vb.y, qv.x, qv.y);
                    Mma16816(acc[nt], va.z, vb.z, va.w, vb.w, qv.z, qv.w);
                }
            }
            if (a.metric == CODEVEC_METRIC_COSINE)
            {
                rxa = 1.0f / sqrtf(rxa);
                rxb = 1.0f / sqrtf(rxb);
            }
            /* accumulator (nt, e): row g + 8 (e / 2), query nt*8 + 2 t4 + e % 2 */
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    int     qc = nt * 8 + 2 * t4 + (e & 1);
                    int64_t row = r + g + 8 * (e >> 1);
                    float   rx = e < 2 ? rxa : rxb;
                    float   dot = acc[nt][e] * s_qinv[qc];
                    float   sc;

                    /* approximate scores; their rounding is inside RerankPasses' slack */
                    if (a.metric == CODEVEC_METRIC_L2)
                        sc = (s_qf[qc] + rx) - 2.0f * dot;
                    else if (a.metric == CODEVEC_METRIC_IP)
                        sc = -dot;
                    else
                        sc = 1.0f - dot * (s_qf[qc] * rx);

                    uint64_t key = MakeKey(sc, (uint32_t) row);

                    if (qc < nqt && row < re && key < s_thr[qc])
                    {
                        int pos = atomicAdd(s_cnt + qc, 1);

                        s_buf[(size_t) qc * a.S + pos] = key;
                    }
                }
        }

        /* merge the buffers that could overflow in the next step */
        __syncthreads();
        if (warp == 0)
        {
            uint64_t need = 0;

            for (int qc = lane; qc < NQT; qc += 32)
                if (qc < nqt && s_cnt[qc] > a.S - RR)
                    need |= 1ULL << qc;
            for (int off = 16; off > 0; off >>= 1)
                need |= __shfl_xor_sync(FULL_MASK, need, off);
            if (lane == 0)
                *s_need = need;
        }
        __syncthreads();
        uint64_t need = *s_need;

        /* each warp merges its share of the queries, all warps at once */
        if (need)
        {
            for (int qc = warp; qc < nqt; qc += MMA_WARPS)
                if (need & (1ULL << qc))
                    WarpMerge(s_buf + (size_t) qc * a.S, s_cnt + qc, s_thr + qc, a.kc);
            __syncthreads();
        }
    }

    __syncthreads();
    for (int qc = warp; qc < nqt; qc += MMA_WARPS)
    {
        uint64_t *buf = s_buf + (size_t) qc * a.S;
        uint64_t *out = a.cand + ((size_t) (q0 + qc) * a.nb + blockIdx.y) * a.kc;

        WarpMerge(buf, s_cnt + qc, s_thr + qc, a.kc);
        for (int i = lane; i < a.kc; i += 32)
            out[i] = i < s_cnt[qc] ? buf[i] : KEY_NONE;
    }
}

/* Shared memory of knn_f16_mma_kernel for nqt queries and buffers of S. */
static size_t
MmaSmem(int nqt, int dpad8, int S)
{
    size_t ldq = (size_t) ((dpad8 + 3) / 4) * 32 + 8;

    return (size_t) nqt * ldq * 2 + (size_t) nqt * 8 + 8 +
        (size_t) nqt * S * 8 + (size_t) nqt * 12 + 64;
}

/* ------------------------------------------------------------------ */
/* top-k: merge of the per-block candidates                            */
/* ------------------------------------------------------------------ */

/*
 * One block per query: stream its M candidate keys through a threshold
 * buffer of S entries and keep the best kout.  Writes keys (out_keys) or,
 * when out_keys is NULL, decoded distances and ids (id -1, +inf for none).
 */
static __global__ void
topk_select_kernel(const uint64_t *in, int64_t M, int kout, int S,
                   uint64_t *out_keys, float *out_dist, int64_t *out_ids)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_thr = (uint64_t *) smem_raw;
    uint64_t *s_buf = s_thr + 1;
    int      *s_cnt = (int *) (s_buf + S);
    const int q = blockIdx.x;
    const int RR = blockDim.x;

    if (threadIdx.x == 0)
    {
        *s_cnt = 0;
        *s_thr = KEY_NONE;
    }
    __syncthreads();
    for (int64_t base = 0; base < M; base += RR)
    {
        int64_t i = base + threadIdx.x;

        if (i < M)
            TopkPush(in[(size_t) q * M + i], s_buf, s_cnt, s_thr);
        __syncthreads();
        bool need = *s_cnt > S - RR;

        __syncthreads();                /* everyone has read before anyone pushes */
        if (need)
            TopkMerge(s_buf, s_cnt, s_thr, S, kout);
    }
    TopkMerge(s_buf, s_cnt, s_thr, S, kout);
    for (int i = threadIdx.x; i < kout; i += blockDim.x)
    {
        uint64_t key = i < *s_cnt ? s_buf[i] : KEY_NONE;

        if (out_keys)
            out_keys[(size_t) q * kout + i] = key;
        else if (key == KEY_NONE)
        {
            out_dist[(size_t) q * kout + i] = INFINITY;
            out_ids[(size_t) q * kout + i] = -1;
        }
        else
        {
            out_dist[(size_t) q * kout + i] = FloatFromOrdered((uint32_t) (key >> 32));
            out_ids[(size_t) q * kout + i] = (int64_t) (uint32_t) key;
        }
    }
}

/* ------------------------------------------------------------------ */
/* re-rank of fp16 candidates and the proof of exactness               */
/* ------------------------------------------------------------------ */

typedef struct RerankArgs
{
    const float4   *x32;
    const float    *norm2;
    const float4   *q;
    const float    *qn2;
    const uint64_t *cand;       /* [nq][kc2+1] approximate keys, sorted */
    float          *out_dist;   /* [nq][k] */
    int64_t        *out_ids;
    int            *ok;         /* [nq] 1 = proven exact */
    int             dpad4;
    int             dim;
    int             metric;
    int             k;
    int             kc2;
    int             P;          /* power of two >= kc2 */
    float           maxnorm;    /* largest row norm */
    float           minnorm;    /* smallest non-zero row norm */
    int             q16;        /* scores came from fp16 queries (tensor cores) */
} RerankArgs;

/*
 * Decide whether the re-ranked top k is provably the exact one.  cut is the
 * smallest approximate score of any row not re-ranked, T the k-th
 * canonical distance.  u = 2^-24 (fp32), fp16 rounding 2^-11 relative or
 * 2^-25 absolute (subnormals); |fl(dot) - dot| <= (d+8) u sum|q_i x_i|.
 * Norms are inflated by 1e-4 to cover their own rounding.
 */
static __device__ bool
RerankPasses(const RerankArgs &a, uint64_t cut, uint64_t kth, float qn2)
{
    if (cut == KEY_NONE)
        return true;                    /* every row was re-ranked */
    if (kth == KEY_NONE)
        return false;

    float  cutf = FloatFromOrdered((uint32_t) (cut >> 32));
    float  T = FloatFromOrdered((uint32_t) (kth >> 32));

    if (isnan(T) || isnan(cutf) || isinf(cutf) || !(qn2 > 0.0f))
        return false;

    double u = ldexp(1.0, -24);
    double d = a.dim;
    double qn = sqrt((double) qn2) * 1.0001;
    double X = (double) a.maxnorm * 1.0001;
    /* tensor cores: the query is rounded to fp16 too, and accumulation may truncate */
    double q16 = a.q16 ? 1.0 : 0.0;
    double acc = a.q16 ? 2.0 : 1.0;
    double epsdot = (ldexp(1.0, -11) * (1.0 + q16 * 1.001) + acc * (d + 8.0) * u) * qn * X
        + ldexp(1.0, -25) * sqrt(d) * qn + q16 * ldexp(1.0, -37) * sqrt(d) * qn * X;

    if (a.metric == CODEVEC_METRIC_L2)
    {
        double lb = (double) cutf - 2.0 * epsdot - (d + 8.0) * u * (qn + X) * (qn + X);

        lb *= 1.0 - (d + 4.0) * u;
        return lb > 0.0 && sqrt(lb) >= (double) nextafterf(T, INFINITY);
    }
    if (a.metric == CODEVEC_METRIC_IP)
        return (double) cutf - epsdot - (d + 4.0) * u * qn * X > (double) T;
    if (!(a.minnorm > 0.0f))
        return false;
    {
        double xmin = (double) a.minnorm / 1.0001;
        double eps = ldexp(1.0, -11) * (1.0 + q16) * 1.01 + ldexp(1.0, -25) * sqrt(d) / xmin
            + q16 * ldexp(1.0, -37) * sqrt(d) + ((2.0 + 2.0 * acc) * d + 40.0) * u;

        return (double) cutf - eps > (double) T;
    }
}

/*
 * One block per query: canonical distances of the first kc2 candidates
 * from the fp32 copy (a warp per candidate, the canonical lane order),
 * sorted by (distance, id); write the top k and whether it is proven.
 */
static __global__ void
rerank_kernel(RerankArgs a)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_keys = (uint64_t *) smem_raw;
    const int q = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const uint64_t *cand = a.cand + (size_t) q * (a.kc2 + 1);
    const bool l2 = a.metric == CODEVEC_METRIC_L2;
    const float qn2 = a.qn2[q];

    for (int i = warp; i < a.P; i += nwarps)
    {
        uint64_t key = i < a.kc2 ? cand[i] : KEY_NONE;

        if (key == KEY_NONE)
        {
            if (lane == 0)
                s_keys[i] = KEY_NONE;
            continue;
        }

        uint32_t row = (uint32_t) key;
        float    acc = 0.0f;

        for (int c = lane; c < a.dpad4; c += 32)
            acc = CanonChunk(l2, a.q[(size_t) q * a.dpad4 + c],
                             a.x32[(size_t) row * a.dpad4 + c], acc);
        acc = WarpSum(acc);
        if (lane == 0)
        {
            float xn2 = a.metric == CODEVEC_METRIC_COSINE ? a.norm2[row] : 0.0f;

            s_keys[i] = MakeKey(CanonFinish(a.metric, acc, qn2, xn2), row);
        }
    }
    __syncthreads();
    BlockBitonicSort(s_keys, a.P);
    for (int i = threadIdx.x; i < a.k; i += blockDim.x)
    {
        uint64_t key = i < a.P ? s_keys[i] : KEY_NONE;

        if (key == KEY_NONE)
        {
            a.out_dist[(size_t) q * a.k + i] = INFINITY;
            a.out_ids[(size_t) q * a.k + i] = -1;
        }
        else
        {
            a.out_dist[(size_t) q * a.k + i] = FloatFromOrdered((uint32_t) (key >> 32));
            a.out_ids[(size_t) q * a.k + i] = (int64_t) (uint32_t) key;
        }
    }
    if (threadIdx.x == 0)
        a.ok[q] = RerankPasses(a, cand[a.kc2], a.k - 1 < a.P ? s_keys[a.k - 1] : KEY_NONE, qn2);
}

/* ------------------------------------------------------------------ */
/* preparation: queries and uploaded rows                              */
/* ------------------------------------------------------------------ */

/* One warp per query: pad to dpad4 float4 and take the canonical |q|^2. */
static __global__ void
query_prep_kernel(const float *src, int dim, int dpad4, float4 *dst, float *qn2,
                  int dpad8, __half *qh, float *qinv)
{
    const int q = blockIdx.x;
    const int lane = threadIdx.x;
    float    *d = (float *) (dst + (size_t) q * dpad4);
    float     acc = 0.0f;
    float     mx = 0.0f;

    for (int i = lane; i < dpad4 * 4; i += 32)
    {
        d[i] = i < dim ? src[(size_t) q * dim + i] : 0.0f;
        mx = fmaxf(mx, fabsf(d[i]));
    }
    for (int off = 16; off > 0; off >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, off));

    /* fp16 copy scaled by 2^s so that max |q_i| lands in [2^14, 2^15) */
    int e = 0;

    if (mx > 0.0f)
        frexpf(mx, &e);                         /* mx = f * 2^e, f in [0.5, 1) */
    int s = mx > 0.0f ? 15 - e : 0;

    for (int i = lane; i < dpad8 * 8; i += 32)
        qh[(size_t) q * dpad8 * 8 + i] = __float2half_rn(i < dim ? ldexpf(src[(size_t) q * dim + i], s) : 0.0f);
    if (lane == 0)
        qinv[q] = ldexpf(1.0f, -s);
    __syncwarp();
    for (int c = lane; c < dpad4; c += 32)
    {
        float4 v = dst[(size_t) q * dpad4 + c];

        acc = CanonChunk(false, v, v, acc);
    }
    acc = WarpSum(acc);
    if (lane == 0)
        qn2[q] = acc;
}

/*
 * One warp per uploaded row: canonical |x|^2, the fp16 copy (when x16 is
 * set) and the index-wide statistics (max |x_i|, max and min non-zero
 * |x|^2, as float bits: non-negative floats order as unsigned ints).
 */
static __global__ void
upload_finish_kernel(const float4 *x32, uint4 *x16, float *norm2, int64_t first,
                     int64_t count, int dpad4, int dpad8, unsigned int *stats)
{
    int64_t row = first + ((int64_t) blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int     lane = threadIdx.x & 31;
    float   acc = 0.0f;
    float   mx = 0.0f;

    if (row >= first + count)
        return;                                 /* whole warps leave */
    for (int c = lane; c < dpad4; c += 32)
    {
        float4 v = x32[(size_t) row * dpad4 + c];

        acc = CanonChunk(false, v, v, acc);
        mx = fmaxf(mx, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
    }
    acc = WarpSum(acc);
    for (int off = 16; off > 0; off >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, off));
    if (x16)
    {
        const float *xf = (const float *) (x32 + (size_t) row * dpad4);

        for (int c = lane; c < dpad8; c += 32)
        {
            __half2 h[4];

            for (int e = 0; e < 4; e++)
            {
                int   i = 8 * c + 2 * e;
                float lo = i < dpad4 * 4 ? xf[i] : 0.0f;
                float hi = i + 1 < dpad4 * 4 ? xf[i + 1] : 0.0f;

                h[e] = __floats2half2_rn(lo, hi);
            }
            x16[(size_t) row * dpad8 + c] = *(uint4 *) h;
        }
    }
    if (lane == 0)
    {
        norm2[row] = acc;
        atomicMax(&stats[0], __float_as_uint(mx));
        atomicMax(&stats[1], __float_as_uint(acc));
        if (acc > 0.0f)
            atomicMin(&stats[2], __float_as_uint(acc));
    }
}

/* Fill a buffer of floats with reproducible pseudo-random values in [-1, 1). */
static __global__ void
fill_random_kernel(float *x, int64_t count, uint64_t seed)
{
    int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;

    for (; i < count; i += (int64_t) gridDim.x * blockDim.x)
    {
        uint64_t z = seed + (uint64_t) i * 0x9E3779B97F4A7C15ULL;

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        x[i] = (float) ((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

/* ------------------------------------------------------------------ */
/* launchers                                                           */
/* ------------------------------------------------------------------ */

/* A kernel configuration: what the autotuner chooses among. */
typedef struct KnnCfg
{
    int qb;         /* queries per tile */
    int warps;      /* warps per block */
    int bps;        /* blocks per multiprocessor aimed at */
    int g;          /* fp16 only: lanes per row (8, 16, 32) */
} KnnCfg;

#define PATH_F32 0
#define PATH_F16 1
#define NBUCKETS 4
#define SMEM_CAP (100 * 1024)

static const int kBucketNq[NBUCKETS] = {1, 4, 16, 64};

static int
NqBucket(int nq)
{
    return nq <= 1 ? 0 : nq <= 4 ? 1 : nq <= 16 ? 2 : 3;
}

typedef void (*KnnKernelFn)(KnnArgs);

/* Rows in flight per warp for a chunk count (loads in flight ~ 4-8 x 16 B). */
static int
F32Unroll(int ch)
{
    return ch <= 1 ? 8 : ch <= 3 ? 4 : ch <= 6 ? 2 : 1;
}

static int
F16Unroll(int chh)
{
    return chh <= 1 ? 8 : chh <= 4 ? 4 : 2;
}

#define F32_CASE(CH, QB) \
    if (ch == CH && qb == QB) return knn_f32_kernel<CH, QB, (CH <= 1 ? 8 : CH <= 3 ? 4 : CH <= 6 ? 2 : 1)>;
#define F32_QBS(CH) F32_CASE(CH, 1) F32_CASE(CH, 2) F32_CASE(CH, 4) F32_CASE(CH, 8)

/* The fp32 kernel instance for ch float4 chunks per lane and qb queries. */
static KnnKernelFn
F32Kernel(int ch, int qb)
{
    if (qb * ch > 32 || qb * F32Unroll(ch) > 32)
        return NULL;                            /* too many registers */
    F32_QBS(1) F32_QBS(2) F32_QBS(3) F32_QBS(4)
    F32_CASE(6, 1) F32_CASE(6, 2) F32_CASE(6, 4)
    F32_CASE(8, 1) F32_CASE(8, 2) F32_CASE(8, 4)
    F32_CASE(12, 1) F32_CASE(12, 2)
    F32_CASE(16, 1) F32_CASE(16, 2)
    return NULL;
}

/* Round a chunk count up to an instantiated one. */
static int
F32Chunks(int dpad4)
{
    static const int opts[] = {1, 2, 3, 4, 6, 8, 12, 16};
    int need = (dpad4 + 31) / 32;

    for (int i = 0; i < 8; i++)
        if (opts[i] >= need)
            return opts[i];
    return -1;
}

#define F16_CASE(CHH, QB) \
    if (chh == CHH && qb == QB) return knn_f16_kernel<CHH, QB, (CHH <= 1 ? 8 : CHH <= 4 ? 4 : 2)>;
#define F16_QBS(CHH) F16_CASE(CHH, 1) F16_CASE(CHH, 2) F16_CASE(CHH, 4)

/* The fp16 kernel instance for chh chunks per lane and qb queries. */
static KnnKernelFn
F16Kernel(int chh, int qb)
{
    if (qb * chh > 16)
        return NULL;
    F16_QBS(1) F16_QBS(2) F16_QBS(3) F16_QBS(4)
    F16_CASE(6, 1) F16_CASE(6, 2)
    F16_CASE(8, 1) F16_CASE(8, 2)
    return NULL;
}

static int
F16Chunks(int dpad8, int g)
{
    static const int opts[] = {1, 2, 3, 4, 6, 8};
    int need = (dpad8 + g - 1) / g;

    for (int i = 0; i < 6; i++)
        if (opts[i] >= need)
            return opts[i];
    return -1;
}

/* ------------------------------------------------------------------ */
/* the index                                                           */
/* ------------------------------------------------------------------ */

typedef struct TuneEntry
{
    char   gpu[256];
    int    dim;
    KnnCfg cfg[2][NBUCKETS];
    double us[2][NBUCKETS];     /* measured time of the choice */
    int    prec;                /* chosen storage precision */
} TuneEntry;

struct CodevecCudaIndexData
{
    int64_t       n;
    int           dim;
    int           dpad4;
    int           dpad8;
    int           precision;    /* as stored: FP32 or FP16 */
    int           fp16_ok;      /* fp16 copy in range: scan it */
    int           device;
    int           sms;
    int           smem_optin;
    float4       *x32;
    uint4        *x16;
    float        *norm2;
    unsigned int *stats;
    float         maxabs;
    float         maxnorm;
    float         minnorm;
    KnnCfg        cfg[2][NBUCKETS];
    int           have_cfg;
    unsigned char *ws;          /* per-call workspace */
    size_t        ws_bytes;
    int          *h_ok;         /* pinned, per-query proof flags */
    int           h_ok_len;
    int64_t      *g_ids;        /* gather scratch: CODEVEC_CUDA_MAX_K ids */
    float        *g_out;        /* and their rows, fp32 */
};

/* Defaults until measured (chosen from the H100 run, see KERNELS.md). */
static void
DefaultCfg(KnnCfg cfg[2][NBUCKETS])
{
    for (int b = 0; b < NBUCKETS; b++)
    {
        cfg[PATH_F32][b].qb = kBucketNq[b] >= 8 ? 8 : kBucketNq[b];
        cfg[PATH_F32][b].warps = 8;
        cfg[PATH_F32][b].bps = 2;
        cfg[PATH_F32][b].g = 32;
        cfg[PATH_F16][b].qb = b == 0 ? 1 : 64;
        cfg[PATH_F16][b].warps = b == 0 ? 8 : 4;
        cfg[PATH_F16][b].bps = 4;
        cfg[PATH_F16][b].g = b == 0 ? 16 : 0;        /* tensor cores for batches */
    }
}

/* Grow the workspace to at least bytes. */
static int
EnsureWorkspace(CodevecCudaIndex idx, size_t bytes, char *errbuf, size_t errlen)
{
    if (idx->ws_bytes >= bytes)
        return CODEVEC_CUDA_OK;
    if (idx->ws)
        CUDA_CHECK(cudaFree(idx->ws));
    idx->ws = NULL;
    idx->ws_bytes = 0;
    bytes = bytes + bytes / 4 + 4096;
    if (cudaMalloc((void **) &idx->ws, bytes) != cudaSuccess)
    {
        cudaGetLastError();
        SetError(errbuf, errlen, "out of GPU memory for a k-NN workspace of %s bytes%s",
                 "many", "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    idx->ws_bytes = bytes;
    return CODEVEC_CUDA_OK;
}

static inline size_t AlignUp(size_t v) { return (v + 255) & ~(size_t) 255; }

/* Plan of one phase-1 launch. */
typedef struct Plan
{
    KnnKernelFn fn;
    dim3        grid;
    int         threads;
    size_t      smem;
    KnnArgs     args;
} Plan;

/*
 * Build the phase-1 launch for a path and configuration: the query tile
 * shrinks until the candidate buffers fit SMEM_CAP; the row blocks fill
 * one wave of the measured resident blocks.  Returns 0 if unsupported.
 */
static int
MakePlan(CodevecCudaIndex idx, int path, KnnCfg cfg, int nq, int kc, Plan *p)
{
    int qb = MinInt(cfg.qb, NextPow2(nq));
    int threads = cfg.warps * 32;

    *p = Plan();
    if (path == PATH_F16 && cfg.g == 0)
    {
        int nqt = MaxInt(16, MinInt(MinInt(cfg.qb, 64), NextPow2(nq)));

        for (; nqt >= 16; nqt >>= 1)
        {
            int    RR = MMA_WARPS * MMA_ROWS;
            int    S0 = 2 * NextPow2(MaxInt(kc, RR));
            int    S = MaxInt(S0, 512);         /* roomy buffers: few merges */
            size_t smem;
            int    occ = 0;

            while (S > S0 && MmaSmem(nqt, idx->dpad8, S) > (size_t) idx->smem_optin / 3)
                S >>= 1;
            smem = MmaSmem(nqt, idx->dpad8, S);

            p->fn = nqt == 64 ? knn_f16_mma_kernel<8> : nqt == 32 ? knn_f16_mma_kernel<4>
                                                                  : knn_f16_mma_kernel<2>;
            if (smem > (size_t) idx->smem_optin ||
                cudaFuncSetAttribute(p->fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int) smem) != cudaSuccess ||
                cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, p->fn, MMA_WARPS * 32,
                                                              smem) != cudaSuccess || occ < 1)
            {
                cudaGetLastError();
                continue;
            }

            int     tiles = (nq + nqt - 1) / nqt;
            int64_t nb = MaxInt(1, idx->sms * MinInt(cfg.bps, occ) / tiles);
            int64_t maxnb = (idx->n + RR - 1) / RR;

            if (nb > maxnb)
                nb = MaxInt(1, (int) maxnb);
            p->threads = MMA_WARPS * 32;
            p->smem = smem;
            p->grid = dim3(tiles, (unsigned) nb, 1);
            p->args.n = idx->n;
            p->args.rows_per_block = (idx->n + nb - 1) / nb;
            p->args.dpad4 = idx->dpad4;
            p->args.dpad8 = idx->dpad8;
            p->args.nq = nq;
            p->args.kc = kc;
            p->args.S = S;
            p->args.RR = RR;
            p->args.nb = (int) nb;
            p->args.g = 0;
            p->args.x32 = idx->x32;
            p->args.x16 = idx->x16;
            p->args.norm2 = idx->norm2;
            return 1;
        }
        return 0;
    }
    for (; qb >= 1; qb >>= 1)
    {
        int U, rows_step, iters, RR, S;
        size_t smem;

        if (path == PATH_F32)
        {
            int ch = F32Chunks(idx->dpad4);

            if (ch < 0)
                return 0;
            p->fn = F32Kernel(ch, qb);
            U = F32Unroll(ch);
            rows_step = U;
        }
        else
        {
            int chh = F16Chunks(idx->dpad8, cfg.g);

            if (chh < 0)
                return 0;
            U = F16Unroll(chh);
            if (qb * U > cfg.g)
                continue;
            p->fn = F16Kernel(chh, qb);
            rows_step = U * (32 / cfg.g);
        }
        if (!p->fn)
            continue;
        iters = MaxInt(1, 256 / (cfg.warps * rows_step));
        RR = iters * cfg.warps * rows_step;
        S = 2 * NextPow2(MaxInt(kc, RR));
        smem = (size_t) qb * 8 + (size_t) qb * S * 8 + (size_t) qb * 8 + 16;
        if (smem > SMEM_CAP)
            continue;

        int occ = 0;

        if (cudaFuncSetAttribute(p->fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int) smem) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, p->fn, threads, smem) != cudaSuccess ||
            occ < 1)
        {
            cudaGetLastError();
            continue;
        }

        int tiles = (nq + qb - 1) / qb;
        int target = idx->sms * MinInt(cfg.bps, occ);
        int64_t nb = MaxInt(1, target / tiles);
        int64_t maxnb = (idx->n + RR - 1) / RR;

        if (nb > maxnb)
            nb = MaxInt(1, (int) maxnb);
        p->threads = threads;
        p->smem = smem;
        p->grid = dim3(tiles, (unsigned) nb, 1);
        p->args.n = idx->n;
        p->args.rows_per_block = (idx->n + nb - 1) / nb;
        p->args.dpad4 = idx->dpad4;
        p->args.dpad8 = idx->dpad8;
        p->args.nq = nq;
        p->args.kc = kc;
        p->args.S = S;
        p->args.RR = RR;
        p->args.nb = (int) nb;
        p->args.g = cfg.g;
        p->args.x32 = idx->x32;
        p->args.x16 = idx->x16;
        p->args.norm2 = idx->norm2;
        return 1;
    }
    return 0;
}

/*
 * Row ranges a k-NN scans instead of all rows (IVF: the probed lists):
 * ranges[2i] is a first row, ranges[2i+1] a count. qranges NULL: every
 * query scans all nranges ranges; else query q scans its own qranges[q]
 * ranges, which follow those of the queries before it (nranges = their
 * sum). nbmax bounds the blocks per query (the workspace's candidate
 * room); d_blk is device room for the block table.
 */
typedef struct KnnRanges
{
    const int64_t *ranges;
    int            nranges;
    const int     *qranges;
    int            nq;
    int            nbmax;
    int64_t       *d_blk;
} KnnRanges;

/*
 * Replace a plan's uniform row blocks by blocks over the ranges: each
 * range is cut into pieces of at most rpb rows, rpb chosen so the pieces
 * number about the plan's blocks (one wave) and never more than nbmax per
 * query. Per-query ranges give every query the same number of blocks
 * (the most any needs; the rest scan nothing) in a table indexed by
 * (query, block): the plan must have one query per tile (qb = 1).
 */
static int
BlockTable(const KnnRanges *rg, Plan *p, char *errbuf, size_t errlen)
{
    int64_t total = 0, rpb, nb;
    int64_t n = p->args.n;
    int     nqt = rg->qranges ? rg->nq : 1;     /* tables */
    int     target = MaxInt(1, p->args.nb * (rg->qranges ? (int) p->grid.x : 1));
    int64_t *tab;

    for (int i = 0; i < rg->nranges; i++)
    {
        int64_t f = rg->ranges[2 * i], c = rg->ranges[2 * i + 1];

        if (f < 0 || c < 0 || f + c > n)
        {
            SetError(errbuf, errlen, "a row range is out of bounds%s%s", "", "");
            return CODEVEC_CUDA_ERR_ARG;
        }
        total += c;
    }
    rpb = MaxInt(32, (int) MinInt64(((total + target - 1) / target), (int64_t) 1 << 30));
    for (;; rpb *= 2)
    {
        int first = 0;

        nb = 0;
        for (int q = 0; q < nqt; q++)
        {
            int     cnt = rg->qranges ? rg->qranges[q] : rg->nranges;
            int64_t b = 0;

            for (int i = first; i < first + cnt; i++)
                b += (rg->ranges[2 * i + 1] + rpb - 1) / rpb;
            nb = b > nb ? b : nb;
            first += cnt;
        }
        if (nb <= rg->nbmax)
            break;
    }
    nb = nb > 0 ? nb : 1;
    tab = (int64_t *) calloc((size_t) 2 * nb * nqt, sizeof(int64_t));   /* [0, 0): no rows */
    if (!tab)
    {
        SetError(errbuf, errlen, "out of host memory for %s%s", "a block table", "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    for (int q = 0, first = 0; q < nqt; q++)
    {
        int      cnt = rg->qranges ? rg->qranges[q] : rg->nranges;
        int64_t *t = tab + (size_t) 2 * nb * q;
        int64_t  b = 0;

        for (int i = first; i < first + cnt; i++)
            for (int64_t f = rg->ranges[2 * i], e = f + rg->ranges[2 * i + 1]; f < e; f += rpb)
            {
                t[2 * b] = f;
                t[2 * b + 1] = f + rpb < e ? f + rpb : e;
                b++;
            }
        first += cnt;
    }
    /* pageable source: the copy has read it when the call returns */
    if (cudaMemcpy(rg->d_blk, tab, sizeof(int64_t) * 2 * nb * nqt, cudaMemcpyHostToDevice) != cudaSuccess)
    {
        free(tab);
        SetError(errbuf, errlen, "cuda error copying a block table: %s%s",
                 cudaGetErrorString(cudaGetLastError()), "");
        return CODEVEC_CUDA_ERR_CUDA;
    }
    free(tab);
    p->args.blk = rg->d_blk;
    p->args.blk_pq = rg->qranges != NULL;
    p->args.nb = (int) nb;
    p->grid.y = (unsigned) nb;
    return CODEVEC_CUDA_OK;
}

#define SELECT_THREADS 512

/*
 * Run phase 1 and 2 (and the re-rank for fp16) for nq prepared queries.
 * Qp/qn2 are prepared queries in the workspace.  For PATH_F16, ok[] gets
 * the proof flags (device) and the caller checks them.
 */
static int
KnnLaunch(CodevecCudaIndex idx, int path, KnnCfg cfg, const float4 *Qp, const float *qn2,
          const __half *qh, const float *qinv, int nq, int k, int metric, float *d_dist, int64_t *d_ids, int *d_ok,
          unsigned char *scratch, size_t scratch_bytes, const KnnRanges *rg, cudaStream_t st,
          char *errbuf, size_t errlen)
{
    int  kc2 = path == PATH_F16 ? MinInt(k + MaxInt(16, k / 8), 2047) : k;
    int  kc = path == PATH_F16 ? kc2 + 1 : k;
    Plan p;

    if (rg && rg->qranges)
    {
        /* each query its own rows: one query a tile, CUDA-core kernels */
        cfg.qb = 1;
        if (path == PATH_F16 && cfg.g == 0)
            cfg.g = 16;
    }
    if (!MakePlan(idx, path, cfg, nq, kc, &p))
    {
        /* e.g. the tensor-core tile does not fit this k: plain kernels */
        cfg.qb = 1;
        cfg.warps = 8;
        cfg.bps = 2;
        cfg.g = path == PATH_F16 ? 16 : 32;
    }
    if (!MakePlan(idx, path, cfg, nq, kc, &p) &&
        !(cfg.g = 32, MakePlan(idx, path, cfg, nq, kc, &p)))
    {
        SetError(errbuf, errlen, "no kernel configuration fits dimension %s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }

    if (rg && rg->nranges >= 0)
    {
        int rc = BlockTable(rg, &p, errbuf, errlen);

        if (rc != CODEVEC_CUDA_OK)
            return rc;
    }

    size_t    c1 = AlignUp((size_t) nq * p.args.nb * kc * 8);
    size_t    c2 = AlignUp((size_t) nq * kc * 8);
    uint64_t *cand1 = (uint64_t *) scratch;
    uint64_t *cand2 = (uint64_t *) (scratch + c1);

    if (c1 + c2 > scratch_bytes)
    {
        SetError(errbuf, errlen, "internal error: k-NN workspace too small%s%s", "", "");
        return CODEVEC_CUDA_ERR_CUDA;
    }
    p.args.q = Qp;
    p.args.qn2 = qn2;
    p.args.qh = qh;
    p.args.qinv = qinv;
    p.args.cand = cand1;
    p.args.metric = metric;
    p.fn<<<p.grid, p.threads, p.smem, st>>>(p.args);
    LAUNCH_CHECK(path == PATH_F32 ? "knn_f32_kernel" : cfg.g ? "knn_f16_kernel" : "knn_f16_mma_kernel");

    int64_t M = (int64_t) p.args.nb * kc;
    int     S2 = 2 * NextPow2(MaxInt(kc, SELECT_THREADS));
    size_t  smem2 = 8 + (size_t) S2 * 8 + 16;

    CUDA_CHECK(cudaFuncSetAttribute(topk_select_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem2));
    if (path == PATH_F32)
    {
        topk_select_kernel<<<nq, SELECT_THREADS, smem2, st>>>(cand1, M, k, S2, NULL, d_dist, d_ids);
        LAUNCH_CHECK("topk_select_kernel");
        return CODEVEC_CUDA_OK;
    }
    topk_select_kernel<<<nq, SELECT_THREADS, smem2, st>>>(cand1, M, kc, S2, cand2, NULL, NULL);
    LAUNCH_CHECK("topk_select_kernel");

    RerankArgs r;

    r.x32 = idx->x32;
    r.norm2 = idx->norm2;
    r.q = Qp;
    r.qn2 = qn2;
    r.cand = cand2;
    r.out_dist = d_dist;
    r.out_ids = d_ids;
    r.ok = d_ok;
    r.dpad4 = idx->dpad4;
    r.dim = idx->dim;
    r.metric = metric;
    r.k = k;
    r.kc2 = kc2;
    r.P = NextPow2(MaxInt(kc2, 2));
    r.maxnorm = idx->maxnorm;
    r.minnorm = idx->minnorm;
    r.q16 = cfg.g == 0;
    CUDA_CHECK(cudaFuncSetAttribute(rerank_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, r.P * 8));
    rerank_kernel<<<nq, 256, (size_t) r.P * 8, st>>>(r);
    LAUNCH_CHECK("rerank_kernel");
    return CODEVEC_CUDA_OK;
}

/* Bytes of workspace KnnLaunch needs at most for nq queries (row blocks:
 * at most 8 per multiprocessor, or nbmax for a ranged scan). */
static size_t
ScratchBytes(CodevecCudaIndex idx, int nq, int k, int nbmax)
{
    int    kc = MinInt(k + MaxInt(16, k / 8), 2047) + 1;
    size_t nb = (size_t) MaxInt(idx->sms * 8, nbmax);

    return AlignUp((size_t) nq * nb * kc * 8) + AlignUp((size_t) nq * kc * 8) + 4096;
}

/* Per-call workspace: prepared queries, proof flags, candidate scratch. */
typedef struct QueryWs
{
    float4        *Qp;
    float         *qn2;
    int           *ok;
    __half        *qh;
    float         *qinv;
    int64_t       *blk;         /* ranged scans: the block table */
    unsigned char *scratch;
    size_t         sb;
} QueryWs;

/* Lay the workspace out from base (NULL: only size it); returns its bytes. */
static size_t
QueryWsLayout(CodevecCudaIndex idx, int nq, int k, int nbmax, int per_query, unsigned char *base,
              QueryWs *w)
{
    size_t o = 0, s4 = AlignUp((size_t) nq * 4);

    w->Qp = (float4 *) (base + o);  o += AlignUp((size_t) nq * idx->dpad4 * 16);
    w->qn2 = (float *) (base + o);  o += s4;
    w->ok = (int *) (base + o);     o += s4;
    w->qh = (__half *) (base + o);  o += AlignUp((size_t) nq * idx->dpad8 * 16);
    w->qinv = (float *) (base + o); o += s4;
    w->blk = (int64_t *) (base + o); o += AlignUp((size_t) MaxInt(nbmax, 1) * 16 * (per_query ? nq : 1));
    w->scratch = base + o;
    w->sb = ScratchBytes(idx, nq, k, nbmax);
    return o + w->sb;
}

/* ------------------------------------------------------------------ */
/* autotuning cache (per GPU model and dimension)                      */
/* ------------------------------------------------------------------ */

#define TUNE_MAX 64

static TuneEntry       g_tune[TUNE_MAX];
static int             g_ntune = 0;
static pthread_mutex_t g_tune_lock = PTHREAD_MUTEX_INITIALIZER;

/* The current device's model name with blanks made underscores. */
static int
GpuName(char *name, size_t len, int *sms, char *errbuf, size_t errlen)
{
    int            dev;
    cudaDeviceProp prop;

    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    snprintf(name, len, "%s", prop.name);
    for (char *c = name; *c; c++)
        if (*c == ' ' || *c == '|')
            *c = '_';
    if (sms)
        *sms = prop.multiProcessorCount;
    return CODEVEC_CUDA_OK;
}

/* Find a cached entry (memory, then $CODEVEC_CUDA_TUNE_FILE); lock held. */
static TuneEntry *
TuneLookup(const char *gpu, int dim)
{
    for (int i = 0; i < g_ntune; i++)
        if (g_tune[i].dim == dim && strcmp(g_tune[i].gpu, gpu) == 0)
            return &g_tune[i];

    const char *path = getenv("CODEVEC_CUDA_TUNE_FILE");
    FILE       *f = path ? fopen(path, "r") : NULL;
    TuneEntry   e, *found = NULL;
    char        line[2048];

    while (f && fgets(line, sizeof(line), f))
    {
        char *s = line;
        int   used;

        memset(&e, 0, sizeof(e));
        if (sscanf(s, "codevec-tune-1 %255s %d %d%n", e.gpu, &e.dim, &e.prec, &used) != 3)
            continue;
        s += used;
        int ok = 1;

        for (int pth = 0; pth < 2 && ok; pth++)
            for (int b = 0; b < NBUCKETS && ok; b++)
            {
                KnnCfg *c = &e.cfg[pth][b];

                if (sscanf(s, " %d %d %d %d %lf%n", &c->qb, &c->warps, &c->bps, &c->g,
                           &e.us[pth][b], &used) != 5)
                    ok = 0;
                s += used;
            }
        if (ok && e.dim == dim && strcmp(e.gpu, gpu) == 0 && g_ntune < TUNE_MAX)
        {
            g_tune[g_ntune] = e;
            found = &g_tune[g_ntune++];
        }
    }
    if (f)
        fclose(f);
    return found;
}

/* Store an entry in memory and append it to the tune file; lock held. */
static void
TuneStore(const TuneEntry *e)
{
    int i;

    for (i = 0; i < g_ntune; i++)
        if (g_tune[i].dim == e->dim && strcmp(g_tune[i].gpu, e->gpu) == 0)
            break;
    if (i == g_ntune)
    {
        if (g_ntune == TUNE_MAX)
            i = 0;
        else
            g_ntune++;
    }
    g_tune[i] = *e;

    const char *path = getenv("CODEVEC_CUDA_TUNE_FILE");
    FILE       *f = path ? fopen(path, "a") : NULL;

    if (!f)
        return;
    fprintf(f, "codevec-tune-1 %s %d %d", e->gpu, e->dim, e->prec);
    for (int pth = 0; pth < 2; pth++)
        for (int b = 0; b < NBUCKETS; b++)
            fprintf(f, " %d %d %d %d %.2f", e->cfg[pth][b].qb, e->cfg[pth][b].warps,
                    e->cfg[pth][b].bps, e->cfg[pth][b].g, e->us[pth][b]);
    fprintf(f, "\n");
    fclose(f);
}

static int TuneRun(int dim, TuneEntry *e, char *report, size_t reportlen,
                   char *errbuf, size_t errlen);

/* The tuned entry for (this GPU, dim), measuring it on first use. */
static int
TuneGet(int dim, TuneEntry *out, char *errbuf, size_t errlen)
{
    char gpu[256];
    int  rc = GpuName(gpu, sizeof(gpu), NULL, errbuf, errlen);

    if (rc != CODEVEC_CUDA_OK)
        return rc;
    pthread_mutex_lock(&g_tune_lock);
    TuneEntry *e = TuneLookup(gpu, dim);

    if (e)
    {
        *out = *e;
        pthread_mutex_unlock(&g_tune_lock);
        return CODEVEC_CUDA_OK;
    }
    pthread_mutex_unlock(&g_tune_lock);
    if (getenv("CODEVEC_CUDA_NO_AUTOTUNE"))
    {
        memset(out, 0, sizeof(*out));
        snprintf(out->gpu, sizeof(out->gpu), "%s", gpu);
        out->dim = dim;
        out->prec = CODEVEC_PREC_FP16;
        DefaultCfg(out->cfg);
        return CODEVEC_CUDA_OK;
    }
    return TuneRun(dim, out, NULL, 0, errbuf, errlen);
}

/* ------------------------------------------------------------------ */
/* C interface                                                         */
/* ------------------------------------------------------------------ */

static int
IndexAlloc(int64_t n, int dim, int precision, CodevecCudaIndex *out,
           char *errbuf, size_t errlen)
{
    CodevecCudaIndex idx = (CodevecCudaIndex) calloc(1, sizeof(CodevecCudaIndexData));
    cudaDeviceProp   prop;
    unsigned int     init[3] = {0u, 0u, 0x7f800000u};

    if (!idx)
    {
        SetError(errbuf, errlen, "out of host memory%s%s", "", "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    idx->n = n;
    idx->dim = dim;
    idx->dpad4 = (dim + 3) / 4;
    idx->dpad8 = ((dim + 15) / 16) * 2;     /* rows 32-byte aligned for the tensor cores */
    idx->precision = precision;
    idx->fp16_ok = precision == CODEVEC_PREC_FP16;
    DefaultCfg(idx->cfg);
    *out = idx;
    CUDA_CHECK(cudaGetDevice(&idx->device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, idx->device));
    idx->sms = prop.multiProcessorCount;
    idx->smem_optin = (int) prop.sharedMemPerBlockOptin;

    size_t b32 = (size_t) n * idx->dpad4 * 16;
    size_t b16 = (size_t) (n + MMA_ROWS) * idx->dpad8 * 16;    /* + zero rows for tiles */

    if (cudaMalloc((void **) &idx->x32, b32 ? b32 : 16) != cudaSuccess ||
        cudaMalloc((void **) &idx->norm2, n ? n * 4 : 4) != cudaSuccess ||
        cudaMalloc((void **) &idx->stats, 16) != cudaSuccess ||
        (precision == CODEVEC_PREC_FP16 &&
         cudaMalloc((void **) &idx->x16, b16 ? b16 : 16) != cudaSuccess))
    {
        cudaGetLastError();
        char need[64];

        snprintf(need, sizeof(need), "%.1f MiB",
                 (b32 + (precision == CODEVEC_PREC_FP16 ? b16 : 0) + n * 4) / 1048576.0);
        SetError(errbuf, errlen, "out of GPU memory for an index of %s%s", need, "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    CUDA_CHECK(cudaMemset(idx->x32, 0, b32 ? b32 : 16));
    CUDA_CHECK(cudaMemset(idx->norm2, 0, n ? n * 4 : 4));
    if (idx->x16)
        CUDA_CHECK(cudaMemset(idx->x16, 0, b16 ? b16 : 16));
    CUDA_CHECK(cudaMemcpy(idx->stats, init, sizeof(init), cudaMemcpyHostToDevice));
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_index_create(int64_t n, int dim, int precision, CodevecCudaIndex *out,
                          char *errbuf, size_t errlen)
{
    int       devs = 0, rc;
    TuneEntry te;

    if (!out)
    {
        SetError(errbuf, errlen, "no output pointer given%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    *out = NULL;
    if (n < 0 || n >= (int64_t) 0xffffffffLL || dim < 1 || dim > CODEVEC_CUDA_MAX_DIM ||
        precision < CODEVEC_PREC_AUTO || precision > CODEVEC_PREC_FP16)
    {
        SetError(errbuf, errlen, "invalid index shape or precision (dim must be 1..2048, n below 2^32-1)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    if (cudaGetDeviceCount(&devs) != cudaSuccess || devs < 1)
    {
        cudaGetLastError();
        SetError(errbuf, errlen, "no CUDA device is available%s%s", "", "");
        return CODEVEC_CUDA_ERR_NODEVICE;
    }
    rc = TuneGet(dim, &te, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    if (precision == CODEVEC_PREC_AUTO)
        precision = te.prec;
    rc = IndexAlloc(n, dim, precision, out, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
    {
        codevec_cuda_index_free(*out);
        *out = NULL;
        return rc;
    }
    memcpy((*out)->cfg, te.cfg, sizeof(te.cfg));
    (*out)->have_cfg = 1;
    return CODEVEC_CUDA_OK;
}

/* Upload from host or device memory (cudaMemcpyDefault). */
static int
IndexUpload(CodevecCudaIndex idx, const float *vectors, int64_t first, int64_t count,
            char *errbuf, size_t errlen)
{
    unsigned int st[3];

    if (!idx || !vectors || first < 0 || count < 0 || first + count > idx->n)
    {
        SetError(errbuf, errlen, "upload rows out of range%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    if (count == 0)
        return CODEVEC_CUDA_OK;
    CUDA_CHECK(cudaSetDevice(idx->device));
    CUDA_CHECK(cudaMemcpy2D(idx->x32 + (size_t) first * idx->dpad4, (size_t) idx->dpad4 * 16,
                            vectors, (size_t) idx->dim * 4, (size_t) idx->dim * 4,
                            (size_t) count, cudaMemcpyDefault));

    int64_t blocks = (count * 32 + 255) / 256;

    upload_finish_kernel<<<(unsigned) blocks, 256>>>(idx->x32, idx->x16, idx->norm2, first, count,
                                                     idx->dpad4, idx->dpad8, idx->stats);
    LAUNCH_CHECK("upload_finish_kernel");
    CUDA_CHECK(cudaMemcpy(st, idx->stats, sizeof(st), cudaMemcpyDeviceToHost));
    memcpy(&idx->maxabs, &st[0], 4);
    {
        float mx2, mn2;

        memcpy(&mx2, &st[1], 4);
        memcpy(&mn2, &st[2], 4);
        idx->maxnorm = sqrtf(mx2);
        idx->minnorm = isinf(mn2) ? 0.0f : sqrtf(mn2);
    }
    /* beyond fp16's range the fp16 copy holds infinities: scan fp32 */
    idx->fp16_ok = idx->precision == CODEVEC_PREC_FP16 && idx->maxabs <= 65504.0f
        && isfinite(idx->maxnorm);
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_index_upload(CodevecCudaIndex idx, const float *vectors, int64_t first,
                          int64_t count, char *errbuf, size_t errlen)
{
    return IndexUpload(idx, vectors, first, count, errbuf, errlen);
}

void
codevec_cuda_index_free(CodevecCudaIndex idx)
{
    if (!idx)
        return;
    cudaSetDevice(idx->device);
    cudaFree(idx->x32);
    cudaFree(idx->x16);
    cudaFree(idx->norm2);
    cudaFree(idx->stats);
    cudaFree(idx->ws);
    cudaFree(idx->g_ids);
    cudaFree(idx->g_out);
    cudaFreeHost(idx->h_ok);
    cudaGetLastError();
    free(idx);
}

/* ------------------------------------------------------------------ */
/* gather: rows by id, for an exact re-rank by the caller              */
/* ------------------------------------------------------------------ */

/* out[j][e] = x32[ids[j]][e]; one block per row, ids < 0 give zeros */
__global__ void
gather_rows_kernel(const float *x32, int64_t rowstride, int dim, const int64_t *ids,
                   int count, float *out)
{
    int      j = blockIdx.x;
    int64_t  id = ids[j];

    for (int e = threadIdx.x; e < dim; e += blockDim.x)
        out[(size_t) j * dim + e] = id >= 0 ? x32[id * rowstride + e] : 0.0f;
}

int
codevec_cuda_index_rows(CodevecCudaIndex idx, const int64_t *ids, int count, float *out,
                        char *errbuf, size_t errlen)
{
    if (!idx || count < 0 || count > CODEVEC_CUDA_MAX_K || (count > 0 && (!ids || !out)))
    {
        SetError(errbuf, errlen, "%s%s", "codevec_cuda_index_rows: bad argument", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    if (count == 0)
        return CODEVEC_CUDA_OK;
    for (int j = 0; j < count; j++)
        if (ids[j] >= idx->n)
        {
            SetError(errbuf, errlen, "%s%s", "codevec_cuda_index_rows: id out of range", "");
            return CODEVEC_CUDA_ERR_ARG;
        }
    CUDA_CHECK(cudaSetDevice(idx->device));
    if (!idx->g_ids)
    {
        CUDA_CHECK(cudaMalloc(&idx->g_ids, sizeof(int64_t) * CODEVEC_CUDA_MAX_K));
        CUDA_CHECK(cudaMalloc(&idx->g_out, sizeof(float) * (size_t) CODEVEC_CUDA_MAX_K * idx->dim));
    }
    CUDA_CHECK(cudaMemcpy(idx->g_ids, ids, sizeof(int64_t) * count, cudaMemcpyHostToDevice));
    gather_rows_kernel<<<count, 128>>>((const float *) idx->x32, (int64_t) idx->dpad4 * 4, idx->dim,
                                       idx->g_ids, count, idx->g_out);
    LAUNCH_CHECK("gather_rows_kernel");
    CUDA_CHECK(cudaMemcpy(out, idx->g_out, sizeof(float) * (size_t) count * idx->dim,
                          cudaMemcpyDeviceToHost));
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_index_info(CodevecCudaIndex idx, size_t *device_bytes, int *scan_precision,
                        char *text, size_t textlen)
{
    if (!idx)
        return CODEVEC_CUDA_ERR_ARG;
    if (device_bytes)
        *device_bytes = (size_t) idx->n * idx->dpad4 * 16 + (size_t) idx->n * 4 +
            (idx->x16 ? (size_t) idx->n * idx->dpad8 * 16 : 0) + idx->ws_bytes;
    if (scan_precision)
        *scan_precision = idx->fp16_ok ? CODEVEC_PREC_FP16 : CODEVEC_PREC_FP32;
    if (text && textlen)
    {
        int p = idx->fp16_ok ? PATH_F16 : PATH_F32;
        int off = snprintf(text, textlen, "n=%lld dim=%d scan=%s", (long long) idx->n,
                           idx->dim, idx->fp16_ok ? "fp16+fp32 rerank" : "fp32");

        for (int b = 0; b < NBUCKETS && off > 0 && (size_t) off < textlen; b++)
            off += snprintf(text + off, textlen - off, " nq<=%d:qb=%d,warps=%d,bps=%d,g=%d",
                            kBucketNq[b], idx->cfg[p][b].qb, idx->cfg[p][b].warps,
                            idx->cfg[p][b].bps, idx->cfg[p][b].g);
    }
    return CODEVEC_CUDA_OK;
}

/* knn on device pointers with an explicit configuration table. */
static int
KnnDevice(CodevecCudaIndex idx, const float *d_queries, int nq, int k, int metric,
          float *d_dist, int64_t *d_ids, cudaStream_t st, int *fallbacks,
          int force_path, const int64_t *ranges, int nranges, const int *qranges,
          char *errbuf, size_t errlen)
{
    int rc;

    if (fallbacks)
        *fallbacks = 0;
    if (!idx || !d_queries || !d_dist || !d_ids || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K ||
        metric < CODEVEC_METRIC_L2 || metric > CODEVEC_METRIC_COSINE)
    {
        SetError(errbuf, errlen, "invalid k-NN arguments (k must be 1..1024, nq >= 1, metric 0..2)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    CUDA_CHECK(cudaSetDevice(idx->device));

    int     path = force_path >= 0 ? force_path : (idx->fp16_ok ? PATH_F16 : PATH_F32);
    QueryWs w;

    if (path == PATH_F16 && !idx->fp16_ok)
        path = PATH_F32;
    KnnRanges rg;
    int       nbmax = ranges ? MaxInt(idx->sms * 8, nranges) : 0;

    if (ranges && qranges)
    {
        /* the table holds nbmax blocks for each query */
        nbmax = 0;
        for (int q = 0; q < nq; q++)
            nbmax = MaxInt(nbmax, qranges[q]);
        nbmax = MaxInt(idx->sms * 8, nbmax);
    }

    rc = EnsureWorkspace(idx, QueryWsLayout(idx, nq, k, nbmax, ranges && qranges, NULL, &w),
                         errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    QueryWsLayout(idx, nq, k, nbmax, ranges && qranges, idx->ws, &w);
    rg.ranges = ranges;
    rg.nranges = ranges ? nranges : -1;
    rg.qranges = ranges ? qranges : NULL;
    rg.nq = nq;
    rg.nbmax = nbmax;
    rg.d_blk = w.blk;

    float4 *Qp = w.Qp;
    float  *qn2 = w.qn2;
    int    *d_ok = w.ok;
    unsigned char *scratch = w.scratch;
    size_t  sb = w.sb;

    query_prep_kernel<<<nq, 32, 0, st>>>(d_queries, idx->dim, idx->dpad4, Qp, qn2,
                                         idx->dpad8, w.qh, w.qinv);
    LAUNCH_CHECK("query_prep_kernel");

    int b = NqBucket(nq);

    rc = KnnLaunch(idx, path, idx->cfg[path][b], Qp, qn2, w.qh, w.qinv, nq, k, metric, d_dist,
                   d_ids, d_ok, scratch, sb, &rg, st, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    if (path == PATH_F16)
    {
        int fails = 0;

        if (idx->h_ok_len < nq)
        {
            if (idx->h_ok)
                CUDA_CHECK(cudaFreeHost(idx->h_ok));
            idx->h_ok = NULL;
            idx->h_ok_len = 0;
            CUDA_CHECK(cudaMallocHost((void **) &idx->h_ok, (size_t) nq * 4));
            idx->h_ok_len = nq;
        }
        CUDA_CHECK(cudaMemcpyAsync(idx->h_ok, d_ok, (size_t) nq * 4, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        for (int i = 0; i < nq; i++)
            fails += idx->h_ok[i] ? 0 : 1;
        if (fails)
        {
            /* not provable for some query: answer the batch from fp32 */
            rc = KnnLaunch(idx, PATH_F32, idx->cfg[PATH_F32][b], Qp, qn2, w.qh, w.qinv, nq, k, metric,
                           d_dist, d_ids, d_ok, scratch, sb, &rg, st, errbuf, errlen);
            if (rc != CODEVEC_CUDA_OK)
                return rc;
        }
        if (fallbacks)
            *fallbacks = fails;
    }
    CUDA_CHECK(cudaStreamSynchronize(st));
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_knn_device(CodevecCudaIndex idx, const float *d_queries, int nq, int k,
                        int metric, float *d_out_dist, int64_t *d_out_ids, void *stream,
                        int *fallbacks, char *errbuf, size_t errlen)
{
    return KnnDevice(idx, d_queries, nq, k, metric, d_out_dist, d_out_ids,
                     (cudaStream_t) stream, fallbacks, -1, NULL, 0, NULL, errbuf, errlen);
}

/* Internal for the test and bench programs: force a path (0 fp32, 1 fp16). */
extern "C" int
codevec_cuda_knn_device_path(CodevecCudaIndex idx, const float *d_queries, int nq, int k,
                             int metric, float *d_out_dist, int64_t *d_out_ids, void *stream,
                             int *fallbacks, int path, char *errbuf, size_t errlen)
{
    return KnnDevice(idx, d_queries, nq, k, metric, d_out_dist, d_out_ids,
                     (cudaStream_t) stream, fallbacks, path, NULL, 0, NULL, errbuf, errlen);
}

int
codevec_cuda_knn(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
                 float *out_dist, int64_t *out_ids, char *errbuf, size_t errlen)
{
    return codevec_cuda_knn_ranges(idx, queries, nq, k, metric, NULL, 0, out_dist, out_ids,
                                   errbuf, errlen);
}

int
codevec_cuda_knn_ranges(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
                        const int64_t *ranges, int nranges, float *out_dist, int64_t *out_ids,
                        char *errbuf, size_t errlen)
{
    return codevec_cuda_knn_qranges(idx, queries, nq, k, metric, ranges, nranges, NULL,
                                    out_dist, out_ids, errbuf, errlen);
}

int
codevec_cuda_knn_qranges(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
                         const int64_t *ranges, int nranges, const int *qranges,
                         float *out_dist, int64_t *out_ids, char *errbuf, size_t errlen)
{
    float   *dq = NULL, *dd = NULL;
    int64_t *di = NULL;
    int      rc;

    if (!idx || !queries || !out_dist || !out_ids || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K ||
        (ranges == NULL && nranges != 0) || nranges < 0)
    {
        SetError(errbuf, errlen, "invalid k-NN arguments (k must be 1..1024, nq >= 1)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    CUDA_CHECK(cudaSetDevice(idx->device));
    if (cudaMalloc((void **) &dq, (size_t) nq * idx->dim * 4) != cudaSuccess ||
        cudaMalloc((void **) &dd, (size_t) nq * k * 4) != cudaSuccess ||
        cudaMalloc((void **) &di, (size_t) nq * k * 8) != cudaSuccess)
    {
        cudaGetLastError();
        cudaFree(dq);
        cudaFree(dd);
        SetError(errbuf, errlen, "out of GPU memory for %s queries%s", "the", "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    rc = CODEVEC_CUDA_OK;
    if (cudaMemcpy(dq, queries, (size_t) nq * idx->dim * 4, cudaMemcpyHostToDevice) != cudaSuccess)
    {
        SetError(errbuf, errlen, "cuda error copying queries: %s%s",
                 cudaGetErrorString(cudaGetLastError()), "");
        rc = CODEVEC_CUDA_ERR_CUDA;
    }
    if (rc == CODEVEC_CUDA_OK)
        rc = KnnDevice(idx, dq, nq, k, metric, dd, di, 0, NULL, -1, ranges, nranges, qranges,
                       errbuf, errlen);
    if (rc == CODEVEC_CUDA_OK &&
        (cudaMemcpy(out_dist, dd, (size_t) nq * k * 4, cudaMemcpyDeviceToHost) != cudaSuccess ||
         cudaMemcpy(out_ids, di, (size_t) nq * k * 8, cudaMemcpyDeviceToHost) != cudaSuccess))
    {
        SetError(errbuf, errlen, "cuda error copying results: %s%s",
                 cudaGetErrorString(cudaGetLastError()), "");
        rc = CODEVEC_CUDA_ERR_CUDA;
    }
    cudaFree(dq);
    cudaFree(dd);
    cudaFree(di);
    return rc;
}

/* ------------------------------------------------------------------ */
/* autotuning                                                          */
/* ------------------------------------------------------------------ */

static int
CmpDouble(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

/* Median time in microseconds of reps launches of one configuration. */
static int
TimeCfg(CodevecCudaIndex idx, int path, KnnCfg cfg, const QueryWs *w, int nq,
        float *dd, int64_t *di,
        cudaEvent_t e0, cudaEvent_t e1, double *us, char *errbuf, size_t errlen)
{
    double t[7];
    int    rc;

    for (int r = 0; r < 8; r++)
    {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        rc = KnnLaunch(idx, path, cfg, w->Qp, w->qn2, w->qh, w->qinv, nq, 10,
                       CODEVEC_METRIC_COSINE, dd, di, w->ok, w->scratch, w->sb, NULL, 0, errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            return rc;
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (r > 0)
        {
            float ms;

            CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            t[r - 1] = ms * 1000.0;
        }
    }
    qsort(t, 7, sizeof(double), CmpDouble);
    *us = t[3];
    return CODEVEC_CUDA_OK;
}

/*
 * Measure every candidate configuration for both paths and every batch
 * bucket on a synthetic index of `dim` columns, four times the L2 cache
 * in fp16 (so the scan reads device memory), cosine, k = 10.
 */
static int
TuneRun(int dim, TuneEntry *e, char *report, size_t reportlen, char *errbuf, size_t errlen)
{
    CodevecCudaIndex idx = NULL;
    cudaDeviceProp   prop;
    int              dev, rc, off = 0;
    float           *src = NULL, *dq = NULL, *dd = NULL;
    int64_t         *di = NULL;
    cudaEvent_t      e0 = NULL, e1 = NULL;

    memset(e, 0, sizeof(*e));
    rc = GpuName(e->gpu, sizeof(e->gpu), NULL, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    e->dim = dim;
    DefaultCfg(e->cfg);
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));

    int64_t n = (int64_t) 4 * prop.l2CacheSize / (((dim + 7) / 8) * 16);

    if (n < 65536)
        n = 65536;
    if (n > (1 << 22))
        n = 1 << 22;

    rc = IndexAlloc(n, dim, CODEVEC_PREC_FP16, &idx, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        goto done;
    rc = CODEVEC_CUDA_ERR_CUDA;
    if (cudaMalloc((void **) &src, (size_t) n * dim * 4) != cudaSuccess ||
        cudaMalloc((void **) &dq, (size_t) 64 * dim * 4) != cudaSuccess ||
        cudaMalloc((void **) &dd, (size_t) 64 * 10 * 4) != cudaSuccess ||
        cudaMalloc((void **) &di, (size_t) 64 * 10 * 8) != cudaSuccess ||
        cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess)
    {
        SetError(errbuf, errlen, "autotune setup failed: %s%s",
                 cudaGetErrorString(cudaGetLastError()), "");
        goto done;
    }
    fill_random_kernel<<<1024, 256>>>(src, n * dim, 12345);
    fill_random_kernel<<<64, 256>>>(dq, (int64_t) 64 * dim, 777);
    rc = IndexUpload(idx, src, 0, n, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        goto done;
    {
        QueryWs w;

        rc = EnsureWorkspace(idx, QueryWsLayout(idx, 64, 10, 0, 0, NULL, &w), errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            goto done;
        QueryWsLayout(idx, 64, 10, 0, 0, idx->ws, &w);

        static const int qbs[] = {1, 2, 4, 8, 16, 32, 64};
        static const int warps[] = {4, 8};
        static const int bpss[] = {1, 2, 4, 8};
        static const int gs[] = {0, 8, 16, 32};     /* 0: tensor cores */

        query_prep_kernel<<<64, 32>>>(dq, dim, idx->dpad4, w.Qp, w.qn2, idx->dpad8, w.qh, w.qinv);
        if (report && reportlen)
            off = snprintf(report, reportlen,
                           "autotune on %s, dim %d, %lld synthetic rows, cosine, k=10 (median of 7)\n"
                           "path  nq  chosen(qb,warps,bps,g)   best_us  worst_us  candidates\n",
                           e->gpu, dim, (long long) n);
        for (int pth = 0; pth < 2; pth++)
            for (int b = 0; b < NBUCKETS; b++)
            {
                int    nq = kBucketNq[b];
                double best = 1e30, worst = 0;
                int    tried = 0;

                for (int a = 0; a < 7; a++)
                    for (int wi = 0; wi < 2; wi++)
                        for (int s = 0; s < 4; s++)
                            for (int gi = (pth == PATH_F16 ? 0 : 3); gi < 4; gi++)
                            {
                                KnnCfg c = {qbs[a], warps[wi], bpss[s], gs[gi]};
                                Plan   p;
                                double us;
                                int    kc = pth == PATH_F16 ? 10 + 16 + 1 : 10;

                                /* tensor cores: 16..64 queries a tile, 4 warps, nq >= 4 */
                                if (c.g == 0 && (c.qb < 16 || c.warps != 4 || nq < 4))
                                    continue;
                                if (c.g != 0 && c.qb > 8)
                                    continue;
                                if ((c.qb > nq && c.g != 0) || (c.g == 0 && c.qb > MaxInt(16, nq)) ||
                                    !MakePlan(idx, pth, c, nq, kc, &p) ||
                                    (pth == PATH_F16 && c.g != 0 &&
                                     c.qb * F16Unroll(F16Chunks(idx->dpad8, c.g)) > c.g))
                                    continue;
                                rc = TimeCfg(idx, pth, c, &w, nq, dd, di, e0, e1, &us, errbuf, errlen);
                                if (rc != CODEVEC_CUDA_OK)
                                    goto done;
                                tried++;
                                if (us > worst)
                                    worst = us;
                                if (us < best)
                                {
                                    best = us;
                                    e->cfg[pth][b] = c;
                                }
                            }
                e->us[pth][b] = best;
                if (report && off >= 0 && (size_t) off < reportlen)
                    off += snprintf(report + off, reportlen - off,
                                    "%s  %3d  (%d,%d,%d,%2d)  %10.1f %9.1f  %d\n",
                                    pth == PATH_F16 ? "fp16" : "fp32", nq, e->cfg[pth][b].qb,
                                    e->cfg[pth][b].warps, e->cfg[pth][b].bps, e->cfg[pth][b].g,
                                    best, worst, tried);
            }
        e->prec = e->us[PATH_F16][0] < e->us[PATH_F32][0] ? CODEVEC_PREC_FP16 : CODEVEC_PREC_FP32;
        if (report && off >= 0 && (size_t) off < reportlen)
            snprintf(report + off, reportlen - off,
                     "storage precision: %s (single query %.1f us fp16 vs %.1f us fp32)\n",
                     e->prec == CODEVEC_PREC_FP16 ? "fp16 + fp32 rerank" : "fp32",
                     e->us[PATH_F16][0], e->us[PATH_F32][0]);
    }
    pthread_mutex_lock(&g_tune_lock);
    TuneStore(e);
    pthread_mutex_unlock(&g_tune_lock);
    rc = CODEVEC_CUDA_OK;

done:
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dq);
    cudaFree(dd);
    cudaFree(di);
    codevec_cuda_index_free(idx);
    return rc;
}

int
codevec_cuda_autotune(int dim, char *report, size_t reportlen, char *errbuf, size_t errlen)
{
    TuneEntry e;

    if (dim < 1 || dim > CODEVEC_CUDA_MAX_DIM)
    {
        SetError(errbuf, errlen, "dimension must be 1..2048%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    return TuneRun(dim, &e, report, reportlen, errbuf, errlen);
}

/* Internal for the test program: pin one kernel configuration for every batch size. */
extern "C" int
codevec_cuda_index_set_cfg(CodevecCudaIndex idx, int path, int qb, int warps, int bps, int g)
{
    if (!idx || path < 0 || path > 1)
        return CODEVEC_CUDA_ERR_ARG;
    for (int b = 0; b < NBUCKETS; b++)
    {
        idx->cfg[path][b].qb = qb;
        idx->cfg[path][b].warps = warps;
        idx->cfg[path][b].bps = bps;
        idx->cfg[path][b].g = g;
    }
    return CODEVEC_CUDA_OK;
}
