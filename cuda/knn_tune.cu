/*
 * knn_tune.cu — autotuning of the k-NN kernels (knn.cu): for the present
 * GPU and a dimension, every candidate configuration (queries per tile,
 * warps per block, blocks per multiprocessor, lanes per row, and the fp16
 * or fp32 storage) is timed on a synthetic index four times the L2 cache,
 * for each batch bucket (kBucketNq), and the fastest kept; so is the int8
 * first pass for single queries, used where it beats fp16 and proves its
 * answers on the synthetic queries. Choices are
 * cached per (GPU model, dimension) in memory and appended to
 * $CODEVEC_CUDA_TUNE_FILE (the GPU service points it into the data
 * directory), so a restarted process reuses them; a mutex guards the cache.
 * CODEVEC_CUDA_NO_AUTOTUNE set: the defaults (KnnDefaultCfg), no timing.
 */
#include <pthread.h>

#include "knn_internal.h"

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
        /* version 2 adds the int8 pass; version 1 lines are measured again */
        if (sscanf(s, "codevec-tune-2 %255s %d %d%n", e.gpu, &e.dim, &e.prec, &used) != 3)
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
        if (ok && sscanf(s, " %d %d %d %d %lf %d", &e.cfg8.qb, &e.cfg8.warps, &e.cfg8.bps,
                         &e.cfg8.g, &e.us8, &e.i8) != 6)
            ok = 0;
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
    fprintf(f, "codevec-tune-2 %s %d %d", e->gpu, e->dim, e->prec);
    for (int pth = 0; pth < 2; pth++)
        for (int b = 0; b < NBUCKETS; b++)
            fprintf(f, " %d %d %d %d %.2f", e->cfg[pth][b].qb, e->cfg[pth][b].warps,
                    e->cfg[pth][b].bps, e->cfg[pth][b].g, e->us[pth][b]);
    fprintf(f, " %d %d %d %d %.2f %d\n", e->cfg8.qb, e->cfg8.warps, e->cfg8.bps, e->cfg8.g,
            e->us8, e->i8);
    fclose(f);
}

static int TuneRun(int dim, TuneEntry *e, char *report, size_t reportlen,
                   char *errbuf, size_t errlen);

/* The tuned entry for (this GPU, dim), measuring it on first use. */
int
KnnTuneGet(int dim, TuneEntry *out, char *errbuf, size_t errlen)
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
        KnnDefaultCfg(out->cfg);
        out->cfg8 = (KnnCfg) {1, 8, 2, 8};      /* int8 only where forced */
        return CODEVEC_CUDA_OK;
    }
    return TuneRun(dim, out, NULL, 0, errbuf, errlen);
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
        rc = KnnLaunch(idx, path, cfg, w->Qp, w->qn2, w->qh, w->qinv, w->q1, nq, 10,
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
 * The int8 first pass for single queries (the index has its codes unless
 * CODEVEC_KNN_INT8=0): time every configuration (warps, blocks per
 * multiprocessor, lanes per row), keep the fastest in e->cfg8 / e->us8,
 * and choose it (e->i8) when it beats the fp16 and fp32 passes and its
 * proof holds for at least 15 of the 16 first synthetic queries (k = 10,
 * cosine): a pass that falls back often is not faster.
 */
static int
TuneInt8(CodevecCudaIndex idx, TuneEntry *e, const QueryWs *w, float *dd, int64_t *di,
         cudaEvent_t e0, cudaEvent_t e1, char *report, size_t reportlen, int *off,
         char *errbuf, size_t errlen)
{
    static const int warps[] = {4, 8};
    static const int bpss[] = {1, 2, 4, 8};
    static const int gs[] = {8, 16, 32};
    double best = 1e30, worst = 0;
    int    tried = 0, proven = 0, rc;

    e->us8 = 0;
    e->i8 = 0;
    if (!idx->i8_ok)
        return CODEVEC_CUDA_OK;
    for (int wi = 0; wi < 2; wi++)
        for (int s = 0; s < 4; s++)
            for (int gi = 0; gi < 3; gi++)
            {
                KnnCfg c = {1, warps[wi], bpss[s], gs[gi]};
                double us;

                if (!KnnCfgFeasible(idx, PATH_I8, c, 1, KnnI8Kc(10)))
                    continue;
                rc = TimeCfg(idx, PATH_I8, c, w, 1, dd, di, e0, e1, &us, errbuf, errlen);
                if (rc != CODEVEC_CUDA_OK)
                    return rc;
                tried++;
                worst = us > worst ? us : worst;
                if (us < best)
                {
                    best = us;
                    e->cfg8 = c;
                }
            }
    if (!tried)
        return CODEVEC_CUDA_OK;
    e->us8 = best;

    /* the proof rate of the chosen configuration on 16 queries */
    {
        int ok[16];

        rc = KnnLaunch(idx, PATH_I8, e->cfg8, w->Qp, w->qn2, w->qh, w->qinv, w->q1, 16, 10,
                       CODEVEC_METRIC_COSINE, dd, di, w->ok, w->scratch, w->sb, NULL, 0,
                       errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            return rc;
        CUDA_CHECK(cudaMemcpy(ok, w->ok, sizeof(ok), cudaMemcpyDeviceToHost));
        for (int i = 0; i < 16; i++)
            proven += ok[i] ? 1 : 0;
    }
    e->i8 = proven >= 15 && best < e->us[PATH_F16][0] && best < e->us[PATH_F32][0];
    if (report && *off >= 0 && (size_t) *off < reportlen)
        *off += snprintf(report + *off, reportlen - *off,
                         "int8    1  (%d,%d,%d,%2d)  %10.1f %9.1f  %d  (proven %d/16: %s)\n",
                         e->cfg8.qb, e->cfg8.warps, e->cfg8.bps, e->cfg8.g, best, worst, tried,
                         proven, e->i8 ? "used for nq = 1" : "not used");
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
    KnnDefaultCfg(e->cfg);
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));

    int64_t n = (int64_t) 4 * prop.l2CacheSize / (((dim + 7) / 8) * 16);

    if (n < 65536)
        n = 65536;
    if (n > (1 << 22))
        n = 1 << 22;

    rc = KnnIndexAlloc(n, dim, CODEVEC_PREC_FP16, KnnInt8Mode() != 0, &idx, errbuf, errlen);
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
    KnnFillRandom(src, n * dim, 12345, 1024);
    KnnFillRandom(dq, (int64_t) 64 * dim, 777, 64);
    rc = KnnIndexUpload(idx, src, 0, n, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        goto done;
    {
        QueryWs w;

        rc = KnnEnsureWorkspace(idx, KnnQueryWsLayout(idx, 64, 10, 0, 0, idx->x8 != NULL, NULL, &w),
                                errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            goto done;
        KnnQueryWsLayout(idx, 64, 10, 0, 0, idx->x8 != NULL, idx->ws, &w);

        static const int qbs[] = {1, 2, 4, 8, 16, 32, 64};
        static const int warps[] = {4, 8};
        static const int bpss[] = {1, 2, 4, 8};
        static const int gs[] = {0, 8, 16, 32};     /* 0: tensor cores */

        KnnPrepQueries(idx, dq, 64, &w);
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
                                double us;
                                int    kc = pth == PATH_F16 ? 10 + 16 + 1 : 10;

                                /* tensor cores: 16..64 queries a tile, 4 warps, nq >= 4 */
                                if (c.g == 0 && (c.qb < 16 || c.warps != 4 || nq < 4))
                                    continue;
                                if (c.g != 0 && c.qb > 8)
                                    continue;
                                if ((c.qb > nq && c.g != 0) || (c.g == 0 && c.qb > MaxInt(16, nq)) ||
                                    !KnnCfgFeasible(idx, pth, c, nq, kc))
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
        rc = TuneInt8(idx, e, &w, dd, di, e0, e1, report, reportlen, &off, errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            goto done;
        e->prec = e->us[PATH_F16][0] < e->us[PATH_F32][0] || e->i8 ? CODEVEC_PREC_FP16
                                                                   : CODEVEC_PREC_FP32;
        if (report && off >= 0 && (size_t) off < reportlen)
            snprintf(report + off, reportlen - off,
                     "storage precision: %s (single query %.1f us fp16 vs %.1f us fp32, int8 %.1f us)\n",
                     e->prec == CODEVEC_PREC_FP32 ? "fp32" : e->i8 ? "fp16 + int8 (nq = 1) + fp32 rerank"
                                                                   : "fp16 + fp32 rerank",
                     e->us[PATH_F16][0], e->us[PATH_F32][0], e->us8);
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

/*
 * Internal for the test program: pin one kernel configuration for every
 * batch size (path 2: the int8 kernel's; CODEVEC_CUDA_ERR_ARG when the
 * index has no int8 codes in range).
 */
extern "C" int
codevec_cuda_index_set_cfg(CodevecCudaIndex idx, int path, int qb, int warps, int bps, int g)
{
    if (!idx || path < 0 || path > 2)
        return CODEVEC_CUDA_ERR_ARG;
    if (path == PATH_I8)
    {
        if (!idx->i8_ok)
            return CODEVEC_CUDA_ERR_ARG;
        idx->cfg8 = (KnnCfg) {qb, warps, bps, g};
        return CODEVEC_CUDA_OK;
    }
    for (int b = 0; b < NBUCKETS; b++)
    {
        idx->cfg[path][b].qb = qb;
        idx->cfg[path][b].warps = warps;
        idx->cfg[path][b].bps = bps;
        idx->cfg[path][b].g = g;
    }
    return CODEVEC_CUDA_OK;
}
