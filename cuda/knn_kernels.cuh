/*
 * knn_kernels.cuh — the device code of the exact k-NN (knn.cu's design
 * comment explains the phases): order-preserving keys, the block-wide
 * top-k threshold buffer, the similarity kernels (fp32, fp16, fp16 on
 * tensor cores, int8), the merge of per-block candidates, the re-rank with
 * its proof of exactness (fp16 scores, or int8 lower bounds: knn_i8.h), query and row preparation, and the row gather.
 * Included once, by knn.cu (kernels are static: one translation unit).
 */
#ifndef CODEVEC_KNN_KERNELS_CUH
#define CODEVEC_KNN_KERNELS_CUH

#include "knn_internal.h"
#include "knn_i8.h"

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
        *thr = c >= kc ? buf[kc - 1] : *thr;   /* fewer than kc: keep a seeded bound */
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
    int64_t       row0;     /* first row of the uniform slices (blk NULL) */
    int           cnb;      /* tensor-core path: blocks per query in cand
                             * (nb, or nb + 1 with a seeded threshold) */
    const uint64_t *seed;   /* tensor-core path: NULL, or per query q a bound
                             * seed[q * cnb * kc + kc - 1]: at least kc rows
                             * outside this scan have keys <= it */
    const uint4  *x8;       /* int8 path: n x dpad16 uint4 (16 codes + 128 each) */
    const float  *x8s;      /* int8 path: n row scales */
    int           dpad16;   /* int8 path: 16-code chunks per row */
    const float  *q1;       /* int8 path: nq computed ||q||_1 */
    CodevecI8Consts i8c;    /* int8 path: the bound's constants (knn_i8.h) */
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
        *rb = a.row0 + (int64_t) blockIdx.y * a.rows_per_block;
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

/* Add 16 codes (one uint4 of bytes c + 128) times 16 query values to acc. */
static __device__ __forceinline__ float
I8Chunk(const float *q, uint4 v, float acc)
{
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};

#pragma unroll
    for (int wi = 0; wi < 4; wi++)
#pragma unroll
        for (int bi = 0; bi < 4; bi++)
        {
            /* bits 0x4B0000bb are the float 2^23 + b: minus 2^23 + 128 is c, exactly */
            float c = __uint_as_float(__byte_perm(w[wi], 0x4B000000u, 0x7440u | bi)) - 8388736.0f;

            acc = fmaf(q[4 * wi + bi], c, acc);
        }
    return acc;
}

/*
 * Lower bounds of the true distance (L2: squared) of QB queries against
 * int8 rows (codevec_i8_lower_bound of knn_i8.h), fused with per-block
 * top-k: the candidates that rerank_kernel re-ranks and proves with the
 * int8 proof.  g lanes share a row; lane `sub` holds 16-code chunks sub,
 * sub+g, ...; U row groups in flight.  A row costs dpad16*16 bytes of
 * codes + its scale (+ its norm for L2 and cosine): ~388 B at 384 dims.
 */
template <int CHI, int QB, int U>
static __global__ void __launch_bounds__(256)
knn_i8_kernel(KnnArgs a)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_thr = (uint64_t *) smem_raw;
    uint64_t *s_buf = s_thr + QB;
    int      *s_cnt = (int *) (s_buf + (size_t) QB * a.S);
    float    *s_qn2 = (float *) (s_cnt + QB);
    float    *s_e1 = s_qn2 + QB;
    float    *s_rq = s_e1 + QB;

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
        int   qi = threadIdx.x;
        float qn2 = qi < nqt ? a.qn2[q0 + qi] : 1.0f;

        s_cnt[qi] = 0;
        s_thr[qi] = KEY_NONE;
        s_qn2[qi] = qn2;
        s_e1[qi] = qi < nqt ? a.q1[q0 + qi] * a.i8c.cq : 0.0f;
        s_rq[qi] = rsqrtf(qn2);
    }

    float qv[QB][CHI][16];
#pragma unroll
    for (int qi = 0; qi < QB; qi++)
#pragma unroll
        for (int t = 0; t < CHI; t++)
#pragma unroll
            for (int e = 0; e < 16; e++)
            {
                int c = sub + g * t;
                int i = 16 * c + e;

                qv[qi][t][e] = (qi < nqt && c < a.dpad16 && i < qstride)
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

            uint4 xv[U][CHI];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int t = 0; t < CHI; t++)
                {
                    int64_t row = r + u * RW + slot;
                    int     c = sub + g * t;

                    xv[u][t] = (row < re && c < a.dpad16)
                        ? __ldg(&a.x8[(size_t) row * a.dpad16 + c])
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
                    for (int t = 0; t < CHI; t++)
                        acc = I8Chunk(qv[qi][t], xv[u][t], acc);
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
                    float sc = a.x8s[row];
                    float xn2 = a.metric != CODEVEC_METRIC_IP ? a.norm2[row] : 0.0f;
                    float rx = a.metric == CODEVEC_METRIC_COSINE ? rsqrtf(xn2) : 0.0f;
                    float lb = codevec_i8_lower_bound(a.metric, mine, sc, s_e1[qi], s_qn2[qi], xn2,
                                                      s_rq[qi], rx, a.i8c);

                    TopkPush(MakeKey(lb, (uint32_t) row), s_buf + (size_t) qi * a.S,
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
        /* a seeded bound: keys above it cannot be among the kc best */
        s_thr[i] = a.seed && i < nqt ? a.seed[(size_t) (q0 + i) * a.cnb * a.kc + a.kc - 1] : KEY_NONE;
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
        uint64_t *out = a.cand + ((size_t) (q0 + qc) * a.cnb + blockIdx.y) * a.kc;

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
 *
 * The input is M / kout runs of kout keys, each sorted ascending (a block's
 * best keys, KEY_NONE past its end), so the last key of any run bounds the
 * kout-th best of all: that run alone holds kout keys at or below it.  The
 * buffer starts from the smallest such bound, and only the keys at or below
 * it (about kout plus the ties of the runs' tails) are pushed and sorted,
 * instead of the first S - blockDim.x keys and the merges that follow.
 *
 * Segments (gridDim.y > 1): block (q, s) merges only keys [s seg, (s+1)
 * seg) of query q's M (seg a multiple of kout, so whole runs) and writes
 * its kout best as run s of query q at out_keys + (q gridDim.y + s)
 * out_stride; a second launch over those gridDim.y runs a query finishes
 * the merge (KnnMerge).  The kout best of all lie among the kout best of
 * each segment, so the answer is the same; a query's M keys are read by
 * gridDim.y multiprocessors instead of one.
 */
static __global__ void
topk_select_kernel(const uint64_t *in, int64_t M, int kout, int S,
                   uint64_t *out_keys, int64_t out_stride, float *out_dist, int64_t *out_ids,
                   int64_t seg)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint64_t *s_thr = (uint64_t *) smem_raw;
    uint64_t *s_buf = s_thr + 1;
    int      *s_cnt = (int *) (s_buf + S);
    const int q = blockIdx.x;
    const int RR = blockDim.x;
    const int64_t lo = (int64_t) blockIdx.y * seg;
    const int64_t hi = min(M, lo + seg);
    const uint64_t *run = in + (size_t) q * M + lo;
    const size_t oq = (size_t) q * gridDim.y + blockIdx.y;

    M = max(hi - lo, (int64_t) 0);

    uint64_t bound = KEY_NONE;

    for (int64_t r = (int64_t) threadIdx.x * kout + kout - 1; r < M; r += (int64_t) blockDim.x * kout)
        bound = min(bound, run[r]);
    for (int off = 16; off > 0; off >>= 1)
        bound = min(bound, __shfl_xor_sync(FULL_MASK, bound, off));
    if (threadIdx.x == 0)
    {
        *s_cnt = 0;
        *s_thr = KEY_NONE;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        atomicMin((unsigned long long *) s_thr,
                  (unsigned long long) (bound == KEY_NONE ? KEY_NONE : bound + 1));
    __syncthreads();
    for (int64_t base = 0; base < M; base += RR)
    {
        int64_t i = base + threadIdx.x;

        if (i < M)
            TopkPush(run[i], s_buf, s_cnt, s_thr);
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
            out_keys[oq * out_stride + i] = key;
        else if (key == KEY_NONE)
        {
            out_dist[oq * kout + i] = INFINITY;
            out_ids[oq * kout + i] = -1;
        }
        else
        {
            out_dist[oq * kout + i] = FloatFromOrdered((uint32_t) (key >> 32));
            out_ids[oq * kout + i] = (int64_t) (uint32_t) key;
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
    int             i8;         /* keys are int8 lower bounds: the int8 proof */
    const float    *q1;         /* int8: nq computed ||q||_1 */
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
 * The int8 proof (codevec_i8_proof, knn_i8.h): cut is the (kc2+1)-th key,
 * a lower bound of the true distance (squared for L2) of every row not
 * re-ranked; kth the k-th re-ranked key (canonical distance).
 */
static __device__ bool
I8RerankPasses(const RerankArgs &a, uint64_t cut, uint64_t kth, float qn2, float q1)
{
    if (cut == KEY_NONE)
        return true;                    /* every row was re-ranked */
    if (kth == KEY_NONE)
        return false;
    return codevec_i8_proof(a.metric, FloatFromOrdered((uint32_t) (cut >> 32)),
                            FloatFromOrdered((uint32_t) (kth >> 32)), qn2, q1, a.maxnorm,
                            a.dim) != 0;
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
        a.ok[q] = a.i8 ? I8RerankPasses(a, cand[a.kc2], a.k - 1 < a.P ? s_keys[a.k - 1] : KEY_NONE,
                                        qn2, a.q1[q])
                       : RerankPasses(a, cand[a.kc2], a.k - 1 < a.P ? s_keys[a.k - 1] : KEY_NONE, qn2);
}

/* ------------------------------------------------------------------ */
/* preparation: queries and uploaded rows                              */
/* ------------------------------------------------------------------ */

/*
 * One warp per query: pad to dpad4 float4 and take the canonical |q|^2,
 * the scaled fp16 copy and, for the int8 path, fl(sum |q_i|) (q1; lane l
 * adds components l, l+32, ... in order, then a butterfly: knn_i8.h's
 * step 5 allows any order).
 */
static __global__ void
query_prep_kernel(const float *src, int dim, int dpad4, float4 *dst, float *qn2,
                  int dpad8, __half *qh, float *qinv, float *q1)
{
    const int q = blockIdx.x;
    const int lane = threadIdx.x;
    float    *d = (float *) (dst + (size_t) q * dpad4);
    float     acc = 0.0f;
    float     mx = 0.0f;
    float     l1 = 0.0f;

    for (int i = lane; i < dpad4 * 4; i += 32)
    {
        d[i] = i < dim ? src[(size_t) q * dim + i] : 0.0f;
        mx = fmaxf(mx, fabsf(d[i]));
        l1 += fabsf(d[i]);
    }
    for (int off = 16; off > 0; off >>= 1)
    {
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, off));
        l1 += __shfl_xor_sync(FULL_MASK, l1, off);
    }
    if (lane == 0 && q1)
        q1[q] = l1;

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
 * set), the int8 codes and scale (when x8 is set; knn_i8.h's coder) and
 * the index-wide statistics (max |x_i|, max and min non-zero |x|^2, min
 * non-zero max |x_i|, as float bits: non-negative floats order as
 * unsigned ints).
 */
static __global__ void
upload_finish_kernel(const float4 *x32, uint4 *x16, float *norm2, int64_t first,
                     int64_t count, int dpad4, int dpad8, unsigned int *stats,
                     uint4 *x8, float *x8s, int dpad16)
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
    if (x8)
    {
        const float *xf = (const float *) (x32 + (size_t) row * dpad4);
        float        s = codevec_i8_scale(mx);

        for (int c = lane; c < dpad16; c += 32)
        {
            uint32_t w[4];

            for (int wi = 0; wi < 4; wi++)
            {
                uint32_t word = 0;

                for (int bi = 0; bi < 4; bi++)
                {
                    int      i = 16 * c + 4 * wi + bi;
                    uint32_t b = i < dpad4 * 4 ? codevec_i8_code(xf[i], s) : 128u;

                    word |= b << (8 * bi);
                }
                w[wi] = word;
            }
            x8[(size_t) row * dpad16 + c] = make_uint4(w[0], w[1], w[2], w[3]);
        }
        if (lane == 0)
            x8s[row] = s;
    }
    if (lane == 0)
    {
        norm2[row] = acc;
        atomicMax(&stats[0], __float_as_uint(mx));
        atomicMax(&stats[1], __float_as_uint(acc));
        if (acc > 0.0f)
            atomicMin(&stats[2], __float_as_uint(acc));
        if (mx > 0.0f)
            atomicMin(&stats[3], __float_as_uint(mx));
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
/* gather: rows by id, for an exact re-rank by the caller              */
/* ------------------------------------------------------------------ */

/* out[j][e] = x32[ids[j]][e]; one block per row, ids < 0 give zeros */
static __global__ void
gather_rows_kernel(const float *x32, int64_t rowstride, int dim, const int64_t *ids,
                   int count, float *out)
{
    int      j = blockIdx.x;
    int64_t  id = ids[j];

    for (int e = threadIdx.x; e < dim; e += blockDim.x)
        out[(size_t) j * dim + e] = id >= 0 ? x32[id * rowstride + e] : 0.0f;
}

#endif                          /* CODEVEC_KNN_KERNELS_CUH */
