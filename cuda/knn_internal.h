/*
 * knn_internal.h — what the k-NN units share (C++, not part of the C
 * interface): error macros, the kernel configurations the autotuner
 * chooses among, the index's host-side struct, the per-call workspace, and
 * the functions knn.cu (index, plans, launches, C interface) and
 * knn_tune.cu (autotuning and its cache) call in each other. Kernels are
 * in knn_kernels.cuh, which only knn.cu includes.
 */
#ifndef CODEVEC_KNN_INTERNAL_H
#define CODEVEC_KNN_INTERNAL_H

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <float.h>

#include "knn.h"

#define KEY_NONE 0xffffffffffffffffULL
#define FULL_MASK 0xffffffffu

/* ------------------------------------------------------------------ */
/* error handling                                                      */
/* ------------------------------------------------------------------ */

static inline void
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
            return codevec_cuda_status(err_);                               \
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
            return codevec_cuda_status(err_);                               \
        }                                                                   \
    } while (0)

static inline int NextPow2(int v) { int p = 1; while (p < v) p <<= 1; return p; }
static inline int MaxInt(int a, int b) { return a > b ? a : b; }
static inline int MinInt(int a, int b) { return a < b ? a : b; }
static inline int64_t MinInt64(int64_t a, int64_t b) { return a < b ? a : b; }


/* ------------------------------------------------------------------ */
/* kernel configurations                                               */
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
#define PATH_I8  2      /* int8 codes scanned first; like PATH_F16 it leaves proof
                         * flags and re-ranks from the fp32 copy (KnnLaunch) */
#define NBUCKETS 4
#define SMEM_CAP (100 * 1024)

/* the batch sizes each configuration bucket is tuned for */
static const int kBucketNq[NBUCKETS] = {1, 4, 16, 64};

/* The autotuner's choice for one (GPU model, dimension). */
typedef struct TuneEntry
{
    char   gpu[256];
    int    dim;
    KnnCfg cfg[2][NBUCKETS];
    double us[2][NBUCKETS];     /* measured time of the choice */
    int    prec;                /* chosen storage precision */
    KnnCfg cfg8;                /* the int8 first pass, single queries */
    double us8;                 /* its measured time (0: not measured) */
    int    i8;                  /* 1: single queries scan int8 codes first */
} TuneEntry;

/* events of a batch call: before and after H2D, kernels, gather, D2H */
#define KNN_BATCH_EVENTS 5
/*
 * batches of one index in flight at once (codevec_cuda_knn_batch_start),
 * and one more set for the synchronous codevec_cuda_knn_batch
 */
#define KNN_BATCH_ASYNC 2
#define KNN_BATCH_SETS (KNN_BATCH_ASYNC + 1)

/* A device index (knn.h's CodevecCudaIndex). */
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
    uint4        *x8;           /* int8 codes (n x dpad16 uint4) or NULL */
    float        *x8s;          /* their row scales */
    int           dpad16;       /* 16-code chunks per row */
    int           i8_ok;        /* codes exist and every scale lies in the
                                 * bound's range (knn_i8.h): scan them */
    int           i8_auto;      /* the tuner chose int8 for single queries */
    KnnCfg        cfg8;         /* the int8 kernel's configuration */
    float         minabs;       /* smallest non-zero max |x_i| of a row */
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
    /* codevec_cuda_knn_batch(_start): kept across calls, grown by doubling */
    cudaStream_t  b_stream;     /* created at the first batch */
    int           b_qcap;       /* queries the device query buffer holds */
    size_t        b_cap;        /* answers (queries x k) the device block holds */
    float        *b_dq;         /* device: queries; ids, then distances, then rows
                                 * (b_cap each) in one block at b_di */
    float        *b_dd;
    int64_t      *b_di;
    float        *b_drows;
    struct KnnBatchSet *b_sets; /* KNN_BATCH_SETS pinned host sides (knn.cu) */
    int           b_next;       /* the set the next start tries first */
    uint64_t      ws_seq;       /* KnnEnqueue calls so far: who laid out ws last */
};

/* Defaults until measured (chosen from the H100 run, see KERNELS.md). */

/* Per-call workspace: prepared queries, proof flags, candidate scratch. */
typedef struct QueryWs
{
    float4        *Qp;
    float         *qn2;
    int           *ok;
    __half        *qh;
    float         *qinv;
    float         *q1;          /* int8 path: fl(||q||_1) */
    int64_t       *blk;         /* ranged scans: the block table */
    unsigned char *scratch;
    size_t         sb;
} QueryWs;

/*
 * Row ranges a k-NN scans instead of all rows (IVF: the probed lists):
 * ranges[2i] is a first row, ranges[2i+1] a count. qranges NULL: every
 * query scans all nranges ranges; else query q scans its own qranges[q]
 * ranges, which follow those of the queries before it (nranges = their
 * sum). nbmax bounds the blocks per query (the workspace's candidate
 * room); d_blk is device room for the block table.
 */
struct KnnRanges
{
    const int64_t *ranges;
    int            nranges;
    const int     *qranges;
    int            nq;
    int            nbmax;
    int64_t       *d_blk;
};

/*
 * One k-NN call's launch state: the path run (int8 reported as PATH_F16:
 * its callers only ask whether proof flags must be read), its configuration bucket,
 * the laid-out workspace and the row ranges, kept so that the fp32
 * fallback can be launched again on the same prepared queries.
 */
typedef struct KnnCall
{
    int        path;            /* PATH_F32, or PATH_F16 for any first pass that
                                 * leaves proof flags (fp16 scores or int8) */
    int        i8;              /* the first pass scanned the int8 codes */
    int        bucket;
    QueryWs    w;
    KnnRanges  rg;
} KnnCall;

/* knn.cu */
extern void   KnnDefaultCfg(KnnCfg cfg[2][NBUCKETS]);
extern int    KnnEnsureWorkspace(CodevecCudaIndex idx, size_t bytes, char *errbuf, size_t errlen);
extern size_t KnnQueryWsLayout(CodevecCudaIndex idx, int nq, int k, int nbmax, int per_query, int i8,
                               unsigned char *base, QueryWs *w);
extern int    KnnLaunch(CodevecCudaIndex idx, int path, KnnCfg cfg, const float4 *Qp,
                        const float *qn2, const __half *qh, const float *qinv, const float *q1,
                        int nq, int k,
                        int metric, float *d_dist, int64_t *d_ids, int *d_ok,
                        unsigned char *scratch, size_t scratch_bytes, const struct KnnRanges *rg,
                        cudaStream_t st, char *errbuf, size_t errlen);
extern int    KnnIndexAlloc(int64_t n, int dim, int precision, int int8, CodevecCudaIndex *out,
                            char *errbuf, size_t errlen);
extern int    KnnInt8Mode(void);
extern int    KnnI8Kc(int k);
extern int    KnnIndexUpload(CodevecCudaIndex idx, const float *vectors, int64_t first,
                             int64_t count, char *errbuf, size_t errlen);
extern int    KnnCfgFeasible(CodevecCudaIndex idx, int path, KnnCfg cfg, int nq, int kc);
extern void   KnnFillRandom(float *d_x, int64_t count, uint64_t seed, int blocks);
extern void   KnnPrepQueries(CodevecCudaIndex idx, const float *d_queries, int nq,
                             const QueryWs *w);

/*
 * knn.cu, for knn_batch.cu: KnnEnqueue issues a k-NN on stream st without
 * waiting (query preparation, phases 1 and 2, for fp16 storage the re-rank
 * and its proof flags in call->w.ok; bumps idx->ws_seq); KnnRelaunchF32
 * answers the call again on the fp32 path from the prepared queries still
 * in the workspace; KnnGatherRowsAsync enqueues the fp32 rows of count
 * ids (device, -1: a zero row) into d_out (count x dim).
 */
extern int    KnnEnqueue(CodevecCudaIndex idx, const float *d_queries, int nq, int k, int metric,
                         float *d_dist, int64_t *d_ids, cudaStream_t st, int force_path,
                         const int64_t *ranges, int nranges, const int *qranges, KnnCall *call,
                         char *errbuf, size_t errlen);
extern int    KnnRelaunchF32(CodevecCudaIndex idx, const KnnCall *call, int nq, int k, int metric,
                             float *d_dist, int64_t *d_ids, cudaStream_t st, char *errbuf,
                             size_t errlen);
extern int    KnnGatherRowsAsync(CodevecCudaIndex idx, const int64_t *d_ids, int count,
                                 float *d_out, cudaStream_t st, char *errbuf, size_t errlen);

/* knn_batch.cu: free an index's batch buffers, sets and stream */
extern void   KnnBatchFree(CodevecCudaIndex idx);

/* knn_tune.cu: the tuned entry for (this GPU, dim), measured on first use */
extern int    KnnTuneGet(int dim, TuneEntry *out, char *errbuf, size_t errlen);

#endif                          /* CODEVEC_KNN_INTERNAL_H */
