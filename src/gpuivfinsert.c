/*
 * gpuivfinsert.c
 *	  Insert one vector into a gpuivf index.
 *
 * The vector goes to the insert page (the last page) of its list: the only
 * list when lists = 1, else the list of its nearest centroid. The page is
 * changed under GenericXLog, so the insert is WAL-logged and crash safe.
 * When the page is full a new page is added to the index and linked from
 * the old one, and the list entry's insert page moves to it; the list page
 * is exclusively locked meanwhile, so two backends cannot both extend the
 * same list (lock order: list page, then data pages, as in pgvector's
 * ivfflat).
 */
#include "postgres.h"

#include "gpuivf.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "vecelem.h"

/* Find the list page and offset holding list number list */
static void
FindListEntry(Relation index, int list, BlockNumber *blkno, OffsetNumber *offno)
{
	BlockNumber b = GPUIVF_HEAD_BLKNO;
	int			first = 0;			/* list number of the page's first entry */

	while (BlockNumberIsValid(b))
	{
		Buffer		buf = ReadBuffer(index, b);
		Page		page;
		int			n;
		BlockNumber next;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		n = PageGetMaxOffsetNumber(page);
		next = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
		if (list < first + n)
		{
			*blkno = b;
			*offno = FirstOffsetNumber + (list - first);
			return;
		}
		first += n;
		b = next;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("gpuivf index \"%s\" has no list %d", RelationGetRelationName(index), list)));
}

/*
 * Bump the metapage's insert counter inside the caller's GenericXLog record,
 * so a copy of the index on the GPU knows it lacks rows (flat: they go to
 * its delta tier; IVF: it is loaded again). Inserts thereby take the
 * metapage's lock in turn, briefly. Lock order: list page, data page,
 * metapage.
 */
static Buffer
BumpChangeCount(Relation index, GenericXLogState *state)
{
	Buffer		metaBuf;
	Page		metaPage;

	metaBuf = ReadBuffer(index, GPUIVF_METAPAGE_BLKNO);
	LockBuffer(metaBuf, BUFFER_LOCK_EXCLUSIVE);
	metaPage = GenericXLogRegisterBuffer(state, metaBuf, 0);
	GpuivfPageGetMeta(metaPage)->insertCount++;
	return metaBuf;
}

/* Add itup to list, extending its chain when the insert page is full */
static void
InsertTuple(Relation index, IndexTuple itup, int list)
{
	Size		sz = MAXALIGN(IndexTupleSize(itup));
	BlockNumber listBlk;
	OffsetNumber listOff;
	Buffer		listBuf;
	GpuivfList	entry;
	BlockNumber insertPage;

	FindListEntry(index, list, &listBlk, &listOff);
	listBuf = ReadBuffer(index, listBlk);
	LockBuffer(listBuf, BUFFER_LOCK_EXCLUSIVE);
	entry = (GpuivfList) PageGetItem(BufferGetPage(listBuf), PageGetItemId(BufferGetPage(listBuf), listOff));
	insertPage = entry->insertPage;

	for (;;)
	{
		Buffer		buf = ReadBuffer(index, insertPage);
		GenericXLogState *state;
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);

		if (PageGetFreeSpace(page) >= sz)
		{
			Buffer		metaBuf;

			if (PageAddItem(page, (Item) itup, sz, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
				elog(ERROR, "failed to add index item to \"%s\"", RelationGetRelationName(index));
			metaBuf = BumpChangeCount(index, state);
			GenericXLogFinish(state);
			UnlockReleaseBuffer(metaBuf);
			UnlockReleaseBuffer(buf);
			break;
		}

		/* a later page already exists (a crash after linking): follow it */
		if (BlockNumberIsValid(GpuivfPageGetOpaque(page)->nextblkno))
		{
			insertPage = GpuivfPageGetOpaque(page)->nextblkno;
			GenericXLogAbort(state);
			UnlockReleaseBuffer(buf);
			continue;
		}

		/* full: add a page, link it, and make it the list's insert page */
		{
			Buffer		newbuf = GpuivfNewBuffer(index, MAIN_FORKNUM);
			Page		newpage = GenericXLogRegisterBuffer(state, newbuf, GENERIC_XLOG_FULL_IMAGE);
			Page		listPage = GenericXLogRegisterBuffer(state, listBuf, 0);
			GpuivfList	e;
			Buffer		metaBuf;

			GpuivfInitPage(newpage);
			GpuivfPageGetOpaque(page)->nextblkno = BufferGetBlockNumber(newbuf);
			if (PageAddItem(newpage, (Item) itup, sz, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
				elog(ERROR, "failed to add index item to \"%s\"", RelationGetRelationName(index));
			e = (GpuivfList) PageGetItem(listPage, PageGetItemId(listPage, listOff));
			e->insertPage = BufferGetBlockNumber(newbuf);
			metaBuf = BumpChangeCount(index, state);
			GenericXLogFinish(state);
			UnlockReleaseBuffer(metaBuf);
			UnlockReleaseBuffer(newbuf);
			UnlockReleaseBuffer(buf);
			break;
		}
	}
	UnlockReleaseBuffer(listBuf);
}

/*
 * gpuivfinsert: aminsert; NULL vectors are not indexed. Raises 22000 when
 * the vector's dimensions differ from the index's.
 */
bool
gpuivfinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			 Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			 IndexInfo *indexInfo)
{
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf insert",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	GpuivfMetaPageData meta;
	Codevec    *v;
	IndexTuple	itup;
	Datum		d;
	bool		n = false;
	int			list = 0;

	if (isnull[0])
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(ctx);
		return false;
	}
	v = DatumGetCodevec(values[0]);
	GpuivfReadMeta(index, &meta);
	if (v->dim != meta.dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", meta.dims, v->dim)));
	if (meta.lists > 1)
	{
		const BlockNumber *starts;
		const float *centroids = GpuivfCachedCentroids(index, &meta, &starts);
		float	   *x = palloc(sizeof(float) * meta.dims);

		VecElemToFloats(v, x);	/* halfvec: exact */
		list = GpuivfNearestList((GpuivfMetric) meta.metric, centroids, meta.lists, meta.dims, x);
	}
	d = PointerGetDatum(v);
	itup = index_form_tuple(RelationGetDescr(index), &d, &n);
	itup->t_tid = *heap_tid;
	InsertTuple(index, itup, list);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}
