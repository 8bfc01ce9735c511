/*
 * gpuivfgpu.c
 *	  The GPU path of gpuivf scans: exact k-NN of a flat index (lists = 1),
 *	  or of the probed lists of an IVF index, answered by the GPU service
 *	  from a device-resident copy.
 *
 * Posted ahead. codevec_gpu_prefetch (gpuivfprefetch.c) may post a flat
 * scan's first request before the scan starts (GpuivfGpuPostAhead:
 * CodevecGpuPost, no wait), so that the backend works meanwhile; the
 * scan's first fetch takes it when it asks for the same (copy version,
 * metric, query bits, at most as many candidates) and waits for its answer
 * instead of sending one; otherwise its own request drains it.
 *
 * IVF. The copy holds the rows list after list (GpuivfGpuUploadIndex sends each
 * list's row count with the first chunk); a request names the scan's
 * first gpuivf.probes lists and the kernels read only those rows
 * (cuda/knn.h codevec_cuda_knn_ranges), so the answer is what the CPU scan
 * gives for that batch. Later batches run on the CPU (gpuivfscan.c). An
 * insert into an IVF index makes its copy load again whole (no delta tier:
 * its rows belong to lists).
 *
 * The copy. The service keeps, per index, the vectors on the device and
 * the heap TID of each row (gpuservice.c). It is current while the index's
 * relfilenode (REINDEX, TRUNCATE) and the metapage's deleteCount (bumped
 * by VACUUM deletions) are those the backend reads at scan start, and its
 * insertCount (bumped in the same WAL record as every insert) is at least
 * the one read then: rows inserted after it are invisible to the scan's
 * snapshot, and the heap fetch filters them like dead rows. A copy of another
 * version is "not loaded": the backend streams the index's vectors to it
 * in chunks of UPLOAD requests, then asks again. A copy behind only in
 * insertCount is "stale": inserts append to the end of the index's chain,
 * so the backend reads the rows after the copy's last one and sends them
 * (APPEND) into the copy's delta tier, which the service searches with the
 * main rows; a delta too full makes it load the index whole (folding).
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

#include "access/relation.h"
#include "access/relscan.h"
#include "catalog/pg_class.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "distance.h"
#include "knn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"
#include "utils/float.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "vecelem.h"

/*
 * The metric numbers of the metapage (GpuivfMetric) and of the service's
 * requests (cuda/knn.h) agree, so a metric passes as it is.
 */
StaticAssertDecl(GPUIVF_METRIC_L2 == CODEVEC_METRIC_L2 &&
				 GPUIVF_METRIC_IP == CODEVEC_METRIC_IP &&
				 GPUIVF_METRIC_COSINE == CODEVEC_METRIC_COSINE,
				 "GpuivfMetric and cuda/knn.h's CODEVEC_METRIC_* must agree");

/* The CODEVEC_METRIC_* of cuda/knn.h for a metric (asserted equal above) */
static inline int32
GpuivfCudaMetric(GpuivfMetric metric)
{
	return (int32) metric;
}

/* Rows per UPLOAD chunk: about 64 MB of vectors */
#define UPLOAD_CHUNK_BYTES	(64 * 1024 * 1024)

/* ---------------------------------------------------------------------
 * The GPU path
 * --------------------------------------------------------------------- */

/*
 * Send rows [first, first + n) of a copy of total rows (UPLOAD), or of the
 * rows it will hold after an APPEND; resume: the chain position after the
 * last row read so far. An IVF index's first UPLOAD chunk carries the row
 * count of each of its lists (counts, lists of them; NULL otherwise). The
 * status.
 */
static int
SendChunk(dsm_segment *seg, int kind, const GpuIndexKey *key, int dims, int64 first, int64 n,
		  int64 total, const float *vecs, const ItemPointerData *tids,
		  BlockNumber resume_blk, OffsetNumber resume_off, int lists, const int64 *counts)
{
	GpuUploadRequest *r = (GpuUploadRequest *) dsm_segment_address(seg);

	memset(r, 0, sizeof(*r));
	r->hdr.kind = kind;
	r->key = *key;
	r->uploader = MyProcPid;
	r->dims = dims;
	r->first = first;
	r->n = n;
	r->total = total;
	r->resume_blk = resume_blk;
	r->resume_off = resume_off;
	r->lists = lists;
	memcpy(GpuUploadVectors(r), vecs, sizeof(float) * (Size) n * dims);
	memcpy(GpuUploadTids(r), tids, sizeof(ItemPointerData) * n);
	if (lists > 1 && first == 0 && kind == GPU_REQUEST_UPLOAD)
		memcpy(GpuUploadListCounts(r), counts, sizeof(int64) * lists);
	return CodevecGpuCall(seg);
}

/*
 * The message of GpuivfGpuUploadIndex's last status other than 0 (the service's, or
 * why it refused the copy itself), for GpuivfGpuFetch's fallback.
 */
static char upload_errmsg[256];

const char *
GpuivfGpuUploadError(void)
{
	return upload_errmsg;
}

void
GpuivfGpuFallback(Relation index, int status, const char *errmsg, char *why, size_t whylen)
{
	char		buf[256];
	int			sqlstate;

	if (status == GPU_STATUS_NO_MEMORY)
	{
		sqlstate = ERRCODE_OUT_OF_MEMORY;
		if (errmsg == NULL || errmsg[0] == '\0')
			errmsg = "the index copy does not fit codevec.gpu_memory_limit";
	}
	else
	{
		sqlstate = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		if ((errmsg == NULL || errmsg[0] == '\0') && status == GPU_STATUS_NO_DEVICE)
			errmsg = "the GPU service has no CUDA device";
	}
	if (errmsg != NULL && errmsg[0] != '\0')
		snprintf(buf, sizeof(buf), "index \"%s\": %s", RelationGetRelationName(index), errmsg);
	else
		snprintf(buf, sizeof(buf), "index \"%s\": GPU service status %d",
				 RelationGetRelationName(index), status);
	if (why != NULL)
		strlcpy(why, buf, whylen);
	CodevecGpuFallback(buf, sqlstate);
}

/*
 * Copy the rows of a share-locked page, from offset from on, into vecs and
 * tids after the *n already there, stopping when *n reaches limit; returns
 * the offset after the last row copied (the chain position that follows).
 * The caller leaves room for a page's rows (MaxIndexTuplesPerPage).
 */
static OffsetNumber
CopyPageRows(Page page, TupleDesc tupdesc, int dims, OffsetNumber from, int64 limit,
			 float *vecs, ItemPointerData *tids, int64 *n)
{
	OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
	OffsetNumber off;

	for (off = from; off <= maxoff && *n < limit; off++)
	{
		IndexTuple	itup = GpuivfPageTuple(page, off);
		bool		isnull;
		Codevec    *v;

		if (itup == NULL)
			continue;
		v = DatumGetCodevec(index_getattr(itup, 1, tupdesc, &isnull));

		VecElemToFloats(v, vecs + (Size) *n * dims);	/* halfvec: exact */
		tids[(*n)++] = itup->t_tid;
	}
	return off;
}

/* Index tuples of a page that readers see (not LP_DEAD) */
static int
LiveRows(Page page)
{
	OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
	int			n = 0;

	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		n += GpuivfPageTuple(page, off) != NULL;
	return n;
}

/*
 * Stream every vector of the index to the service, list after list (one
 * list when lists = 1); its status. A copy over codevec.gpu_memory_limit
 * is refused here (GPU_STATUS_NO_MEMORY), before anything is sent.
 */
int
GpuivfGpuUploadIndex(Relation index, const GpuIndexKey *key, int dims)
{
	TupleDesc	tupdesc = RelationGetDescr(index);
	GpuivfMetaPageData meta;
	BlockNumber *starts;
	int64	   *counts;
	int64		total = 0,
				sent = 0;
	int64		chunkRows = Max(1, UPLOAD_CHUNK_BYTES / (int64) (sizeof(float) * dims));
	dsm_segment *seg;
	int			status = 0;
	int64		n = 0;
	ItemPointerData *tids;
	float	   *vecs;
	BlockNumber resume_blk;
	OffsetNumber resume_off = FirstOffsetNumber;
	bool		changed = false;

	GpuivfReadMeta(index, &meta);
	starts = palloc(sizeof(BlockNumber) * meta.lists);
	counts = palloc0(sizeof(int64) * meta.lists);
	pfree(GpuivfLoadCentroids(index, &meta, starts, NULL));
	resume_blk = starts[0];

	/* pass 1: count the rows of each list (live line pointers) */
	for (int l = 0; l < meta.lists; l++)
	{
		for (BlockNumber b = starts[l]; BlockNumberIsValid(b);)
		{
			Buffer		buf = ReadBuffer(index, b);
			Page		page;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			counts[l] += LiveRows(page);
			b = GpuivfPageGetOpaque(page)->nextblkno;
			UnlockReleaseBuffer(buf);
		}
		total += counts[l];
		CHECK_FOR_INTERRUPTS();
	}
	/* the service would refuse it (RunUpload): say so without sending it */
	upload_errmsg[0] = '\0';
	if (codevec_gpu_memory_limit_mb > 0 &&
		GpuivfGpuCopyBytes(total, dims) > (int64) codevec_gpu_memory_limit_mb * 1024 * 1024)
	{
		snprintf(upload_errmsg, sizeof(upload_errmsg),
				 "index copy needs %lld MB, codevec.gpu_memory_limit %d MB",
				 (long long) (GpuivfGpuCopyBytes(total, dims) >> 20), codevec_gpu_memory_limit_mb);
		pfree(starts);
		pfree(counts);
		return GPU_STATUS_NO_MEMORY;
	}
	chunkRows = Min(chunkRows, Max(total, 1));
	seg = dsm_create(GpuUploadRequestSizeLists(chunkRows, dims, meta.lists > 1 ? meta.lists : 0), 0);
	/* room for a chunk plus one page, so a page is copied whole under its lock */
	tids = palloc(sizeof(ItemPointerData) * (chunkRows + MaxIndexTuplesPerPage));
	vecs = palloc_extended(sizeof(float) * (Size) (chunkRows + MaxIndexTuplesPerPage) * dims,
						   MCXT_ALLOC_HUGE);

	/*
	 * pass 2: copy each page's rows under its share lock, then, with no
	 * buffer lock held, send every full chunk (the first sizes the copy).
	 * Each list gives exactly the rows counted (rows inserted meanwhile are
	 * at the end of its chain; the copy's key predates them). A flat copy
	 * remembers where its last row is: rows inserted later are appended to
	 * the chain after it (APPEND sends them).
	 */
	for (int l = 0; l < meta.lists && status == 0 && !changed; l++)
	{
		int64		got = 0;

		for (BlockNumber b = starts[l]; BlockNumberIsValid(b) && status == 0 && got < counts[l];)
		{
			Buffer		buf = ReadBuffer(index, b);
			Page		page;
			int64		before = n;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			resume_off = CopyPageRows(page, tupdesc, dims, FirstOffsetNumber,
									  n + (counts[l] - got), vecs, tids, &n);
			got += n - before;
			resume_blk = b;
			b = GpuivfPageGetOpaque(page)->nextblkno;
			UnlockReleaseBuffer(buf);

			while (status == 0 && (n >= chunkRows || (n > 0 && sent + n == total)))
			{
				int64		c = Min(n, chunkRows);

				status = SendChunk(seg, GPU_REQUEST_UPLOAD, key, dims, sent, c, total, vecs, tids,
								   resume_blk, resume_off, meta.lists, counts);
				sent += c;
				n -= c;
				memmove(vecs, vecs + (Size) c * dims, sizeof(float) * (Size) n * dims);
				memmove(tids, tids + c, sizeof(ItemPointerData) * n);
			}
			CHECK_FOR_INTERRUPTS();
		}
		/* fewer rows than counted (VACUUM between the passes) */
		changed = got < counts[l];
	}
	/* an empty index: one empty chunk makes the (empty) copy */
	if (status == 0 && total == 0)
		status = SendChunk(seg, GPU_REQUEST_UPLOAD, key, dims, 0, 0, 0, vecs, tids,
						   resume_blk, resume_off, meta.lists, counts);
	if (status != 0)
		strlcpy(upload_errmsg, ((GpuRequestHeader *) dsm_segment_address(seg))->errmsg,
				sizeof(upload_errmsg));
	/* the index changed under the copy: no usable copy */
	if (status == 0 && (changed || sent != total))
	{
		status = GPU_STATUS_NOT_LOADED;
		strlcpy(upload_errmsg, "the index changed while it was copied", sizeof(upload_errmsg));
	}
	pfree(tids);
	pfree(vecs);
	pfree(starts);
	pfree(counts);
	dsm_detach(seg);
	return status;
}

/*
 * Send the rows a stale copy lacks: those after chain position (blk, off),
 * appended by inserts since it was loaded, into its delta tier (APPEND;
 * first = the rows it holds). More than room of them: load the index whole
 * instead (folding the delta). 0 or a status.
 */
static int
AppendIndex(Relation index, const GpuIndexKey *key, int dims, BlockNumber blk,
			OffsetNumber off, int64 first, int64 room)
{
	TupleDesc	tupdesc = RelationGetDescr(index);
	int64		n = 0,
				cap = 256;
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * cap);
	float	   *vecs = palloc(sizeof(float) * (Size) cap * dims);
	BlockNumber resume_blk = blk;
	OffsetNumber resume_off = off;
	int64		chunkRows = Max(1, UPLOAD_CHUNK_BYTES / (int64) (sizeof(float) * dims));
	dsm_segment *seg;
	int			status = 0;

	for (BlockNumber b = blk; BlockNumberIsValid(b) && n <= room;)
	{
		Buffer		buf = ReadBuffer(index, b);
		Page		page;

		/* room for this page's rows */
		if (n + MaxIndexTuplesPerPage > cap)
		{
			cap = 2 * (n + MaxIndexTuplesPerPage);
			tids = repalloc(tids, sizeof(ItemPointerData) * cap);
			vecs = repalloc_huge(vecs, sizeof(float) * (Size) cap * dims);
		}
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		resume_off = CopyPageRows(page, tupdesc, dims, b == blk ? off : FirstOffsetNumber,
								  PG_INT64_MAX, vecs, tids, &n);
		resume_blk = b;
		b = GpuivfPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
		CHECK_FOR_INTERRUPTS();
	}
	if (n > room)
	{
		pfree(tids);
		pfree(vecs);
		return GpuivfGpuUploadIndex(index, key, dims);
	}
	seg = dsm_create(GpuUploadRequestSize(Max(1, Min(n, chunkRows)), dims), 0);
	for (int64 sent = 0; status == 0 && (sent < n || n == 0);)
	{
		int64		c = Min(n - sent, chunkRows);

		status = SendChunk(seg, GPU_REQUEST_APPEND, key, dims, first + sent, c, first + n,
						   vecs + (Size) sent * dims, tids + sent, resume_blk, resume_off, 1, NULL);
		sent += c;
		if (n == 0)
			break;
	}
	if (status != 0)
		strlcpy(upload_errmsg, ((GpuRequestHeader *) dsm_segment_address(seg))->errmsg,
				sizeof(upload_errmsg));
	dsm_detach(seg);
	pfree(tids);
	pfree(vecs);
	return status;
}

int
GpuivfGpuRefresh(Relation index, const GpuIndexKey *key, int dims, const GpuKnnRequest *answer,
				 bool *appended)
{
	*appended = false;
	if (answer->hdr.status == GPU_STATUS_STALE)
	{
		*appended = true;
		return AppendIndex(index, key, dims, answer->resume_blk, answer->resume_off,
						   answer->nrows, answer->delta_room);
	}
	return GpuivfGpuUploadIndex(index, key, dims);
}

bool
GpuivfGpuBackoff(Relation index, int attempt, instr_time start, GpuIndexKey *key)
{
	instr_time	now;
	GpuivfMetaPageData meta;
	long		ms;

	if (attempt < 2)
		return true;			/* ask again at once after a load or append */
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	if (attempt >= GPUIVF_GPU_MAX_ATTEMPTS ||
		INSTR_TIME_GET_MILLISEC(now) >= (double) codevec_gpu_timeout_ms)
		return false;
	/* 1, 2, 4 ... 32 ms, times 0.5 to 1 so that backends drift apart */
	ms = (long) ((1L << Min(attempt - 2, 5)) * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(ms, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	/*
	 * A VACUUM meanwhile: the copies now hold the new version. The insert
	 * count stays the one read at scan start: every row this scan's
	 * snapshot can see is counted in it, and any copy holding at least
	 * those serves it (CopyStatus in gpucopies.c), so under steady inserts
	 * a waiting scan is served by the next load or append instead of
	 * chasing each new insert until codevec.gpu_timeout.
	 */
	GpuivfReadMeta(index, &meta);
	key->deleteCount = meta.deleteCount;
	return true;
}

/* A lower bound of the exact distance of any row whose GPU distance is >= d */
double
GpuivfLowerBound(GpuivfMetric metric, double d, int dims, double qnorm, double maxnorm)
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

/* ---------------------------------------------------------------------
 * Asking and proving: what index scans and codevec_knn share
 * --------------------------------------------------------------------- */

void
GpuivfGpuKey(Relation index, const GpuivfMetaPageData *meta, GpuIndexKey *key)
{
	key->dbid = MyDatabaseId;
	key->indexid = RelationGetRelid(index);
	key->relfilenode = CodevecRelFileNumber(index);
	key->deleteCount = meta->deleteCount;
	key->insertCount = meta->insertCount;
}

/* The KNN request of ask, written into r */
static void
WriteKnn(GpuivfGpuAsk ask, GpuKnnRequest *r)
{
	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_KNN;
	r->key = *ask->key;
	r->metric = GpuivfCudaMetric(ask->metric);
	r->dims = ask->dims;
	r->nq = ask->nq;
	r->k = ask->k;
	r->nprobe = ask->nprobe;
	for (int j = 0; j < ask->nq; j++)
		memcpy(GpuKnnQueries(r) + (Size) j * ask->dims, ask->queries[j],
			   sizeof(float) * ask->dims);
	for (int i = 0; i < ask->nprobe; i++)
		GpuKnnProbes(r)[i] = ask->probes[i];
}

int
GpuivfGpuPostKnn(GpuivfGpuAsk ask, dsm_segment *seg)
{
	WriteKnn(ask, (GpuKnnRequest *) dsm_segment_address(seg));
	return CodevecGpuPost(seg);
}

bool
GpuivfGpuAskKnn(GpuivfGpuAsk ask, dsm_segment *seg)
{
	GpuKnnRequest *r = (GpuKnnRequest *) dsm_segment_address(seg);
	int			status = GPU_STATUS_FAILED;
	char		errbuf[256] = "";
	instr_time	t0,
				tstart;

	INSTR_TIME_SET_CURRENT(tstart);
	for (int attempt = 0;; attempt++)
	{
		bool		appended;

		/*
		 * Past the first load or append, the copy is changing under us
		 * (other backends loading or appending it): wait a little, with the
		 * index as it is now, until codevec.gpu_timeout.
		 */
		if (!GpuivfGpuBackoff(ask->index, attempt, tstart, ask->key))
		{
			char		last[sizeof(errbuf)];

			/* not snprintf(errbuf, ..., errbuf): source and target overlap */
			strlcpy(last, errbuf[0] ? errbuf : "no current copy", sizeof(last));
			snprintf(errbuf, sizeof(errbuf),
					 "the index copy kept changing for %d ms (other sessions loading or appending it; last: %s)",
					 codevec_gpu_timeout_ms, last);
			status = GPU_STATUS_FAILED;
			break;
		}
		INSTR_TIME_SET_CURRENT(t0);
		if (attempt == 0 && ask->posted)
			status = CodevecGpuWait(seg);	/* posted ahead (gpuivfprefetch.c) */
		else
		{
			WriteKnn(ask, r);
			status = CodevecGpuCall(seg);
		}
		ask->requests++;
		if (status == 0 && attempt == 0 && ask->observe && !ask->posted)
			GpuivfRouteObserveKnn(GpuivfUsSince(t0));	/* for codevec_gpu_routing() */
		if (status != GPU_STATUS_NOT_LOADED && status != GPU_STATUS_STALE)
		{
			if (status != 0)
				strlcpy(errbuf, r->hdr.errmsg, sizeof(errbuf));
			break;
		}
		/* no copy or another version: load it; rows inserted since: append them */
		status = GpuivfGpuRefresh(ask->index, ask->key, ask->dims, r, &appended);
		if (appended)
			ask->appends++;
		else
			ask->uploads++;
		if (status != 0)
			strlcpy(errbuf, upload_errmsg, sizeof(errbuf));
		if (GpuivfGpuContended(status))
			continue;			/* another backend came first: ask again */
		if (status != 0)
			break;
	}
	if (status == 0)
		return true;
	if (status == GPU_STATUS_NO_MEMORY)
		GpuivfRouteNoRoom(ask->index, errbuf[0] ? errbuf :
						  "the index copy does not fit codevec.gpu_memory_limit");
	/* cuda: ERROR; auto: one WARNING per session, counted, then the CPU */
	GpuivfGpuFallback(ask->index, status, errbuf, ask->why, sizeof(ask->why));
	return false;
}

int
GpuivfGpuProve(const GpuKnnRequest *r, int q, GpuivfMetric metric, const float *query,
			   GpuivfExactFn exact, GpuivfKeepFn keep, void *arg,
			   GpuivfCandidate *out, bool *all, int *nvalid)
{
	const float *gdist = GpuKnnDistances(r) + (Size) q * r->k;
	const ItemPointerData *gtids = GpuKnnTids(r) + (Size) q * r->k;
	const float *grows = GpuKnnRows(r) + (Size) q * r->k * r->dims;
	double		bound,
				qnorm = 0;
	int			n = 0;

	*nvalid = 0;
	for (int i = 0; i < r->k; i++)
		if (ItemPointerIsValid(&gtids[i]))
			(*nvalid)++;
	/* fewer than asked for: every row of the copy came (unless masked rows took room) */
	*all = *nvalid < r->k && !r->partial;
	if (*nvalid == 0 && !*all)
		return 0;
	for (int j = 0; j < r->dims; j++)
		qnorm += (double) query[j] * query[j];
	qnorm = sqrt(qnorm);
	bound = *all ? get_float8_infinity() :
		GpuivfLowerBound(metric, gdist[*nvalid - 1], r->dims, qnorm, r->maxnorm);

	for (int i = 0; i < r->k; i++)
	{
		ItemPointerData tid;
		double		d;

		if (!ItemPointerIsValid(&gtids[i]))
			continue;
		d = exact(arg, grows + (Size) i * r->dims);
		/* proven: strictly below the bound (float8 order: NaN last) */
		if (!*all && float8_cmp_internal(d, bound) >= 0)
			continue;
		tid = gtids[i];
		if (keep != NULL && !keep(arg, (ItemPointer) &gtids[i], &tid))
			continue;
		out[n].distance = d;
		out[n].isnull = false;
		out[n].tid = tid;
		n++;
	}
	qsort(out, n, sizeof(GpuivfCandidate), GpuivfCandidateCompare);
	return n;
}

/* ---------------------------------------------------------------------
 * A scan's first request posted ahead of the scan (codevec_gpu_prefetch,
 * gpuivfprefetch.c), and taken by the scan
 * --------------------------------------------------------------------- */

/* The request GpuivfGpuPostAhead posted (posted = 0: none) */
static struct
{
	uint64		posted;			/* CodevecGpuPosted's number for it */
	GpuIndexKey key;
	GpuivfMetric metric;
	int			dims;
	int			k;
	float	   *query;			/* dims floats, in TopMemoryContext */
	int			room;			/* floats query has room for */
}			pending;

/* The last GPU scan's query and index, and the transaction it ran in */
static struct
{
	LocalTransactionId lxid;
	Oid			index;
	uint32		hash;
}			last_scan;

/* The same version of the same index copy (field by field: the struct has padding) */
static bool
SameKey(const GpuIndexKey *a, const GpuIndexKey *b)
{
	return a->dbid == b->dbid && a->indexid == b->indexid && a->relfilenode == b->relfilenode &&
		a->deleteCount == b->deleteCount && a->insertCount == b->insertCount;
}

static uint32
QueryHash(const float *x, int dims)
{
	return hash_bytes((const unsigned char *) x, sizeof(float) * dims);
}

/*
 * One query's request of index as meta describes it, for k candidates of
 * a flat copy (the caller sets an IVF scan's lists): *key and *queries are
 * the caller's, as ask points at them.
 */
static void
OneQueryAsk(GpuivfGpuAsk ask, Relation index, const GpuivfMetaPageData *meta,
			GpuIndexKey *key, const float **queries, const float *query, int k)
{
	memset(ask, 0, sizeof(*ask));
	ask->index = index;
	ask->metric = GpuivfGetMetric(index);
	GpuivfGpuKey(index, meta, key);
	ask->key = key;
	ask->dims = meta->dims;
	ask->nq = 1;
	queries[0] = query;
	ask->queries = queries;
	ask->k = k;
}

bool
GpuivfGpuPostAhead(Relation index, const GpuivfMetaPageData *meta, const float *query, int k)
{
	GpuivfGpuAskData ask;
	GpuIndexKey key;
	const float *queries[1];
	dsm_segment *seg;

	if (last_scan.lxid == CodevecMyLocalXid && last_scan.index == RelationGetRelid(index) &&
		last_scan.hash == QueryHash(query, meta->dims))
		return false;			/* this transaction's scan asked for it already */
	OneQueryAsk(&ask, index, meta, &key, queries, query, k);
	seg = CodevecGpuSessionSegment(GpuKnnRequestSizeProbes(1, meta->dims, k, 0));
	if (GpuivfGpuPostKnn(&ask, seg) != 0)
		return false;
	if (pending.room < meta->dims)
	{
		if (pending.query)
			pfree(pending.query);
		pending.query = MemoryContextAlloc(TopMemoryContext, sizeof(float) * meta->dims);
		pending.room = meta->dims;
	}
	memcpy(pending.query, query, sizeof(float) * meta->dims);
	pending.posted = CodevecGpuPosted(NULL);
	pending.key = key;
	pending.metric = ask.metric;
	pending.dims = meta->dims;
	pending.k = k;
	return true;
}

/*
 * The request posted ahead for this scan's first one (the same copy
 * version, metric, query bits, a flat index and at least k candidates):
 * its segment, *k set to its candidates; else NULL (one posted for
 * something else is drained by the scan's own request). Remembers the
 * scan, so that a post ahead of the same query in this transaction posts
 * nothing.
 */
static dsm_segment *
TakePosted(const GpuIndexKey *key, GpuivfMetric metric, int dims, const float *query,
		   int nprobe, int *k)
{
	dsm_segment *seg = NULL;
	bool		match;

	last_scan.lxid = CodevecMyLocalXid;
	last_scan.index = key->indexid;
	last_scan.hash = QueryHash(query, dims);
	if (pending.posted == 0)
		return NULL;
	match = CodevecGpuPosted(&seg) == pending.posted &&
		SameKey(&pending.key, key) &&
		pending.metric == metric && pending.dims == dims && nprobe == 0 &&
		pending.k >= *k && memcmp(pending.query, query, sizeof(float) * dims) == 0;
	pending.posted = 0;			/* taken, or of no use: the next request drains it */
	if (!match)
		return NULL;
	*k = pending.k;
	return seg;
}

/* ---------------------------------------------------------------------
 * The scan's GPU phase
 * --------------------------------------------------------------------- */

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

/* What the scan's exact distance and filter need */
typedef struct ScanProveArg
{
	IndexScanDesc scan;
	int			elemSize;		/* bytes per element of the indexed type (vecelem.h) */
	int			dims;
} ScanProveArg;

/* The exact distance of a candidate row: the operator's own function */
static double
ScanExact(void *arg, const float *row)
{
	ScanProveArg *a = (ScanProveArg *) arg;
	GpuivfScanOpaque so = (GpuivfScanOpaque) a->scan->opaque;
	/* the row as the indexed type stores it (halfvec: the same bits) */
	void	   *v = VecElemFromFloats(a->elemSize, row, a->dims);
	double		d;

	d = DatumGetFloat8(FunctionCall2Coll(so->procinfo, so->collation,
										 PointerGetDatum(v), so->query));
	pfree(v);
	return d;
}

/* A candidate the scan returned already (an earlier, smaller batch) is skipped */
static bool
ScanKeep(void *arg, ItemPointer tid, ItemPointer out)
{
	return !GpuivfGpuReturned(((ScanProveArg *) arg)->scan, tid);
}

/*
 * GpuivfCandidatesFor: see gpuivf.h. Here, beside the GPU requests, as
 * it follows the kernels' sizes (cuda/knn.h); gpuivfscan.c only remembers
 * the rows. Not the power of two at or above rows (until 2026-12-07): the
 * kernels' buffers step at powers of two of the fp16 path's candidates
 * plus margin (codevec_knn_f16_kc2), so hybrid's 101 rows asked 128
 * candidates and paid 256-key buffers, where 111 keeps them at 128 keys
 * (bench/kernels: 785k rows, 4 queries, 0.448 ms at k 128 against 0.368
 * at k 101).
 */
int
GpuivfCandidatesFor(int64 rows)
{
	if (rows <= GPUIVF_GPU_FIRST_K)
		return GPUIVF_GPU_FIRST_K;
	if (rows >= GPUIVF_GPU_MAX_K)
		return GPUIVF_GPU_MAX_K;
	return codevec_knn_k_same_buffers((int) rows, GPUIVF_GPU_MAX_K);
}

bool
GpuivfGpuFetch(IndexScanDesc scan, int k)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	Codevec    *q = DatumGetCodevec(so->query);
	float	   *qx;
	GpuivfMetaPageData meta;
	GpuivfGpuAskData ask;
	GpuIndexKey key;
	const float *queries[1];
	ScanProveArg arg;
	dsm_segment *seg;
	MemoryContext old;
	bool		first = so->gpuK == 0;	/* the scan's first request */
	int			nvalid;
	bool		ok;

	GpuivfReadMeta(index, &meta);
	GpuivfCheckQueryDims(GpuivfGetMetric(index), meta.dims, q);
	qx = palloc(sizeof(float) * meta.dims);
	VecElemToFloats(q, qx);		/* halfvec: exact */
	OneQueryAsk(&ask, index, &meta, &key, queries, qx, k);
	/* IVF: the scan's first batch of lists, nearest centroids first */
	ask.nprobe = meta.lists > 1 ? Min(so->probes, meta.lists) : 0;
	ask.probes = so->listOrder;
	ask.observe = true;

	/* the request posted ahead for this scan, if one was (TakePosted) */
	seg = first ? TakePosted(&key, ask.metric, meta.dims, qx, ask.nprobe, &k) : NULL;
	if (seg != NULL)
	{
		ask.k = k;
		ask.posted = true;
		so->stats.prefetched++;
	}
	else
		seg = CodevecGpuSessionSegment(GpuKnnRequestSizeProbes(1, meta.dims, k, ask.nprobe));
	ok = GpuivfGpuAskKnn(&ask, seg);
	so->stats.requests += ask.requests;
	so->stats.uploads += ask.uploads;
	so->stats.appends += ask.appends;
	if (!ok)
	{
		so->stats.fallbacks++;
		strlcpy(so->stats.fallbackWhy, ask.why, sizeof(so->stats.fallbackWhy));
		pfree(qx);
		return false;
	}
	if (first)
		so->stats.gpuScans++;
	so->stats.copyRows = ((GpuKnnRequest *) dsm_segment_address(seg))->nrows;

	/*
	 * Exact distances of the candidates with the operator's own function;
	 * ready: those below the bound (every other row's exact distance is at
	 * least the lower bound of the last candidate's GPU distance), not
	 * returned yet, in (distance, TID) order.
	 */
	old = MemoryContextSwitchTo(so->tmpCtx);
	if (so->gpuReady)
		pfree(so->gpuReady);
	so->gpuReady = palloc(sizeof(GpuivfCandidate) * k);
	arg.scan = scan;
	arg.elemSize = VecElemSize(q);
	arg.dims = meta.dims;
	MemoryContextSwitchTo(old);
	so->gpuNReady = GpuivfGpuProve((GpuKnnRequest *) dsm_segment_address(seg), 0, ask.metric,
								   qx, ScanExact, ScanKeep, &arg, so->gpuReady,
								   &so->gpuAll, &nvalid);
	so->stats.candidates += nvalid;
	so->gpuPos = 0;
	so->gpuK = k;
	pfree(qx);
	return true;
}

bool
GpuivfGpuNext(IndexScanDesc scan, GpuivfCandidate *c)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;

	if (so->gpuPos >= so->gpuNReady)
		return false;
	so->stats.gpuRows++;
	*c = so->gpuReady[so->gpuPos++];
	RememberReturned(so, &c->tid);
	return true;
}

/* ---------------------------------------------------------------------
 * IVF builds on the GPU: k-means training and list assignment
 * (GPU_REQUEST_KMEANS; the service runs cuda/kmeans.h)
 * --------------------------------------------------------------------- */

/*
 * Whether an IVF build uses the GPU service: codevec.device auto when the
 * service is ready (silently the CPU otherwise), cuda (ERROR 55000 when it
 * is not), never under cpu.
 */
static bool
BuildOnGpu(void)
{
	if (codevec_device == CODEVEC_DEVICE_CPU)
		return false;
	if (codevec_device == CODEVEC_DEVICE_AUTO)
		return CodevecGpuServiceReady();
	return CodevecGpuServiceUsable();
}

/* Fill a KMEANS request's fixed part */
static GpuKmeansRequest *
KmeansRequest(dsm_segment *seg, int op, GpuivfMetric metric, int dims, int lists, int64 first,
			  int64 n, int64 total)
{
	GpuKmeansRequest *r = (GpuKmeansRequest *) dsm_segment_address(seg);

	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_KMEANS;
	r->op = op;
	r->owner = MyProcPid;
	r->dims = dims;
	r->lists = lists;
	r->metric = GpuivfCudaMetric(metric);
	r->iters = GPUIVF_KMEANS_ITERATIONS;
	r->seed = UINT64CONST(0x6770756976660001);
	r->first = first;
	r->n = n;
	r->total = total;
	return r;
}

/* A status other than 0 from the service: auto goes on on the CPU (one
 * WARNING per session for memory), cuda raises */
static bool
KmeansFallback(int status, const char *errmsg)
{
	char		why[256];

	snprintf(why, sizeof(why), "IVF build on the GPU: %s",
			 errmsg[0] ? errmsg : "the GPU service could not run it");
	if (status == GPU_STATUS_NO_MEMORY)
		CodevecGpuFallback(why, ERRCODE_OUT_OF_MEMORY);
	else
		CodevecGpuFallback(why, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
	return false;
}

bool
GpuivfGpuKmeans(GpuivfMetric metric, const float *samples, int n, int dims, int lists,
				float *centroids)
{
	int64		chunk = Max(1, UPLOAD_CHUNK_BYTES / (int64) (sizeof(float) * dims));
	dsm_segment *seg;
	GpuKmeansRequest *r = NULL;
	int			status = 0;

	if (!BuildOnGpu())
		return false;
	chunk = Min(chunk, Max(n, 1));
	seg = dsm_create(GpuKmeansRequestSize(chunk, dims, lists), 0);
	for (int64 first = 0; status == 0;)
	{
		int64		c = Min(chunk, n - first);

		r = KmeansRequest(seg, first + c == n ? GPU_KMEANS_TRAIN : GPU_KMEANS_SAMPLES, metric,
						  dims, lists, first, c, n);
		memcpy(GpuKmeansVectors(r), samples + (Size) first * dims, sizeof(float) * (Size) c * dims);
		status = CodevecGpuCall(seg);
		first += c;
		if (r->op == GPU_KMEANS_TRAIN)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	if (status == 0)
		memcpy(centroids, GpuKmeansOut(r), sizeof(float) * (Size) lists * dims);
	else
		KmeansFallback(status, r->hdr.errmsg);
	dsm_detach(seg);
	return status == 0;
}

bool
GpuivfGpuAssign(GpuivfMetric metric, const float *x, int n, int dims, int lists, int *out)
{
	dsm_segment *seg = CodevecGpuSessionSegment(GpuKmeansRequestSize(n, dims, 0));
	GpuKmeansRequest *r;
	int			status;

	r = KmeansRequest(seg, GPU_KMEANS_ASSIGN, metric, dims, lists, 0, n, n);
	memcpy(GpuKmeansVectors(r), x, sizeof(float) * (Size) n * dims);
	status = CodevecGpuCall(seg);
	if (status != 0)
		return KmeansFallback(status, r->hdr.errmsg);
	for (int i = 0; i < n; i++)
	{
		int32		l = ((int32 *) GpuKmeansOut(r))[i];

		if (l < 0 || l >= lists)
			elog(ERROR, "GPU service assigned list %d of %d", l, lists);
		out[i] = l;
	}
	return true;
}

void
GpuivfGpuKmeansDone(int dims, int lists)
{
	dsm_segment *seg = CodevecGpuSessionSegment(GpuKmeansRequestSize(0, dims, 0));

	KmeansRequest(seg, GPU_KMEANS_DONE, GPUIVF_METRIC_L2, dims, lists, 0, 0, 0);
	(void) CodevecGpuCall(seg);
}

/* ---------------------------------------------------------------------
 * VACUUM: masking removed rows in the service's copy (GPU_REQUEST_MASK)
 * --------------------------------------------------------------------- */

void
GpuivfGpuMask(Relation index, const GpuivfMetaPageData *old, const ItemPointerData *tids,
			  int64 ntids, const BlockNumber *blocks, int nblocks)
{
	dsm_segment *seg;
	GpuMaskRequest *r;

	if (!CodevecGpuServiceReady())
		return;					/* no copy to keep: it reloads if it exists later */
	seg = dsm_create(GpuMaskRequestSize(nblocks, ntids), 0);
	r = (GpuMaskRequest *) dsm_segment_address(seg);
	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_MASK;
	r->key.dbid = MyDatabaseId;
	r->key.indexid = RelationGetRelid(index);
	r->key.relfilenode = CodevecRelFileNumber(index);
	r->key.deleteCount = old->deleteCount;
	r->key.insertCount = old->insertCount;
	r->newDeleteCount = old->deleteCount + 1;
	r->nblocks = nblocks;
	r->ntids = ntids;
	if (nblocks > 0)
		memcpy(GpuMaskBlocks(r), blocks, sizeof(BlockNumber) * nblocks);
	if (ntids > 0)
		memcpy(GpuMaskTids(r), tids, sizeof(ItemPointerData) * ntids);
	(void) CodevecGpuCall(seg);
	dsm_detach(seg);
}
