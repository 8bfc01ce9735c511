/*
 * bench_knn.cu — kernel benchmark of cuda/knn.cu (exact k-NN, cosine).
 *
 * Measures, in one run on one GPU: the device-to-device copy bandwidth
 * (bytes read + written) and a read-only streaming bandwidth, the
 * autotuner's choice for the dimension, then for each size, storage
 * precision and batch the median time of codevec_cuda_knn_device (query
 * preparation, similarity + top-k, merge, fp16 re-rank and proof, the
 * flag read-back: everything a search costs on the device) with CUDA
 * events, and the bytes it must read: rows (fp16 or fp32; int8 codes plus
 * a 4-byte scale) plus the 4-byte norm per row.  floor = bytes / copy
 * bandwidth.  When an index is smaller than 4x L2, several copies are
 * searched in turn so L2 cannot serve them.  Storages: fp16 (path 1),
 * int8 (the int8 first pass, path 2, on an fp16 index with int8 codes:
 * CODEVEC_KNN_INT8=1 is set for the run), fp32 (path 0).
 *
 * usage: bench_knn [--sizes 100000,1000000,10000000] [--dim 384]
 *                  [--nq 1,16,64] [--k 10] [--reps 50] [--csv FILE]
 *                  [--precs fp16,fp32]   (any of fp16, int8, fp32)
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <algorithm>
#include <vector>

#include "../../cuda/knn.h"

extern "C" int codevec_cuda_knn_device_path(CodevecCudaIndex idx, const float *d_queries, int nq,
                                            int k, int metric, float *d_out_dist,
                                            int64_t *d_out_ids, void *stream, int *fallbacks,
                                            int path, char *errbuf, size_t errlen);

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); exit(2); } } while (0)

/* Pseudo-random values in [-1, 1) (a hash of the index: reproducible, never zero runs). */
__global__ void
fill_kernel(float *x, int64_t count, uint64_t seed)
{
    for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (int64_t) gridDim.x * blockDim.x)
    {
        uint64_t z = seed + (uint64_t) i * 0x9E3779B97F4A7C15ULL;

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        x[i] = (float) ((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

/* Streaming read of a buffer (16-byte loads); writes one value per block. */
__global__ void
read_kernel(const float4 *x, int64_t n4, float *out)
{
    float s = 0;

    for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (int64_t) gridDim.x * blockDim.x)
    {
        float4 v = __ldg(&x[i]);

        s += v.x + v.y + v.z + v.w;
    }
    if (s == 123.456f)
        out[blockIdx.x] = s;
}

static double
Median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static std::vector<long long>
ParseList(const char *s)
{
    std::vector<long long> v;

    while (*s)
    {
        v.push_back(atoll(s));
        while (*s && *s != ',')
            s++;
        if (*s == ',')
            s++;
    }
    return v;
}

int
main(int argc, char **argv)
{
    std::vector<long long> sizes = {100000, 1000000, 10000000};
    std::vector<long long> nqs = {1, 16, 64};
    int         dim = 384, k = 10, reps = 50;
    const char *csv = NULL;
    const char *precs = "fp16,fp32";
    char        err[512], report[8192];

    for (int i = 1; i + 1 < argc; i += 2)
    {
        if (!strcmp(argv[i], "--sizes")) sizes = ParseList(argv[i + 1]);
        else if (!strcmp(argv[i], "--nq")) nqs = ParseList(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--k")) k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--csv")) csv = argv[i + 1];
        else if (!strcmp(argv[i], "--precs")) precs = argv[i + 1];
    }
    /* int8 needs the codes on every fp16 index (read once, before any index) */
    if (strstr(precs, "int8"))
        setenv("CODEVEC_KNN_INT8", "1", 1);

    cudaDeviceProp prop;
    int            drv, rtv;

    CK(cudaGetDeviceProperties(&prop, 0));
    CK(cudaDriverGetVersion(&drv));
    CK(cudaRuntimeGetVersion(&rtv));
    printf("device %s, %d SMs, L2 %d MB, driver API %d, runtime %d\n", prop.name,
           prop.multiProcessorCount, prop.l2CacheSize >> 20, drv, rtv);

    cudaEvent_t e0, e1;

    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    /* the two bandwidth ceilings */
    double copy_bw, read_bw;
    {
        size_t bytes = (size_t) 2 << 30;
        float *a, *b, *o;
        std::vector<double> t;

        CK(cudaMalloc(&a, bytes));
        CK(cudaMalloc(&b, bytes));
        CK(cudaMalloc(&o, 4096 * 4));
        fill_kernel<<<1024, 256>>>(a, bytes / 4, 1);
        CK(cudaGetLastError());
        for (int r = 0; r < 23; r++)
        {
            float ms;

            CK(cudaEventRecord(e0));
            CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (r >= 3) t.push_back(ms);
        }
        copy_bw = 2.0 * bytes / (Median(t) * 1e-3) / 1e9;
        t.clear();
        for (int r = 0; r < 23; r++)
        {
            float ms;

            CK(cudaEventRecord(e0));
            read_kernel<<<prop.multiProcessorCount * 8, 512>>>((const float4 *) a, bytes / 16, o);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (r >= 3) t.push_back(ms);
        }
        read_bw = bytes / (Median(t) * 1e-3) / 1e9;
        CK(cudaFree(a));
        CK(cudaFree(b));
        CK(cudaFree(o));
    }
    printf("device-to-device copy: %.0f GB/s (read + write); streaming read: %.0f GB/s\n",
           copy_bw, read_bw);

    /* BENCH_SKIP_TUNE=1 (with CODEVEC_CUDA_TUNE_FILE from an earlier run): no
     * tuning launches before the timed ones, e.g. under a profiler */
    if (getenv("BENCH_SKIP_TUNE"))
        report[0] = '\0';
    else if (codevec_cuda_autotune(dim, report, sizeof(report), err, sizeof(err)) != 0)
    {
        fprintf(stderr, "autotune: %s\n", err);
        return 2;
    }
    printf("%s", report);

    FILE *out = csv ? fopen(csv, "w") : NULL;

    if (out)
        fprintf(out, "n,dim,prec,nq,k,copies,median_ms,min_ms,bytes,GBps,floor_ms,ratio_floor,fallbacks\n");
    printf("\n%-9s %-5s %4s %7s %10s %10s %9s %9s %7s %4s\n", "n", "prec", "nq", "copies",
           "median_ms", "min_ms", "GB/s", "floor_ms", "xfloor", "fb");

    float   *dq, *dd;
    int64_t *di;
    long long maxnq = *std::max_element(nqs.begin(), nqs.end());

    CK(cudaMalloc(&dq, (size_t) maxnq * dim * 4));
    CK(cudaMalloc(&dd, (size_t) maxnq * k * 4));
    CK(cudaMalloc(&di, (size_t) maxnq * k * 8));

    for (long long n : sizes)
    {
        float *src;

        CK(cudaMalloc(&src, (size_t) n * dim * 4));
        fill_kernel<<<4096, 256>>>(src, (int64_t) n * dim, 0xC0DE + n);
        CK(cudaGetLastError());
        static const char *names[3] = {"fp32", "fp16", "int8"};

        for (int path = 1; path <= 3; path++)
        {
            int pth = path % 3;     /* fp16 (1), int8 (2), fp32 (0): in that order */

            if (!strstr(precs, names[pth]))
                continue;

            int    prec = pth == 0 ? CODEVEC_PREC_FP32 : CODEVEC_PREC_FP16;
            size_t rowbytes = pth == 2 ? ((dim + 15) / 16) * 16 + 4
                            : prec == CODEVEC_PREC_FP16 ? ((dim + 7) / 8) * 16 : ((dim + 3) / 4) * 16;
            size_t bytes = (size_t) n * (rowbytes + 4);
            int    copies = (int) std::min<size_t>(4, (4 * (size_t) prop.l2CacheSize + bytes - 1) / bytes);
            std::vector<CodevecCudaIndex> idx(copies, (CodevecCudaIndex) NULL);

            for (int c = 0; c < copies; c++)
                if (codevec_cuda_index_create(n, dim, prec, &idx[c], err, sizeof(err)) != 0 ||
                    codevec_cuda_index_upload(idx[c], src, 0, n, err, sizeof(err)) != 0)
                {
                    fprintf(stderr, "index n=%lld: %s\n", n, err);
                    return 2;
                }
            if (n == sizes[0])
            {
                char info[1024];

                codevec_cuda_index_info(idx[0], NULL, NULL, info, sizeof(info));
                printf("# %s\n", info);
            }
            for (long long nq : nqs)
            {
                std::vector<double> t;
                int                 fbsum = 0;

                fill_kernel<<<256, 256>>>(dq, nq * dim, 0xBEEF + nq + n);
                for (int r = 0; r < reps + 5; r++)
                {
                    float ms;
                    int   fb = 0;

                    CK(cudaEventRecord(e0));
                    if (codevec_cuda_knn_device_path(idx[r % copies], dq, (int) nq, k,
                                                     CODEVEC_METRIC_COSINE, dd, di, NULL, &fb,
                                                     pth, err, sizeof(err)) != 0)
                    {
                        fprintf(stderr, "knn: %s\n", err);
                        return 2;
                    }
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    fbsum += fb;
                    if (r >= 5)
                        t.push_back(ms);
                }
                double med = Median(t), mn = *std::min_element(t.begin(), t.end());
                double gbs = bytes / (med * 1e-3) / 1e9;
                double floor_ms = bytes / (copy_bw * 1e9) * 1e3;

                printf("%-9lld %-5s %4lld %7d %10.4f %10.4f %9.0f %9.4f %7.2f %4d\n", n,
                       names[pth], nq, copies, med, mn, gbs,
                       floor_ms, med / floor_ms, fbsum);
                if (out)
                    fprintf(out, "%lld,%d,%s,%lld,%d,%d,%.5f,%.5f,%zu,%.1f,%.5f,%.3f,%d\n", n, dim,
                            names[pth], nq, k, copies, med, mn,
                            bytes, gbs, floor_ms, med / floor_ms, fbsum);
                fflush(stdout);
            }
            for (auto p : idx)
                codevec_cuda_index_free(p);
        }
        CK(cudaFree(src));
    }
    if (out)
        fclose(out);
    return 0;
}
