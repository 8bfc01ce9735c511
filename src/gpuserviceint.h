/*
 * gpuserviceint.h
 *	  Inside the GPU service: the shared state its worker loop and the
 *	  backend client share, and the interface between the loop and the
 *	  request kinds it runs.
 *
 * Like PostgreSQL's WAL resource managers (rmgrlist.h: one row per kind,
 * each kind's callbacks in its own subsystem's file), the loop in
 * gpuservice.c knows no request kind but PING: every other kind registers
 * a GpuRequestKindData row (gpukinds.c calls each kind file's
 * registration) whose callbacks live in
 * the kind's own file:
 *
 *	gpucopies.c	KNN, UPLOAD, APPEND, MASK, AUTOTUNE (the device copies of
 *				indexes and the k-NN kernels that search them)
 *	gpukmeans.c	KMEANS (IVF builds' training and assignment)
 *	gpuembed.c	EMBED (the encoder)
 *	gpubm25.c	BM25 (posting lists on the device, the keyword top-k)
 *
 * A kind that keeps something on the device (index copies, models) also
 * registers a GpuDeviceStoreData, so the loop can report memory use and
 * each store can see what the others hold under codevec.gpu_memory_limit.
 *
 * Service-side callbacks run only in the service process, with the CUDA
 * device of GpuServiceDeviceIndex() (logical device 0) current; they never
 * call elog() above DEBUG: a failure goes into the request's status and
 * errmsg.
 */
#ifndef CODEVEC_GPUSERVICEINT_H
#define CODEVEC_GPUSERVICEINT_H

#include "gpuservice.h"

#include "datatype/timestamp.h"
#include "storage/spin.h"

#define GPU_MAX_SLOTS		256
#define GPU_LATENCY_BUCKETS	48	/* bucket b: latency < 2^(b/2) microseconds */
#define GPU_BATCH_BUCKETS	10	/* bucket b: batch size < 2^(b+1) */
#define GPU_MAX_KINDS		16	/* request kinds are 1 .. GPU_MAX_KINDS - 1 */
#define GPU_MAX_STORES		4
#define GPU_MAX_DEVICES		8	/* logical devices codevec.gpu_devices may list */
#define GPU_MAX_ORDINAL		63	/* largest CUDA ordinal it may name */
#define GPU_CALIBRATIONS	8	/* routing calibrations shared (gpuivfroute.c) */

/*
 * A request slot moves
 *
 *	FREE -> POSTED (backend) -> RUNNING (service) -> DONE (service) -> FREE (backend)
 *
 * and to ABANDONED when the backend leaves before DONE; the service then
 * frees it. Every change happens under GpuServiceShared.mutex, and whoever
 * changes a slot another process waits on sets that process's latch.
 */
typedef enum GpuSlotState
{
	SLOT_FREE = 0,
	SLOT_POSTED,
	SLOT_RUNNING,
	SLOT_DONE,
	SLOT_ABANDONED
} GpuSlotState;

typedef struct GpuSlot
{
	GpuSlotState state;
	uint64		generation;		/* service generation it was posted to */
	dsm_handle	handle;
	int			procno;			/* backend's pgprocno, for its latch */
	TimestampTz posted;
} GpuSlot;

/*
 * Stages of the service's work that codevec_gpu_stages() times: the loop's
 * own (gpuservice.c) and the k-NN group path's (gpucopies.c). Host stages
 * are clock readings around the step, once per batch (never per query);
 * device stages are CUDA event intervals on the batch's stream
 * (codevec_cuda_knn_batch). gpu_stage_names[] (gpuservice.c) has their
 * names, in this order.
 */
typedef enum GpuStage
{
	GPU_STAGE_QUEUE,			/* per request: posted until collected */
	GPU_STAGE_WINDOW,			/* the batching window's wait */
	GPU_STAGE_ATTACH,			/* mapping the batch's request segments */
	GPU_STAGE_KNN_GATHER,		/* a group's queries into one buffer (host) */
	GPU_STAGE_KNN_ENQUEUE,		/* issuing copies and kernels (host) */
	GPU_STAGE_KNN_H2D,			/* the queries' copy to the device */
	GPU_STAGE_KNN_KERNELS,		/* similarity, top-k, re-rank and proof flags */
	GPU_STAGE_KNN_CANDIDATES,	/* gathering the answers' fp32 rows */
	GPU_STAGE_KNN_D2H,			/* distances, ids, rows and flags back */
	GPU_STAGE_KNN_WAIT,			/* the host waiting for all of it */
	GPU_STAGE_KNN_FALLBACK,		/* fp32 again after a failed fp16 proof */
	GPU_STAGE_KNN_ANSWER,		/* answers written into the requests */
	GPU_STAGE_KNN,				/* a k-NN call on one copy, whole */
	GPU_STAGE_EMBED,			/* an encoder call for one model's group,
								 * whole (copies and forward pass; started:
								 * until answered) */
	GPU_STAGE_EMBED_START,		/* a started encoder call's packing and
								 * issue (host) */
	GPU_STAGE_RUN,				/* every request of the batch run */
	GPU_STAGE_DETACH,			/* unmapping the segments */
	GPU_STAGE_WAKE,				/* marking slots done, setting latches */
	GPU_STAGE_BATCH,			/* a batch, attach to wake */
	GPU_STAGE_FINISH,			/* a started group: waiting for it and
								 * answering its requests */
	GPU_STAGE_OVERLAP,			/* a batch started while another was on the
								 * device (counted; no time) */
	GPU_STAGES
} GpuStage;

/*
 * One logical device of the service (codevec.gpu_devices: one per entry,
 * so a GPU listed twice is two of them), as codevec_gpu_devices() shows
 * it: memory is the physical GPU's, the rest this logical device's.
 */
typedef struct GpuDeviceStats
{
	int			ordinal;		/* CUDA device ordinal */
	char		name[128];
	int64		memory_total;	/* bytes, the GPU's */
	int64		memory_used;	/* bytes in use on the GPU (all processes) */
	int64		held;			/* bytes the service's stores hold here */
	int			copies;			/* whole index copies (not split) */
	int			ranges;			/* row ranges of split copies */
	int			replicas;		/* extra replicas of hot copies */
	int			models;			/* encoder models */
	int64		requests;		/* KNN requests (or their queries' shares) run here */
} GpuDeviceStats;

/* What the stores hold on one logical device (GpuDeviceStoreData.per_device) */
typedef struct GpuDeviceHeld
{
	Size		bytes;
	int			copies;
	int			ranges;
	int			replicas;
	int			models;
} GpuDeviceHeld;

/* The service's shared memory: one per server (gpuservice.c makes it) */
typedef struct GpuServiceShared
{
	slock_t		mutex;
	GpuServiceState state;
	pid_t		pid;
	int			procno;			/* service's pgprocno */
	uint64		generation;		/* bumped at each service start and stop */
	TimestampTz started;
	int			device_index;
	char		device_name[128];
	int64		memory_total;	/* bytes */
	int64		memory_used;	/* bytes in use on the device */
	char		message[256];	/* why there is no device */
	int			indexes_loaded; /* index copies on the device */
	int			models_loaded;	/* encoder models on the device */
	int64		requests;
	int64		batches;
	int			max_batch;
	int64		fallbacks;		/* requests answered on the CPU instead
								 * (codevec.device = auto), all backends */
	int64		latency_hist[GPU_LATENCY_BUCKETS];
	int64		batch_hist[GPU_BATCH_BUCKETS];
	/* codevec_gpu_stages(): per stage, times seen, requests, microseconds */
	int64		stage_count[GPU_STAGES];
	int64		stage_requests[GPU_STAGES];
	double		stage_us[GPU_STAGES];
	double		stage_max_us[GPU_STAGES];
	int			ndevices;		/* logical devices open (0: none) */
	GpuDeviceStats devices[GPU_MAX_DEVICES];
	/* the routing model's measurements (CodevecGpuCalibrationGet/Put) */
	int			ncalibrations;
	struct
	{
		int			metric;
		int			dims;
		char		kernels[32];
		CodevecCalibration c;
	}			calibrations[GPU_CALIBRATIONS];
	double		ping_us;		/* > 0: measured under ping_generation */
	uint64		ping_generation;
	GpuSlot		slots[GPU_MAX_SLOTS];
} GpuServiceShared;

/* NULL in a backend of a server that did not preload codevec */
extern GpuServiceShared *gpu_shared;

/* codevec_gpu_status()'s names of GpuServiceState values */
extern const char *const gpu_service_state_names[];

/* Set the latch of the process with the given pgprocno */
extern void GpuServiceWakeProc(int procno);

/*
 * One request kind's service side. run answers one request in place (its
 * status, errmsg and answer fields). A kind with run_group has requests
 * that can share one launch: the loop gives it, at once, every request of
 * a batch for which same_group(first, other) holds, before it runs the
 * requests of kinds without one (in registration order). needs_device:
 * without a ready CUDA device (or, in a build without CUDA, run == NULL)
 * the loop answers GPU_STATUS_NO_DEVICE itself.
 *
 * Double buffering (gpuloop.c), optional, for a kind with run_group:
 * start_group issues a group's work on the device and returns without
 * waiting: a handle, or NULL when it answered the group in place instead
 * (as run_group). group_ready(handle) says, without waiting, whether the
 * device is done; finish_group(handle) waits for it, writes every
 * request's answer (or error) and frees the handle. The loop starts a
 * batch while batches before it are still on the device only when every
 * request of it is of a kind with start_group, so such a kind's requests
 * (started or answered in place) must leave alone whatever another
 * started group uses; a batch with any other request runs after the
 * batches in flight were answered, and then uses run_group.
 *
 * beside_started: the kind's groups (run_group, synchronously) may run
 * while started groups are on the device, because they touch nothing a
 * started group uses (EMBED: the encoder's own model, buffers and stream).
 * A batch of such requests and startable ones is then started too: its
 * startable groups first, then these, whose device work overlaps the
 * started kernels (and those of the batches before it).
 */
typedef struct GpuRequestKindData
{
	int			kind;			/* GpuRequestKind */
	const char *name;
	bool		needs_device;
	void		(*run) (GpuRequestHeader *req);
	bool		(*same_group) (const GpuRequestHeader *a, const GpuRequestHeader *b);
	void		(*run_group) (GpuRequestHeader **reqs, int n);
	void	   *(*start_group) (GpuRequestHeader **reqs, int n);
	bool		(*group_ready) (void *handle);
	void		(*finish_group) (void *handle);
	bool		beside_started;
} GpuRequestKindData;

/* The registered row of a request kind, or NULL (gpuservice.c) */
extern const GpuRequestKindData *GpuServiceKind(int kind);

/*
 * Service side only (gpuservice.c): n slots answered, their requests
 * written: mark them done (free when abandoned), wake their backends,
 * count them in codevec_gpu_status()'s counters and histograms, and time
 * them from t0 (GpuServiceNowUs() when their batch was collected).
 * batch_size > 0: these are a batch's last answers, and the batch of
 * that many requests is counted (batches, mean and largest batch); 0: a
 * part answered ahead of the rest of its batch.
 */
extern void GpuServiceAnswered(const int *slots, int n, double t0, int batch_size);

/*
 * The worker's side of the service core, for its loop (gpuloop.c; service
 * side only):
 *
 * GpuServiceBegin: mark the service starting (pid, generation; the slots
 *	  of a previous incarnation woken to error out), arrange the shutdown
 *	  bookkeeping, open the devices, log the outcome and, when ready, call
 *	  the ready hook (prewarm).
 * GpuServiceCollectPosted: move posted slots to RUNNING, appending their
 *	  numbers to slots[n ..]; the new n. Publishes the stages timed since
 *	  the last call.
 * GpuServiceIdle: the idle turn's hook (the prewarm list written when the
 *	  copies changed).
 */
extern void GpuServiceBegin(void);
extern int	GpuServiceCollectPosted(int *slots, int n);
extern void GpuServiceIdle(void);

/* What a device store adds to codevec_gpu_status() */
typedef enum GpuStoreCounter
{
	GPU_STORE_COUNTS_INDEXES,	/* indexes_loaded */
	GPU_STORE_COUNTS_MODELS,	/* models_loaded */
	GPU_STORE_COUNTS_NONE		/* counted in no column (BM25 stores: their bytes only) */
} GpuStoreCounter;

/*
 * Something a kind keeps on the device across requests: bytes() returns
 * the device bytes it holds and, when count is not NULL, how many objects;
 * per_device (may be NULL) adds what it holds on each logical device into
 * held[0 .. GpuServiceDeviceCount() - 1].
 */
typedef struct GpuDeviceStoreData
{
	const char *name;
	GpuStoreCounter counter;
	Size		(*bytes) (int *count);
	void		(*per_device) (GpuDeviceHeld *held);
} GpuDeviceStoreData;

/*
 * GpuServiceSetup: define the GPU GUCs; when loading through
 * shared_preload_libraries, also request the shared memory and register the
 * service worker (gpuservice.c; CodevecGpuServiceInit in gpukinds.c calls
 * it, then registers the kinds).
 */
extern void GpuServiceSetup(void);

/*
 * GpuServiceRegisterKind / GpuServiceRegisterStore: add a row to the
 * service's tables (from _PG_init, through CodevecGpuServiceInit; the rows
 * must outlive the process). elog(ERROR) on a duplicate or bad kind.
 */
extern void GpuServiceRegisterKind(const GpuRequestKindData *kind);
extern void GpuServiceRegisterStore(const GpuDeviceStoreData *store);

/*
 * Hooks into the service's life, called in the service process: ready()
 * once the device is open (state READY), save(false) on each idle turn of
 * the loop and save(true) at shutdown. Registered once, from _PG_init
 * (GpuPrewarmRegister: gpuprewarm.c); the struct must outlive the process.
 * They must not throw: an ERROR in them ends the service.
 */
typedef struct GpuServiceHooks
{
	void		(*ready) (void);
	void		(*save) (bool force);
} GpuServiceHooks;

extern void GpuServiceRegisterHooks(const GpuServiceHooks *hooks);

/* Service side only: the CUDA device index of the first logical device */
extern int	GpuServiceDeviceIndex(void);

/*
 * Several devices (gpuservice.c). The service opens one logical device per
 * entry of codevec.gpu_devices (default: every visible GPU, at most
 * GPU_MAX_DEVICES; codevec.gpu_device alone, when only it is set), numbered
 * 0 .. GpuServiceDeviceCount() - 1; logical device 0 is current while a
 * request runs unless its kind makes another one current.
 *
 * GpuServiceDeviceCount: how many are open (0 without a device).
 * GpuServiceDeviceOrdinal: the CUDA ordinal of logical device dev.
 * GpuServiceUseDevice: make dev's GPU current for this thread; false if
 *	  CUDA refused (errbuf).
 * GpuServicePickDevice: the logical device not in exclude (bit dev) whose
 *	  GPU has the most free memory, ties to the one whose stores hold the
 *	  fewest bytes, then the lowest number; -1 if every one is excluded.
 *	  *free_bytes (may be NULL): that GPU's free memory.
 * GpuServiceDeviceServed: count nreq requests run on dev (published to
 *	  codevec_gpu_devices() with the stages, at the end of each batch).
 */
extern int	GpuServiceDeviceCount(void);
extern int	GpuServiceDeviceOrdinal(int dev);
extern bool GpuServiceUseDevice(int dev, char *errbuf, size_t errlen);
extern int	GpuServicePickDevice(uint32 exclude, Size *free_bytes);
extern void GpuServiceDeviceServed(int dev, int nreq);

/* codevec.gpu_split_rows, codevec.gpu_replicate_rate, codevec.gpu_double_buffer */
extern int	codevec_gpu_split_rows;
extern int	codevec_gpu_replicate_rate;
extern bool codevec_gpu_double_buffer;

/*
 * Service side only: device bytes held by every registered store except
 * the one given (NULL: all of them), for codevec.gpu_memory_limit.
 */
extern Size GpuServiceStoresBytes(const GpuDeviceStoreData *except);

/*
 * Service side only: publish the device memory in use and the stores'
 * object counts to codevec_gpu_status(); call after loading or dropping.
 */
extern void GpuServiceUpdateMemoryStats(void);

/*
 * Service side only: add one timing of a stage (microseconds) that
 * concerned nreq requests; kept in the service's memory and published to
 * codevec_gpu_stages() at the end of each batch (no lock taken here).
 */
extern void GpuServiceStageAdd(GpuStage stage, double us, int nreq);

/* Service side only: a monotonic clock reading in microseconds */
extern double GpuServiceNowUs(void);

/*
 * Prewarm (gpuprewarm.c): the index copies to load again at the service's
 * start, named by database and index.
 */
#define GPU_PREWARM_MAX_ENTRIES 64

typedef struct GpuCopyName
{
	Oid			dbid;
	Oid			indexid;
	bool		queried;		/* GpuCopiesList: a query ran on it */
} GpuCopyName;

/* codevec.gpu_prewarm */
extern bool codevec_gpu_prewarm;

/*
 * Define codevec.gpu_prewarm and register GpuPrewarmStart / GpuPrewarmSave
 * as the service's hooks (from CodevecGpuServiceInit)
 */
extern void GpuPrewarmRegister(void);

/*
 * Service side only, once the device is open: read the list and register
 * one prewarm worker per database in it (when codevec.gpu_prewarm is on).
 */
extern void GpuPrewarmStart(void);

/*
 * Service side only: write the list when the copies changed since it was
 * last written (force: in any case, e.g. at shutdown). Failures are LOG
 * lines; never an error.
 */
extern void GpuPrewarmSave(bool force);

/*
 * Read a list file into out (at most max entries), skipping what is
 * malformed with one ereport at elevel; the count. Never an error above
 * elevel.
 */
extern int	GpuPrewarmRead(const char *path, GpuCopyName *out, int max, int elevel);

/*
 * Service side only (gpucopies.c): the complete index copies held, those
 * a KNN request ran on first, each group most recently used first (at
 * most max; the count), and a counter bumped each time a copy completes
 * or is dropped.
 */
extern int	GpuCopiesList(GpuCopyName *out, int max);
extern uint64 GpuCopiesGeneration(void);

/* Each kind file's registration (gpukinds.c calls them) */
extern void GpuCopiesRegister(void);
extern void GpuKnnRegister(void);
extern void GpuKmeansRegister(void);
extern void GpuEmbedRegister(void);
extern void GpuBm25Register(void);

#endif							/* CODEVEC_GPUSERVICEINT_H */
