/*
 * gpuivfgpu.c
 *	  The GPU path of gpuivf scans: exact k-NN of a flat index (lists = 1)
 *	  answered by the GPU service from a device-resident copy.
 *
 * The copy. The service keeps, per index, the vectors on the device and
 * the heap TID of each row (gpuservice.c). It is current while the index's
 * relfilenode (REINDEX, TRUNCATE) and the metapage's changeCount (bumped in
 * the same WAL record as every insert and by VACUUM deletions) are those
 * the backend reads at scan start; otherwise the service answers "not
 * loaded" and the backend streams the index's vectors to it in chunks of
 * UPLOAD requests, then asks again.
 *
 * Exactness. The GPU's distances are computed in another summation order
 * than the CPU operator's (cuda/knn.h documents it), so they can differ in
 * the last bits. The scan therefore reports, for each candidate, a lower
 * bound of the operator's exact value: the GPU distance less the worst-case
 * difference of two float32 sums of n terms in any order (Higham,
 * "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 4.2:
 * |error| <= gamma_n * sum |terms|, gamma_n ~ n u), and sets
 * xs_recheckorderby. The executor recomputes the ORDER BY operator on each
 * row and releases rows from its reorder queue in exact order, the
 * mechanism core's GiST uses for lossy distances. Candidates come in
 * growing batches (64, 256, 1024); past the largest batch the scan goes on
 * on the CPU with exact distances, skipping rows already returned.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

int			gpuivf_gpu_min_rows = 10000;

/* Rows per UPLOAD chunk: about 64 MB of vectors */
#define UPLOAD_CHUNK_BYTES	(64 * 1024 * 1024)

bool
GpuivfGpuRoute(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;

	if (so->lists != 1 || so->query == (Datum) 0 || codevec_device == CODEVEC_DEVICE_CPU)
		return false;
	/* cuda: the GPU or an error saying why not */
	if (codevec_device == CODEVEC_DEVICE_CUDA)
		return CodevecGpuServiceUsable();
	/*
	 * auto: small indexes stay on the CPU, where they are faster, and a
	 * server without a ready GPU service scans on the CPU silently (the
	 * index works the same; codevec_gpu_status() says why).
	 */
	if (gpuivf_gpu_min_rows < 0 || index->rd_rel->reltuples < gpuivf_gpu_min_rows)
		return false;
	return CodevecGpuServiceReady();
}

/* Stream every vector of the index to the service; its status */
static int
UploadIndex(IndexScanDesc scan, const GpuIndexKey *key, int dims)
{
	Relation	index = scan->indexRelation;
	TupleDesc	tupdesc = RelationGetDescr(index);
	GpuivfMetaPageData meta;
	BlockNumber start;
	int64		total = 0,
				sent = 0;
	int64		chunkRows = Max(1, UPLOAD_CHUNK_BYTES / (int64) (sizeof(float) * dims));
	dsm_segment *seg;
	GpuUploadRequest *r;
	int			status = 0;
	int64		n = 0;
	ItemPointerData *tids;
	float	   *vecs;

	GpuivfReadMeta(index, &meta);
	pfree(GpuivfLoadCentroids(index, &meta, &start, NULL));

	/* pass 1: count the rows (line pointers; VACUUM compacts pages) */
	for (BlockNumber b = start; BlockNumberIsValid(b);)
	{
		Buffer		buf = ReadBuffer(index, b);
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		total += PageGetMaxOffsetNumber(page);
		b = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
	chunkRows = Min(chunkRows, Max(total, 1));
	seg = dsm_create(GpuUploadRequestSize(chunkRows, dims), 0);
	r = (GpuUploadRequest *) dsm_segment_address(seg);
	tids = palloc(sizeof(ItemPointerData) * chunkRows);
	vecs = palloc_extended(sizeof(float) * (Size) chunkRows * dims, MCXT_ALLOC_HUGE);

	/* pass 2: fill chunks and send them; the first chunk sizes the copy */
	for (BlockNumber b = start; BlockNumberIsValid(b) && status == 0;)
	{
		Buffer		buf = ReadBuffer(index, b);
		Page		page;
		OffsetNumber maxoff;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff && sent + n < total; off++)
		{
			IndexTuple	itup = (IndexTuple) PageGetItem(page, PageGetItemId(page, off));
			bool		isnull;
			Codevec    *v = DatumGetCodevec(index_getattr(itup, 1, tupdesc, &isnull));

			memcpy(vecs + (Size) n * dims, v->x, sizeof(float) * dims);
			tids[n++] = itup->t_tid;
		}
		b = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);

		if (n == chunkRows || sent + n == total || !BlockNumberIsValid(b))
		{
			if (sent + n < total && !BlockNumberIsValid(b))
			{
				/* rows vanished between the passes (VACUUM): give up */
				status = GPU_STATUS_NOT_LOADED;
				break;
			}
			memset(r, 0, sizeof(*r));
			r->hdr.kind = GPU_REQUEST_UPLOAD;
			r->key = *key;
			r->dims = dims;
			r->first = sent;
			r->n = n;
			r->total = total;
			memcpy(GpuUploadVectors(r), vecs, sizeof(float) * (Size) n * dims);
			memcpy(GpuUploadTids(r), tids, sizeof(ItemPointerData) * n);
			status = CodevecGpuCall(seg);
			sent += n;
			n = 0;
			CHECK_FOR_INTERRUPTS();
		}
	}
	pfree(tids);
	pfree(vecs);
	if (status == 0 && sent != total)
		status = GPU_STATUS_NOT_LOADED;
	dsm_detach(seg);
	return status;
}

/* Keep rows returned by the GPU path in a hash table of TIDs */
static void
RememberReturned(GpuivfScanOpaque so, ItemPointer tid)
{
	bool		found;

	if (so->returned == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ItemPointerData);
		ctl.entrysize = sizeof(ItemPointerData);
		ctl.hcxt = so->tmpCtx;
		so->returned = hash_create("gpuivf returned TIDs", 1024, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	(void) hash_search(so->returned, tid, HASH_ENTER, &found);
}

bool
GpuivfGpuReturned(IndexScanDesc scan, ItemPointer tid)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	bool		found = false;

	if (so->returned != NULL)
		(void) hash_search(so->returned, tid, HASH_FIND, &found);
	return found;
}

bool
GpuivfGpuFetch(IndexScanDesc scan, int k)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	Codevec    *q = DatumGetCodevec(so->query);
	GpuivfMetaPageData meta;
	GpuIndexKey key;
	dsm_segment *seg;
	GpuKnnRequest *r;
	int			status;
	MemoryContext old;

	GpuivfReadMeta(index, &meta);
	if (q->dim != meta.dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different codevec dimensions %d and %d in index scan", meta.dims, q->dim)));
	key.dbid = MyDatabaseId;
	key.indexid = RelationGetRelid(index);
	key.relfilenode = index->rd_node.relNode;
	key.changeCount = meta.changeCount;

	seg = dsm_create(GpuKnnRequestSize(1, meta.dims, k), 0);
	r = (GpuKnnRequest *) dsm_segment_address(seg);
	for (int attempt = 0;; attempt++)
	{
		memset(r, 0, sizeof(*r));
		r->hdr.kind = GPU_REQUEST_KNN;
		r->key = key;
		r->metric = (int32) GpuivfGetMetric(index);	/* same numbering as cuda/knn.h */
		r->dims = meta.dims;
		r->nq = 1;
		r->k = k;
		memcpy(GpuKnnQueries(r), q->x, sizeof(float) * meta.dims);
		status = CodevecGpuCall(seg);
		if (status != GPU_STATUS_NOT_LOADED || attempt == 1)
			break;
		status = UploadIndex(scan, &key, meta.dims);
		if (status != 0)
			break;
	}
	if (status != 0)
	{
		ereport(DEBUG1,
				(errmsg("gpuivf: GPU path unavailable for \"%s\" (status %d: %s): scanning on the CPU",
						RelationGetRelationName(index), status, r->hdr.errmsg)));
		dsm_detach(seg);
		return false;
	}

	old = MemoryContextSwitchTo(so->tmpCtx);
	if (so->gpuDist)
		pfree(so->gpuDist);
	if (so->gpuTids)
		pfree(so->gpuTids);
	so->gpuDist = palloc(sizeof(float) * k);
	so->gpuTids = palloc(sizeof(ItemPointerData) * k);
	MemoryContextSwitchTo(old);
	so->gpuN = 0;
	for (int i = 0; i < k; i++)
		if (ItemPointerIsValid(&GpuKnnTids(r)[i]))
		{
			so->gpuDist[so->gpuN] = GpuKnnDistances(r)[i];
			so->gpuTids[so->gpuN] = GpuKnnTids(r)[i];
			so->gpuN++;
		}
	so->gpuK = k;
	so->gpuPos = 0;

	/* worst-case difference of two float32 sums of dims terms (see above) */
	{
		double		u = ldexp(1.0, -24);
		double		gamma = 2.0 * (meta.dims + 4) * u;
		double		qnorm = 0;

		for (int j = 0; j < meta.dims; j++)
			qnorm += (double) q->x[j] * q->x[j];
		qnorm = sqrt(qnorm);
		switch ((GpuivfMetric) r->metric)
		{
			case GPUIVF_METRIC_L2:
				so->gpuMarginRel = gamma;
				so->gpuMarginAbs = 0;
				break;
			case GPUIVF_METRIC_IP:
				so->gpuMarginRel = 0;
				so->gpuMarginAbs = gamma * qnorm * r->maxnorm + 1e-30;
				break;
			case GPUIVF_METRIC_COSINE:
				so->gpuMarginRel = 0;
				so->gpuMarginAbs = 2.0 * gamma + 4 * u;
				break;
		}
	}
	dsm_detach(seg);
	return true;
}

bool
GpuivfGpuNext(IndexScanDesc scan, ItemPointer tid, double *lowerBound)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	while (so->gpuPos < so->gpuN)
	{
		int			i = so->gpuPos++;
		double		d = so->gpuDist[i];

		if (GpuivfGpuReturned(scan, &so->gpuTids[i]))
			continue;			/* returned from an earlier, smaller batch */
		RememberReturned(so, &so->gpuTids[i]);
		*tid = so->gpuTids[i];
		*lowerBound = isnan(d) ? d : d * (1.0 - so->gpuMarginRel) - so->gpuMarginAbs;
		return true;
	}
	return false;
}
