/*
 * fakecuda.c
 *	  A host stand-in for the CUDA layer's C interface (cuda/codevec_cuda.h,
 *	  cuda/knn.h, cuda/kmeans.h, cuda/bm25_device.h), so that codevec.so built with
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
 * the contract the kernels meet. A BM25 store is its postings in host
 * memory; its top-k sums idf * impact term by term in the query's order
 * and sorts by (score descending, document): bm25_device.h's contract,
 * the CPU's bits. k-means and autotuning are refused
 * (IVF builds run on the CPU in the tests).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bm25_device.h"
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

/* ------------------------------------------------------------------ BM25 */

struct CodevecCudaBm25Data
{
	uint32_t	ndocs,
				nterms;
	uint64_t	npostings,
				loaded;
	int			device;
	size_t		bytes;
	uint64_t   *start;
	uint32_t   *docs;
	float	   *imp;
	double	   *acc;
	unsigned char *seen;
	uint32_t   *hit;
};

int
codevec_cuda_bm25_create(uint32_t ndocs, uint32_t nterms, const uint64_t *term_start,
						 CodevecCudaBm25 *out, char *errbuf, size_t errlen)
{
	CodevecCudaBm25 s;
	uint64_t	np;

	*out = NULL;
	if (ndocs < 1 || ndocs > INT32_MAX || nterms < 1 || nterms > INT32_MAX || term_start[0] != 0)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "bad BM25 store sizes");
	for (uint32_t t = 0; t < nterms; t++)
		if (term_start[t + 1] < term_start[t])
			return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "BM25 term starts decrease");
	np = term_start[nterms];
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of host memory");
	s->bytes = (size_t) np * 8 + (size_t) ndocs * 8;
	if (atomic_load(&used_bytes[current_device]) + (int64_t) s->bytes > FakeTotal())
	{
		free(s);
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of fake GPU memory");
	}
	s->start = malloc(sizeof(uint64_t) * ((size_t) nterms + 1));
	s->docs = malloc(sizeof(uint32_t) * (np ? np : 1));
	s->imp = malloc(sizeof(float) * (np ? np : 1));
	s->acc = malloc(sizeof(double) * ndocs);
	s->seen = malloc(ndocs);
	s->hit = malloc(sizeof(uint32_t) * ndocs);
	if (!s->start || !s->docs || !s->imp || !s->acc || !s->seen || !s->hit)
	{
		s->bytes = 0;
		codevec_cuda_bm25_free(s);
		return Fail(CODEVEC_CUDA_ERR_NOMEM, errbuf, errlen, "out of host memory");
	}
	memcpy(s->start, term_start, sizeof(uint64_t) * ((size_t) nterms + 1));
	s->ndocs = ndocs;
	s->nterms = nterms;
	s->npostings = np;
	s->device = current_device;
	atomic_fetch_add(&used_bytes[s->device], (int64_t) s->bytes);
	*out = s;
	return 0;
}

int
codevec_cuda_bm25_load(CodevecCudaBm25 s, uint64_t first, uint64_t n, const uint32_t *docs,
					   const float *impacts, char *errbuf, size_t errlen)
{
	if (!s || first != s->loaded || n > s->npostings - first)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "BM25 postings out of order");
	for (uint64_t i = 0; i < n; i++)
		if (docs[i] >= s->ndocs || !isfinite(impacts[i]) || impacts[i] < 0)
			return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "BM25 posting out of range");
	memcpy(s->docs + first, docs, sizeof(uint32_t) * n);
	memcpy(s->imp + first, impacts, sizeof(float) * n);
	s->loaded += n;
	return 0;
}

static const double *bm25_sort_acc;

static int
Bm25HitCmp(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;
	double		sx = bm25_sort_acc[x],
				sy = bm25_sort_acc[y];

	if (sx != sy)
		return sx > sy ? -1 : 1;
	return x < y ? -1 : (x > y ? 1 : 0);
}

int
codevec_cuda_bm25_topk(CodevecCudaBm25 s, int nt, const uint32_t *terms, const double *idf, int k,
					   uint32_t *docs_out, double *scores_out, int *nout, char *errbuf, size_t errlen)
{
	uint32_t	nhit = 0;

	if (!s || s->loaded != s->npostings || nt < 0 || nt > CODEVEC_CUDA_BM25_MAX_TERMS || k < 1 ||
		k > CODEVEC_CUDA_BM25_MAX_K)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "bad BM25 top-k arguments");
	for (int i = 0; i < nt; i++)
		if (terms[i] >= s->nterms || !isfinite(idf[i]) || idf[i] < 0)
			return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "BM25 term out of range");
	memset(s->seen, 0, s->ndocs);
	for (int i = 0; i < nt; i++)
		for (uint64_t p = s->start[terms[i]]; p < s->start[terms[i] + 1]; p++)
		{
			uint32_t	d = s->docs[p];
			double		x = idf[i] * (double) s->imp[p];

			if (!s->seen[d])
			{
				s->seen[d] = 1;
				s->acc[d] = 0;
				s->hit[nhit++] = d;
			}
			s->acc[d] += x;
		}
	bm25_sort_acc = s->acc;
	qsort(s->hit, nhit, sizeof(uint32_t), Bm25HitCmp);
	*nout = (int) (nhit < (uint32_t) k ? nhit : (uint32_t) k);
	for (int i = 0; i < *nout; i++)
	{
		docs_out[i] = s->hit[i];
		scores_out[i] = s->acc[s->hit[i]];
	}
	return 0;
}

int
codevec_cuda_bm25_topk_batch(CodevecCudaBm25 s, const CodevecCudaBm25Query *queries, int nq,
							 char *errbuf, size_t errlen)
{
	if (!s || !queries || nq < 1 || nq > CODEVEC_CUDA_BM25_MAX_BATCH)
		return Fail(CODEVEC_CUDA_ERR_ARG, errbuf, errlen, "bad BM25 batch");
	for (int q = 0; q < nq; q++)
	{
		const CodevecCudaBm25Query *Q = &queries[q];
		int			rc = codevec_cuda_bm25_topk(s, Q->nt, Q->terms, Q->idf, Q->k, Q->docs_out,
												Q->scores_out, Q->nout, errbuf, errlen);

		if (rc != 0)
			return rc;
	}
	return 0;
}

int
codevec_cuda_bm25_info(CodevecCudaBm25 s, uint32_t *ndocs, uint32_t *nterms, uint64_t *npostings,
					   size_t *device_bytes)
{
	if (!s)
		return CODEVEC_CUDA_ERR_ARG;
	if (ndocs)
		*ndocs = s->ndocs;
	if (nterms)
		*nterms = s->nterms;
	if (npostings)
		*npostings = s->npostings;
	if (device_bytes)
		*device_bytes = s->bytes;
	return 0;
}

void
codevec_cuda_bm25_free(CodevecCudaBm25 s)
{
	if (!s)
		return;
	atomic_fetch_sub(&used_bytes[s->device], (int64_t) s->bytes);
	free(s->start);
	free(s->docs);
	free(s->imp);
	free(s->acc);
	free(s->seen);
	free(s->hit);
	free(s);
}
