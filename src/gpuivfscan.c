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
 * later batches of an IVF scan run here. gpuivfgettuple walks the phases
 * of GpuivfScanPhase (gpuivf.h): START, then GPU or CPU, then DONE, a GPU
 * phase handing over to a CPU continuation that skips the rows it
 * returned.
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
	so->phase = GPUIVF_SCAN_START;
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

/*
 * The first GPU batch of a scan. A scan asks the service for
 * GPUIVF_GPU_FIRST_K candidates and, when the executor wants more rows,
 * for four times as many. code.search's hybrid list reads 100 rows (and
 * their ties), so each of its scans paid two requests, the second one
 * for 256 candidates. This backend remembers, for the last few indexes it
 * scanned on the GPU, how many rows the last scan took from the GPU
 * phase, and asks the next scan of the same index for GpuivfCandidatesFor
 * that many: the usual query then takes one request. The answer is the
 * same either way (a scan that needs more still fetches again).
 */
#define FIRST_K_SLOTS	8

static struct
{
	Oid			index;
	int			k;
}			first_k[FIRST_K_SLOTS];
static int	first_k_next = 0;

/* GpuivfFirstK: see gpuivf.h */
int
GpuivfFirstK(Oid index)
{
	for (int i = 0; i < FIRST_K_SLOTS; i++)
		if (first_k[i].index == index && first_k[i].k > 0)
			return first_k[i].k;
	return GPUIVF_GPU_FIRST_K;
}

/* Remember how many rows the scan now ending took from its GPU phase */
static void
RememberFirstK(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	Oid			index = RelationGetRelid(scan->indexRelation);
	int64		rows = so->stats.gpuRows - so->gpuRows0;
	int			k;
	int			slot = -1;

	if (so->gpuK == 0)
		return;					/* the scan never asked the GPU */
	k = GpuivfCandidatesFor(rows);
	for (int i = 0; i < FIRST_K_SLOTS && slot < 0; i++)
		if (first_k[i].index == index)
			slot = i;
	if (slot < 0)
	{
		slot = first_k_next;
		first_k_next = (first_k_next + 1) % FIRST_K_SLOTS;
	}
	first_k[slot].index = index;
	first_k[slot].k = k;
}

void
gpuivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	RememberFirstK(scan);		/* the scan before, if any */
	MemoryContextReset(so->tmpCtx);
	so->heap = NULL;
	so->nheap = so->maxheap = 0;
	so->nextList = 0;
	so->phase = GPUIVF_SCAN_START;
	so->query = (Datum) 0;
	so->gpuAll = false;
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

/* Hand a row to the executor: its heap TID and exact distance */
static bool
EmitRow(IndexScanDesc scan, const GpuivfCandidate *c)
{
	scan->xs_heaptid = c->tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	if (scan->numberOfOrderBys > 0)
	{
		scan->xs_orderbyvals[0] = Float8GetDatum(c->distance);
		scan->xs_orderbynulls[0] = c->isnull;
	}
	return true;
}

/*
 * The CPU phase's next row: the nearest candidate of the lists probed so
 * far (probing the next batch when they are used up), skipping rows the
 * GPU phase returned; false when no list is left.
 */
static bool
CpuNext(IndexScanDesc scan, GpuivfCandidate *c)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	for (;;)
	{
		while (so->nheap == 0 && so->nextList < so->lists)
			ProbeNextLists(scan);
		if (so->nheap == 0)
			return false;
		*c = so->heap[0];
		so->heap[0] = so->heap[--so->nheap];
		if (so->nheap > 0)
			GpuivfHeapSiftDown(so->heap, so->nheap, 0);
		if (so->returned == NULL || !GpuivfGpuReturned(scan, &c->tid))
			return true;
	}
}

/*
 * The scan, one row per call: the phase machine of GpuivfScanPhase (see
 * gpuivf.h), which only this function moves on.
 */
bool
gpuivfgettuple(IndexScanDesc scan, ScanDirection dir)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	GpuivfCandidate c;

	if (!ScanDirectionIsForward(dir))
		elog(ERROR, "gpuivf does not support backward scans");

	for (;;)
	{
		switch (so->phase)
		{
			case GPUIVF_SCAN_START:
				CodevecCountIndexSearch(scan);
				StartScan(scan);
				/* a large index may be answered by the GPU service (IVF:
				 * its first batch of lists) */
				so->gpuRows0 = so->stats.gpuRows;
				if (GpuivfGpuRoute(scan) &&
					GpuivfGpuFetch(scan, GpuivfFirstK(RelationGetRelid(scan->indexRelation))))
					so->phase = GPUIVF_SCAN_GPU;
				else
				{
					ProbeNextLists(scan);
					so->phase = GPUIVF_SCAN_CPU;
				}
				break;

			case GPUIVF_SCAN_GPU:
				/* exact distance, recomputed by the operator's own function */
				if (GpuivfGpuNext(scan, &c))
					return EmitRow(scan, &c);
				if (so->gpuAll)
				{
					/* every row of the probed lists was a candidate and came back */
					if (so->probes >= so->lists)
						so->phase = GPUIVF_SCAN_DONE;
					else
					{
						/* IVF: the next lists on the CPU, as a CPU scan goes on */
						so->nextList = so->probes;
						so->phase = GPUIVF_SCAN_CPU;
					}
					break;
				}
				if (so->gpuK < GPUIVF_GPU_MAX_K &&
					GpuivfGpuFetch(scan, Min(so->gpuK * 4, GPUIVF_GPU_MAX_K)))
					break;		/* a larger batch */
				if (so->gpuK >= GPUIVF_GPU_MAX_K)
				{
					so->stats.fallbacks++;
					snprintf(so->stats.fallbackWhy, sizeof(so->stats.fallbackWhy),
							 "past %d GPU candidates the scan goes on on the CPU",
							 GPUIVF_GPU_MAX_K);
				}
				/* exact CPU scan, skipping returned rows */
				ProbeNextLists(scan);
				so->phase = GPUIVF_SCAN_CPU;
				break;

			case GPUIVF_SCAN_CPU:
				if (CpuNext(scan, &c))
					return EmitRow(scan, &c);
				so->phase = GPUIVF_SCAN_DONE;
				break;

			case GPUIVF_SCAN_DONE:
				return false;
		}
	}
}

void
gpuivfendscan(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	RememberFirstK(scan);
	MemoryContextDelete(so->tmpCtx);
	pfree(so);
	scan->opaque = NULL;
}
