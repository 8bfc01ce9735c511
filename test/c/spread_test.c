/*
 * spread_test.c
 *	  The split and merge of src/gpuspread.c without a GPU: GpuSpreadKnn
 *	  (a copy's rows in several device indexes, searched at once on helper
 *	  threads and merged) and GpuSpreadReplicas (a batch's queries shared
 *	  among identical indexes), against a brute-force reference.
 *
 * codevec_cuda_knn_batch is replaced here by a host model of its contract
 * (cuda/knn.h): the first k of the scanned rows (every row, or the given
 * ranges, per query with qranges) by (distance, id), distances from
 * codevec_canonical_distance, NaN after every number, id -1 and +inf past
 * the end, the answers' rows (zeros for -1). The reference is independent
 * of gpuspread.c: every row of the whole copy that the ranges name, sorted
 * by its own comparator. Data has exact duplicates in different parts (ties
 * across parts), zero vectors (cosine NaN), uneven parts, a part with no
 * probed range, a delta-like last tier, and, for the query chunking, k x
 * dims large enough that one call's rows pass 64 MB. Prints TAP lines and
 * the plan last.
 */
#include "postgres.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpuspread.h"

/* A host "device index": n rows of dim floats */
struct CodevecCudaIndexData
{
	int64_t		n;
	int			dim;
	const float *x;				/* row r at x + r * dim */
	int			calls;			/* codevec_cuda_knn_batch calls on it */
};

static int	n_tests = 0;
static int	n_failed = 0;

/* Record one TAP result */
static void
check(int ok, const char *fmt,...)
{
	va_list		ap;

	n_tests++;
	if (!ok)
		n_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* xorshift64*: seeded, so a failure is reproducible */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* One scored row of the reference and the model */
typedef struct Scored
{
	float		d;
	int64		id;
} Scored;

/* (distance, id) order, NaN after every number (the test's own rule) */
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

/*
 * First k of rows listed in cand (ncand ids of x) for one query: dist/ids
 * (k each, -1/+inf filled) and, when rows is not NULL, their vectors.
 */
static void
TopK(const float *x, int dim, const float *q, int metric, const int64 *cand, int64 ncand,
	 int k, float *dist, int64 *ids, float *rows)
{
	Scored	   *s = malloc(sizeof(Scored) * (ncand > 0 ? ncand : 1));

	for (int64 i = 0; i < ncand; i++)
	{
		s[i].id = cand[i];
		s[i].d = codevec_canonical_distance(metric, q, x + (Size) cand[i] * dim, dim);
	}
	qsort(s, ncand, sizeof(Scored), ScoredCmp);
	for (int i = 0; i < k; i++)
	{
		ids[i] = i < ncand ? s[i].id : -1;
		dist[i] = i < ncand ? s[i].d : INFINITY;
		if (rows)
		{
			if (i < ncand)
				memcpy(rows + (Size) i * dim, x + (Size) s[i].id * dim, sizeof(float) * dim);
			else
				memset(rows + (Size) i * dim, 0, sizeof(float) * dim);
		}
	}
	free(s);
}

/* The rows a query scans: ranges (qranges: this query's), or all n */
static int64
ScannedRows(int64 n, const int64 *ranges, int nranges, const int *qranges, int q, int64 *out)
{
	int			from = 0,
				cnt = nranges;
	int64		m = 0;

	if (ranges == NULL)
	{
		for (int64 r = 0; r < n; r++)
			out[m++] = r;
		return m;
	}
	if (qranges)
	{
		for (int i = 0; i < q; i++)
			from += qranges[i];
		cnt = qranges[q];
	}
	for (int i = from; i < from + cnt; i++)
		for (int64 r = ranges[2 * i]; r < ranges[2 * i] + ranges[2 * i + 1]; r++)
			out[m++] = r;
	return m;
}

/* The model of codevec_cuda_knn_batch (cuda/knn.h's contract) */
int
codevec_cuda_knn_batch(CodevecCudaIndex idx, const float *queries, int nq, int k, int metric,
					   const int64_t *ranges, int nranges, const int *qranges,
					   float *out_dist, int64_t *out_ids, float *out_rows,
					   CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
	int64	   *cand;

	if (!idx || nq < 1 || k < 1 || k > CODEVEC_CUDA_MAX_K || (ranges == NULL && nranges != 0) ||
		(ranges == NULL && qranges != NULL))
	{
		snprintf(errbuf, errlen, "bad arguments");
		return CODEVEC_CUDA_ERR_ARG;
	}
	for (int i = 0; ranges && i < nranges; i++)
		if (ranges[2 * i] < 0 || ranges[2 * i + 1] < 0 || ranges[2 * i] + ranges[2 * i + 1] > idx->n)
		{
			snprintf(errbuf, errlen, "a row range is out of bounds");
			return CODEVEC_CUDA_ERR_ARG;
		}
	__atomic_add_fetch(&idx->calls, 1, __ATOMIC_RELAXED);
	cand = malloc(sizeof(int64) * (idx->n > 0 ? idx->n : 1) * 2);
	for (int q = 0; q < nq; q++)
	{
		int64		m = ScannedRows(idx->n, ranges, nranges, qranges, q, cand);

		TopK(idx->x, idx->dim, queries + (Size) q * idx->dim, metric, cand, m, k,
			 out_dist + (Size) q * k, out_ids + (Size) q * k,
			 out_rows ? out_rows + (Size) q * k * idx->dim : NULL);
	}
	free(cand);
	if (times)
		memset(times, 0, sizeof(*times));
	return CODEVEC_CUDA_OK;
}

/* Random data: n x dim, rows dup_from.. copies of rows 0.., some zero rows */
static float *
MakeRows(int64 n, int dim, int64 dup_from, int nzero)
{
	float	   *x = malloc(sizeof(float) * (Size) n * dim);

	for (int64 i = 0; i < (Size) n * dim; i++)
		x[i] = (float) ((int) (rng() % 2001) - 1000) / 1000.0f;
	for (int64 r = dup_from; r < n; r++)
		memcpy(x + (Size) r * dim, x + (Size) (r - dup_from) * dim, sizeof(float) * dim);
	for (int z = 0; z < nzero; z++)
		memset(x + (Size) (rng() % n) * dim, 0, sizeof(float) * dim);
	return x;
}

/* Whether two answers are the same: ids, distances bit for bit, rows */
static bool
SameAnswer(const float *d1, const int64 *i1, const float *r1, const float *d2, const int64 *i2,
		   const float *r2, Size nk, int dim)
{
	return memcmp(i1, i2, sizeof(int64) * nk) == 0 && memcmp(d1, d2, sizeof(float) * nk) == 0 &&
		(r1 == NULL || memcmp(r1, r2, sizeof(float) * nk * dim) == 0);
}

/*
 * One split case: the copy x (n rows) cut at the given part sizes into
 * tiers; GpuSpreadKnn against the reference (TopK over the whole copy).
 */
static void
SplitCase(const char *what, const float *x, int64 n, int dim, const int64 *sizes, int nt,
		  const float *q, int nq, int k, int metric, const int64 *ranges, int nranges,
		  const int *qranges, bool withrows)
{
	GpuSpreadTier tiers[GPU_SPREAD_MAX_TIERS];
	struct CodevecCudaIndexData ix[GPU_SPREAD_MAX_TIERS];
	int			served[GPU_SPREAD_MAX_TIERS];
	Size		nk = (Size) nq * k;
	float	   *d = malloc(sizeof(float) * nk),
			   *rd = malloc(sizeof(float) * nk),
			   *rows = withrows ? malloc(sizeof(float) * nk * dim) : NULL,
			   *rrows = withrows ? malloc(sizeof(float) * nk * dim) : NULL;
	int64	   *ids = malloc(sizeof(int64) * nk),
			   *rids = malloc(sizeof(int64) * nk),
			   *cand = malloc(sizeof(int64) * n * 2);
	int64		first = 0;
	char		err[256] = "";
	int			rc;
	bool		same;

	for (int t = 0; t < nt; t++)
	{
		ix[t].n = sizes[t];
		ix[t].dim = dim;
		ix[t].x = x + (Size) first * dim;
		ix[t].calls = 0;
		tiers[t].idx = &ix[t];
		tiers[t].first = first;
		tiers[t].n = sizes[t];
		tiers[t].device = t % 2;
		first += sizes[t];
	}
	rc = GpuSpreadKnn(tiers, nt, q, nq, dim, k, metric, ranges, nranges, qranges, d, ids, rows,
					  served, NULL, err, sizeof(err));
	for (int qi = 0; qi < nq; qi++)
	{
		int64		m = ScannedRows(n, ranges, nranges, qranges, qi, cand);

		TopK(x, dim, q + (Size) qi * dim, metric, cand, m, k, rd + (Size) qi * k,
			 rids + (Size) qi * k, rrows ? rrows + (Size) qi * k * dim : NULL);
	}
	same = rc == CODEVEC_CUDA_OK && SameAnswer(d, ids, rows, rd, rids, rrows, nk, dim);
	if (!same && rc == CODEVEC_CUDA_OK)
		for (Size i = 0; i < nk; i++)
			if (ids[i] != rids[i] || memcmp(&d[i], &rd[i], sizeof(float)) != 0)
			{
				printf("# first difference at query %zu rank %zu: got id %lld d %.9g, want id %lld d %.9g\n",
					   i / k, i % k, (long long) ids[i], d[i], (long long) rids[i], rd[i]);
				break;
			}
	check(same, "%s: %d tiers, nq %d, k %d, metric %d%s equal one scan of the whole copy%s%s",
		  what, nt, nq, k, metric, ranges ? (qranges ? ", ranges per query" : ", ranges") : "",
		  rc ? ": " : "", rc ? err : "");
	free(d);
	free(rd);
	free(rows);
	free(rrows);
	free(ids);
	free(rids);
	free(cand);
}

static void
test_split(void)
{
	int			dim = 40;
	int64		n = 3000;
	float	   *x = MakeRows(n, dim, 2900, 3);	/* rows 2900.. = rows 0.. (ties) */
	float	   *q = MakeRows(12, dim, 12, 0);
	int64		three[] = {1000, 1000, 1000};
	int64		uneven[] = {1, 1499, 700, 799, 1};
	int64		one[] = {3000};
	int64		many[16];
	int64		ranges[] = {0, 50, 990, 30, 1990, 20, 2950, 50, 1500, 100};
	int			qr[12] = {5, 0, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0};	/* sums to 10: the 5 ranges twice */
	int64		qranges_r[20];

	for (int i = 0; i < 16; i++)
		many[i] = i < 15 ? 187 : 3000 - 15 * 187;
	/* query 0 equals a row with duplicates in another part; query 1 a zero vector */
	memcpy(q, x + (Size) 5 * dim, sizeof(float) * dim);
	memset(q + dim, 0, sizeof(float) * dim);
	for (int metric = 0; metric <= 2; metric++)
	{
		SplitCase("split", x, n, dim, three, 3, q, 12, 10, metric, NULL, 0, NULL, true);
		SplitCase("split", x, n, dim, uneven, 5, q, 12, 100, metric, NULL, 0, NULL, true);
		SplitCase("split", x, n, dim, many, 16, q, 12, 1024, metric, NULL, 0, NULL, false);
		SplitCase("whole", x, n, dim, one, 1, q, 12, 7, metric, NULL, 0, NULL, true);
		SplitCase("IVF-like ranges", x, n, dim, three, 3, q, 12, 60, metric, ranges, 5, NULL, true);
	}
	/* per-query ranges: 10 ranges for 12 queries, some with none */
	memcpy(qranges_r, ranges, sizeof(ranges));
	memcpy(qranges_r + 10, ranges, sizeof(ranges));
	SplitCase("IVF-like ranges per query", x, n, dim, uneven, 5, q, 12, 40, 2, qranges_r, 10, qr, true);
	SplitCase("IVF-like ranges per query", x, n, dim, three, 3, q, 12, 1, 0, qranges_r, 10, qr, true);
	/* k past the rows scanned: the -1 tail */
	SplitCase("more k than rows", x, 3000, dim, three, 3, q, 3, 1024, 0, ranges, 2, NULL, true);
	free(x);
	free(q);

	/* one call's rows over 64 MB: the queries go in chunks */
	{
		int			bigdim = 1024;
		int64		bn = 1500;
		float	   *bx = MakeRows(bn, bigdim, 1400, 0);
		float	   *bq = MakeRows(40, bigdim, 40, 0);
		int64		two[] = {800, 700};

		SplitCase("chunked (40 queries x 1024 x 1024 dims)", bx, bn, bigdim, two, 2, bq, 40, 1024, 1,
				  NULL, 0, NULL, true);
		free(bx);
		free(bq);
	}
}

static void
test_replicas(void)
{
	int			dim = 24;
	int64		n = 900;
	float	   *x = MakeRows(n, dim, 850, 2);
	float	   *q = MakeRows(7, dim, 7, 0);
	struct CodevecCudaIndexData ix[3];
	CodevecCudaIndex reps[3];
	int64		ranges[] = {0, 100, 300, 50, 800, 100, 10, 10, 500, 5};
	int			qr[7] = {1, 0, 2, 1, 1, 0, 0};	/* 5 ranges */
	int			k = 20;

	for (int i = 0; i < 3; i++)
	{
		ix[i].n = n;
		ix[i].dim = dim;
		ix[i].x = x;
		ix[i].calls = 0;
		reps[i] = &ix[i];
	}
	for (int nrep = 1; nrep <= 3; nrep++)
		for (int nq = 1; nq <= 7; nq += 3)
			for (int mode = 0; mode < 3; mode++)
			{
				const int64 *rg = mode == 0 ? NULL : ranges;
				const int  *qrg = mode == 2 ? qr : NULL;
				int			nrg = mode == 0 ? 0 : (mode == 1 ? 5 : 0);
				Size		nk = (Size) nq * k;
				float	   *d = malloc(sizeof(float) * nk),
						   *rd = malloc(sizeof(float) * nk),
						   *rows = malloc(sizeof(float) * nk * dim),
						   *rrows = malloc(sizeof(float) * nk * dim);
				int64	   *ids = malloc(sizeof(int64) * nk),
						   *rids = malloc(sizeof(int64) * nk);
				int			served[3] = {0, 0, 0};
				char		err[256] = "";
				int			rc;

				if (qrg)
					for (int i = 0; i < nq; i++)
						nrg += qr[i];
				/* the reference: one call on the first replica */
				(void) codevec_cuda_knn_batch(reps[0], q, nq, k, 2, rg, nrg, qrg, rd, rids, rrows,
											  NULL, err, sizeof(err));
				for (int i = 0; i < 3; i++)
					ix[i].calls = 0;
				rc = GpuSpreadReplicas(reps, nrep, q, nq, dim, k, 2, rg, nrg, qrg, d, ids, rows,
									   served, NULL, err, sizeof(err));
				check(rc == CODEVEC_CUDA_OK && SameAnswer(d, ids, rows, rd, rids, rrows, nk, dim) &&
					  served[0] + served[1] + served[2] == nq &&
					  (nq < nrep || (ix[0].calls == 1 && ix[nrep - 1].calls == 1)),
					  "replicas: %d of them, %d queries%s: the answers of one call, each replica ran %d..%d queries",
					  nrep, nq, mode == 0 ? "" : (mode == 1 ? ", ranges" : ", ranges per query"),
					  served[nrep - 1], served[0]);
				free(d);
				free(rd);
				free(rows);
				free(rrows);
				free(ids);
				free(rids);
			}
	free(x);
	free(q);
}

static void
test_order(void)
{
	check(GpuSpreadBefore(1.0f, 5, 2.0f, 1) && !GpuSpreadBefore(2.0f, 1, 1.0f, 5),
		  "order: smaller distance first");
	check(GpuSpreadBefore(1.0f, 1, 1.0f, 2) && !GpuSpreadBefore(1.0f, 2, 1.0f, 1),
		  "order: equal distances, smaller row first");
	check(GpuSpreadBefore(INFINITY, 9, NAN, 1) && !GpuSpreadBefore(NAN, 1, INFINITY, 9),
		  "order: numbers (even +inf) before NaN");
	check(GpuSpreadBefore(NAN, 1, NAN, 2) && GpuSpreadBefore(NAN, 3, INFINITY, -1),
		  "order: NaN rows by row, any row before none (-1)");
	check(!GpuSpreadBefore(0.0f, -1, 5.0f, 1) && !GpuSpreadBefore(1.0f, -1, 1.0f, -1),
		  "order: none (-1) is never before anything");
}

int
main(void)
{
	test_order();
	test_split();
	test_replicas();
	printf("1..%d\n", n_tests);
	return n_failed != 0;
}
