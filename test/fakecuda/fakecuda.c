/*
 * fakecuda.c
 *	  A host stand-in for the CUDA layer's C interface (cuda/codevec_cuda.h,
 *	  cuda/knn.h, cuda/kmeans.h), so that codevec.so built with
 *	  CODEVEC_USE_CUDA runs its whole GPU service path (devices, index
 *	  copies, uploads, k-NN groups, the split and merge over several
 *	  devices, replicas, per-device counters) on a machine without a GPU.
 *	  For tests only (test/fakecuda/run.sh); never part of the extension.
 *
 * Devices: $CODEVEC_FAKE_DEVICES of them (default 2), each with
 * $CODEVEC_FAKE_DEVICE_MB of memory (default 1024); what the indexes
 * allocate is counted per device, so free memory differs between devices
 * as on real GPUs. The current device is per thread, as CUDA's is. An
 * index is its rows in host memory; k-NN is a brute-force scan with the
 * canonical distance (knn.h), ordered by (distance, id) with NaN last:
 * the contract the kernels meet. k-means and autotuning are refused
 * (IVF builds run on the CPU in the tests).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codevec_cuda.h"
#include "kmeans.h"
#include "knn.h"

/*
 * A started batch (codevec_cuda_knn_batch_start): its queries, answered
 * only at _finish (so that a caller that read answers before finishing,
 * or reused them after the next start, reads stale or poisoned memory),
 * and "done" $CODEVEC_FAKE_KNN_US microseconds after the start (default
 * 0): what _ready reports, so the service's loop sees batches in flight.
 */
#define FAKE_SETS 2

typedef struct FakeBatch
{
	int			busy;
	int			nq, k, metric, rows;
	struct timespec started;
	float	   *queries;
	float	   *dist;
	int64_t    *ids;
	float	   *out_rows;
} FakeBatch;

struct CodevecCudaIndexData
{
	int64_t		n;
	int			dim;
	int			device;
	float	   *x;
	size_t		bytes;
	FakeBatch	sets[FAKE_SETS];
};

#define FAKE_MAX_DEVICES 16

static _Atomic int64_t used_bytes[FAKE_MAX_DEVICES];
static __thread int current_device = 0;

static int
FakeCount(void)
{
	const char *s = getenv("CODEVEC_FAKE_DEVICES");
	int			n = s ? atoi(s) : 2;

	return n < 0 ? 0 : (n > FAKE_MAX_DEVICES ? FAKE_MAX_DEVICES : n);
}

static int64_t
FakeTotal(void)
{
	const char *s = getenv("CODEVEC_FAKE_DEVICE_MB");

	return (int64_t) (s ? atoi(s) : 1024) * 1024 * 1024;
}

static int
Fail(int status, char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
	return status;
}

int
codevec_cuda_runtime_version(int *version)
{
	*version = 0;
	return 0;
}

int
codevec_cuda_device_count(int *count, char *errbuf, size_t errlen)
{
	*count = FakeCount();
	return *count > 0 ? 0 : Fail(CODEVEC_CUDA_ERR_NODEVICE, errbuf, errlen, "no fake device");
}

int
codevec_cuda_device_name(int dev, char *name, size_t len, char *errbuf, size_t errlen)
{
	if (dev < 0 || dev >= FakeCount())
		return Fail(CODEVEC_CUDA_ERR_CUDA, errbuf, errlen, "invalid device ordinal");
	snprintf(name, len, "Fake GPU %d", dev);
	return 0;
}

int
codevec_cuda_device_memory(int dev, size_t *free_bytes, size_t *total_bytes, char *errbuf,
						   size_t errlen)
{
	if (dev < 0 || dev >= FakeCount())
		return Fail(CODEVEC_CUDA_ERR_CUDA, errbuf, errlen, "invalid device ordinal");
	*total_bytes = (size_t) FakeTotal();
	*free_bytes = (size_t) (FakeTotal() - atomic_load(&used_bytes[dev]));
	return 0;
}

int
codevec_cuda_set_device(int dev, char *errbuf, size_t errlen)
{
	if (dev < 0 || dev >= FakeCount())
		return Fail(CODEVEC_CUDA_ERR_CUDA, errbuf, errlen, "invalid device ordinal");
	current_device = dev;
	return 0;
}

int
codevec_cuda_open_device(int dev, char *name, size_t len, size_t *free_bytes,
						 size_t *total_bytes, char *errbuf, size_t errlen)
{
	int			rc;

	if ((rc = codevec_cuda_device_name(dev, name, len, errbuf, errlen)) != 0 ||
		(rc = codevec_cuda_set_device(dev, errbuf, errlen)) != 0)
		return rc;
	return codevec_cuda_device_memory(dev, free_bytes, total_bytes, errbuf, errlen);
}

int
codevec_cuda_memory(size_t *free_bytes, size_t *total_bytes, char *errbuf, size_t errlen)
{
	return codevec_cuda_device_memory(current_device, free_bytes, total_bytes, errbuf, errlen);
}

int
codevec_cuda_index_create(int64_t n, int dim, int precision, CodevecCudaIndex *out,
						  char *errbuf, size_t errlen)
{
	CodevecCudaIndex idx;
	size_t		bytes = (size_t) n * dim * 6 + (size_t) n * 4;

	*out = NULL;
	if (n < 0 || dim < 1 || dim > CODEVEC_CUDA_MAX_DIM)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "invalid index shape");
	if (atomic_load(&used_bytes[current_device]) + (int64_t) bytes > FakeTotal())
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of fake GPU memory");
	idx = calloc(1, sizeof(*idx));
	if (idx == NULL || (idx->x = calloc((size_t) (n > 0 ? n : 1) * dim, sizeof(float))) == NULL)
	{
		free(idx);
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of host memory");
	}
	idx->n = n;
	idx->dim = dim;
	idx->device = current_device;
	idx->bytes = bytes;
	atomic_fetch_add(&used_bytes[idx->device], (int64_t) bytes);
	*out = idx;
	return 0;
}

int
codevec_cuda_index_upload(CodevecCudaIndex idx, const float *vectors, int64_t first,
						  int64_t count, char *errbuf, size_t errlen)
{
	if (!idx || first < 0 || count < 0 || first + count > idx->n)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "upload rows out of range");
	memcpy(idx->x + (size_t) first * idx->dim, vectors, sizeof(float) * (size_t) count * idx->dim);
	return 0;
}

void
codevec_cuda_index_free(CodevecCudaIndex idx)
{
	if (!idx)
		return;
	atomic_fetch_sub(&used_bytes[idx->device], (int64_t) idx->bytes);
	for (int i = 0; i < FAKE_SETS; i++)
	{
		free(idx->sets[i].queries);
		free(idx->sets[i].dist);
		free(idx->sets[i].ids);
		free(idx->sets[i].out_rows);
	}
	free(idx->x);
	free(idx);
}

int
codevec_cuda_index_info(CodevecCudaIndex idx, size_t *device_bytes, int *scan_precision,
						char *text, size_t textlen)
{
	if (!idx)
		return CODEVEC_CUDA_ERR_ARG;
	if (device_bytes)
		*device_bytes = idx->bytes;
	if (scan_precision)
		*scan_precision = CODEVEC_PREC_FP32;
	if (text && textlen)
		snprintf(text, textlen, "fake n=%lld dim=%d device=%d", (long long) idx->n, idx->dim,
				 idx->device);
	return 0;
}

/* one scored row */
typedef struct Scored
{
	float		d;
	int64_t		id;
} Scored;

static int
ScoredCmp(const void *a, const void *b)
{
	const Scored *x = a,
			   *y = b;
	int			nx = isnan(x->d),
				ny = isnan(y->d);

	if (nx != ny)
		return nx - ny;
	if (!nx && x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

int
codevec_cuda_knn_batch(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
					   const int64_t *ranges, int nranges, const int *qranges,
					   float *out_dist, int64_t *out_ids, float *out_rows,
					   CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
	Scored	   *s;
	int			from = 0;

	if (times)
		memset(times, 0, sizeof(*times));
	if (!idx || !queries || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K || metric < 0 || metric > 2 ||
		(ranges == NULL && nranges != 0) || (ranges == NULL && qranges != NULL))
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "invalid k-NN batch arguments");
	for (int i = 0; ranges && i < nranges; i++)
		if (ranges[2 * i] < 0 || ranges[2 * i + 1] < 0 || ranges[2 * i] + ranges[2 * i + 1] > idx->n)
			return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "a row range is out of bounds");
	s = malloc(sizeof(Scored) * (size_t) (idx->n > 0 ? idx->n : 1));
	if (s == NULL)
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of host memory");
	for (int q = 0; q < nq; q++)
	{
		const float *qv = queries + (size_t) q * idx->dim;
		int64_t		m = 0;
		int			cnt = qranges ? qranges[q] : nranges;

		if (ranges == NULL)
			for (int64_t r = 0; r < idx->n; r++)
				s[m++].id = r;
		else
			for (int i = from; i < from + cnt; i++)
				for (int64_t r = ranges[2 * i]; r < ranges[2 * i] + ranges[2 * i + 1]; r++)
					s[m++].id = r;
		if (qranges)
			from += cnt;
		for (int64_t i = 0; i < m; i++)
			s[i].d = codevec_canonical_distance(metric, qv, idx->x + (size_t) s[i].id * idx->dim,
												idx->dim);
		qsort(s, m, sizeof(Scored), ScoredCmp);
		for (int i = 0; i < k; i++)
		{
			size_t		o = (size_t) q * k + i;

			out_ids[o] = i < m ? s[i].id : -1;
			out_dist[o] = i < m ? s[i].d : INFINITY;
			if (out_rows && i < m)
				memcpy(out_rows + o * idx->dim, idx->x + (size_t) s[i].id * idx->dim,
					   sizeof(float) * idx->dim);
			else if (out_rows)
				memset(out_rows + o * idx->dim, 0, sizeof(float) * idx->dim);
		}
	}
	free(s);
	return 0;
}

int
codevec_cuda_knn_batch_start(CodevecCudaIndex idx, const float *queries, int nq, int k,
							 int metric, const int64_t *ranges, int nranges, const int *qranges,
							 int rows, int *ticket, char *errbuf, size_t errlen)
{
	FakeBatch  *b = NULL;
	size_t		nk = (size_t) nq * k;

	if (!idx || !queries || !ticket || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K ||
		metric < 0 || metric > 2)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "invalid k-NN batch arguments");
	if (ranges != NULL || nranges != 0 || qranges != NULL)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "fakecuda: started batches scan every row");
	for (int i = 0; i < FAKE_SETS && !b; i++)
		if (!idx->sets[i].busy)
		{
			b = &idx->sets[i];
			*ticket = i;
		}
	if (!b)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "two k-NN batches of this index are in flight already");
	free(b->queries);
	free(b->dist);
	free(b->ids);
	free(b->out_rows);
	b->queries = malloc(sizeof(float) * (size_t) nq * idx->dim);
	b->dist = malloc(sizeof(float) * nk);
	b->ids = malloc(sizeof(int64_t) * nk);
	b->out_rows = malloc(sizeof(float) * nk * idx->dim);
	if (!b->queries || !b->dist || !b->ids || !b->out_rows)
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of host memory");
	memcpy(b->queries, queries, sizeof(float) * (size_t) nq * idx->dim);
	/* poisoned until finished */
	for (size_t i = 0; i < nk; i++)
	{
		b->dist[i] = NAN;
		b->ids[i] = -7;
	}
	memset(b->out_rows, 0xff, sizeof(float) * nk * idx->dim);
	b->nq = nq;
	b->k = k;
	b->metric = metric;
	b->rows = rows != 0;
	clock_gettime(CLOCK_MONOTONIC, &b->started);
	b->busy = 1;
	return 0;
}

int
codevec_cuda_knn_batch_ready(CodevecCudaIndex idx, int ticket)
{
	const char *s = getenv("CODEVEC_FAKE_KNN_US");
	struct timespec now;
	FakeBatch  *b;

	if (!idx || ticket < 0 || ticket >= FAKE_SETS || !idx->sets[ticket].busy || !s)
		return 1;
	b = &idx->sets[ticket];
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - b->started.tv_sec) * 1e6 + (now.tv_nsec - b->started.tv_nsec) / 1e3 >= atof(s);
}

int
codevec_cuda_knn_batch_finish(CodevecCudaIndex idx, int ticket, const float **dist,
							  const int64_t **ids, const float **rows,
							  CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
	FakeBatch  *b;
	int			rc;

	if (times)
		memset(times, 0, sizeof(*times));
	if (!idx || ticket < 0 || ticket >= FAKE_SETS || !idx->sets[ticket].busy)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "no k-NN batch in flight under this ticket");
	b = &idx->sets[ticket];
	b->busy = 0;
	while (!codevec_cuda_knn_batch_ready(idx, ticket))
		;						/* the device's wait */
	rc = codevec_cuda_knn_batch(idx, b->queries, b->nq, b->k, b->metric, NULL, 0, NULL, b->dist,
								b->ids, b->rows ? b->out_rows : NULL, times, errbuf, errlen);
	if (rc != 0)
		return rc;
	if (dist)
		*dist = b->dist;
	if (ids)
		*ids = b->ids;
	if (rows)
		*rows = b->rows ? b->out_rows : NULL;
	return 0;
}

int
codevec_cuda_knn_qranges(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
						 const int64_t *ranges, int nranges, const int *qranges,
						 float *out_dist, int64_t *out_ids, char *errbuf, size_t errlen)
{
	return codevec_cuda_knn_batch(idx, queries, nq, k, metric, ranges, nranges, qranges,
								  out_dist, out_ids, NULL, NULL, errbuf, errlen);
}

int
codevec_cuda_knn(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
				 float *out_dist, int64_t *out_ids, char *errbuf, size_t errlen)
{
	return codevec_cuda_knn_batch(idx, queries, nq, k, metric, NULL, 0, NULL, out_dist, out_ids,
								  NULL, NULL, errbuf, errlen);
}

int
codevec_cuda_index_rows(CodevecCudaIndex idx, const int64_t *ids, int count, float *out,
						char *errbuf, size_t errlen)
{
	if (!idx || count < 0 || count > CODEVEC_CUDA_MAX_K)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "codevec_cuda_index_rows: bad argument");
	for (int j = 0; j < count; j++)
	{
		if (ids[j] >= idx->n)
			return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "codevec_cuda_index_rows: id out of range");
		if (ids[j] < 0)
			memset(out + (size_t) j * idx->dim, 0, sizeof(float) * idx->dim);
		else
			memcpy(out + (size_t) j * idx->dim, idx->x + (size_t) ids[j] * idx->dim,
				   sizeof(float) * idx->dim);
	}
	return 0;
}

int
codevec_cuda_autotune(int dim, char *report, size_t reportlen, char *errbuf, size_t errlen)
{
	return Fail(CODEVEC_CUDA_ERR_UNSUPPORTED, errbuf, errlen, "no autotuning on the fake GPU");
}

int
codevec_cuda_kmeans(float *samples, int64_t n, int dim, int k, int spherical, int iters,
					uint64_t seed, float *centroids, char *errbuf, size_t errlen)
{
	return Fail(CODEVEC_CUDA_ERR_UNSUPPORTED, errbuf, errlen, "no k-means on the fake GPU");
}

int
codevec_cuda_assign(const float *centroids, int k, int dim, int metric, const float *x,
					int64_t n, int32_t *out_list, char *errbuf, size_t errlen)
{
	return Fail(CODEVEC_CUDA_ERR_UNSUPPORTED, errbuf, errlen, "no assignment on the fake GPU");
}
