/*
 * gpuivfprefetch.c
 *	  A gpuivf scan's GPU request posted ahead of the scan, so that the
 *	  backend works while the GPU service answers it.
 *
 * codevec_gpu_prefetch(rel, query, k) posts the k-NN request that the next
 * ordered scan of rel's flat gpuivf index by query will send
 * (GpuivfGpuPostKnn), and returns at once. When that scan starts
 * (GpuivfGpuFetch), GpuivfPrefetchTake hands it the request in flight
 * instead of a new one, and the scan waits for its answer as for its own.
 * code.search calls it in hybrid mode right after embed(), before it
 * computes the keyword list on the CPU, so that the two lists are computed
 * at the same time instead of one after the other.
 *
 * The answer is the scan's own: the same request (query bits, index copy
 * version, candidates at least as many as the scan's first batch), proven
 * by the same exact re-rank (GpuivfGpuProve). A prefetch that no scan takes
 * costs one GPU request and nothing else: the next request of the backend
 * answers it first (CodevecGpuDrain), and the end of the transaction
 * abandons it. It does nothing (false) where the scan would not go to the
 * GPU (GpuivfRouteDecide, without its warning: the scan gives that), for
 * an IVF index, with gpuivf.prefetch off, while a request is in flight, and
 * when a scan of this transaction already asked for the same query on that
 * index (a plan that runs the scan before the prefetch: no second request).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "vecelem.h"
#include "vector.h"

bool		gpuivf_prefetch = true;

/* The request codevec_gpu_prefetch posted (posted = 0: none) */
static struct
{
	uint64		posted;			/* CodevecGpuPosted's number for it */
	GpuIndexKey key;
	GpuivfMetric metric;
	int			dims;
	int			k;
	float	   *query;			/* dims floats, in TopMemoryContext */
	int			room;			/* floats query has room for */
}			pending;

/* The last GPU scan's query and index, and the transaction it ran in */
static struct
{
	LocalTransactionId lxid;
	Oid			index;
	uint32		hash;
}			last_scan;

/* The same version of the same index copy (field by field: the struct has padding) */
static bool
SameKey(const GpuIndexKey *a, const GpuIndexKey *b)
{
	return a->dbid == b->dbid && a->indexid == b->indexid && a->relfilenode == b->relfilenode &&
		a->deleteCount == b->deleteCount && a->insertCount == b->insertCount;
}

static uint32
QueryHash(const float *x, int dims)
{
	return hash_bytes((const unsigned char *) x, sizeof(float) * dims);
}

/*
 * rel itself when it is a valid gpuivf index, else the first valid flat
 * gpuivf index on table rel with a cosine operator class (what code.search
 * scans); InvalidOid when there is none or the user may not read the
 * table (the scan reports that).
 */
static Oid
PickIndex(Oid relid, Relation *heapOut)
{
	char		relkind = get_rel_relkind(relid);
	Oid			heapOid = relid;
	Relation	heap;
	List	   *indexes;
	ListCell   *lc;
	Oid			found = InvalidOid;

	if (relkind == RELKIND_INDEX)
		heapOid = IndexGetRelation(relid, true);
	else if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW)
		return InvalidOid;
	if (!OidIsValid(heapOid) ||
		pg_class_aclcheck(heapOid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return InvalidOid;
	/* the table first, then the index, as the executor locks them */
	heap = table_open(heapOid, AccessShareLock);
	indexes = RelationGetIndexList(heap);
	foreach(lc, indexes)
	{
		Oid			oid = lfirst_oid(lc);
		Relation	index;
		bool		ok;

		if (relkind == RELKIND_INDEX && oid != relid)
			continue;
		index = index_open(oid, AccessShareLock);
		ok = index->rd_indam->amgettuple == gpuivfgettuple && index->rd_index->indisvalid &&
			index->rd_index->indnatts == 1;
		if (ok && relkind != RELKIND_INDEX)
		{
			GpuivfMetaPageData meta;

			GpuivfReadMeta(index, &meta);
			ok = meta.lists == 1 && GpuivfGetMetric(index) == GPUIVF_METRIC_COSINE;
		}
		index_close(index, NoLock);
		if (ok)
		{
			found = oid;
			break;
		}
	}
	list_free(indexes);
	*heapOut = heap;
	return found;
}

PG_FUNCTION_INFO_V1(codevec_gpu_prefetch);

/*
 * codevec_gpu_prefetch(rel regclass, query codevec, k integer) RETURNS
 * boolean: post the GPU k-NN request of the next ordered scan of rel (a
 * gpuivf index, or a table: its first flat gpuivf index with a cosine
 * operator class) by query, for at least k + 1 candidates and at least the
 * scan's first batch, and return true; false when nothing was posted (file
 * comment). Never an error for what the scan itself would report (no
 * privilege, other dimensions, no service): it posts nothing then.
 */
Datum
codevec_gpu_prefetch(PG_FUNCTION_ARGS)
{
	Oid			relid,
				indexOid;
	Relation	heap = NULL,
				index;
	Codevec    *q;
	GpuivfMetaPageData meta;
	GpuivfRouteData route;
	GpuivfGpuAskData ask;
	const float *queries[1];
	dsm_segment *seg;
	int32		k;
	int			kk;
	uint32		hash;
	bool		posted = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || !gpuivf_prefetch ||
		CodevecGpuPosted(NULL) != 0 || !CodevecGpuServiceReady())
		PG_RETURN_BOOL(false);
	relid = PG_GETARG_OID(0);
	k = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	indexOid = PickIndex(relid, &heap);
	if (!OidIsValid(indexOid))
	{
		if (heap)
			table_close(heap, NoLock);
		PG_RETURN_BOOL(false);
	}
	index = index_open(indexOid, AccessShareLock);
	GpuivfReadMeta(index, &meta);
	q = PG_GETARG_CODEVEC_P(1);
	GpuivfRouteDecide(index, &meta, &route);
	if (meta.lists == 1 && route.gpu && q->dim == meta.dims)
	{
		float	   *qx = palloc(sizeof(float) * meta.dims);
		GpuIndexKey key;

		VecElemToFloats(q, qx);
		hash = QueryHash(qx, meta.dims);
		if (!(last_scan.lxid == CodevecMyLocalXid && last_scan.index == indexOid &&
			  last_scan.hash == hash))
		{
			/* what the scan's first request asks for, and at least k + 1 */
			kk = GpuivfFirstK(indexOid);
			while (kk <= k && kk < GPUIVF_GPU_MAX_K)
				kk *= 2;
			memset(&ask, 0, sizeof(ask));
			GpuivfGpuKey(index, &meta, &key);
			ask.index = index;
			ask.metric = GpuivfGetMetric(index);
			ask.dims = meta.dims;
			ask.nq = 1;
			queries[0] = qx;
			ask.queries = queries;
			ask.k = kk;
			ask.key = &key;
			seg = CodevecGpuSessionSegment(GpuKnnRequestSizeProbes(1, meta.dims, kk, 0));
			if (GpuivfGpuPostKnn(&ask, seg) == 0)
			{
				if (pending.room < meta.dims)
				{
					if (pending.query)
						pfree(pending.query);
					pending.query = MemoryContextAlloc(TopMemoryContext,
													   sizeof(float) * meta.dims);
					pending.room = meta.dims;
				}
				memcpy(pending.query, qx, sizeof(float) * meta.dims);
				pending.posted = CodevecGpuPosted(NULL);
				pending.key = key;
				pending.metric = ask.metric;
				pending.dims = meta.dims;
				pending.k = kk;
				posted = true;
			}
		}
		pfree(qx);
	}
	index_close(index, NoLock);
	table_close(heap, NoLock);
	PG_RETURN_BOOL(posted);
}

/* GpuivfPrefetchTake: see gpuivf.h */
dsm_segment *
GpuivfPrefetchTake(const GpuIndexKey *key, GpuivfMetric metric, int dims, const float *query,
				   int nprobe, int *k)
{
	dsm_segment *seg = NULL;
	bool		match;

	last_scan.lxid = CodevecMyLocalXid;
	last_scan.index = key->indexid;
	last_scan.hash = QueryHash(query, dims);
	if (pending.posted == 0)
		return NULL;
	match = CodevecGpuPosted(&seg) == pending.posted &&
		SameKey(&pending.key, key) &&
		pending.metric == metric && pending.dims == dims && nprobe == 0 &&
		pending.k >= *k && memcmp(pending.query, query, sizeof(float) * dims) == 0;
	pending.posted = 0;			/* taken, or of no use: the next request drains it */
	if (!match)
		return NULL;
	*k = pending.k;
	return seg;
}
