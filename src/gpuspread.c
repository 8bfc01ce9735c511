/*
 * gpuspread.c
 *	  k-NN over an index copy spread on several device indexes: the row
 *	  ranges of a split copy searched at once and merged exactly, and a
 *	  batch of queries shared out among a copy's replicas (gpuspread.h).
 *
 * Why threads: codevec_cuda_knn_batch issues a call's copies and kernels
 * on the index's own stream and then waits once. Two calls one after the
 * other on two GPUs would leave each GPU idle while the other works; so
 * every device index but the first gets a helper thread that makes its
 * call (the CUDA runtime is thread-safe; each device index has its own
 * stream and buffers and is used by one thread at a time; the autotuner's
 * cache has a mutex), while the service's own thread makes the first.
 * Helpers run only codevec_cuda_* calls and plain C: no elog, no palloc,
 * every signal blocked (the postmaster's signals go to the service's own
 * thread, as PG-Strom's GPU service arranges it). They are joined before
 * the call returns; a helper that cannot be started runs inline.
 *
 * Exactness of the merge: each tier (a row range, or the delta tier)
 * returns its own first k rows in (distance, row) order, distances being
 * the canonical fp32 distance (cuda/knn.h) whatever GPU computed them.
 * Every row outside a tier's list is at least as far as that tier's k-th,
 * so the first k of the union of the lists, in the same order (numbers
 * before NaN, then the row number: tiers hold disjoint ascending row
 * numbers), is the copy's first k: what one device index holding every
 * row returns, and what a sequential scan returns.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "gpuspread.h"

#ifdef CODEVEC_USE_CUDA

/* The largest answer (candidate rows, bytes) one tier's call copies back */
#define GPU_SPREAD_MAX_BYTES ((Size) 64 * 1024 * 1024)

/* One codevec_cuda_knn_batch call, made by a helper thread or inline */
typedef struct SpreadJob
{
	CodevecCudaIndex idx;
	const float *queries;
	int			nq;
	int			k;
	int			metric;
	const int64 *ranges;		/* NULL: every row */
	int			nranges;
	const int  *qranges;		/* NULL: every query all nranges */
	float	   *dist;
	int64	   *ids;
	float	   *rows;			/* NULL: no rows */
	bool		skip;			/* nothing to scan: answers stay empty */
	CodevecCudaKnnTimes times;
	int			rc;
	char		err[256];
} SpreadJob;

/* Make one job's call (a helper thread's body) */
static void *
RunJob(void *arg)
{
	SpreadJob  *j = (SpreadJob *) arg;

	j->err[0] = '\0';
	memset(&j->times, 0, sizeof(j->times));
	j->rc = j->skip ? CODEVEC_CUDA_OK :
		codevec_cuda_knn_batch(j->idx, j->queries, j->nq, j->k, j->metric, j->ranges,
							   j->ranges ? j->nranges : 0, j->ranges ? j->qranges : NULL,
							   j->dist, j->ids, j->rows, &j->times, j->err, sizeof(j->err));
	return NULL;
}

/*
 * Run n jobs at once: jobs 1 .. n-1 on helper threads (with every signal
 * blocked), job 0 on this thread; return once all are done. The first
 * failed job's status, its message in errbuf.
 */
static int
RunJobs(SpreadJob *jobs, int n, char *errbuf, size_t errlen)
{
	pthread_t	th[GPU_SPREAD_MAX_TIERS];
	bool		started[GPU_SPREAD_MAX_TIERS];
	sigset_t	all,
				old;
	int			busy = 0;

	Assert(n >= 1 && n <= GPU_SPREAD_MAX_TIERS);
	for (int i = 0; i < n; i++)
		busy += jobs[i].skip ? 0 : 1;
	memset(started, 0, sizeof(started));
	if (busy > 1)
	{
		/* the helpers inherit this mask: signals stay with this thread */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (int i = 1; i < n; i++)
			if (!jobs[i].skip)
				started[i] = pthread_create(&th[i], NULL, RunJob, &jobs[i]) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	RunJob(&jobs[0]);
	for (int i = 1; i < n; i++)
	{
		if (started[i])
			pthread_join(th[i], NULL);
		else
			RunJob(&jobs[i]);	/* one helper, or none could start */
	}
	for (int i = 0; i < n; i++)
		if (jobs[i].rc != CODEVEC_CUDA_OK)
		{
			snprintf(errbuf, errlen, "%s", jobs[i].err);
			return jobs[i].rc;
		}
	return CODEVEC_CUDA_OK;
}

/* Fold a job's times into *t: the slowest job's breakdown, fallbacks summed */
static void
FoldTimes(CodevecCudaKnnTimes *t, const SpreadJob *jobs, int n)
{
	const SpreadJob *slow = NULL;
	int			fallbacks = 0;

	for (int i = 0; i < n; i++)
	{
		if (jobs[i].skip)
			continue;
		fallbacks += jobs[i].times.fallbacks;
		if (slow == NULL ||
			jobs[i].times.enqueue_us + jobs[i].times.wait_us + jobs[i].times.fallback_us >
			slow->times.enqueue_us + slow->times.wait_us + slow->times.fallback_us)
			slow = &jobs[i];
	}
	if (slow == NULL)
		return;
	t->h2d_us += slow->times.h2d_us;
	t->kernel_us += slow->times.kernel_us;
	t->gather_us += slow->times.gather_us;
	t->d2h_us += slow->times.d2h_us;
	t->enqueue_us += slow->times.enqueue_us;
	t->wait_us += slow->times.wait_us;
	t->fallback_us += slow->times.fallback_us;
	t->fallbacks += fallbacks;
}

/*
 * A tier's part of the ranges of queries q0 .. q0 + nq - 1: into out
 * (local rows; room for every range of those queries), outq[q] the count
 * of query q (when qranges is given). rstart[q]: where query q's ranges
 * begin (qranges given). The number of ranges written.
 */
static int
TierRanges(const GpuSpreadTier *t, const int64 *ranges, int nranges, const int *qranges,
		   const int *rstart, int q0, int nq, int64 *out, int *outq)
{
	int			m = 0;

	for (int q = 0; q < (qranges ? nq : 1); q++)
	{
		int			from = qranges ? rstart[q0 + q] : 0;
		int			cnt = qranges ? qranges[q0 + q] : nranges;
		int			before = m;

		for (int i = from; i < from + cnt; i++)
		{
			int64		lo = Max(ranges[2 * i], t->first),
						hi = Min(ranges[2 * i] + ranges[2 * i + 1], t->first + t->n);

			if (lo < hi)
			{
				out[2 * m] = lo - t->first;
				out[2 * m + 1] = hi - lo;
				m++;
			}
		}
		if (qranges)
			outq[q] = m - before;
	}
	return m;
}

/* GpuSpreadKnn: see gpuspread.h */
int
GpuSpreadKnn(const GpuSpreadTier *tiers, int ntiers, const float *queries, int nq, int dims,
			 int k, int metric, const int64 *ranges, int nranges, const int *qranges,
			 float *dist, int64 *ids, float *rows, int *served, CodevecCudaKnnTimes *times,
			 char *errbuf, size_t errlen)
{
	SpreadJob	jobs[GPU_SPREAD_MAX_TIERS];
	float	   *tdist[GPU_SPREAD_MAX_TIERS];
	int64	   *tids[GPU_SPREAD_MAX_TIERS];
	float	   *trows[GPU_SPREAD_MAX_TIERS];
	int64	   *tranges[GPU_SPREAD_MAX_TIERS];
	int		   *tq[GPU_SPREAD_MAX_TIERS];
	int		   *rstart = NULL;
	Size		rowbytes = (Size) k * dims * sizeof(float);
	int			chunk = (int) Max((Size) 1, Min((Size) nq, GPU_SPREAD_MAX_BYTES / Max(rowbytes, 1)));
	int			rc = CODEVEC_CUDA_OK;
	bool		oom = false;

	if (times)
		memset(times, 0, sizeof(*times));
	if (served)
		memset(served, 0, sizeof(int) * ntiers);
	if (ntiers < 1 || ntiers > GPU_SPREAD_MAX_TIERS || nq < 1 || k < 1 ||
		k > CODEVEC_CUDA_MAX_K || (ranges == NULL && qranges != NULL))
	{
		snprintf(errbuf, errlen, "bad spread k-NN arguments (%d tiers, nq %d, k %d)",
				 ntiers, nq, k);
		return CODEVEC_CUDA_ERR_ARG;
	}
	memset(tdist, 0, sizeof(tdist));
	memset(tids, 0, sizeof(tids));
	memset(trows, 0, sizeof(trows));
	memset(tranges, 0, sizeof(tranges));
	memset(tq, 0, sizeof(tq));
	if (qranges)
	{
		rstart = malloc(sizeof(int) * (nq + 1));
		oom |= rstart == NULL;
		if (!oom)
		{
			rstart[0] = 0;
			for (int q = 0; q < nq; q++)
				rstart[q + 1] = rstart[q] + qranges[q];
		}
	}
	for (int t = 0; t < ntiers && !oom; t++)
	{
		tdist[t] = malloc(sizeof(float) * (Size) chunk * k);
		tids[t] = malloc(sizeof(int64) * (Size) chunk * k);
		trows[t] = rows ? malloc(rowbytes * chunk) : NULL;
		tranges[t] = ranges ? malloc(sizeof(int64) * 2 * Max(nranges, 1)) : NULL;
		tq[t] = qranges ? malloc(sizeof(int) * chunk) : NULL;
		oom |= !tdist[t] || !tids[t] || (rows && !trows[t]) || (ranges && !tranges[t]) ||
			(qranges && !tq[t]);
	}
	if (oom)
	{
		snprintf(errbuf, errlen, "out of host memory");
		rc = CODEVEC_CUDA_ERR_NOMEM;
	}
	for (int q0 = 0; rc == CODEVEC_CUDA_OK && q0 < nq; q0 += chunk)
	{
		int			nqc = Min(chunk, nq - q0);

		/* one job per tier: its part of the ranges, or every row */
		for (int t = 0; t < ntiers; t++)
		{
			SpreadJob  *j = &jobs[t];

			memset(j, 0, sizeof(*j));
			j->idx = tiers[t].idx;
			j->queries = queries + (Size) q0 * dims;
			j->nq = nqc;
			j->k = k;
			j->metric = metric;
			j->dist = tdist[t];
			j->ids = tids[t];
			j->rows = trows[t];
			j->skip = tiers[t].n <= 0 || tiers[t].idx == NULL;
			if (ranges && !j->skip)
			{
				j->nranges = TierRanges(&tiers[t], ranges, nranges, qranges, rstart, q0, nqc,
										tranges[t], tq[t]);
				j->ranges = tranges[t];
				j->qranges = tq[t];
				j->skip = j->nranges == 0;
			}
			if (served && !j->skip)
				served[t] += nqc;
		}
		rc = RunJobs(jobs, ntiers, errbuf, errlen);
		if (rc != CODEVEC_CUDA_OK)
			break;
		if (times)
			FoldTimes(times, jobs, ntiers);

		/* merge: per query, the tiers' lists by (distance, row) */
		for (int q = 0; q < nqc; q++)
		{
			int			pos[GPU_SPREAD_MAX_TIERS];
			Size		out = (Size) (q0 + q) * k;

			memset(pos, 0, sizeof(pos));
			for (int o = 0; o < k; o++)
			{
				int			best = -1;
				float		bd = INFINITY;
				int64		bi = -1;

				for (int t = 0; t < ntiers; t++)
				{
					Size		at = (Size) q * k + pos[t];
					float		d;
					int64		id;

					if (jobs[t].skip || pos[t] >= k || tids[t][at] < 0)
						continue;
					d = tdist[t][at];
					id = tiers[t].first + tids[t][at];
					if (best < 0 || GpuSpreadBefore(d, id, bd, bi))
					{
						best = t;
						bd = d;
						bi = id;
					}
				}
				dist[out + o] = best >= 0 ? bd : INFINITY;
				ids[out + o] = bi;
				if (rows)
				{
					float	   *dst = rows + (out + o) * dims;

					if (best >= 0)
						memcpy(dst, trows[best] + ((Size) q * k + pos[best]) * dims,
							   sizeof(float) * dims);
					else
						memset(dst, 0, sizeof(float) * dims);
				}
				if (best >= 0)
					pos[best]++;
			}
		}
	}
	for (int t = 0; t < ntiers; t++)
	{
		free(tdist[t]);
		free(tids[t]);
		free(trows[t]);
		free(tranges[t]);
		free(tq[t]);
	}
	free(rstart);
	return rc;
}

/* GpuSpreadReplicas: see gpuspread.h */
int
GpuSpreadReplicas(const CodevecCudaIndex *reps, int nrep, const float *queries, int nq,
				  int dims, int k, int metric, const int64 *ranges, int nranges,
				  const int *qranges, float *dist, int64 *ids, float *rows, int *served,
				  CodevecCudaKnnTimes *times, char *errbuf, size_t errlen)
{
	SpreadJob	jobs[GPU_SPREAD_MAX_TIERS];
	int			q0 = 0,
				r0 = 0,
				rc;

	if (times)
		memset(times, 0, sizeof(*times));
	if (nrep < 1 || nrep > GPU_SPREAD_MAX_TIERS || nq < 1 || (ranges == NULL && qranges != NULL))
	{
		snprintf(errbuf, errlen, "bad replica k-NN arguments (%d replicas, nq %d)", nrep, nq);
		return CODEVEC_CUDA_ERR_ARG;
	}
	/* replica i: the next nq / nrep queries (one more for the first nq % nrep) */
	for (int i = 0; i < nrep; i++)
	{
		SpreadJob  *j = &jobs[i];
		int			nqi = nq / nrep + (i < nq % nrep ? 1 : 0);
		int			nri = 0;

		memset(j, 0, sizeof(*j));
		for (int q = q0; qranges && q < q0 + nqi; q++)
			nri += qranges[q];
		j->idx = reps[i];
		j->queries = queries + (Size) q0 * dims;
		j->nq = nqi;
		j->k = k;
		j->metric = metric;
		j->ranges = ranges ? ranges + (qranges ? 2 * (Size) r0 : 0) : NULL;
		j->nranges = qranges ? nri : nranges;
		j->qranges = qranges ? qranges + q0 : NULL;
		j->dist = dist + (Size) q0 * k;
		j->ids = ids + (Size) q0 * k;
		j->rows = rows ? rows + (Size) q0 * k * dims : NULL;
		j->skip = nqi == 0;
		if (served)
			served[i] = nqi;
		q0 += nqi;
		r0 += nri;
	}
	rc = RunJobs(jobs, nrep, errbuf, errlen);
	if (rc == CODEVEC_CUDA_OK && times)
		FoldTimes(times, jobs, nrep);
	return rc;
}

#endif							/* CODEVEC_USE_CUDA */
