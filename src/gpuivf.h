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
 * keeps producing rows in order until it stops.
 */
#ifndef GPUIVF_H
#define GPUIVF_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/itup.h"
#include "access/reloptions.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/relcache.h"

#include "codevec.h"

#define GPUIVF_MAGIC_NUMBER		0x67707569	/* "gpui" */
#define GPUIVF_VERSION			1
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

/* Support function numbers */
#define GPUIVF_DISTANCE_PROC	1

/* Distance kind, from the opclass's distance function */
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
	uint64		changeCount;	/* bumped by every change to the vectors of a
								 * flat index (insert, VACUUM): copies kept
								 * elsewhere (the GPU service) compare it */
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

/* A (distance, heap TID) candidate of a scan */
typedef struct GpuivfCandidate
{
	double		distance;
	ItemPointerData tid;
	bool		isnull;			/* distance is NULL: NULL query */
} GpuivfCandidate;

/* Scan state */
typedef struct GpuivfScanOpaqueData
{
	bool		first;			/* no tuple returned since rescan */
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

	/* GPU path: lists = 1, answered by the GPU service (gpuivfgpu.c) */
	bool		gpu;			/* rows come from the service now */
	bool		gpuAll;			/* the last answer held every row */
	int			gpuK;			/* candidates asked for last */
	GpuivfCandidate *gpuReady;	/* exact (distance, TID), ascending */
	int			gpuNReady;
	int			gpuPos;			/* next ready candidate to return */
	struct HTAB *returned;		/* heap TIDs returned by the GPU path */
} GpuivfScanOpaqueData;

typedef GpuivfScanOpaqueData *GpuivfScanOpaque;

/* GUCs */
extern int	gpuivf_probes;
extern int	gpuivf_gpu_min_rows;

/* the most candidates one GPU request asks for (cuda/knn.h's limit) */
#define GPUIVF_GPU_MAX_K		1024
#define GPUIVF_GPU_FIRST_K		64

/* gpuivf.c */
extern void GpuivfInit(void);
PGDLLEXPORT Datum gpuivfhandler(PG_FUNCTION_ARGS);

/* gpuivfbuild.c */
extern IndexBuildResult *gpuivfbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void gpuivfbuildempty(Relation index);

/* gpuivfinsert.c */
extern bool gpuivfinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
						 Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
						 IndexInfo *indexInfo);

/* gpuivfscan.c */
extern IndexScanDesc gpuivfbeginscan(Relation index, int nkeys, int norderbys);
extern void gpuivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
extern bool gpuivfgettuple(IndexScanDesc scan, ScanDirection dir);
extern void gpuivfendscan(IndexScanDesc scan);

/* gpuivfgpu.c */

/*
 * GpuivfGpuRoute: whether this scan of a flat index goes to the GPU
 * service (codevec.device, gpuivf.gpu_min_rows, the service's state).
 */
extern bool GpuivfGpuRoute(IndexScanDesc scan);

/*
 * GpuivfGpuFetch: ask the service for the first k candidates (loading the
 * index copy when it has none), recompute their exact distances and keep,
 * in (distance, TID) order, those that no other row can precede; false
 * when the GPU cannot answer (no device, no room): the scan then runs on
 * the CPU.
 */
extern bool GpuivfGpuFetch(IndexScanDesc scan, int k);

/*
 * GpuivfGpuNext: the next ready candidate not returned yet; false when
 * none is left (the caller asks for more, or falls back to the CPU).
 */
extern bool GpuivfGpuNext(IndexScanDesc scan, GpuivfCandidate *c);

/*
 * GpuivfGpuReturned: whether the GPU path already returned tid.
 */
extern bool GpuivfGpuReturned(IndexScanDesc scan, ItemPointer tid);

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
 * GpuivfGetMetric: the metric of the index's opclass, from the name of its
 * distance support function; ERROR for an unknown one.
 */
extern GpuivfMetric GpuivfGetMetric(Relation index);

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
 * GpuivfNearestList: the list whose centroid is nearest to v under metric.
 * centroids is lists x dims floats.
 */
extern int	GpuivfNearestList(GpuivfMetric metric, const float *centroids, int lists,
							  int dims, const float *v);

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

#endif							/* GPUIVF_H */
