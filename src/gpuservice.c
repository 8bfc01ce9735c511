/*
 * gpuservice.c
 *	  The GPU service worker, its shared state and the backend side of the
 *	  request protocol (see gpuservice.h for the design).
 *
 * Shared memory holds one GpuServiceShared: the service's pid, latch and
 * generation, what it has opened (device, memory), counters and histograms
 * for codevec_gpu_status(), and GPU_MAX_SLOTS request slots. A slot moves
 *
 *	FREE -> POSTED (backend) -> RUNNING (service) -> DONE (service) -> FREE (backend)
 *
 * and to ABANDONED when the backend leaves before DONE; the service then
 * frees it. Every state change happens under the spinlock, and whoever
 * changes a slot another process waits on sets that process's latch.
 *
 * CUDA is initialised only inside the service process (the postmaster
 * forks it, so nothing CUDA exists before the fork). Like PG-Strom's GPU
 * service, the service never calls elog() from a CUDA callback or helper
 * thread; it has none: one loop collects, runs and answers.
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "gpuservice.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#include "knn.h"
#include "kmeans.h"
#endif

#define GPU_MAX_SLOTS		256
#define GPU_LATENCY_BUCKETS	48	/* bucket b: latency < 2^(b/2) microseconds */
#define GPU_BATCH_BUCKETS	10	/* bucket b: batch size < 2^(b+1) */

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
	GpuSlot		slots[GPU_MAX_SLOTS];
} GpuServiceShared;

int			codevec_device = CODEVEC_DEVICE_AUTO;
int			codevec_gpu_device = 0;
int			codevec_gpu_memory_limit_mb = 0;
int			codevec_gpu_batch_window_us = 0;
int			codevec_gpu_timeout_ms = 30000;

static const struct config_enum_entry device_options[] = {
	{"auto", CODEVEC_DEVICE_AUTO, false},
	{"cpu", CODEVEC_DEVICE_CPU, false},
	{"cuda", CODEVEC_DEVICE_CUDA, false},
	{NULL, 0, false}
};

static const char *const state_names[] = {
	"absent", "starting", "ready", "no device", "stopped"
};

static GpuServiceShared *gpu_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool fallback_warned = false;
static int	my_slot = -1;		/* slot this backend waits on, or -1 */

/* ---------------------------------------------------------------------
 * Shared memory and registration
 * --------------------------------------------------------------------- */

/* Ask for the shared struct (shmem_request_hook) */
static void
GpuServiceShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(GpuServiceShared)));
}

/* Create or attach the shared struct (shmem_startup_hook) */
static void
GpuServiceShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	gpu_shared = ShmemInitStruct("codevec gpu service", sizeof(GpuServiceShared), &found);
	if (!found)
	{
		memset(gpu_shared, 0, sizeof(GpuServiceShared));
		SpinLockInit(&gpu_shared->mutex);
		gpu_shared->state = GPU_SERVICE_ABSENT;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
CodevecGpuServiceInit(void)
{
	DefineCustomEnumVariable("codevec.device",
							 "Where embed() and gpuivf scans run: auto, cpu or cuda.",
							 "auto uses the GPU service when it is ready and the CPU otherwise "
							 "(one WARNING per session); cuda raises an error when the GPU service "
							 "cannot serve; cpu never uses the GPU.",
							 &codevec_device, CODEVEC_DEVICE_AUTO, device_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	/*
	 * Not PGC_POSTMASTER: that would make loading the library after server
	 * start (no preload) fail. The service reads it when it starts.
	 */
	DefineCustomIntVariable("codevec.gpu_device",
							"CUDA device index the GPU service opens.",
							"Read when the service starts: restart it to apply a change.",
							&codevec_gpu_device, 0, 0, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("codevec.gpu_memory_limit",
							"Cap on the device memory the GPU service may hold (0: no cap).",
							"Models and index copies that would exceed it are not loaded; "
							"their work runs on the CPU.",
							&codevec_gpu_memory_limit_mb, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("codevec.gpu_batch_window",
							"How long the GPU service waits for more requests to batch.",
							"Microseconds. 0 (the default) launches at once; requests that arrive "
							"while a launch runs form the next batch, so batches grow with load "
							"without adding latency to a lone query.",
							&codevec_gpu_batch_window_us, 0, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("codevec.gpu_timeout",
							"How long a backend waits for the GPU service to answer.",
							NULL, &codevec_gpu_timeout_ms, 30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = GpuServiceShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = GpuServiceShmemStartup;

	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
		worker.bgw_start_time = BgWorkerStart_PostmasterStart;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "codevec");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "CodevecGpuServiceMain");
		snprintf(worker.bgw_name, BGW_MAXLEN, "codevec gpu service");
		snprintf(worker.bgw_type, BGW_MAXLEN, "codevec gpu service");
		RegisterBackgroundWorker(&worker);
	}
}

/* ---------------------------------------------------------------------
 * Statistics
 * --------------------------------------------------------------------- */

/* Histogram bucket of a latency in microseconds */
static int
LatencyBucket(int64 us)
{
	int			b = 0;

	while (b < GPU_LATENCY_BUCKETS - 1 && (double) us >= pow(2.0, (b + 1) / 2.0))
		b++;
	return b;
}

/* Upper bound (microseconds) of the bucket holding the p-th percentile */
static double
LatencyPercentile(const int64 *hist, int64 total, double p)
{
	int64		want = (int64) ceil(p * total),
				acc = 0;

	if (total == 0)
		return 0;
	for (int b = 0; b < GPU_LATENCY_BUCKETS; b++)
	{
		acc += hist[b];
		if (acc >= want)
			return pow(2.0, (b + 1) / 2.0);
	}
	return pow(2.0, GPU_LATENCY_BUCKETS / 2.0);
}

/* ---------------------------------------------------------------------
 * The service process
 * --------------------------------------------------------------------- */

/* Wake the process with the given pgprocno */
static void
WakeProc(int procno)
{
	SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* Leave shared state consistent when the service exits */
static void
GpuServiceShutdown(int code, Datum arg)
{
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_STOPPED;
	gpu_shared->pid = 0;
	gpu_shared->generation++;
	gpu_shared->memory_used = 0;
	for (int i = 0; i < GPU_MAX_SLOTS; i++)
	{
		GpuSlot    *s = &gpu_shared->slots[i];

		if (s->state == SLOT_POSTED || s->state == SLOT_RUNNING)
			WakeProc(s->procno);	/* it sees the new generation and errors */
		if (s->state == SLOT_ABANDONED)
			s->state = SLOT_FREE;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/* Open the configured CUDA device, or record why there is none */
static void
OpenDevice(void)
{
#ifdef CODEVEC_USE_CUDA
	char		errbuf[256] = "";
	int			count = 0;
	char		name[128] = "";
	size_t		free_b = 0,
				total_b = 0;

	if (codevec_cuda_device_count(&count, errbuf, sizeof(errbuf)) != 0 || count == 0)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->state = GPU_SERVICE_NO_DEVICE;
		snprintf(gpu_shared->message, sizeof(gpu_shared->message), "no CUDA device: %s",
				 errbuf[0] ? errbuf : "none found");
		SpinLockRelease(&gpu_shared->mutex);
		return;
	}
	if (codevec_gpu_device >= count ||
		codevec_cuda_open_device(codevec_gpu_device, name, sizeof(name), &free_b, &total_b,
								 errbuf, sizeof(errbuf)) != 0)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->state = GPU_SERVICE_NO_DEVICE;
		if (codevec_gpu_device >= count)
			snprintf(gpu_shared->message, sizeof(gpu_shared->message),
					 "codevec.gpu_device = %d but only %d CUDA device(s) are visible",
					 codevec_gpu_device, count);
		else
			snprintf(gpu_shared->message, sizeof(gpu_shared->message), "%s", errbuf);
		SpinLockRelease(&gpu_shared->mutex);
		return;
	}
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_READY;
	gpu_shared->device_index = codevec_gpu_device;
	strlcpy(gpu_shared->device_name, name, sizeof(gpu_shared->device_name));
	gpu_shared->memory_total = (int64) total_b;
	gpu_shared->memory_used = (int64) (total_b - free_b);
	gpu_shared->message[0] = '\0';
	SpinLockRelease(&gpu_shared->mutex);
#else
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_NO_DEVICE;
	strlcpy(gpu_shared->message, "codevec was built without CUDA (make CUDA=0, or no nvcc)",
			sizeof(gpu_shared->message));
	SpinLockRelease(&gpu_shared->mutex);
#endif
}

#ifdef CODEVEC_USE_CUDA

/*
 * Index copies held by the service (service-local memory). Each has its
 * vectors on the device (cuda/knn.h) and the heap TIDs of its rows here:
 * the main rows (n, loaded whole by UPLOAD) and the delta tier (ndelta rows
 * of at most delta_cap, appended by APPEND after inserts), searched
 * together; row positions run over the main rows, then the delta's, in
 * the index chain's order, as a fresh copy would number them.
 */
#define GPU_MAX_INDEXES 64
#define GPU_DELTA_MIN_ROWS	4096	/* delta tier: max(this, main rows / 8) */

typedef struct GpuIndexCopy
{
	bool		used;
	bool		complete;		/* every chunk of the main rows arrived */
	GpuIndexKey key;			/* insertCount: the rows the copy holds */
	int			dims;
	int64		n;				/* main rows */
	int64		loaded;			/* main rows uploaded so far */
	int64		ndelta;			/* delta rows */
	int64		delta_cap;		/* 0 until the first APPEND */
	uint32		resume_blk;		/* chain position after the last row held */
	uint32		resume_off;
	float		maxnorm;
	size_t		device_bytes;	/* main + delta */
	TimestampTz last_used;
	ItemPointerData *tids;		/* malloc'd: n main rows, then delta_cap */
	float	   *delta_vecs;		/* malloc'd: the delta rows (delta_cap x dims) */
	CodevecCudaIndex idx;
	CodevecCudaIndex delta;		/* exactly the ndelta rows: made again at each
								 * APPEND (a device index has a fixed row count) */
	uint8	   *masked;			/* malloc'd when a VACUUM masked rows: one
								 * byte per row position (main, then delta) */
	int64		masked_cap;		/* positions masked[] covers */
	int64		nmasked;
	int			lists;			/* IVF: lists > 1, rows stored list after list */
	int64	   *list_first;		/* malloc'd, lists + 1: list l holds main rows
								 * list_first[l] .. list_first[l + 1] - 1 */
	int			uploader;		/* pid of the backend loading it */
	TimestampTz upload_last;	/* when its last chunk came */
} GpuIndexCopy;

/*
 * A copy still loading whose uploader sent nothing for this long is taken
 * over by the next backend that loads it (the first one died or gave up).
 */
#define GPU_UPLOAD_STALL_MS		5000

static GpuIndexCopy index_copies[GPU_MAX_INDEXES];

/* Publish the device memory in use and the number of copies and models */
static void
UpdateMemoryStats(void)
{
	int			loaded = 0,
				models = 0;
	size_t		free_b = 0,
				total_b = 0;
	char		errbuf[128];

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		loaded += index_copies[i].used;
	if (codevec_cuda_memory(&free_b, &total_b, errbuf, sizeof(errbuf)) == 0)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->memory_used = (int64) (total_b - free_b);
		gpu_shared->memory_total = (int64) total_b;
		SpinLockRelease(&gpu_shared->mutex);
	}
	GpuEmbedModelsBytes(&models);
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->indexes_loaded = loaded;
	gpu_shared->models_loaded = models;
	SpinLockRelease(&gpu_shared->mutex);
}

/* Drop a copy: device memory and TIDs */
static void
DropCopy(GpuIndexCopy *c)
{
	codevec_cuda_index_free(c->idx);
	codevec_cuda_index_free(c->delta);
	free(c->tids);
	free(c->delta_vecs);
	free(c->list_first);
	free(c->masked);
	memset(c, 0, sizeof(*c));
}

/* The copy of the same index (any version), or NULL */
static GpuIndexCopy *
FindCopy(const GpuIndexKey *key)
{
	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used && index_copies[i].key.dbid == key->dbid &&
			index_copies[i].key.indexid == key->indexid)
			return &index_copies[i];
	return NULL;
}

/* Bytes the device holds for held copies */
static size_t
CopiesBytes(void)
{
	size_t		total = 0;

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used)
			total += index_copies[i].device_bytes;
	return total;
}

/*
 * How a copy stands against a request's key: 0 current; GPU_STATUS_STALE
 * when only rows inserted since are missing; GPU_STATUS_NOT_LOADED when
 * there is none, it is incomplete, or another version (REINDEX, TRUNCATE,
 * VACUUM, other dims), or an IVF copy behind in inserts (its rows are
 * grouped by list: it is loaded again whole).
 */
static int
CopyStatus(const GpuIndexCopy *c, const GpuIndexKey *key, int dims)
{
	if (c == NULL || !c->complete || c->key.relfilenode != key->relfilenode ||
		c->key.changeCount != key->changeCount || c->dims != dims)
		return GPU_STATUS_NOT_LOADED;
	if (c->key.insertCount != key->insertCount)
		return c->lists > 1 ? GPU_STATUS_NOT_LOADED : GPU_STATUS_STALE;
	return 0;
}

/* Answer a KNN request that found no current copy */
static void
AnswerNotCurrent(GpuKnnRequest *r, const GpuIndexCopy *c, int status)
{
	r->hdr.status = status;
	if (status == GPU_STATUS_STALE)
	{
		r->nrows = c->n + c->ndelta;
		r->resume_blk = c->resume_blk;
		r->resume_off = c->resume_off;
		r->delta_room = (c->delta_cap > 0 ? c->delta_cap : Max(GPU_DELTA_MIN_ROWS, c->n / 8)) - c->ndelta;
	}
}

/*
 * k nearest rows of nq queries over a copy's main rows and delta tier
 * (an IVF copy: the rows of the nprobe lists probes, every query alike,
 * or when qprobes is given, query q the next qprobes[q] of them):
 * dist/ids (nq x k, row positions, -1 past the end) in (distance, row)
 * order. Each tier's kernel returns its own first k; their merge is the
 * copy's first k, and a row of neither list is at least as far as the
 * merged k-th (it is at least its tier's k-th). Then rows (nq x k x dims)
 * gets the candidates' vectors. 0 or a CODEVEC_CUDA error (errbuf).
 */
static int
KnnOnCopy(GpuIndexCopy *c, const float *queries, int nq, int k, int metric,
		  const int32 *probes, int nprobe, const int *qprobes,
		  float *dist, int64 *ids, float *rows, char *errbuf, size_t errlen)
{
	Size		nk = (Size) nq * k;
	int			rc;
	int64	   *ranges = NULL;

	if (c->lists > 1)
	{
		/* IVF: the probed lists' rows only (one range each) */
		ranges = malloc(sizeof(int64) * 2 * Max(nprobe, 1));
		if (ranges == NULL)
		{
			snprintf(errbuf, errlen, "out of host memory");
			return CODEVEC_CUDA_E_INVALID;
		}
		for (int i = 0; i < nprobe; i++)
		{
			int32		l = probes[i];

			if (l < 0 || l >= c->lists)
			{
				free(ranges);
				snprintf(errbuf, errlen, "list %d out of range (the index has %d)", l, c->lists);
				return CODEVEC_CUDA_E_INVALID;
			}
			ranges[2 * i] = c->list_first[l];
			ranges[2 * i + 1] = c->list_first[l + 1] - c->list_first[l];
		}
	}
	rc = codevec_cuda_knn_qranges(c->idx, queries, nq, k, metric, ranges,
								  ranges ? nprobe : 0, ranges ? qprobes : NULL, dist, ids,
								  errbuf, errlen);
	free(ranges);
	if (rc == CODEVEC_CUDA_OK && c->ndelta > 0)
	{
		float	   *ddist = malloc(sizeof(float) * nk);
		int64	   *dids = malloc(sizeof(int64) * nk);
		float	   *mdist = malloc(sizeof(float) * k);
		int64	   *mids = malloc(sizeof(int64) * k);

		if (!ddist || !dids || !mdist || !mids)
		{
			snprintf(errbuf, errlen, "out of host memory");
			rc = CODEVEC_CUDA_E_INVALID;
		}
		else
			rc = codevec_cuda_knn(c->delta, queries, nq, k, metric, ddist, dids, errbuf, errlen);
		for (int q = 0; rc == CODEVEC_CUDA_OK && q < nq; q++)
		{
			float	   *a = dist + (Size) q * k,
					   *b = ddist + (Size) q * k;
			int64	   *ai = ids + (Size) q * k,
					   *bi = dids + (Size) q * k;
			int			i = 0,
						j = 0;

			for (int o = 0; o < k; o++)
			{
				bool		hasa = i < k && ai[i] >= 0,
							hasb = j < k && bi[j] >= 0;

				if (hasa && (!hasb || a[i] <= b[j]))
				{
					mdist[o] = a[i];
					mids[o] = ai[i++];
				}
				else if (hasb)
				{
					mdist[o] = b[j];
					mids[o] = c->n + bi[j++];
				}
				else
				{
					mdist[o] = INFINITY;
					mids[o] = -1;
				}
			}
			memcpy(a, mdist, sizeof(float) * k);
			memcpy(ai, mids, sizeof(int64) * k);
		}
		free(ddist);
		free(dids);
		free(mdist);
		free(mids);
	}
	/* the candidates' fp32 vectors, gathered per tier */
	if (rc == CODEVEC_CUDA_OK && rows != NULL)
	{
		int64	   *g = malloc(sizeof(int64) * CODEVEC_CUDA_MAX_K);
		float	   *buf = malloc(sizeof(float) * (Size) CODEVEC_CUDA_MAX_K * c->dims);

		if (!g || !buf)
		{
			snprintf(errbuf, errlen, "out of host memory");
			rc = CODEVEC_CUDA_E_INVALID;
		}
		for (int tier = 0; rc == CODEVEC_CUDA_OK && tier < (c->ndelta > 0 ? 2 : 1); tier++)
		{
			CodevecCudaIndex idx = tier == 0 ? c->idx : c->delta;
			Size		p = 0;

			while (rc == CODEVEC_CUDA_OK && p < nk)
			{
				Size		from = p;
				int			cnt = 0;

				/* the next CODEVEC_CUDA_MAX_K positions, this tier's rows only */
				for (; p < nk && cnt < CODEVEC_CUDA_MAX_K; p++)
				{
					bool		mine = tier == 0 ? (ids[p] >= 0 && ids[p] < c->n) : ids[p] >= c->n;

					g[cnt++] = mine ? (tier == 0 ? ids[p] : ids[p] - c->n) : -1;
				}
				rc = codevec_cuda_index_rows(idx, g, cnt, buf, errbuf, errlen);
				for (int e = 0; rc == CODEVEC_CUDA_OK && e < cnt; e++)
					if (g[e] >= 0 || (tier == 0 && ids[from + e] < 0))
						memcpy(rows + (from + e) * c->dims, buf + (Size) e * c->dims,
							   sizeof(float) * c->dims);
			}
		}
		free(g);
		free(buf);
	}
	return rc;
}

/* Write a KNN answer from dist/ids/rows (nq x k of the request) */
static void
AnswerKnn(GpuKnnRequest *r, const GpuIndexCopy *c, const float *dist, const int64 *ids,
		  const float *rows, int kstride)
{
	for (int q = 0; q < r->nq; q++)
		for (int i = 0; i < r->k; i++)
		{
			Size		src = (Size) q * kstride + i;
			Size		dst = (Size) q * r->k + i;
			int64		id = ids[src];

			if (&GpuKnnDistances(r)[dst] != &dist[src])
			{
				GpuKnnDistances(r)[dst] = dist[src];
				memcpy(GpuKnnRows(r) + dst * r->dims, rows + src * r->dims, sizeof(float) * r->dims);
			}
			if (id >= 0 && id < c->n + c->ndelta)
				GpuKnnTids(r)[dst] = c->tids[id];
			else
				ItemPointerSetInvalid(&GpuKnnTids(r)[dst]);
		}
	r->nrows = c->n + c->ndelta;
	r->maxnorm = c->maxnorm;
	r->hdr.status = 0;
}

/*
 * Answer a KNN request from a copy with masked rows: ask the kernels for k
 * plus the masked rows' number of candidates (at most CODEVEC_CUDA_MAX_K)
 * and keep the first k unmasked of each query. A query left with fewer
 * than k although the kernels' list was full (the cap cut it) makes the
 * answer partial, so the backend does not take it for the whole copy.
 */
static void
RunKnnMasked(GpuKnnRequest *r, GpuIndexCopy *c)
{
	int			kk = (int) Min((int64) CODEVEC_CUDA_MAX_K, (int64) r->k + c->nmasked);
	Size		nkk = (Size) r->nq * kk;
	float	   *dist = malloc(sizeof(float) * nkk);
	int64	   *ids = malloc(sizeof(int64) * nkk);
	float	   *rows = malloc(sizeof(float) * nkk * r->dims);
	float	   *odist = malloc(sizeof(float) * (Size) r->nq * r->k);
	int64	   *oids = malloc(sizeof(int64) * (Size) r->nq * r->k);
	float	   *orows = malloc(sizeof(float) * (Size) r->nq * r->k * r->dims);

	if (!dist || !ids || !rows || !odist || !oids || !orows)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
	}
	else if (KnnOnCopy(c, GpuKnnQueries(r), r->nq, kk, r->metric, GpuKnnProbes(r), r->nprobe,
					   NULL, dist, ids, rows, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		r->hdr.status = GPU_STATUS_FAILED;
	else
	{
		for (int q = 0; q < r->nq; q++)
		{
			int			j = 0,
						nvalid = 0;

			for (int i = 0; i < kk; i++)
			{
				Size		src = (Size) q * kk + i;
				int64		id = ids[src];

				if (id < 0)
					continue;
				nvalid++;
				if ((id < c->masked_cap && c->masked[id]) || j >= r->k)
					continue;
				odist[(Size) q * r->k + j] = dist[src];
				oids[(Size) q * r->k + j] = id;
				memcpy(orows + ((Size) q * r->k + j) * r->dims, rows + src * r->dims,
					   sizeof(float) * r->dims);
				j++;
			}
			if (j < r->k && nvalid == kk)
				r->partial = 1;
			for (; j < r->k; j++)
			{
				odist[(Size) q * r->k + j] = INFINITY;
				oids[(Size) q * r->k + j] = -1;
				memset(orows + ((Size) q * r->k + j) * r->dims, 0, sizeof(float) * r->dims);
			}
		}
		AnswerKnn(r, c, odist, oids, orows, r->k);
	}
	free(dist);
	free(ids);
	free(rows);
	free(odist);
	free(oids);
	free(orows);
}

/* Answer a KNN request from a current copy, or say what it lacks */
static void
RunKnn(GpuKnnRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	int			st = CopyStatus(c, &r->key, r->dims);
	Size		nk;
	float	   *dist,
			   *rows;
	int64	   *ids;

	if (st != 0)
	{
		AnswerNotCurrent(r, c, st);
		return;
	}
	if (r->k < 1 || r->k > CODEVEC_CUDA_MAX_K || r->nq < 1 || r->nprobe < 0 ||
		(c->lists > 1) != (r->nprobe > 0))
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad k %d, nq %d or nprobe %d (lists %d)",
				 r->k, r->nq, r->nprobe, c->lists);
		return;
	}
	c->last_used = GetCurrentTimestamp();
	r->partial = 0;
	if (c->nmasked > 0)
	{
		RunKnnMasked(r, c);
		return;
	}
	nk = (Size) r->nq * r->k;
	/* distances and candidate rows go straight into the answer */
	dist = GpuKnnDistances(r);
	rows = GpuKnnRows(r);
	ids = malloc(sizeof(int64) * nk);
	if (ids == NULL)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
		return;
	}
	if (KnnOnCopy(c, GpuKnnQueries(r), r->nq, r->k, r->metric, GpuKnnProbes(r), r->nprobe,
				  NULL, dist, ids, rows, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		r->hdr.status = GPU_STATUS_FAILED;
	else
		AnswerKnn(r, c, dist, ids, rows, r->k);
	free(ids);
}

/*
 * Answer several KNN requests on one index copy with one batched launch
 * (nq = the number of requests, k = the largest k; each request gets its
 * own first k, the same rows as asking alone since results are ordered by
 * (distance, row)); for an IVF copy each request's probed lists become its
 * query's own row ranges in the same launch. Requests with several queries
 * each, a copy with masked rows, or a copy that is not current, are
 * answered one by one.
 */
static void
RunKnnGroup(GpuKnnRequest **group, int ng)
{
	GpuIndexCopy *c = FindCopy(&group[0]->key);
	GpuKnnRequest *r0 = group[0];
	int			kmax = 0;
	float	   *queries,
			   *dist,
			   *rows;
	int64	   *ids;
	int32	   *probes;
	int		   *qprobes;
	int			nprobe = 0;
	bool		ivf = c != NULL && c->lists > 1;
	bool		one_by_one = ng == 1 || CopyStatus(c, &r0->key, r0->dims) != 0 ||
		c->nmasked > 0;

	for (int j = 0; j < ng && !one_by_one; j++)
	{
		kmax = Max(kmax, group[j]->k);
		nprobe += group[j]->nprobe;
		one_by_one |= group[j]->nq != 1 || group[j]->k < 1 || (group[j]->nprobe > 0) != ivf;
	}
	if (one_by_one || kmax > CODEVEC_CUDA_MAX_K)
	{
		for (int j = 0; j < ng; j++)
			RunKnn(group[j]);
		return;
	}
	queries = malloc(sizeof(float) * (Size) ng * r0->dims);
	dist = malloc(sizeof(float) * (Size) ng * kmax);
	ids = malloc(sizeof(int64) * (Size) ng * kmax);
	rows = malloc(sizeof(float) * (Size) ng * kmax * r0->dims);
	probes = malloc(sizeof(int32) * Max(nprobe, 1));
	qprobes = malloc(sizeof(int) * ng);
	if (queries == NULL || dist == NULL || ids == NULL || rows == NULL || probes == NULL ||
		qprobes == NULL)
	{
		free(queries);
		free(dist);
		free(ids);
		free(rows);
		free(probes);
		free(qprobes);
		for (int j = 0; j < ng; j++)
			RunKnn(group[j]);
		return;
	}
	/* the queries; IVF: each query's lists, its own ranges in one launch */
	for (int j = 0, total = 0; j < ng; j++)
	{
		memcpy(queries + (Size) j * r0->dims, GpuKnnQueries(group[j]), sizeof(float) * r0->dims);
		memcpy(probes + total, GpuKnnProbes(group[j]), sizeof(int32) * group[j]->nprobe);
		qprobes[j] = group[j]->nprobe;
		total += group[j]->nprobe;
	}
	c->last_used = GetCurrentTimestamp();
	if (KnnOnCopy(c, queries, ng, kmax, r0->metric, probes, nprobe, ivf ? qprobes : NULL,
				  dist, ids, rows,
				  r0->hdr.errmsg, sizeof(r0->hdr.errmsg)) != CODEVEC_CUDA_OK)
	{
		for (int j = 0; j < ng; j++)
		{
			group[j]->hdr.status = GPU_STATUS_FAILED;
			strlcpy(group[j]->hdr.errmsg, r0->hdr.errmsg, sizeof(group[j]->hdr.errmsg));
		}
	}
	else
		for (int j = 0; j < ng; j++)
		{
			group[j]->partial = 0;
			AnswerKnn(group[j], c, dist + (Size) j * kmax, ids + (Size) j * kmax,
					  rows + (Size) j * kmax * r0->dims, kmax);
		}
	free(probes);
	free(qprobes);
	free(queries);
	free(dist);
	free(ids);
	free(rows);
}

/* The largest norm of n rows of dims floats, folded into *maxnorm */
static void
FoldMaxNorm(float *maxnorm, const float *v, int64 n, int dims)
{
	for (int64 i = 0; i < n; i++)
	{
		double		s = 0;

		for (int j = 0; j < dims; j++)
			s += (double) v[i * dims + j] * v[i * dims + j];
		*maxnorm = Max(*maxnorm, (float) sqrt(s));
	}
}

/*
 * Make room for need more device bytes under codevec.gpu_memory_limit,
 * evicting least recently used copies other than keep; false if it cannot.
 */
static bool
MakeRoom(size_t need, const GpuIndexCopy *keep)
{
	size_t		cap = (size_t) codevec_gpu_memory_limit_mb * 1024 * 1024;

	while (cap > 0 && CopiesBytes() + GpuEmbedModelsBytes(NULL) + need > cap)
	{
		GpuIndexCopy *lru = NULL;

		for (int i = 0; i < GPU_MAX_INDEXES; i++)
			if (index_copies[i].used && &index_copies[i] != keep &&
				(lru == NULL || index_copies[i].last_used < lru->last_used))
				lru = &index_copies[i];
		if (lru == NULL)
			return false;
		DropCopy(lru);
	}
	return true;
}

/* Chunk of an index copy: the first one (re)creates the copy, evicting
 * least recently used copies to stay under codevec.gpu_memory_limit */
static void
RunUpload(GpuUploadRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	const float *v = GpuUploadVectors(r);

	if (c != NULL && c->uploader != r->uploader && !c->complete &&
		!TimestampDifferenceExceeds(c->upload_last, GetCurrentTimestamp(), GPU_UPLOAD_STALL_MS))
	{
		/*
		 * Another backend is loading this copy: two uploads at once would
		 * interleave their chunks and spoil both. The caller waits and asks
		 * again (its KNN finds the copy once complete).
		 */
		r->hdr.status = r->first == 0 ? GPU_STATUS_BUSY : GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d is loading this index copy", c->uploader);
		return;
	}
	if (r->first != 0 && c != NULL && c->uploader != r->uploader)
	{
		/* a chunk of an upload another backend has since replaced */
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d loaded this index copy meanwhile", c->uploader);
		return;
	}
	if (r->first == 0)
	{
		size_t		need = (size_t) r->total * r->dims * 6 + (size_t) r->total * 8;	/* fp32 + fp16 + norms */
		int			slot = -1;

		if (c != NULL)
			DropCopy(c);
		if (!MakeRoom(need, NULL))
		{
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
					 "index needs about %zu MB, codevec.gpu_memory_limit is %d MB",
					 need >> 20, codevec_gpu_memory_limit_mb);
			UpdateMemoryStats();
			return;
		}
		for (int i = 0; i < GPU_MAX_INDEXES && slot < 0; i++)
			if (!index_copies[i].used)
				slot = i;
		if (slot < 0)
		{
			GpuIndexCopy *lru = &index_copies[0];

			for (int i = 1; i < GPU_MAX_INDEXES; i++)
				if (index_copies[i].last_used < lru->last_used)
					lru = &index_copies[i];
			DropCopy(lru);
			slot = lru - index_copies;
		}
		c = &index_copies[slot];
		memset(c, 0, sizeof(*c));
		c->tids = malloc(sizeof(ItemPointerData) * Max(r->total, 1));
		if (c->tids == NULL ||
			codevec_cuda_index_create(Max(r->total, 1), r->dims, CODEVEC_PREC_AUTO, &c->idx,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		{
			if (c->tids == NULL)
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			UpdateMemoryStats();
			return;
		}
		c->used = true;
		c->key = r->key;
		c->dims = r->dims;
		c->n = r->total;
		c->uploader = r->uploader;
		if (r->lists > 1)
		{
			/* IVF: the rows come list after list; keep where each starts */
			const int64 *counts = GpuUploadListCounts(r);
			int64		sum = 0;

			c->list_first = malloc(sizeof(int64) * ((Size) r->lists + 1));
			for (int l = 0; c->list_first != NULL && l < r->lists; l++)
			{
				c->list_first[l] = sum;
				sum += counts[l] >= 0 ? counts[l] : r->total + 1;
			}
			if (c->list_first == NULL || sum != r->total)
			{
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
						 c->list_first == NULL ? "out of host memory" :
						 "list row counts do not add up to the rows sent");
				DropCopy(c);
				r->hdr.status = GPU_STATUS_FAILED;
				UpdateMemoryStats();
				return;
			}
			c->list_first[r->lists] = sum;
			c->lists = r->lists;
		}
	}
	if (c == NULL || c->complete || c->key.changeCount != r->key.changeCount ||
		c->key.insertCount != r->key.insertCount ||
		c->key.relfilenode != r->key.relfilenode || r->first != c->loaded ||
		r->first + r->n > c->n || r->dims != c->dims)
	{
		/* a chunk out of sequence: the copy is unusable */
		if (c != NULL)
			DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		UpdateMemoryStats();
		return;
	}
	c->upload_last = GetCurrentTimestamp();
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	if (r->n > 0 &&
		codevec_cuda_index_upload(c->idx, v, r->first, r->n,
								  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
	{
		DropCopy(c);
		r->hdr.status = GPU_STATUS_FAILED;
		UpdateMemoryStats();
		return;
	}
	memcpy(c->tids + r->first, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->loaded += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	if (c->loaded == c->n)
	{
		c->complete = true;
		codevec_cuda_index_info(c->idx, &c->device_bytes, NULL, NULL, 0);
	}
	r->hdr.status = 0;
	UpdateMemoryStats();
}

/*
 * Rows inserted since the copy was loaded, into its delta tier (created on
 * the first APPEND with room for max(GPU_DELTA_MIN_ROWS, n / 8) rows). A
 * request that does not continue the copy exactly (another backend's
 * append came first) gets GPU_STATUS_STALE to ask again; one that does not
 * fit drops the copy (GPU_STATUS_NOT_LOADED: the backend loads it whole,
 * which folds the delta into the main rows).
 */
static void
RunAppend(GpuUploadRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	const float *v = GpuUploadVectors(r);
	GpuIndexKey base = r->key;

	base.insertCount = c ? c->key.insertCount : 0;
	if (c == NULL || CopyStatus(c, &base, r->dims) != 0 || r->n < 0 || c->lists > 1)
	{
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		return;
	}
	if (r->first != c->n + c->ndelta || r->total < r->first + r->n)
	{
		r->hdr.status = GPU_STATUS_STALE;
		return;
	}
	if (c->delta_cap == 0)
	{
		int64		cap = Max(GPU_DELTA_MIN_ROWS, c->n / 8);
		ItemPointerData *t = realloc(c->tids, sizeof(ItemPointerData) * (c->n + cap));

		if (t != NULL)
			c->tids = t;
		c->delta_vecs = malloc(sizeof(float) * (Size) cap * r->dims);
		if (t == NULL || c->delta_vecs == NULL)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			UpdateMemoryStats();
			return;
		}
		c->delta_cap = cap;
	}
	if (r->total - c->n > c->delta_cap)
	{
		/* the delta is full: fold it in by loading the index whole */
		DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		UpdateMemoryStats();
		return;
	}
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	memcpy(c->delta_vecs + (Size) c->ndelta * r->dims, v, sizeof(float) * (Size) r->n * r->dims);

	/* the delta's device index, made again with all its rows */
	codevec_cuda_index_free(c->delta);
	c->delta = NULL;
	if (c->ndelta + r->n > 0)
	{
		size_t		need = (size_t) (c->ndelta + r->n) * r->dims * 6 + (size_t) (c->ndelta + r->n) * 8;

		if (!MakeRoom(need, c) ||
			codevec_cuda_index_create(c->ndelta + r->n, r->dims, CODEVEC_PREC_AUTO, &c->delta,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK ||
			codevec_cuda_index_upload(c->delta, c->delta_vecs, 0, c->ndelta + r->n,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			UpdateMemoryStats();
			return;
		}
	}
	memcpy(c->tids + c->n + c->ndelta, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->ndelta += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	if (c->n + c->ndelta == r->total)
		c->key.insertCount = r->key.insertCount;
	{
		size_t		main_b = 0,
					delta_b = 0;

		codevec_cuda_index_info(c->idx, &main_b, NULL, NULL, 0);
		codevec_cuda_index_info(c->delta, &delta_b, NULL, NULL, 0);
		c->device_bytes = main_b + delta_b;
	}
	r->hdr.status = 0;
	UpdateMemoryStats();
}

/*
 * A VACUUM removed rows (see GpuMaskRequest): mask them in the copy and
 * move it to the new version, or drop it when that cannot be done safely.
 */
static void
RunMask(GpuMaskRequest *r)
{
	GpuIndexCopy *c = FindCopy(&r->key);
	int64		rows;
	uint64	   *set = NULL;
	uint64		mask = 0;

	r->hdr.status = 0;
	if (c == NULL || c->key.relfilenode != r->key.relfilenode ||
		c->key.changeCount >= r->newChangeCount)
		return;					/* none, another relfilenode, or already newer */
	if (!c->complete || c->key.changeCount != r->key.changeCount || r->nblocks < 0 ||
		r->ntids < 0)
	{
		DropCopy(c);
		UpdateMemoryStats();
		return;
	}
	if (c->lists <= 1)
		for (int i = 0; i < r->nblocks; i++)
			if (GpuMaskBlocks(r)[i] == c->resume_blk)
			{
				/* the delta tier would resume at a moved offset */
				DropCopy(c);
				UpdateMemoryStats();
				return;
			}
	rows = c->n + c->ndelta;
	if (r->ntids > 0)
	{
		int64		cap = 16;

		while (cap < 2 * r->ntids)
			cap *= 2;
		mask = (uint64) cap - 1;
		set = calloc(cap, sizeof(uint64));
		if (c->masked_cap < c->n + Max(c->delta_cap, c->ndelta))
		{
			int64		newcap = c->n + Max(c->delta_cap, c->ndelta);
			uint8	   *m = realloc(c->masked, Max(newcap, 1));

			if (m != NULL)
			{
				memset(m + c->masked_cap, 0, newcap - c->masked_cap);
				c->masked = m;
				c->masked_cap = newcap;
			}
		}
		if (set == NULL || c->masked_cap < rows)
		{
			free(set);
			DropCopy(c);
			UpdateMemoryStats();
			return;
		}
		/* an open-addressing set of the removed TIDs (key + 1: 0 is empty) */
		for (int64 i = 0; i < r->ntids; i++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&GpuMaskTids(r)[i]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&GpuMaskTids(r)[i])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			set[h] = key;
		}
		for (int64 p = 0; p < rows; p++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&c->tids[p]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&c->tids[p])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			if (set[h] == key && !c->masked[p])
			{
				c->masked[p] = 1;
				c->nmasked++;
			}
		}
		free(set);
	}
	if (c->nmasked > GPU_MASK_MAX_ROWS)
	{
		/* too many holes: load it again, compacted */
		DropCopy(c);
		UpdateMemoryStats();
		return;
	}
	c->key.changeCount = r->newChangeCount;
}

/* Re-run the k-NN kernels' autotuning and answer its report */
static void
RunAutotune(GpuAutotuneRequest *r)
{
	if (r->dims < 1 || r->dims > 16000)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad dims %d", r->dims);
		return;
	}
	r->report[0] = '\0';
	r->hdr.status = codevec_cuda_autotune(r->dims, r->report, sizeof(r->report),
										  r->hdr.errmsg, sizeof(r->hdr.errmsg)) == CODEVEC_CUDA_OK ?
		0 : GPU_STATUS_FAILED;
}

/*
 * KMEANS staging areas (service-local memory): the samples an IVF build
 * sends, then the centroids it trained, per building backend.
 */
#define GPU_KMEANS_AREAS	8

typedef struct GpuKmeansArea
{
	int32		owner;			/* PID; 0 = free */
	int			dims;
	int			lists;
	int64		total;
	int64		loaded;
	float	   *samples;		/* malloc'd, total x dims */
	float	   *centroids;		/* malloc'd after TRAIN, lists x dims */
	TimestampTz last_used;
} GpuKmeansArea;

static GpuKmeansArea kmeans_areas[GPU_KMEANS_AREAS];

static void
FreeKmeansArea(GpuKmeansArea *a)
{
	free(a->samples);
	free(a->centroids);
	memset(a, 0, sizeof(*a));
}

/* Run a KMEANS request (see gpuservice.h) */
static void
RunKmeans(GpuKmeansRequest *r)
{
	GpuKmeansArea *a = NULL;
	int			rc;

	for (int i = 0; i < GPU_KMEANS_AREAS && a == NULL; i++)
		if (kmeans_areas[i].owner == r->owner)
			a = &kmeans_areas[i];
	if (r->op == GPU_KMEANS_DONE)
	{
		if (a != NULL)
			FreeKmeansArea(a);
		r->hdr.status = 0;
		return;
	}
	if (r->dims < 1 || r->dims > CODEVEC_CUDA_MAX_DIM || r->lists < 1 || r->n < 0 ||
		r->metric < CODEVEC_METRIC_L2 || r->metric > CODEVEC_METRIC_COSINE)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad k-means request");
		return;
	}
	if ((r->op == GPU_KMEANS_SAMPLES || r->op == GPU_KMEANS_TRAIN) && r->first == 0)
	{
		/* a new training: this owner's area, else a free or the oldest one */
		if (a == NULL)
		{
			a = &kmeans_areas[0];
			for (int i = 0; i < GPU_KMEANS_AREAS; i++)
				if (kmeans_areas[i].owner == 0 ||
					(a->owner != 0 && kmeans_areas[i].last_used < a->last_used))
					a = &kmeans_areas[i];
		}
		FreeKmeansArea(a);
		a->samples = malloc(sizeof(float) * (Size) Max(r->total, 1) * r->dims);
		if (a->samples == NULL)
		{
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory for k-means samples");
			return;
		}
		a->owner = r->owner;
		a->dims = r->dims;
		a->lists = r->lists;
		a->total = r->total;
	}
	if (a == NULL || a->dims != r->dims || a->lists != r->lists)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "no k-means in progress for this backend");
		return;
	}
	a->last_used = GetCurrentTimestamp();
	if (r->op == GPU_KMEANS_ASSIGN)
	{
		if (a->centroids == NULL)
		{
			r->hdr.status = GPU_STATUS_FAILED;
			snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "k-means assignment before training");
			return;
		}
		rc = codevec_cuda_assign(a->centroids, a->lists, a->dims, r->metric, GpuKmeansVectors(r),
								 r->n, (int32 *) GpuKmeansOut(r), r->hdr.errmsg, sizeof(r->hdr.errmsg));
		r->hdr.status = rc == CODEVEC_CUDA_OK ? 0 : GPU_STATUS_FAILED;
		return;
	}
	/* SAMPLES / TRAIN: the next chunk, in order */
	if (r->first != a->loaded || r->first + r->n > a->total || a->samples == NULL)
	{
		FreeKmeansArea(a);
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "k-means samples out of sequence");
		return;
	}
	memcpy(a->samples + (Size) r->first * a->dims, GpuKmeansVectors(r),
		   sizeof(float) * (Size) r->n * a->dims);
	a->loaded += r->n;
	r->hdr.status = 0;
	if (r->op != GPU_KMEANS_TRAIN)
		return;
	if (a->loaded != a->total)
	{
		FreeKmeansArea(a);
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "k-means trained before every sample arrived");
		return;
	}
	a->centroids = malloc(sizeof(float) * (Size) a->lists * a->dims);
	if (a->centroids == NULL)
	{
		FreeKmeansArea(a);
		r->hdr.status = GPU_STATUS_NO_MEMORY;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory for centroids");
		return;
	}
	rc = codevec_cuda_kmeans(a->samples, a->total, a->dims, a->lists,
							 r->metric == CODEVEC_METRIC_COSINE, r->iters, r->seed, a->centroids,
							 r->hdr.errmsg, sizeof(r->hdr.errmsg));
	free(a->samples);
	a->samples = NULL;
	if (rc != CODEVEC_CUDA_OK)
	{
		FreeKmeansArea(a);
		r->hdr.status = rc == CODEVEC_CUDA_ERR_NOMEM ? GPU_STATUS_NO_MEMORY : GPU_STATUS_FAILED;
		return;
	}
	/* the answer: the centroids, right after this (empty) last chunk's rows */
	memcpy(GpuKmeansOut(r), a->centroids, sizeof(float) * (Size) a->lists * a->dims);
}

#endif							/* CODEVEC_USE_CUDA */

/* Run one request in place; the answer goes into the same segment */
static void
RunRequest(GpuRequestHeader *req)
{
	switch (req->kind)
	{
		case GPU_REQUEST_PING:
			req->status = 0;
			break;
		case GPU_REQUEST_KNN:
		case GPU_REQUEST_UPLOAD:
		case GPU_REQUEST_APPEND:
		case GPU_REQUEST_AUTOTUNE:
		case GPU_REQUEST_KMEANS:
		case GPU_REQUEST_MASK:
		case GPU_REQUEST_EMBED:
#ifdef CODEVEC_USE_CUDA
			if (gpu_shared->state == GPU_SERVICE_READY)
			{
				if (req->kind == GPU_REQUEST_KNN)
					RunKnn((GpuKnnRequest *) req);
				else if (req->kind == GPU_REQUEST_UPLOAD)
					RunUpload((GpuUploadRequest *) req);
				else if (req->kind == GPU_REQUEST_APPEND)
					RunAppend((GpuUploadRequest *) req);
				else if (req->kind == GPU_REQUEST_AUTOTUNE)
					RunAutotune((GpuAutotuneRequest *) req);
				else if (req->kind == GPU_REQUEST_KMEANS)
					RunKmeans((GpuKmeansRequest *) req);
				else if (req->kind == GPU_REQUEST_MASK)
					RunMask((GpuMaskRequest *) req);
				else
				{
					GpuEmbedRequest *r = (GpuEmbedRequest *) req;

					GpuEmbedRunGroup(&r, 1, gpu_shared->device_index, CopiesBytes());
					UpdateMemoryStats();
				}
				break;
			}
#endif
			req->status = GPU_STATUS_NO_DEVICE;
			snprintf(req->errmsg, sizeof(req->errmsg), "%s",
					 gpu_shared->message[0] ? gpu_shared->message : "the GPU service has no CUDA device");
			break;
		default:
			req->status = GPU_STATUS_FAILED;
			snprintf(req->errmsg, sizeof(req->errmsg), "unknown request kind %d", req->kind);
			break;
	}
}

/* Run the posted requests of one batch and answer them */
static void
RunBatch(int *slots, int n)
{
	TimestampTz now;

	dsm_segment *segs[GPU_MAX_SLOTS];
	GpuRequestHeader *reqs[GPU_MAX_SLOTS];
	bool		done[GPU_MAX_SLOTS];

	/* a segment already gone means its backend left: nothing to answer */
	for (int i = 0; i < n; i++)
	{
		segs[i] = dsm_attach(gpu_shared->slots[slots[i]].handle);
		reqs[i] = segs[i] ? (GpuRequestHeader *) dsm_segment_address(segs[i]) : NULL;
		done[i] = (segs[i] == NULL);
	}
#ifdef CODEVEC_USE_CUDA
	/* k-NN requests on the same index copy share one batched launch */
	if (gpu_shared->state == GPU_SERVICE_READY)
		for (int i = 0; i < n; i++)
		{
			GpuKnnRequest *group[GPU_MAX_SLOTS];
			int			ng = 0;

			if (done[i] || reqs[i]->kind != GPU_REQUEST_KNN)
				continue;
			for (int j = i; j < n; j++)
			{
				GpuKnnRequest *a = (GpuKnnRequest *) reqs[i];
				GpuKnnRequest *b = (GpuKnnRequest *) reqs[j];

				if (!done[j] && reqs[j]->kind == GPU_REQUEST_KNN &&
					memcmp(&a->key, &b->key, sizeof(GpuIndexKey)) == 0 &&
					a->metric == b->metric && a->dims == b->dims)
				{
					group[ng++] = b;
					done[j] = true;
				}
			}
			RunKnnGroup(group, ng);
		}
#endif
#ifdef CODEVEC_USE_CUDA
	/* EMBED requests for the same model share one encoder call */
	if (gpu_shared->state == GPU_SERVICE_READY)
		for (int i = 0; i < n; i++)
		{
			GpuEmbedRequest *group[GPU_MAX_SLOTS];
			int			ng = 0;

			if (done[i] || reqs[i]->kind != GPU_REQUEST_EMBED)
				continue;
			for (int j = i; j < n; j++)
				if (!done[j] && reqs[j]->kind == GPU_REQUEST_EMBED &&
					strcmp(((GpuEmbedRequest *) reqs[i])->model,
						   ((GpuEmbedRequest *) reqs[j])->model) == 0)
				{
					group[ng++] = (GpuEmbedRequest *) reqs[j];
					done[j] = true;
				}
			GpuEmbedRunGroup(group, ng, gpu_shared->device_index, CopiesBytes());
			UpdateMemoryStats();
		}
#endif
	for (int i = 0; i < n; i++)
	{
		if (!done[i])
			RunRequest(reqs[i]);
		if (segs[i] != NULL)
			dsm_detach(segs[i]);
	}
	now = GetCurrentTimestamp();
	SpinLockAcquire(&gpu_shared->mutex);
	for (int i = 0; i < n; i++)
	{
		GpuSlot    *s = &gpu_shared->slots[slots[i]];
		int64		us = now - s->posted;

		gpu_shared->latency_hist[LatencyBucket(us)]++;
		if (s->state == SLOT_ABANDONED)
			s->state = SLOT_FREE;
		else
		{
			s->state = SLOT_DONE;
			WakeProc(s->procno);
		}
	}
	gpu_shared->requests += n;
	gpu_shared->batches++;
	gpu_shared->max_batch = Max(gpu_shared->max_batch, n);
	{
		int			b = 0;

		while (b < GPU_BATCH_BUCKETS - 1 && n >= (2 << b))
			b++;
		gpu_shared->batch_hist[b]++;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/* Move posted slots to RUNNING; return how many were added to slots[] */
static int
CollectPosted(int *slots, int n)
{
	SpinLockAcquire(&gpu_shared->mutex);
	for (int i = 0; i < GPU_MAX_SLOTS; i++)
	{
		GpuSlot    *s = &gpu_shared->slots[i];

		if (s->state == SLOT_POSTED)
		{
			s->state = SLOT_RUNNING;
			slots[n++] = i;
		}
		else if (s->state == SLOT_ABANDONED && s->generation != gpu_shared->generation)
			s->state = SLOT_FREE;
	}
	SpinLockRelease(&gpu_shared->mutex);
	return n;
}

/*
 * CodevecGpuServiceMain: entry point of the service worker.
 */
void
CodevecGpuServiceMain(Datum main_arg)
{
	int			slots[GPU_MAX_SLOTS];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_STARTING;
	gpu_shared->pid = MyProcPid;
	gpu_shared->procno = CodevecMyProcNumber;
	gpu_shared->generation++;
	gpu_shared->started = GetCurrentTimestamp();
	gpu_shared->message[0] = '\0';
	/* requests of a previous incarnation: their backends error out */
	for (int i = 0; i < GPU_MAX_SLOTS; i++)
		if (gpu_shared->slots[i].state != SLOT_FREE)
		{
			if (gpu_shared->slots[i].state != SLOT_ABANDONED)
				WakeProc(gpu_shared->slots[i].procno);
			else
				gpu_shared->slots[i].state = SLOT_FREE;
		}
	SpinLockRelease(&gpu_shared->mutex);
	before_shmem_exit(GpuServiceShutdown, (Datum) 0);

	/*
	 * The k-NN kernels' autotuning (cuda/knn.h) runs at the first use of a
	 * (GPU, dims) pair and takes seconds: keep its choices in the data
	 * directory so a restarted service reuses them.
	 */
	if (getenv("CODEVEC_CUDA_TUNE_FILE") == NULL)
		setenv("CODEVEC_CUDA_TUNE_FILE", psprintf("%s/pg_codevec_cuda_tune", DataDir), 1);
	OpenDevice();
	ereport(LOG,
			(errmsg("codevec gpu service started: %s", gpu_shared->state == GPU_SERVICE_READY ?
					gpu_shared->device_name : gpu_shared->message)));

	while (!ShutdownRequestPending)
	{
		int			n;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		n = CollectPosted(slots, 0);
		if (n > 0)
		{
			/* batching window: let concurrent requests join this launch */
			if (codevec_gpu_batch_window_us > 0 && n < GPU_MAX_SLOTS)
			{
				TimestampTz deadline = GetCurrentTimestamp() + codevec_gpu_batch_window_us;

				/*
				 * WaitLatch sleeps in whole milliseconds: windows under one
				 * are polled in short sleeps instead.
				 */
				for (;;)
				{
					long		left = (long) (deadline - GetCurrentTimestamp());

					if (left <= 0)
						break;
					if (left >= 1000)
					{
						(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
										 left / 1000, PG_WAIT_EXTENSION);
						ResetLatch(MyLatch);
					}
					else
						pg_usleep(Min(left, 25));
					n = CollectPosted(slots, n);
				}
			}
			RunBatch(slots, n);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	/* exit code 1: the postmaster restarts us after bgw_restart_time (unless shutting down) */
	proc_exit(1);
}

/* ---------------------------------------------------------------------
 * The backend side
 * --------------------------------------------------------------------- */

/* Current service state; ABSENT when the library was not preloaded */
static GpuServiceState
ServiceState(char *message, size_t len)
{
	GpuServiceState st;

	if (gpu_shared == NULL)
	{
		if (message)
			strlcpy(message, "codevec is not in shared_preload_libraries", len);
		return GPU_SERVICE_ABSENT;
	}
	SpinLockAcquire(&gpu_shared->mutex);
	st = gpu_shared->state;
	if (message)
		strlcpy(message, st == GPU_SERVICE_NO_DEVICE ? gpu_shared->message :
				st == GPU_SERVICE_READY ? "" : "the GPU service is not running", len);
	SpinLockRelease(&gpu_shared->mutex);
	return st;
}

bool
CodevecGpuServiceUsable(void)
{
	char		why[256];

	if (codevec_device == CODEVEC_DEVICE_CPU)
		return false;
	if (ServiceState(why, sizeof(why)) == GPU_SERVICE_READY)
		return true;
#ifndef CODEVEC_USE_CUDA
	/* a build without CUDA has nothing to fall back from: auto is the CPU */
	if (codevec_device == CODEVEC_DEVICE_AUTO)
		return false;
#endif
	CodevecGpuFallback(why, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
	return false;
}

void
CodevecGpuFallback(const char *why, int sqlstate)
{
	if (codevec_device == CODEVEC_DEVICE_CUDA)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("codevec.device is cuda but the GPU service cannot serve: %s", why),
				 errhint("Set codevec.device = auto to fall back to the CPU, or see codevec_gpu_status().")));
	/* every fallback is counted, for codevec_gpu_status() and the GPU tests */
	if (gpu_shared != NULL)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->fallbacks++;
		SpinLockRelease(&gpu_shared->mutex);
	}
	if (!fallback_warned)
	{
		ereport(WARNING,
				(errmsg("codevec: using the CPU: %s", why),
				 errdetail("codevec.device is auto; this warning is given once per session."),
				 errhint("Set codevec.device = cpu to use the CPU without this warning.")));
		fallback_warned = true;
	}
}

/* Give up this backend's slot (error, cancel, exit) */
static void
AbandonSlot(void)
{
	if (my_slot < 0 || gpu_shared == NULL)
		return;
	SpinLockAcquire(&gpu_shared->mutex);
	{
		GpuSlot    *s = &gpu_shared->slots[my_slot];

		if (s->state == SLOT_POSTED || s->state == SLOT_DONE ||
			s->generation != gpu_shared->generation)
			s->state = SLOT_FREE;
		else if (s->state == SLOT_RUNNING)
			s->state = SLOT_ABANDONED;	/* the service frees it when done */
	}
	SpinLockRelease(&gpu_shared->mutex);
	my_slot = -1;
}

/* before_shmem_exit: a backend leaving while it waits */
static void
AbandonAtExit(int code, Datum arg)
{
	AbandonSlot();
}

/*
 * The segment this backend reuses for its small requests (KNN, EMBED),
 * mapped for the whole session: creating one per request (shm_open,
 * ftruncate, mmap, munmap) costs more than the request's round trip.  After
 * a request that did not come back normally (error, cancel, timeout) the
 * service may still write into it: it is then replaced.
 */
static dsm_segment *session_seg = NULL;
static Size session_seg_size = 0;
static bool session_seg_dirty = false;

#define SESSION_SEG_MIN_SIZE	(256 * 1024)

dsm_segment *
CodevecGpuSessionSegment(Size size)
{
	if (session_seg != NULL && (session_seg_dirty || session_seg_size < size))
	{
		dsm_detach(session_seg);
		session_seg = NULL;
	}
	if (session_seg == NULL)
	{
		Size		want = SESSION_SEG_MIN_SIZE;

		while (want < size)
			want *= 2;
		session_seg = dsm_create(want, 0);
		dsm_pin_mapping(session_seg);
		session_seg_size = want;
		session_seg_dirty = false;
	}
	return session_seg;
}

int
CodevecGpuCall(dsm_segment *seg)
{
	static bool exit_hook = false;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), codevec_gpu_timeout_ms);
	uint64		generation = 0;
	int			service_procno = 0;
	GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);

	if (gpu_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the codevec GPU service is not running"),
				 errhint("Add codevec to shared_preload_libraries and restart the server.")));
	if (!exit_hook)
	{
		before_shmem_exit(AbandonAtExit, (Datum) 0);
		exit_hook = true;
	}

	/* take a free slot; all busy means as many requests in flight: wait */
	while (my_slot < 0)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		if (gpu_shared->state != GPU_SERVICE_READY && gpu_shared->state != GPU_SERVICE_NO_DEVICE)
		{
			SpinLockRelease(&gpu_shared->mutex);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the codevec GPU service is %s", state_names[gpu_shared->state])));
		}
		for (int i = 0; i < GPU_MAX_SLOTS; i++)
			if (gpu_shared->slots[i].state == SLOT_FREE)
			{
				GpuSlot    *s = &gpu_shared->slots[i];

				s->state = SLOT_POSTED;
				s->generation = generation = gpu_shared->generation;
				s->handle = dsm_segment_handle(seg);
				s->procno = CodevecMyProcNumber;
				s->posted = GetCurrentTimestamp();
				my_slot = i;
				break;
			}
		service_procno = gpu_shared->procno;
		SpinLockRelease(&gpu_shared->mutex);
		if (my_slot < 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	WakeProc(service_procno);

	PG_TRY();
	{
		for (;;)
		{
			GpuSlotState st;
			uint64		gen;

			SpinLockAcquire(&gpu_shared->mutex);
			st = gpu_shared->slots[my_slot].state;
			gen = gpu_shared->generation;
			SpinLockRelease(&gpu_shared->mutex);
			if (st == SLOT_DONE)
				break;
			if (gen != generation)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("the codevec GPU service restarted while serving this request"),
						 errhint("Retry; codevec_gpu_status() shows the service.")));
			if (GetCurrentTimestamp() >= deadline)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("the codevec GPU service did not answer within %d ms",
								codevec_gpu_timeout_ms),
						 errhint("Raise codevec.gpu_timeout, or see codevec_gpu_status().")));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		if (seg == session_seg)
			session_seg_dirty = true;	/* the service may still write into it */
		AbandonSlot();
		PG_RE_THROW();
	}
	PG_END_TRY();
	AbandonSlot();				/* DONE -> FREE */

	if (req->status == GPU_STATUS_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("codevec GPU service: %s", req->errmsg)));
	return req->status;
}

bool
CodevecGpuServiceReady(void)
{
	return ServiceState(NULL, 0) == GPU_SERVICE_READY;
}

/* ---------------------------------------------------------------------
 * SQL
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(codevec_gpu_status);
/*
 * codevec_gpu_status: one row describing the GPU service: state, pid,
 * generation, device, memory, counters, batch sizes and latency
 * percentiles (microseconds, histogram bucket bounds), the reason when
 * there is no device, and how many requests backends answered on the CPU
 * instead (codevec.device = auto) since the server started.
 */
Datum
codevec_gpu_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[16];
	bool		nulls[16];
	GpuServiceShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "codevec_gpu_status: return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	if (gpu_shared == NULL)
	{
		memset(&snap, 0, sizeof(snap));
		snap.state = GPU_SERVICE_ABSENT;
		strlcpy(snap.message, "codevec is not in shared_preload_libraries", sizeof(snap.message));
	}
	else
	{
		SpinLockAcquire(&gpu_shared->mutex);
		memcpy(&snap, gpu_shared, offsetof(GpuServiceShared, slots));
		SpinLockRelease(&gpu_shared->mutex);
	}

	values[0] = CStringGetTextDatum(state_names[snap.state]);
	values[1] = Int32GetDatum(snap.pid);
	nulls[1] = snap.pid == 0;
	values[2] = Int64GetDatum((int64) snap.generation);
	values[3] = CStringGetTextDatum(snap.device_name);
	nulls[3] = snap.state != GPU_SERVICE_READY;
	values[4] = Int64GetDatum(snap.memory_used / (1024 * 1024));
	values[5] = Int64GetDatum(snap.memory_total / (1024 * 1024));
	nulls[4] = nulls[5] = snap.state != GPU_SERVICE_READY;
	values[6] = Int32GetDatum(snap.models_loaded);
	values[7] = Int32GetDatum(snap.indexes_loaded);
	values[8] = Int64GetDatum(snap.requests);
	values[9] = Int64GetDatum(snap.batches);
	values[10] = Float8GetDatum(snap.batches > 0 ? (double) snap.requests / snap.batches : 0);
	values[11] = Float8GetDatum(LatencyPercentile(snap.latency_hist, snap.requests, 0.50));
	values[12] = Float8GetDatum(LatencyPercentile(snap.latency_hist, snap.requests, 0.99));
	values[13] = Int32GetDatum(snap.max_batch);
	values[14] = CStringGetTextDatum(snap.message);
	nulls[14] = snap.message[0] == '\0';
	/* 0.2.0 added fallbacks; a database still on 0.1.0's definition has 15 columns */
	values[15] = Int64GetDatum(snap.fallbacks);
	Assert(tupdesc->natts == 15 || tupdesc->natts == 16);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(codevec_gpu_ping);
/*
 * codevec_gpu_ping: send n empty requests to the GPU service one after the
 * other and return the mean round trip in microseconds (the protocol's
 * floor: shared memory, latches, batching window). Works without a GPU;
 * ERROR 55000 when the service is not running.
 */
Datum
codevec_gpu_ping(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(0);
	dsm_segment *seg;
	TimestampTz t0;

	if (n < 1 || n > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ping count must be between 1 and 1000000")));
	seg = dsm_create(sizeof(GpuRequestHeader), 0);
	t0 = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);

		memset(req, 0, sizeof(*req));
		req->kind = GPU_REQUEST_PING;
		CodevecGpuCall(seg);
	}
	dsm_detach(seg);
	PG_RETURN_FLOAT8((double) (GetCurrentTimestamp() - t0) / n);
}

/*
 * CodevecGpuServiceDescribe: the service's state, its device's name when
 * ready, why it cannot serve otherwise; read-only (gpuivf routing and
 * EXPLAIN, declared in gpuivf.h).
 */
extern int	CodevecGpuServiceDescribe(char *device, char *why, size_t len);
int
CodevecGpuServiceDescribe(char *device, char *why, size_t len)
{
	GpuServiceState st = ServiceState(why, len);

	if (device != NULL)
	{
		device[0] = '\0';
		if (st == GPU_SERVICE_READY && gpu_shared != NULL)
		{
			SpinLockAcquire(&gpu_shared->mutex);
			strlcpy(device, gpu_shared->device_name, len);
			SpinLockRelease(&gpu_shared->mutex);
		}
	}
	return (int) st;
}

PG_FUNCTION_INFO_V1(codevec_gpu_autotune);
/*
 * codevec_gpu_autotune(dims): re-run the k-NN kernels' autotuning on the
 * service's GPU for vectors of dims components (cuda/knn.h) and return its
 * report: the candidates measured and the one chosen. ERROR 55000 without
 * a ready service.
 */
Datum
codevec_gpu_autotune(PG_FUNCTION_ARGS)
{
	int32		dims = PG_GETARG_INT32(0);
	dsm_segment *seg;
	GpuAutotuneRequest *r;
	char	   *report;
	int			status;

	if (dims < 1 || dims > 16000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dims must be between 1 and 16000")));
	if (ServiceState(NULL, 0) != GPU_SERVICE_READY)
	{
		char		why[256];

		ServiceState(why, sizeof(why));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the GPU service cannot autotune: %s", why[0] ? why : "it is not ready")));
	}
	seg = dsm_create(sizeof(GpuAutotuneRequest), 0);
	r = (GpuAutotuneRequest *) dsm_segment_address(seg);
	memset(r, 0, sizeof(*r));
	r->hdr.kind = GPU_REQUEST_AUTOTUNE;
	r->dims = dims;
	status = CodevecGpuCall(seg);
	if (status != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the GPU service cannot autotune: %s", r->hdr.errmsg)));
	report = pstrdup(r->report);
	dsm_detach(seg);
	PG_RETURN_TEXT_P(cstring_to_text(report));
}
