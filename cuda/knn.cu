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
 * Phase 0, a seeded threshold (tensor-core batches over a whole index of
 * at least SEED_MIN_ROWS rows): the first SEED_ROWS rows are scanned alone
 * and their kc best keys per query selected; the kc-th of them starts
 * every phase-1 block's threshold, so a block keeps only the ~kc/SEED_ROWS
 * of its rows that beat it instead of filling and sorting its buffers
 * before its threshold rises (at 1M rows and 16 queries on an H200 the
 * phase-1 kernel went from 545 to 219 us).  Phase 1 then scans the other
 * rows, and the sample's kc keys join the merge as one more block, so a
 * dropped row is always beaten by kc kept ones: the answer is unchanged.
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
 * Files: knn_kernels.cuh (the kernels), this file (launchers, plans, the
 * index, the C interface of knn.h), knn_tune.cu (autotuning and its cache),
 * knn_internal.h (what they share).
 *
 * Autotuning (knn_tune.cu): tile sizes (queries per tile), warps per block,
 * blocks per multiprocessor, lanes per row (fp16) and the storage
 * precision are measured on the present GPU for a dimension and cached per
 * GPU model.
 *
 * Error bounds follow Higham, "Accuracy and Stability of Numerical
 * Algorithms", ch. 3 (|fl(sum) - sum| <= gamma_n sum|terms|).
 */
#include "knn_internal.h"
#include "knn_kernels.cuh"

#include <pthread.h>
#include <time.h>


/* ------------------------------------------------------------------ */
/* launchers                                                           */
/* ------------------------------------------------------------------ */

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

#define I8_CASE(CHI, QB) \
    if (chi == CHI && qb == QB) return knn_i8_kernel<CHI, QB, (CHI <= 1 ? 8 : CHI <= 3 ? 4 : 2)>;

/* Rows in flight per lane group of the int8 kernel for chi chunks a lane. */
static int
I8Unroll(int chi)
{
    return chi <= 1 ? 8 : chi <= 3 ? 4 : 2;
}

/* The int8 kernel instance for chi 16-code chunks per lane and qb queries
 * (qb * chi * 16 query floats stay in registers: at most 64). */
static KnnKernelFn
I8Kernel(int chi, int qb)
{
    if (qb * chi > 4)
        return NULL;
    I8_CASE(1, 1) I8_CASE(1, 2) I8_CASE(1, 4)
    I8_CASE(2, 1) I8_CASE(2, 2)
    I8_CASE(3, 1)
    I8_CASE(4, 1)
    return NULL;
}

/* 16-code chunks per lane for g lanes a row, rounded up to an instance. */
static int
I8Chunks(int dpad16, int g)
{
    int need = (dpad16 + g - 1) / g;

    return need <= 4 ? (need == 0 ? 1 : need) : -1;
}

/*
 * Candidates the int8 path re-ranks (kc2, codevec_i8_kc2 of knn_i8.h):
 * a power of two minus one so that rerank_kernel's sort (kc2 rounded up)
 * wastes nothing.
 */
static int
I8Kc2(int k)
{
    return codevec_i8_kc2(k);
}

/* Candidates re-ranked per query on a path (k on the fp32 path). */
static int
Kc2(int path, int k)
{
    return path == PATH_F16 ? codevec_knn_f16_kc2(k) : path == PATH_I8 ? I8Kc2(k) : k;
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

void
KnnDefaultCfg(KnnCfg cfg[2][NBUCKETS])
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
int
KnnEnsureWorkspace(CodevecCudaIndex idx, size_t bytes, char *errbuf, size_t errlen)
{
    if (idx->ws_bytes >= bytes)
        return CODEVEC_CUDA_OK;
    /* a started batch's kernels may still read it */
    if (idx->b_stream)
        CUDA_CHECK(cudaStreamSynchronize(idx->b_stream));
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

/*
 * cudaFuncSetAttribute(MaxDynamicSharedMemorySize) and, when occ is not
 * NULL, cudaOccupancyMaxActiveBlocksPerMultiprocessor for a kernel on the
 * current device, remembered: both are host calls of several microseconds
 * that every search made before its scan could start.  A kernel's shared
 * memory attribute only ever rises (to the most any launch asked for), so
 * a remembered smaller launch stays allowed.  Returns the CUDA error of
 * the first failing call (nothing is remembered then).
 */
typedef struct FuncAttr
{
    int         device;
    const void *fn;
    size_t      smem;           /* the attribute as set */
} FuncAttr;

typedef struct FuncOcc
{
    int         device;
    const void *fn;
    int         threads;
    size_t      smem;
    int         occ;
} FuncOcc;

#define FUNC_CACHE 512

static FuncAttr        g_attr[FUNC_CACHE];
static FuncOcc         g_occ[FUNC_CACHE];
static int             g_nattr, g_nocc;
static pthread_mutex_t g_func_lock = PTHREAD_MUTEX_INITIALIZER;

static cudaError_t
FuncPrepare(const void *fn, int threads, size_t smem, int *occ)
{
    int         dev = 0, i, o = 0;
    cudaError_t e = cudaGetDevice(&dev);

    if (e != cudaSuccess)
        return e;
    pthread_mutex_lock(&g_func_lock);
    for (i = 0; i < g_nattr; i++)
        if (g_attr[i].device == dev && g_attr[i].fn == fn)
            break;
    if (i == g_nattr || g_attr[i].smem < smem)
    {
        e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
        if (e == cudaSuccess && i < g_nattr)
            g_attr[i].smem = smem;
        else if (e == cudaSuccess && g_nattr < FUNC_CACHE)
            g_attr[g_nattr++] = (FuncAttr) {dev, fn, smem};
    }
    if (e == cudaSuccess && occ)
    {
        for (i = 0; i < g_nocc; i++)
            if (g_occ[i].device == dev && g_occ[i].fn == fn && g_occ[i].threads == threads &&
                g_occ[i].smem == smem)
                break;
        if (i < g_nocc)
            o = g_occ[i].occ;
        else
        {
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, fn, threads, smem);
            if (e == cudaSuccess && g_nocc < FUNC_CACHE)
                g_occ[g_nocc++] = (FuncOcc) {dev, fn, threads, smem, o};
        }
        *occ = o;
    }
    pthread_mutex_unlock(&g_func_lock);
    return e;
}

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
 * Fill a plan's launch and arguments: tiles query tiles by nb row blocks
 * (capped so that each block has at least RR rows), S candidate slots
 * per query, g the fp16 group width (0 for fp32 and tensor cores).
 */
static void
PlanFill(CodevecCudaIndex idx, Plan *p, int threads, size_t smem, int tiles, int64_t nb,
         int RR, int nq, int kc, int S, int g)
{
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
    p->args.cnb = (int) nb;
    p->args.row0 = 0;
    p->args.seed = NULL;
    p->args.g = g;
    p->args.x32 = idx->x32;
    p->args.x16 = idx->x16;
    p->args.norm2 = idx->norm2;
    p->args.x8 = idx->x8;
    p->args.x8s = idx->x8s;
    p->args.dpad16 = idx->dpad16;
}

/*
 * The tensor-core (fp16 MMA) launch: the query tile (64, 32, 16) shrinks
 * until the kernel's shared memory fits; the candidate buffers are roomy
 * (few merges) within a third of the opt-in shared memory.  Returns 0 if
 * no tile fits.
 */
static int
MakeMmaPlan(CodevecCudaIndex idx, KnnCfg cfg, int nq, int kc, Plan *p)
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
            FuncPrepare((const void *) p->fn, MMA_WARPS * 32, smem, &occ) != cudaSuccess || occ < 1)
        {
            cudaGetLastError();
            continue;
        }

        int     tiles = (nq + nqt - 1) / nqt;
        int64_t nb = MaxInt(1, idx->sms * MinInt(cfg.bps, occ) / tiles);

        PlanFill(idx, p, MMA_WARPS * 32, smem, tiles, nb, RR, nq, kc, S, 0);
        return 1;
    }
    return 0;
}

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
        return MakeMmaPlan(idx, cfg, nq, kc, p);
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
        else if (path == PATH_I8)
        {
            int chi = I8Chunks(idx->dpad16, cfg.g);

            if (chi < 0 || !idx->x8)
                return 0;
            U = I8Unroll(chi);
            if (qb * U > cfg.g)
                continue;
            p->fn = I8Kernel(chi, qb);
            rows_step = U * (32 / cfg.g);
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
        smem = (size_t) qb * 8 + (size_t) qb * S * 8 + (size_t) qb * 8 + 16 +
            (path == PATH_I8 ? (size_t) qb * 8 : 0);        /* knn_i8_kernel's s_e1, s_rq */
        if (smem > SMEM_CAP)
            continue;

        int occ = 0;

        if (FuncPrepare((const void *) p->fn, threads, smem, &occ) != cudaSuccess || occ < 1)
        {
            cudaGetLastError();
            continue;
        }

        int tiles = (nq + qb - 1) / qb;
        int target = idx->sms * MinInt(cfg.bps, occ);

        PlanFill(idx, p, threads, smem, tiles, MaxInt(1, target / tiles), RR, nq, kc, S, cfg.g);
        return 1;
    }
    return 0;
}


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
    p->args.cnb = (int) nb;
    p->grid.y = (unsigned) nb;
    return CODEVEC_CUDA_OK;
}

#define SELECT_THREADS 512

/*
 * The seeded threshold of a tensor-core batch (phase 0): the first
 * SEED_BLOCKS * 64 rows are scanned alone first, their kc best keys per
 * query kept (as one more block of candidates), and the kc-th of them
 * bounds every other block's buffer from its first row on.  Only for
 * indexes of at least SEED_MIN_ROWS rows, where the sample is a few per
 * cent of the scan.  CODEVEC_KNN_SEED=0 in the environment turns it off
 * (for comparisons).
 */
#define SEED_BLOCKS 32
#define SEED_ROWS (SEED_BLOCKS * 64)
#define SEED_MIN_ROWS ((int64_t) 32 * SEED_ROWS)

/* 1 unless the environment variable name starts with off (read once, into *cache) */
static int
EnvSwitch(int *cache, const char *name, char off)
{
    if (*cache < 0)
    {
        const char *e = getenv(name);

        *cache = !(e && e[0] == off);
    }
    return *cache;
}

static int
SeedEnabled(void)
{
    static int on = -1;

    return EnvSwitch(&on, "CODEVEC_KNN_SEED", '0');
}

/*
 * Phase 2's merge in two launches (CODEVEC_KNN_MERGE=1 in the environment
 * keeps one, for comparisons): with more than MERGE_RUNS runs of kout keys
 * a query, up to MERGE_SEGS blocks a query each merge a segment of whole
 * runs into tmp, and one block a query merges those.  One block streaming
 * a query's (nb + 1) x kc keys took ~150 rounds of 512 keys at k = 128
 * with the rest of the GPU idle.  Measured on an H100 (bench/kernels/
 * merge-ab.sh, 2026-12-05): 5% faster at k = 128 with 1-8 queries, 2% at
 * k = 10 with 1-16, but 1.5% slower with 64 queries, whose blocks already
 * spread over the SMs; so batches of MERGE_MAX_NQ or more keep one launch
 * (the cut between 16 and 64 is not measured).
 */
#define MERGE_SEGS SEED_BLOCKS
#define MERGE_RUNS 16
#define MERGE_MAX_NQ 32

static int
TwoLevelMerge(void)
{
    static int on = -1;

    return EnvSwitch(&on, "CODEVEC_KNN_MERGE", '1');
}

/*
 * Merge M keys a query (runs of kout sorted keys) into the kout best:
 * keys to out_keys (out_stride apart) or distances and ids.  tmp, if not
 * NULL, has room for nq x MERGE_SEGS x kout keys.
 */
static int
KnnMerge(const uint64_t *in, int64_t M, int kout, int nq, int S2, size_t smem2, uint64_t *tmp,
         uint64_t *out_keys, int64_t out_stride, float *out_dist, int64_t *out_ids,
         cudaStream_t st, char *errbuf, size_t errlen)
{
    int64_t runs = M / kout;

    if (tmp && runs > MERGE_RUNS && nq < MERGE_MAX_NQ && TwoLevelMerge())
    {
        int64_t per = (runs + MERGE_SEGS - 1) / MERGE_SEGS;
        int     segs;

        per = MaxInt((int) per, MERGE_RUNS / 2);
        segs = (int) ((runs + per - 1) / per);
        topk_select_kernel<<<dim3(nq, segs), SELECT_THREADS, smem2, st>>>(in, M, kout, S2, tmp, kout,
                                                                           NULL, NULL, per * kout);
        LAUNCH_CHECK("topk_select_kernel (segments)");
        in = tmp;
        M = (int64_t) segs * kout;
    }
    topk_select_kernel<<<nq, SELECT_THREADS, smem2, st>>>(in, M, kout, S2, out_keys, out_stride,
                                                          out_dist, out_ids, M);
    LAUNCH_CHECK("topk_select_kernel");
    return CODEVEC_CUDA_OK;
}

/*
 * Run phase 1 and 2 (and the re-rank for fp16 and int8) for nq prepared
 * queries.  Qp/qn2 (q1 for int8) are prepared queries in the workspace.
 * For PATH_F16 and PATH_I8, ok[] gets the proof flags (device) and the
 * caller checks them.
 */
int
KnnLaunch(CodevecCudaIndex idx, int path, KnnCfg cfg, const float4 *Qp, const float *qn2,
          const __half *qh, const float *qinv, const float *q1, int nq, int k, int metric,
          float *d_dist, int64_t *d_ids, int *d_ok,
          unsigned char *scratch, size_t scratch_bytes, const KnnRanges *rg, cudaStream_t st,
          char *errbuf, size_t errlen)
{
    int  kc2 = Kc2(path, k);
    int  kc = path == PATH_F32 ? k : kc2 + 1;
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
        cfg.g = path == PATH_F32 ? 32 : 16;
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

    /* phase 0 (tensor-core batches of a whole index): a seeded threshold */
    int seed = path == PATH_F16 && cfg.g == 0 && nq >= 2 && !(rg && rg->nranges >= 0) &&
        p.args.n >= SEED_MIN_ROWS && SeedEnabled();
    int cnb = p.args.nb + (seed ? 1 : 0);
    size_t    c1 = AlignUp((size_t) nq * cnb * kc * 8);
    size_t    c2 = AlignUp((size_t) nq * kc * 8);
    size_t    c0 = AlignUp((size_t) nq * SEED_BLOCKS * kc * 8);
    uint64_t *cand1 = (uint64_t *) scratch;
    uint64_t *cand2 = (uint64_t *) (scratch + c1);
    uint64_t *cand0 = (uint64_t *) (scratch + c1 + c2);

    if (seed && c1 + c2 + c0 > scratch_bytes)
    {
        seed = 0;
        cnb = p.args.nb;
        c1 = AlignUp((size_t) nq * cnb * kc * 8);
        cand2 = (uint64_t *) (scratch + c1);
    }
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
    p.args.q1 = q1;
    if (path == PATH_I8)
        p.args.i8c = codevec_i8_consts(idx->dim);

    int    S2 = 2 * NextPow2(MaxInt(kc, SELECT_THREADS));
    size_t smem2 = 8 + (size_t) S2 * 8 + 16;

    CUDA_CHECK(FuncPrepare((const void *) topk_select_kernel, SELECT_THREADS, smem2, NULL));
    if (seed)
    {
        /*
         * Rows [0, SEED_ROWS) alone, 64 a block; their kc best keys per query
         * go to block nb of cand1 (the final merge sees them); the main scan
         * covers [SEED_ROWS, n) and keeps only keys below the kc-th of them,
         * which the kc sample rows already beat.  Exact: a row dropped this
         * way has a key above the kc-th smallest key of the whole index.
         */
        Plan ps = p;

        ps.grid.y = SEED_BLOCKS;
        ps.args.nb = SEED_BLOCKS;
        ps.args.cnb = SEED_BLOCKS;
        ps.args.n = SEED_ROWS;
        ps.args.rows_per_block = 64;
        ps.args.cand = cand0;
        ps.fn<<<ps.grid, ps.threads, ps.smem, st>>>(ps.args);
        LAUNCH_CHECK("knn_f16_mma_kernel (seed)");
        topk_select_kernel<<<nq, SELECT_THREADS, smem2, st>>>(cand0, (int64_t) SEED_BLOCKS * kc, kc, S2,
                                                              cand1 + (size_t) p.args.nb * kc,
                                                              (int64_t) cnb * kc, NULL, NULL,
                                                              (int64_t) SEED_BLOCKS * kc);
        LAUNCH_CHECK("topk_select_kernel (seed)");
        p.args.row0 = SEED_ROWS;
        p.args.rows_per_block = (p.args.n - SEED_ROWS + p.args.nb - 1) / p.args.nb;
        p.args.cnb = cnb;
        p.args.seed = cand1 + (size_t) p.args.nb * kc;
    }
    p.fn<<<p.grid, p.threads, p.smem, st>>>(p.args);
    LAUNCH_CHECK(path == PATH_F32 ? "knn_f32_kernel" : path == PATH_I8 ? "knn_i8_kernel"
                 : cfg.g ? "knn_f16_kernel" : "knn_f16_mma_kernel");

    int64_t   M = (int64_t) cnb * kc;
    /* after cand2, where the seed's keys were (they are in cand1 by now) */
    uint64_t *tmp = c1 + c2 + c0 <= scratch_bytes ? (uint64_t *) (scratch + c1 + c2) : NULL;

    if (path == PATH_F32)
        return KnnMerge(cand1, M, k, nq, S2, smem2, tmp, NULL, k, d_dist, d_ids, st, errbuf, errlen);

    int rc = KnnMerge(cand1, M, kc, nq, S2, smem2, tmp, cand2, kc, NULL, NULL, st, errbuf, errlen);

    if (rc != CODEVEC_CUDA_OK)
        return rc;

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
    r.q16 = path == PATH_F16 && cfg.g == 0;
    r.i8 = path == PATH_I8;
    r.q1 = q1;

    /* int8: ~128 candidates, so more warps (one candidate each at a time) */
    int rthreads = path == PATH_I8 ? 512 : 256;

    CUDA_CHECK(FuncPrepare((const void *) rerank_kernel, rthreads, (size_t) r.P * 8, NULL));
    rerank_kernel<<<nq, rthreads, (size_t) r.P * 8, st>>>(r);
    LAUNCH_CHECK("rerank_kernel");
    return CODEVEC_CUDA_OK;
}

/* Bytes of workspace KnnLaunch needs at most for nq queries (row blocks:
 * at most 8 per multiprocessor, or nbmax for a ranged scan); i8: room for
 * the int8 path's longer candidate lists. */
static size_t
ScratchBytes(CodevecCudaIndex idx, int nq, int k, int nbmax, int i8)
{
    int    kc = Kc2(i8 ? PATH_I8 : PATH_F16, k) + 1;
    size_t nb = (size_t) MaxInt(idx->sms * 8, nbmax) + 1;   /* + the seed's block */

    return AlignUp((size_t) nq * nb * kc * 8) + AlignUp((size_t) nq * kc * 8) +
        AlignUp((size_t) nq * SEED_BLOCKS * kc * 8) + 4096;
}

/* Lay the workspace out from base (NULL: only size it); returns its bytes. */
size_t
KnnQueryWsLayout(CodevecCudaIndex idx, int nq, int k, int nbmax, int per_query, int i8,
                 unsigned char *base, QueryWs *w)
{
    size_t o = 0, s4 = AlignUp((size_t) nq * 4);

    w->Qp = (float4 *) (base + o);  o += AlignUp((size_t) nq * idx->dpad4 * 16);
    w->qn2 = (float *) (base + o);  o += s4;
    w->ok = (int *) (base + o);     o += s4;
    w->qh = (__half *) (base + o);  o += AlignUp((size_t) nq * idx->dpad8 * 16);
    w->qinv = (float *) (base + o); o += s4;
    w->q1 = (float *) (base + o);   o += s4;
    w->blk = (int64_t *) (base + o); o += AlignUp((size_t) MaxInt(nbmax, 1) * 16 * (per_query ? nq : 1));
    w->scratch = base + o;
    w->sb = ScratchBytes(idx, nq, k, nbmax, i8);
    return o + w->sb;
}

/* ------------------------------------------------------------------ */
/* for the autotuner (knn_tune.cu)                                     */
/* ------------------------------------------------------------------ */

/* Whether a configuration can run nq queries keeping kc keys each. */
int
KnnCfgFeasible(CodevecCudaIndex idx, int path, KnnCfg cfg, int nq, int kc)
{
    Plan p;

    return MakePlan(idx, path, cfg, nq, kc, &p) &&
        !(path == PATH_F16 && cfg.g != 0 &&
          cfg.qb * F16Unroll(F16Chunks(idx->dpad8, cfg.g)) > cfg.g) &&
        !(path == PATH_I8 && cfg.qb * I8Unroll(I8Chunks(idx->dpad16, cfg.g)) > cfg.g);
}

/* The int8 candidates kept per block and query for k (the tuner's kc). */
int
KnnI8Kc(int k)
{
    return I8Kc2(k) + 1;
}

/*
 * CODEVEC_KNN_INT8 in the environment, read once: "0" no int8 copy and no
 * int8 scan; "1" an int8 copy for every fp16 index and the int8 first
 * pass for every call (tests); unset or anything else (-1): the copy and
 * the int8 pass for single queries where the autotuner measured it faster
 * than fp16.
 */
int
KnnInt8Mode(void)
{
    static int mode = -2;

    if (mode == -2)
    {
        const char *e = getenv("CODEVEC_KNN_INT8");

        mode = e && e[0] == '0' && !e[1] ? 0 : e && e[0] == '1' && !e[1] ? 1 : -1;
    }
    return mode;
}

/* Fill count floats of device memory with pseudo-random values. */
void
KnnFillRandom(float *d_x, int64_t count, uint64_t seed, int blocks)
{
    fill_random_kernel<<<blocks, 256>>>(d_x, count, seed);
}

/* Prepare nq device queries into a laid-out workspace. */
void
KnnPrepQueries(CodevecCudaIndex idx, const float *d_queries, int nq, const QueryWs *w)
{
    query_prep_kernel<<<nq, 32>>>(d_queries, idx->dim, idx->dpad4, w->Qp, w->qn2, idx->dpad8,
                                  w->qh, w->qinv, w->q1);
}

/* ------------------------------------------------------------------ */
/* C interface                                                         */
/* ------------------------------------------------------------------ */

/*
 * Allocate an index of n rows of dim components on the current device:
 * the fp32 copy, norms, statistics, the fp16 copy for CODEVEC_PREC_FP16
 * and, when int8 is set too, the int8 codes and scales (n x (16 dpad16 +
 * 4) bytes).  *out is set even on failure (free it).
 */
int
KnnIndexAlloc(int64_t n, int dim, int precision, int int8, CodevecCudaIndex *out,
           char *errbuf, size_t errlen)
{
    CodevecCudaIndex idx = (CodevecCudaIndex) calloc(1, sizeof(CodevecCudaIndexData));
    cudaDeviceProp   prop;
    unsigned int     init[4] = {0u, 0u, 0x7f800000u, 0x7f800000u};

    if (!idx)
    {
        SetError(errbuf, errlen, "out of host memory%s%s", "", "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    idx->n = n;
    idx->dim = dim;
    idx->dpad4 = (dim + 3) / 4;
    idx->dpad8 = ((dim + 15) / 16) * 2;     /* rows 32-byte aligned for the tensor cores */
    idx->dpad16 = (dim + 15) / 16;
    idx->precision = precision;
    idx->fp16_ok = precision == CODEVEC_PREC_FP16;
    KnnDefaultCfg(idx->cfg);
    idx->cfg8 = (KnnCfg) {1, 8, 2, 8};
    int8 = int8 && precision == CODEVEC_PREC_FP16;
    *out = idx;
    CUDA_CHECK(cudaGetDevice(&idx->device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, idx->device));
    idx->sms = prop.multiProcessorCount;
    idx->smem_optin = (int) prop.sharedMemPerBlockOptin;

    size_t b32 = (size_t) n * idx->dpad4 * 16;
    size_t b16 = (size_t) (n + MMA_ROWS) * idx->dpad8 * 16;    /* + zero rows for tiles */
    size_t b8 = (size_t) n * idx->dpad16 * 16;

    if (cudaMalloc((void **) &idx->x32, b32 ? b32 : 16) != cudaSuccess ||
        cudaMalloc((void **) &idx->norm2, n ? n * 4 : 4) != cudaSuccess ||
        cudaMalloc((void **) &idx->stats, 16) != cudaSuccess ||
        (precision == CODEVEC_PREC_FP16 &&
         cudaMalloc((void **) &idx->x16, b16 ? b16 : 16) != cudaSuccess) ||
        (int8 && (cudaMalloc((void **) &idx->x8, b8 ? b8 : 16) != cudaSuccess ||
                  cudaMalloc((void **) &idx->x8s, n ? n * 4 : 4) != cudaSuccess)))
    {
        cudaGetLastError();
        char need[64];

        snprintf(need, sizeof(need), "%.1f MiB",
                 (b32 + (precision == CODEVEC_PREC_FP16 ? b16 : 0) + n * 4 +
                  (int8 ? b8 + n * 4 : 0)) / 1048576.0);
        SetError(errbuf, errlen, "out of GPU memory for an index of %s%s", need, "");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    CUDA_CHECK(cudaMemset(idx->x32, 0, b32 ? b32 : 16));
    CUDA_CHECK(cudaMemset(idx->norm2, 0, n ? n * 4 : 4));
    if (idx->x16)
        CUDA_CHECK(cudaMemset(idx->x16, 0, b16 ? b16 : 16));
    if (idx->x8)
    {
        CUDA_CHECK(cudaMemset(idx->x8, 0x80, b8 ? b8 : 16));    /* code 0 */
        CUDA_CHECK(cudaMemset(idx->x8s, 0, n ? n * 4 : 4));
    }
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
    rc = KnnTuneGet(dim, &te, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    if (precision == CODEVEC_PREC_AUTO)
        precision = te.prec;

    /* the int8 copy only where it pays (the tuner's choice) or is forced */
    int mode = KnnInt8Mode();

    rc = KnnIndexAlloc(n, dim, precision, mode == 1 || (mode < 0 && te.i8), out, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
    {
        codevec_cuda_index_free(*out);
        *out = NULL;
        return rc;
    }
    memcpy((*out)->cfg, te.cfg, sizeof(te.cfg));
    if (te.us8 > 0)
        (*out)->cfg8 = te.cfg8;
    (*out)->i8_auto = te.i8;
    (*out)->have_cfg = 1;
    return CODEVEC_CUDA_OK;
}

/* Upload from host or device memory (cudaMemcpyDefault). */
int
KnnIndexUpload(CodevecCudaIndex idx, const float *vectors, int64_t first, int64_t count,
            char *errbuf, size_t errlen)
{
    unsigned int st[4];

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
                                                     idx->dpad4, idx->dpad8, idx->stats, idx->x8,
                                                     idx->x8s, idx->dpad16);
    LAUNCH_CHECK("upload_finish_kernel");
    CUDA_CHECK(cudaMemcpy(st, idx->stats, sizeof(st), cudaMemcpyDeviceToHost));
    memcpy(&idx->maxabs, &st[0], 4);
    memcpy(&idx->minabs, &st[3], 4);
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
    /* int8: every non-zero row scale in [2^-32, 2^16], the bound's range (knn_i8.h) */
    idx->i8_ok = idx->x8 != NULL && isfinite(idx->maxnorm) &&
        idx->maxabs <= 127.0f * 65536.0f && (isinf(idx->minabs) || idx->minabs >= 127.0f * 0x1p-32f);
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_index_upload(CodevecCudaIndex idx, const float *vectors, int64_t first,
                          int64_t count, char *errbuf, size_t errlen)
{
    return KnnIndexUpload(idx, vectors, first, count, errbuf, errlen);
}

void
codevec_cuda_index_free(CodevecCudaIndex idx)
{
    if (!idx)
        return;
    cudaSetDevice(idx->device);
    cudaFree(idx->x32);
    cudaFree(idx->x16);
    cudaFree(idx->x8);
    cudaFree(idx->x8s);
    cudaFree(idx->norm2);
    cudaFree(idx->stats);
    cudaFree(idx->ws);
    cudaFree(idx->g_ids);
    cudaFree(idx->g_out);
    cudaFreeHost(idx->h_ok);
    KnnBatchFree(idx);
    cudaGetLastError();
    free(idx);
}

/* ------------------------------------------------------------------ */
/* gather: rows by id, for an exact re-rank by the caller              */
/* ------------------------------------------------------------------ */

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
            (idx->x16 ? (size_t) idx->n * idx->dpad8 * 16 : 0) +
            (idx->x8 ? (size_t) idx->n * (idx->dpad16 * 16 + 4) : 0) + idx->ws_bytes;
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
        if (off > 0 && (size_t) off < textlen)
            snprintf(text + off, textlen - off, " int8=%s",
                     !idx->x8 ? "none" : !idx->i8_ok ? "out-of-range"
                     : KnnInt8Mode() == 1 ? "forced" : idx->i8_auto ? "nq=1" : "unused");
    }
    return CODEVEC_CUDA_OK;
}


/*
 * Enqueue a k-NN on stream st without waiting: query preparation, phase 1
 * and 2 and, for fp16 storage, the re-rank with its proof flags (device,
 * call->w.ok). Nothing is read back; the caller decides on the fallback.
 */
int
KnnEnqueue(CodevecCudaIndex idx, const float *d_queries, int nq, int k, int metric,
           float *d_dist, int64_t *d_ids, cudaStream_t st, int force_path,
           const int64_t *ranges, int nranges, const int *qranges, KnnCall *call,
           char *errbuf, size_t errlen)
{
    int rc;

    if (!idx || !d_queries || !d_dist || !d_ids || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K ||
        metric < CODEVEC_METRIC_L2 || metric > CODEVEC_METRIC_COSINE)
    {
        SetError(errbuf, errlen, "invalid k-NN arguments (k must be 1..1024, nq >= 1, metric 0..2)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    CUDA_CHECK(cudaSetDevice(idx->device));

    int     path = force_path >= 0 ? force_path : (idx->fp16_ok ? PATH_F16 : PATH_F32);
    QueryWs *w = &call->w;
    KnnRanges *rg = &call->rg;
    int     mode = KnnInt8Mode();

    /*
     * The int8 first pass: forced (path 2, or CODEVEC_KNN_INT8=1), or single
     * queries where the tuner found it faster; only over codes whose scales
     * the bound covers. Batches keep the tensor cores (fp16).
     */
    if (force_path < 0 && idx->i8_ok && (mode == 1 || (mode < 0 && idx->i8_auto && nq == 1)))
        path = PATH_I8;
    if (path == PATH_I8 && !idx->i8_ok)
        path = idx->fp16_ok ? PATH_F16 : PATH_F32;
    if (path == PATH_F16 && !idx->fp16_ok)
        path = PATH_F32;
    int       nbmax = ranges ? MaxInt(idx->sms * 8, nranges) : 0;

    if (ranges && qranges)
    {
        /* the table holds nbmax blocks for each query */
        nbmax = 0;
        for (int q = 0; q < nq; q++)
            nbmax = MaxInt(nbmax, qranges[q]);
        nbmax = MaxInt(idx->sms * 8, nbmax);
    }

    rc = KnnEnsureWorkspace(idx, KnnQueryWsLayout(idx, nq, k, nbmax, ranges && qranges,
                                                  path == PATH_I8, NULL, w),
                         errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    KnnQueryWsLayout(idx, nq, k, nbmax, ranges && qranges, path == PATH_I8, idx->ws, w);
    idx->ws_seq++;              /* the workspace now holds this call's queries */
    rg->ranges = ranges;
    rg->nranges = ranges ? nranges : -1;
    rg->qranges = ranges ? qranges : NULL;
    rg->nq = nq;
    rg->nbmax = nbmax;
    rg->d_blk = w->blk;

    query_prep_kernel<<<nq, 32, 0, st>>>(d_queries, idx->dim, idx->dpad4, w->Qp, w->qn2,
                                         idx->dpad8, w->qh, w->qinv, w->q1);
    LAUNCH_CHECK("query_prep_kernel");

    call->path = path == PATH_I8 ? PATH_F16 : path;
    call->i8 = path == PATH_I8;
    call->bucket = NqBucket(nq);
    return KnnLaunch(idx, path, path == PATH_I8 ? idx->cfg8 : idx->cfg[path][call->bucket], w->Qp,
                     w->qn2, w->qh, w->qinv, w->q1, nq, k, metric, d_dist, d_ids, w->ok, w->scratch,
                     w->sb, rg, st, errbuf, errlen);
}

/* Answer a whole call again on the fp32 path (an fp16 or int8 proof failed). */
int
KnnRelaunchF32(CodevecCudaIndex idx, const KnnCall *call, int nq, int k, int metric,
               float *d_dist, int64_t *d_ids, cudaStream_t st, char *errbuf, size_t errlen)
{
    const QueryWs *w = &call->w;

    return KnnLaunch(idx, PATH_F32, idx->cfg[PATH_F32][call->bucket], w->Qp, w->qn2, w->qh,
                     w->qinv, w->q1, nq, k, metric, d_dist, d_ids, w->ok, w->scratch, w->sb,
                     &call->rg, st, errbuf, errlen);
}

/* knn on device pointers with an explicit configuration table. */
static int
KnnDevice(CodevecCudaIndex idx, const float *d_queries, int nq, int k, int metric,
          float *d_dist, int64_t *d_ids, cudaStream_t st, int *fallbacks,
          int force_path, const int64_t *ranges, int nranges, const int *qranges,
          char *errbuf, size_t errlen)
{
    KnnCall call;
    int     rc;

    if (fallbacks)
        *fallbacks = 0;
    rc = KnnEnqueue(idx, d_queries, nq, k, metric, d_dist, d_ids, st, force_path, ranges,
                    nranges, qranges, &call, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    if (call.path == PATH_F16)
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
        CUDA_CHECK(cudaMemcpyAsync(idx->h_ok, call.w.ok, (size_t) nq * 4, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        for (int i = 0; i < nq; i++)
            fails += idx->h_ok[i] ? 0 : 1;
        if (fails)
        {
            /* not provable for some query: answer the batch from fp32 */
            rc = KnnRelaunchF32(idx, &call, nq, k, metric, d_dist, d_ids, st, errbuf, errlen);
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

/* Internal for the test and bench programs: force a path (0 fp32, 1 fp16,
 * 2 int8 first pass; a path the index cannot scan falls back as in
 * KnnEnqueue). */
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

/* KnnGatherRowsAsync: see knn_internal.h */
int
KnnGatherRowsAsync(CodevecCudaIndex idx, const int64_t *d_ids, int count, float *d_out,
                   cudaStream_t st, char *errbuf, size_t errlen)
{
    gather_rows_kernel<<<(unsigned) count, 128, 0, st>>>((const float *) idx->x32,
                                                        (int64_t) idx->dpad4 * 4, idx->dim,
                                                        d_ids, count, d_out);
    LAUNCH_CHECK("gather_rows_kernel");
    return CODEVEC_CUDA_OK;
}
