/*
 * gpuivfvacuum.c
 *	  VACUUM of a gpuivf index: remove the index tuples of dead heap rows.
 *
 * ambulkdelete walks every list's chain; on each page it asks the callback
 * about every heap TID and deletes the dead ones with PageIndexMultiDelete
 * under GenericXLog (exclusive lock, one page at a time, so scans and
 * inserts go on around it). Pages are not unlinked: an emptied page stays
 * in its chain and refills with inserts. amvacuumcleanup counts what is left.
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "gpuivf.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"

/* Visit every data page of every list; delete dead tuples if callback */
static void
VisitDataPages(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
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

			vacuum_delay_point();
			buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
			LockBuffer(buf, callback ? BUFFER_LOCK_EXCLUSIVE : BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			maxoff = PageGetMaxOffsetNumber(page);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				IndexTuple	itup = (IndexTuple) PageGetItem(page, PageGetItemId(page, off));

				if (callback && callback(&itup->t_tid, callback_state))
				{
					deletable[ndeletable++] = off;
					stats->tuples_removed++;
				}
				else
					stats->num_index_tuples++;
			}
			if (ndeletable > 0)
			{
				GenericXLogState *state = GenericXLogStart(index);
				Page		wpage = GenericXLogRegisterBuffer(state, buf, 0);

				PageIndexMultiDelete(wpage, deletable, ndeletable);
				GenericXLogFinish(state);
			}
			blkno = GpuivfPageGetOpaque(page)->nextblkno;
			UnlockReleaseBuffer(buf);
		}
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);

	/* vectors went away: copies elsewhere (GPU) are out of date */
	if (stats->tuples_removed > 0)
	{
		Buffer		metaBuf = ReadBuffer(index, GPUIVF_METAPAGE_BLKNO);
		GenericXLogState *state;

		LockBuffer(metaBuf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		GpuivfPageGetMeta(GenericXLogRegisterBuffer(state, metaBuf, 0))->changeCount++;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metaBuf);
	}
}

IndexBulkDeleteResult *
gpuivfbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				 IndexBulkDeleteCallback callback, void *callback_state)
{
	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	VisitDataPages(info, stats, callback, callback_state);
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
		stats = palloc0(sizeof(IndexBulkDeleteResult));
		VisitDataPages(info, stats, NULL, NULL);
	}
	return stats;
}
