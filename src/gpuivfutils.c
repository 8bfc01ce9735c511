/*
 * gpuivfutils.c
 *	  Shared helpers of the gpuivf access method: options, metapage, pages,
 *	  centroid distances and k-means.
 *
 * k-means. Lists are trained with Lloyd's algorithm (S. Lloyd, "Least
 * squares quantization in PCM", 1982) seeded by k-means++ (D. Arthur and
 * S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA
 * 2007). The assignment step is one matrix product per iteration through
 * BLAS (OpenBLAS cblas_sgemm): |x - c|^2 = |x|^2 - 2 x.c + |c|^2, so the
 * n x k distance table costs one GEMM instead of n*k scalar loops. For the
 * cosine opclass samples and centroids are unit vectors (spherical k-means,
 * Dhillon & Modha 2001) and the nearest centroid maximises x.c. A fixed
 * pg_prng seed makes builds reproducible.
 */
#include "postgres.h"

#include <cblas.h>
#include <float.h>
#include <math.h>

#include "common/pg_prng.h"
#include "distance.h"
#include "gpuivf.h"
#include "kmeans.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

int
GpuivfGetLists(Relation index)
{
	GpuivfOptions *opts = (GpuivfOptions *) index->rd_options;

	return opts ? opts->lists : GPUIVF_DEFAULT_LISTS;
}

GpuivfMetric
GpuivfGetMetric(Relation index)
{
	Oid			procid = index_getprocid(index, 1, GPUIVF_DISTANCE_PROC);
	char	   *name = get_func_name(procid);

	if (name != NULL && strcmp(name, "l2_distance") == 0)
		return GPUIVF_METRIC_L2;
	/* pgvector's: vector_ and halfvec_negative_inner_product (codevec_pgvector) */
	if (name != NULL && (strcmp(name, "negative_inner_product") == 0 ||
						 strcmp(name, "vector_negative_inner_product") == 0 ||
						 strcmp(name, "halfvec_negative_inner_product") == 0))
		return GPUIVF_METRIC_IP;
	if (name != NULL && strcmp(name, "cosine_distance") == 0)
		return GPUIVF_METRIC_COSINE;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("gpuivf does not support distance function \"%s\"", name ? name : "?"),
			 errhint("Use codevec_l2_ops, codevec_ip_ops or codevec_cosine_ops.")));
	pg_unreachable();
}

void
GpuivfReadMeta(Relation index, GpuivfMetaPageData *meta)
{
	Buffer		buf = ReadBuffer(index, GPUIVF_METAPAGE_BLKNO);
	GpuivfMetaPage m;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	m = GpuivfPageGetMeta(BufferGetPage(buf));
	if (m->magicNumber != GPUIVF_MAGIC_NUMBER || m->version != GPUIVF_VERSION)
	{
		UnlockReleaseBuffer(buf);
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a valid gpuivf index", RelationGetRelationName(index)),
				 errhint("REINDEX it.")));
	}
	memcpy(meta, m, sizeof(GpuivfMetaPageData));
	UnlockReleaseBuffer(buf);
}

Buffer
GpuivfNewBuffer(Relation index, ForkNumber forkNum)
{
	Buffer		buf;
	bool		needLock = !RELATION_IS_LOCAL(index);

	/* extension lock: two backends must not both extend to the same block */
	if (needLock)
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, forkNum, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (needLock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

void
GpuivfInitPage(Page page)
{
	GpuivfPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(GpuivfPageOpaqueData));
	opaque = GpuivfPageGetOpaque(page);
	opaque->nextblkno = InvalidBlockNumber;
	opaque->unused = 0;
	opaque->page_id = GPUIVF_PAGE_ID;
}

double
GpuivfCentroidDistance(GpuivfMetric metric, const float *a, const float *b, int dims)
{
	switch (metric)
	{
		case GPUIVF_METRIC_L2:
			return codevec_kernels->l2_squared(a, b, dims);
		case GPUIVF_METRIC_IP:
			return -(double) codevec_kernels->inner_product(a, b, dims);
		case GPUIVF_METRIC_COSINE:
			{
				double		d = CodevecCosineDistance(a, b, dims);

				return isnan(d) ? 2.0 : d;	/* a zero vector: farthest */
			}
	}
	return 0;
}

/* A list and its centroid's distance to the query, for GpuivfOrderLists */
typedef struct ListOrderItem
{
	double		distance;
	int			list;
} ListOrderItem;

static int
ListOrderCompare(const void *a, const void *b)
{
	const ListOrderItem *x = (const ListOrderItem *) a;
	const ListOrderItem *y = (const ListOrderItem *) b;
	int			c = float8_cmp_internal(x->distance, y->distance);	/* NaN last */

	return c != 0 ? c : x->list - y->list;
}

void
GpuivfOrderLists(GpuivfMetric metric, const float *centroids, int lists, int dims,
				 const float *q, int *order)
{
	ListOrderItem *d = palloc(sizeof(ListOrderItem) * lists);

	for (int i = 0; i < lists; i++)
	{
		d[i].distance = GpuivfCentroidDistance(metric, q, centroids + (size_t) i * dims, dims);
		d[i].list = i;
	}
	qsort(d, lists, sizeof(ListOrderItem), ListOrderCompare);
	for (int i = 0; i < lists; i++)
		order[i] = d[i].list;
	pfree(d);
}

int
GpuivfNearestList(GpuivfMetric metric, const float *centroids, int lists, int dims, const float *v)
{
	int			best = 0;
	double		bestd = DBL_MAX;

	for (int i = 0; i < lists; i++)
	{
		double		d = GpuivfCentroidDistance(metric, v, centroids + (size_t) i * dims, dims);

		if (d < bestd)
		{
			bestd = d;
			best = i;
		}
	}
	return best;
}

void
GpuivfNearestLists(GpuivfMetric metric, const float *centroids, int lists, int dims,
				   const float *x, int n, int *out)
{
	float	   *dots = palloc_extended(sizeof(float) * (Size) n * lists, MCXT_ALLOC_HUGE);
	float	   *cnorm = palloc(sizeof(float) * lists);
	double		cmax = 0;
	double		u = ldexp(1.0, -24);

	for (int c = 0; c < lists; c++)
	{
		const float *cc = centroids + (size_t) c * dims;

		cnorm[c] = sqrtf(codevec_kernels->inner_product(cc, cc, dims));
		cmax = Max(cmax, cnorm[c]);
	}
	/* dots[n x lists] = x[n x dims] * centroids^T */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, lists, dims,
				1.0f, x, dims, centroids, dims, 0.0f, dots, lists);
	for (int i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * dims;
		const float *row = dots + (size_t) i * lists;
		double		xn = sqrt((double) codevec_kernels->inner_product(xi, xi, dims));
		double		best = DBL_MAX,
					margin,
					bestd = DBL_MAX;
		int			pick = -1;

		if (!isfinite(xn) || xn == 0 || !isfinite(cmax))
		{
			out[i] = GpuivfNearestList(metric, centroids, lists, dims, xi);
			continue;
		}
		/*
		 * Scores from the GEMM, smaller is nearer, and a bound of their
		 * error and of the exact distances' own (Higham sec. 3.1: a dot
		 * product of d terms errs by at most gamma_d |x| |c|; L2 adds the
		 * norms', cosine is in units of |x|), with room to spare.
		 */
		margin = 8.0 * (dims + 8) * u *
			(metric == GPUIVF_METRIC_L2 ? (xn + cmax) * (xn + cmax) :
			 metric == GPUIVF_METRIC_IP ? xn * cmax : xn) + 1e-30;
		for (int c = 0; c < lists; c++)
		{
			double		sc = metric == GPUIVF_METRIC_L2 ? (double) cnorm[c] * cnorm[c] - 2.0 * row[c] :
				metric == GPUIVF_METRIC_IP ? -(double) row[c] :
				cnorm[c] > 0 ? -(double) row[c] / cnorm[c] : DBL_MAX;

			if (sc < best)
				best = sc;
		}
		/* every list within the error of the best: decide exactly */
		for (int c = 0; c < lists; c++)
		{
			double		sc = metric == GPUIVF_METRIC_L2 ? (double) cnorm[c] * cnorm[c] - 2.0 * row[c] :
				metric == GPUIVF_METRIC_IP ? -(double) row[c] :
				cnorm[c] > 0 ? -(double) row[c] / cnorm[c] : DBL_MAX;

			if (sc <= best + 2.0 * margin)
			{
				double		d = GpuivfCentroidDistance(metric, xi, centroids + (size_t) c * dims, dims);

				if (d < bestd)
				{
					bestd = d;
					pick = c;
				}
			}
		}
		out[i] = pick >= 0 ? pick : GpuivfNearestList(metric, centroids, lists, dims, xi);
	}
	pfree(dots);
	pfree(cnorm);
}

/*
 * The centroids and list start pages of recently scanned IVF indexes, kept
 * per backend: both are written by the build and never change for a
 * relfilenode (inserts extend chains at their ends, VACUUM keeps pages;
 * REINDEX and TRUNCATE give a new relfilenode).
 */
#define CENTROID_CACHE_ENTRIES 8

typedef struct CentroidCacheEntry
{
	Oid			dbid;
	Oid			indexid;
	Oid			relfilenode;
	int			lists;
	int			dims;
	uint64		lastUsed;
	float	   *centroids;		/* lists x dims */
	BlockNumber *startPages;	/* lists */
} CentroidCacheEntry;

static CentroidCacheEntry centroid_cache[CENTROID_CACHE_ENTRIES];
static uint64 centroid_cache_clock = 0;

const float *
GpuivfCachedCentroids(Relation index, const GpuivfMetaPageData *meta,
					  const BlockNumber **startPages)
{
	CentroidCacheEntry *e = NULL;

	for (int i = 0; i < CENTROID_CACHE_ENTRIES; i++)
	{
		CentroidCacheEntry *c = &centroid_cache[i];

		if (c->centroids != NULL && c->dbid == MyDatabaseId &&
			c->indexid == RelationGetRelid(index) && c->relfilenode == CodevecRelFileNumber(index) &&
			c->lists == meta->lists && c->dims == meta->dims)
		{
			e = c;
			break;
		}
	}
	if (e == NULL)
	{
		/* read in the caller's context (an error frees it), then keep */
		BlockNumber *starts = palloc(sizeof(BlockNumber) * meta->lists);
		float	   *centroids = GpuivfLoadCentroids(index, meta, starts, NULL);
		Size		cbytes = sizeof(float) * (Size) meta->lists * meta->dims;

		/* replace the least recently used entry */
		e = &centroid_cache[0];
		for (int i = 1; i < CENTROID_CACHE_ENTRIES; i++)
			if (centroid_cache[i].lastUsed < e->lastUsed)
				e = &centroid_cache[i];
		if (e->centroids)
		{
			pfree(e->centroids);
			pfree(e->startPages);
			e->centroids = NULL;	/* empty until filled below */
		}
		e->startPages = MemoryContextAlloc(TopMemoryContext, sizeof(BlockNumber) * meta->lists);
		memcpy(e->startPages, starts, sizeof(BlockNumber) * meta->lists);
		e->centroids = MemoryContextAllocHuge(TopMemoryContext, cbytes);
		memcpy(e->centroids, centroids, cbytes);
		e->dbid = MyDatabaseId;
		e->indexid = RelationGetRelid(index);
		e->relfilenode = CodevecRelFileNumber(index);
		e->lists = meta->lists;
		e->dims = meta->dims;
		pfree(centroids);
		pfree(starts);
	}
	e->lastUsed = ++centroid_cache_clock;
	*startPages = e->startPages;
	return e->centroids;
}

float *
GpuivfLoadCentroids(Relation index, const GpuivfMetaPageData *meta,
					BlockNumber *startPages, BlockNumber *insertPages)
{
	float	   *centroids = palloc_extended(sizeof(float) * (Size) meta->lists * meta->dims,
											MCXT_ALLOC_HUGE);
	int			list = 0;
	BlockNumber blkno = GPUIVF_HEAD_BLKNO;

	while (list < meta->lists && BlockNumberIsValid(blkno))
	{
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		OffsetNumber maxoff;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff && list < meta->lists; off++)
		{
			GpuivfList l = (GpuivfList) PageGetItem(page, PageGetItemId(page, off));

			if (l->centroid.dim != meta->dims && meta->lists > 1)
				ereport(ERROR,
						(errcode(ERRCODE_INDEX_CORRUPTED),
						 errmsg("gpuivf index \"%s\" has a centroid of %d dimensions, expected %d",
								RelationGetRelationName(index), l->centroid.dim, meta->dims)));
			memcpy(centroids + (size_t) list * meta->dims, l->centroid.x, sizeof(float) * meta->dims);
			if (startPages)
				startPages[list] = l->startPage;
			if (insertPages)
				insertPages[list] = l->insertPage;
			list++;
		}
		blkno = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
	if (list != meta->lists)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("gpuivf index \"%s\" has %d lists on disk, expected %d",
						RelationGetRelationName(index), list, meta->lists)));
	return centroids;
}

void
GpuivfKmeans(GpuivfMetric metric, float *samples, int n, int dims, int k, float *centroids)
{
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf k-means",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	bool		spherical = (metric == GPUIVF_METRIC_COSINE);
	pg_prng_state prng;
	double	   *mind;
	float	   *xnorm,
			   *cnorm,
			   *dots;
	int		   *assign,
			   *counts;
	int			batch = 1024;

	pg_prng_seed(&prng, 0x6770756976660001ULL);
	if (spherical)
		codevec_normalize_rows(samples, n, dims);

	if (n <= k)
	{
		/* fewer samples than lists: every sample is a centroid, repeated */
		for (int c = 0; c < k; c++)
			memcpy(centroids + (size_t) c * dims, samples + (size_t) (c % Max(n, 1)) * dims,
				   sizeof(float) * dims);
		if (n == 0)
			memset(centroids, 0, sizeof(float) * (size_t) k * dims);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(ctx);
		return;
	}

	/* k-means++ seeding: each next centroid drawn with probability ~ D(x)^2 */
	mind = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);
	memcpy(centroids, samples + (size_t) (pg_prng_uint64(&prng) % n) * dims, sizeof(float) * dims);
	for (int i = 0; i < n; i++)
		mind[i] = codevec_kernels->l2_squared(samples + (size_t) i * dims, centroids, dims);
	for (int c = 1; c < k; c++)
	{
		double		total = 0,
					r,
					acc = 0;
		int			pick = n - 1;
		const float *cc;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < n; i++)
			total += mind[i];
		r = pg_prng_double(&prng) * total;
		for (int i = 0; i < n; i++)
		{
			acc += mind[i];
			if (acc >= r && mind[i] > 0)
			{
				pick = i;
				break;
			}
		}
		memcpy(centroids + (size_t) c * dims, samples + (size_t) pick * dims, sizeof(float) * dims);
		cc = centroids + (size_t) c * dims;
		for (int i = 0; i < n; i++)
		{
			double		d = codevec_kernels->l2_squared(samples + (size_t) i * dims, cc, dims);

			if (d < mind[i])
				mind[i] = d;
		}
	}

	/* Lloyd iterations, assignment through GEMM in batches of samples */
	xnorm = palloc_extended(sizeof(float) * n, MCXT_ALLOC_HUGE);
	cnorm = palloc(sizeof(float) * k);
	dots = palloc_extended(sizeof(float) * (size_t) batch * k, MCXT_ALLOC_HUGE);
	assign = palloc_extended(sizeof(int) * n, MCXT_ALLOC_HUGE);
	counts = palloc(sizeof(int) * k);
	for (int i = 0; i < n; i++)
		xnorm[i] = codevec_kernels->inner_product(samples + (size_t) i * dims,
												  samples + (size_t) i * dims, dims);

	for (int iter = 0; iter < GPUIVF_KMEANS_ITERATIONS; iter++)
	{
		int			changed = 0;

		for (int c = 0; c < k; c++)
			cnorm[c] = codevec_kernels->inner_product(centroids + (size_t) c * dims,
													  centroids + (size_t) c * dims, dims);
		for (int b0 = 0; b0 < n; b0 += batch)
		{
			int			nb = Min(batch, n - b0);

			CHECK_FOR_INTERRUPTS();
			/* dots[nb x k] = samples[b0.., nb x dims] * centroids^T */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, k, dims,
						1.0f, samples + (size_t) b0 * dims, dims, centroids, dims,
						0.0f, dots, k);
			for (int i = 0; i < nb; i++)
			{
				const float *row = dots + (size_t) i * k;
				int			best = 0;
				float		bestd = FLT_MAX;

				for (int c = 0; c < k; c++)
				{
					float		d = spherical ? -row[c] : xnorm[b0 + i] - 2 * row[c] + cnorm[c];

					if (d < bestd)
					{
						bestd = d;
						best = c;
					}
				}
				if (iter == 0 || assign[b0 + i] != best)
					changed++;
				assign[b0 + i] = best;
			}
		}

		/* update: mean of each cluster; an empty cluster keeps its centroid */
		memset(counts, 0, sizeof(int) * k);
		for (int i = 0; i < n; i++)
			counts[assign[i]]++;
		for (int c = 0; c < k; c++)
			if (counts[c] > 0)
				memset(centroids + (size_t) c * dims, 0, sizeof(float) * dims);
		for (int i = 0; i < n; i++)
		{
			float	   *cc = centroids + (size_t) assign[i] * dims;
			const float *x = samples + (size_t) i * dims;

			for (int j = 0; j < dims; j++)
				cc[j] += x[j];
		}
		for (int c = 0; c < k; c++)
			if (counts[c] > 0)
			{
				float		inv = 1.0f / counts[c];

				for (int j = 0; j < dims; j++)
					centroids[(size_t) c * dims + j] *= inv;
			}
		if (spherical)
			codevec_normalize_rows(centroids, k, dims);
		if (iter > 0 && changed == 0)
			break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
}

void
GpuivfCheckQueryDims(GpuivfMetric metric, int dims, const Codevec *q)
{
	static const char *const names[] = {"l2_distance", "negative_inner_product", "cosine_distance"};

	if (q->dim != dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different codevec dimensions %d and %d in %s", dims, q->dim,
						names[metric >= 0 && metric <= 2 ? metric : 0])));
}
