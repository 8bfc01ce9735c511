/*
 * gpuivf.h
 *	  The gpuivf index access method: every constant, struct and prototype.
 *
 * gpuivf answers ORDER BY emb <op> q [LIMIT k] for the opclasses
 * codevec_l2_ops (<->), codevec_ip_ops (<#>) and codevec_cosine_ops (<=>).
 * WITH (lists = 1), the default, is an exact flat index: every vector is
 * compared with the query and rows come back in exactly the order of a
 * sequential scan sorted by (distance, ctid). WITH (lists = N > 1) it is an
 * inverted-file (IVF) index: k-means centroids partition the vectors and a
 * scan visits the gpuivf.probes lists whose centroids are nearest.
 *
 * On-disk layout (all pages WAL-logged; GenericXLog after the build):
 *
 *	block 0        metapage: GpuivfMetaPageData
 *	blocks 1..L    list pages: GpuivfListData entries, one per list
 *	               ({first data page, insert page, centroid[dims]})
 *	then           data pages, one chain per list (GpuivfPageOpaque.nextblkno),
 *	               holding index tuples (heap TID + the codevec)
 *
 * The CPU scan reads the probed lists, computes every distance with the
 * opclass's own distance function (so values are bit-identical to the
 * operator's) and returns rows from a binary heap ordered by (distance,
 * heap TID): the executor may keep asking (WHERE filters), and the scan
 * keeps producing rows in order until it stops. The GPU service may answer
 * the first batch (the whole of a flat index, the first gpuivf.probes lists
 * of an IVF one) with exactly the same rows and distances (gpuivfgpu.c);
 * src/README.md draws the scan's phases.
 */
#ifndef GPUIVF_H
#define GPUIVF_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/itup.h"
#include "access/reloptions.h"
#include "portability/instr_time.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "storage/bufmgr.h"
#include "utils/relcache.h"

#include "vector.h"
#include "compat.h"

#define GPUIVF_MAGIC_NUMBER		0x67707569	/* "gpui" */
#define GPUIVF_VERSION			2	/* 2: insertCount apart from deleteCount */
#define GPUIVF_METAPAGE_BLKNO	0
#define GPUIVF_HEAD_BLKNO		1	/* first list page */

#define GPUIVF_DEFAULT_LISTS	1
#define GPUIVF_MIN_LISTS		1
#define GPUIVF_MAX_LISTS		32768
#define GPUIVF_DEFAULT_PROBES	1
#define GPUIVF_MAX_DIM			2000	/* a centroid must fit on a list page */

/* k-means: samples per list, iterations (Lloyd 1982, k-means++ seeding) */
#define GPUIVF_SAMPLES_PER_LIST	50
#define GPUIVF_MIN_SAMPLES		10000
#define GPUIVF_KMEANS_ITERATIONS 10

/*
 * Build phases reported in pg_stat_progress_create_index (its "phase"
 * column through gpuivfbuildphasename; 1 is core's "initializing"), as
 * pgvector's builds report theirs
 */
#define GPUIVF_PHASE_SAMPLE		2	/* IVF: reservoir sample of the rows */
#define GPUIVF_PHASE_KMEANS		3	/* IVF: k-means on the sample */
#define GPUIVF_PHASE_ASSIGN		4	/* IVF: every row to its nearest list */
#define GPUIVF_PHASE_LOAD		5	/* rows written to the index pages */

/* Support function numbers */
#define GPUIVF_DISTANCE_PROC	1

/*
 * Distance kind, from the opclass's distance function (GpuivfGetMetric).
 * Stored in the metapage; the same numbers as cuda/knn.h's CODEVEC_METRIC_*
 * (GpuivfCudaMetric asserts it where both are known).
 */
typedef enum GpuivfMetric
{
	GPUIVF_METRIC_L2 = 0,		/* l2_distance, <-> */
	GPUIVF_METRIC_IP = 1,		/* negative_inner_product, <#> */
	GPUIVF_METRIC_COSINE = 2	/* cosine_distance, <=> */
} GpuivfMetric;

/* Reloptions: WITH (lists = N) */
typedef struct GpuivfOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			lists;
} GpuivfOptions;

/* Metapage, block 0 */
typedef struct GpuivfMetaPageData
{
	uint32		magicNumber;
	uint32		version;
	int32		dims;			/* dimensions of every vector in the index */
	int32		lists;			/* number of lists */
	int32		metric;			/* GpuivfMetric the centroids were trained for */
	BlockNumber listPages;		/* list pages follow the metapage */
	uint64		deleteCount;	/* bumped when a VACUUM removes vectors
								 * (named changeCount before; same place):
								 * copies kept elsewhere (the GPU service)
								 * mask those rows or are reloaded */
	uint64		insertCount;	/* bumped by every insert: copies elsewhere
								 * lack the rows added since (flat: those
								 * appended to the chain, their delta tier;
								 * IVF: they are loaded again) */
} GpuivfMetaPageData;

typedef GpuivfMetaPageData *GpuivfMetaPage;

/* One list: where its chain starts and ends, and its centroid */
typedef struct GpuivfListData
{
	BlockNumber startPage;		/* first data page of the chain */
	BlockNumber insertPage;		/* last page: where inserts go */
	Codevec		centroid;		/* header + dims floats; ignored when lists = 1 */
} GpuivfListData;

typedef GpuivfListData *GpuivfList;

/* Special space of list and data pages */
typedef struct GpuivfPageOpaqueData
{
	BlockNumber nextblkno;		/* next page of the chain, or InvalidBlockNumber */
	uint16		unused;
	uint16		page_id;		/* GPUIVF_PAGE_ID, for tools like pg_filedump */
} GpuivfPageOpaqueData;

typedef GpuivfPageOpaqueData *GpuivfPageOpaque;

#define GPUIVF_PAGE_ID	0xFF90

#define GpuivfPageGetOpaque(page)	((GpuivfPageOpaque) PageGetSpecialPointer(page))
#define GpuivfPageGetMeta(page)		((GpuivfMetaPage) PageGetContents(page))
#define GPUIVF_LIST_SIZE(dims)		MAXALIGN(offsetof(GpuivfListData, centroid) + CODEVEC_SIZE(dims))

/*
 * GpuivfPageTuple: the index tuple at off of a locked data page, or NULL
 * where readers see none (an unused line pointer, or one VACUUM marked
 * LP_DEAD on a chain's last page, gpuivfvacuum.c).
 */
static inline IndexTuple
GpuivfPageTuple(Page page, OffsetNumber off)
{
	ItemId		iid = PageGetItemId(page, off);

	if (!ItemIdIsUsed(iid) || ItemIdIsDead(iid))
		return NULL;
	return (IndexTuple) PageGetItem(page, iid);
}

/* A (distance, heap TID) candidate of a scan */
typedef struct GpuivfCandidate
{
	double		distance;
	ItemPointerData tid;
	bool		isnull;			/* distance is NULL: NULL query */
} GpuivfCandidate;

/*
 * What the scans of one index scan node did, summed over its rescans, for
 * EXPLAIN ANALYZE (gpuivfexplain.c). Filled by gpuivfgpu.c; never reset by
 * a rescan.
 */
typedef struct GpuivfScanStats
{
	int64		scans;			/* scans started (one per rescan that ran) */
	int64		gpuScans;		/* answered by the GPU service */
	int64		cpuScans;		/* routed to the CPU from the start */
	int64		fallbacks;		/* GPU scans that went on on the CPU */
	int64		requests;		/* KNN requests sent */
	int64		prefetched;		/* of them, posted ahead by codevec_gpu_prefetch */
	int64		candidates;		/* candidates the service returned */
	int64		gpuRows;		/* rows returned from GPU candidates */
	int64		uploads;		/* index copies streamed to the service */
	int64		appends;		/* inserted rows sent to a copy's delta tier */
	int64		copyRows;		/* rows in the device copy, last answer */
	char		device[128];	/* the GPU, when a scan was routed to it */
	char		cpuWhy[256];	/* why the last CPU-routed scan was */
	char		fallbackWhy[256];	/* why the last fallback happened */
} GpuivfScanStats;

/*
 * Where an index scan stands. gpuivfrescan sets START; only gpuivfgettuple
 * moves it on:
 *
 *	START -> GPU	the GPU service answered the first request (GpuivfGpuFetch)
 *	START -> CPU	routed to the CPU, or the GPU could not answer
 *	GPU -> CPU		an IVF scan's next lists, or past the GPU's largest batch
 *					(continuation: rows the GPU phase returned are skipped)
 *	GPU, CPU -> DONE	no row left
 */
typedef enum GpuivfScanPhase
{
	GPUIVF_SCAN_START = 0,
	GPUIVF_SCAN_GPU,
	GPUIVF_SCAN_CPU,
	GPUIVF_SCAN_DONE
} GpuivfScanPhase;

/* Scan state */
typedef struct GpuivfScanOpaqueData
{
	GpuivfScanPhase phase;
	FmgrInfo   *procinfo;		/* the opclass's distance function */
	Oid			collation;
	Datum		query;			/* detoasted query codevec, or 0 when NULL */
	int			dims;
	int			lists;
	int			probes;
	int			nextList;		/* lists probed so far, in centroid order */
	int		   *listOrder;		/* list numbers, nearest centroid first */
	BlockNumber *listStarts;	/* start page of each list */
	GpuivfCandidate *heap;		/* binary min-heap of candidates */
	int64		nheap;
	int64		maxheap;
	MemoryContext tmpCtx;		/* per-scan allocations */

	/*
	 * The GPU phase (gpuivfgpu.c writes these, gpuivfgettuple reads them):
	 * the last answer's candidates proven exact, in order
	 */
	bool		gpuAll;			/* the last answer held every row */
	int			gpuK;			/* candidates asked for last */
	int64		gpuRows0;		/* stats.gpuRows when this scan started */
	GpuivfCandidate *gpuReady;	/* exact (distance, TID), ascending */
	int			gpuNReady;
	int			gpuPos;			/* next ready candidate to return */
	struct HTAB *returned;		/* heap TIDs returned by the GPU phase */

	GpuivfScanStats stats;		/* for EXPLAIN ANALYZE */
} GpuivfScanOpaqueData;

typedef GpuivfScanOpaqueData *GpuivfScanOpaque;

/* GUCs */
extern int	gpuivf_probes;
extern int	gpuivf_gpu_min_rows;
extern bool gpuivf_prefetch;

/* the most candidates one GPU request asks for (cuda/knn.h's limit) */
#define GPUIVF_GPU_MAX_K		1024
#define GPUIVF_GPU_FIRST_K		64

/* gpuivf.c */
extern void GpuivfInit(void);
PGDLLEXPORT Datum gpuivfhandler(PG_FUNCTION_ARGS);

/* gpuivfbuild.c */
extern IndexBuildResult *gpuivfbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void gpuivfbuildempty(Relation index);

/* gpuivfbuildphasename: the name of a GPUIVF_PHASE_* (ambuildphasename) */
extern char *gpuivfbuildphasename(int64 phasenum);

/* gpuivfinsert.c */
extern bool gpuivfinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
						 Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
						 IndexInfo *indexInfo);

/* gpuivfscan.c */
extern IndexScanDesc gpuivfbeginscan(Relation index, int nkeys, int norderbys);
extern void gpuivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
extern bool gpuivfgettuple(IndexScanDesc scan, ScanDirection dir);
extern void gpuivfendscan(IndexScanDesc scan);

/* gpuivfroute.c */

/*
 * gpuivfcostestimate (amcostestimate): an ordered scan's cost, the CPU
 * path's or, where GpuivfRouteDecide sends it to the GPU, the routing
 * model's; an unordered scan is priced out.
 */
extern void gpuivfcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
							   Cost *indexStartupCost, Cost *indexTotalCost,
							   Selectivity *indexSelectivity, double *indexCorrelation,
							   double *indexPages);

/*
 * Where a scan of a gpuivf index runs, decided without side effects by
 * GpuivfRouteDecide for the scan (GpuivfGpuRoute), the cost estimate and
 * EXPLAIN alike, so the three agree.
 */
typedef struct GpuivfRouteData
{
	bool		gpu;			/* the GPU service answers the scan */
	bool		error;			/* not gpu, and the scan raises an error
								 * (codevec.device = cuda): sqlstate, detail */
	int			sqlstate;		/* not gpu: 0 = the CPU silently, else the code
								 * for CodevecGpuFallback (auto: one WARNING
								 * per session; cuda: ERROR) */
	double		reltuples;		/* rows the decision assumed (pg_class) */
	double		minRows;		/* the threshold applied; -1: none */
	bool		measured;		/* minRows is the measured break-even */
	char		detail[256];	/* gpu: the device's name; else why the CPU
								 * (as EXPLAIN prints it) */
	char		why[256];		/* not gpu: the reason CodevecGpuFallback gets */
} GpuivfRouteData;

typedef GpuivfRouteData *GpuivfRoute;

/*
 * GpuivfRouteDecide: where a scan of index (its metapage meta) runs now:
 * codevec.device, lists, the GPU service's state, gpuivf.gpu_min_rows
 * (0: the measured break-even, GpuivfGpuBreakEven) against reltuples, and
 * whether the index copy fits codevec.gpu_memory_limit. Never raises for
 * the decision itself (the measurement may: a failed ping).
 */
extern void GpuivfRouteDecide(Relation index, const GpuivfMetaPageData *meta,
							  GpuivfRoute route);

/*
 * GpuivfGpuRoute: whether this scan (flat, or an IVF index's first batch
 * of lists) goes to the GPU service: GpuivfRouteDecide, then (not gpu) CodevecGpuFallback when the
 * decision says so: ERROR under codevec.device = cuda, one WARNING per
 * session under auto for an index over the memory cap.
 */
extern bool GpuivfGpuRoute(IndexScanDesc scan);

/*
 * GpuivfGpuCopyBytes: device bytes the GPU service needs for a copy of
 * rows vectors of dims (fp32 + fp16 rows, norms): the formula of
 * gpucopies.c's RunUpload, which refuses a copy over
 * codevec.gpu_memory_limit.
 */
static inline int64
GpuivfGpuCopyBytes(int64 rows, int dims)
{
	return rows * dims * 6 + rows * 8;
}

/*
 * The routing model (gpuivf.gpu_min_rows = 0), per backend, measured on
 * first use and cached: a CPU scan of n rows costs n * cpuNsPerRow (the
 * scan's inner loop timed on the first index of that metric and dims it
 * meets); a
 * GPU scan costs gpuFixedUs (microseconds: round trip measured by pings, a
 * kernel-launch constant, the exact recheck of the first candidates) +
 * n * gpuNsPerRow (nanoseconds: the device's scan of fp16 rows).
 * breakEven = gpuFixedUs * 1000 / (cpuNsPerRow - gpuNsPerRow) rows: below
 * it the CPU wins. gpuFixedUs and breakEven are negative when no service
 * answers pings (gpuivfroute.c has the whole model).
 */
typedef struct GpuivfRoutingModel
{
	int			metric;			/* GpuivfMetric */
	int			dims;
	const char *kernels;		/* codevec.cpu_kernels in use */
	int64		calibrationRows;	/* rows timed */
	bool		onIndex;		/* timed on an index's rows, else synthetic */
	double		cpuNsPerRow;
	double		pingUs;
	double		launchUs;		/* constant GPUIVF_GPU_LAUNCH_US */
	double		recheckUs;		/* GPUIVF_GPU_FIRST_K exact distances */
	double		gpuNsPerRow;
	double		gpuFixedUs;
	double		breakEven;		/* rows */
	double		knnUsObserved;	/* mean KNN round trip this backend saw, or -1 */
	int64		knnObserved;
} GpuivfRoutingModel;

/* assumed device time per launch sequence of a KNN request (similarity,
 * top-k, gather, copies back) and device bandwidth for the fp16 scan */
#define GPUIVF_GPU_LAUNCH_US		30.0
#define GPUIVF_GPU_BYTES_PER_NS		500.0	/* 500 GB/s: a fraction of HBM */

/*
 * GpuivfGpuModel: the routing model for the metric and dims of meta,
 * measuring what neither this backend nor, where codevec is preloaded,
 * another backend of the server has measured yet (a few ms once: the CPU
 * scan's loop on index's rows, or on synthetic rows when index is NULL or
 * empty; pings when the service runs). May raise when a ping fails.
 */
extern const GpuivfRoutingModel *GpuivfGpuModel(Relation index, const GpuivfMetaPageData *meta);

/*
 * GpuivfRouteNoRoom: the service refused index's copy for
 * codevec.gpu_memory_limit (why): route its next scans to the CPU at once
 * while its relfilenode and the cap stay the same.
 */
extern void GpuivfRouteNoRoom(Relation index, const char *why);

/*
 * GpuivfRouteObserveKnn: a KNN round trip of us microseconds that a scan
 * saw, reported by codevec_gpu_routing() beside the model's estimate.
 */
extern void GpuivfRouteObserveKnn(double us);

/* gpuivfgpu.c */

/*
 * GpuivfGpuFetch: ask the service for the first k candidates (loading the
 * index copy when it has none), recompute their exact distances and keep,
 * in (distance, TID) order, those that no other row can precede; false
 * when the GPU cannot answer (no device, no room): the scan then runs on
 * the CPU.
 */
extern bool GpuivfGpuFetch(IndexScanDesc scan, int k);

/*
 * GpuivfCandidatesFor: how many candidates to ask the GPU for so that a
 * scan taking rows rows needs one request: GPUIVF_GPU_FIRST_K up to that
 * many rows, else the largest count at or above rows that the fp16
 * kernels answer with the same buffers (cuda/knn.h,
 * codevec_knn_k_same_buffers: 101 -> 111), at most GPUIVF_GPU_MAX_K.
 */
extern int	GpuivfCandidatesFor(int64 rows);

/*
 * GpuivfFirstK: the candidates a scan of index asks the GPU for first:
 * GpuivfCandidatesFor what this backend's last scan of the index took
 * (GPUIVF_GPU_FIRST_K before any; gpuivfscan.c).
 */
extern int	GpuivfFirstK(Oid index);

/*
 * GpuivfGpuPostAhead: post the first request of a coming scan of index
 * (flat; meta its metapage) by query (meta->dims floats) for k candidates
 * without waiting (codevec_gpu_prefetch); the scan (GpuivfGpuFetch) then
 * waits for that answer instead of sending its own when it asks for the
 * same (copy version, query bits, at most k). False, nothing posted, when
 * the service cannot take it now or this transaction's scan of index asked
 * for this query already.
 */
extern bool GpuivfGpuPostAhead(Relation index, const GpuivfMetaPageData *meta,
							   const float *query, int k);

/*
 * GpuivfGpuNext: the next ready candidate (remembered as returned); false
 * when none is left (the caller asks for more, or goes on on the CPU).
 */
extern bool GpuivfGpuNext(IndexScanDesc scan, GpuivfCandidate *c);

/*
 * GpuivfGpuReturned: whether the GPU path already returned tid.
 */
extern bool GpuivfGpuReturned(IndexScanDesc scan, ItemPointer tid);

/*
 * GpuivfHeapify (gpuivfutils.c): make heap[0..n) a binary min-heap in the
 * scan's order (distance, NULLs and NaN last, then heap TID) — what the
 * CPU scan does after reading a batch of lists; the routing calibration
 * times it too.
 */
extern void GpuivfHeapify(GpuivfCandidate *heap, int64 n);

/*
 * GpuivfHeapSiftDown (gpuivfutils.c): move heap[i] down to its place in
 * the heap heap[0..n) (after the top was replaced or removed).
 */
extern void GpuivfHeapSiftDown(GpuivfCandidate *heap, int64 n, int64 i);

/*
 * GpuivfGpuUploadIndex: stream every vector of index to the GPU service as
 * the copy named by key (its main rows); 0 or the service's status
 * (GPU_STATUS_*; GPU_STATUS_NOT_LOADED when rows vanished meanwhile).
 */
struct GpuIndexKey;
struct GpuKnnRequest;
extern int	GpuivfGpuUploadIndex(Relation index, const struct GpuIndexKey *key, int dims);

/*
 * GpuivfGpuRefresh: after a KNN request answered GPU_STATUS_NOT_LOADED
 * (load index whole: GpuivfGpuUploadIndex) or GPU_STATUS_STALE (send the rows
 * inserted since into the copy's delta tier, or load it whole when they do
 * not fit; *appended says which), bring the service's copy to key. 0 or a
 * status; GPU_STATUS_STALE when another backend appended first (ask again).
 * Used by GpuivfGpuAskKnn.
 */
extern int	GpuivfGpuRefresh(Relation index, const struct GpuIndexKey *key, int dims,
							 const struct GpuKnnRequest *answer, bool *appended);

/*
 * GpuivfGpuContended: whether a status of GpuivfGpuRefresh means that other
 * backends were changing the copy at the same time (another append came
 * first, another backend is loading it, an upload was overtaken): ask again.
 */
#define GpuivfGpuContended(status) \
	((status) == GPU_STATUS_STALE || (status) == GPU_STATUS_BUSY || \
	 (status) == GPU_STATUS_NOT_LOADED)

/* The most requests one k-NN search makes while the copy keeps changing */
#define GPUIVF_GPU_MAX_ATTEMPTS		1000

/*
 * GpuivfGpuBackoff: before attempt (0-based) of a k-NN request whose copy
 * changed under the previous ones. Attempts 0 and 1 go at once; later ones
 * wait 1 to 32 ms (doubling, with random jitter, interruptible) and re-read
 * the metapage's deleteCount into key (a VACUUM meanwhile); key's
 * insertCount stays the scan's, which any copy at least as new serves.
 * False, without waiting, once
 * GPUIVF_GPU_MAX_ATTEMPTS were made or codevec.gpu_timeout has passed
 * since start: the caller then treats the search as not served.
 */
extern bool GpuivfGpuBackoff(Relation index, int attempt, instr_time start,
							 struct GpuIndexKey *key);

/*
 * GpuivfGpuUploadError: the message of the last failed GpuivfGpuUploadIndex /
 * GpuivfGpuRefresh of this backend ("" when none).
 */
extern const char *GpuivfGpuUploadError(void);

/*
 * GpuivfGpuFallback: a k-NN request for index (index scan or codevec_knn)
 * that the GPU service could not serve (status: a GPU_STATUS_* other than
 * 0; errmsg: the service's or the upload's message, may be empty). With
 * codevec.device = cuda raises ERROR (53200 when the copy does not fit
 * codevec.gpu_memory_limit, 55000 otherwise); with auto warns once per
 * session, counts the fallback in codevec_gpu_status().fallbacks and
 * returns, the caller answering on the CPU. why (whylen bytes, may be
 * NULL) receives the reason for EXPLAIN.
 */
extern void GpuivfGpuFallback(Relation index, int status, const char *errmsg,
							  char *why, size_t whylen);

/*
 * GpuivfLowerBound: a lower bound of the exact (CPU operator) distance of
 * any row whose GPU distance is >= d, for a query of norm qnorm over rows
 * of norm at most maxnorm (dims terms; file comment of gpuivfgpu.c). NaN
 * for NaN.
 */
extern double GpuivfLowerBound(GpuivfMetric metric, double d, int dims, double qnorm,
							   double maxnorm);

/*
 * One k-NN request to the GPU service, as index scans and codevec_knn make
 * it (GpuivfGpuAskKnn): nq queries (pointers to dims floats each), k
 * candidates each, IVF: the nprobe lists probes names (the same for every
 * query; 0 for a flat index). *key names the index copy (GpuivfGpuKey);
 * it follows the index when the copy had to be refreshed. The counters are
 * added to; why gets the reason of a failure (for EXPLAIN).
 */
typedef struct GpuivfGpuAskData
{
	Relation	index;
	GpuivfMetric metric;
	int			dims;
	int			nq;
	const float *const *queries;
	int			k;
	const int  *probes;
	int			nprobe;
	bool		observe;		/* report the round trip to the routing model */
	bool		posted;			/* the request is in seg, posted (GpuivfGpuPostKnn):
								 * wait for it instead of sending it */
	struct GpuIndexKey *key;	/* in, and out after a refresh */
	int64		requests;		/* KNN requests sent */
	int64		uploads;		/* index copies loaded whole */
	int64		appends;		/* inserted rows sent to a copy's delta tier */
	char		why[256];
} GpuivfGpuAskData;

typedef GpuivfGpuAskData *GpuivfGpuAsk;

/* GpuivfGpuKey: the name of index's copy as meta describes the index */
extern void GpuivfGpuKey(Relation index, const GpuivfMetaPageData *meta,
						 struct GpuIndexKey *key);

/*
 * GpuivfGpuAskKnn: send ask in seg (a segment of at least
 * GpuKnnRequestSizeProbes(nq, dims, k, nprobe) bytes), loading or
 * appending the index copy as the service asks, retrying while other
 * backends change it (GpuivfGpuBackoff). True: the answer is in seg. False
 * when the service could not serve, after the one failure policy of GPU
 * k-NN: a copy over codevec.gpu_memory_limit is remembered for routing
 * (GpuivfRouteNoRoom), then GpuivfGpuFallback: ERROR under codevec.device
 * = cuda, a counted fallback (one WARNING per session) under auto; the
 * caller then answers on the CPU.
 */
struct dsm_segment;
extern bool GpuivfGpuAskKnn(GpuivfGpuAsk ask, struct dsm_segment *seg);

/*
 * GpuivfGpuPostKnn: write ask's request into seg and post it without
 * waiting (CodevecGpuPost: 0, or GPU_STATUS_UNAVAILABLE and nothing
 * posted); GpuivfGpuAskKnn with ask->posted then waits for it and goes on
 * as for any answer (a copy to load or append: asked again).
 */
extern int	GpuivfGpuPostKnn(GpuivfGpuAsk ask, struct dsm_segment *seg);

/*
 * GpuivfGpuProve: the candidates of query q (of nq) in a KNN answer r that
 * no other row can precede: each valid candidate's exact distance
 * (exact(arg, row): the caller's CPU distance, bit-identical to its
 * operator's) strictly below GpuivfLowerBound of the last candidate's GPU
 * distance, and that keep(arg, index TID, &out TID) accepts (NULL: all),
 * written to out (room for r->k) in (distance, TID) order; returns how
 * many. *all: the answer held every row of the copy (then every candidate
 * counts); *nvalid: the valid candidates.
 */
typedef double (*GpuivfExactFn) (void *arg, const float *row);
typedef bool (*GpuivfKeepFn) (void *arg, ItemPointer tid, ItemPointer out);
extern int	GpuivfGpuProve(const struct GpuKnnRequest *r, int q, GpuivfMetric metric,
						   const float *query, GpuivfExactFn exact, GpuivfKeepFn keep,
						   void *arg, GpuivfCandidate *out, bool *all, int *nvalid);

/*
 * GpuivfGpuKmeans: an IVF build's k-means (GpuivfKmeans's algorithm) on
 * the GPU service: true with lists x dims centroids written; false when
 * the build should train on the CPU (codevec.device cpu, or auto without a
 * ready service, or the service could not: auto warns once per session,
 * cuda raises). The service keeps the centroids for GpuivfGpuAssign until
 * GpuivfGpuKmeansDone.
 */
extern bool GpuivfGpuKmeans(GpuivfMetric metric, const float *samples, int n, int dims,
							int lists, float *centroids);

/*
 * GpuivfGpuAssign: out[i] = the nearest of the trained centroids to row i
 * of x (n x dims) under metric, on the GPU service; false (after the same
 * fallback rules) when the CPU must assign.
 */
extern bool GpuivfGpuAssign(GpuivfMetric metric, const float *x, int n, int dims, int lists,
							int *out);

/*
 * GpuivfGpuMask: after a VACUUM changed index (old: its metapage before
 * the VACUUM bumped deleteCount), tell the GPU service which heap TIDs it
 * removed (ntids of them, -1: too many) and which pages it compacted
 * (nblocks, -1: too many), so its copy masks those rows instead of loading
 * again (GPU_REQUEST_MASK). Nothing when the service is not ready; never
 * raises for the service's answer.
 */
extern void GpuivfGpuMask(Relation index, const GpuivfMetaPageData *old,
						  const ItemPointerData *tids, int64 ntids,
						  const BlockNumber *blocks, int nblocks);

/* GpuivfGpuKmeansDone: free this backend's k-means area in the service */
extern void GpuivfGpuKmeansDone(int dims, int lists);

/* gpuivfexplain.c */

/*
 * GpuivfExplainInit: install the EXPLAIN hooks that add one "gpuivf" line
 * (or property group) per gpuivf index scan: where it runs and why, and
 * under ANALYZE what it did. Called from _PG_init.
 */
extern void GpuivfExplainInit(void);

/* gpuivfscan.c */

/*
 * GpuivfCandidateCompare: qsort order of candidates: distance (NaN and
 * NULL last), then heap TID.
 */
extern int	GpuivfCandidateCompare(const void *a, const void *b);

/* gpuivfvacuum.c */
extern IndexBulkDeleteResult *gpuivfbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
											   IndexBulkDeleteCallback callback, void *callback_state);
extern IndexBulkDeleteResult *gpuivfvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);

/* gpuivfutils.c */

/*
 * GpuivfGetLists: the lists reloption of an index (1 when not set).
 */
extern int	GpuivfGetLists(Relation index);

/*
 * GpuivfGetMetric: the metric of the index's opclass: which C function its
 * distance support function (GPUIVF_DISTANCE_PROC) is, l2_distance,
 * negative_inner_product or cosine_distance of distance.c, one
 * registered with GpuivfRegisterMetric, or one of pgvector's distance
 * functions (by pg_proc's library and C symbol: codevec_pgvector's
 * opclasses are SQL only); ERROR 0A000 for another. The one place that
 * decides "the metric of this index".
 */
extern GpuivfMetric GpuivfGetMetric(Relation index);

/*
 * GpuivfRegisterMetric: let opclasses whose distance support function is
 * fn (a C function of another extension, e.g. over pgvector's types)
 * have metric; fn must compute that metric's distance as the operator
 * does. Per backend: call it from the other extension's _PG_init.
 */
extern void GpuivfRegisterMetric(PGFunction fn, GpuivfMetric metric);

/*
 * GpuivfCheckQueryDims: ERROR 22000 unless the query has the index's dims,
 * with the message the metric's distance function (l2_distance,
 * negative_inner_product, cosine_distance) gives a sequential scan.
 */
extern void GpuivfCheckQueryDims(GpuivfMetric metric, int dims, const Codevec *q);

/*
 * GpuivfReadMeta: copy the metapage; ERROR (XX002 index_corrupted) when the
 * magic number or version is wrong.
 */
extern void GpuivfReadMeta(Relation index, GpuivfMetaPageData *meta);

/*
 * GpuivfNewBuffer: extend the index by one page, returned exclusively locked.
 */
extern Buffer GpuivfNewBuffer(Relation index, ForkNumber forkNum);

/*
 * GpuivfInitPage: initialise page as an empty gpuivf list or data page.
 */
extern void GpuivfInitPage(Page page);

/*
 * GpuivfCentroidDistance: distance between a vector and a centroid for
 * choosing lists: squared L2 for l2, -dot for ip, 1 - cos for cosine.
 * a and b point to dims floats.
 */
extern double GpuivfCentroidDistance(GpuivfMetric metric, const float *a, const float *b, int dims);

/*
 * GpuivfOrderLists: order[0..lists) = the list numbers, nearest centroid to
 * q first (GpuivfCentroidDistance; NaN last as float8 sorts), ties by list
 * number: the order in which index scans and codevec_knn probe lists.
 */
extern void GpuivfOrderLists(GpuivfMetric metric, const float *centroids, int lists,
							 int dims, const float *q, int *order);

/*
 * GpuivfNearestList: the list whose centroid is nearest to v under metric.
 * centroids is lists x dims floats.
 */
extern int	GpuivfNearestList(GpuivfMetric metric, const float *centroids, int lists,
							  int dims, const float *v);

/*
 * GpuivfCachedCentroids: GpuivfLoadCentroids through a small per-backend
 * cache keyed by the index's relfilenode (centroids and list start pages
 * never change for one): lists x dims floats and (*startPages) lists start
 * pages, valid until the next call; the caller must not free them.
 */
extern const float *GpuivfCachedCentroids(Relation index, const GpuivfMetaPageData *meta,
										  const BlockNumber **startPages);

/*
 * GpuivfNearestLists: GpuivfNearestList for n vectors x (n x dims floats)
 * into out[n], with the same answers: scores by one GEMM (OpenBLAS), then
 * the exact distance (GpuivfCentroidDistance) of every list within the
 * GEMM's rounding error of the best, the first of equals winning.
 */
extern void GpuivfNearestLists(GpuivfMetric metric, const float *centroids, int lists,
							   int dims, const float *x, int n, int *out);

/*
 * GpuivfLoadCentroids: palloc and return lists x dims floats of the
 * centroids, and (when not NULL) the start and insert pages of every list.
 */
extern float *GpuivfLoadCentroids(Relation index, const GpuivfMetaPageData *meta,
								  BlockNumber *startPages, BlockNumber *insertPages);

/*
 * GpuivfKmeans: Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii
 * 2007) over n samples of dims floats into k centroids (k x dims, written to
 * centroids). For cosine the samples and centroids are normalised (spherical
 * k-means). Deterministic for given input. n may be smaller than k: centroids
 * beyond n repeat samples.
 */
extern void GpuivfKmeans(GpuivfMetric metric, float *samples, int n, int dims, int k,
						 float *centroids);

/*
 * GpuivfUsSince: microseconds (double) elapsed since t0, taken with
 * INSTR_TIME_SET_CURRENT; used by the GPU request path and by routing's
 * calibration.
 */
static inline double
GpuivfUsSince(instr_time t0)
{
	instr_time	t;

	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	return INSTR_TIME_GET_MICROSEC(t);
}

#endif							/* GPUIVF_H */
