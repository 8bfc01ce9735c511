/*
 * gpuivfvacuum.c
 *	  VACUUM of a gpuivf index: remove the index tuples of dead heap rows.
 *
 * ambulkdelete walks every list's chain; on each page it asks the callback
 * about every heap TID and deletes the dead ones with PageIndexMultiDelete
 * under GenericXLog (exclusive lock, one page at a time, so scans and
 * inserts go on around it); on a chain's last page it only marks them
 * LP_DEAD (VisitDataPages says why). Pages are not unlinked: an emptied
 * page stays in its chain and refills with inserts. Then the GPU service's
 * copy of the index is told which rows went (it masks them). amvacuumcleanup
 * counts what is left.
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "gpuivf.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"

/* what one VACUUM removed, for the GPU service's copy (MASK) */
#define MASK_MAX_TIDS	65536	/* more: the copy is loaded again instead */
#define MASK_MAX_BLOCKS	4096

typedef struct RemovedRows
{
	ItemPointerData *tids;		/* heap TIDs removed, or NULL past the cap */
	int64		ntids;
	BlockNumber *blocks;		/* pages compacted (offsets moved), or NULL past the cap */
	int			nblocks;
} RemovedRows;

/*
 * Visit every data page of every list; with a callback, remove the tuples
 * of dead heap rows. A chain's last page (where inserts append, and where
 * a GPU copy's delta tier resumes reading) keeps its line pointers in
 * place: its removed tuples are only marked LP_DEAD, which every reader
 * skips, so offsets after them do not move; the first VACUUM that finds
 * the page no longer last deletes them for good. Other pages are compacted
 * (PageIndexMultiDelete) and listed in removed->blocks.
 */
static void
VisitDataPages(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state, RemovedRows *removed)
{
	Relation	index = info->index;
	GpuivfMetaPageData meta;
	BlockNumber *starts;
	BufferAccessStrategy bas = info->strategy;

	GpuivfReadMeta(index, &meta);
	starts = palloc(sizeof(BlockNumber) * meta.lists);
	pfree(GpuivfLoadCentroids(index, &meta, starts, NULL));

	stats->num_index_tuples = 0;
	for (int list = 0; list < meta.lists; list++)
	{
		BlockNumber blkno = starts[list];

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			OffsetNumber maxoff;
			OffsetNumber deletable[MaxOffsetNumber];
			int			ndeletable = 0;
			bool		last;

			CodevecVacuumDelayPoint();
			buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
			LockBuffer(buf, callback ? BUFFER_LOCK_EXCLUSIVE : BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			maxoff = PageGetMaxOffsetNumber(page);
			last = !BlockNumberIsValid(GpuivfPageGetOpaque(page)->nextblkno);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		iid = PageGetItemId(page, off);
				IndexTuple	itup = (IndexTuple) PageGetItem(page, iid);

				if (ItemIdIsDead(iid))
				{
					/* removed by an earlier VACUUM while its page was last */
					if (callback && !last)
						deletable[ndeletable++] = off;
					continue;
				}
				if (callback && callback(&itup->t_tid, callback_state))
				{
					deletable[ndeletable++] = off;
					stats->tuples_removed++;
					if (removed->tids != NULL)
					{
						if (removed->ntids < MASK_MAX_TIDS)
							removed->tids[removed->ntids++] = itup->t_tid;
						else
						{
							pfree(removed->tids);
							removed->tids = NULL;
						}
					}
				}
				else
					stats->num_index_tuples++;
			}
			if (ndeletable > 0)
			{
				GenericXLogState *state = GenericXLogStart(index);
				Page		wpage = GenericXLogRegisterBuffer(state, buf, 0);

				if (last)
				{
					for (int i = 0; i < ndeletable; i++)
						ItemIdMarkDead(PageGetItemId(wpage, deletable[i]));
				}
				else
				{
					PageIndexMultiDelete(wpage, deletable, ndeletable);
					if (removed->blocks != NULL)
					{
						if (removed->nblocks < MASK_MAX_BLOCKS)
							removed->blocks[removed->nblocks++] = blkno;
						else
						{
							pfree(removed->blocks);
							removed->blocks = NULL;
						}
					}
				}
				GenericXLogFinish(state);
			}
			blkno = GpuivfPageGetOpaque(page)->nextblkno;
			UnlockReleaseBuffer(buf);
		}
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);

	/*
	 * vectors went away or pages were compacted: copies elsewhere (GPU) are
	 * out of date; the GPU service's copy, told which rows went and which
	 * pages moved (GpuivfGpuMask), masks them and moves to the new version
	 * instead of loading again
	 */
	if (stats->tuples_removed > 0 || (removed->blocks == NULL && callback) || removed->nblocks > 0)
	{
		Buffer		metaBuf = ReadBuffer(index, GPUIVF_METAPAGE_BLKNO);
		GenericXLogState *state;
		GpuivfMetaPageData old;

		LockBuffer(metaBuf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		old = *GpuivfPageGetMeta(BufferGetPage(metaBuf));
		GpuivfPageGetMeta(GenericXLogRegisterBuffer(state, metaBuf, 0))->deleteCount++;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metaBuf);
		GpuivfGpuMask(index, &old, removed->tids, removed->tids ? removed->ntids : -1,
					  removed->blocks, removed->blocks ? removed->nblocks : -1);
	}
}

IndexBulkDeleteResult *
gpuivfbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				 IndexBulkDeleteCallback callback, void *callback_state)
{
	RemovedRows removed;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	removed.tids = palloc_extended(sizeof(ItemPointerData) * MASK_MAX_TIDS, MCXT_ALLOC_HUGE);
	removed.ntids = 0;
	removed.blocks = palloc(sizeof(BlockNumber) * MASK_MAX_BLOCKS);
	removed.nblocks = 0;
	VisitDataPages(info, stats, callback, callback_state, &removed);
	if (removed.tids)
		pfree(removed.tids);
	if (removed.blocks)
		pfree(removed.blocks);
	return stats;
}

IndexBulkDeleteResult *
gpuivfvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	/* no bulkdelete ran (nothing dead): count the tuples now */
	if (stats == NULL)
	{
		RemovedRows none = {0};

		stats = palloc0(sizeof(IndexBulkDeleteResult));
		VisitDataPages(info, stats, NULL, NULL, &none);
	}
	return stats;
}
