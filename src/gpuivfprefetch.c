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
	int32		k;
	int			kk;
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

		VecElemToFloats(q, qx);
		/* what the scan's first request asks for, and at least k + 1 */
		kk = GpuivfFirstK(indexOid);
		while (kk <= k && kk < GPUIVF_GPU_MAX_K)
			kk *= 2;
		posted = GpuivfGpuPostAhead(index, &meta, qx, kk);
		pfree(qx);
	}
	index_close(index, NoLock);
	table_close(heap, NoLock);
	PG_RETURN_BOOL(posted);
}

