/*
 * gpuivfcheck.c
 *	  codevec_index_check(index regclass): verify a gpuivf index against its
 *	  own layout and against its table, as amcheck's bt_index_check (with
 *	  heapallindexed) does for a B-tree.
 *
 * The check runs in three passes, each raising ERROR XX002
 * (index_corrupted) with the block, offset or heap TID at fault at the
 * first thing that is wrong:
 *
 *	1. metapage: magic number and version (GpuivfReadMeta), dims equal to
 *	   the column's typmod, lists equal to the reloption and within
 *	   1..GPUIVF_MAX_LISTS, the metric equal to the opclass's, listPages
 *	   list pages (blocks 1..listPages, the layout the build writes) that
 *	   hold exactly `lists` entries, each centroid of dims elements (IVF).
 *	2. chains: every list's chain starts and ends (its insert page) inside
 *	   the data pages, visits no block twice (no cycle, no page in two
 *	   chains), each page a gpuivf page; every live index tuple holds a
 *	   non-NULL vector of the index's dims with finite elements and a valid
 *	   heap TID, and no heap TID is in the index twice.  A data page in no
 *	   chain must be new (all zeros: a relation extension a crash or an
 *	   error left unused).
 *	3. heap: every row visible to a fresh MVCC snapshot with a non-NULL
 *	   vector is in the index exactly once, with the same elements (a hash
 *	   of them is compared).  Index tuples of rows that are dead but not yet
 *	   vacuumed are allowed (VACUUM removes them), as in bt_index_check.
 *
 * Locks: ShareLock on the table (writes and VACUUM wait, reads go on; the
 * lock CREATE INDEX takes), so the index cannot change between the passes
 * and the counts are exact; AccessShareLock on the index.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "gpuivf.h"
#include "miscadmin.h"
#include "relacl.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "vecelem.h"

PG_FUNCTION_INFO_V1(codevec_index_check);

/* one live index tuple: its heap TID and a hash of its vector's elements */
typedef struct CheckEntry
{
	ItemPointerData tid;
	bool		seen;			/* found by the heap pass */
	uint64		hash;
} CheckEntry;

typedef struct CheckState
{
	Relation	index;
	GpuivfMetaPageData meta;
	BlockNumber nblocks;
	bool	   *visited;		/* [nblocks]: block is in some chain */
	CheckEntry *entries;		/* live index tuples, sorted by TID after pass 2 */
	int64		nentries;
	int64		maxentries;
	int64		deadTuples;		/* LP_DEAD, waiting for the next VACUUM */
	int64		dataPages;
	int64		heapRows;
	float	   *buf;			/* dims floats */
} CheckState;

#define CORRUPT(st, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INDEX_CORRUPTED), \
			 errmsg("gpuivf index \"%s\" is corrupted", RelationGetRelationName((st)->index)), \
			 errdetail(__VA_ARGS__)))

/* Hash the elements of a detoasted vector (dim and element bytes) */
static uint64
VectorHash(const Codevec *v, int elemSize)
{
	uint64		h = hash_bytes_extended((const unsigned char *) v->x,
										(int) v->dim * elemSize, 0);

	return h ^ ((uint64) (uint16) v->dim << 48);
}

/* Pass 1: the metapage against the catalog, and the list pages */
static BlockNumber *
CheckMetaAndLists(CheckState *st, BlockNumber **insertPages)
{
	Relation	index = st->index;
	GpuivfMetaPageData *meta = &st->meta;
	int			typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	BlockNumber *starts;
	BlockNumber *inserts;
	int			found = 0;
	BlockNumber blkno = GPUIVF_HEAD_BLKNO;
	BlockNumber listPages = 0;

	GpuivfReadMeta(index, meta);	/* magic number, version */
	if (meta->dims < 1 || meta->dims > CODEVEC_MAX_DIM || meta->dims != typmod)
		CORRUPT(st, "The metapage says %d dimensions; the indexed column has %d.",
				meta->dims, typmod);
	if (meta->lists < GPUIVF_MIN_LISTS || meta->lists > GPUIVF_MAX_LISTS ||
		meta->lists != GpuivfGetLists(index))
		CORRUPT(st, "The metapage says %d lists; the index was created WITH (lists = %d).",
				meta->lists, GpuivfGetLists(index));
	if (meta->metric != (int32) GpuivfGetMetric(index))
		CORRUPT(st, "The metapage says metric %d; the operator class's is %d.",
				meta->metric, (int) GpuivfGetMetric(index));
	if (meta->listPages < 1 || meta->listPages > st->nblocks - 1)
		CORRUPT(st, "The metapage says %u list pages; the index has %u blocks.",
				meta->listPages, st->nblocks);

	starts = palloc(sizeof(BlockNumber) * meta->lists);
	inserts = palloc(sizeof(BlockNumber) * meta->lists);
	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf;
		Page		page;
		OffsetNumber maxoff;
		int			centroidDims = meta->lists > 1 ? meta->dims : 0;

		CHECK_FOR_INTERRUPTS();
		if (blkno != GPUIVF_HEAD_BLKNO + listPages || listPages >= meta->listPages)
			CORRUPT(st, "List page %u links to block %u; the list pages are blocks 1 to %u.",
					listPages, blkno, meta->listPages);
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (PageIsNew(page) || GpuivfPageGetOpaque(page)->page_id != GPUIVF_PAGE_ID)
			CORRUPT(st, "Block %u is not a gpuivf list page.", blkno);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		iid = PageGetItemId(page, off);
			GpuivfList	entry;

			if (found >= meta->lists)
				CORRUPT(st, "The list pages hold more than the metapage's %d lists (block %u).",
						meta->lists, blkno);
			if (!ItemIdIsNormal(iid) || ItemIdGetLength(iid) < GPUIVF_LIST_SIZE(centroidDims))
				CORRUPT(st, "List %d (block %u, offset %u) is not a list entry of %d dimensions.",
						found, blkno, off, centroidDims);
			entry = (GpuivfList) PageGetItem(page, iid);
			if (VARSIZE(&entry->centroid) != CODEVEC_SIZE(centroidDims) ||
				entry->centroid.dim != centroidDims)
				CORRUPT(st, "List %d's centroid has %d dimensions, not %d.",
						found, entry->centroid.dim, centroidDims);
			for (int i = 0; i < centroidDims; i++)
				if (isnan(entry->centroid.x[i]))
					CORRUPT(st, "List %d's centroid has NaN at element %d.", found, i + 1);
			starts[found] = entry->startPage;
			inserts[found] = entry->insertPage;
			found++;
		}
		listPages++;
		blkno = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
	if (found != meta->lists || listPages != meta->listPages)
		CORRUPT(st, "The list pages hold %d lists on %u pages; the metapage says %d lists on %u pages.",
				found, listPages, meta->lists, meta->listPages);
	*insertPages = inserts;
	return starts;
}

/* Add a live index tuple to the entries */
static void
AddEntry(CheckState *st, ItemPointer tid, uint64 hash)
{
	if (st->nentries == st->maxentries)
	{
		st->maxentries *= 2;
		st->entries = repalloc_huge(st->entries, sizeof(CheckEntry) * st->maxentries);
	}
	st->entries[st->nentries].tid = *tid;
	st->entries[st->nentries].seen = false;
	st->entries[st->nentries].hash = hash;
	st->nentries++;
}

/* Check one live index tuple at (blkno, off) of list */
static void
CheckTuple(CheckState *st, int list, BlockNumber blkno, OffsetNumber off, ItemId iid, IndexTuple itup)
{
	TupleDesc	tupdesc = RelationGetDescr(st->index);
	Datum		value;
	bool		isnull;
	Codevec    *v;
	int			elemSize;

	if (ItemIdGetLength(iid) < sizeof(IndexTupleData) ||
		IndexTupleSize(itup) > ItemIdGetLength(iid))
		CORRUPT(st, "The tuple at block %u, offset %u has size %zu in an item of %u bytes.",
				blkno, off, IndexTupleSize(itup), ItemIdGetLength(iid));
	if (!ItemPointerIsValid(&itup->t_tid) ||
		ItemPointerGetOffsetNumberNoCheck(&itup->t_tid) > MaxHeapTuplesPerPage)
		CORRUPT(st, "The tuple at block %u, offset %u has an invalid heap TID (%u,%u).",
				blkno, off, ItemPointerGetBlockNumberNoCheck(&itup->t_tid),
				ItemPointerGetOffsetNumberNoCheck(&itup->t_tid));
	value = index_getattr(itup, 1, tupdesc, &isnull);
	if (isnull)
		CORRUPT(st, "The tuple at block %u, offset %u (heap TID (%u,%u)) holds NULL, which gpuivf never indexes.",
				blkno, off, ItemPointerGetBlockNumber(&itup->t_tid),
				ItemPointerGetOffsetNumber(&itup->t_tid));
	v = (Codevec *) PG_DETOAST_DATUM(value);
	if (v->dim != st->meta.dims)
		CORRUPT(st, "The tuple at block %u, offset %u (heap TID (%u,%u)) has %d dimensions, not %d.",
				blkno, off, ItemPointerGetBlockNumber(&itup->t_tid),
				ItemPointerGetOffsetNumber(&itup->t_tid), v->dim, st->meta.dims);
	elemSize = VecElemSize(v);	/* XX002 itself for a payload of neither width */
	VecElemToFloats(v, st->buf);
	for (int i = 0; i < v->dim; i++)
		if (!isfinite(st->buf[i]))
			CORRUPT(st, "The tuple at block %u, offset %u (heap TID (%u,%u)) has a non-finite element %d.",
					blkno, off, ItemPointerGetBlockNumber(&itup->t_tid),
					ItemPointerGetOffsetNumber(&itup->t_tid), i + 1);
	AddEntry(st, &itup->t_tid, VectorHash(v, elemSize));
	if ((Pointer) v != DatumGetPointer(value))
		pfree(v);
}

/* Pass 2: walk every list's chain and collect its live tuples */
static void
CheckChains(CheckState *st, const BlockNumber *starts, const BlockNumber *inserts)
{
	BlockNumber firstData = GPUIVF_HEAD_BLKNO + st->meta.listPages;

	for (int list = 0; list < st->meta.lists; list++)
	{
		BlockNumber blkno = starts[list];
		bool		insertSeen = false;

		if (!BlockNumberIsValid(inserts[list]) || inserts[list] < firstData ||
			inserts[list] >= st->nblocks)
			CORRUPT(st, "List %d's insert page %u is not a data page (blocks %u to %u).",
					list, inserts[list], firstData, st->nblocks - 1);
		if (!BlockNumberIsValid(blkno))
			CORRUPT(st, "List %d has no first data page.", list);
		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			OffsetNumber maxoff;

			CHECK_FOR_INTERRUPTS();
			if (blkno < firstData || blkno >= st->nblocks)
				CORRUPT(st, "List %d's chain reaches block %u, not a data page (blocks %u to %u).",
						list, blkno, firstData, st->nblocks - 1);
			if (st->visited[blkno])
				CORRUPT(st, "List %d's chain reaches block %u a second time (a cycle, or a page in two chains).",
						list, blkno);
			st->visited[blkno] = true;
			st->dataPages++;
			if (blkno == inserts[list])
				insertSeen = true;

			buf = ReadBuffer(st->index, blkno);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			if (PageIsNew(page) || GpuivfPageGetOpaque(page)->page_id != GPUIVF_PAGE_ID)
				CORRUPT(st, "Block %u of list %d's chain is not a gpuivf data page.", blkno, list);
			maxoff = PageGetMaxOffsetNumber(page);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		iid = PageGetItemId(page, off);

				if (ItemIdIsDead(iid))
				{
					st->deadTuples++;
					continue;
				}
				if (!ItemIdIsUsed(iid))
					continue;
				if (!ItemIdIsNormal(iid) ||
					ItemIdGetOffset(iid) + ItemIdGetLength(iid) > BLCKSZ)
					CORRUPT(st, "The line pointer at block %u, offset %u points outside the page.",
							blkno, off);
				CheckTuple(st, list, blkno, off, iid, (IndexTuple) PageGetItem(page, iid));
			}
			blkno = GpuivfPageGetOpaque(page)->nextblkno;
			UnlockReleaseBuffer(buf);
		}
		if (!insertSeen)
			CORRUPT(st, "List %d's insert page %u is not on its chain.", list, inserts[list]);
	}

	/* pages in no chain: only never-initialised ones (an unused extension) */
	for (BlockNumber b = firstData; b < st->nblocks; b++)
	{
		Buffer		buf;
		bool		isnew;

		if (st->visited[b])
			continue;
		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(st->index, b);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		isnew = PageIsNew(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (!isnew)
			CORRUPT(st, "Data page %u is in no list's chain.", b);
	}
}

/* qsort / bsearch order of entries: heap TID */
static int
EntryCompare(const void *a, const void *b)
{
	return ItemPointerCompare(&((CheckEntry *) a)->tid, &((CheckEntry *) b)->tid);
}

/* Pass 3 callback: one heap row visible to the snapshot */
static void
HeapRowCallback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
				bool tupleIsAlive, void *state)
{
	CheckState *st = (CheckState *) state;
	CheckEntry	key;
	CheckEntry *e;
	Codevec    *v;

	if (isnull[0])
		return;
	st->heapRows++;
	key.tid = *tid;
	e = bsearch(&key, st->entries, st->nentries, sizeof(CheckEntry), EntryCompare);
	if (e == NULL)
		CORRUPT(st, "Heap row (%u,%u) of \"%s\" is missing from the index.",
				ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid),
				get_rel_name(IndexGetRelation(RelationGetRelid(index), false)));
	v = (Codevec *) PG_DETOAST_DATUM(values[0]);
	if (v->dim != st->meta.dims || VectorHash(v, VecElemSize(v)) != e->hash)
		CORRUPT(st, "The index tuple of heap row (%u,%u) holds another vector than the row.",
				ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
	if (e->seen)
		CORRUPT(st, "Heap row (%u,%u) was reported twice by the table scan.",
				ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
	e->seen = true;
}

/*
 * codevec_index_check(index regclass, OUT lists int, OUT data_pages bigint,
 * OUT index_tuples bigint, OUT dead_tuples bigint, OUT heap_rows bigint):
 * verify a gpuivf index (file comment); one summary row when it is sound,
 * ERROR XX002 naming the first fault otherwise.  index_tuples counts the
 * live tuples (rows not yet vacuumed included), dead_tuples those VACUUM
 * marked LP_DEAD, heap_rows the visible rows with a non-NULL vector.
 * Errors: 42809 for a relation that is not a gpuivf index, 0A000 for an
 * invalid index (a failed CREATE INDEX CONCURRENTLY) or another session's
 * temporary one, 42501 without SELECT on the table.
 */
Datum
codevec_index_check(PG_FUNCTION_ARGS)
{
	Oid			indexOid = PG_GETARG_OID(0);
	Oid			heapOid;
	Relation	heap;
	Relation	index;
	CheckState	st;
	BlockNumber *starts;
	BlockNumber *inserts;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};
	MemoryContext ctx;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "codevec_index_check must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	heapOid = IndexGetRelation(indexOid, true);
	if (!OidIsValid(heapOid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", get_rel_name(indexOid) ? get_rel_name(indexOid) : "?")));
	RequireIndexTableSelect(indexOid);

	/* the table first, then the index, as CREATE INDEX and amcheck lock */
	heap = table_open(heapOid, ShareLock);
	index = index_open(indexOid, AccessShareLock);
	if (index->rd_rel->relam != get_index_am_oid("gpuivf", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("index \"%s\" is not a gpuivf index", RelationGetRelationName(index))));
	if (index->rd_rel->relkind != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("index \"%s\" is a partitioned index", RelationGetRelationName(index)),
				 errhint("Check the index of each partition.")));
	if (RELATION_IS_OTHER_TEMP(index))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check temporary index \"%s\" of another session",
						RelationGetRelationName(index))));
	if (!index->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check index \"%s\"", RelationGetRelationName(index)),
				 errdetail("The index is not valid (a CREATE INDEX CONCURRENTLY that did not finish).")));

	ctx = AllocSetContextCreate(CurrentMemoryContext, "codevec_index_check", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);
	memset(&st, 0, sizeof(st));
	st.index = index;
	st.nblocks = RelationGetNumberOfBlocks(index);
	if (st.nblocks < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("gpuivf index \"%s\" is corrupted", RelationGetRelationName(index)),
				 errdetail("It has %u blocks; a metapage and a list page at least are needed.",
						   st.nblocks)));
	st.visited = palloc_extended(st.nblocks, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	/* 1 and 2: the index alone */
	starts = CheckMetaAndLists(&st, &inserts);
	st.buf = palloc(sizeof(float) * st.meta.dims);
	st.maxentries = 1024;
	st.entries = palloc_extended(sizeof(CheckEntry) * st.maxentries, MCXT_ALLOC_HUGE);
	CheckChains(&st, starts, inserts);
	qsort(st.entries, st.nentries, sizeof(CheckEntry), EntryCompare);
	for (int64 i = 1; i < st.nentries; i++)
		if (ItemPointerEquals(&st.entries[i - 1].tid, &st.entries[i].tid))
			CORRUPT(&st, "Heap TID (%u,%u) is in the index twice.",
					ItemPointerGetBlockNumber(&st.entries[i].tid),
					ItemPointerGetOffsetNumber(&st.entries[i].tid));

	/*
	 * 3: the rows a fresh MVCC snapshot sees (ShareLock: no write is in
	 * progress), each in the index with the same vector; the scan computes
	 * index expressions and reports HOT chains by their root TID, as the
	 * index stores them (amcheck's heapallindexed does the same)
	 */
	{
		IndexInfo  *indexInfo = BuildIndexInfo(index);
		Snapshot	snapshot = RegisterSnapshot(GetTransactionSnapshot());
		TableScanDesc scan = table_beginscan_strat(heap, snapshot, 0, NULL, true, false);

		indexInfo->ii_Concurrent = true;	/* the scan's snapshot, not SnapshotAny */
		table_index_build_scan(heap, index, indexInfo, true, false, HeapRowCallback, &st, scan);
		UnregisterSnapshot(snapshot);
	}

	values[0] = Int32GetDatum(st.meta.lists);
	values[1] = Int64GetDatum(st.dataPages);
	values[2] = Int64GetDatum(st.nentries);
	values[3] = Int64GetDatum(st.deadTuples);
	values[4] = Int64GetDatum(st.heapRows);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);

	index_close(index, AccessShareLock);
	table_close(heap, ShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
