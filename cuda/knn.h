/*
 * knn.h — plain C interface to codevec's exact k-NN kernels (cuda/knn.cu).
 *
 * A CodevecCudaIndex is a block of n vectors of `dim` float4 components that
 * lives on the GPU.  Vector ids are row positions 0..n-1; the caller (gpuivf)
 * maps them to heap TIDs.  codevec_cuda_knn() returns, per query, the k rows
 * with the smallest distance, ordered by (distance, id): exactly what a scan
 * that computes every distance with codevec_canonical_distance() below and
 * sorts by (distance, id) returns.  See cuda/KERNELS.md for the design.
 *
 * Every function returns CODEVEC_CUDA_OK (0) or a negative CODEVEC_CUDA_ERR_*
 * (codevec_cuda.h) and writes a lowercase message without a final period
 * into errbuf (errlen bytes, always NUL-terminated when errlen > 0).  Nothing aborts; no function here
 * includes postgres.h.  One index must not be used by two host threads at
 * once (the GPU service serialises calls per index).
 */
#ifndef CODEVEC_CUDA_KNN_H
#define CODEVEC_CUDA_KNN_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include "codevec_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* status codes: CODEVEC_CUDA_OK and CODEVEC_CUDA_ERR_* of codevec_cuda.h */

/* metrics, as pgvector spells the operators */
#define CODEVEC_METRIC_L2      0   /* <->  sqrt(sum (q-x)^2)            */
#define CODEVEC_METRIC_IP      1   /* <#>  -(q . x)                     */
#define CODEVEC_METRIC_COSINE  2   /* <=>  1 - q.x / sqrt(|q|^2 |x|^2)  */

/* storage precision of the scanned copy on the device */
#define CODEVEC_PREC_AUTO   -1  /* let the autotuner choose             */
#define CODEVEC_PREC_FP32    0  /* fp32 only: 4*dim bytes per vector    */
#define CODEVEC_PREC_FP16    1  /* fp16 scan copy + fp32 re-rank copy   */

#define CODEVEC_CUDA_MAX_K     1024
#define CODEVEC_CUDA_MAX_DIM   2048

typedef struct CodevecCudaIndexData CodevecCudaIndexData;
typedef CodevecCudaIndexData *CodevecCudaIndex;

/*
 * Create an empty device block for n vectors of dim components (1..2048) in
 * the given precision (CODEVEC_PREC_*) on the current CUDA device.  Rows are
 * zero until uploaded.  *out is NULL on failure.
 */
int codevec_cuda_index_create(int64_t n, int dim, int precision,
                              CodevecCudaIndex *out, char *errbuf, size_t errlen);

/*
 * Copy rows [first, first+count) from host memory (count x dim floats, row
 * major, finite values) to the device and derive the norms and, for fp16
 * storage, the fp16 copy and, where the index has one, the int8 copy (per
 * row a scale max|x_i|/127 and one byte a component; cuda/knn_i8.h).
 * Synchronous.  Values beyond fp16's range make the index scan its fp32
 * copy (still exact, slower); a row scale outside [2^-32, 2^16] turns the
 * int8 first pass off; see codevec_cuda_index_info().
 *
 * The int8 copy (n x (16 ceil(dim/16) + 4) bytes) exists for fp16 indexes
 * where the autotuner found the int8 first pass faster for single queries,
 * or everywhere with CODEVEC_KNN_INT8=1 in the environment (which also
 * makes every call scan it first); CODEVEC_KNN_INT8=0: never.
 */
int codevec_cuda_index_upload(CodevecCudaIndex idx, const float *vectors,
                              int64_t first, int64_t count,
                              char *errbuf, size_t errlen);

/* Free the device block; NULL is fine. */
void codevec_cuda_index_free(CodevecCudaIndex idx);

/*
 * Describe the index: device bytes held (every copy: fp32, fp16, int8,
 * norms, the workspace), precision actually scanned (CODEVEC_PREC_FP32/FP16;
 * an int8 first pass counts as FP16: it re-ranks from fp32 the same way)
 * and the kernel configuration in use, as text (ending "int8=none |
 * out-of-range | forced | nq=1 | unused").
 */
int codevec_cuda_index_info(CodevecCudaIndex idx, size_t *device_bytes,
                            int *scan_precision, char *text, size_t textlen);

/*
 * Exact k nearest neighbours of nq queries (nq x dim floats, host memory).
 * Writes nq x k distances (float, pgvector's reported value) and ids (row
 * positions) in (distance, id) order.  When n < k the tail of each row is
 * id -1, distance +inf.  k in 1..1024, nq >= 1, metric CODEVEC_METRIC_*.
 * Synchronous.
 */
int codevec_cuda_knn(CodevecCudaIndex idx, const float *queries, int nq, int k,
                     int metric, float *out_dist, int64_t *out_ids,
                     char *errbuf, size_t errlen);

/*
 * The same over some rows only: nranges row ranges (ranges[2i] the first
 * row, ranges[2i+1] how many; in bounds, not overlapping) — the lists an
 * IVF scan probes, stored contiguously.  The k rows returned are exactly
 * the first k of those rows in (distance, id) order; rows outside the
 * ranges are never read.  ranges NULL (nranges 0) scans every row, as
 * codevec_cuda_knn.  Every query scans the same ranges.
 */
int codevec_cuda_knn_ranges(CodevecCudaIndex idx, const float *queries, int nq, int k,
                            int metric, const int64_t *ranges, int nranges,
                            float *out_dist, int64_t *out_ids,
                            char *errbuf, size_t errlen);

/*
 * The same with ranges per query: query q scans its own qranges[q] ranges,
 * which follow those of the queries before it in ranges (nranges = the
 * sum of qranges). One launch for queries that probe different lists.
 */
int codevec_cuda_knn_qranges(CodevecCudaIndex idx, const float *queries, int nq, int k,
                             int metric, const int64_t *ranges, int nranges, const int *qranges,
                             float *out_dist, int64_t *out_ids,
                             char *errbuf, size_t errlen);

/*
 * Where a codevec_cuda_knn_batch call's time went, microseconds: device
 * time between events on its stream (the queries' copy in, the kernels
 * with the proof flags, the candidates' gather, the answers' copy out;
 * an fp32 fallback's kernels, gather and copy are added to theirs) and
 * host time (issuing the work; waiting for it; the whole fallback).
 */
typedef struct CodevecCudaKnnTimes
{
    double h2d_us;
    double kernel_us;
    double gather_us;
    double d2h_us;
    double enqueue_us;
    double wait_us;
    double fallback_us;
    int    fallbacks;       /* queries whose fp16 proof failed (0 or all) */
} CodevecCudaKnnTimes;

/*
 * The same as codevec_cuda_knn_qranges (ranges NULL, nranges 0 and
 * qranges NULL: every row), plus, when out_rows is not NULL, the fp32
 * vectors of the answers (nq x k x dim floats, a zero row for id -1), in
 * one pass with no wait between its steps: one copy of all the queries
 * from pinned host memory, the kernels, the gather and one copy of every
 * answer back, on the index's own stream, then a single wait (and, when
 * an fp16 proof failed, the fp32 kernels, gather and copy once more).
 * Buffers (device and pinned host) are kept with the index and grow to
 * the largest batch seen; nq x k at most 2^26. times (may be NULL)
 * receives the breakdown above. Results are bit for bit those of nq
 * separate calls (ordered by (distance, id)).
 */
int codevec_cuda_knn_batch(CodevecCudaIndex idx, const float *queries, int nq, int k,
                           int metric, const int64_t *ranges, int nranges, const int *qranges,
                           float *out_dist, int64_t *out_ids, float *out_rows,
                           CodevecCudaKnnTimes *times, char *errbuf, size_t errlen);

/*
 * codevec_cuda_knn_batch in two halves, so that a caller can gather and
 * issue the next batch while this one runs (double buffering).
 *
 * _start copies the queries (nq x dim floats, host memory; copied before
 * it returns) into pinned memory and enqueues everything
 * codevec_cuda_knn_batch does (the copy in, the kernels, the gather of
 * the answers' fp32 rows when rows != 0, the copy out) on the index's
 * stream, then returns without waiting; *ticket names the batch. ranges
 * and qranges are copied too. At most two started batches of one index
 * may be unfinished at once: a third start fails with
 * CODEVEC_CUDA_ERR_ARG. Batches of one index run in the order started.
 *
 * _ready: 1 when the batch's work on the device is done (or the ticket is
 * not in flight), 0 while it runs; never waits.
 *
 * _finish waits for the batch and, when an fp16 proof failed, answers it
 * again from fp32 (only the fp32 kernels when no other k-NN call on this
 * index was issued since its start; otherwise after the stream drained,
 * the whole batch again from its pinned queries). Then *dist (nq x k
 * floats), *ids (nq x k row positions, -1 past the end) and *rows (nq x k
 * x dim floats; NULL unless rows was asked for), in (distance, id) order
 * per query, point into the index's pinned memory: valid until the next
 * _start of this index after this finish, or the index is freed. Bit for
 * bit the answers of codevec_cuda_knn_batch. times as there (enqueue_us
 * is the start's host time, wait_us the finish's wait). The ticket is
 * spent whatever the result. 0 or a CODEVEC_CUDA_ERR_* with errbuf set.
 *
 * The synchronous calls (codevec_cuda_knn_batch, codevec_cuda_knn, ...)
 * may run on the index between a start and its finish; they are ordered
 * after the started batches. Not thread-safe per index.
 */
int codevec_cuda_knn_batch_start(CodevecCudaIndex idx, const float *queries, int nq, int k,
                                 int metric, const int64_t *ranges, int nranges,
                                 const int *qranges, int rows, int *ticket,
                                 char *errbuf, size_t errlen);
int codevec_cuda_knn_batch_ready(CodevecCudaIndex idx, int ticket);
int codevec_cuda_knn_batch_finish(CodevecCudaIndex idx, int ticket, const float **dist,
                                  const int64_t **ids, const float **rows,
                                  CodevecCudaKnnTimes *times, char *errbuf, size_t errlen);

/*
 * The same on device pointers (queries nq x dim, outputs nq x k) and a
 * stream; returns once the results are written (it reads a small
 * per-query flag back to decide whether any query needs the fp32 fallback).
 * fallbacks (may be NULL) receives how many queries took the fallback.
 */
int codevec_cuda_knn_device(CodevecCudaIndex idx, const float *d_queries,
                            int nq, int k, int metric, float *d_out_dist,
                            int64_t *d_out_ids, void *stream, int *fallbacks,
                            char *errbuf, size_t errlen);

/*
 * Copy rows ids[0..count) (count <= CODEVEC_CUDA_MAX_K; an id < 0 gives a
 * zero row) of the fp32 copy to out (count x dim floats, host memory), so a
 * caller can recompute exact distances of candidates with its own code.
 * Synchronous.
 */
int codevec_cuda_index_rows(CodevecCudaIndex idx, const int64_t *ids, int count,
                            float *out, char *errbuf, size_t errlen);

/*
 * Measure the kernel candidates (queries per tile, warps per block, blocks
 * per multiprocessor, lanes per row, storage precision) on the current GPU
 * for vectors of `dim` components and cache the choice for this GPU model
 * (in memory, and in the file named by $CODEVEC_CUDA_TUNE_FILE if set).
 * Runs on its own at the first use of a (GPU, dim) pair; call it to re-run.
 * report (may be NULL) receives a readable table of what was chosen and why.
 */
int codevec_cuda_autotune(int dim, char *report, size_t reportlen,
                          char *errbuf, size_t errlen);

/*
 * Internal, for test/cuda and bench/kernels: run on a forced path (0 the
 * fp32 scan, 1 the fp16 scan + re-rank, 2 the int8 scan + re-rank; a path
 * the index cannot scan falls back to the next one) and pin one kernel
 * configuration (qb queries a tile, warps a block, blocks per
 * multiprocessor, g lanes a row on the fp16 CUDA-core kernel or 0 for the
 * tensor-core kernel; path 2: the int8 kernel's, g 8, 16 or 32, and
 * CODEVEC_CUDA_ERR_ARG when the index has no int8 copy in range).
 */
int codevec_cuda_knn_device_path(CodevecCudaIndex idx, const float *d_queries, int nq, int k,
                                 int metric, float *d_out_dist, int64_t *d_out_ids,
                                 void *stream, int *fallbacks, int path,
                                 char *errbuf, size_t errlen);
int codevec_cuda_index_set_cfg(CodevecCudaIndex idx, int path, int qb, int warps, int bps,
                               int g);

/*
 * The canonical distance: the one function of (q, x) that the GPU reports
 * and that a CPU scan must compute to agree with it bit for bit.  fp32
 * throughout, fused multiply-adds, summation in a fixed order: the
 * components are cut into 4-float chunks; chunk c goes to lane c mod 32;
 * each lane sums its chunks in order, element by element; the 32 lane
 * sums are added pairwise (lane j += lane j+16, then +8, +4, +2, +1).
 * Cosine clamps the similarity to [-1, 1] as pgvector does; a zero vector
 * gives NaN, which sorts after every number.
 * Compile callers with -ffp-contract=off.
 */
static inline float
codevec_canonical_sum(const float *q, const float *x, int dim, int l2)
{
    float lane[32];
    int   j, c, e, off;

    for (j = 0; j < 32; j++)
    {
        float acc = 0.0f;

        for (c = j; 4 * c < dim; c += 32)
            for (e = 0; e < 4; e++)
            {
                int   i = 4 * c + e;
                float a = i < dim ? q[i] : 0.0f;
                float b = i < dim ? x[i] : 0.0f;

                if (l2)
                {
                    float d = a - b;
                    acc = fmaf(d, d, acc);
                }
                else
                    acc = fmaf(a, b, acc);
            }
        lane[j] = acc;
    }
    for (off = 16; off > 0; off >>= 1)
        for (j = 0; j < off; j++)
            lane[j] = lane[j] + lane[j + off];
    return lane[0];
}

/* Finish a canonical distance from its sums (see codevec_canonical_distance). */
static inline float
codevec_canonical_finish(int metric, float sum, float qnorm2, float xnorm2)
{
    if (metric == CODEVEC_METRIC_L2)
        return sqrtf(sum);
    if (metric == CODEVEC_METRIC_IP)
        return -sum;
    {
        float denom = sqrtf(qnorm2 * xnorm2);
        float sim = sum / denom;

        if (sim > 1.0f)
            sim = 1.0f;
        else if (sim < -1.0f)
            sim = -1.0f;
        return 1.0f - sim;
    }
}

/* The canonical distance of one pair (see above). */
static inline float
codevec_canonical_distance(int metric, const float *q, const float *x, int dim)
{
    if (metric == CODEVEC_METRIC_L2)
        return codevec_canonical_finish(metric,
                                        codevec_canonical_sum(q, x, dim, 1), 0, 0);
    if (metric == CODEVEC_METRIC_IP)
        return codevec_canonical_finish(metric,
                                        codevec_canonical_sum(q, x, dim, 0), 0, 0);
    return codevec_canonical_finish(metric,
                                    codevec_canonical_sum(q, x, dim, 0),
                                    codevec_canonical_sum(q, q, dim, 0),
                                    codevec_canonical_sum(x, x, dim, 0));
}

/*
 * Candidates the fp16 path re-ranks for a k-NN of k (kc2; KERNELS.md):
 * k plus a margin of max(16, k/8), at most 2047.  The scan's per-block
 * buffers, the merges and the re-rank's sort are sized by the power of
 * two at or above kc2 + 1, so their cost steps at those powers.
 */
static inline int
codevec_knn_f16_kc2(int k)
{
    int kc2 = k + (k / 8 > 16 ? k / 8 : 16);

    return kc2 < 2047 ? kc2 : 2047;
}

/*
 * The largest k' >= k (at most max_k) whose fp16 k-NN keeps buffers of the
 * same power-of-two size as k's: asking k' candidates costs the kernels
 * about what k does (a scan that may need a few more rows than k asks for
 * k' at no extra device time).  k 101 -> 111 (kc2 + 1 = 128), 128 -> 227.
 * k <= 0 gives k.
 */
static inline int
codevec_knn_k_same_buffers(int k, int max_k)
{
    int p = 1;

    if (k <= 0 || k >= max_k)
        return k;
    while (p < codevec_knn_f16_kc2(k) + 1)
        p *= 2;
    while (k < max_k && codevec_knn_f16_kc2(k + 1) + 1 <= p)
        k++;
    return k;
}

#ifdef __cplusplus
}
#endif

#endif /* CODEVEC_CUDA_KNN_H */
