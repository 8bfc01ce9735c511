/*
 * gpuivfprefetch.c
 *	  A gpuivf scan's GPU request posted ahead of the scan, so that the
 *	  backend works while the GPU service answers it.
 *
 * codevec_gpu_prefetch(rel, query, k) posts the k-NN request that the next
 * ordered scan of rel's flat gpuivf index by query will send, and returns
 * at once: this file picks the index and decides whether the scan would go
 * to the GPU; GpuivfGpuPostAhead (gpuivfgpu.c) posts the request and keeps
 * it, and the scan's first fetch (GpuivfGpuFetch) takes it instead of
 * sending its own and waits for its answer as for its own.
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
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "vecelem.h"
#include "vector.h"

/* Whether index is a valid one-column gpuivf index; its metapage into *meta */
static bool
IsGpuivf(Relation index, GpuivfMetaPageData *meta)
{
	if (index->rd_indam->amgettuple != gpuivfgettuple || !index->rd_index->indisvalid ||
		index->rd_index->indnatts != 1)
		return false;
	GpuivfReadMeta(index, meta);
	return true;
}

/*
 * rel itself when it is a valid gpuivf index, else the first valid flat
 * gpuivf index on table rel with a cosine operator class (what code.search
 * scans), opened, its metapage in *meta, and its table opened in *heap;
 * NULL (nothing left open) when there is none or the user may not read the
 * table (the scan reports that). Locks as the executor takes them: the
 * table, then the index.
 */
static Relation
OpenIndex(Oid relid, Relation *heap, GpuivfMetaPageData *meta)
{
	char		relkind = get_rel_relkind(relid);
	Oid			heapOid = relid;
	Relation	found = NULL;

	if (relkind == RELKIND_INDEX)
		heapOid = IndexGetRelation(relid, true);
	else if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW)
		return NULL;
	if (!OidIsValid(heapOid) ||
		pg_class_aclcheck(heapOid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return NULL;
	*heap = table_open(heapOid, AccessShareLock);
	if (relkind == RELKIND_INDEX)
	{
		found = index_open(relid, AccessShareLock);
		if (!IsGpuivf(found, meta))
		{
			index_close(found, NoLock);
			found = NULL;
		}
	}
	else
	{
		List	   *indexes = RelationGetIndexList(*heap);
		ListCell   *lc;

		foreach(lc, indexes)
		{
			Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

			if (IsGpuivf(index, meta) && meta->lists == 1 &&
				GpuivfGetMetric(index) == GPUIVF_METRIC_COSINE)
			{
				found = index;
				break;
			}
			index_close(index, NoLock);
		}
		list_free(indexes);
	}
	if (found == NULL)
		table_close(*heap, NoLock);
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
	Relation	heap,
				index;
	Codevec    *q;
	GpuivfMetaPageData meta;
	GpuivfRouteData route;
	int32		k;
	int			kk;
	bool		posted = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || !gpuivf_prefetch ||
		CodevecGpuPosted(NULL) != 0 || !CodevecGpuServiceReady())
		PG_RETURN_BOOL(false);
	k = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	index = OpenIndex(PG_GETARG_OID(0), &heap, &meta);
	if (index == NULL)
		PG_RETURN_BOOL(false);
	q = PG_GETARG_CODEVEC_P(1);
	GpuivfRouteDecide(index, &meta, &route);
	if (meta.lists == 1 && route.gpu && q->dim == meta.dims)
	{
		float	   *qx = palloc(sizeof(float) * meta.dims);

		VecElemToFloats(q, qx);
		/* what the scan's first request asks for, and at least k + 1 */
		kk = GpuivfFirstK(RelationGetRelid(index));
		if (kk <= k)
			kk = GpuivfCandidatesFor((int64) k + 1);
		posted = GpuivfGpuPostAhead(index, &meta, qx, kk);
		pfree(qx);
	}
	index_close(index, NoLock);
	table_close(heap, NoLock);
	PG_RETURN_BOOL(posted);
}

