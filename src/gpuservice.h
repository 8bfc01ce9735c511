/*
 * gpuservice.h
 *	  The GPU service: one background worker per server that owns the CUDA
 *	  context, and the request protocol backends use to reach it.
 *
 * Backends never touch CUDA. A backend that wants GPU work writes a request
 * into a dynamic shared memory segment, posts its handle in a free slot of
 * the shared request table, sets the service's latch and waits on its own
 * latch. The service collects every posted request (waiting up to
 * codevec.gpu_batch_window for more, so concurrent requests share one
 * launch sequence), runs them, writes the answers into the same segments,
 * marks the slots done and sets the backends' latches.
 *
 * Failure handling: a request carries the service generation it was posted
 * to; when the service dies the postmaster restarts it with a new
 * generation and waiting backends get an error instead of hanging. Waits
 * have a timeout (codevec.gpu_timeout) and honour cancellation; a backend
 * that leaves (error, Ctrl-C, exit) marks its slot abandoned and the
 * service frees it once done with it.
 */
#ifndef CODEVEC_GPUSERVICE_H
#define CODEVEC_GPUSERVICE_H

#include "postgres.h"

#include "compat.h"
#include "storage/dsm.h"
#include "storage/itemptr.h"

/* codevec.device */
typedef enum CodevecDevice
{
	CODEVEC_DEVICE_AUTO = 0,	/* the GPU service when it can, else the CPU */
	CODEVEC_DEVICE_CPU = 1,		/* always the CPU */
	CODEVEC_DEVICE_CUDA = 2		/* the GPU service, or an error */
} CodevecDevice;

/* Service states, as codevec_gpu_status() reports them */
typedef enum GpuServiceState
{
	GPU_SERVICE_ABSENT = 0,		/* not preloaded, or not started yet */
	GPU_SERVICE_STARTING,
	GPU_SERVICE_READY,			/* a CUDA device is open */
	GPU_SERVICE_NO_DEVICE,		/* running, but no usable CUDA device */
	GPU_SERVICE_STOPPED			/* exited; the postmaster restarts it */
} GpuServiceState;

/* Request kinds */
typedef enum GpuRequestKind
{
	GPU_REQUEST_PING = 1,		/* round trip only: measures the protocol */
	GPU_REQUEST_KNN = 2,		/* k nearest rows of an index copy on the device */
	GPU_REQUEST_UPLOAD = 3,		/* (re)load an index copy onto the device */
	GPU_REQUEST_EMBED = 4,		/* run the encoder on tokenized sequences */
	GPU_REQUEST_APPEND = 5,		/* add rows inserted since to a copy's delta tier */
	GPU_REQUEST_AUTOTUNE = 6,	/* re-run the k-NN kernels' autotuning, report */
	GPU_REQUEST_KMEANS = 7,		/* IVF build: train centroids, assign rows */
	GPU_REQUEST_MASK = 8,		/* VACUUM removed rows: mask them in a copy */
	GPU_REQUEST_BM25 = 9		/* BM25 posting lists on the device: load, top-k */
} GpuRequestKind;

/* Statuses besides 0 (ok) and 1 (failed, see errmsg) */
#define GPU_STATUS_FAILED		1
#define GPU_STATUS_NOT_LOADED	2	/* no current copy of that index: upload it */
#define GPU_STATUS_NO_DEVICE	3	/* the service has no CUDA device */
#define GPU_STATUS_NO_MEMORY	4	/* the copy or model does not fit under the cap */
#define GPU_STATUS_UNAVAILABLE	5	/* the service cannot run this kind of request
									 * (the encoder library could not be loaded) */
#define GPU_STATUS_MODEL_ERROR	6	/* the model folder could not be loaded:
									 * load_status and errmsg say why */
#define GPU_STATUS_STALE		7	/* the copy lacks rows inserted since: send
									 * them from resume_blk/resume_off (APPEND) */
#define GPU_STATUS_BUSY		8	/* UPLOAD: another backend is loading this
									 * index copy now: ask again shortly */

/* Header of every request segment; the payload follows */
typedef struct GpuRequestHeader
{
	int32		kind;			/* GpuRequestKind */
	int32		status;			/* 0 = ok, set by the service */
	Size		payload_size;	/* bytes after the header */
	char		errmsg[256];	/* service's message when status != 0 */
} GpuRequestHeader;

/*
 * Which index copy a KNN, UPLOAD or APPEND request is about: a copy is
 * current when database, index, relfilenode (changes on REINDEX and
 * TRUNCATE), the metapage's deleteCount (VACUUM removed vectors) and its
 * insertCount all match. With only insertCount behind, the copy misses the
 * rows inserted since, which flat indexes append to the end of their chain:
 * the service answers GPU_STATUS_STALE with the chain position after its
 * last row, and the backend sends the rest (APPEND) into the copy's delta
 * tier, searched alongside the main rows; when the delta is full the copy
 * is dropped and loaded again whole (folded).
 */
typedef struct GpuIndexKey
{
	Oid			dbid;
	Oid			indexid;
	Oid			relfilenode;
	uint64		deleteCount;
	uint64		insertCount;
} GpuIndexKey;

/*
 * KNN: header, then this, then nq x dims float queries, nprobe int32 list
 * numbers (IVF copies: only the rows of those lists are candidates), then
 * (answer)
 * nq x k float distances, nq x k ItemPointerData heap TIDs, and nq x k x
 * dims floats: the candidates' vectors, so the caller can compute exact
 * distances with its own operator. Each query's row is ordered by
 * (distance, row position); unused tail TIDs are invalid. The distances
 * are the GPU kernels' (see cuda/knn.h); maxnorm is the largest norm of
 * the indexed vectors, for the caller's error bound.
 */
typedef struct GpuKnnRequest
{
	GpuRequestHeader hdr;
	GpuIndexKey key;
	int32		metric;			/* CODEVEC_METRIC_* of cuda/knn.h */
	int32		dims;
	int32		nq;
	int32		k;				/* 1 .. 1024 */
	int64		nrows;			/* answer: rows in the copy */
	float		maxnorm;		/* answer */
	/* answer with GPU_STATUS_STALE: where the rows the copy lacks begin */
	uint32		resume_blk;		/* chain position after the copy's last row */
	uint32		resume_off;
	int64		delta_room;		/* rows the delta tier can still take */
	int32		nprobe;			/* IVF copies (lists > 1): the lists to scan,
								 * nprobe list numbers after the queries, the
								 * same for every query; 0 for flat copies */
	int32		partial;		/* answer: some query has fewer than k valid
								 * rows although the copy has more (rows
								 * masked after a VACUUM took the room) */
} GpuKnnRequest;

/*
 * UPLOAD: header, then this, then n x dims floats, then n ItemPointerData:
 * rows [first, first + n) of a copy of total rows. first = 0 starts a new
 * copy (replacing any other of that index); the copy answers KNN requests
 * once its last chunk has arrived. APPEND (same layout): rows [first,
 * first + n) of a complete copy whose rows so far number first, into its
 * delta tier; key.insertCount becomes the copy's when row total - 1 has
 * arrived. resume_blk/resume_off: the chain position after the last row
 * sent so far. An IVF index (lists > 1) is sent list after list, the
 * first chunk followed by lists int64 row counts (GpuUploadListCounts);
 * its copies take no APPEND (inserts make them reload).
 */
typedef struct GpuUploadRequest
{
	GpuRequestHeader hdr;
	GpuIndexKey key;
	int32		dims;
	int64		first;
	int64		n;
	int64		total;
	uint32		resume_blk;
	uint32		resume_off;
	int32		lists;			/* UPLOAD: the index's lists; > 1 (IVF): the
								 * rows come list after list and the first
								 * chunk carries each list's row count */
	int32		uploader;		/* the sending backend's pid: one backend
								 * loads a copy at a time (GPU_STATUS_BUSY) */
} GpuUploadRequest;

/*
 * MASK: after a VACUUM of the index: key is the version before it (its
 * deleteCount), newDeleteCount the one after. The service's copy at key's
 * version masks the rows whose heap TIDs are listed (they no longer match
 * in KNN answers) and moves to newDeleteCount; a flat copy whose delta
 * tier resumes reading on one of the compacted pages listed (their
 * offsets moved), an incomplete copy, or a list past its cap (-1) is
 * dropped instead, as is a copy with more masked rows than
 * GPU_MASK_MAX_ROWS. Payload: nblocks BlockNumbers, then ntids
 * ItemPointerData.
 */
#define GPU_MASK_MAX_ROWS	512

typedef struct GpuMaskRequest
{
	GpuRequestHeader hdr;
	GpuIndexKey key;
	uint64		newDeleteCount;
	int32		nblocks;		/* compacted pages, or -1: too many to list */
	int64		ntids;			/* removed heap TIDs, or -1: too many */
} GpuMaskRequest;

#define GpuMaskBlocks(r)	((BlockNumber *) ((char *) (r) + MAXALIGN(sizeof(GpuMaskRequest))))
#define GpuMaskTids(r)		((ItemPointerData *) (GpuMaskBlocks(r) + Max((r)->nblocks, 0)))
#define GpuMaskRequestSize(nblocks, ntids) \
	(MAXALIGN(sizeof(GpuMaskRequest)) + sizeof(BlockNumber) * (Size) Max((nblocks), 0) + \
	 sizeof(ItemPointerData) * (Size) Max((ntids), 0))

/*
 * AUTOTUNE: header, then this: re-run the k-NN kernels' autotuning for
 * vectors of dims components on the service's GPU (cuda/knn.h
 * codevec_cuda_autotune) and answer its report.
 */
typedef struct GpuAutotuneRequest
{
	GpuRequestHeader hdr;
	int32		dims;
	char		report[16384];	/* answer */
} GpuAutotuneRequest;

#define GpuKnnQueries(r)	((float *) ((char *) (r) + MAXALIGN(sizeof(GpuKnnRequest))))
#define GpuKnnProbes(r)		((int32 *) (GpuKnnQueries(r) + (Size) (r)->nq * (r)->dims))
#define GpuKnnDistances(r)	((float *) (GpuKnnProbes(r) + (r)->nprobe))
#define GpuKnnTids(r)		((ItemPointerData *) (GpuKnnDistances(r) + (Size) (r)->nq * (r)->k))
#define GpuKnnRows(r)		((float *) MAXALIGN(GpuKnnTids(r) + (Size) (r)->nq * (r)->k))
#define GpuKnnRequestSize(nq, dims, k) GpuKnnRequestSizeProbes(nq, dims, k, 0)
#define GpuKnnRequestSizeProbes(nq, dims, k, nprobe) \
	(MAXALIGN(sizeof(GpuKnnRequest)) + sizeof(float) * (Size) (nq) * (dims) + \
	 sizeof(int32) * (Size) (nprobe) + \
	 sizeof(float) * (Size) (nq) * (k) + MAXALIGN(sizeof(ItemPointerData) * (Size) (nq) * (k)) + \
	 MAXIMUM_ALIGNOF + sizeof(float) * (Size) (nq) * (k) * (dims))
#define GpuUploadVectors(r)	((float *) ((char *) (r) + MAXALIGN(sizeof(GpuUploadRequest))))
#define GpuUploadTids(r)	((ItemPointerData *) (GpuUploadVectors(r) + (Size) (r)->n * (r)->dims))
#define GpuUploadListCounts(r) ((int64 *) MAXALIGN(GpuUploadTids(r) + (r)->n))
#define GpuUploadRequestSize(n, dims) GpuUploadRequestSizeLists(n, dims, 0)
#define GpuUploadRequestSizeLists(n, dims, lists) \
	(MAXALIGN(sizeof(GpuUploadRequest)) + sizeof(float) * (Size) (n) * (dims) + \
	 sizeof(ItemPointerData) * (Size) (n) + MAXIMUM_ALIGNOF + sizeof(int64) * (Size) (lists))

/*
 * KMEANS: an IVF build's training and assignment on the GPU (cuda/kmeans.h).
 * The service keeps a few staging areas, one per building backend (owner =
 * its PID): op SAMPLES sends rows [first, first + n) of total samples
 * (first = 0 starts afresh); op TRAIN is the last SAMPLES chunk, after
 * which the service trains lists centroids (spherical for cosine) and
 * answers them (lists x dims floats at GpuKmeansOut) and keeps them; op
 * ASSIGN sends n rows and answers their nearest centroid's number (n
 * int32 at GpuKmeansOut) under metric; op DONE frees the area. Payload
 * after the header: n x dims floats.
 */
#define GPU_KMEANS_SAMPLES	1
#define GPU_KMEANS_TRAIN	2
#define GPU_KMEANS_ASSIGN	3
#define GPU_KMEANS_DONE		4

typedef struct GpuKmeansRequest
{
	GpuRequestHeader hdr;
	int32		op;				/* GPU_KMEANS_* */
	int32		owner;			/* the building backend's PID */
	int32		dims;
	int32		lists;
	int32		metric;			/* CODEVEC_METRIC_* (cosine: spherical k-means) */
	int32		iters;			/* Lloyd iterations */
	uint64		seed;
	int64		first;
	int64		n;
	int64		total;
} GpuKmeansRequest;

#define GpuKmeansVectors(r)	((float *) ((char *) (r) + MAXALIGN(sizeof(GpuKmeansRequest))))
#define GpuKmeansOut(r)		((void *) MAXALIGN(GpuKmeansVectors(r) + (Size) (r)->n * (r)->dims))
#define GpuKmeansRequestSize(n, dims, lists) \
	(MAXALIGN(sizeof(GpuKmeansRequest)) + sizeof(float) * (Size) (n) * (dims) + MAXIMUM_ALIGNOF + \
	 Max(sizeof(float) * (Size) (lists) * (dims), sizeof(int32) * (Size) (n)))

/*
 * EMBED: header, then this, then n int32 sequence lengths, then the
 * sequences' token ids back to back (total of them), then (answer) n x
 * hidden floats, the embeddings.  The backend tokenizes; the service runs
 * the model in folder model (a resolved path the backend was allowed to
 * read), loading it onto the device on first use and whenever its
 * model.safetensors changes.  Requests for the same model posted together
 * run as one batch.
 */
typedef struct GpuEmbedRequest
{
	GpuRequestHeader hdr;
	char		model[MAXPGPATH];	/* resolved model folder */
	int32		n;				/* sequences, >= 1 */
	int32		hidden;			/* the model's hidden_size as the backend read it */
	int64		total;			/* token ids in all */
	int32		load_status;	/* answer: CvStatus when the model did not load */
} GpuEmbedRequest;

#define GpuEmbedLens(r)		((int32 *) ((char *) (r) + MAXALIGN(sizeof(GpuEmbedRequest))))
#define GpuEmbedIds(r)		(GpuEmbedLens(r) + (r)->n)
#define GpuEmbedOut(r)		((float *) MAXALIGN(GpuEmbedIds(r) + (r)->total))
#define GpuEmbedRequestSize(n, total, hidden) \
	(MAXALIGN(sizeof(GpuEmbedRequest)) + sizeof(int32) * ((Size) (n) + (Size) (total)) + \
	 MAXIMUM_ALIGNOF + sizeof(float) * (Size) (n) * (hidden))

/*
 * BM25: the posting lists of a BM25 postings index (code.bm25_postings,
 * src/bm25block.c) on the device, and the keyword top-k over them
 * (cuda/bm25_device.h; the service side is gpubm25.c, the backend's bm25gpu.c).
 * A store is current when database, index, its relfilenode and the
 * postings' generation (code.bm25_params.generation, which every writer of
 * postings raises in the same transaction) all match. Ops:
 *   CREATE  a new store of key's postings: ndocs documents (ids base ..
 *           base + ndocs - 1, document = id - base) and nterms terms;
 *           payload nterms + 1 uint64 term starts (cuda/bm25_device.h). Replaces
 *           the index's older store; GPU_STATUS_BUSY while another backend
 *           loads one for that index (uploader: the sender's pid)
 *   LOAD    postings [first, first + n) of the store being created, in
 *           order; payload n uint32 documents, then n float4 impacts. The
 *           store answers TOPK once the last one has arrived
 *   TOPK    the best k (1 .. GPU_BM25_MAX_K) documents for nt terms
 *           (payload nt float8 idf, then nt uint32 terms; answer nout
 *           float8 scores at GpuBm25Scores, nout uint32 documents at
 *           GpuBm25Docs), best first, ties by document, the scores those
 *           of codevec_bm25_blocks_topk bit for bit; GPU_STATUS_NOT_LOADED
 *           without a complete current store, GPU_STATUS_BUSY while one is
 *           being loaded
 */
#define GPU_BM25_CREATE		1
#define GPU_BM25_LOAD		2
#define GPU_BM25_TOPK		3
#define GPU_BM25_MAX_K		4096	/* cuda/bm25_device.h CODEVEC_CUDA_BM25_MAX_K */
#define GPU_BM25_MAX_TERMS	1024

typedef struct GpuBm25Key
{
	Oid			dbid;
	Oid			indexid;
	Oid			relfilenode;
	int64		generation;
} GpuBm25Key;

typedef struct GpuBm25Request
{
	GpuRequestHeader hdr;
	GpuBm25Key	key;
	int32		op;				/* GPU_BM25_* */
	int32		uploader;		/* CREATE, LOAD: the sender's pid */
	int64		base;			/* CREATE: the id of document 0 (answered by TOPK) */
	uint32		ndocs;			/* CREATE */
	uint32		nterms;			/* CREATE */
	int64		first;			/* LOAD */
	int64		n;				/* LOAD */
	int32		nt;				/* TOPK */
	int32		k;				/* TOPK */
	int32		nout;			/* TOPK answer */
} GpuBm25Request;

#define GpuBm25Payload(r)	((char *) (r) + MAXALIGN(sizeof(GpuBm25Request)))
#define GpuBm25TermStart(r)	((uint64 *) GpuBm25Payload(r))
#define GpuBm25LoadDocs(r)	((uint32 *) GpuBm25Payload(r))
#define GpuBm25LoadImpacts(r) ((float4 *) (GpuBm25LoadDocs(r) + (r)->n))
#define GpuBm25Idf(r)		((float8 *) GpuBm25Payload(r))
#define GpuBm25Terms(r)		((uint32 *) (GpuBm25Idf(r) + (r)->nt))
#define GpuBm25Scores(r)	((float8 *) MAXALIGN(GpuBm25Terms(r) + (r)->nt))
#define GpuBm25Docs(r)		((uint32 *) (GpuBm25Scores(r) + (r)->k))
#define GpuBm25CreateSize(nterms) \
	(MAXALIGN(sizeof(GpuBm25Request)) + sizeof(uint64) * ((Size) (nterms) + 1))
#define GpuBm25LoadSize(n) \
	(MAXALIGN(sizeof(GpuBm25Request)) + (sizeof(uint32) + sizeof(float4)) * (Size) (n))
#define GpuBm25TopkSize(nt, k) \
	(MAXALIGN(sizeof(GpuBm25Request)) + (sizeof(float8) + sizeof(uint32)) * (Size) (nt) + \
	 MAXIMUM_ALIGNOF + (sizeof(float8) + sizeof(uint32)) * (Size) (k))

extern int	codevec_device;
extern int	codevec_gpu_device;
extern int	codevec_gpu_memory_limit_mb;
extern int	codevec_gpu_batch_window_us;
extern int	codevec_gpu_timeout_ms;

/*
 * CodevecGpuServiceInit: define the GPU GUCs; when loading through
 * shared_preload_libraries, also request the shared memory and register the
 * service worker; register the request kinds (gpukinds.c). Called from
 * _PG_init.
 */
extern void CodevecGpuServiceInit(void);

/*
 * CodevecGpuServiceUsable: whether GPU work should go to the service now.
 * auto: true when the service is ready; otherwise false, after one WARNING
 * per backend saying why the CPU is used. cuda: true when ready, else
 * ERROR 55000 saying why. cpu: false.
 */
extern bool CodevecGpuServiceUsable(void);

/*
 * CodevecGpuFallback: the GPU service cannot do what the caller asked
 * (why says what happened). auto: counted in codevec_gpu_status().fallbacks,
 * one WARNING per backend (shared with CodevecGpuServiceUsable), then
 * return so the caller uses the CPU; cuda: ERROR with sqlstate (55000, or
 * 53200 when the device is out of memory). Every GPU failure that is not
 * itself an ERROR goes through here: never a silent CPU answer.
 */
extern void CodevecGpuFallback(const char *why, int sqlstate);

/*
 * CodevecGpuCall: post the request in seg (header filled, payload written)
 * and wait for the answer. Returns the request's status once the service
 * has answered: 0, or GPU_STATUS_NOT_LOADED / NO_DEVICE / NO_MEMORY for the
 * caller to handle; GPU_STATUS_UNAVAILABLE (with the reason in the header's
 * errmsg) when the service is stopped or restarting, or restarted while
 * serving this request, so that the caller's failure policy applies
 * (codevec.device = auto: the CPU); raises ERROR when the service reports a
 * failure (its message), does not answer within codevec.gpu_timeout, or
 * the query is cancelled.
 */
extern int	CodevecGpuCall(dsm_segment *seg);

/*
 * CodevecGpuCall in two halves, for a caller that works while the service
 * serves its request (an index scan's request posted ahead of the scan:
 * gpuivfprefetch.c). CodevecGpuPost posts the request in seg and returns 0
 * at once (or GPU_STATUS_UNAVAILABLE as CodevecGpuCall does, nothing
 * posted); CodevecGpuWait(seg) then waits for it and returns what
 * CodevecGpuCall would have (the same errors; the deadline counts from the
 * post). One request per backend is in flight: posting another, or asking
 * for the session segment, first waits for the one posted and drops its
 * answer (CodevecGpuDrain: a FAILED status is then not an error); a
 * transaction that ends with one posted abandons it. CodevecGpuPosted: the
 * number of the request posted and not yet waited for (each post gets the
 * next; 0: none) and its segment.
 */
extern int	CodevecGpuPost(dsm_segment *seg);
extern int	CodevecGpuWait(dsm_segment *seg);
extern void CodevecGpuDrain(void);
extern uint64 CodevecGpuPosted(dsm_segment **seg);

/*
 * CodevecGpuCallBeside: CodevecGpuCall for a request made while another is
 * posted and not yet waited for (hybrid code.search's keyword list on the
 * service while its vector list's request, posted ahead, is answered):
 * the posted request stays posted (a second slot of this backend), and
 * its answer is the one its waiter will read. Without a posted request,
 * CodevecGpuCall. seg must come from CodevecGpuBesideSegment. The same
 * statuses and errors as CodevecGpuCall.
 *
 * CodevecGpuBesideSegment: the session segment (CodevecGpuSessionSegment)
 * when no request is posted; else a second segment of at least size
 * bytes, kept for the session, that is never the posted request's.
 */
extern int	CodevecGpuCallBeside(dsm_segment *seg);
extern dsm_segment *CodevecGpuBesideSegment(Size size);

/*
 * CodevecGpuSessionSegment: a segment of at least size bytes for a request,
 * kept mapped for the session and reused (replaced when too small, or when
 * a request in it was abandoned). One request at a time: the caller copies
 * the answer out before its next request; never detach it. A request
 * posted and not waited for is answered first (CodevecGpuDrain).
 */
extern dsm_segment *CodevecGpuSessionSegment(Size size);

/*
 * CodevecGpuEmbed: the backend side: embed n tokenized sequences (ids[i]
 * holds lens[i] ids) with the model in folder model_path (hidden dims) on
 * the GPU service, into out (n x hidden floats). Returns GPU_EMBED_DONE;
 * GPU_EMBED_USE_CPU after CodevecGpuFallback (auto: the service cannot,
 * the caller uses the CPU encoder); or GPU_EMBED_MODEL_ERROR when the
 * service could not load the model (*load_status: a CvStatus, errbuf: its
 * message) for the caller to report. Raises ERROR for service failures,
 * timeouts and cancellation (CodevecGpuCall).
 */
#define GPU_EMBED_DONE			0
#define GPU_EMBED_USE_CPU		1
#define GPU_EMBED_MODEL_ERROR	2
extern int	CodevecGpuEmbed(const char *model_path, int hidden, int n,
							int32 *const *ids, const int *lens, float *out,
							int *load_status, char *errbuf, Size errlen);

/*
 * CodevecGpuServiceReady: whether the service runs with a CUDA device now
 * (no warning, no error: for cost estimates and routing).
 */
extern bool CodevecGpuServiceReady(void);

/*
 * What the gpuivf routing model (gpuivfroute.c) measured in one backend,
 * kept for the server's other backends where codevec is preloaded, so that
 * a session's first plan or scan does not measure again (a few ms: the
 * CPU scan's loop on ~4 MB of rows, best of 3, and 18 pings).
 * CodevecGpuCalibrationGet: the CPU scan's ns per row measured for metric,
 * dims and the CPU kernels named kernels; false when none was kept (or
 * codevec is not preloaded). CodevecGpuCalibrationPut keeps one (the first
 * GPU_CALIBRATIONS distinct keys; others are not kept).
 * CodevecGpuPingGet: the mean ping round trip (us) measured since the
 * service last started, or -1; CodevecGpuPingPut keeps one.
 */
typedef struct CodevecCalibration
{
	double		cpuNsPerRow;	/* > 0 */
	int64		rows;			/* rows timed */
	bool		onIndex;		/* on an index's rows, else synthetic ones */
} CodevecCalibration;

extern bool CodevecGpuCalibrationGet(int metric, int dims, const char *kernels,
									 CodevecCalibration *out);
extern void CodevecGpuCalibrationPut(int metric, int dims, const char *kernels,
									 const CodevecCalibration *c);
extern double CodevecGpuPingGet(void);
extern void CodevecGpuPingPut(double us);

/*
 * CodevecGpuServiceDescribe: the service's state (a GpuServiceState), its
 * device's name when ready (into device, len bytes; may be NULL), why it
 * cannot serve otherwise (into why); read-only, no warning, no error: for
 * gpuivf routing and EXPLAIN.
 */
extern int	CodevecGpuServiceDescribe(char *device, char *why, size_t len);

/* CodevecGpuServiceMain: the service worker's entry point (gpuloop.c) */
PGDLLEXPORT void CodevecGpuServiceMain(Datum main_arg);

/*
 * CodevecGpuPrewarmMain: entry point of a prewarm worker, one per database
 * the service's prewarm list names (gpuprewarm.c)
 */
PGDLLEXPORT void CodevecGpuPrewarmMain(Datum main_arg);

#endif							/* CODEVEC_GPUSERVICE_H */
