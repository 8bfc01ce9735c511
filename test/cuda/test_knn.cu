/*
 * test_knn.cu — correctness test of cuda/knn.cu against CPU references.
 *
 * For each data case (n, dim, storage precision, planted features) and each
 * metric it draws fresh random vectors, plants exact duplicates (ties that
 * only the id can break), a query equal to a stored row and, for some
 * cases, a zero vector or near-duplicate clusters, uploads them, and for
 * k in {1, 10, 100, 1024} and nq in {1, 8, 64} compares the GPU result to
 *  1. the canonical CPU scan (codevec_canonical_distance of knn.h, sorted
 *     by (distance, id)): ids and distances must be identical, bit for bit;
 *  2. an fp64 scan: every distance within 1e-5 (relative to the natural
 *     scale of the metric) and every id either the fp64 one or a near tie.
 * Then codevec_cuda_knn_batch (BatchCase) and its two halves started and
 * finished in several orders (PipelineCase) against separate calls, bit for
 * bit, nq 1..256, with the candidates' rows against the uploaded vectors.
 * The int8 first pass (path 2) runs as two more variants wherever the
 * index has int8 codes (always with CODEVEC_KNN_INT8=1, which also sends
 * every codevec_cuda_knn call through it); "adversarial" cases plant rows
 * at the int8 bound (components half a step from their codes, the error's
 * sign that of query 0's), rows one step apart, spikes, tiny and huge
 * scales and near-copies of query 0 (cuda/knn_i8.h).
 * Outputs are poisoned before each run, so an unwritten slot fails.
 *
 * usage: test_knn [--quick] [--batch] [--seed N]  (--batch: only the batch cases)     (exit status 0 = all passed)
 * CODEVEC_KNN_INT8=1 in the environment: int8 codes for every fp16 index
 * and a failure where one is missing.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <algorithm>
#include <vector>

#include "../../cuda/knn.h"
#include "../c/numcheck.h"       /* NaN-safe comparisons */

extern "C" int codevec_cuda_knn_device_path(CodevecCudaIndex idx, const float *d_queries, int nq,
                                            int k, int metric, float *d_out_dist,
                                            int64_t *d_out_ids, void *stream, int *fallbacks,
                                            int path, char *errbuf, size_t errlen);
extern "C" int codevec_cuda_index_set_cfg(CodevecCudaIndex idx, int path, int qb, int warps,
                                          int bps, int g);

/* kernel variants checked: fp32; fp16 on CUDA cores; fp16 on tensor cores;
 * int8 first pass (8 lanes a row, 1 query a tile; 16 lanes, 2 queries) */
#define NVARIANTS 5
static const struct { int path, qb, warps, bps, g; const char *name; } kVariants[NVARIANTS] = {
    {0, 8, 8, 2, 32, "fp32"}, {1, 4, 8, 2, 16, "fp16-simt"}, {1, 64, 4, 2, 0, "fp16-mma"},
    {2, 1, 8, 2, 8, "int8-g8"}, {2, 2, 4, 4, 16, "int8-g16-qb2"}};

static int g_int8_queries = 0;      /* queries answered through the int8 variants */
static int g_int8_fallbacks = 0;    /* of which the proof failed (fp32 answered) */

static uint64_t g_rng;

static double
Uniform(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double) (g_rng >> 11) * (1.0 / 9007199254740992.0);
}

static float
Gauss(void)
{
    double u1 = Uniform() + 1e-300, u2 = Uniform();

    return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Order key exactly as the GPU: NaN last, -0 == +0, then id. */
static uint64_t
Key(float f, int64_t id)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    if (f != f)
        u = 0x7fc00000u;
    else if (f == 0.0f)
        u = 0;
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t) u << 32) | (uint64_t) id;
}

static double
Dist64(int metric, const float *q, const float *x, int dim)
{
    double s = 0, qq = 0, xx = 0;

    for (int i = 0; i < dim; i++)
    {
        if (metric == CODEVEC_METRIC_L2)
            s += ((double) q[i] - x[i]) * ((double) q[i] - x[i]);
        else
            s += (double) q[i] * x[i];
        qq += (double) q[i] * q[i];
        xx += (double) x[i] * x[i];
    }
    if (metric == CODEVEC_METRIC_L2)
        return sqrt(s);
    if (metric == CODEVEC_METRIC_IP)
        return -s;
    double sim = s / sqrt(qq * xx);

    if (sim > 1)
        sim = 1;
    if (sim < -1)
        sim = -1;
    return 1 - sim;
}

static double
Norm(const float *x, int dim)
{
    double s = 0;

    for (int i = 0; i < dim; i++)
        s += (double) x[i] * x[i];
    return sqrt(s);
}

/* The tolerance scale of a distance: relative for L2, |q||x| for IP, 1 for cosine. */
static double
Scale(int metric, double ref, const float *q, const float *x, int dim)
{
    if (metric == CODEVEC_METRIC_L2)
        return fmax(fabs(ref), 1e-3 * (Norm(q, dim) + Norm(x, dim)));
    if (metric == CODEVEC_METRIC_IP)
        return Norm(q, dim) * Norm(x, dim);
    return 1.0;
}

typedef struct Case
{
    int64_t     n;
    int         dim;
    int         prec;
    int         clusters;   /* rows are near-duplicates of a few centres */
    int         zero_row;   /* plant a zero vector */
    float       scale;      /* multiply the data (1e5: beyond fp16 range) */
    const char *what;
    int         adversarial;    /* rows at the int8 bound (PlantAdversarial) */
} Case;

static int g_failures = 0;
static int g_checks = 0;

#define FAIL(...) do { if (g_failures++ < 30) { printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); } } while (0)

/*
 * Rows crafted against the int8 bound (cuda/knn_i8.h), relative to query q0,
 * by row position mod 8: components exactly half a step (s = 2^-7, or
 * 2^-27) from an even code, the error's sign that of q0's component
 * (error s/2 ||q0||_1, the bound's own worst case) or the opposite; a copy
 * of the row before it moved by one step in one component; tiny values
 * (some subnormal) with one +-50 spike; Gaussian times 2^-20 and 2^12;
 * q0 plus a 1e-6 perturbation (near-duplicates of the query); plain Gaussian.
 */
static void
PlantAdversarial(float *X, int64_t n, int dim, const float *q0)
{
    for (int64_t r = 0; r < n; r++)
    {
        float *x = X + (size_t) r * dim;
        int    kind = (int) (r % 8);
        float  s = r % 3 ? 0.0078125f : 0x1p-27f;

        switch (kind)
        {
            case 0:
            case 1:
                x[0] = 127.0f * s;
                for (int i = 1; i < dim; i++)
                {
                    int   code = 2 * (int) (Uniform() * 63.0) - 62;
                    float h = (q0[i] >= 0 ? 0.5f : -0.5f) * (kind == 0 ? 1.0f : -1.0f);

                    x[i] = ((float) code + h) * s;
                }
                break;
            case 2:
                if (r > 0)
                {
                    float mx = 0.0f;
                    int   j = (int) (Uniform() * dim);

                    memcpy(x, x - dim, sizeof(float) * dim);
                    for (int i = 0; i < dim; i++)
                        mx = fmaxf(mx, fabsf(x[i]));
                    if (fabsf(x[j]) < mx)
                        x[j] += (mx / 127.0f) * (Uniform() < 0.5 ? 1.0f : -1.0f);
                }
                break;
            case 3:
                for (int i = 0; i < dim; i++)
                    x[i] = (float) (Uniform() - 0.5) * (i % 3 == 0 ? 1e-40f : 1e-3f);
                x[(int) (Uniform() * dim)] = Uniform() < 0.5 ? 50.0f : -50.0f;
                break;
            case 4:
                for (int i = 0; i < dim; i++)
                    x[i] = Gauss() * 0x1p-20f;
                break;
            case 5:
                for (int i = 0; i < dim; i++)
                    x[i] = Gauss() * 4096.0f;
                break;
            case 6:
                for (int i = 0; i < dim; i++)
                    x[i] = q0[i] + 1e-6f * Gauss();
                break;
            default:
                break;
        }
    }
}

static int
RunCase(const Case *c, int quick)
{
    const int metrics[3] = {CODEVEC_METRIC_L2, CODEVEC_METRIC_IP, CODEVEC_METRIC_COSINE};
    const int ks[4] = {1, 10, 100, 1024};
    const int nqs[3] = {1, 8, 64};
    const int NQ = quick ? 8 : 64;
    int64_t   n = c->n;
    int       dim = c->dim;
    char      err[256];
    std::vector<float> X((size_t) n * dim), Q((size_t) NQ * dim);

    /* data: fresh Gaussian vectors, never zeros */
    std::vector<float> centres((size_t) 8 * dim);

    for (auto &v : centres)
        v = Gauss();
    for (int64_t r = 0; r < n; r++)
        for (int i = 0; i < dim; i++)
        {
            float v = c->clusters ? centres[(size_t) (r % 8) * dim + i] + 1e-4f * Gauss() : Gauss();

            X[(size_t) r * dim + i] = v * c->scale;
        }
    /* planted ties: exact duplicates at distant ids, in both orders */
    for (int t = 0; t < 6 && n >= 4; t++)
    {
        int64_t a = (int64_t) (Uniform() * n), b = (int64_t) (Uniform() * n);

        if (a != b)
            memcpy(&X[(size_t) b * dim], &X[(size_t) a * dim], (size_t) dim * 4);
    }
    if (c->zero_row && n > 2)
        memset(&X[(size_t) (n / 2) * dim], 0, (size_t) dim * 4);
    for (int q = 0; q < NQ; q++)
        for (int i = 0; i < dim; i++)
            Q[(size_t) q * dim + i] = Gauss() * c->scale;
    if (c->adversarial)
        PlantAdversarial(X.data(), n, dim, Q.data());
    /* query 1 is a stored row (distance 0 for L2/cosine, and its duplicate) */
    if (NQ > 1 && n > 0)
        memcpy(&Q[(size_t) dim], &X[(size_t) (n - 1) * dim], (size_t) dim * 4);
    /* query 2 duplicates a row that is planted twice */
    if (NQ > 2 && n >= 4)
    {
        memcpy(&X[(size_t) 1 * dim], &X[(size_t) 3 * dim], (size_t) dim * 4);
        memcpy(&Q[(size_t) 2 * dim], &X[(size_t) 3 * dim], (size_t) dim * 4);
    }

    CodevecCudaIndex idx = NULL;

    if (codevec_cuda_index_create(n, dim, c->prec, &idx, err, sizeof(err)) != 0 ||
        codevec_cuda_index_upload(idx, X.data(), 0, n, err, sizeof(err)) != 0)
    {
        FAIL("%s: create/upload: %s", c->what, err);
        codevec_cuda_index_free(idx);
        return 1;
    }

    int scanp;

    codevec_cuda_index_info(idx, NULL, &scanp, NULL, 0);

    float   *dQ, *dD;
    int64_t *dI;

    cudaMalloc(&dQ, (size_t) NQ * dim * 4);
    cudaMalloc(&dD, (size_t) NQ * 1024 * 4);
    cudaMalloc(&dI, (size_t) NQ * 1024 * 8);
    cudaMemcpy(dQ, Q.data(), (size_t) NQ * dim * 4, cudaMemcpyHostToDevice);

    int total_fallbacks = 0, int8_q = 0, int8_fb = 0;
    /*
     * The fp64 order check's near-tie scale: a pair's own, but on the
     * adversarial rows (spikes, scales up to 2^15) the largest row's: one
     * row's fp32 rounding there can move it past several neighbours, which
     * shifts every position between (the canonical check still demands
     * the CPU canonical answer bit for bit).
     */
    int64_t maxrow = 0;

    for (int64_t r = 1; c->adversarial && r < n; r++)
        if (Norm(&X[(size_t) r * dim], dim) > Norm(&X[(size_t) maxrow * dim], dim))
            maxrow = r;

    for (int m = 0; m < 3; m++)
    {
        int metric = metrics[m];
        int kmax = (int) std::min<int64_t>(1024, n);
        /* canonical and fp64 references: the top kmax of every query */
        std::vector<std::vector<uint64_t>> canon(NQ), ref64(NQ);

#pragma omp parallel for schedule(dynamic)
        for (int q = 0; q < NQ; q++)
        {
            std::vector<uint64_t>             keys(n);
            std::vector<std::pair<double, int64_t>> d64(n);

            for (int64_t r = 0; r < n; r++)
            {
                keys[r] = Key(codevec_canonical_distance(metric, &Q[(size_t) q * dim],
                                                         &X[(size_t) r * dim], dim), r);
                double v = Dist64(metric, &Q[(size_t) q * dim], &X[(size_t) r * dim], dim);

                d64[r] = std::make_pair(v != v ? INFINITY : v, r);
            }
            std::partial_sort(keys.begin(), keys.begin() + kmax, keys.end());
            std::partial_sort(d64.begin(), d64.begin() + kmax, d64.end());
            canon[q].assign(keys.begin(), keys.begin() + kmax);
            for (int i = 0; i < kmax; i++)
                ref64[q].push_back((uint64_t) d64[i].second);
        }

        for (int ki = 0; ki < 4; ki++)
            for (int ni = 0; ni < 3; ni++)
            {
                int k = ks[ki], nq = nqs[ni];

                if (nq > NQ)
                    continue;
                for (int var = 0; var < NVARIANTS; var++)
                {
                    int fb = 0;
                    int path = kVariants[var].path;
                    std::vector<float>   D((size_t) nq * k);
                    std::vector<int64_t> I((size_t) nq * k);

                    if (path >= 1 && c->prec != CODEVEC_PREC_FP16)
                        continue;
                    if (codevec_cuda_index_set_cfg(idx, path, kVariants[var].qb, kVariants[var].warps,
                                                   kVariants[var].bps, kVariants[var].g) != 0)
                    {
                        /* no int8 codes (in range): an error only where they were forced */
                        const char *e8 = getenv("CODEVEC_KNN_INT8");

                        if (path == 2 && e8 && !strcmp(e8, "1") && c->scale <= 1e5f)
                            FAIL("%s: CODEVEC_KNN_INT8=1 but the index has no int8 codes", c->what);
                        continue;
                    }
                    cudaMemset(dD, 0xff, (size_t) nq * k * 4);
                    cudaMemset(dI, 0x5a, (size_t) nq * k * 8);
                    if (codevec_cuda_knn_device_path(idx, dQ, nq, k, metric, dD, dI, NULL, &fb,
                                                     path, err, sizeof(err)) != 0)
                    {
                        FAIL("%s: knn: %s", c->what, err);
                        continue;
                    }
                    total_fallbacks += fb;
                    if (path == 2)
                    {
                        g_int8_queries += nq;
                        g_int8_fallbacks += fb;
                        int8_q += nq;
                        int8_fb += fb;
                    }
                    cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost);
                    cudaMemcpy(I.data(), dI, I.size() * 8, cudaMemcpyDeviceToHost);
                    for (int q = 0; q < nq; q++)
                        for (int i = 0; i < k; i++)
                        {
                            int64_t id = I[(size_t) q * k + i];
                            float   d = D[(size_t) q * k + i];

                            g_checks++;
                            if (i >= kmax)
                            {
                                if (id != -1 || !isinf(d))
                                    FAIL("%s m%d k%d nq%d var%d q%d pos%d: expected empty slot, got id %lld",
                                         c->what, metric, k, nq, var, q, i, (long long) id);
                                continue;
                            }
                            uint64_t want = canon[q][i];
                            int64_t  wid = (int64_t) (uint32_t) want;
                            float    wd = codevec_canonical_distance(metric, &Q[(size_t) q * dim],
                                                                     &X[(size_t) wid * dim], dim);

                            if (id != wid || Key(d, 0) != Key(wd, 0))
                            {
                                FAIL("%s m%d k%d nq%d var%d q%d pos%d: got (%lld, %.9g) canonical (%lld, %.9g)",
                                     c->what, metric, k, nq, var, q, i, (long long) id, d,
                                     (long long) wid, wd);
                                continue;
                            }
                            /* fp64: distance within 1e-5 of the scale, id the fp64 one or a near tie */
                            const float *qv = &Q[(size_t) q * dim], *xv = &X[(size_t) id * dim];
                            double r64 = Dist64(metric, qv, xv, dim);

                            if (r64 == r64)
                            {
                                double sc = Scale(metric, r64, qv, xv, dim);

                                /* equal (both infinite) or close; a NaN d is never close */
                                if (!((double) d == r64 || num_close(d, r64, 1e-5 * sc)))
                                    FAIL("%s m%d k%d q%d pos%d: distance %.9g vs fp64 %.12g",
                                         c->what, metric, k, q, i, d, r64);
                                int64_t rid = (int64_t) ref64[q][i];

                                if (rid != id)
                                {
                                    double o64 = Dist64(metric, qv, &X[(size_t) rid * dim], dim);

                                    double sco = c->adversarial ?
                                        fmax(sc, Scale(metric, r64, qv, &X[(size_t) maxrow * dim], dim)) : sc;

                                    if (!(o64 == r64 || num_close(o64, r64, 2e-5 * sco)))
                                        FAIL("%s m%d k%d q%d pos%d: id %lld (%.12g) but fp64 order has %lld (%.12g)",
                                             c->what, metric, k, q, i, (long long) id, r64,
                                             (long long) rid, o64);
                                }
                            }
                        }
                }
            }
    }
    printf("ok-ish %-46s n=%-7lld dim=%-4d scan=%s fallbacks=%d int8 %d of %d queries proven\n",
           c->what, (long long) n, dim, scanp == CODEVEC_PREC_FP16 ? "fp16" : "fp32",
           total_fallbacks, int8_q - int8_fb, int8_q);
    cudaFree(dQ);
    cudaFree(dD);
    cudaFree(dI);
    codevec_cuda_index_free(idx);
    return 0;
}

/*
 * codevec_cuda_knn_ranges: the rows of some contiguous lists only (an IVF
 * scan's probed lists). Reference: the canonical distance of every row in
 * the ranges, sorted by (distance, id): ids and distances must be equal,
 * bit for bit; rows outside the ranges must never appear.
 */
static void
RangesCase(int64_t n, int dim, int prec, int quick)
{
    char             err[256];
    CodevecCudaIndex idx = NULL;
    std::vector<float> x((size_t) n * dim);
    const int        L = 64;
    std::vector<int64_t> first(L + 1);

    for (auto &v : x)
        v = Gauss();
    if (codevec_cuda_index_create(n, dim, prec, &idx, err, sizeof(err)) != 0 ||
        codevec_cuda_index_upload(idx, x.data(), 0, n, err, sizeof(err)) != 0)
    {
        FAIL("ranges: setup: %s", err);
        codevec_cuda_index_free(idx);
        return;
    }
    /* L lists of random sizes (some empty) covering [0, n) */
    first[0] = 0;
    for (int l = 1; l < L; l++)
        first[l] = (int64_t) (Uniform() * n);
    first[L] = n;
    std::sort(first.begin(), first.end());
    for (int trial = 0; trial < (quick ? 2 : 12); trial++)
    {
        int nprobe = 1 + (int) (Uniform() * (trial % 3 == 0 ? 3 : 24));
        std::vector<int64_t> ranges;
        std::vector<char> in((size_t) n, 0);

        for (int i = 0; i < nprobe; i++)
        {
            int l = (int) (Uniform() * L);

            if (in[(size_t) (first[l] < n ? first[l] : 0)] && first[l + 1] > first[l])
                continue;                       /* no list twice */
            ranges.push_back(first[l]);
            ranges.push_back(first[l + 1] - first[l]);
            for (int64_t r = first[l]; r < first[l + 1]; r++)
                in[(size_t) r] = 1;
        }
        int nr = (int) ranges.size() / 2;
        float q[2048];

        for (int i = 0; i < dim; i++)
            q[i] = Gauss();
        for (int metric = 0; metric < 3; metric++)
            for (int k : {1, 10, 100, 1024})
            {
                std::vector<uint64_t> ref;
                std::vector<float> d(k);
                std::vector<int64_t> id(k);

                for (int64_t r = 0; r < n; r++)
                    if (in[(size_t) r])
                        ref.push_back(Key(codevec_canonical_distance(metric, q, &x[(size_t) r * dim], dim), r));
                std::sort(ref.begin(), ref.end());
                g_checks++;
                if (codevec_cuda_knn_ranges(idx, q, 1, k, metric, ranges.data(), nr, d.data(), id.data(),
                                            err, sizeof(err)) != 0)
                {
                    FAIL("ranges n=%lld dim=%d metric %d k %d: %s", (long long) n, dim, metric, k, err);
                    continue;
                }
                for (int i = 0; i < k; i++)
                {
                    int64_t want = i < (int) ref.size() ? (int64_t) (uint32_t) ref[i] : -1;

                    if (id[i] != want || (want >= 0 && Key(d[i], id[i]) != ref[i]) ||
                        (id[i] >= 0 && !in[(size_t) id[i]]))
                    {
                        FAIL("ranges n=%lld dim=%d prec %d metric %d k %d nr %d: rank %d id %lld want %lld",
                             (long long) n, dim, prec, metric, k, nr, i, (long long) id[i], (long long) want);
                        break;
                    }
                }
            }
    }
    /* ranges per query (codevec_cuda_knn_qranges): 5 queries, own lists each */
    for (int trial = 0; trial < (quick ? 1 : 6); trial++)
    {
        const int nq = 5;
        std::vector<float> qs((size_t) nq * dim);
        std::vector<int64_t> ranges;
        std::vector<int> qr(nq);
        std::vector<std::vector<char>> in(nq, std::vector<char>((size_t) n, 0));

        for (auto &v : qs)
            v = Gauss();
        for (int q = 0; q < nq; q++)
        {
            int nprobe = 1 + (int) (Uniform() * (q == 2 ? 1 : 12));

            qr[q] = 0;
            for (int i = 0; i < nprobe; i++)
            {
                int l = (int) (Uniform() * L);

                if (first[l + 1] > first[l] && in[q][(size_t) first[l]])
                    continue;
                ranges.push_back(first[l]);
                ranges.push_back(first[l + 1] - first[l]);
                qr[q]++;
                for (int64_t r = first[l]; r < first[l + 1]; r++)
                    in[q][(size_t) r] = 1;
            }
        }
        for (int metric = 0; metric < 3; metric++)
            for (int k : {1, 10, 300})
            {
                std::vector<float> d((size_t) nq * k);
                std::vector<int64_t> id((size_t) nq * k);

                g_checks++;
                if (codevec_cuda_knn_qranges(idx, qs.data(), nq, k, metric, ranges.data(),
                                             (int) ranges.size() / 2, qr.data(), d.data(), id.data(),
                                             err, sizeof(err)) != 0)
                {
                    FAIL("qranges n=%lld metric %d k %d: %s", (long long) n, metric, k, err);
                    continue;
                }
                for (int q = 0; q < nq; q++)
                {
                    std::vector<uint64_t> ref;

                    for (int64_t r = 0; r < n; r++)
                        if (in[q][(size_t) r])
                            ref.push_back(Key(codevec_canonical_distance(metric, &qs[(size_t) q * dim],
                                                                         &x[(size_t) r * dim], dim), r));
                    std::sort(ref.begin(), ref.end());
                    for (int i = 0; i < k; i++)
                    {
                        int64_t want = i < (int) ref.size() ? (int64_t) (uint32_t) ref[i] : -1;
                        int64_t got = id[(size_t) q * k + i];

                        if (got != want || (want >= 0 && Key(d[(size_t) q * k + i], got) != ref[i]))
                        {
                            FAIL("qranges n=%lld dim=%d metric %d k %d query %d rank %d: id %lld want %lld",
                                 (long long) n, dim, metric, k, q, i, (long long) got, (long long) want);
                            break;
                        }
                    }
                }
            }
    }
    /* no ranges: nothing; a range out of bounds: an argument error */
    {
        float   q[2048] = {1.0f};
        float   d[4];
        int64_t id[4], r[2] = {n - 1, 2};

        g_checks++;
        if (codevec_cuda_knn_ranges(idx, q, 1, 4, 0, r, 0, d, id, err, sizeof(err)) != 0 || id[0] != -1)
            FAIL("ranges: zero ranges should give no rows");
        g_checks++;
        if (codevec_cuda_knn_ranges(idx, q, 1, 4, 0, r, 1, d, id, err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG)
            FAIL("ranges: a range past the end was accepted");
    }
    codevec_cuda_index_free(idx);
    printf("ranges n=%lld dim=%d prec=%d: done\n", (long long) n, dim, prec);
}

/*
 * codevec_cuda_knn_batch: nq queries in one call give, bit for bit, the
 * distances and ids of nq separate codevec_cuda_knn calls and, as rows,
 * exactly the uploaded vectors of those ids (zeros for id -1). The data
 * has exact duplicates (ties that only the row position breaks); batch
 * sizes go up and down so the kept buffers are grown and reused; a ranged
 * (IVF) batch with lists per query is compared with per-query
 * codevec_cuda_knn_qranges calls.
 */
static void
BatchCase(int64_t n, int dim, int prec, int quick)
{
    char             err[256];
    CodevecCudaIndex idx = NULL;
    std::vector<float> x((size_t) n * dim);
    const int        maxnq = 256;
    std::vector<float> qs((size_t) (maxnq + 2) * dim);     /* + 2: the repeats' shifts */
    std::vector<int> nqs = quick ? std::vector<int>{1, 17, 3}
                                 : std::vector<int>{1, 256, 3, 64, 2, 100, 16, 255};

    for (auto &v : x)
        v = Gauss();
    for (int64_t r = 0; r < n / 10; r++)        /* every tenth row twice: ties */
        memcpy(&x[(size_t) (n - 1 - r) * dim], &x[(size_t) r * dim], sizeof(float) * dim);
    for (auto &v : qs)
        v = Gauss();
    memcpy(&qs[0], &x[0], sizeof(float) * dim);  /* a query equal to a duplicated row */
    if (codevec_cuda_index_create(n, dim, prec, &idx, err, sizeof(err)) != 0 ||
        codevec_cuda_index_upload(idx, x.data(), 0, n, err, sizeof(err)) != 0)
    {
        FAIL("batch: setup: %s", err);
        codevec_cuda_index_free(idx);
        return;
    }
    for (int metric = 0; metric < 3; metric++)
        for (int k : {1, 10, 100})
            for (int nq : nqs)
                /* each shape three times, on other queries (the queries shifted by
                 * one each time): kept buffers and plans reused for the same shape */
                for (int rep = 0; rep < 3; rep++)
            {
                const float *qb = qs.data() + (size_t) rep * dim;
                size_t nk = (size_t) nq * k;
                std::vector<float> bd(nk), brows(nk * dim), sd(k);
                std::vector<int64_t> bi(nk), si(k);
                CodevecCudaKnnTimes t;
                int bad = 0;

                std::fill(bd.begin(), bd.end(), -7.0f);     /* poisoned */
                std::fill(bi.begin(), bi.end(), (int64_t) -7);
                std::fill(brows.begin(), brows.end(), -7.0f);
                g_checks++;
                if (codevec_cuda_knn_batch(idx, qb, nq, k, metric, NULL, 0, NULL, bd.data(),
                                           bi.data(), brows.data(), &t, err, sizeof(err)) != 0)
                {
                    FAIL("batch n=%lld prec %d metric %d k %d nq %d rep %d: %s", (long long) n, prec,
                         metric, k, nq, rep, err);
                    continue;
                }
                if (!(t.h2d_us >= 0 && t.kernel_us > 0 && t.d2h_us >= 0 && t.wait_us >= 0 &&
                      t.enqueue_us > 0))
                    FAIL("batch times: h2d %g kernel %g d2h %g wait %g enqueue %g", t.h2d_us,
                         t.kernel_us, t.d2h_us, t.wait_us, t.enqueue_us);
                for (int q = 0; q < nq && !bad; q++)
                {
                    if (codevec_cuda_knn(idx, qb + (size_t) q * dim, 1, k, metric, sd.data(),
                                         si.data(), err, sizeof(err)) != 0)
                    {
                        FAIL("batch reference call: %s", err);
                        bad = 1;
                        break;
                    }
                    for (int i = 0; i < k && !bad; i++)
                    {
                        size_t  o = (size_t) q * k + i;
                        int64_t id = bi[o];

                        if (id != si[i] || memcmp(&bd[o], &sd[i], 4) != 0)
                        {
                            FAIL("batch n=%lld prec %d metric %d k %d nq %d rep %d query %d rank %d: "
                                 "id %lld dist %.9g, alone id %lld dist %.9g", (long long) n, prec,
                                 metric, k, nq, rep, q, i, (long long) id, bd[o], (long long) si[i], sd[i]);
                            bad = 1;
                        }
                        else if (id >= 0 ? memcmp(&brows[o * dim], &x[(size_t) id * dim], 4 * dim) != 0
                                 : std::any_of(&brows[o * dim], &brows[o * dim] + dim,
                                               [](float v) { return v != 0.0f; }))
                        {
                            FAIL("batch n=%lld metric %d k %d nq %d query %d rank %d: row of id %lld "
                                 "is not the uploaded vector", (long long) n, metric, k, nq, q, i,
                                 (long long) id);
                            bad = 1;
                        }
                    }
                }
            }

    /* rows uploaded again after a shape ran (larger norms: the re-rank's
     * bounds change): the next batches of that shape must match single
     * calls on the new rows */
    {
        const int nq = 16, k = 10, metric = CODEVEC_METRIC_COSINE;
        std::vector<float> bd((size_t) nq * k), sd(k);
        std::vector<int64_t> bi((size_t) nq * k), si(k);

        for (int64_t r = 0; r < n / 2; r++)
            for (int i = 0; i < dim; i++)
                x[(size_t) r * dim + i] *= 3.0f;
        if (codevec_cuda_index_upload(idx, x.data(), 0, n / 2, err, sizeof(err)) != 0)
            FAIL("batch re-upload: %s", err);
        for (int rep = 0; rep < 3; rep++)
        {
            g_checks++;
            if (codevec_cuda_knn_batch(idx, qs.data() + (size_t) rep * dim, nq, k, metric, NULL, 0,
                                       NULL, bd.data(), bi.data(), NULL, NULL, err, sizeof(err)) != 0)
            {
                FAIL("batch after re-upload: %s", err);
                break;
            }
            for (int q = 0; q < nq; q++)
            {
                if (codevec_cuda_knn(idx, qs.data() + (size_t) (rep + q) * dim, 1, k, metric,
                                     sd.data(), si.data(), err, sizeof(err)) != 0)
                {
                    FAIL("batch after re-upload, reference: %s", err);
                    break;
                }
                for (int i = 0; i < k; i++)
                    if (bi[(size_t) q * k + i] != si[i] || memcmp(&bd[(size_t) q * k + i], &sd[i], 4) != 0)
                    {
                        FAIL("batch after re-upload n=%lld rep %d query %d rank %d: id %lld, alone %lld",
                             (long long) n, rep, q, i, (long long) bi[(size_t) q * k + i], (long long) si[i]);
                        break;
                    }
            }
        }
    }

    /* ranged: each query its own lists, against one qranges call per query */
    {
        const int L = 32, nq = quick ? 7 : 37, k = 10;
        std::vector<int64_t> first(L + 1), ranges;
        std::vector<int> qr(nq);
        std::vector<float> bd((size_t) nq * k), brows((size_t) nq * k * dim), sd(k);
        std::vector<int64_t> bi((size_t) nq * k), si(k);

        first[0] = 0;
        for (int l = 1; l < L; l++)
            first[l] = (int64_t) (Uniform() * n);
        first[L] = n;
        std::sort(first.begin(), first.end());
        for (int q = 0; q < nq; q++)
        {
            int l0 = (int) (Uniform() * L), cnt = 1 + (int) (Uniform() * 4);

            qr[q] = 0;
            for (int l = l0; l < L && l < l0 + cnt; l++)   /* distinct, in order */
            {
                ranges.push_back(first[l]);
                ranges.push_back(first[l + 1] - first[l]);
                qr[q]++;
            }
        }
        for (int metric = 0; metric < 3; metric++)
        {
            int bad = 0;

            g_checks++;
            if (codevec_cuda_knn_batch(idx, qs.data(), nq, k, metric, ranges.data(),
                                       (int) ranges.size() / 2, qr.data(), bd.data(), bi.data(),
                                       brows.data(), NULL, err, sizeof(err)) != 0)
            {
                FAIL("batch ranged metric %d: %s", metric, err);
                continue;
            }
            for (int q = 0, at = 0; q < nq && !bad; at += qr[q], q++)
            {
                if (codevec_cuda_knn_qranges(idx, &qs[(size_t) q * dim], 1, k, metric,
                                             &ranges[(size_t) 2 * at], qr[q], &qr[q], sd.data(),
                                             si.data(), err, sizeof(err)) != 0)
                {
                    FAIL("batch ranged reference: %s", err);
                    break;
                }
                for (int i = 0; i < k && !bad; i++)
                {
                    size_t o = (size_t) q * k + i;

                    if (bi[o] != si[i] || memcmp(&bd[o], &sd[i], 4) != 0 ||
                        (bi[o] >= 0 && memcmp(&brows[o * dim], &x[(size_t) bi[o] * dim], 4 * dim) != 0))
                    {
                        FAIL("batch ranged metric %d query %d rank %d: id %lld, alone %lld",
                             metric, q, i, (long long) bi[o], (long long) si[i]);
                        bad = 1;
                    }
                }
            }
        }
    }
    /* bad arguments are statuses */
    {
        float d[4];
        int64_t id[4];

        g_checks++;
        if (codevec_cuda_knn_batch(idx, qs.data(), 0, 4, 0, NULL, 0, NULL, d, id, NULL, NULL,
                                   err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG ||
            codevec_cuda_knn_batch(idx, qs.data(), 1, 2000, 0, NULL, 0, NULL, d, id, NULL, NULL,
                                   err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG)
            FAIL("batch: nq 0 or k 2000 accepted");
    }
    codevec_cuda_index_free(idx);
    printf("batch n=%lld dim=%d prec=%d: done\n", (long long) n, dim, prec);
}

/*
 * codevec_cuda_knn_batch_start / _ready / _finish (double buffering):
 * batches started before the one before them finished, finished in and
 * out of order, with synchronous calls on the same index in between and
 * buffers that grow while a batch is in flight, give bit for bit the
 * answers of separate codevec_cuda_knn calls, and rows equal to the
 * uploaded vectors. Half the rows are near-duplicates of 8 centres and
 * some queries sit on a centre, so fp16 proofs fail for some batches:
 * the fallback then runs either right after the batch (nothing issued
 * since) or again from its pinned queries (another call laid out the
 * workspace since); both are counted and must have happened. A third
 * start while two are in flight is refused.
 */
static void
PipelineCase(int64_t n, int dim, int quick)
{
    char             err[256];
    CodevecCudaIndex idx = NULL;
    std::vector<float> x((size_t) n * dim), centres((size_t) 8 * dim);
    const int        maxnq = 80;
    const int        nbatches = quick ? 12 : 60;
    std::vector<float> qs((size_t) nbatches * maxnq * dim);
    int              fell_back = 0, started = 0;

    for (auto &v : centres)
        v = Gauss();
    for (int64_t r = 0; r < n; r++)
        for (int i = 0; i < dim; i++)
            x[(size_t) r * dim + i] = r < n / 2 ? centres[(size_t) (r % 8) * dim + i] + 1e-4f * Gauss()
                                                : Gauss();
    for (size_t q = 0; q < qs.size() / dim; q++)
        for (int i = 0; i < dim; i++)
            qs[q * dim + i] = q % 5 == 0 ? centres[(q % 8) * dim + i] + 1e-4f * Gauss() : Gauss();
    if (codevec_cuda_index_create(n, dim, CODEVEC_PREC_FP16, &idx, err, sizeof(err)) != 0 ||
        codevec_cuda_index_upload(idx, x.data(), 0, n, err, sizeof(err)) != 0)
    {
        FAIL("pipeline: setup: %s", err);
        codevec_cuda_index_free(idx);
        return;
    }

    /* batch b: nq grows and shrinks (buffers grow while one is in flight) */
    struct Batch { int nq, k, metric, ticket; const float *q; };
    std::vector<Batch> batches;
    for (int b = 0; b < nbatches; b++)
    {
        static const int nqs[] = {1, 3, 16, 2, 64, 1, 7, 80, 5, 33};
        static const int ks[] = {10, 1, 64, 10, 100};

        batches.push_back({nqs[b % 10], ks[b % 5], b % 3, -1,
                           qs.data() + (size_t) b * maxnq * dim});
    }
    /* check batch b's answers (pointers from _finish) against single calls */
    auto check = [&](int b, int rc, const float *d, const int64_t *id, const float *rows,
                     const CodevecCudaKnnTimes &t) {
        const Batch &B = batches[b];
        std::vector<float> sd(B.k);
        std::vector<int64_t> si(B.k);

        g_checks++;
        if (rc != 0)
        {
            FAIL("pipeline batch %d finish: %s", b, err);
            return;
        }
        fell_back += t.fallbacks > 0;
        for (int q = 0; q < B.nq; q++)
        {
            if (codevec_cuda_knn(idx, B.q + (size_t) q * dim, 1, B.k, B.metric, sd.data(), si.data(),
                                 err, sizeof(err)) != 0)
            {
                FAIL("pipeline reference: %s", err);
                return;
            }
            for (int i = 0; i < B.k; i++)
            {
                size_t o = (size_t) q * B.k + i;

                if (id[o] != si[i] || memcmp(&d[o], &sd[i], 4) != 0 ||
                    (id[o] >= 0 && memcmp(&rows[o * dim], &x[(size_t) id[o] * dim], 4 * dim) != 0))
                {
                    FAIL("pipeline batch %d (nq %d k %d metric %d) query %d rank %d: id %lld d %.9g, "
                         "alone %lld %.9g", b, B.nq, B.k, B.metric, q, i, (long long) id[o], d[o],
                         (long long) si[i], sd[i]);
                    return;
                }
            }
        }
    };
    auto start = [&](int b) {
        Batch &B = batches[b];

        g_checks++;
        started++;
        if (codevec_cuda_knn_batch_start(idx, B.q, B.nq, B.k, B.metric, NULL, 0, NULL, 1, &B.ticket,
                                         err, sizeof(err)) != 0)
            FAIL("pipeline batch %d start: %s", b, err);
    };
    /* finish b; its answers are copied before anything else runs on idx */
    auto finish = [&](int b) {
        const float   *d = NULL, *rows = NULL;
        const int64_t *id = NULL;
        CodevecCudaKnnTimes t;
        const Batch &B = batches[b];
        int rc = codevec_cuda_knn_batch_finish(idx, B.ticket, &d, &id, &rows, &t, err, sizeof(err));
        size_t nk = (size_t) B.nq * B.k;
        std::vector<float> dd(d ? d : &x[0], d ? d + nk : &x[0]);
        std::vector<int64_t> ii(id ? id : (const int64_t *) NULL, id ? id + nk : (const int64_t *) NULL);
        std::vector<float> rr(rows ? rows : &x[0], rows ? rows + nk * dim : &x[0]);

        check(b, rc, dd.data(), ii.data(), rr.data(), t);
    };
    /*
     * Patterns, by batch number mod 4: 0 start, start next, finish both
     * in order; 1 start two, finish the later first; 2 start, a
     * synchronous batch call and a single call on the same index, then
     * finish; 3 start, poll _ready until done, finish.
     */
    for (int b = 0; b + 1 < nbatches; b += 2)
    {
        switch ((b / 2) % 4)
        {
            case 0:
                start(b);
                start(b + 1);
                {
                    int t3;

                    g_checks++;
                    if (codevec_cuda_knn_batch_start(idx, batches[b].q, 1, 1, 0, NULL, 0, NULL, 0,
                                                     &t3, err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG)
                        FAIL("pipeline: a third start while two are in flight was accepted");
                }
                finish(b);
                finish(b + 1);
                break;
            case 1:
                start(b);
                start(b + 1);
                finish(b + 1);
                finish(b);
                break;
            case 2:
                start(b);
                {
                    const Batch &B = batches[b + 1];
                    size_t nk = (size_t) B.nq * B.k;
                    std::vector<float> d(nk), rows(nk * dim);
                    std::vector<int64_t> id(nk);
                    CodevecCudaKnnTimes t;
                    int rc = codevec_cuda_knn_batch(idx, B.q, B.nq, B.k, B.metric, NULL, 0, NULL,
                                                    d.data(), id.data(), rows.data(), &t, err,
                                                    sizeof(err));

                    check(b + 1, rc, d.data(), id.data(), rows.data(), t);
                }
                finish(b);
                break;
            default:
                start(b);
                {
                    int polls = 0;

                    while (!codevec_cuda_knn_batch_ready(idx, batches[b].ticket) && polls < 100000000)
                        polls++;
                }
                finish(b);
                start(b + 1);
                finish(b + 1);
                break;
        }
    }
    /* a spent or unknown ticket is refused */
    {
        const float *d;
        const int64_t *id;
        const float *rows;

        g_checks++;
        if (codevec_cuda_knn_batch_finish(idx, batches[0].ticket, &d, &id, &rows, NULL, err,
                                          sizeof(err)) != CODEVEC_CUDA_ERR_ARG ||
            codevec_cuda_knn_batch_finish(idx, 7, &d, &id, &rows, NULL, err, sizeof(err)) !=
            CODEVEC_CUDA_ERR_ARG)
            FAIL("pipeline: a spent or unknown ticket was accepted");
    }
    g_checks++;
    if (fell_back == 0)
        FAIL("pipeline: no batch took the fp32 fallback (the data should force some)");
    codevec_cuda_index_free(idx);
    printf("pipeline n=%lld dim=%d: %d batches started, %d answered after a fallback: done\n",
           (long long) n, dim, started, fell_back);
}

int
main(int argc, char **argv)
{
    int      quick = 0, batch_only = 0;
    uint64_t seed = (uint64_t) time(NULL) * 2654435761ULL ^ (uint64_t) clock();
    char     err[256], report[4096];

    for (int i = 1; i < argc; i++)
    {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--batch"))
            batch_only = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
    }
    g_rng = seed | 1;
    printf("test_knn seed %llu%s\n", (unsigned long long) seed, quick ? " (quick)" : "");

    /* interface errors come back as statuses */
    {
        CodevecCudaIndex bad = NULL;

        if (codevec_cuda_index_create(10, 0, 0, &bad, err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG || bad)
            FAIL("dim 0 accepted");
        else
            printf("error message check: %s\n", err);
        if (codevec_cuda_index_create(10, 4, 0, &bad, err, sizeof(err)) == 0)
        {
            float q[4] = {1, 2, 3, 4}, d[1];
            int64_t id[1];

            if (codevec_cuda_knn(bad, q, 1, 2000, 0, d, id, err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG)
                FAIL("k 2000 accepted");
            if (codevec_cuda_knn(bad, q, 1, 1, 7, d, id, err, sizeof(err)) != CODEVEC_CUDA_ERR_ARG)
                FAIL("metric 7 accepted");
            codevec_cuda_index_free(bad);
        }
    }
    if (!quick && codevec_cuda_autotune(384, report, sizeof(report), err, sizeof(err)) == 0)
        printf("%s", report);

    std::vector<Case> cases;

    if (quick)
    {
        cases.push_back({300, 7, CODEVEC_PREC_FP16, 0, 1, 1.0f, "quick fp16 dim7 zero-row"});
        cases.push_back({1100, 385, CODEVEC_PREC_FP32, 0, 0, 1.0f, "quick fp32 dim385"});
        cases.push_back({3001, 384, CODEVEC_PREC_FP16, 0, 1, 1.0f, "quick int8 adversarial", 1});
    }
    else
    {
        cases.push_back({1, 7, CODEVEC_PREC_FP32, 0, 0, 1.0f, "n=1 < k"});
        cases.push_back({5, 384, CODEVEC_PREC_FP16, 0, 0, 1.0f, "n=5 < k fp16"});
        cases.push_back({1000, 385, CODEVEC_PREC_FP32, 0, 0, 1.0f, "n<k=1024 fp32 dim385"});
        cases.push_back({4097, 7, CODEVEC_PREC_FP16, 0, 1, 1.0f, "odd n fp16 dim7 zero-row"});
        cases.push_back({4097, 7, CODEVEC_PREC_FP32, 0, 1, 1.0f, "odd n fp32 dim7 zero-row"});
        cases.push_back({20011, 384, CODEVEC_PREC_FP32, 0, 0, 1.0f, "fp32 dim384"});
        cases.push_back({20011, 384, CODEVEC_PREC_FP16, 0, 0, 1.0f, "fp16 dim384"});
        cases.push_back({9001, 385, CODEVEC_PREC_FP16, 0, 0, 1.0f, "fp16 dim385"});
        cases.push_back({6000, 384, CODEVEC_PREC_FP16, 1, 0, 1.0f, "fp16 near-duplicate clusters"});
        cases.push_back({3000, 100, CODEVEC_PREC_FP16, 0, 0, 1e5f, "fp16 beyond half range"});
        cases.push_back({5000, 2048, CODEVEC_PREC_FP16, 0, 0, 1.0f, "fp16 dim2048"});
        cases.push_back({70001, 64, CODEVEC_PREC_FP16, 0, 0, 1.0f, "fp16 dim64 n=70001"});
        /* past SEED_MIN_ROWS: batches take the seeded threshold (knn.cu,
         * phase 0); near-duplicate clusters put ties across the sample */
        cases.push_back({200003, 384, CODEVEC_PREC_FP16, 1, 0, 1.0f, "fp16 seeded, clusters n=200003"});
        cases.push_back({131101, 384, CODEVEC_PREC_FP16, 0, 1, 1.0f, "fp16 seeded n=131101 zero-row"});
        /* rows crafted at the int8 bound (PlantAdversarial), three shapes */
        cases.push_back({20011, 384, CODEVEC_PREC_FP16, 0, 1, 1.0f, "int8 adversarial dim384 zero-row", 1});
        cases.push_back({5003, 100, CODEVEC_PREC_FP16, 0, 0, 1.0f, "int8 adversarial dim100", 1});
        cases.push_back({3001, 2048, CODEVEC_PREC_FP16, 0, 0, 1.0f, "int8 adversarial dim2048", 1});
    }
    for (const Case &c : cases)
        if (!batch_only)
            RunCase(&c, quick);
    if (!batch_only)
    {
        RangesCase(quick ? 3000 : 50000, 384, CODEVEC_PREC_FP16, quick);
        RangesCase(quick ? 2000 : 20000, 385, CODEVEC_PREC_FP32, quick);
    }
    if (!quick && !batch_only)
        RangesCase(30000, 64, CODEVEC_PREC_FP16, quick);
    BatchCase(quick ? 3000 : 30011, 384, CODEVEC_PREC_FP16, quick);
    BatchCase(quick ? 2000 : 10007, 385, CODEVEC_PREC_FP32, quick);
    if (!quick)
        BatchCase(100003, 384, CODEVEC_PREC_FP16, quick);   /* seeded batches = single calls */
    PipelineCase(quick ? 4000 : 70001, 384, quick);        /* 70001: seeded batches */
    /* the int8 variants must have proven something, or they tested only the fallback */
    if (g_int8_queries > 0 && g_int8_fallbacks == g_int8_queries)
        FAIL("int8: every one of %d queries fell back to fp32", g_int8_queries);
    printf("int8 first pass: %d queries, %d proven, %d answered by the fp32 fallback\n",
           g_int8_queries, g_int8_queries - g_int8_fallbacks, g_int8_fallbacks);
    printf("%d checks, %d failures\n", g_checks, g_failures);
    printf(g_failures ? "RESULT: FAIL\n" : "RESULT: PASS\n");
    return g_failures ? 1 : 0;
}
