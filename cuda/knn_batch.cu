/*
 * knn_batch.cu — the batched k-NN call of the GPU service
 * (codevec_cuda_knn_batch, and its two halves codevec_cuda_knn_batch_start /
 * _ready / _finish for double buffering; cuda/knn.h has the contract): one
 * copy of a batch's queries in from pinned memory, the kernels of knn.cu
 * (KnnEnqueue), the answers' fp32 rows gathered on the device, one copy of
 * every answer out into pinned memory, one event to wait on; an fp16
 * proof that failed answered again from fp32 (KnnRelaunchF32). Buffers
 * are kept with the index and grow by doubling.
 */
#include "knn_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* the batch call: one stream, pinned buffers, one wait; in two halves */
/* ------------------------------------------------------------------ */

/*
 * The host side of one batch in flight (codevec_cuda_knn_batch_start to
 * _finish): its queries and answers in pinned memory, its events, and
 * what a fallback needs to answer it again. An index has KNN_BATCH_SETS
 * of them, so the next batch's queries can go in while the last one's
 * answers wait to be read. The device buffers (queries, the answer
 * block, the workspace) are shared: the batches run one after the other
 * on the index's stream, and each reads its answers out before the next
 * one's kernels write them.
 */
struct KnnBatchSet
{
    int          busy;          /* started and not finished */
    uint64_t     seq;           /* idx->ws_seq after its KnnEnqueue */
    int          nq, k, metric, rows;
    KnnCall      call;
    int64_t     *ranges;        /* malloc'd copies of the caller's ranges */
    int         *qranges;
    int          nranges;
    int          qcap;          /* queries hq holds */
    size_t       cap;           /* answers hi / hd / hrows hold */
    float       *hq;            /* pinned: queries */
    int         *hok;           /* pinned: proof flags */
    int64_t     *hi;            /* pinned: ids, then distances, then rows */
    float       *hd;
    float       *hrows;
    cudaEvent_t  ev[KNN_BATCH_EVENTS];
    double       h0;            /* host clock at the start */
    double       enqueue_us;
};

static double
HostUs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Milliseconds between two recorded events as microseconds; 0 if unknown. */
static double
EventUs(cudaEvent_t a, cudaEvent_t b)
{
    float ms = 0.0f;

    if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess)
    {
        cudaGetLastError();
        return 0.0;
    }
    return ms * 1000.0;
}

/* KnnBatchFree: see knn_internal.h */
void
KnnBatchFree(CodevecCudaIndex idx)
{
    if (idx->b_stream)
    {
        cudaStreamSynchronize(idx->b_stream);
        cudaStreamDestroy(idx->b_stream);
    }
    cudaFree(idx->b_dq);
    cudaFree(idx->b_di);            /* b_dd and b_drows lie in its block */
    if (idx->b_sets)
        for (int s = 0; s < KNN_BATCH_SETS; s++)
        {
            KnnBatchSet *b = &idx->b_sets[s];

            for (int i = 0; i < KNN_BATCH_EVENTS; i++)
                if (b->ev[i])
                    cudaEventDestroy(b->ev[i]);
            cudaFreeHost(b->hq);
            cudaFreeHost(b->hok);
            cudaFreeHost(b->hi);
            free(b->ranges);
            free(b->qranges);
        }
    free(idx->b_sets);
}

/*
 * Make the batch buffers hold nq queries and nq x k answers: the device
 * queries, distances, ids and candidate rows (shared by the sets), and
 * set b's pinned queries, answers and proof flags (cudaHostAlloc); the
 * stream (a blocking one, so that the synchronous block-table copy of a
 * ranged scan on the legacy stream is ordered after the batches before
 * it and before its kernels) and b's events. Kept across calls, grown by
 * doubling, freed with the index. Device buffers are replaced only after
 * the stream drained (another set's batch may still read them); set b is
 * not in flight, so its host buffers are free to replace.
 */
static int
BatchReserve(CodevecCudaIndex idx, KnnBatchSet *b, int nq, int k, char *errbuf, size_t errlen)
{
    size_t nk = (size_t) nq * k;

    if (!b->ev[0])
        for (int i = 0; i < KNN_BATCH_EVENTS; i++)
            CUDA_CHECK(cudaEventCreate(&b->ev[i]));
    if (nq > idx->b_qcap)
    {
        int cap = MaxInt(nq, 2 * idx->b_qcap);

        CUDA_CHECK(cudaStreamSynchronize(idx->b_stream));
        cudaFree(idx->b_dq);
        idx->b_dq = NULL;
        idx->b_qcap = 0;
        CUDA_CHECK(cudaMalloc((void **) &idx->b_dq, (size_t) cap * idx->dim * 4));
        idx->b_qcap = cap;
    }
    if (nk > idx->b_cap)
    {
        size_t cap = nk > 2 * idx->b_cap ? nk : 2 * idx->b_cap;

        CUDA_CHECK(cudaStreamSynchronize(idx->b_stream));
        cudaFree(idx->b_di);            /* one block: ids, distances, rows */
        idx->b_dd = NULL;
        idx->b_di = NULL;
        idx->b_drows = NULL;
        idx->b_cap = 0;
        CUDA_CHECK(cudaMalloc((void **) &idx->b_di, cap * 8 + cap * 4 + cap * idx->dim * 4));
        idx->b_dd = (float *) (idx->b_di + cap);
        idx->b_drows = idx->b_dd + cap;
        idx->b_cap = cap;
    }
    if (nq > b->qcap)
    {
        int cap = MaxInt(nq, 2 * b->qcap);

        cudaFreeHost(b->hq);
        cudaFreeHost(b->hok);
        b->hq = NULL;
        b->hok = NULL;
        b->qcap = 0;
        CUDA_CHECK(cudaHostAlloc((void **) &b->hq, (size_t) cap * idx->dim * 4, cudaHostAllocDefault));
        CUDA_CHECK(cudaHostAlloc((void **) &b->hok, (size_t) cap * 4, cudaHostAllocDefault));
        b->qcap = cap;
    }
    if (nk > b->cap)
    {
        size_t cap = nk > 2 * b->cap ? nk : 2 * b->cap;

        cudaFreeHost(b->hi);
        b->hi = NULL;
        b->hd = NULL;
        b->hrows = NULL;
        b->cap = 0;
        /* ids, distances and rows in one block, so one copy brings all back */
        CUDA_CHECK(cudaHostAlloc((void **) &b->hi, cap * 8 + cap * 4 + cap * idx->dim * 4,
                                 cudaHostAllocDefault));
        b->hd = (float *) (b->hi + cap);
        b->hrows = b->hd + cap;
        b->cap = cap;
    }
    return CODEVEC_CUDA_OK;
}

/*
 * Enqueue the candidates' gather and the answers' copy back into set b
 * (rows: optional). The device block is laid out for b_cap answers, set
 * b's host block for b->cap: the three parts are copied apart when the
 * two differ.
 */
static int
BatchGatherAndCopy(CodevecCudaIndex idx, KnnBatchSet *b, size_t nk, cudaEvent_t after_gather,
                   char *errbuf, size_t errlen)
{
    cudaStream_t st = idx->b_stream;

    if (b->rows)
    {
        int rc = KnnGatherRowsAsync(idx, idx->b_di, (int) nk, idx->b_drows, st, errbuf, errlen);

        if (rc != CODEVEC_CUDA_OK)
            return rc;
    }
    CUDA_CHECK(cudaEventRecord(after_gather, st));
    if (b->cap == idx->b_cap)
        /* ids, distances (and rows): one copy of the block's used front */
        CUDA_CHECK(cudaMemcpyAsync(b->hi, idx->b_di,
                                   (b->rows ? (char *) (idx->b_drows + nk * idx->dim)
                                            : (char *) (idx->b_dd + nk)) - (char *) idx->b_di,
                                   cudaMemcpyDeviceToHost, st));
    else
    {
        CUDA_CHECK(cudaMemcpyAsync(b->hi, idx->b_di, nk * 8, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaMemcpyAsync(b->hd, idx->b_dd, nk * 4, cudaMemcpyDeviceToHost, st));
        if (b->rows)
            CUDA_CHECK(cudaMemcpyAsync(b->hrows, idx->b_drows, nk * idx->dim * 4,
                                       cudaMemcpyDeviceToHost, st));
    }
    return CODEVEC_CUDA_OK;
}

/*
 * Enqueue set b's whole batch from its pinned queries: the copy in, the
 * kernels with the proof flags, the gather and the copy out, with the
 * events around each step. Leaves b->call for the fallback and b->seq.
 */
static int
BatchEnqueue(CodevecCudaIndex idx, KnnBatchSet *b, char *errbuf, size_t errlen)
{
    cudaEvent_t *ev = b->ev;
    cudaStream_t st = idx->b_stream;
    int          rc;

    CUDA_CHECK(cudaEventRecord(ev[0], st));
    CUDA_CHECK(cudaMemcpyAsync(idx->b_dq, b->hq, (size_t) b->nq * idx->dim * 4,
                               cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaEventRecord(ev[1], st));
    rc = KnnEnqueue(idx, idx->b_dq, b->nq, b->k, b->metric, idx->b_dd, idx->b_di, st, -1,
                    b->ranges, b->nranges, b->ranges ? b->qranges : NULL, &b->call, errbuf,
                    errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    b->seq = idx->ws_seq;
    if (b->call.path == PATH_F16)
        CUDA_CHECK(cudaMemcpyAsync(b->hok, b->call.w.ok, (size_t) b->nq * 4,
                                   cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaEventRecord(ev[2], st));
    rc = BatchGatherAndCopy(idx, b, (size_t) b->nq * b->k, ev[3], errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    CUDA_CHECK(cudaEventRecord(ev[4], st));
    return CODEVEC_CUDA_OK;
}

/*
 * Start a batch in a free set among sets lo .. hi - 1: the public start
 * takes the first KNN_BATCH_ASYNC sets, the synchronous call the last one
 * (never in flight past its return), so a synchronous call between two
 * started batches always finds a set.
 */
static int
BatchStart(CodevecCudaIndex idx, int lo, int hi, const float *queries, int nq, int k,
           int metric, const int64_t *ranges, int nranges, const int *qranges, int rows,
           int *ticket, char *errbuf, size_t errlen)
{
    KnnBatchSet *b = NULL;
    double       h0 = HostUs();
    int          rc;

    if (!idx || !queries || !ticket || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K ||
        metric < CODEVEC_METRIC_L2 || metric > CODEVEC_METRIC_COSINE ||
        (ranges == NULL && nranges != 0) || nranges < 0 || (ranges == NULL && qranges != NULL) ||
        (size_t) nq * k > (size_t) 1 << 26)
    {
        SetError(errbuf, errlen, "invalid k-NN batch arguments (k must be 1..1024, nq >= 1, metric 0..2)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    CUDA_CHECK(cudaSetDevice(idx->device));
    if (!idx->b_stream)
    {
        idx->b_sets = (KnnBatchSet *) calloc(KNN_BATCH_SETS, sizeof(KnnBatchSet));
        if (!idx->b_sets)
        {
            SetError(errbuf, errlen, "out of host memory for %s batch buffers%s", "the", "");
            return CODEVEC_CUDA_ERR_NOMEM;
        }
        CUDA_CHECK(cudaStreamCreate(&idx->b_stream));
    }
    for (int i = 0; i < hi - lo && !b; i++)
    {
        int s = lo + (idx->b_next + i) % (hi - lo);

        if (!idx->b_sets[s].busy)
        {
            b = &idx->b_sets[s];
            *ticket = s;
            if (hi - lo > 1)
                idx->b_next = (s - lo + 1) % (hi - lo);
        }
    }
    if (!b)
    {
        SetError(errbuf, errlen, "%s k-NN batches of this index are in flight already (finish one first)%s",
                 hi - lo > 1 ? "two" : "one", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    rc = BatchReserve(idx, b, nq, k, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    /* the ranges are read again by a fallback: keep a copy */
    free(b->ranges);
    free(b->qranges);
    b->ranges = NULL;
    b->qranges = NULL;
    b->nranges = nranges;
    if (ranges)
    {
        b->ranges = (int64_t *) malloc(sizeof(int64_t) * 2 * MaxInt(nranges, 1));
        b->qranges = qranges ? (int *) malloc(sizeof(int) * nq) : NULL;
        if (!b->ranges || (qranges && !b->qranges))
        {
            SetError(errbuf, errlen, "out of host memory for %s row ranges%s", "the", "");
            return CODEVEC_CUDA_ERR_NOMEM;
        }
        memcpy(b->ranges, ranges, sizeof(int64_t) * 2 * nranges);
        if (qranges)
            memcpy(b->qranges, qranges, sizeof(int) * nq);
    }
    b->nq = nq;
    b->k = k;
    b->metric = metric;
    b->rows = rows != 0;
    memcpy(b->hq, queries, (size_t) nq * idx->dim * 4);
    rc = BatchEnqueue(idx, b, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
    {
        /* what was enqueued must not outlive the set's reuse */
        cudaStreamSynchronize(idx->b_stream);
        cudaGetLastError();
        return rc;
    }
    b->busy = 1;
    b->h0 = h0;
    b->enqueue_us = HostUs() - h0;
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_knn_batch_start(CodevecCudaIndex idx, const float *queries, int nq, int k,
                             int metric, const int64_t *ranges, int nranges, const int *qranges,
                             int rows, int *ticket, char *errbuf, size_t errlen)
{
    return BatchStart(idx, 0, KNN_BATCH_ASYNC, queries, nq, k, metric, ranges, nranges, qranges,
                      rows, ticket, errbuf, errlen);
}

int
codevec_cuda_knn_batch_ready(CodevecCudaIndex idx, int ticket)
{
    cudaError_t e;

    if (!idx || !idx->b_sets || ticket < 0 || ticket >= KNN_BATCH_SETS ||
        !idx->b_sets[ticket].busy)
        return 1;
    cudaSetDevice(idx->device);
    e = cudaEventQuery(idx->b_sets[ticket].ev[KNN_BATCH_EVENTS - 1]);
    if (e == cudaErrorNotReady)
        return 0;
    if (e != cudaSuccess)
        cudaGetLastError();     /* finish reports it */
    return 1;
}

int
codevec_cuda_knn_batch_finish(CodevecCudaIndex idx, int ticket, const float **dist,
                              const int64_t **ids, const float **rows,
                              CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
    CodevecCudaKnnTimes t;
    KnnBatchSet *b;
    cudaEvent_t *ev;
    cudaStream_t st;
    size_t       nk;
    double       h1 = HostUs();
    int          rc = CODEVEC_CUDA_OK, fails = 0;

    memset(&t, 0, sizeof(t));
    if (times)
        *times = t;
    if (!idx || !idx->b_sets || ticket < 0 || ticket >= KNN_BATCH_SETS ||
        !idx->b_sets[ticket].busy)
    {
        SetError(errbuf, errlen, "no k-NN batch in flight on this index under this ticket%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    b = &idx->b_sets[ticket];
    b->busy = 0;                /* whatever happens below, the set is free after */
    ev = b->ev;
    st = idx->b_stream;
    nk = (size_t) b->nq * b->k;
    t.enqueue_us = b->enqueue_us;
    CUDA_CHECK(cudaSetDevice(idx->device));
    CUDA_CHECK(cudaEventSynchronize(ev[4]));
    t.wait_us = HostUs() - h1;
    t.h2d_us = EventUs(ev[0], ev[1]);
    t.kernel_us = EventUs(ev[1], ev[2]);
    t.gather_us = EventUs(ev[2], ev[3]);
    t.d2h_us = EventUs(ev[3], ev[4]);
    if (b->call.path == PATH_F16)
        for (int i = 0; i < b->nq; i++)
            fails += b->hok[i] ? 0 : 1;
    if (fails)
    {
        /*
         * A proof failed for some query: the whole batch again from fp32.
         * The prepared queries in the workspace are still this batch's
         * when no KnnEnqueue ran since (ws_seq): then only the fp32
         * kernels run again. Otherwise a later batch (or call) laid the
         * workspace out for itself: wait for everything on the stream
         * (that batch's answers are then in its own set) and run this one
         * again from its pinned queries, on whichever path proves it.
         */
        double h2 = HostUs();

        if (idx->ws_seq == b->seq)
        {
            CUDA_CHECK(cudaEventRecord(ev[1], st));
            rc = KnnRelaunchF32(idx, &b->call, b->nq, b->k, b->metric, idx->b_dd, idx->b_di,
                                st, errbuf, errlen);
            if (rc == CODEVEC_CUDA_OK)
            {
                CUDA_CHECK(cudaEventRecord(ev[2], st));
                rc = BatchGatherAndCopy(idx, b, nk, ev[3], errbuf, errlen);
            }
        }
        else
        {
            CUDA_CHECK(cudaStreamSynchronize(st));
            rc = BatchEnqueue(idx, b, errbuf, errlen);
            if (rc == CODEVEC_CUDA_OK)
            {
                CUDA_CHECK(cudaEventSynchronize(ev[4]));
                fails = 0;
                if (b->call.path == PATH_F16)
                    for (int i = 0; i < b->nq; i++)
                        fails += b->hok[i] ? 0 : 1;
                if (fails)
                {
                    CUDA_CHECK(cudaEventRecord(ev[1], st));
                    rc = KnnRelaunchF32(idx, &b->call, b->nq, b->k, b->metric, idx->b_dd,
                                        idx->b_di, st, errbuf, errlen);
                    if (rc == CODEVEC_CUDA_OK)
                    {
                        CUDA_CHECK(cudaEventRecord(ev[2], st));
                        rc = BatchGatherAndCopy(idx, b, nk, ev[3], errbuf, errlen);
                    }
                }
            }
        }
        if (rc != CODEVEC_CUDA_OK)
            return rc;
        CUDA_CHECK(cudaEventRecord(ev[4], st));
        CUDA_CHECK(cudaEventSynchronize(ev[4]));
        t.fallback_us = HostUs() - h2;
        t.kernel_us += EventUs(ev[1], ev[2]);
        t.gather_us += EventUs(ev[2], ev[3]);
        t.d2h_us += EventUs(ev[3], ev[4]);
    }
    t.fallbacks = fails;
    if (dist)
        *dist = b->hd;
    if (ids)
        *ids = b->hi;
    if (rows)
        *rows = b->rows ? b->hrows : NULL;
    if (times)
        *times = t;
    return CODEVEC_CUDA_OK;
}

int
codevec_cuda_knn_batch(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
                       const int64_t *ranges, int nranges, const int *qranges,
                       float *out_dist, int64_t *out_ids, float *out_rows,
                       CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
    const float   *d, *r;
    const int64_t *i;
    size_t         nk = (size_t) nq * k;
    int            ticket, rc;

    if (times)
        memset(times, 0, sizeof(*times));
    if (!out_dist || !out_ids)
    {
        SetError(errbuf, errlen, "invalid k-NN batch arguments (no output)%s%s", "", "");
        return CODEVEC_CUDA_ERR_ARG;
    }
    rc = BatchStart(idx, KNN_BATCH_ASYNC, KNN_BATCH_SETS, queries, nq, k, metric, ranges,
                    nranges, qranges, out_rows != NULL, &ticket, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    rc = codevec_cuda_knn_batch_finish(idx, ticket, &d, &i, &r, times, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        return rc;
    memcpy(out_dist, d, nk * 4);
    memcpy(out_ids, i, nk * 8);
    if (out_rows)
        memcpy(out_rows, r, nk * idx->dim * 4);
    return CODEVEC_CUDA_OK;
}
