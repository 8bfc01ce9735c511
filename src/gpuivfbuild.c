/*
 * gpuivfbuild.c
 *	  Build a gpuivf index.
 *
 * The build never holds the table in backend memory:
 *
 * 1. lists = 1 (exact flat index): one pass over the heap appends each
 *    index tuple (heap TID + codevec) to a single chain of data pages.
 *
 * 2. lists = N > 1 (IVF):
 *    a. a first pass draws a uniform reservoir sample (Vitter's algorithm R)
 *       of max(10000, 50 N) vectors, capped by maintenance_work_mem;
 *    b. k-means on the sample gives N centroids: on the GPU service when
 *       codevec.device allows and it is ready (cuda/kmeans.h), which then
 *       also assigns the vectors of pass c, else on the CPU (gpuivfutils.c);
 *    c. a second pass assigns every vector to its nearest centroid (in
 *       batches: one GEMM each, GpuivfNearestLists) and feeds
 *       (list, tid, vector) to a tuplesort ordered by list, which spills to
 *       disk past maintenance_work_mem;
 *    d. the sorted stream is written list after list, each list a chain of
 *       pages, and the list pages are updated with each chain's ends.
 *
 * Pages are written through shared buffers and, when the relation needs WAL,
 * logged as full pages at the end (log_newpage_range), as core's GiST and
 * pgvector do; everything after the build is logged with GenericXLog.
 * NULL vectors are not indexed (an ORDER BY scan does not return them; the
 * planner only uses the index for ORDER BY, where NULL distances sort last).
 */
#include "postgres.h"

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "catalog/pg_operator_d.h"
#include "catalog/pg_type_d.h"
#include "common/pg_prng.h"
#include "gpuivf.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/tuplesort.h"
#include "vecelem.h"

typedef struct GpuivfBuildState
{
	Relation	heap;
	Relation	index;
	int			dims;
	int			lists;
	GpuivfMetric metric;
	double		indtuples;
	double		reltuples;

	/* sampling */
	float	   *samples;
	int			maxSamples;
	int			nsamples;
	double		seen;
	pg_prng_state prng;

	/* assignment, in batches of GPUIVF_ASSIGN_BATCH vectors */
	float	   *pendVecs;
	ItemPointerData *pendTids;
	int		   *pendLists;
	int			npend;
	int			batch;			/* rows per assignment batch */
	bool		gpu;			/* the GPU service trained and assigns */
	int			elemSize;		/* bytes per element of the indexed type (vecelem.h) */
	float	   *centroids;
	Tuplesortstate *sortstate;
	TupleDesc	sortdesc;
	TupleTableSlot *slot;

	/* page writing (lists = 1 goes straight here) */
	Buffer		buf;
	BlockNumber *startPages;
	BlockNumber *insertPages;
	MemoryContext tmpCtx;
} GpuivfBuildState;

/* Check a vector's dimensions against the index's */
static void
CheckVectorDims(GpuivfBuildState *bs, const Codevec *v)
{
	if (v->dim != bs->dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", bs->dims, v->dim)));
}

/* Append one index tuple to the chain whose last page is pinned in bs->buf */
static void
AppendTuple(GpuivfBuildState *bs, int list, IndexTuple itup)
{
	Size		sz = MAXALIGN(IndexTupleSize(itup));
	Page		page = BufferGetPage(bs->buf);

	if (PageGetFreeSpace(page) < sz)
	{
		Buffer		next = GpuivfNewBuffer(bs->index, MAIN_FORKNUM);

		GpuivfInitPage(BufferGetPage(next));
		GpuivfPageGetOpaque(page)->nextblkno = BufferGetBlockNumber(next);
		MarkBufferDirty(bs->buf);
		UnlockReleaseBuffer(bs->buf);
		bs->buf = next;
		bs->insertPages[list] = BufferGetBlockNumber(next);
		MarkBufferDirty(next);
		page = BufferGetPage(next);
	}
	if (PageAddItem(page, (Item) itup, sz, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
		elog(ERROR, "failed to add index item to \"%s\"", RelationGetRelationName(bs->index));
	MarkBufferDirty(bs->buf);
	bs->indtuples++;
}

/* Start list's chain on a fresh page, pinned and locked in bs->buf */
static void
StartChain(GpuivfBuildState *bs, int list)
{
	if (BufferIsValid(bs->buf))
		UnlockReleaseBuffer(bs->buf);
	bs->buf = GpuivfNewBuffer(bs->index, MAIN_FORKNUM);
	GpuivfInitPage(BufferGetPage(bs->buf));
	MarkBufferDirty(bs->buf);
	bs->startPages[list] = bs->insertPages[list] = BufferGetBlockNumber(bs->buf);
}

/* Pass 1 of an IVF build: reservoir sampling */
static void
SampleCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	GpuivfBuildState *bs = (GpuivfBuildState *) state;
	Codevec    *v;
	int			slot;

	if (isnull[0])
		return;
	v = DatumGetCodevec(values[0]);
	CheckVectorDims(bs, v);
	bs->seen++;
	if (bs->nsamples < bs->maxSamples)
		slot = bs->nsamples++;
	else
	{
		double		r = pg_prng_double(&bs->prng) * bs->seen;

		if (r >= bs->maxSamples)
			return;
		slot = (int) r;
	}
	VecElemToFloats(v, bs->samples + (size_t) slot * bs->dims);	/* halfvec: exact */
	if ((Pointer) v != DatumGetPointer(values[0]))
		pfree(v);
}

/* rows per assignment batch: the GEMM's output (batch x lists floats) is
 * kept near 64 MB */
#define GPUIVF_ASSIGN_BATCH(lists)	Max(256, Min(8192, (16 * 1024 * 1024) / (lists)))

/* Assign the pending vectors to their lists and feed them to the sort */
static void
FlushAssign(GpuivfBuildState *bs)
{
	MemoryContext old;
	Codevec    *v;

	if (bs->npend == 0)
		return;
	old = MemoryContextSwitchTo(bs->tmpCtx);
	if (bs->gpu)
		bs->gpu = GpuivfGpuAssign(bs->metric, bs->pendVecs, bs->npend, bs->dims, bs->lists,
								  bs->pendLists);
	if (!bs->gpu)
		GpuivfNearestLists(bs->metric, bs->centroids, bs->lists, bs->dims, bs->pendVecs,
						   bs->npend, bs->pendLists);
	for (int i = 0; i < bs->npend; i++)
	{
		/* the indexed type again (halfvec: the same bits) */
		v = VecElemFromFloats(bs->elemSize, bs->pendVecs + (size_t) i * bs->dims, bs->dims);
		ExecClearTuple(bs->slot);
		bs->slot->tts_values[0] = Int32GetDatum(bs->pendLists[i]);
		bs->slot->tts_isnull[0] = false;
		bs->slot->tts_values[1] = PointerGetDatum(&bs->pendTids[i]);
		bs->slot->tts_isnull[1] = false;
		bs->slot->tts_values[2] = PointerGetDatum(v);
		bs->slot->tts_isnull[2] = false;
		ExecStoreVirtualTuple(bs->slot);
		tuplesort_puttupleslot(bs->sortstate, bs->slot);
		bs->indtuples++;
	}
	bs->npend = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCtx);
}

/* Pass 2: append (lists = 1) or assign to a list and sort (IVF) */
static void
BuildCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			  bool tupleIsAlive, void *state)
{
	GpuivfBuildState *bs = (GpuivfBuildState *) state;
	MemoryContext old;
	Codevec    *v;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmpCtx);
	v = DatumGetCodevec(values[0]);
	CheckVectorDims(bs, v);
	if (bs->lists == 1)
	{
		Datum		d = PointerGetDatum(v);
		bool		n = false;
		IndexTuple	itup = index_form_tuple(RelationGetDescr(index), &d, &n);

		itup->t_tid = *tid;
		AppendTuple(bs, 0, itup);
	}
	else
	{
		/* assigned in batches: one GEMM per batch (GpuivfNearestLists) */
		bs->elemSize = VecElemSize(v);
		VecElemToFloats(v, bs->pendVecs + (size_t) bs->npend * bs->dims);
		bs->pendTids[bs->npend++] = *tid;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpCtx);
	if (bs->npend == bs->batch)
		FlushAssign(bs);
}

/* Write the metapage and the list pages (list entries filled in later) */
static void
WriteMetaAndLists(Relation index, ForkNumber fork, int dims, int lists, GpuivfMetric metric,
				  const float *centroids)
{
	Buffer		buf;
	Page		page;
	GpuivfMetaPage meta;
	int			centroidDims = lists > 1 ? dims : 0;
	Size		listSize = GPUIVF_LIST_SIZE(centroidDims);
	GpuivfList	entry = palloc0(listSize);
	BlockNumber listPages = 1;

	buf = GpuivfNewBuffer(index, fork);
	Assert(BufferGetBlockNumber(buf) == GPUIVF_METAPAGE_BLKNO);
	page = BufferGetPage(buf);
	PageInit(page, BLCKSZ, 0);
	meta = GpuivfPageGetMeta(page);
	meta->magicNumber = GPUIVF_MAGIC_NUMBER;
	meta->version = GPUIVF_VERSION;
	meta->dims = dims;
	meta->lists = lists;
	meta->metric = metric;
	meta->listPages = 0;
	meta->changeCount = 0;
	meta->insertCount = 0;
	((PageHeader) page)->pd_lower = ((char *) meta + sizeof(GpuivfMetaPageData)) - (char *) page;
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	/* list pages: as many entries per page as fit */
	buf = GpuivfNewBuffer(index, fork);
	GpuivfInitPage(BufferGetPage(buf));
	for (int i = 0; i < lists; i++)
	{
		page = BufferGetPage(buf);
		if (PageGetFreeSpace(page) < listSize)
		{
			Buffer		next = GpuivfNewBuffer(index, fork);

			GpuivfInitPage(BufferGetPage(next));
			GpuivfPageGetOpaque(page)->nextblkno = BufferGetBlockNumber(next);
			MarkBufferDirty(buf);
			UnlockReleaseBuffer(buf);
			buf = next;
			page = BufferGetPage(buf);
			listPages++;
		}
		entry->startPage = InvalidBlockNumber;
		entry->insertPage = InvalidBlockNumber;
		SET_VARSIZE(&entry->centroid, CODEVEC_SIZE(centroidDims));
		entry->centroid.dim = centroidDims;
		entry->centroid.unused = 0;
		if (centroidDims > 0)
			memcpy(entry->centroid.x, centroids + (size_t) i * dims, sizeof(float) * dims);
		if (PageAddItem(page, (Item) entry, listSize, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
			elog(ERROR, "failed to add list item to \"%s\"", RelationGetRelationName(index));
	}
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	buf = ReadBufferExtended(index, fork, GPUIVF_METAPAGE_BLKNO, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	GpuivfPageGetMeta(BufferGetPage(buf))->listPages = listPages;
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
	pfree(entry);
}

/* Store each list's start and insert pages in the list pages */
static void
UpdateListPages(Relation index, ForkNumber fork, int lists,
				const BlockNumber *startPages, const BlockNumber *insertPages)
{
	BlockNumber blkno = GPUIVF_HEAD_BLKNO;
	int			list = 0;

	while (list < lists && BlockNumberIsValid(blkno))
	{
		Buffer		buf = ReadBufferExtended(index, fork, blkno, RBM_NORMAL, NULL);
		Page		page;
		OffsetNumber maxoff;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff && list < lists; off++, list++)
		{
			GpuivfList l = (GpuivfList) PageGetItem(page, PageGetItemId(page, off));

			l->startPage = startPages[list];
			l->insertPage = insertPages[list];
		}
		MarkBufferDirty(buf);
		blkno = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
}

/* Read the column's dimensions from its typmod, with the AM's limits */
static int
IndexDims(Relation index)
{
	int			dims = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	if (dims < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column does not have dimensions"),
				 errhint("Index a codevec(n) column, e.g. ALTER TABLE ... ALTER COLUMN emb TYPE codevec(384).")));
	if (dims > GPUIVF_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("column cannot have more than %d dimensions for gpuivf index", GPUIVF_MAX_DIM)));
	return dims;
}

IndexBuildResult *
gpuivfbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result = palloc0(sizeof(IndexBuildResult));
	GpuivfBuildState bs;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));

	memset(&bs, 0, sizeof(bs));
	bs.heap = heap;
	bs.index = index;
	bs.dims = IndexDims(index);
	bs.lists = GpuivfGetLists(index);
	bs.metric = GpuivfGetMetric(index);
	bs.buf = InvalidBuffer;
	bs.tmpCtx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf build tuple",
									  ALLOCSET_DEFAULT_SIZES);
	bs.startPages = palloc(sizeof(BlockNumber) * bs.lists);
	bs.insertPages = palloc(sizeof(BlockNumber) * bs.lists);

	if (bs.lists > 1)
	{
		Size		perSample = sizeof(float) * bs.dims;
		Size		budget = (Size) maintenance_work_mem * 1024L / 2;

		bs.maxSamples = Max(GPUIVF_MIN_SAMPLES, bs.lists * GPUIVF_SAMPLES_PER_LIST);
		bs.maxSamples = (int) Min((Size) bs.maxSamples, Max(budget / perSample, (Size) bs.lists));
		bs.samples = palloc_extended(perSample * bs.maxSamples, MCXT_ALLOC_HUGE);
		pg_prng_seed(&bs.prng, 0x6770756976660002ULL);
		table_index_build_scan(heap, index, indexInfo, false, true, SampleCallback, &bs, NULL);
		bs.centroids = palloc_extended(sizeof(float) * (Size) bs.lists * bs.dims, MCXT_ALLOC_HUGE);
		/* on the GPU service when there is one (it then assigns too) */
		bs.gpu = GpuivfGpuKmeans(bs.metric, bs.samples, bs.nsamples, bs.dims, bs.lists,
								 bs.centroids);
		if (!bs.gpu)
			GpuivfKmeans(bs.metric, bs.samples, bs.nsamples, bs.dims, bs.lists, bs.centroids);
		pfree(bs.samples);
		bs.samples = NULL;
	}

	WriteMetaAndLists(index, MAIN_FORKNUM, bs.dims, bs.lists, bs.metric, bs.centroids);

	if (bs.lists == 1)
	{
		StartChain(&bs, 0);
		bs.reltuples = table_index_build_scan(heap, index, indexInfo, true, true, BuildCallback, &bs, NULL);
	}
	else
	{
		AttrNumber	sortKey = 1;
		Oid			sortOp = Int4LessOperator;
		Oid			collation = InvalidOid;
		bool		nullsFirst = false;
		int			current = -1;

		bs.sortdesc = CreateTemplateTupleDesc(3);
		TupleDescInitEntry(bs.sortdesc, 1, "list", INT4OID, -1, 0);
		TupleDescInitEntry(bs.sortdesc, 2, "tid", TIDOID, -1, 0);
		TupleDescInitEntry(bs.sortdesc, 3, "vector", TupleDescAttr(RelationGetDescr(index), 0)->atttypid, -1, 0);
		bs.slot = MakeSingleTupleTableSlot(bs.sortdesc, &TTSOpsVirtual);
		bs.sortstate = tuplesort_begin_heap(bs.sortdesc, 1, &sortKey, &sortOp, &collation,
											&nullsFirst, maintenance_work_mem, NULL, TUPLESORT_NONE);
		bs.batch = GPUIVF_ASSIGN_BATCH(bs.lists);
		bs.pendVecs = palloc_extended(sizeof(float) * (Size) bs.batch * bs.dims, MCXT_ALLOC_HUGE);
		bs.pendTids = palloc(sizeof(ItemPointerData) * bs.batch);
		bs.pendLists = palloc(sizeof(int) * bs.batch);
		bs.reltuples = table_index_build_scan(heap, index, indexInfo, true, true, BuildCallback, &bs, NULL);
		FlushAssign(&bs);
		if (bs.gpu)
			GpuivfGpuKmeansDone(bs.dims, bs.lists);
		tuplesort_performsort(bs.sortstate);

		/* write list after list; a list with no vector still gets a page */
		ExecDropSingleTupleTableSlot(bs.slot);
		bs.slot = MakeSingleTupleTableSlot(bs.sortdesc, &TTSOpsMinimalTuple);
		bs.indtuples = 0;
		while (tuplesort_gettupleslot(bs.sortstate, true, false, bs.slot, NULL))
		{
			bool		isnull;
			int			list = DatumGetInt32(slot_getattr(bs.slot, 1, &isnull));
			ItemPointer tid = (ItemPointer) DatumGetPointer(slot_getattr(bs.slot, 2, &isnull));
			Datum		vec = slot_getattr(bs.slot, 3, &isnull);
			IndexTuple	itup;
			bool		n = false;

			CHECK_FOR_INTERRUPTS();
			while (current < list)
				StartChain(&bs, ++current);
			itup = index_form_tuple(RelationGetDescr(index), &vec, &n);
			itup->t_tid = *tid;
			AppendTuple(&bs, list, itup);
			pfree(itup);
		}
		while (current < bs.lists - 1)
			StartChain(&bs, ++current);
		tuplesort_end(bs.sortstate);
		ExecDropSingleTupleTableSlot(bs.slot);
	}
	if (BufferIsValid(bs.buf))
		UnlockReleaseBuffer(bs.buf);

	UpdateListPages(index, MAIN_FORKNUM, bs.lists, bs.startPages, bs.insertPages);

	if (RelationNeedsWAL(index))
		log_newpage_range(index, MAIN_FORKNUM, 0, RelationGetNumberOfBlocks(index), true);

	MemoryContextDelete(bs.tmpCtx);
	result->heap_tuples = bs.reltuples;
	result->index_tuples = bs.indtuples;
	return result;
}

/*
 * gpuivfbuildempty: write the init fork of an unlogged index: metapage, list
 * pages with zero centroids and one empty data page per list.
 */
void
gpuivfbuildempty(Relation index)
{
	int			dims = IndexDims(index);
	int			lists = GpuivfGetLists(index);
	float	   *centroids = palloc0(sizeof(float) * (Size) lists * dims);
	BlockNumber *start = palloc(sizeof(BlockNumber) * lists);

	WriteMetaAndLists(index, INIT_FORKNUM, dims, lists, GpuivfGetMetric(index), centroids);
	for (int i = 0; i < lists; i++)
	{
		Buffer		buf = GpuivfNewBuffer(index, INIT_FORKNUM);

		GpuivfInitPage(BufferGetPage(buf));
		MarkBufferDirty(buf);
		start[i] = BufferGetBlockNumber(buf);
		UnlockReleaseBuffer(buf);
	}
	UpdateListPages(index, INIT_FORKNUM, lists, start, start);
	log_newpage_range(index, INIT_FORKNUM, 0, RelationGetNumberOfBlocksInFork(index, INIT_FORKNUM), true);
}
