/*
 * gpuknn.c
 *	  The GPU service's KNN request kind: the k nearest rows of a current
 *	  index copy (gpucopies.c keeps the copies; gpucopies.h is what the two
 *	  share). Requests on one copy form a group answered by one batched
 *	  call (codevec_cuda_knn_batch: one copy of all the queries in, the
 *	  kernels, the candidates' rows gathered on the device, one copy of
 *	  every answer out, one wait; its stages timed for
 *	  codevec_gpu_stages()), or, with double buffering, started on the
 *	  device (codevec_cuda_knn_batch_start) and answered when the loop
 *	  finishes it; a copy split over several devices or replicated is
 *	  searched by gpuspread.c; a copy with a delta tier or masked rows
 *	  step by step. The backend's side is gpuivfgpu.c and gpuivfknn.c.
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "gpuserviceint.h"
#include "gpuspread.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#include "gpucopies.h"

/* Answer a KNN request that found no current copy */
static void
AnswerNotCurrent(GpuKnnRequest *r, const GpuIndexCopy *c, int status)
{
	r->hdr.status = status;
	if (status == GPU_STATUS_STALE)
	{
		r->nrows = c->n + c->ndelta;
		r->resume_blk = c->resume_blk;
		r->resume_off = c->resume_off;
		r->delta_room = (c->delta_cap > 0 ? c->delta_cap : Max(GPU_DELTA_MIN_ROWS, c->n / 8)) - c->ndelta;
	}
}

/*
 * Largest candidate rows (bytes) one batch call copies back: a bigger
 * answer (codevec_knn with many queries and a large k) takes the
 * step-by-step path, whose buffers do not grow with the batch.
 */
#define GPU_KNN_BATCH_MAX_BYTES ((Size) 64 * 1024 * 1024)

/* Add a k-NN call's timings (codevec_cuda_knn_batch) to the stages */
static void
KnnStages(const CodevecCudaKnnTimes *t, double whole_us, int nreq)
{
	GpuServiceStageAdd(GPU_STAGE_KNN, whole_us, nreq);
	if (t == NULL)
		return;
	GpuServiceStageAdd(GPU_STAGE_KNN_ENQUEUE, t->enqueue_us, nreq);
	GpuServiceStageAdd(GPU_STAGE_KNN_H2D, t->h2d_us, nreq);
	GpuServiceStageAdd(GPU_STAGE_KNN_KERNELS, t->kernel_us, nreq);
	GpuServiceStageAdd(GPU_STAGE_KNN_CANDIDATES, t->gather_us, nreq);
	GpuServiceStageAdd(GPU_STAGE_KNN_D2H, t->d2h_us, nreq);
	GpuServiceStageAdd(GPU_STAGE_KNN_WAIT, t->wait_us, nreq);
	if (t->fallbacks > 0)
		GpuServiceStageAdd(GPU_STAGE_KNN_FALLBACK, t->fallback_us, nreq);
}

/* KnnOnSpread's answer when the copy is neither split nor replicated */
#define KNN_NOT_SPREAD 1

/*
 * KnnOnCopy's path for a copy on several device indexes (ranges in the
 * copy's rows, as KnnOnCopy made them): a split copy's parts and delta
 * tier all at once, merged (GpuSpreadKnn); a replicated copy's queries
 * shared out among its replicas (GpuSpreadReplicas). KNN_NOT_SPREAD when
 * the copy is one device index (or its delta tier keeps it on the first
 * one), else 0 or a CODEVEC_CUDA error (errbuf).
 */
static int
KnnOnSpread(GpuIndexCopy *c, const float *queries, int nq, int k, int metric,
			const int64 *ranges, int nranges, const int *qranges, float *dist, int64 *ids,
			float *rows, int nreq, double t0, char *errbuf, size_t errlen)
{
	int			rc;

	if (c->nparts > 1)
	{
		/* a split copy: every part (and the delta tier) at once, merged */
		GpuSpreadTier tiers[GPU_SPREAD_MAX_TIERS];
		int			served[GPU_SPREAD_MAX_TIERS];
		int			nt = 0;
		CodevecCudaKnnTimes times;

		for (int p = 0; p < c->nparts; p++)
		{
			tiers[nt].idx = c->parts[p].idx;
			tiers[nt].first = c->parts[p].first;
			tiers[nt].n = c->parts[p].n;
			tiers[nt++].device = c->parts[p].device;
		}
		if (c->ndelta > 0)
		{
			tiers[nt].idx = c->delta;
			tiers[nt].first = c->n;
			tiers[nt].n = c->ndelta;
			tiers[nt++].device = c->parts[0].device;
		}
		rc = GpuSpreadKnn(tiers, nt, queries, nq, c->dims, k, metric, ranges, nranges, qranges,
						  dist, ids, rows, served, &times, errbuf, errlen);
		/* the requests count once on each device that ran a part of them */
		for (int t = 0, seen = 0; rc == CODEVEC_CUDA_OK && t < nt; t++)
			if (served[t] > 0 && !(seen & (1 << tiers[t].device)))
			{
				seen |= 1 << tiers[t].device;
				GpuServiceDeviceServed(tiers[t].device, nreq);
			}
		KnnStages(rc == CODEVEC_CUDA_OK ? &times : NULL, GpuServiceNowUs() - t0, nreq);
		return rc;
	}
	if (c->nreplicas > 0 && c->ndelta == 0 &&
		(Size) nq * k * c->dims * sizeof(float) <= GPU_KNN_BATCH_MAX_BYTES)
	{
		/*
		 * A replicated copy: the queries shared out among the replicas,
		 * which run at once; a lone query goes to the next one in turn.
		 */
		CodevecCudaIndex reps[1 + GPU_MAX_DEVICES];
		int			devs[1 + GPU_MAX_DEVICES];
		int			served[1 + GPU_MAX_DEVICES];
		int			nrep = 1 + c->nreplicas;
		int			from = 0;
		CodevecCudaKnnTimes times;

		reps[0] = c->parts[0].idx;
		devs[0] = c->parts[0].device;
		for (int i = 0; i < c->nreplicas; i++)
		{
			reps[1 + i] = c->replicas[i];
			devs[1 + i] = c->replica_device[i];
		}
		if (nq == 1)
		{
			from = c->next_replica++ % nrep;
			nrep = 1;
		}
		rc = GpuSpreadReplicas(reps + from, nrep, queries, nq, c->dims, k, metric, ranges,
							   nranges, qranges, dist, ids, rows, served, &times, errbuf, errlen);
		for (int i = 0; rc == CODEVEC_CUDA_OK && i < nrep; i++)
			GpuServiceDeviceServed(devs[from + i], nreq == nq ? served[i] : (served[i] > 0));
		KnnStages(rc == CODEVEC_CUDA_OK ? &times : NULL, GpuServiceNowUs() - t0, nreq);
		return rc;
	}
	return KNN_NOT_SPREAD;
}

/*
 * k nearest rows of nq queries over a copy's main rows and delta tier
 * (an IVF copy: the rows of the nprobe lists probes, every query alike,
 * or when qprobes is given, query q the next qprobes[q] of them):
 * dist/ids (nq x k, row positions, -1 past the end) in (distance, row)
 * order. Each tier's kernel returns its own first k; their merge is the
 * copy's first k, and a row of neither list is at least as far as the
 * merged k-th (it is at least its tier's k-th). Then rows (nq x k x dims)
 * gets the candidates' vectors. Without a delta tier one
 * codevec_cuda_knn_batch call does all of it with a single wait. nreq:
 * the requests this answers, for codevec_gpu_stages(). 0 or a
 * CODEVEC_CUDA error (errbuf).
 */
static int
KnnOnCopy(GpuIndexCopy *c, const float *queries, int nq, int k, int metric,
		  const int32 *probes, int nprobe, const int *qprobes,
		  float *dist, int64 *ids, float *rows, int nreq, char *errbuf, size_t errlen)
{
	Size		nk = (Size) nq * k;
	int			rc;
	int64	   *ranges = NULL;
	double		t0 = GpuServiceNowUs();

	if (c->lists > 1)
	{
		/* IVF: the probed lists' rows only (one range each) */
		ranges = malloc(sizeof(int64) * 2 * Max(nprobe, 1));
		if (ranges == NULL)
		{
			snprintf(errbuf, errlen, "out of host memory");
			return CODEVEC_CUDA_ERR_NOMEM;
		}
		for (int i = 0; i < nprobe; i++)
		{
			int32		l = probes[i];

			if (l < 0 || l >= c->lists)
			{
				free(ranges);
				snprintf(errbuf, errlen, "list %d out of range (the index has %d)", l, c->lists);
				return CODEVEC_CUDA_ERR_ARG;
			}
			ranges[2 * i] = c->list_first[l];
			ranges[2 * i + 1] = c->list_first[l + 1] - c->list_first[l];
		}
	}
	rc = KnnOnSpread(c, queries, nq, k, metric, ranges, ranges ? nprobe : 0,
					 ranges ? qprobes : NULL, dist, ids, rows, nreq, t0, errbuf, errlen);
	if (rc != KNN_NOT_SPREAD)
	{
		free(ranges);
		return rc;
	}
	GpuServiceDeviceServed(c->parts[0].device, nreq);
	if (c->ndelta == 0 && nk * c->dims * sizeof(float) <= GPU_KNN_BATCH_MAX_BYTES)
	{
		/*
		 * No delta tier: the main rows' answers and their candidate rows in
		 * one call (one copy in, the kernels, the gather, one copy out, one
		 * wait; codevec_cuda_knn_batch).
		 */
		CodevecCudaKnnTimes times;

		rc = codevec_cuda_knn_batch(c->parts[0].idx, queries, nq, k, metric, ranges,
									ranges ? nprobe : 0, ranges ? qprobes : NULL,
									dist, ids, rows, &times, errbuf, errlen);
		free(ranges);
		KnnStages(rc == CODEVEC_CUDA_OK ? &times : NULL, GpuServiceNowUs() - t0, nreq);
		return rc;
	}
	rc = codevec_cuda_knn_qranges(c->parts[0].idx, queries, nq, k, metric, ranges,
								  ranges ? nprobe : 0, ranges ? qprobes : NULL, dist, ids,
								  errbuf, errlen);
	free(ranges);
	if (rc == CODEVEC_CUDA_OK && c->ndelta > 0)
	{
		float	   *ddist = malloc(sizeof(float) * nk);
		int64	   *dids = malloc(sizeof(int64) * nk);
		float	   *mdist = malloc(sizeof(float) * k);
		int64	   *mids = malloc(sizeof(int64) * k);

		if (!ddist || !dids || !mdist || !mids)
		{
			snprintf(errbuf, errlen, "out of host memory");
			rc = CODEVEC_CUDA_ERR_NOMEM;
		}
		else
			rc = codevec_cuda_knn(c->delta, queries, nq, k, metric, ddist, dids, errbuf, errlen);
		for (int q = 0; rc == CODEVEC_CUDA_OK && q < nq; q++)
		{
			float	   *a = dist + (Size) q * k,
					   *b = ddist + (Size) q * k;
			int64	   *ai = ids + (Size) q * k,
					   *bi = dids + (Size) q * k;
			int			i = 0,
						j = 0;

			for (int o = 0; o < k; o++)
			{
				bool		hasa = i < k && ai[i] >= 0,
							hasb = j < k && bi[j] >= 0;

				if (hasa && (!hasb || a[i] <= b[j]))
				{
					mdist[o] = a[i];
					mids[o] = ai[i++];
				}
				else if (hasb)
				{
					mdist[o] = b[j];
					mids[o] = c->n + bi[j++];
				}
				else
				{
					mdist[o] = INFINITY;
					mids[o] = -1;
				}
			}
			memcpy(a, mdist, sizeof(float) * k);
			memcpy(ai, mids, sizeof(int64) * k);
		}
		free(ddist);
		free(dids);
		free(mdist);
		free(mids);
	}
	/* the candidates' fp32 vectors, gathered per tier */
	if (rc == CODEVEC_CUDA_OK && rows != NULL)
	{
		int64	   *g = malloc(sizeof(int64) * CODEVEC_CUDA_MAX_K);
		float	   *buf = malloc(sizeof(float) * (Size) CODEVEC_CUDA_MAX_K * c->dims);

		if (!g || !buf)
		{
			snprintf(errbuf, errlen, "out of host memory");
			rc = CODEVEC_CUDA_ERR_NOMEM;
		}
		for (int tier = 0; rc == CODEVEC_CUDA_OK && tier < (c->ndelta > 0 ? 2 : 1); tier++)
		{
			CodevecCudaIndex idx = tier == 0 ? c->parts[0].idx : c->delta;
			Size		p = 0;

			while (rc == CODEVEC_CUDA_OK && p < nk)
			{
				Size		from = p;
				int			cnt = 0;

				/* the next CODEVEC_CUDA_MAX_K positions, this tier's rows only */
				for (; p < nk && cnt < CODEVEC_CUDA_MAX_K; p++)
				{
					bool		mine = tier == 0 ? (ids[p] >= 0 && ids[p] < c->n) : ids[p] >= c->n;

					g[cnt++] = mine ? (tier == 0 ? ids[p] : ids[p] - c->n) : -1;
				}
				rc = codevec_cuda_index_rows(idx, g, cnt, buf, errbuf, errlen);
				for (int e = 0; rc == CODEVEC_CUDA_OK && e < cnt; e++)
					if (g[e] >= 0 || (tier == 0 && ids[from + e] < 0))
						memcpy(rows + (from + e) * c->dims, buf + (Size) e * c->dims,
							   sizeof(float) * c->dims);
			}
		}
		free(g);
		free(buf);
	}
	KnnStages(NULL, GpuServiceNowUs() - t0, nreq);
	return rc;
}

/* Write a KNN answer from dist/ids/rows (nq x k of the request) */
static void
AnswerKnn(GpuKnnRequest *r, const GpuIndexCopy *c, const float *dist, const int64 *ids,
		  const float *rows, int kstride)
{
	for (int q = 0; q < r->nq; q++)
		for (int i = 0; i < r->k; i++)
		{
			Size		src = (Size) q * kstride + i;
			Size		dst = (Size) q * r->k + i;
			int64		id = ids[src];

			if (&GpuKnnDistances(r)[dst] != &dist[src])
			{
				GpuKnnDistances(r)[dst] = dist[src];
				memcpy(GpuKnnRows(r) + dst * r->dims, rows + src * r->dims, sizeof(float) * r->dims);
			}
			if (id >= 0 && id < c->n + c->ndelta)
				GpuKnnTids(r)[dst] = c->tids[id];
			else
				ItemPointerSetInvalid(&GpuKnnTids(r)[dst]);
		}
	r->nrows = c->n + c->ndelta;
	r->maxnorm = c->maxnorm;
	r->hdr.status = 0;
}

/*
 * Answer a KNN request from a copy with masked rows: ask the kernels for k
 * plus the masked rows' number of candidates (at most CODEVEC_CUDA_MAX_K)
 * and keep the first k unmasked of each query. A query left with fewer
 * than k although the kernels' list was full (the cap cut it) makes the
 * answer partial, so the backend does not take it for the whole copy.
 */
static void
RunKnnMasked(GpuKnnRequest *r, GpuIndexCopy *c)
{
	int			kk = (int) Min((int64) CODEVEC_CUDA_MAX_K, (int64) r->k + c->nmasked);
	Size		nkk = (Size) r->nq * kk;
	float	   *dist = malloc(sizeof(float) * nkk);
	int64	   *ids = malloc(sizeof(int64) * nkk);
	float	   *rows = malloc(sizeof(float) * nkk * r->dims);
	float	   *odist = malloc(sizeof(float) * (Size) r->nq * r->k);
	int64	   *oids = malloc(sizeof(int64) * (Size) r->nq * r->k);
	float	   *orows = malloc(sizeof(float) * (Size) r->nq * r->k * r->dims);

	if (!dist || !ids || !rows || !odist || !oids || !orows)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
	}
	else if (KnnOnCopy(c, GpuKnnQueries(r), r->nq, kk, r->metric, GpuKnnProbes(r), r->nprobe,
					   NULL, dist, ids, rows, 1, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		r->hdr.status = GPU_STATUS_FAILED;
	else
	{
		for (int q = 0; q < r->nq; q++)
		{
			int			j = 0,
						nvalid = 0;

			for (int i = 0; i < kk; i++)
			{
				Size		src = (Size) q * kk + i;
				int64		id = ids[src];

				if (id < 0)
					continue;
				nvalid++;
				if ((id < c->masked_cap && c->masked[id]) || j >= r->k)
					continue;
				odist[(Size) q * r->k + j] = dist[src];
				oids[(Size) q * r->k + j] = id;
				memcpy(orows + ((Size) q * r->k + j) * r->dims, rows + src * r->dims,
					   sizeof(float) * r->dims);
				j++;
			}
			if (j < r->k && nvalid == kk)
				r->partial = 1;
			for (; j < r->k; j++)
			{
				odist[(Size) q * r->k + j] = INFINITY;
				oids[(Size) q * r->k + j] = -1;
				memset(orows + ((Size) q * r->k + j) * r->dims, 0, sizeof(float) * r->dims);
			}
		}
		AnswerKnn(r, c, odist, oids, orows, r->k);
	}
	free(dist);
	free(ids);
	free(rows);
	free(odist);
	free(oids);
	free(orows);
}

/* Answer a KNN request from a current copy, or say what it lacks */
static void
RunKnn(GpuKnnRequest *r)
{
	GpuIndexCopy *c = GpuCopyFind(&r->key);
	int			st = GpuCopyStatus(c, &r->key, r->dims);
	Size		nk;
	float	   *dist,
			   *rows;
	int64	   *ids;

	if (st != 0)
	{
		AnswerNotCurrent(r, c, st);
		return;
	}
	if (r->k < 1 || r->k > CODEVEC_CUDA_MAX_K || r->nq < 1 || r->nprobe < 0 ||
		(c->lists > 1) != (r->nprobe > 0))
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad k %d, nq %d or nprobe %d (lists %d)",
				 r->k, r->nq, r->nprobe, c->lists);
		return;
	}
	c->last_used = GetCurrentTimestamp();
	c->queried = true;
	r->partial = 0;
	if (c->nmasked > 0)
	{
		RunKnnMasked(r, c);
		GpuCopyMaybeReplicate(c, 1);
		return;
	}
	nk = (Size) r->nq * r->k;
	/* distances and candidate rows go straight into the answer */
	dist = GpuKnnDistances(r);
	rows = GpuKnnRows(r);
	ids = malloc(sizeof(int64) * nk);
	if (ids == NULL)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
		return;
	}
	if (KnnOnCopy(c, GpuKnnQueries(r), r->nq, r->k, r->metric, GpuKnnProbes(r), r->nprobe,
				  NULL, dist, ids, rows, 1, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		r->hdr.status = GPU_STATUS_FAILED;
	else
	{
		double		t0 = GpuServiceNowUs();

		AnswerKnn(r, c, dist, ids, rows, r->k);
		GpuServiceStageAdd(GPU_STAGE_KNN_ANSWER, GpuServiceNowUs() - t0, 1);
	}
	free(ids);
	GpuCopyMaybeReplicate(c, 1);
}

/*
 * Answer several KNN requests on one index copy with one batched launch
 * (nq = the number of requests, k = the largest k; each request gets its
 * own first k, the same rows as asking alone since results are ordered by
 * (distance, row)); for an IVF copy each request's probed lists become its
 * query's own row ranges in the same launch. Requests with several queries
 * each, a copy with masked rows, or a copy that is not current, are
 * answered one by one.
 */
static void
RunKnnGroup(GpuKnnRequest **group, int ng)
{
	GpuIndexCopy *c = GpuCopyFind(&group[0]->key);
	GpuKnnRequest *r0 = group[0];
	int			kmax = 0;
	float	   *queries,
			   *dist,
			   *rows;
	int64	   *ids;
	int32	   *probes;
	int		   *qprobes;
	int			nprobe = 0;
	double		t0;
	bool		ivf = c != NULL && c->lists > 1;
	bool		one_by_one = ng == 1 || GpuCopyStatus(c, &r0->key, r0->dims) != 0 ||
		c->nmasked > 0;

	for (int j = 0; j < ng && !one_by_one; j++)
	{
		kmax = Max(kmax, group[j]->k);
		nprobe += group[j]->nprobe;
		one_by_one |= group[j]->nq != 1 || group[j]->k < 1 || (group[j]->nprobe > 0) != ivf;
	}
	if (one_by_one || kmax > CODEVEC_CUDA_MAX_K)
	{
		for (int j = 0; j < ng; j++)
			RunKnn(group[j]);
		return;
	}
	queries = malloc(sizeof(float) * (Size) ng * r0->dims);
	dist = malloc(sizeof(float) * (Size) ng * kmax);
	ids = malloc(sizeof(int64) * (Size) ng * kmax);
	rows = malloc(sizeof(float) * (Size) ng * kmax * r0->dims);
	probes = malloc(sizeof(int32) * Max(nprobe, 1));
	qprobes = malloc(sizeof(int) * ng);
	if (queries == NULL || dist == NULL || ids == NULL || rows == NULL || probes == NULL ||
		qprobes == NULL)
	{
		free(queries);
		free(dist);
		free(ids);
		free(rows);
		free(probes);
		free(qprobes);
		for (int j = 0; j < ng; j++)
			RunKnn(group[j]);
		return;
	}
	/* the queries; IVF: each query's lists, its own ranges in one launch */
	t0 = GpuServiceNowUs();
	for (int j = 0, total = 0; j < ng; j++)
	{
		memcpy(queries + (Size) j * r0->dims, GpuKnnQueries(group[j]), sizeof(float) * r0->dims);
		memcpy(probes + total, GpuKnnProbes(group[j]), sizeof(int32) * group[j]->nprobe);
		qprobes[j] = group[j]->nprobe;
		total += group[j]->nprobe;
	}
	c->last_used = GetCurrentTimestamp();
	c->queried = true;
	GpuServiceStageAdd(GPU_STAGE_KNN_GATHER, GpuServiceNowUs() - t0, ng);
	if (KnnOnCopy(c, queries, ng, kmax, r0->metric, probes, nprobe, ivf ? qprobes : NULL,
				  dist, ids, rows, ng,
				  r0->hdr.errmsg, sizeof(r0->hdr.errmsg)) != CODEVEC_CUDA_OK)
	{
		for (int j = 0; j < ng; j++)
		{
			group[j]->hdr.status = GPU_STATUS_FAILED;
			strlcpy(group[j]->hdr.errmsg, r0->hdr.errmsg, sizeof(group[j]->hdr.errmsg));
		}
	}
	else
	{
		t0 = GpuServiceNowUs();
		for (int j = 0; j < ng; j++)
		{
			group[j]->partial = 0;
			AnswerKnn(group[j], c, dist + (Size) j * kmax, ids + (Size) j * kmax,
					  rows + (Size) j * kmax * r0->dims, kmax);
		}
		GpuServiceStageAdd(GPU_STAGE_KNN_ANSWER, GpuServiceNowUs() - t0, ng);
		GpuCopyMaybeReplicate(c, ng);
	}
	free(probes);
	free(qprobes);
	free(queries);
	free(dist);
	free(ids);
	free(rows);
}

/*
 * A KNN group started on the device (KnnStartGroup to KnnFinishGroup):
 * one codevec_cuda_knn_batch_start on the only device index of a whole
 * copy, its answers read from the pinned buffers straight into the
 * requests.
 */
typedef struct KnnStarted
{
	GpuIndexCopy *c;
	CodevecCudaIndex idx;
	int			ticket;
	int			ng;
	int			kmax;
	double		t0;
	GpuKnnRequest *group[FLEXIBLE_ARRAY_MEMBER];
} KnnStarted;

/* the queries of the group being started, in one buffer (grown, kept) */
static float *start_queries = NULL;
static Size start_queries_len = 0;

/*
 * Start a KNN group on the device without waiting (double buffering; see
 * GpuRequestKindData.start_group): when the copy is current, whole (one
 * device index: not split, no replicas, no delta tier, no masked rows),
 * flat (no IVF lists), with fewer than two groups of it already in flight
 * (cuda/knn.h's limit), every request one query, and the answers fit
 * GPU_KNN_BATCH_MAX_BYTES. Otherwise the group runs now (RunKnnGroup) and
 * NULL is returned; also NULL when the start failed (every request then
 * has the error).
 */
static void *
KnnStartGroup(GpuRequestHeader **reqs, int ng)
{
	GpuKnnRequest **group = (GpuKnnRequest **) reqs;
	GpuKnnRequest *r0 = group[0];
	GpuIndexCopy *c = GpuCopyFind(&r0->key);
	KnnStarted *h;
	int			kmax = 0;
	bool		startable;
	double		t0 = GpuServiceNowUs();
	char		errbuf[sizeof(r0->hdr.errmsg)];

	startable = GpuCopyStatus(c, &r0->key, r0->dims) == 0 && c->nmasked == 0 && c->ndelta == 0 &&
		c->nparts == 1 && c->nreplicas == 0 && c->lists <= 1 && c->inflight < 2;
	for (int j = 0; j < ng && startable; j++)
	{
		kmax = Max(kmax, group[j]->k);
		startable = group[j]->nq == 1 && group[j]->k >= 1 && group[j]->nprobe == 0;
	}
	startable = startable && kmax <= CODEVEC_CUDA_MAX_K &&
		(Size) ng * kmax * r0->dims * sizeof(float) <= GPU_KNN_BATCH_MAX_BYTES;
	if (startable && start_queries_len < (Size) ng * r0->dims)
	{
		free(start_queries);
		start_queries_len = 0;
		start_queries = malloc(sizeof(float) * GPU_MAX_SLOTS * r0->dims);
		if (start_queries != NULL)
			start_queries_len = (Size) GPU_MAX_SLOTS * r0->dims;
	}
	h = startable && start_queries != NULL ?
		malloc(offsetof(KnnStarted, group) + sizeof(GpuKnnRequest *) * ng) : NULL;
	if (h == NULL)
	{
		RunKnnGroup(group, ng);
		return NULL;
	}
	for (int j = 0; j < ng; j++)
	{
		memcpy(start_queries + (Size) j * r0->dims, GpuKnnQueries(group[j]),
			   sizeof(float) * r0->dims);
		group[j]->partial = 0;
		h->group[j] = group[j];
	}
	c->last_used = GetCurrentTimestamp();
	c->queried = true;
	GpuServiceStageAdd(GPU_STAGE_KNN_GATHER, GpuServiceNowUs() - t0, ng);
	h->c = c;
	h->idx = c->parts[0].idx;
	h->ng = ng;
	h->kmax = kmax;
	h->t0 = t0;
	if (codevec_cuda_knn_batch_start(h->idx, start_queries, ng, kmax, r0->metric, NULL, 0, NULL,
									 1, &h->ticket, errbuf, sizeof(errbuf)) != CODEVEC_CUDA_OK)
	{
		for (int j = 0; j < ng; j++)
		{
			group[j]->hdr.status = GPU_STATUS_FAILED;
			strlcpy(group[j]->hdr.errmsg, errbuf, sizeof(group[j]->hdr.errmsg));
		}
		free(h);
		return NULL;
	}
	c->inflight++;
	GpuServiceDeviceServed(c->parts[0].device, ng);
	return h;
}

/* Whether a started KNN group's device work is done (no wait) */
static bool
KnnGroupReady(void *handle)
{
	KnnStarted *h = handle;

	return codevec_cuda_knn_batch_ready(h->idx, h->ticket) != 0;
}

/* Wait for a started KNN group and answer its requests; free the handle */
static void
KnnFinishGroup(void *handle)
{
	KnnStarted *h = handle;
	GpuIndexCopy *c = h->c;
	const float *dist,
			   *rows;
	const int64_t *ids;
	CodevecCudaKnnTimes times;
	char		errbuf[sizeof(h->group[0]->hdr.errmsg)];
	int			dims = h->group[0]->dims;

	c->inflight--;
	if (codevec_cuda_knn_batch_finish(h->idx, h->ticket, &dist, &ids, &rows, &times, errbuf,
									  sizeof(errbuf)) != CODEVEC_CUDA_OK)
	{
		for (int j = 0; j < h->ng; j++)
		{
			h->group[j]->hdr.status = GPU_STATUS_FAILED;
			strlcpy(h->group[j]->hdr.errmsg, errbuf, sizeof(h->group[j]->hdr.errmsg));
		}
		KnnStages(NULL, GpuServiceNowUs() - h->t0, h->ng);
	}
	else
	{
		double		t1 = GpuServiceNowUs();

		KnnStages(&times, t1 - h->t0, h->ng);
		for (int j = 0; j < h->ng; j++)
			AnswerKnn(h->group[j], c, dist + (Size) j * h->kmax, ids + (Size) j * h->kmax,
					  rows + (Size) j * h->kmax * dims, h->kmax);
		GpuServiceStageAdd(GPU_STAGE_KNN_ANSWER, GpuServiceNowUs() - t1, h->ng);
		GpuCopyMaybeReplicate(c, h->ng);
	}
	free(h);
}

/* KNN requests on the same index copy, metric and dims share one launch */
static bool
KnnSameGroup(const GpuRequestHeader *a, const GpuRequestHeader *b)
{
	const GpuKnnRequest *x = (const GpuKnnRequest *) a;
	const GpuKnnRequest *y = (const GpuKnnRequest *) b;

	return memcmp(&x->key, &y->key, sizeof(GpuIndexKey)) == 0 &&
		x->metric == y->metric && x->dims == y->dims;
}

static void
KnnRun(GpuRequestHeader *req)
{
	RunKnn((GpuKnnRequest *) req);
}

static void
KnnRunGroup(GpuRequestHeader **reqs, int n)
{
	RunKnnGroup((GpuKnnRequest **) reqs, n);
}

#define GPU_KNN_HANDLER(f) f
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_KNN_HANDLER(f) NULL
#endif							/* CODEVEC_USE_CUDA */

static const GpuRequestKindData knn_kind = {
	GPU_REQUEST_KNN, "knn", true, GPU_KNN_HANDLER(KnnRun),
	GPU_KNN_HANDLER(KnnSameGroup), GPU_KNN_HANDLER(KnnRunGroup),
	GPU_KNN_HANDLER(KnnStartGroup), GPU_KNN_HANDLER(KnnGroupReady),
	GPU_KNN_HANDLER(KnnFinishGroup)
};

/* GpuKnnRegister: the KNN request kind (gpukinds.c) */
void
GpuKnnRegister(void)
{
	GpuServiceRegisterKind(&knn_kind);
}
