/*
 * gpuivfgpu.c
 *	  The GPU path of gpuivf scans: exact k-NN of a flat index (lists = 1),
 *	  or of the probed lists of an IVF index, answered by the GPU service
 *	  from a device-resident copy.
 *
 * IVF. The copy holds the rows list after list (UploadIndex sends each
 * list's row count with the first chunk); a request names the scan's
 * first gpuivf.probes lists and the kernels read only those rows
 * (cuda/knn.h codevec_cuda_knn_ranges), so the answer is what the CPU scan
 * gives for that batch. Later batches run on the CPU (gpuivfscan.c). An
 * insert into an IVF index makes its copy load again whole (no delta tier:
 * its rows belong to lists).
 *
 * The copy. The service keeps, per index, the vectors on the device and
 * the heap TID of each row (gpuservice.c). It is current while the index's
 * relfilenode (REINDEX, TRUNCATE), the metapage's changeCount (bumped by
 * VACUUM deletions) and insertCount (bumped in the same WAL record as every
 * insert) are those the backend reads at scan start. A copy of another
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
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "common/pg_prng.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"
#include "utils/float.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "vecelem.h"
#include "relacl.h"

/* the opclasses' distance functions (distance.c), timed by the routing model */
extern Datum l2_distance(PG_FUNCTION_ARGS);
extern Datum negative_inner_product(PG_FUNCTION_ARGS);
extern Datum cosine_distance(PG_FUNCTION_ARGS);

int			gpuivf_gpu_min_rows = 0;

/* Rows per UPLOAD chunk: about 64 MB of vectors */
#define UPLOAD_CHUNK_BYTES	(64 * 1024 * 1024)

/* ---------------------------------------------------------------------
 * Routing: where a scan runs
 * --------------------------------------------------------------------- */

/*
 * Index copies the service refused for codevec.gpu_memory_limit, so the
 * next scans go to the CPU at once (and EXPLAIN says so) instead of
 * reading the whole index again for an upload that fails the same way.
 * An entry holds while the index's relfilenode and the cap are the same.
 */
#define NO_ROOM_ENTRIES		8
typedef struct NoRoomEntry
{
	Oid			indexid;
	Oid			relfilenode;
	int			capMb;
	char		why[160];
} NoRoomEntry;
static NoRoomEntry no_room[NO_ROOM_ENTRIES];
static int	no_room_next = 0;

/* The entry for index under the current cap, or NULL */
static NoRoomEntry *
FindNoRoom(Relation index)
{
	for (int i = 0; i < NO_ROOM_ENTRIES; i++)
		if (OidIsValid(no_room[i].indexid) &&
			no_room[i].indexid == RelationGetRelid(index) &&
			no_room[i].relfilenode == CodevecRelFileNumber(index) &&
			no_room[i].capMb == codevec_gpu_memory_limit_mb)
			return &no_room[i];
	return NULL;
}

/* Remember that the copy of index does not fit the current cap */
static void
RememberNoRoom(Relation index, const char *why)
{
	NoRoomEntry *e = FindNoRoom(index);

	if (e == NULL)
	{
		e = &no_room[no_room_next];
		no_room_next = (no_room_next + 1) % NO_ROOM_ENTRIES;
	}
	e->indexid = RelationGetRelid(index);
	e->relfilenode = CodevecRelFileNumber(index);
	e->capMb = codevec_gpu_memory_limit_mb;
	strlcpy(e->why, why, sizeof(e->why));
}

/* Route to the CPU: detail for EXPLAIN, why for CodevecGpuFallback */
static void
RouteCpu(GpuivfRoute route, int sqlstate, bool error, const char *detail, const char *why)
{
	route->gpu = false;
	route->sqlstate = sqlstate;
	route->error = error;
	strlcpy(route->detail, detail, sizeof(route->detail));
	strlcpy(route->why, why ? why : detail, sizeof(route->why));
}

void
GpuivfRouteDecide(Relation index, const GpuivfMetaPageData *meta, GpuivfRoute route)
{
	static const char *const states[] = {"absent", "starting", "ready", "no device", "stopped"};
	char		device[256];
	char		why[256];
	char		buf[256];
	int			state;
	bool		cuda = codevec_device == CODEVEC_DEVICE_CUDA;
	NoRoomEntry *full;
	int64		capBytes = (int64) codevec_gpu_memory_limit_mb * 1024 * 1024;

	memset(route, 0, sizeof(*route));
	route->reltuples = Max(index->rd_rel->reltuples, 0);
	route->minRows = -1;

	if (codevec_device == CODEVEC_DEVICE_CPU)
	{
		RouteCpu(route, 0, false, "codevec.device is cpu", NULL);
		return;
	}

	/* the service: auto scans on the CPU silently, cuda is an error */
	state = CodevecGpuServiceDescribe(device, why, sizeof(why));
	if (state != GPU_SERVICE_READY)
	{
		if (state == GPU_SERVICE_ABSENT)
			strlcpy(buf, why, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "GPU service: %s: %s",
					 state >= 0 && state < lengthof(states) ? states[state] : "?", why);
		RouteCpu(route, cuda ? ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE : 0, cuda, buf, why);
		return;
	}

	/* auto: below the threshold the CPU is faster */
	if (!cuda)
	{
		const GpuivfRoutingModel *m = NULL;
		double		scanned;

		if (gpuivf_gpu_min_rows < 0)
		{
			RouteCpu(route, 0, false, "gpuivf.gpu_min_rows is -1", NULL);
			return;
		}
		if (gpuivf_gpu_min_rows > 0)
			route->minRows = gpuivf_gpu_min_rows;
		else
		{
			m = GpuivfGpuModel(index, meta);
			route->minRows = m->breakEven >= 0 ? ceil(m->breakEven) : -1;
			route->measured = true;
		}
		/* an IVF scan reads the probed share of the rows */
		scanned = route->reltuples;
		if (meta->lists > 1)
			scanned *= Min(1.0, (double) Min(gpuivf_probes, meta->lists) / meta->lists);
		if (route->minRows < 0 || scanned < route->minRows)
		{
			if (route->minRows < 0)
				snprintf(buf, sizeof(buf),
						 "the GPU does not win at any size: CPU %.1f ns/row, GPU fixed %.0f us (codevec_gpu_routing())",
						 m->cpuNsPerRow, m->gpuFixedUs);
			else if (route->measured)
				snprintf(buf, sizeof(buf),
						 "%s %.0f < %.0f, the measured break-even (gpuivf.gpu_min_rows = 0)",
						 meta->lists > 1 ? "rows probed" : "reltuples", scanned, route->minRows);
			else
				snprintf(buf, sizeof(buf), "%s %.0f < gpuivf.gpu_min_rows %d",
						 meta->lists > 1 ? "rows probed" : "reltuples", scanned,
						 gpuivf_gpu_min_rows);
			RouteCpu(route, 0, false, buf, NULL);
			return;
		}
	}

	/* the copy must fit codevec.gpu_memory_limit (else 53200) */
	full = FindNoRoom(index);
	if (full != NULL)
	{
		RouteCpu(route, ERRCODE_OUT_OF_MEMORY, cuda, full->why, NULL);
		return;
	}
	if (capBytes > 0 && GpuivfGpuCopyBytes((int64) route->reltuples, meta->dims) > capBytes)
	{
		snprintf(buf, sizeof(buf), "index copy needs %lld MB, codevec.gpu_memory_limit %d MB",
				 (long long) (GpuivfGpuCopyBytes((int64) route->reltuples, meta->dims) >> 20),
				 codevec_gpu_memory_limit_mb);
		RouteCpu(route, ERRCODE_OUT_OF_MEMORY, cuda, buf, NULL);
		return;
	}

	route->gpu = true;
	strlcpy(route->detail, device, sizeof(route->detail));
}

bool
GpuivfGpuRoute(IndexScanDesc scan)
{
	GpuivfScanOpaque so = (GpuivfScanOpaque) scan->opaque;
	GpuivfMetaPageData meta;
	GpuivfRouteData route;

	so->stats.scans++;
	if (so->query == (Datum) 0)
	{
		/* a NULL query returns every row, in heap TID order: the CPU */
		so->stats.cpuScans++;
		strlcpy(so->stats.cpuWhy, "NULL query", sizeof(so->stats.cpuWhy));
		return false;
	}
	GpuivfReadMeta(scan->indexRelation, &meta);
	GpuivfRouteDecide(scan->indexRelation, &meta, &route);
	if (!route.gpu)
	{
		/* cuda: ERROR; auto: one WARNING per session for the memory cap */
		if (route.sqlstate != 0)
			CodevecGpuFallback(route.why, route.sqlstate);
		so->stats.cpuScans++;
		strlcpy(so->stats.cpuWhy, route.detail, sizeof(so->stats.cpuWhy));
		return false;
	}
	strlcpy(so->stats.device, route.detail, sizeof(so->stats.device));
	return true;
}

/* ---------------------------------------------------------------------
 * The routing model (gpuivf.gpu_min_rows = 0)
 *
 * The CPU scan's cost grows with the rows; the GPU path's is nearly
 * constant (the device reads an fp16 row in about a nanosecond), so there
 * is a row count below which the CPU is faster. Both sides are measured
 * in this backend on first use and cached:
 *
 *   cpu(n) = n * cpuNsPerRow
 *       the CPU scan's loop (page by page under share locks through
 *       shared buffers, each index tuple's distance with the opclass's
 *       function, the candidate written, then the heapify) run on the
 *       first index of that metric and dims the backend plans or scans,
 *       over about GPUIVF_CAL_BYTES of its rows (a small index several
 *       times), best of 3: hot, as repeated queries find an index near
 *       the break-even (large scans are slower per row, from DRAM). Without such an index (empty): the same loop on
 *       synthetic rows in memory, which misses the page handling.
 *   gpu(n) = pingUs + launchUs + recheckUs + n * gpuNsPerRow
 *       pingUs: mean of 16 round trips of empty requests through a
 *       segment kept mapped, as codevec_gpu_ping does and as the scan's
 *       session segment is (after 2 warm-up);
 *       launchUs: GPUIVF_GPU_LAUNCH_US, the device time of one KNN launch
 *       sequence on a small copy (a backend cannot time it; the KNN round
 *       trips it observed are reported beside it);
 *       recheckUs: the exact distances of the first GPUIVF_GPU_FIRST_K
 *       candidates, GPUIVF_GPU_FIRST_K * cpuNsPerRow;
 *       gpuNsPerRow: dims * 2 bytes at GPUIVF_GPU_BYTES_PER_NS.
 *   breakEven = gpuFixedUs * 1000 / (cpuNsPerRow - gpuNsPerRow)
 *
 * The first scan after a change also uploads the copy: not counted (paid
 * once per change). The cost estimate prices both paths with these
 * numbers, so plans and scans agree.
 * --------------------------------------------------------------------- */

#define GPUIVF_CAL_BYTES	(4 * 1024 * 1024)
#define GPUIVF_CAL_MIN_ROWS	2000
#define GPUIVF_CAL_MAX_ROWS	20000
#define MODEL_ENTRIES		8

static GpuivfRoutingModel models[MODEL_ENTRIES];
static int	nmodels = 0;
static double ping_us = -1;
static double knn_us_sum = 0;
static int64 knn_n = 0;

/* Microseconds since t0 */
static double
UsSince(instr_time t0)
{
	instr_time	t;

	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	return INSTR_TIME_GET_MICROSEC(t);
}


/* Nanoseconds per row of the CPU scan's inner loop for metric and dims */
static double
CalibrateCpu(GpuivfMetric metric, int dims, int64 *nrows)
{
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf calibration",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext rowCtx = AllocSetContextCreate(ctx, "gpuivf calibration rows",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	Size		vsize = CODEVEC_SIZE(dims);
	bool		shortHeader = vsize - VARHDRSZ + VARHDRSZ_SHORT <= VARATT_SHORT_MAX;
	Size		stride = MAXALIGN(vsize);
	int64		rows = Min(Max(GPUIVF_CAL_BYTES / (int64) stride, GPUIVF_CAL_MIN_ROWS),
						   GPUIVF_CAL_MAX_ROWS);
	char	   *data = palloc_extended(stride * rows, MCXT_ALLOC_HUGE);
	GpuivfCandidate *cand = palloc_extended(sizeof(GpuivfCandidate) * rows, MCXT_ALLOC_HUGE);
	Codevec    *q = InitCodevec(dims);
	Codevec    *v = InitCodevec(dims);
	FmgrInfo	flinfo;
	uint32		seed = 12345;
	double		best = -1;

	for (int j = 0; j < dims; j++)
		q->x[j] = (float) ((seed = seed * 1664525 + 1013904223) >> 8) / (1 << 24) - 0.5f;
	/* stored as an index tuple stores them: a short varlena when small */
	for (int64 i = 0; i < rows; i++)
	{
		char	   *p = data + i * stride;

		for (int j = 0; j < dims; j++)
			v->x[j] = (float) ((seed = seed * 1664525 + 1013904223) >> 8) / (1 << 24) - 0.5f;
		if (shortHeader)
		{
			SET_VARSIZE_SHORT(p, vsize - VARHDRSZ + VARHDRSZ_SHORT);
			memcpy(p + VARHDRSZ_SHORT, (char *) v + VARHDRSZ, vsize - VARHDRSZ);
		}
		else
			memcpy(p, v, vsize);
	}
	MemSet(&flinfo, 0, sizeof(flinfo));
	flinfo.fn_addr = metric == GPUIVF_METRIC_L2 ? l2_distance :
		metric == GPUIVF_METRIC_IP ? negative_inner_product : cosine_distance;
	flinfo.fn_oid = InvalidOid;
	flinfo.fn_nargs = 2;
	flinfo.fn_strict = true;
	flinfo.fn_mcxt = ctx;

	for (int rep = 0; rep < 3; rep++)
	{
		instr_time	t0;
		double		us;

		MemoryContextSwitchTo(rowCtx);
		INSTR_TIME_SET_CURRENT(t0);
		for (int64 i = 0; i < rows; i++)
		{
			cand[i].distance = DatumGetFloat8(FunctionCall2Coll(&flinfo, InvalidOid,
																PointerGetDatum(data + i * stride),
																PointerGetDatum(q)));
			cand[i].isnull = false;
			ItemPointerSet(&cand[i].tid, (BlockNumber) (i / 32), (OffsetNumber) (i % 32 + 1));
		}
		GpuivfHeapify(cand, rows);
		us = UsSince(t0);
		MemoryContextSwitchTo(ctx);
		MemoryContextReset(rowCtx);
		if (best < 0 || us < best)
			best = us;
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	*nrows = rows;
	return best * 1000.0 / rows;
}

/*
 * Nanoseconds per row of the CPU scan run on the index itself: the loop of
 * gpuivfscan.c's ProbeList (buffer, share lock, index tuple, the opclass's
 * distance function, the candidate) over the index's first rows, about
 * GPUIVF_CAL_BYTES of vectors (GPUIVF_CAL_MIN_ROWS .. GPUIVF_CAL_MAX_ROWS
 * rows; a smaller index again and again), then the heapify; best of 3, so
 * timed hot, as repeated queries find a small index. -1 for an index
 * without rows.
 */
static double
CalibrateCpuOnIndex(Relation index, const GpuivfMetaPageData *meta, int64 *nrows)
{
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "gpuivf calibration",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext rowCtx = AllocSetContextCreate(ctx, "gpuivf calibration rows",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	FmgrInfo   *procinfo = index_getprocinfo(index, 1, GPUIVF_DISTANCE_PROC);
	Oid			collation = index->rd_indcollation[0];
	TupleDesc	tupdesc = RelationGetDescr(index);
	int64		maxRows = Min(Max(GPUIVF_CAL_BYTES / (int64) CODEVEC_SIZE(meta->dims),
								  GPUIVF_CAL_MIN_ROWS), GPUIVF_CAL_MAX_ROWS);
	GpuivfCandidate *cand = palloc(sizeof(GpuivfCandidate) * maxRows);
	Codevec    *q = InitCodevec(meta->dims);
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);
	BlockNumber start;
	uint32		seed = 12345;
	double		best = -1;
	int64		rows = 0;

	for (int j = 0; j < meta->dims; j++)
		q->x[j] = (float) ((seed = seed * 1664525 + 1013904223) >> 8) / (1 << 24) - 0.5f;
	{
		BlockNumber *starts = palloc(sizeof(BlockNumber) * meta->lists);

		/* the first list's chain (the whole index when lists = 1) */
		pfree(GpuivfLoadCentroids(index, meta, starts, NULL));
		start = starts[0];
		pfree(starts);
	}
	for (int rep = 0; rep < 3; rep++)
	{
		instr_time	t0;
		double		us;
		int64		n = 0;

		MemoryContextSwitchTo(rowCtx);
		INSTR_TIME_SET_CURRENT(t0);
		while (n < GPUIVF_CAL_MIN_ROWS)
		{
			int64		before = n;

			for (BlockNumber b = start; BlockNumberIsValid(b) && n < maxRows;)
			{
				Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, b, RBM_NORMAL, bas);
				Page		page;
				OffsetNumber maxoff;

				LockBuffer(buf, BUFFER_LOCK_SHARE);
				page = BufferGetPage(buf);
				maxoff = PageGetMaxOffsetNumber(page);
				for (OffsetNumber off = FirstOffsetNumber; off <= maxoff && n < maxRows; off++)
				{
					IndexTuple	itup = GpuivfPageTuple(page, off);
					bool		isnull;
					Datum		value;

					if (itup == NULL)
						continue;
					value = index_getattr(itup, 1, tupdesc, &isnull);
					if (isnull)
						continue;
					cand[n].distance = DatumGetFloat8(FunctionCall2Coll(procinfo, collation, value,
																		PointerGetDatum(q)));
					cand[n].isnull = false;
					cand[n].tid = itup->t_tid;
					n++;
				}
				b = GpuivfPageGetOpaque(page)->nextblkno;
				UnlockReleaseBuffer(buf);
				CHECK_FOR_INTERRUPTS();
			}
			if (n == before)
				break;			/* no rows */
		}
		GpuivfHeapify(cand, n);
		us = UsSince(t0);
		MemoryContextSwitchTo(ctx);
		MemoryContextReset(rowCtx);
		if (n == 0)
			break;
		if (best < 0 || us * 1000.0 / n < best)
			best = us * 1000.0 / n;
		rows = n;
	}
	FreeAccessStrategy(bas);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	*nrows = rows;
	return best;
}

/* Mean round trip of pings to the service (us), or -1 when it does not run */
static double
MeasurePing(void)
{
	int			state = CodevecGpuServiceDescribe(NULL, NULL, 0);
	dsm_segment *seg;
	instr_time	t0;
	double		us;

	if (state != GPU_SERVICE_READY && state != GPU_SERVICE_NO_DEVICE)
		return -1;
	seg = dsm_create(sizeof(GpuRequestHeader), 0);
	INSTR_TIME_SET_CURRENT(t0);
	for (int i = 0; i < 18; i++)
	{
		GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);

		if (i == 2)
			INSTR_TIME_SET_CURRENT(t0);
		memset(req, 0, sizeof(*req));
		req->kind = GPU_REQUEST_PING;
		(void) CodevecGpuCall(seg);
	}
	us = UsSince(t0) / 16;
	dsm_detach(seg);
	return us;
}

const GpuivfRoutingModel *
GpuivfGpuModel(Relation index, const GpuivfMetaPageData *meta)
{
	GpuivfMetric metric = (GpuivfMetric) meta->metric;
	int			dims = meta->dims;
	GpuivfRoutingModel *m = NULL;

	for (int i = 0; i < nmodels && m == NULL; i++)
		if (models[i].metric == (int) metric && models[i].dims == dims &&
			models[i].kernels == codevec_kernels->name)
			m = &models[i];
	if (m == NULL)
	{
		GpuivfRoutingModel fresh;

		memset(&fresh, 0, sizeof(fresh));
		fresh.metric = (int) metric;
		fresh.dims = dims;
		fresh.kernels = codevec_kernels->name;
		fresh.cpuNsPerRow = index != NULL ?
			CalibrateCpuOnIndex(index, meta, &fresh.calibrationRows) : -1;
		fresh.onIndex = fresh.cpuNsPerRow > 0;
		if (!fresh.onIndex)
			fresh.cpuNsPerRow = CalibrateCpu(metric, dims, &fresh.calibrationRows);
		m = &models[nmodels < MODEL_ENTRIES ? nmodels++ : (int) ((metric * 31 + dims) % MODEL_ENTRIES)];
		*m = fresh;
	}
	/* the service may have started since the last try */
	if (ping_us < 0)
		ping_us = MeasurePing();
	m->pingUs = ping_us;
	m->launchUs = GPUIVF_GPU_LAUNCH_US;
	m->recheckUs = GPUIVF_GPU_FIRST_K * m->cpuNsPerRow / 1000.0;
	m->gpuNsPerRow = dims * 2.0 / GPUIVF_GPU_BYTES_PER_NS;
	m->gpuFixedUs = ping_us < 0 ? -1 : ping_us + m->launchUs + m->recheckUs;
	if (m->gpuFixedUs < 0)
		m->breakEven = -2;		/* unknown: no service to ping */
	else if (m->cpuNsPerRow <= m->gpuNsPerRow)
		m->breakEven = -1;		/* the GPU never wins */
	else
		m->breakEven = m->gpuFixedUs * 1000.0 / (m->cpuNsPerRow - m->gpuNsPerRow);
	m->knnUsObserved = knn_n > 0 ? knn_us_sum / knn_n : -1;
	m->knnObserved = knn_n;
	return m;
}

PG_FUNCTION_INFO_V1(codevec_gpu_routing);
/*
 * codevec_gpu_routing: this session's routing model for a gpuivf index:
 * the measured constants, the break-even row count, the threshold
 * codevec.device = auto applies now and where a scan of the index runs
 * now and why. Measures on first use. ERROR 42809 for another relation.
 */
Datum
codevec_gpu_routing(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"l2", "ip", "cosine"};
	Oid			indexid = PG_GETARG_OID(0);
	TupleDesc	tupdesc;
	Relation	index;
	GpuivfMetaPageData meta;
	GpuivfRouteData route;
	const GpuivfRoutingModel *m;
	Datum		values[18];
	bool		nulls[18];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "codevec_gpu_routing: return type must be a row type");
	RequireIndexTableSelect(indexid);
	index = relation_open(indexid, AccessShareLock);
	if (index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->amgettuple != gpuivfgettuple)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a gpuivf index", RelationGetRelationName(index))));
	GpuivfReadMeta(index, &meta);
	m = GpuivfGpuModel(index, &meta);
	GpuivfRouteDecide(index, &meta, &route);
	relation_close(index, AccessShareLock);

	memset(nulls, 0, sizeof(nulls));
	values[0] = CStringGetTextDatum(meta.metric >= 0 && meta.metric < 3 ? names[meta.metric] : "?");
	values[1] = Int32GetDatum(meta.dims);
	values[2] = Float8GetDatum(route.reltuples);
	values[3] = CStringGetTextDatum(m->kernels);
	values[4] = Int64GetDatum(m->calibrationRows);
	values[5] = CStringGetTextDatum(m->onIndex ? "index" : "synthetic");
	values[6] = Float8GetDatum(m->cpuNsPerRow);
	values[7] = Float8GetDatum(meta.dims * 4.0 / Max(m->cpuNsPerRow, 1e-3) * 1e9 / (1024 * 1024));
	values[8] = Float8GetDatum(m->pingUs);
	nulls[8] = m->pingUs < 0;
	values[9] = Float8GetDatum(m->launchUs);
	values[10] = Float8GetDatum(m->recheckUs);
	values[11] = Float8GetDatum(m->gpuNsPerRow);
	values[12] = Float8GetDatum(m->gpuFixedUs);
	nulls[12] = m->gpuFixedUs < 0;
	values[13] = Int64GetDatum((int64) ceil(m->breakEven));
	nulls[13] = m->breakEven < 0;
	/* the threshold auto applies: the setting, else the break-even */
	if (gpuivf_gpu_min_rows > 0)
		values[14] = Int64GetDatum(gpuivf_gpu_min_rows);
	else
	{
		values[14] = values[13];
		nulls[14] = gpuivf_gpu_min_rows < 0 || nulls[13];
	}
	values[15] = Float8GetDatum(m->knnUsObserved);
	nulls[15] = m->knnObserved == 0;
	values[16] = CStringGetTextDatum(route.gpu ? "GPU" : route.error ? "none" : "CPU");
	values[17] = CStringGetTextDatum(route.gpu ? route.detail : route.error ? route.why : route.detail);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

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
 * The message of UploadIndex's last status other than 0 (the service's, or
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
UploadIndex(Relation index, const GpuIndexKey *key, int dims)
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
		return UploadIndex(index, key, dims);
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
	return UploadIndex(index, key, dims);
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
	/* the index as it is now: rows inserted meanwhile, a VACUUM */
	GpuivfReadMeta(index, &meta);
	key->changeCount = meta.changeCount;
	key->insertCount = meta.insertCount;
	return true;
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
double
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
	float	   *qx;
	GpuivfMetaPageData meta;
	GpuivfMetric metric = GpuivfGetMetric(index);
	GpuIndexKey key;
	dsm_segment *seg;
	GpuKnnRequest *r;
	int			status = GPU_STATUS_FAILED;
	int			nvalid = 0;
	double		qnorm = 0,
				bound;
	Codevec    *v;
	MemoryContext old;
	bool		first = so->gpuK == 0;	/* the scan's first request */
	char		errbuf[256] = "";
	int			nprobe;
	instr_time	t0,
				tstart;

	GpuivfReadMeta(index, &meta);
	GpuivfCheckQueryDims(metric, meta.dims, q);
	qx = palloc(sizeof(float) * meta.dims);
	VecElemToFloats(q, qx);		/* halfvec: exact */
	key.dbid = MyDatabaseId;
	key.indexid = RelationGetRelid(index);
	key.relfilenode = CodevecRelFileNumber(index);
	key.changeCount = meta.changeCount;
	key.insertCount = meta.insertCount;

	/* IVF: the scan's first batch of lists, nearest centroids first */
	nprobe = meta.lists > 1 ? Min(so->probes, meta.lists) : 0;
	seg = CodevecGpuSessionSegment(GpuKnnRequestSizeProbes(1, meta.dims, k, nprobe));
	r = (GpuKnnRequest *) dsm_segment_address(seg);
	INSTR_TIME_SET_CURRENT(tstart);
	for (int attempt = 0;; attempt++)
	{
		/*
		 * Past the first load or append, the copy is changing under us
		 * (other backends loading or appending it): wait a little, with the
		 * index as it is now, until codevec.gpu_timeout.
		 */
		if (!GpuivfGpuBackoff(index, attempt, tstart, &key))
		{
			snprintf(errbuf, sizeof(errbuf),
					 "the index copy kept changing for %d ms (other sessions loading or appending it; last: %s)",
					 codevec_gpu_timeout_ms, errbuf[0] ? errbuf : "no current copy");
			break;
		}
		memset(r, 0, sizeof(*r));
		r->hdr.kind = GPU_REQUEST_KNN;
		r->key = key;
		r->metric = (int32) metric;	/* same numbering as cuda/knn.h */
		r->dims = meta.dims;
		r->nq = 1;
		r->k = k;
		r->nprobe = nprobe;
		memcpy(GpuKnnQueries(r), qx, sizeof(float) * meta.dims);
		for (int i = 0; i < nprobe; i++)
			GpuKnnProbes(r)[i] = so->listOrder[i];
		INSTR_TIME_SET_CURRENT(t0);
		status = CodevecGpuCall(seg);
		so->stats.requests++;
		if (status == 0 && attempt == 0)
		{
			/* the round trips the routing model reports beside its own */
			knn_us_sum += UsSince(t0);
			knn_n++;
		}
		if (status != GPU_STATUS_NOT_LOADED && status != GPU_STATUS_STALE)
		{
			if (status != 0)
				strlcpy(errbuf, r->hdr.errmsg, sizeof(errbuf));
			break;
		}
		/* no copy or another version: load it; rows inserted since: append them */
		{
			bool		appended;

			status = GpuivfGpuRefresh(index, &key, meta.dims, r, &appended);
			if (appended)
				so->stats.appends++;
			else
				so->stats.uploads++;
		}
		if (GpuivfGpuContended(status))
		{
			strlcpy(errbuf, upload_errmsg, sizeof(errbuf));
			continue;			/* another backend came first: ask again */
		}
		if (status != 0)
		{
			strlcpy(errbuf, upload_errmsg, sizeof(errbuf));
			break;
		}
	}
	if (status != 0)
	{
		if (status == GPU_STATUS_NO_MEMORY)
			RememberNoRoom(index, errbuf[0] ? errbuf :
						   "the index copy does not fit codevec.gpu_memory_limit");
		so->stats.fallbacks++;
		/* cuda: ERROR; auto: one WARNING per session, counted, then the CPU */
		GpuivfGpuFallback(index, status, errbuf, so->stats.fallbackWhy,
						  sizeof(so->stats.fallbackWhy));
		return false;
	}
	if (first)
		so->stats.gpuScans++;
	so->stats.copyRows = r->nrows;

	for (int j = 0; j < meta.dims; j++)
		qnorm += (double) qx[j] * qx[j];
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
	MemoryContextSwitchTo(old);
	so->gpuNReady = 0;
	so->gpuPos = 0;
	for (int i = 0; i < k; i++)
	{
		ItemPointer tid = &GpuKnnTids(r)[i];

		if (!ItemPointerIsValid(tid))
			continue;
		nvalid++;
		so->stats.candidates++;
		if (GpuivfGpuReturned(scan, tid))
			continue;
		/* the row as the indexed type stores it (halfvec: the same bits) */
		v = VecElemFromFloats(VecElemSize(q), GpuKnnRows(r) + (Size) i * meta.dims, meta.dims);
		so->gpuReady[so->gpuNReady].distance =
			DatumGetFloat8(FunctionCall2Coll(so->procinfo, so->collation,
											 PointerGetDatum(v), so->query));
		pfree(v);
		so->gpuReady[so->gpuNReady].isnull = false;
		so->gpuReady[so->gpuNReady].tid = *tid;
		so->gpuNReady++;
	}
	so->gpuK = k;
	/* fewer than k: every row of the copy came (unless masked rows took room) */
	so->gpuAll = nvalid < k && !r->partial;
	bound = so->gpuAll ? get_float8_infinity() :
		nvalid == 0 ? -get_float8_infinity() :
		LowerBound(metric, GpuKnnDistances(r)[nvalid - 1], meta.dims, qnorm, r->maxnorm);
	pfree(qx);

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
	{
		/* past the largest batch the scan goes on on the CPU */
		if (!so->gpuAll && so->gpuK >= GPUIVF_GPU_MAX_K)
		{
			so->stats.fallbacks++;
			snprintf(so->stats.fallbackWhy, sizeof(so->stats.fallbackWhy),
					 "past %d GPU candidates the scan goes on on the CPU", GPUIVF_GPU_MAX_K);
		}
		return false;
	}
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
	r->metric = (int32) metric;		/* same numbering as cuda/knn.h */
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
	r->key.changeCount = old->changeCount;
	r->key.insertCount = old->insertCount;
	r->newChangeCount = old->changeCount + 1;
	r->nblocks = nblocks;
	r->ntids = ntids;
	if (nblocks > 0)
		memcpy(GpuMaskBlocks(r), blocks, sizeof(BlockNumber) * nblocks);
	if (ntids > 0)
		memcpy(GpuMaskTids(r), tids, sizeof(ItemPointerData) * ntids);
	(void) CodevecGpuCall(seg);
	dsm_detach(seg);
}
