/*
 * gpuivfroute.c
 *	  Where a gpuivf scan runs: the routing decision (codevec.device, the
 *	  GPU service's state, gpuivf.gpu_min_rows or the measured break-even,
 *	  codevec.gpu_memory_limit) that scans, codevec_knn, the cost estimate
 *	  (gpuivfcostestimate, here) and EXPLAIN share, and the routing model
 *	  it measures on first use (codevec_gpu_routing() shows it).
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/relscan.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "gpuivf.h"
#include "gpuservice.h"
#include "distance.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "relacl.h"

/* the opclasses' distance functions (distance.c), timed by the routing model */
extern Datum l2_distance(PG_FUNCTION_ARGS);
extern Datum negative_inner_product(PG_FUNCTION_ARGS);
extern Datum cosine_distance(PG_FUNCTION_ARGS);

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

/* GpuivfRouteNoRoom: see gpuivf.h */
void
GpuivfRouteNoRoom(Relation index, const char *why)
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
 * The cost estimate: both paths priced by the routing model
 * --------------------------------------------------------------------- */

/*
 * Estimate the cost of an ordered gpuivf scan. The CPU scan reads every
 * page of the probed lists and computes one distance per vector before it
 * returns its first row, so nearly all the cost is startup cost; then only
 * the rows the executor asks for are fetched from the heap. A scan the GPU
 * service will answer (GpuivfRouteDecide: the scan's own decision) costs
 * the routing model's measured GPU time, in the units in which the CPU
 * path's per-row cost prices its measured time per row.
 */
void
gpuivfcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				   Cost *indexStartupCost, Cost *indexTotalCost,
				   Selectivity *indexSelectivity, double *indexCorrelation,
				   double *indexPages)
{
	GenericCosts costs;
	int			lists;
	double		fraction;
	double		limit;
	Relation	index;
	GpuivfRouteData route;
	const GpuivfRoutingModel *model = NULL;

	/* only ORDER BY scans: without an ordering operator the index is useless */
	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		CodevecDisableIndexPath(path);
		return;
	}

	index = index_open(path->indexinfo->indexoid, NoLock);
	lists = GpuivfGetLists(index);
	route.gpu = false;
	if (codevec_device != CODEVEC_DEVICE_CPU)
	{
		GpuivfMetaPageData meta;

		GpuivfReadMeta(index, &meta);
		GpuivfRouteDecide(index, &meta, &route);
		if (route.gpu)
			model = GpuivfGpuModel(index, &meta);
	}
	index_close(index, NoLock);
	fraction = lists <= 1 ? 1.0 : Min(1.0, (double) Min(gpuivf_probes, lists) / lists);

	MemSet(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);

	/* rows the executor is expected to fetch: the LIMIT, else all */
	limit = root->limit_tuples > 0 ? root->limit_tuples : path->indexinfo->tuples;

	/*
	 * Startup: the probed share of the index pages and one distance per
	 * vector (the distance function's cost, in cpu_operator_cost units),
	 * plus the heapify. The heap rows themselves are fetched as returned.
	 */
	*indexStartupCost = fraction * (costs.numIndexPages * seq_page_cost +
									path->indexinfo->tuples *
									(cpu_index_tuple_cost + cpu_operator_cost));

	/*
	 * A scan the GPU service will answer: the fixed cost of a request
	 * (round trip, launch, recheck) and the device's time per row scanned
	 * (IVF: the probed share), priced
	 * at the CPU path's units per measured nanosecond; the first scan after
	 * a change also uploads the index (not counted: it is paid once).
	 */
	if (route.gpu && model != NULL && model->gpuFixedUs >= 0 && model->cpuNsPerRow > 0)
	{
		double		unitsPerNs = (cpu_index_tuple_cost + cpu_operator_cost) / model->cpuNsPerRow;

		*indexStartupCost = unitsPerNs * (model->gpuFixedUs * 1000.0 +
										  fraction * path->indexinfo->tuples * model->gpuNsPerRow);
	}
	else if (route.gpu)
		*indexStartupCost = 100 * cpu_operator_cost +
			Min(limit, path->indexinfo->tuples) * cpu_operator_cost;
	*indexTotalCost = *indexStartupCost +
		Min(limit, path->indexinfo->tuples) * (random_page_cost + cpu_tuple_cost);
	*indexSelectivity = 1.0;
	*indexCorrelation = 0;
	*indexPages = fraction * costs.numIndexPages;
}

/* ---------------------------------------------------------------------
 * The routing model (gpuivf.gpu_min_rows = 0)
 *
 * The CPU scan's cost grows with the rows; the GPU path's is nearly
 * constant (the device reads an fp16 row in about a nanosecond), so there
 * is a row count below which the CPU is faster. Both sides are measured
 * on first use and cached: in this backend, and where codevec is
 * preloaded also in shared memory for the server's other backends
 * (cpuNsPerRow and pingUs: CodevecGpuCalibrationGet / CodevecGpuPingGet),
 * so that only the first session pays the few milliseconds:
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

/* GpuivfRouteObserveKnn: see gpuivf.h */
void
GpuivfRouteObserveKnn(double us)
{
	knn_us_sum += us;
	knn_n++;
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
		us = GpuivfUsSince(t0);
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
		us = GpuivfUsSince(t0);
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

/* Mean round trip of pings to the service (us), or -1 when it does not run or a ping is not answered */
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
		if (CodevecGpuCall(seg) != 0)
		{
			/* stopped or restarting meanwhile: no round trip measured */
			dsm_detach(seg);
			return -1;
		}
	}
	us = GpuivfUsSince(t0) / 16;
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
		CodevecCalibration cal;

		memset(&fresh, 0, sizeof(fresh));
		fresh.metric = (int) metric;
		fresh.dims = dims;
		fresh.kernels = codevec_kernels->name;
		if (CodevecGpuCalibrationGet((int) metric, dims, fresh.kernels, &cal))
		{
			/* another backend of this server measured it */
			fresh.cpuNsPerRow = cal.cpuNsPerRow;
			fresh.calibrationRows = cal.rows;
			fresh.onIndex = cal.onIndex;
		}
		else
		{
			fresh.cpuNsPerRow = index != NULL ?
				CalibrateCpuOnIndex(index, meta, &fresh.calibrationRows) : -1;
			fresh.onIndex = fresh.cpuNsPerRow > 0;
			if (!fresh.onIndex)
				fresh.cpuNsPerRow = CalibrateCpu(metric, dims, &fresh.calibrationRows);
			cal.cpuNsPerRow = fresh.cpuNsPerRow;
			cal.rows = fresh.calibrationRows;
			cal.onIndex = fresh.onIndex;
			CodevecGpuCalibrationPut((int) metric, dims, fresh.kernels, &cal);
		}
		m = &models[nmodels < MODEL_ENTRIES ? nmodels++ : (int) ((metric * 31 + dims) % MODEL_ENTRIES)];
		*m = fresh;
	}
	/* the service may have started since the last try */
	if (ping_us < 0)
		ping_us = CodevecGpuPingGet();
	if (ping_us < 0)
	{
		ping_us = MeasurePing();
		CodevecGpuPingPut(ping_us);
	}
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
 * now and why. Measures on first use. ERROR 42809 for another relation,
 * 42501 without SELECT on the index's table (relacl.h).
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
	if (index->rd_rel->relkind != RELKIND_INDEX ||
		index->rd_rel->relam != get_index_am_oid("gpuivf", true))
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
