/*
 * kmeans.h — plain C interface to IVF training on the GPU (cuda/kmeans.cu).
 *
 * k-means for gpuivf's lists: k-means++ seeding (Arthur & Vassilvitskii,
 * "k-means++: the advantages of careful seeding", SODA 2007) and Lloyd
 * iterations (Lloyd, "Least squares quantization in PCM", 1982), the same
 * algorithm as the CPU's GpuivfKmeans (src/gpuivfutils.c): the distance
 * work runs on the GPU (the seeding's D(x)^2 updates in a kernel, each
 * iteration's assignment through the exact k-NN kernels of cuda/knn.h with
 * the centroids as the index and k = 1); the draws and the centroid means
 * are computed on the host in double precision, in a fixed order, so a run
 * is deterministic for its input. The GPU's and the CPU's centroids may
 * differ where float rounding decides a near tie; both are valid k-means.
 *
 * Statuses (CODEVEC_CUDA_OK, CODEVEC_CUDA_ERR_*) and messages as in
 * codevec_cuda.h; nothing aborts.
 */
#ifndef CODEVEC_CUDA_KMEANS_H
#define CODEVEC_CUDA_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "codevec_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Scale each of n rows of dim floats to unit length, the norm summed in
 * double precision (zero rows stay zero): spherical k-means, on the CPU
 * (src/gpuivfutils.c) and the GPU (kmeans.cu) alike.
 */
static inline void
codevec_normalize_rows(float *x, int64_t n, int dim)
{
    for (int64_t i = 0; i < n; i++)
    {
        float *r = x + (size_t) i * dim;
        double s = 0;

        for (int j = 0; j < dim; j++)
            s += (double) r[j] * r[j];
        if (s > 0)
        {
            float inv = (float) (1.0 / sqrt(s));

            for (int j = 0; j < dim; j++)
                r[j] *= inv;
        }
    }
}

/*
 * Train k centroids (k x dim floats, written to centroids) on n samples
 * (n x dim floats, host memory, finite). spherical != 0: cosine k-means,
 * the samples are normalised in place and so are the centroids. iters
 * Lloyd iterations (stops early when no assignment changes); seed fixes
 * the k-means++ draws. n <= k: every sample is a centroid, repeated.
 */
int codevec_cuda_kmeans(float *samples, int64_t n, int dim, int k, int spherical, int iters,
                        uint64_t seed, float *centroids, char *errbuf, size_t errlen);

/*
 * Nearest centroid of each of n vectors (n x dim, host memory) under
 * metric (CODEVEC_METRIC_* of cuda/knn.h: L2, IP = largest inner product,
 * cosine) among k centroids (k x dim): out[i] in 0..k-1, the first of
 * equal distances. Exact canonical distances (cuda/knn.h).
 */
int codevec_cuda_assign(const float *centroids, int k, int dim, int metric, const float *x,
                        int64_t n, int32_t *out, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* CODEVEC_CUDA_KMEANS_H */
