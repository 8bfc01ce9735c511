/*
 * kmeans.cu — IVF training and assignment on the GPU (see kmeans.h).
 *
 * The distance work is ours (a D(x)^2 update kernel for the seeding, the
 * exact k-NN kernels of knn.cu for the assignments); sums of clusters and
 * the k-means++ draws run on the host in double precision, in row order.
 */
#include <cuda_runtime.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "knn.h"

#define ASSIGN_CHUNK 1024       /* queries per k-NN launch: bounds its workspace */

static void
KmSetError(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

#define KM_CHECK(call)                                                      \
    do {                                                                    \
        cudaError_t err_ = (call);                                          \
        if (err_ != cudaSuccess)                                            \
        {                                                                   \
            KmSetError(errbuf, errlen, "cuda error in %s: %s", #call,       \
                       cudaGetErrorString(err_));                           \
            rc = codevec_cuda_status(err_);                                 \
            goto done;                                                      \
        }                                                                   \
    } while (0)

/* mind[i] = min(mind[i], |x_i - c|^2) (init: = |x_i - c|^2); a warp per row */
static __global__ void
mind_update_kernel(const float *x, int64_t n, int dim, const float *c, float *mind, int init)
{
    int64_t row = ((int64_t) blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int     lane = threadIdx.x & 31;
    float   acc = 0.0f;

    if (row >= n)
        return;
    for (int j = lane; j < dim; j += 32)
    {
        float d = x[row * dim + j] - c[j];

        acc = fmaf(d, d, acc);
    }
    for (int off = 16; off > 0; off >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0)
        mind[row] = init ? acc : fminf(mind[row], acc);
}

static uint64_t
SplitMix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/*
 * Nearest of k centroids (host, k x dim) for n rows already on the device
 * (d_x): d_ids (device, n) the centroid numbers. The centroids become a
 * k-row device index; the rows are its queries, ASSIGN_CHUNK at a time.
 */
static int
AssignDevice(const float *centroids, int k, int dim, int metric, const float *d_x, int64_t n,
             int64_t *d_ids, float *d_dist, char *errbuf, size_t errlen)
{
    CodevecCudaIndex cidx = NULL;
    int rc = codevec_cuda_index_create(k, dim, CODEVEC_PREC_AUTO, &cidx, errbuf, errlen);

    if (rc == CODEVEC_CUDA_OK)
        rc = codevec_cuda_index_upload(cidx, centroids, 0, k, errbuf, errlen);
    for (int64_t off = 0; rc == CODEVEC_CUDA_OK && off < n; off += ASSIGN_CHUNK)
    {
        int nq = (int) (n - off < ASSIGN_CHUNK ? n - off : ASSIGN_CHUNK);

        rc = codevec_cuda_knn_device(cidx, d_x + (size_t) off * dim, nq, 1, metric,
                                     d_dist + off, d_ids + off, NULL, NULL, errbuf, errlen);
    }
    codevec_cuda_index_free(cidx);
    return rc;
}

int
codevec_cuda_assign(const float *centroids, int k, int dim, int metric, const float *x,
                    int64_t n, int32_t *out, char *errbuf, size_t errlen)
{
    float   *d_x = NULL, *d_dist = NULL;
    int64_t *d_ids = NULL, *ids = NULL;
    int      rc = CODEVEC_CUDA_OK;

    if (!centroids || !x || !out || k < 1 || dim < 1 || dim > CODEVEC_CUDA_MAX_DIM || n < 0 ||
        metric < CODEVEC_METRIC_L2 || metric > CODEVEC_METRIC_COSINE)
    {
        KmSetError(errbuf, errlen, "invalid assignment arguments");
        return CODEVEC_CUDA_ERR_ARG;
    }
    if (n == 0)
        return CODEVEC_CUDA_OK;
    ids = (int64_t *) malloc(sizeof(int64_t) * n);
    if (!ids)
    {
        KmSetError(errbuf, errlen, "out of host memory");
        return CODEVEC_CUDA_ERR_NOMEM;
    }
    KM_CHECK(cudaMalloc((void **) &d_x, sizeof(float) * (size_t) n * dim));
    KM_CHECK(cudaMalloc((void **) &d_ids, sizeof(int64_t) * n));
    KM_CHECK(cudaMalloc((void **) &d_dist, sizeof(float) * n));
    KM_CHECK(cudaMemcpy(d_x, x, sizeof(float) * (size_t) n * dim, cudaMemcpyHostToDevice));
    rc = AssignDevice(centroids, k, dim, metric, d_x, n, d_ids, d_dist, errbuf, errlen);
    if (rc != CODEVEC_CUDA_OK)
        goto done;
    KM_CHECK(cudaMemcpy(ids, d_ids, sizeof(int64_t) * n, cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < n; i++)
        out[i] = ids[i] >= 0 && ids[i] < k ? (int32_t) ids[i] : 0;
done:
    cudaFree(d_x);
    cudaFree(d_ids);
    cudaFree(d_dist);
    cudaGetLastError();
    free(ids);
    return rc;
}

int
codevec_cuda_kmeans(float *samples, int64_t n, int dim, int k, int spherical, int iters,
                    uint64_t seed, float *centroids, char *errbuf, size_t errlen)
{
    float   *d_x = NULL, *d_mind = NULL, *d_dist = NULL, *mind = NULL;
    int64_t *d_ids = NULL, *assign = NULL, *prev = NULL;
    double  *sums = NULL;
    int64_t *counts = NULL;
    int      rc = CODEVEC_CUDA_OK;
    uint64_t rng = seed;
    int      metric = spherical ? CODEVEC_METRIC_COSINE : CODEVEC_METRIC_L2;

    if (!samples || !centroids || n < 0 || k < 1 || dim < 1 || dim > CODEVEC_CUDA_MAX_DIM ||
        iters < 0)
    {
        KmSetError(errbuf, errlen, "invalid k-means arguments");
        return CODEVEC_CUDA_ERR_ARG;
    }
    if (spherical)
        codevec_normalize_rows(samples, n, dim);
    if (n <= k)
    {
        /* fewer samples than lists: every sample is a centroid, repeated */
        for (int c = 0; c < k; c++)
        {
            if (n > 0)
                memcpy(centroids + (size_t) c * dim, samples + (size_t) (c % n) * dim,
                       sizeof(float) * dim);
            else
                memset(centroids + (size_t) c * dim, 0, sizeof(float) * dim);
        }
        return CODEVEC_CUDA_OK;
    }
    mind = (float *) malloc(sizeof(float) * n);
    assign = (int64_t *) malloc(sizeof(int64_t) * n);
    prev = (int64_t *) malloc(sizeof(int64_t) * n);
    sums = (double *) malloc(sizeof(double) * (size_t) k * dim);
    counts = (int64_t *) malloc(sizeof(int64_t) * k);
    if (!mind || !assign || !prev || !sums || !counts)
    {
        KmSetError(errbuf, errlen, "out of host memory");
        rc = CODEVEC_CUDA_ERR_NOMEM;
        goto done;
    }
    KM_CHECK(cudaMalloc((void **) &d_x, sizeof(float) * (size_t) n * dim));
    KM_CHECK(cudaMalloc((void **) &d_mind, sizeof(float) * n));
    KM_CHECK(cudaMalloc((void **) &d_dist, sizeof(float) * n));
    KM_CHECK(cudaMalloc((void **) &d_ids, sizeof(int64_t) * n));
    KM_CHECK(cudaMemcpy(d_x, samples, sizeof(float) * (size_t) n * dim, cudaMemcpyHostToDevice));

    /* k-means++ seeding: each next centroid drawn with probability ~ D(x)^2 */
    {
        unsigned blocks = (unsigned) ((n * 32 + 255) / 256);
        int64_t  pick = (int64_t) (SplitMix(&rng) % (uint64_t) n);

        memcpy(centroids, samples + (size_t) pick * dim, sizeof(float) * dim);
        mind_update_kernel<<<blocks, 256>>>(d_x, n, dim, d_x + (size_t) pick * dim, d_mind, 1);
        KM_CHECK(cudaGetLastError());
        for (int c = 1; c < k; c++)
        {
            double total = 0, r, acc = 0;

            KM_CHECK(cudaMemcpy(mind, d_mind, sizeof(float) * n, cudaMemcpyDeviceToHost));
            for (int64_t i = 0; i < n; i++)
                total += mind[i];
            r = (double) (SplitMix(&rng) >> 11) * (1.0 / 9007199254740992.0) * total;
            pick = n - 1;
            for (int64_t i = 0; i < n; i++)
            {
                acc += mind[i];
                if (acc >= r && mind[i] > 0)
                {
                    pick = i;
                    break;
                }
            }
            memcpy(centroids + (size_t) c * dim, samples + (size_t) pick * dim, sizeof(float) * dim);
            mind_update_kernel<<<blocks, 256>>>(d_x, n, dim, d_x + (size_t) pick * dim, d_mind, 0);
            KM_CHECK(cudaGetLastError());
        }
    }

    /* Lloyd iterations: assignment on the GPU, means on the host */
    for (int iter = 0; iter < iters; iter++)
    {
        int64_t changed = 0;

        rc = AssignDevice(centroids, k, dim, metric, d_x, n, d_ids, d_dist, errbuf, errlen);
        if (rc != CODEVEC_CUDA_OK)
            goto done;
        KM_CHECK(cudaMemcpy(assign, d_ids, sizeof(int64_t) * n, cudaMemcpyDeviceToHost));
        for (int64_t i = 0; i < n; i++)
        {
            if (assign[i] < 0 || assign[i] >= k)
                assign[i] = 0;          /* a NaN distance: cannot happen for finite rows */
            if (iter == 0 || assign[i] != prev[i])
                changed++;
            prev[i] = assign[i];
        }
        /* update: mean of each cluster; an empty cluster keeps its centroid */
        memset(sums, 0, sizeof(double) * (size_t) k * dim);
        memset(counts, 0, sizeof(int64_t) * k);
        for (int64_t i = 0; i < n; i++)
        {
            double      *s = sums + (size_t) assign[i] * dim;
            const float *x = samples + (size_t) i * dim;

            counts[assign[i]]++;
            for (int j = 0; j < dim; j++)
                s[j] += x[j];
        }
        for (int c = 0; c < k; c++)
            if (counts[c] > 0)
                for (int j = 0; j < dim; j++)
                    centroids[(size_t) c * dim + j] = (float) (sums[(size_t) c * dim + j] / counts[c]);
        if (spherical)
            codevec_normalize_rows(centroids, k, dim);
        if (iter > 0 && changed == 0)
            break;
    }
done:
    cudaFree(d_x);
    cudaFree(d_mind);
    cudaFree(d_dist);
    cudaFree(d_ids);
    cudaGetLastError();
    free(mind);
    free(assign);
    free(prev);
    free(sums);
    free(counts);
    return rc;
}
