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
 * the last bits. The service therefore returns the candidates' vectors too,
 * and the scan recomputes each candidate's distance with the opclass's own
 * function, so the values are bit-identical to a sequential scan's. It may
 * return a candidate only when no other row can come before it: every row
 * outside the candidates has a GPU distance at least the last candidate's,
 * hence an exact distance at least that less the worst-case difference of
 * two float32 sums of n terms in any order (Higham, "Accuracy and Stability
 * of Numerical Algorithms", 2nd ed., sec. 4.2: |error| <= gamma_n *
 * sum |terms|, gamma_n ~ n u). Candidates below that bound go out in
 * (exact distance, heap TID) order, exactly like the CPU path; for the rest
 * the scan asks for a larger batch (64, 256, 1024 candidates), and past the
 * largest it goes on on the CPU, skipping rows already returned.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "utils/float.h"
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

/* Send rows [first, first + n) of a copy of total rows; the status */
static int
SendChunk(dsm_segment *seg, const GpuIndexKey *key, int dims, int64 first, int64 n,
		  int64 total, const float *vecs, const ItemPointerData *tids)
{
	GpuUploadRequest *r = (GpuUploadRequest *) dsm_segment_address(seg);

	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_UPLOAD;
	r->key = *key;
	r->dims = dims;
	r->first = first;
	r->n = n;
	r->total = total;
	memcpy(GpuUploadVectors(r), vecs, sizeof(float) * (Size) n * dims);
	memcpy(GpuUploadTids(r), tids, sizeof(ItemPointerData) * n);
	return CodevecGpuCall(seg);
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
	/* room for a chunk plus one page, so a page is copied whole under its lock */
	tids = palloc(sizeof(ItemPointerData) * (chunkRows + MaxIndexTuplesPerPage));
	vecs = palloc_extended(sizeof(float) * (Size) (chunkRows + MaxIndexTuplesPerPage) * dims,
						   MCXT_ALLOC_HUGE);

	/*
	 * pass 2: copy each page's rows under its share lock, then, with no
	 * buffer lock held, send every full chunk (the first sizes the copy)
	 */
	for (BlockNumber b = start; BlockNumberIsValid(b) && status == 0 && sent < total;)
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

		while (status == 0 && (n >= chunkRows || (n > 0 && sent + n == total)))
		{
			int64		c = Min(n, chunkRows);

			status = SendChunk(seg, key, dims, sent, c, total, vecs, tids);
			sent += c;
			n -= c;
			memmove(vecs, vecs + (Size) c * dims, sizeof(float) * (Size) n * dims);
			memmove(tids, tids + c, sizeof(ItemPointerData) * n);
		}
		CHECK_FOR_INTERRUPTS();
	}
	/* fewer rows than counted (VACUUM between the passes): no usable copy */
	if (status == 0 && sent != total)
		status = GPU_STATUS_NOT_LOADED;
	pfree(tids);
	pfree(vecs);
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

/* A lower bound of the exact distance of any row whose GPU distance is >= d */
static double
LowerBound(GpuivfMetric metric, double d, int dims, double qnorm, double maxnorm)
{
	/* worst-case difference of two float32 sums of dims terms (see above) */
	double		u = ldexp(1.0, -24);
	double		gamma = 2.0 * (dims + 4) * u;

	if (isnan(d))
		return d;
	switch (metric)
	{
		case GPUIVF_METRIC_L2:
			return d * (1.0 - gamma);
		case GPUIVF_METRIC_IP:
			return d - gamma * qnorm * maxnorm - 1e-30;
		case GPUIVF_METRIC_COSINE:
			return d - 2.0 * gamma - 4 * u;
	}
	return d;
}

bool
GpuivfGpuFetch(IndexScanDesc scan, int k)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	Codevec    *q = DatumGetCodevec(so->query);
	GpuivfMetaPageData meta;
	GpuivfMetric metric = GpuivfGetMetric(index);
	GpuIndexKey key;
	dsm_segment *seg;
	GpuKnnRequest *r;
	int			status;
	int			nvalid = 0;
	double		qnorm = 0,
				bound;
	Codevec    *v;
	MemoryContext old;

	GpuivfReadMeta(index, &meta);
	GpuivfCheckQueryDims(metric, meta.dims, q);
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
		r->metric = (int32) metric;	/* same numbering as cuda/knn.h */
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

	for (int j = 0; j < meta.dims; j++)
		qnorm += (double) q->x[j] * q->x[j];
	qnorm = sqrt(qnorm);

	/*
	 * Exact distances of the candidates with the operator's own function,
	 * then keep those below the bound: every other row's exact distance is
	 * at least the lower bound of the last candidate's GPU distance.
	 */
	old = MemoryContextSwitchTo(so->tmpCtx);
	if (so->gpuReady)
		pfree(so->gpuReady);
	so->gpuReady = palloc(sizeof(GpuivfCandidate) * k);
	v = InitCodevec(meta.dims);
	MemoryContextSwitchTo(old);
	so->gpuNReady = 0;
	so->gpuPos = 0;
	for (int i = 0; i < k; i++)
	{
		ItemPointer tid = &GpuKnnTids(r)[i];

		if (!ItemPointerIsValid(tid))
			continue;
		nvalid++;
		if (GpuivfGpuReturned(scan, tid))
			continue;
		memcpy(v->x, GpuKnnRows(r) + (Size) i * meta.dims, sizeof(float) * meta.dims);
		so->gpuReady[so->gpuNReady].distance =
			DatumGetFloat8(FunctionCall2Coll(so->procinfo, so->collation,
											 PointerGetDatum(v), so->query));
		so->gpuReady[so->gpuNReady].isnull = false;
		so->gpuReady[so->gpuNReady].tid = *tid;
		so->gpuNReady++;
	}
	so->gpuK = k;
	so->gpuAll = nvalid < k;
	bound = so->gpuAll ? get_float8_infinity() :
		LowerBound(metric, GpuKnnDistances(r)[nvalid - 1], meta.dims, qnorm, r->maxnorm);
	dsm_detach(seg);
	pfree(v);

	qsort(so->gpuReady, so->gpuNReady, sizeof(GpuivfCandidate), GpuivfCandidateCompare);
	if (!so->gpuAll)
	{
		int			n = 0;

		/* ready: strictly below the bound (float8 order: NaN last) */
		while (n < so->gpuNReady && float8_cmp_internal(so->gpuReady[n].distance, bound) < 0)
			n++;
		so->gpuNReady = n;
	}
	return true;
}

bool
GpuivfGpuNext(IndexScanDesc scan, GpuivfCandidate *c)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	if (so->gpuPos >= so->gpuNReady)
		return false;
	*c = so->gpuReady[so->gpuPos++];
	RememberReturned(so, &c->tid);
	return true;
}
