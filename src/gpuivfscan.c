/*
 * gpuivfscan.c
 *	  Ordered scans of a gpuivf index (amcanorderbyop), on the CPU.
 *
 * The first amgettuple after a rescan reads the probed lists (all of them
 * when lists = 1), computes the distance of every vector to the query with
 * the opclass's own distance function, the very function behind the
 * ORDER BY operator, so the values are bit-identical to a sequential scan's,
 * and heapifies the (distance, heap TID) pairs. Each amgettuple then pops
 * the smallest: rows come back ordered by distance, ties by heap TID, NaN
 * distances (cosine of a zero vector) last as float8 sorts them, and the
 * executor can keep asking for as long as a WHERE clause rejects rows.
 *
 * With lists > 1, once the probed lists are exhausted the scan probes the
 * next gpuivf.probes lists (nearest centroids first) rather than stopping,
 * so LIMIT k returns k rows whenever k rows match; rows from a later batch
 * can be nearer than ones already returned (IVF is approximate anyway).
 *
 * A NULL query returns every row with a NULL distance, in heap TID order.
 *
 * The GPU service may answer the first batch instead (gpuivfgpu.c): the
 * whole index when lists = 1, the first gpuivf.probes lists of an IVF
 * index, with exactly the rows and order the CPU gives for that batch;
 * later batches of an IVF scan run here.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "gpuivf.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "vecelem.h"

/* Order candidates: distance (NaN last, NULL last), then heap TID */
static inline bool
CandidateLess(const GpuivfCandidate *a, const GpuivfCandidate *b)
{
	if (a->isnull != b->isnull)
		return b->isnull;
	if (!a->isnull)
	{
		int			c = float8_cmp_internal(a->distance, b->distance);

		if (c != 0)
			return c < 0;
	}
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) < 0;
}

int
GpuivfCandidateCompare(const void *a, const void *b)
{
	const GpuivfCandidate *x = (const GpuivfCandidate *) a;
	const GpuivfCandidate *y = (const GpuivfCandidate *) b;

	return CandidateLess(x, y) ? -1 : CandidateLess(y, x) ? 1 : 0;
}

/* Move heap[i] down to its place in a heap of n */
static void
SiftDown(GpuivfCandidate *heap, int64 n, int64 i)
{
	GpuivfCandidate x = heap[i];

	for (;;)
	{
		int64		c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && CandidateLess(&heap[c + 1], &heap[c]))
			c++;
		if (!CandidateLess(&heap[c], &x))
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = x;
}

void
GpuivfHeapify(GpuivfCandidate *heap, int64 n)
{
	for (int64 i = n / 2 - 1; i >= 0; i--)
		SiftDown(heap, n, i);
}

/* Append a candidate (the heap is rebuilt after each batch of lists) */
static void
PushCandidate(GpuivfScanOpaque so, double distance, bool isnull, ItemPointer tid)
{
	if (so->nheap == so->maxheap)
	{
		so->maxheap = Max(so->maxheap * 2, 1024);
		so->heap = so->heap == NULL ?
			MemoryContextAllocHuge(so->tmpCtx, sizeof(GpuivfCandidate) * so->maxheap) :
			repalloc_huge(so->heap, sizeof(GpuivfCandidate) * so->maxheap);
	}
	so->heap[so->nheap].distance = distance;
	so->heap[so->nheap].isnull = isnull;
	so->heap[so->nheap].tid = *tid;
	so->nheap++;
}

/* Compute the distance of every vector in the chain starting at blkno */
static void
ProbeList(IndexScanDesc scan, BlockNumber blkno, BufferAccessStrategy bas)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	TupleDesc	tupdesc = RelationGetDescr(scan->indexRelation);

	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf = ReadBufferExtended(scan->indexRelation, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
		Page		page;
		OffsetNumber maxoff;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			IndexTuple	itup = GpuivfPageTuple(page, off);
			bool		isnull;
			Datum		value;

			if (itup == NULL)
				continue;
			value = index_getattr(itup, 1, tupdesc, &isnull);
			if (so->query == (Datum) 0 || isnull)
				PushCandidate(so, 0, true, &itup->t_tid);
			else
				PushCandidate(so, DatumGetFloat8(FunctionCall2Coll(so->procinfo, so->collation,
																   value, so->query)),
							  false, &itup->t_tid);
		}
		blkno = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Probe the next batch of lists and heapify what they hold */
static void
ProbeNextLists(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);
	MemoryContext old = MemoryContextSwitchTo(so->tmpCtx);
	int			end = Min(so->lists, so->nextList + so->probes);

	for (; so->nextList < end; so->nextList++)
		ProbeList(scan, so->listStarts[so->listOrder[so->nextList]], bas);
	FreeAccessStrategy(bas);
	GpuivfHeapify(so->heap, so->nheap);
	MemoryContextSwitchTo(old);
}

/* First call after rescan: read the metapage and order the lists */
static void
StartScan(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	GpuivfMetaPageData meta;
	MemoryContext old = MemoryContextSwitchTo(so->tmpCtx);
	const float *centroids;
	const BlockNumber *starts;

	GpuivfReadMeta(scan->indexRelation, &meta);
	so->dims = meta.dims;
	so->lists = meta.lists;
	so->listStarts = palloc(sizeof(BlockNumber) * meta.lists);
	so->listOrder = palloc(sizeof(int) * meta.lists);
	centroids = GpuivfCachedCentroids(scan->indexRelation, &meta, &starts);
	memcpy(so->listStarts, starts, sizeof(BlockNumber) * meta.lists);
	for (int i = 0; i < meta.lists; i++)
		so->listOrder[i] = i;

	if (meta.lists > 1 && so->query != (Datum) 0)
	{
		Codevec    *q = DatumGetCodevec(so->query);
		float	   *qx = palloc(sizeof(float) * meta.dims);

		GpuivfCheckQueryDims(GpuivfGetMetric(scan->indexRelation), meta.dims, q);
		VecElemToFloats(q, qx);	/* halfvec: exact */
		GpuivfOrderLists((GpuivfMetric) meta.metric, centroids, meta.lists, meta.dims, qx,
						 so->listOrder);
		so->probes = Min(gpuivf_probes, meta.lists);
	}
	else
		so->probes = meta.lists;	/* exact: every list at once */
	MemoryContextSwitchTo(old);
}

IndexScanDesc
gpuivfbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	GpuivfScanOpaque so = palloc0(sizeof(GpuivfScanOpaqueData));

	so->procinfo = index_getprocinfo(index, 1, GPUIVF_DISTANCE_PROC);
	so->collation = index->rd_indcollation[0];
	so->tmpCtx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf scan",
									   ALLOCSET_DEFAULT_SIZES);
	so->first = true;
	scan->opaque = so;
	/* the AM provides the arrays the executor reads ORDER BY values from */
	if (norderbys > 0)
	{
		scan->xs_orderbyvals = palloc0(sizeof(Datum) * norderbys);
		scan->xs_orderbynulls = palloc(sizeof(bool) * norderbys);
		memset(scan->xs_orderbynulls, true, sizeof(bool) * norderbys);
	}
	return scan;
}

void
gpuivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	MemoryContextReset(so->tmpCtx);
	so->heap = NULL;
	so->nheap = so->maxheap = 0;
	so->nextList = 0;
	so->first = true;
	so->query = (Datum) 0;
	so->gpu = so->gpuAll = false;
	so->gpuK = so->gpuNReady = so->gpuPos = 0;
	so->gpuReady = NULL;
	so->returned = NULL;		/* lived in tmpCtx */

	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	if (scan->numberOfOrderBys > 0 && !(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		MemoryContext old = MemoryContextSwitchTo(so->tmpCtx);

		so->query = PointerGetDatum(PG_DETOAST_DATUM_COPY(scan->orderByData[0].sk_argument));
		MemoryContextSwitchTo(old);
	}
}

bool
gpuivfgettuple(IndexScanDesc scan, ScanDirection dir)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	if (!ScanDirectionIsForward(dir))
		elog(ERROR, "gpuivf does not support backward scans");

	if (so->first)
	{
		CodevecCountIndexSearch(scan);
		StartScan(scan);
		so->first = false;
		/* a large index may be answered by the GPU service (IVF: its
		 * first batch of lists) */
		so->gpu = GpuivfGpuRoute(scan) && GpuivfGpuFetch(scan, GPUIVF_GPU_FIRST_K);
		if (!so->gpu)
			ProbeNextLists(scan);
	}

	while (so->gpu)
	{
		GpuivfCandidate c;

		if (GpuivfGpuNext(scan, &c))
		{
			/* exact distance, recomputed by the operator's own function */
			scan->xs_heaptid = c.tid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			if (scan->numberOfOrderBys > 0)
			{
				scan->xs_orderbyvals[0] = Float8GetDatum(c.distance);
				scan->xs_orderbynulls[0] = false;
			}
			return true;
		}
		if (so->gpuAll)
		{
			/* every row of the probed lists was a candidate and came back */
			if (so->probes >= so->lists)
				return false;
			/* IVF: the next lists on the CPU, as a CPU scan goes on */
			so->gpu = false;
			so->nextList = so->probes;
			break;
		}
		if (so->gpuK < GPUIVF_GPU_MAX_K &&
			GpuivfGpuFetch(scan, Min(so->gpuK * 4, GPUIVF_GPU_MAX_K)))
			continue;
		/* past the GPU's largest k: exact CPU scan, skipping returned rows */
		so->gpu = false;
		ProbeNextLists(scan);
	}

	for (;;)
	{
		GpuivfCandidate top;

		while (so->nheap == 0 && so->nextList < so->lists)
			ProbeNextLists(scan);
		if (so->nheap == 0)
			return false;

		top = so->heap[0];
		so->heap[0] = so->heap[--so->nheap];
		if (so->nheap > 0)
			SiftDown(so->heap, so->nheap, 0);
		if (so->returned != NULL && GpuivfGpuReturned(scan, &top.tid))
			continue;

		scan->xs_heaptid = top.tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		if (scan->numberOfOrderBys > 0)
		{
			scan->xs_orderbyvals[0] = Float8GetDatum(top.distance);
			scan->xs_orderbynulls[0] = top.isnull;
		}
		return true;
	}
}

void
gpuivfendscan(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	MemoryContextDelete(so->tmpCtx);
	pfree(so);
	scan->opaque = NULL;
}
