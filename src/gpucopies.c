/*
 * gpucopies.c
 *	  The GPU service's device copies of gpuivf indexes: the service side of
 *	  the UPLOAD, APPEND, MASK, KNN and AUTOTUNE requests (gpuservice.h has
 *	  their layouts; the backends' side is gpuivfgpu.c and gpuivfknn.c).
 *
 * A copy is the index's vectors on the device (cuda/knn.h) and their heap
 * TIDs in the service's memory, keyed by GpuIndexKey. UPLOAD loads a copy
 * whole, chunk after chunk (an IVF copy list after list); APPEND adds the
 * rows a flat index gained since into the copy's delta tier; MASK hides
 * rows a VACUUM removed; KNN answers the k nearest rows of a current copy,
 * several requests on one copy in one batched call (codevec_cuda_knn_batch:
 * one copy of all the queries in, the kernels, the candidates' rows
 * gathered on the device, one copy of every answer out, one wait; its
 * stages timed for codevec_gpu_stages()). Copies are evicted
 * least recently used first to stay under codevec.gpu_memory_limit with
 * the other device stores (the encoder's models, gpuembed.c).
 * GpuCopiesList names the complete copies for the prewarm list
 * (gpuprewarm.c).
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "gpuserviceint.h"
#include "gpuspread.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#include "knn.h"

/*
 * Index copies held by the service (service-local memory). Each has its
 * vectors on the device (cuda/knn.h) and the heap TIDs of its rows here:
 * the main rows (n, loaded whole by UPLOAD) and the delta tier (ndelta rows
 * of at most delta_cap, appended by APPEND after inserts), searched
 * together; row positions run over the main rows, then the delta's, in
 * the index chain's order, as a fresh copy would number them.
 */
#define GPU_MAX_INDEXES 64
#define GPU_DELTA_MIN_ROWS	4096	/* delta tier: max(this, main rows / 8) */
#define GPU_MAX_PARTS		16		/* row ranges of one split copy */
#define GPU_REPLICA_CHUNK	16384	/* rows copied to a new replica at a time */

/*
 * Several devices (codevec.gpu_devices). A copy's main rows are parts[0 ..
 * nparts - 1]: one device index each, holding the contiguous rows first ..
 * first + n - 1, on a logical device. One part (nparts 1) is a whole copy,
 * what a service with one device always has; a copy is split when it has
 * more rows than codevec.gpu_split_rows or does not fit one device, and
 * its queries then scan every part at once and merge exactly
 * (GpuSpreadKnn). A whole copy queried more than
 * codevec.gpu_replicate_rate times a second gets replicas on other devices
 * (GpuSpreadReplicas shares a batch's queries among them). The delta tier
 * lives on part 0's device. Row numbers (ids, tids[], masked[]) are the
 * copy's, whatever part holds the row.
 */
StaticAssertDecl(GPU_MAX_PARTS + 1 <= GPU_SPREAD_MAX_TIERS && 1 + GPU_MAX_DEVICES <= GPU_SPREAD_MAX_TIERS,
				 "a split copy's parts and delta tier, or a copy and its replicas, fit one spread call");

typedef struct GpuCopyPart
{
	CodevecCudaIndex idx;
	int			device;			/* logical device */
	int64		first;			/* the copy's row held at local row 0 */
	int64		n;
} GpuCopyPart;

typedef struct GpuIndexCopy
{
	bool		used;
	bool		complete;		/* every chunk of the main rows arrived */
	GpuIndexKey key;			/* insertCount: the rows the copy holds */
	int			dims;
	int64		n;				/* main rows */
	int64		loaded;			/* main rows uploaded so far */
	int64		ndelta;			/* delta rows */
	int64		delta_cap;		/* 0 until the first APPEND */
	uint32		resume_blk;		/* chain position after the last row held */
	uint32		resume_off;
	float		maxnorm;
	size_t		device_bytes;	/* parts + delta + replicas */
	TimestampTz last_used;
	bool		queried;		/* a KNN request ran on it (not only loaded) */
	ItemPointerData *tids;		/* malloc'd: n main rows, then delta_cap */
	float	   *delta_vecs;		/* malloc'd: the delta rows (delta_cap x dims) */
	int			nparts;			/* main rows: 1 whole, more when split */
	GpuCopyPart parts[GPU_MAX_PARTS];
	int			nreplicas;		/* replicas of a whole copy besides parts[0] */
	CodevecCudaIndex replicas[GPU_MAX_DEVICES];
	int			replica_device[GPU_MAX_DEVICES];
	int			next_replica;	/* round robin for one-query calls */
	TimestampTz rate_start;		/* KNN requests counted since */
	int64		rate_count;
	CodevecCudaIndex delta;		/* exactly the ndelta rows: made again at each
								 * APPEND (a device index has a fixed row count) */
	uint8	   *masked;			/* malloc'd when a VACUUM masked rows: one
								 * byte per row position (main, then delta) */
	int64		masked_cap;		/* positions masked[] covers */
	int64		nmasked;
	int			lists;			/* IVF: lists > 1, rows stored list after list */
	int64	   *list_first;		/* malloc'd, lists + 1: list l holds main rows
								 * list_first[l] .. list_first[l + 1] - 1 */
	int			uploader;		/* pid of the backend loading it */
	TimestampTz upload_last;	/* when its last chunk came */
} GpuIndexCopy;

/*
 * A copy still loading whose uploader sent nothing for this long is taken
 * over by the next backend that loads it (the first one died or gave up).
 */
#define GPU_UPLOAD_STALL_MS		5000

static GpuIndexCopy index_copies[GPU_MAX_INDEXES];

/* bumped when a copy completes or is dropped: the prewarm list changed */
static uint64 copies_generation = 0;

/* Device bytes a device index holds now (0 for NULL) */
static size_t
IndexBytes(CodevecCudaIndex idx)
{
	size_t		b = 0;

	if (idx == NULL || codevec_cuda_index_info(idx, &b, NULL, NULL, 0) != CODEVEC_CUDA_OK)
		return 0;
	return b;
}

/* Device bytes of a copy: its parts, delta tier and replicas */
static size_t
CopyDeviceBytes(const GpuIndexCopy *c)
{
	size_t		total = IndexBytes(c->delta);

	for (int p = 0; p < c->nparts; p++)
		total += IndexBytes(c->parts[p].idx);
	for (int i = 0; i < c->nreplicas; i++)
		total += IndexBytes(c->replicas[i]);
	return total;
}

/* Drop a copy's replicas (they are made again while it stays hot) */
static void
DropReplicas(GpuIndexCopy *c)
{
	for (int i = 0; i < c->nreplicas; i++)
		codevec_cuda_index_free(c->replicas[i]);
	c->nreplicas = 0;
	c->device_bytes = CopyDeviceBytes(c);
}

/* Drop a copy: device memory and TIDs */
static void
DropCopy(GpuIndexCopy *c)
{
	if (c->complete)
		copies_generation++;
	DropReplicas(c);
	for (int p = 0; p < c->nparts; p++)
		codevec_cuda_index_free(c->parts[p].idx);
	codevec_cuda_index_free(c->delta);
	free(c->tids);
	free(c->delta_vecs);
	free(c->list_first);
	free(c->masked);
	memset(c, 0, sizeof(*c));
}

/* The copy of the same index (any version), or NULL */
static GpuIndexCopy *
FindCopy(const GpuIndexKey *key)
{
	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used && index_copies[i].key.dbid == key->dbid &&
			index_copies[i].key.indexid == key->indexid)
			return &index_copies[i];
	return NULL;
}

/* Bytes the device holds for held copies; *count: how many copies */
static Size
CopiesBytes(int *count)
{
	Size		total = 0;
	int			n = 0;

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used)
		{
			total += index_copies[i].device_bytes;
			n++;
		}
	if (count)
		*count = n;
	return total;
}

/* GpuDeviceStoreData.per_device: each copy's parts, delta and replicas */
static void
CopiesPerDevice(GpuDeviceHeld *held)
{
	int			ndev = GpuServiceDeviceCount();

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
	{
		const GpuIndexCopy *c = &index_copies[i];

		if (!c->used)
			continue;
		for (int p = 0; p < c->nparts; p++)
			if (c->parts[p].device < ndev)
			{
				held[c->parts[p].device].bytes += IndexBytes(c->parts[p].idx);
				if (c->nparts == 1)
					held[c->parts[p].device].copies++;
				else
					held[c->parts[p].device].ranges++;
			}
		if (c->nparts > 0 && c->parts[0].device < ndev)
			held[c->parts[0].device].bytes += IndexBytes(c->delta);
		for (int r = 0; r < c->nreplicas; r++)
			if (c->replica_device[r] < ndev)
			{
				held[c->replica_device[r]].bytes += IndexBytes(c->replicas[r]);
				held[c->replica_device[r]].replicas++;
			}
	}
}

static const GpuDeviceStoreData copies_store = {
	.name = "index copies",
	.counter = GPU_STORE_COUNTS_INDEXES,
	.bytes = CopiesBytes,
	.per_device = CopiesPerDevice
};

/*
 * How a copy stands against a request's key: 0 current, which includes a
 * copy ahead in inserts (it holds every row the key counts, and the rows
 * inserted since are invisible to the request's snapshot, which the heap
 * fetch filters like dead rows; so a backend never chases inserts made
 * after its scan began); GPU_STATUS_STALE when only rows the key counts
 * are missing; GPU_STATUS_NOT_LOADED when
 * there is none, it is incomplete, or another version (REINDEX, TRUNCATE,
 * VACUUM, other dims), or an IVF copy behind in inserts (its rows are
 * grouped by list: it is loaded again whole).
 */
static int
CopyStatus(const GpuIndexCopy *c, const GpuIndexKey *key, int dims)
{
	if (c == NULL || !c->complete || c->key.relfilenode != key->relfilenode ||
		c->key.deleteCount != key->deleteCount || c->dims != dims)
		return GPU_STATUS_NOT_LOADED;
	if (c->key.insertCount < key->insertCount)
		return c->lists > 1 ? GPU_STATUS_NOT_LOADED : GPU_STATUS_STALE;
	return 0;
}

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

/*
 * Count nreq KNN requests on a copy and, once a second, see whether it is
 * hot: more than codevec.gpu_replicate_rate requests a second on a whole
 * copy (not split, no delta tier), with another device that holds none
 * of it and has free memory for it twice over, and room under
 * codevec.gpu_memory_limit without evicting anything. Then make one more
 * replica there: a device index of the same rows, copied from the copy's
 * own fp32 rows on the device, GPU_REPLICA_CHUNK rows at a time (its
 * norms and fp16 copy derived as an upload derives them, so its answers
 * are the copy's, bit for bit). A failure only leaves the copy unreplicated.
 */
static void
MaybeReplicate(GpuIndexCopy *c, int nreq)
{
	TimestampTz now = GetCurrentTimestamp();
	long		secs;
	int			usecs;
	double		elapsed,
				rate;
	size_t		bytes,
				cap = (size_t) codevec_gpu_memory_limit_mb * 1024 * 1024;
	uint32		exclude;
	Size		free_b = 0;
	int			dev,
				rc = CODEVEC_CUDA_OK;
	CodevecCudaIndex rep = NULL;
	int64	   *ids = NULL;
	float	   *buf = NULL;
	char		errbuf[256];

	if (codevec_gpu_replicate_rate <= 0 || GpuServiceDeviceCount() < 2)
		return;
	if (c->rate_start == 0)
		c->rate_start = now;
	c->rate_count += nreq;
	TimestampDifference(c->rate_start, now, &secs, &usecs);
	elapsed = secs + usecs / 1e6;
	if (elapsed < 1.0)
		return;
	rate = c->rate_count / elapsed;
	c->rate_start = now;
	c->rate_count = 0;
	if (rate < codevec_gpu_replicate_rate || c->nparts != 1 || !c->complete || c->ndelta > 0 ||
		c->nreplicas >= Min(GpuServiceDeviceCount() - 1, GPU_MAX_DEVICES))
		return;
	exclude = (uint32) 1 << c->parts[0].device;
	for (int i = 0; i < c->nreplicas; i++)
		exclude |= (uint32) 1 << c->replica_device[i];
	dev = GpuServicePickDevice(exclude, &free_b);
	bytes = IndexBytes(c->parts[0].idx);
	if (dev < 0 || free_b < 2 * bytes ||
		(cap > 0 && CopiesBytes(NULL) + GpuServiceStoresBytes(&copies_store) + bytes > cap))
		return;
	ids = malloc(sizeof(int64) * CODEVEC_CUDA_MAX_K);
	buf = malloc(sizeof(float) * (Size) GPU_REPLICA_CHUNK * c->dims);
	if (ids == NULL || buf == NULL || !GpuServiceUseDevice(dev, errbuf, sizeof(errbuf)) ||
		codevec_cuda_index_create(Max(c->n, 1), c->dims, CODEVEC_PREC_AUTO, &rep, errbuf,
								  sizeof(errbuf)) != CODEVEC_CUDA_OK)
		rc = CODEVEC_CUDA_ERR_NOMEM;
	for (int64 first = 0; rc == CODEVEC_CUDA_OK && first < c->n; first += GPU_REPLICA_CHUNK)
	{
		int64		cnt = Min((int64) GPU_REPLICA_CHUNK, c->n - first);

		for (int64 g = 0; rc == CODEVEC_CUDA_OK && g < cnt; g += CODEVEC_CUDA_MAX_K)
		{
			int			m = (int) Min((int64) CODEVEC_CUDA_MAX_K, cnt - g);

			for (int e = 0; e < m; e++)
				ids[e] = first + g + e;
			rc = codevec_cuda_index_rows(c->parts[0].idx, ids, m, buf + (Size) g * c->dims,
										 errbuf, sizeof(errbuf));
		}
		if (rc == CODEVEC_CUDA_OK)
			rc = codevec_cuda_index_upload(rep, buf, first, cnt, errbuf, sizeof(errbuf));
	}
	free(ids);
	free(buf);
	if (rc != CODEVEC_CUDA_OK)
	{
		codevec_cuda_index_free(rep);
		return;
	}
	c->replicas[c->nreplicas] = rep;
	c->replica_device[c->nreplicas++] = dev;
	c->device_bytes = CopyDeviceBytes(c);
	GpuServiceUpdateMemoryStats();
}

/* Answer a KNN request from a current copy, or say what it lacks */
static void
RunKnn(GpuKnnRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	int			st = CopyStatus(c, &r->key, r->dims);
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
		MaybeReplicate(c, 1);
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
	MaybeReplicate(c, 1);
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
	GpuIndexCopy *c = FindCopy(&group[0]->key);
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
	bool		one_by_one = ng == 1 || CopyStatus(c, &r0->key, r0->dims) != 0 ||
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
		MaybeReplicate(c, ng);
	}
	free(probes);
	free(qprobes);
	free(queries);
	free(dist);
	free(ids);
	free(rows);
}

/* The largest norm of n rows of dims floats, folded into *maxnorm */
static void
FoldMaxNorm(float *maxnorm, const float *v, int64 n, int dims)
{
	for (int64 i = 0; i < n; i++)
	{
		double		s = 0;

		for (int j = 0; j < dims; j++)
			s += (double) v[i * dims + j] * v[i * dims + j];
		*maxnorm = Max(*maxnorm, (float) sqrt(s));
	}
}

/*
 * Make room for need more device bytes under codevec.gpu_memory_limit,
 * evicting least recently used copies other than keep; false if it cannot.
 */
static bool
MakeRoom(size_t need, const GpuIndexCopy *keep)
{
	size_t		cap = (size_t) codevec_gpu_memory_limit_mb * 1024 * 1024;

	while (cap > 0 && CopiesBytes(NULL) + GpuServiceStoresBytes(&copies_store) + need > cap)
	{
		GpuIndexCopy *lru = NULL;

		/* replicas go first: they are only for speed */
		for (int i = 0; i < GPU_MAX_INDEXES; i++)
			if (index_copies[i].used && index_copies[i].nreplicas > 0)
				lru = &index_copies[i];
		if (lru != NULL)
		{
			DropReplicas(lru);
			continue;
		}
		for (int i = 0; i < GPU_MAX_INDEXES; i++)
			if (index_copies[i].used && &index_copies[i] != keep &&
				(lru == NULL || index_copies[i].last_used < lru->last_used))
				lru = &index_copies[i];
		if (lru == NULL)
			return false;
		DropCopy(lru);
	}
	return true;
}

/*
 * Make a new copy's device indexes for total rows: one, holding every row
 * (with one device, as it always was; with several, on the device with
 * the most free memory), or, with several devices, contiguous parts of
 * about equal size when total passes codevec.gpu_split_rows or need bytes
 * pass nine tenths of the best device's free memory (one part per device
 * then). Parts go to the device with the most free memory among those
 * holding none of this copy yet (all of them again once each has one).
 * false with errbuf set when a device index cannot be made: the caller
 * drops the copy, which frees the parts made.
 */
static bool
CreateParts(GpuIndexCopy *c, int64 total, int dims, size_t need, char *errbuf, size_t errlen)
{
	int			ndev = GpuServiceDeviceCount();
	int			nparts = 1;
	int64		per;
	uint32		taken = 0;

	if (ndev > 1 && total > 1)
	{
		Size		free_b = 0;

		(void) GpuServicePickDevice(0, &free_b);
		if (codevec_gpu_split_rows > 0 && total > codevec_gpu_split_rows)
			nparts = (int) Min((total + codevec_gpu_split_rows - 1) / codevec_gpu_split_rows,
							   (int64) GPU_MAX_PARTS);
		else if (need > free_b / 10 * 9)
			nparts = Min(ndev, GPU_MAX_PARTS);
	}
	per = (total + nparts - 1) / nparts;
	if (nparts > 1)
		nparts = (int) ((total + per - 1) / per);	/* no empty part */
	for (int p = 0; p < nparts; p++)
	{
		GpuCopyPart *part = &c->parts[p];
		int			dev = 0;

		c->nparts = p + 1;
		part->first = p * per;
		part->n = nparts == 1 ? total : Min(per, total - part->first);
		if (ndev > 1)
		{
			dev = GpuServicePickDevice(taken, NULL);
			if (dev < 0)
			{
				taken = 0;
				dev = Max(GpuServicePickDevice(0, NULL), 0);
			}
			taken |= (uint32) 1 << dev;
			if (!GpuServiceUseDevice(dev, errbuf, errlen))
				return false;
		}
		part->device = dev;
		if (codevec_cuda_index_create(Max(part->n, 1), dims, CODEVEC_PREC_AUTO, &part->idx,
									  errbuf, errlen) != CODEVEC_CUDA_OK)
			return false;
	}
	return true;
}

/* Copy rows first .. first + n - 1 (n x dims floats at v) into the parts holding them */
static int
UploadRows(GpuIndexCopy *c, const float *v, int64 first, int64 n, char *errbuf, size_t errlen)
{
	for (int p = 0; p < c->nparts; p++)
	{
		GpuCopyPart *part = &c->parts[p];
		int64		lo = Max(first, part->first),
					hi = Min(first + n, part->first + part->n);
		int			rc;

		if (c->nparts == 1)
			return codevec_cuda_index_upload(part->idx, v, first, n, errbuf, errlen);
		if (lo < hi &&
			(rc = codevec_cuda_index_upload(part->idx, v + (Size) (lo - first) * c->dims,
											lo - part->first, hi - lo, errbuf, errlen)) != CODEVEC_CUDA_OK)
			return rc;
	}
	return CODEVEC_CUDA_OK;
}

/* Chunk of an index copy: the first one (re)creates the copy, evicting
 * least recently used copies to stay under codevec.gpu_memory_limit */
static void
RunUpload(GpuUploadRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	const float *v = GpuUploadVectors(r);

	if (c != NULL && c->uploader != r->uploader && !c->complete &&
		!TimestampDifferenceExceeds(c->upload_last, GetCurrentTimestamp(), GPU_UPLOAD_STALL_MS))
	{
		/*
		 * Another backend is loading this copy: two uploads at once would
		 * interleave their chunks and spoil both. The caller waits and asks
		 * again (its KNN finds the copy once complete).
		 */
		r->hdr.status = r->first == 0 ? GPU_STATUS_BUSY : GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d is loading this index copy", c->uploader);
		return;
	}
	if (r->first != 0 && c != NULL && c->uploader != r->uploader)
	{
		/* a chunk of an upload another backend has since replaced */
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d loaded this index copy meanwhile", c->uploader);
		return;
	}
	if (r->first == 0)
	{
		size_t		need = (size_t) r->total * r->dims * 7 + (size_t) r->total * 24;	/* fp32 + fp16 + int8 + norms, scales, padding */
		int			slot = -1;

		if (c != NULL)
			DropCopy(c);
		if (!MakeRoom(need, NULL))
		{
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
					 "index needs about %zu MB, codevec.gpu_memory_limit is %d MB",
					 need >> 20, codevec_gpu_memory_limit_mb);
			GpuServiceUpdateMemoryStats();
			return;
		}
		for (int i = 0; i < GPU_MAX_INDEXES && slot < 0; i++)
			if (!index_copies[i].used)
				slot = i;
		if (slot < 0)
		{
			GpuIndexCopy *lru = &index_copies[0];

			for (int i = 1; i < GPU_MAX_INDEXES; i++)
				if (index_copies[i].last_used < lru->last_used)
					lru = &index_copies[i];
			DropCopy(lru);
			slot = lru - index_copies;
		}
		c = &index_copies[slot];
		memset(c, 0, sizeof(*c));
		c->tids = malloc(sizeof(ItemPointerData) * Max(r->total, 1));
		if (c->tids == NULL ||
			!CreateParts(c, r->total, r->dims, need, r->hdr.errmsg, sizeof(r->hdr.errmsg)))
		{
			if (c->tids == NULL)
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			GpuServiceUpdateMemoryStats();
			return;
		}
		c->used = true;
		c->key = r->key;
		c->dims = r->dims;
		c->n = r->total;
		c->uploader = r->uploader;
		if (r->lists > 1)
		{
			/* IVF: the rows come list after list; keep where each starts */
			const int64 *counts = GpuUploadListCounts(r);
			int64		sum = 0;

			c->list_first = malloc(sizeof(int64) * ((Size) r->lists + 1));
			for (int l = 0; c->list_first != NULL && l < r->lists; l++)
			{
				c->list_first[l] = sum;
				sum += counts[l] >= 0 ? counts[l] : r->total + 1;
			}
			if (c->list_first == NULL || sum != r->total)
			{
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
						 c->list_first == NULL ? "out of host memory" :
						 "list row counts do not add up to the rows sent");
				DropCopy(c);
				r->hdr.status = GPU_STATUS_FAILED;
				GpuServiceUpdateMemoryStats();
				return;
			}
			c->list_first[r->lists] = sum;
			c->lists = r->lists;
		}
	}
	if (c == NULL || c->complete || c->key.deleteCount != r->key.deleteCount ||
		c->key.insertCount != r->key.insertCount ||
		c->key.relfilenode != r->key.relfilenode || r->first != c->loaded ||
		r->first + r->n > c->n || r->dims != c->dims)
	{
		/* a chunk out of sequence: the copy is unusable */
		if (c != NULL)
			DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	c->upload_last = GetCurrentTimestamp();
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	if (r->n > 0 &&
		UploadRows(c, v, r->first, r->n, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
	{
		DropCopy(c);
		r->hdr.status = GPU_STATUS_FAILED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	memcpy(c->tids + r->first, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->loaded += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	if (c->loaded == c->n)
	{
		c->complete = true;
		copies_generation++;
		c->device_bytes = CopyDeviceBytes(c);
	}
	r->hdr.status = 0;
	GpuServiceUpdateMemoryStats();
}

/*
 * Rows inserted since the copy was loaded, into its delta tier (created on
 * the first APPEND with room for max(GPU_DELTA_MIN_ROWS, n / 8) rows). A
 * request that does not continue the copy exactly (another backend's
 * append came first) gets GPU_STATUS_STALE to ask again; one that does not
 * fit drops the copy (GPU_STATUS_NOT_LOADED: the backend loads it whole,
 * which folds the delta into the main rows).
 */
static void
RunAppend(GpuUploadRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	const float *v = GpuUploadVectors(r);
	GpuIndexKey base = r->key;

	base.insertCount = c ? c->key.insertCount : 0;
	if (c == NULL || CopyStatus(c, &base, r->dims) != 0 || r->n < 0 || c->lists > 1)
	{
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		return;
	}
	if (r->first != c->n + c->ndelta || r->total < r->first + r->n)
	{
		r->hdr.status = GPU_STATUS_STALE;
		return;
	}
	if (c->delta_cap == 0)
	{
		int64		cap = Max(GPU_DELTA_MIN_ROWS, c->n / 8);
		ItemPointerData *t = realloc(c->tids, sizeof(ItemPointerData) * (c->n + cap));

		if (t != NULL)
			c->tids = t;
		c->delta_vecs = malloc(sizeof(float) * (Size) cap * r->dims);
		if (t == NULL || c->delta_vecs == NULL)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			GpuServiceUpdateMemoryStats();
			return;
		}
		c->delta_cap = cap;
	}
	if (r->total - c->n > c->delta_cap)
	{
		/* the delta is full: fold it in by loading the index whole */
		DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	memcpy(c->delta_vecs + (Size) c->ndelta * r->dims, v, sizeof(float) * (Size) r->n * r->dims);

	/* the delta's device index, made again with all its rows */
	codevec_cuda_index_free(c->delta);
	c->delta = NULL;
	if (c->ndelta + r->n > 0)
	{
		size_t		need = (size_t) (c->ndelta + r->n) * r->dims * 7 + (size_t) (c->ndelta + r->n) * 24;

		if (!MakeRoom(need, c) ||
			(GpuServiceDeviceCount() > 1 &&
			 !GpuServiceUseDevice(c->parts[0].device, r->hdr.errmsg, sizeof(r->hdr.errmsg))) ||
			codevec_cuda_index_create(c->ndelta + r->n, r->dims, CODEVEC_PREC_AUTO, &c->delta,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK ||
			codevec_cuda_index_upload(c->delta, c->delta_vecs, 0, c->ndelta + r->n,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			GpuServiceUpdateMemoryStats();
			return;
		}
	}
	memcpy(c->tids + c->n + c->ndelta, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->ndelta += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	/*
	 * Complete: it holds every row up to the appender's read of the chain,
	 * so at least those its key counts. Never lowered: a backend whose key
	 * is older (its append came second) must not make the copy stale again
	 * for the newer keys it also serves.
	 */
	if (c->n + c->ndelta == r->total)
		c->key.insertCount = Max(c->key.insertCount, r->key.insertCount);
	c->device_bytes = CopyDeviceBytes(c);
	r->hdr.status = 0;
	GpuServiceUpdateMemoryStats();
}

/*
 * A VACUUM removed rows (see GpuMaskRequest): mask them in the copy and
 * move it to the new version, or drop it when that cannot be done safely.
 */
static void
RunMask(GpuMaskRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	int64		rows;
	uint64	   *set = NULL;
	uint64		mask = 0;

	r->hdr.status = 0;
	if (c == NULL || c->key.relfilenode != r->key.relfilenode ||
		c->key.deleteCount >= r->newDeleteCount)
		return;					/* none, another relfilenode, or already newer */
	if (!c->complete || c->key.deleteCount != r->key.deleteCount || r->nblocks < 0 ||
		r->ntids < 0)
	{
		DropCopy(c);
		GpuServiceUpdateMemoryStats();
		return;
	}
	if (c->lists <= 1)
		for (int i = 0; i < r->nblocks; i++)
			if (GpuMaskBlocks(r)[i] == c->resume_blk)
			{
				/* the delta tier would resume at a moved offset */
				DropCopy(c);
				GpuServiceUpdateMemoryStats();
				return;
			}
	rows = c->n + c->ndelta;
	if (r->ntids > 0)
	{
		int64		cap = 16;

		while (cap < 2 * r->ntids)
			cap *= 2;
		mask = (uint64) cap - 1;
		set = calloc(cap, sizeof(uint64));
		if (c->masked_cap < c->n + Max(c->delta_cap, c->ndelta))
		{
			int64		newcap = c->n + Max(c->delta_cap, c->ndelta);
			uint8	   *m = realloc(c->masked, Max(newcap, 1));

			if (m != NULL)
			{
				memset(m + c->masked_cap, 0, newcap - c->masked_cap);
				c->masked = m;
				c->masked_cap = newcap;
			}
		}
		if (set == NULL || c->masked_cap < rows)
		{
			free(set);
			DropCopy(c);
			GpuServiceUpdateMemoryStats();
			return;
		}
		/* an open-addressing set of the removed TIDs (key + 1: 0 is empty) */
		for (int64 i = 0; i < r->ntids; i++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&GpuMaskTids(r)[i]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&GpuMaskTids(r)[i])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			set[h] = key;
		}
		for (int64 p = 0; p < rows; p++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&c->tids[p]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&c->tids[p])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			if (set[h] == key && !c->masked[p])
			{
				c->masked[p] = 1;
				c->nmasked++;
			}
		}
		free(set);
	}
	if (c->nmasked > GPU_MASK_MAX_ROWS)
	{
		/* too many holes: load it again, compacted */
		DropCopy(c);
		GpuServiceUpdateMemoryStats();
		return;
	}
	c->key.deleteCount = r->newDeleteCount;
}

/* Re-run the k-NN kernels' autotuning and answer its report */
static void
RunAutotune(GpuAutotuneRequest *r)
{
	if (r->dims < 1 || r->dims > 16000)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad dims %d", r->dims);
		return;
	}
	r->report[0] = '\0';
	r->hdr.status = codevec_cuda_autotune(r->dims, r->report, sizeof(r->report),
										  r->hdr.errmsg, sizeof(r->hdr.errmsg)) == CODEVEC_CUDA_OK ?
		0 : GPU_STATUS_FAILED;
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

static void
UploadRun(GpuRequestHeader *req)
{
	RunUpload((GpuUploadRequest *) req);
}

static void
AppendRun(GpuRequestHeader *req)
{
	RunAppend((GpuUploadRequest *) req);
}

static void
MaskRun(GpuRequestHeader *req)
{
	RunMask((GpuMaskRequest *) req);
}

static void
AutotuneRun(GpuRequestHeader *req)
{
	RunAutotune((GpuAutotuneRequest *) req);
}

/* GpuCopiesList: see gpuserviceint.h */
int
GpuCopiesList(GpuCopyName *out, int max)
{
	const GpuIndexCopy *order[GPU_MAX_INDEXES];
	int			n = 0;

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used && index_copies[i].complete)
		{
			/* insertion sort: queried first, then most recently used first */
			const GpuIndexCopy *c = &index_copies[i];
			int			j = n++;

			while (j > 0 && (order[j - 1]->queried < c->queried ||
							 (order[j - 1]->queried == c->queried &&
							  order[j - 1]->last_used < c->last_used)))
			{
				order[j] = order[j - 1];
				j--;
			}
			order[j] = &index_copies[i];
		}
	n = Min(n, max);
	for (int i = 0; i < n; i++)
	{
		out[i].dbid = order[i]->key.dbid;
		out[i].indexid = order[i]->key.indexid;
		out[i].queried = order[i]->queried;
	}
	return n;
}

/* GpuCopiesGeneration: see gpuserviceint.h */
uint64
GpuCopiesGeneration(void)
{
	return copies_generation;
}

#define GPU_COPIES_HANDLER(f) f
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_COPIES_HANDLER(f) NULL

int
GpuCopiesList(GpuCopyName *out, int max)
{
	return 0;
}

uint64
GpuCopiesGeneration(void)
{
	return 0;
}
#endif							/* CODEVEC_USE_CUDA */

static const GpuRequestKindData copies_kinds[] = {
	{GPU_REQUEST_KNN, "knn", true, GPU_COPIES_HANDLER(KnnRun),
	GPU_COPIES_HANDLER(KnnSameGroup), GPU_COPIES_HANDLER(KnnRunGroup)},
	{GPU_REQUEST_UPLOAD, "upload", true, GPU_COPIES_HANDLER(UploadRun), NULL, NULL},
	{GPU_REQUEST_APPEND, "append", true, GPU_COPIES_HANDLER(AppendRun), NULL, NULL},
	{GPU_REQUEST_MASK, "mask", true, GPU_COPIES_HANDLER(MaskRun), NULL, NULL},
	{GPU_REQUEST_AUTOTUNE, "autotune", true, GPU_COPIES_HANDLER(AutotuneRun), NULL, NULL},
};

/* GpuCopiesRegister: the request kinds and the device store of this file */
void
GpuCopiesRegister(void)
{
	for (int i = 0; i < lengthof(copies_kinds); i++)
		GpuServiceRegisterKind(&copies_kinds[i]);
#ifdef CODEVEC_USE_CUDA
	GpuServiceRegisterStore(&copies_store);
#endif
}
