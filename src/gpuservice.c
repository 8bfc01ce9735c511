/*
 * gpuservice.c
 *	  The GPU service worker: its shared memory and GUCs, the slot protocol's
 *	  service side, the tables of request kinds and device stores, the worker
 *	  loop, and codevec_gpu_status() (see gpuservice.h for the protocol and
 *	  gpuserviceint.h for the kind interface).
 *
 * Shared memory holds one GpuServiceShared: the service's pid, latch and
 * generation, what it has opened (device, memory), counters and histograms
 * for codevec_gpu_status(), and GPU_MAX_SLOTS request slots (their life
 * cycle is in gpuserviceint.h; the backend's half is gpuclient.c).
 *
 * The worker's loop and its batches are gpuloop.c's: it collects posted
 * slots (GpuServiceCollectPosted), runs or starts their requests through
 * the kinds' rows and hands the answers back (GpuServiceAnswered).
 *
 * CUDA is initialised only inside the service process (the postmaster
 * forks it, so nothing CUDA exists before the fork). Like PG-Strom's GPU
 * service, the service never calls elog() from a CUDA callback or helper
 * thread (gpuspread.c's helper threads never call PostgreSQL).
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "gpuserviceint.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#endif

int			codevec_device = CODEVEC_DEVICE_AUTO;
int			codevec_gpu_device = 0;
int			codevec_gpu_memory_limit_mb = 0;
int			codevec_gpu_batch_window_us = 0;
int			codevec_gpu_timeout_ms = 30000;
static char *codevec_gpu_devices_list = NULL;
int			codevec_gpu_split_rows = 0;
int			codevec_gpu_replicate_rate = 500;
bool		codevec_gpu_double_buffer = true;

/* where codevec.gpu_device's value came from: set, or its default */
static GucSource gpu_device_source = PGC_S_DEFAULT;

/* The logical devices the service opened (service-local) */
static int	ndevices = 0;
static int	device_ordinal[GPU_MAX_DEVICES];
static int64 device_served[GPU_MAX_DEVICES];	/* since the last publish */

static const struct config_enum_entry device_options[] = {
	{"auto", CODEVEC_DEVICE_AUTO, false},
	{"cpu", CODEVEC_DEVICE_CPU, false},
	{"cuda", CODEVEC_DEVICE_CUDA, false},
	{NULL, 0, false}
};

const char *const gpu_service_state_names[] = {
	"absent", "starting", "ready", "no device", "stopped"
};
StaticAssertDecl(lengthof(gpu_service_state_names) == GPU_SERVICE_STOPPED + 1,
				 "a name for every GpuServiceState");

/* codevec_gpu_stages()'s names of GpuStage values, in order */
static const char *const gpu_stage_names[] = {
	"queue", "window", "attach", "knn gather", "knn enqueue", "knn h2d", "knn kernels",
	"knn candidates", "knn d2h", "knn wait", "knn fallback", "knn answer", "knn", "embed",
	"embed start", "run", "detach", "wake", "batch", "finish", "overlap"
};
StaticAssertDecl(lengthof(gpu_stage_names) == GPU_STAGES, "a name for every GpuStage");

/* device stages are CUDA event intervals; the others host clock readings */
#define GPU_STAGE_ON_DEVICE(s) ((s) >= GPU_STAGE_KNN_H2D && (s) <= GPU_STAGE_KNN_D2H)

/* The stages timed during the current batch, published at its end */
static int64 stage_count[GPU_STAGES];
static int64 stage_requests[GPU_STAGES];
static double stage_us[GPU_STAGES];
static double stage_max_us[GPU_STAGES];

/* The registered request kinds, by kind number, and device stores */
static const GpuRequestKindData *kinds[GPU_MAX_KINDS];
static const GpuDeviceStoreData *stores[GPU_MAX_STORES];
static int	nstores = 0;

GpuServiceShared *gpu_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

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

/*
 * Parse a codevec.gpu_devices value: CUDA device numbers (0 ..
 * GPU_MAX_ORDINAL) separated by commas, blanks around each allowed, at most
 * GPU_MAX_DEVICES; the same number may come twice. Empty or blank: no
 * entry (*n = 0). false, with why (whylen bytes) saying what is wrong, on
 * anything else.
 */
static bool
ParseDeviceList(const char *s, int *out, int *n, char *why, size_t whylen)
{
	const char *p = s;

	*n = 0;
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return true;
	for (;;)
	{
		long		v = 0;
		int			digits = 0;

		while (isspace((unsigned char) *p))
			p++;
		for (; isdigit((unsigned char) *p); p++, digits++)
			if (v <= GPU_MAX_ORDINAL)
				v = v * 10 + (*p - '0');
		while (isspace((unsigned char) *p))
			p++;
		if (digits == 0 || (*p != ',' && *p != '\0'))
		{
			snprintf(why, whylen, "Entry %d is not a device number: the value must be "
					 "device numbers separated by commas, such as \"0,1\".", *n + 1);
			return false;
		}
		if (v > GPU_MAX_ORDINAL)
		{
			snprintf(why, whylen, "Entry %d is out of range: device numbers run from 0 to %d.",
					 *n + 1, GPU_MAX_ORDINAL);
			return false;
		}
		if (*n >= GPU_MAX_DEVICES)
		{
			snprintf(why, whylen, "At most %d devices may be listed.", GPU_MAX_DEVICES);
			return false;
		}
		out[(*n)++] = (int) v;
		if (*p == '\0')
			return true;
		p++;					/* the comma */
	}
}

/* check_hook of codevec.gpu_devices: a list ParseDeviceList accepts */
static bool
CheckGpuDevices(char **newval, void **extra, GucSource source)
{
	int			list[GPU_MAX_DEVICES];
	int			n;
	char		why[160];

	if (*newval == NULL || ParseDeviceList(*newval, list, &n, why, sizeof(why)))
		return true;
	GUC_check_errdetail("%s", why);
	return false;
}

/* check_hook of codevec.gpu_device: note whether it was set (the alias) */
static bool
CheckGpuDevice(int *newval, void **extra, GucSource source)
{
	gpu_device_source = source;
	return true;
}

void
GpuServiceSetup(void)
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
							PGC_SIGHUP, 0, CheckGpuDevice, NULL, NULL);
	/*
	 * Read by the service at its start: postmaster context when preloading.
	 * Loaded later (no service then) a PGC_POSTMASTER variable cannot be
	 * defined at all (a FATAL error), so it is defined as SIGHUP there.
	 */
	DefineCustomStringVariable("codevec.gpu_devices",
							   "CUDA devices the GPU service opens, as a comma-separated list of "
							   "device numbers.",
							   "Empty (the default): every visible device, at most 8 (or only "
							   "codevec.gpu_device when that is set). A number listed twice makes "
							   "two logical devices on one GPU. At most 8 entries, each 0 to 63.",
							   &codevec_gpu_devices_list, "",
							   process_shared_preload_libraries_in_progress ?
							   PGC_POSTMASTER : PGC_SIGHUP, 0,
							   CheckGpuDevices, NULL, NULL);
	DefineCustomIntVariable("codevec.gpu_split_rows",
							"Most rows of an index copy on one device when the service has several "
							"(0: split only a copy that does not fit one device).",
							"A larger copy is split into contiguous row ranges, each on the device "
							"with the most free memory; its queries scan every range and merge. "
							"Read when a copy is loaded.",
							&codevec_gpu_split_rows, 0, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("codevec.gpu_replicate_rate",
							"k-NN requests per second on one index copy above which the service, "
							"having several devices, replicates it on another (0: never).",
							"A replica is made only where the copy fits twice in the free memory; "
							"a batch of requests on a replicated copy is shared out among its "
							"replicas, which run at once.",
							&codevec_gpu_replicate_rate, 500, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("codevec.gpu_double_buffer",
							 "Start a batch of k-NN and embed() requests on the device while the "
							 "one before is still running (on), or run each batch to its end "
							 "first (off).",
							 "With it on, the GPU service collects and issues the next batch while "
							 "a batch's kernels and forward passes run, writes the answers of one "
							 "while the next runs, and hands back a batch's other requests "
							 "(keyword top-k) without waiting for them; answers are the same "
							 "either way.",
							 &codevec_gpu_double_buffer, true,
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

/* GpuServiceNowUs: see gpuserviceint.h */
double
GpuServiceNowUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* GpuServiceStageAdd: see gpuserviceint.h */
void
GpuServiceStageAdd(GpuStage stage, double us, int nreq)
{
	if (stage < 0 || stage >= GPU_STAGES || !(us >= 0))
		return;
	stage_count[stage]++;
	stage_requests[stage] += nreq;
	stage_us[stage] += us;
	stage_max_us[stage] = Max(stage_max_us[stage], us);
}

/* Add the stages timed since the last call to shared memory (mutex held) */
static void
PublishStages(void)
{
	for (int i = 0; i < GPU_STAGES; i++)
	{
		gpu_shared->stage_count[i] += stage_count[i];
		gpu_shared->stage_requests[i] += stage_requests[i];
		gpu_shared->stage_us[i] += stage_us[i];
		gpu_shared->stage_max_us[i] = Max(gpu_shared->stage_max_us[i], stage_max_us[i]);
	}
	memset(stage_count, 0, sizeof(stage_count));
	memset(stage_requests, 0, sizeof(stage_requests));
	memset(stage_us, 0, sizeof(stage_us));
	memset(stage_max_us, 0, sizeof(stage_max_us));
	for (int i = 0; i < ndevices; i++)
		gpu_shared->devices[i].requests += device_served[i];
	memset(device_served, 0, sizeof(device_served));
}

/* ---------------------------------------------------------------------
 * The service process
 * --------------------------------------------------------------------- */

/* Wake the process with the given pgprocno */
void
GpuServiceWakeProc(int procno)
{
	SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* The lifecycle hooks registered (GpuServiceRegisterHooks); NULL: none */
static const GpuServiceHooks *service_hooks = NULL;

/* GpuServiceRegisterHooks: see gpuserviceint.h */
void
GpuServiceRegisterHooks(const GpuServiceHooks *hooks)
{
	if (service_hooks != NULL && service_hooks != hooks)
		elog(ERROR, "codevec: GPU service hooks are already registered");
	service_hooks = hooks;
}

/* Leave shared state consistent when the service exits */
static void
GpuServiceShutdown(int code, Datum arg)
{
	/* e.g. the copies in use, for the next start's prewarm */
	if (service_hooks != NULL && service_hooks->save != NULL)
		service_hooks->save(true);
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_STOPPED;
	gpu_shared->pid = 0;
	gpu_shared->generation++;
	gpu_shared->memory_used = 0;
	gpu_shared->ndevices = 0;
	for (int i = 0; i < GPU_MAX_SLOTS; i++)
	{
		GpuSlot    *s = &gpu_shared->slots[i];

		if (s->state == SLOT_POSTED || s->state == SLOT_RUNNING)
			GpuServiceWakeProc(s->procno);	/* it sees the new generation and errors */
		if (s->state == SLOT_ABANDONED)
			s->state = SLOT_FREE;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/* Record that the service has no device, and why */
static void
NoDevice(const char *why)
{
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_NO_DEVICE;
	gpu_shared->ndevices = 0;
	strlcpy(gpu_shared->message, why, sizeof(gpu_shared->message));
	SpinLockRelease(&gpu_shared->mutex);
}

/*
 * Open the configured CUDA devices, or record why there are none: the
 * entries of codevec.gpu_devices; when it is empty, codevec.gpu_device if
 * that was set (one device, as before codevec.gpu_devices existed), else
 * every visible device (at most GPU_MAX_DEVICES). Any entry that cannot
 * be opened leaves the service without a device (the message names it).
 */
static void
OpenDevice(void)
{
#ifdef CODEVEC_USE_CUDA
	char		errbuf[256] = "";
	char		why[256];
	int			count = 0;
	int			list[GPU_MAX_DEVICES];
	int			n = 0;
	bool		from_list = false;
	char		name[GPU_MAX_DEVICES][128];
	size_t		free_b[GPU_MAX_DEVICES],
				total_b[GPU_MAX_DEVICES];
	int64		sum_total = 0,
				sum_used = 0;

	ndevices = 0;
	if (codevec_cuda_device_count(&count, errbuf, sizeof(errbuf)) != 0 || count == 0)
	{
		snprintf(why, sizeof(why), "no CUDA device: %s", errbuf[0] ? errbuf : "none found");
		NoDevice(why);
		return;
	}
	if (codevec_gpu_devices_list != NULL && codevec_gpu_devices_list[0] != '\0')
	{
		if (!ParseDeviceList(codevec_gpu_devices_list, list, &n, why, sizeof(why)))
		{
			NoDevice(why);		/* the check hook let nothing bad through */
			return;
		}
		from_list = n > 0;
	}
	if (!from_list && gpu_device_source > PGC_S_DEFAULT)
	{
		list[0] = codevec_gpu_device;
		n = 1;
	}
	else if (!from_list)
	{
		n = Min(count, GPU_MAX_DEVICES);
		for (int i = 0; i < n; i++)
			list[i] = i;
	}
	for (int i = 0; i < n; i++)
	{
		if (list[i] >= count)
		{
			if (from_list)
				snprintf(why, sizeof(why),
						 "codevec.gpu_devices lists device %d but only %d CUDA device(s) are visible",
						 list[i], count);
			else
				snprintf(why, sizeof(why),
						 "codevec.gpu_device = %d but only %d CUDA device(s) are visible",
						 list[i], count);
			NoDevice(why);
			return;
		}
		if (codevec_cuda_open_device(list[i], name[i], sizeof(name[i]), &free_b[i], &total_b[i],
									 errbuf, sizeof(errbuf)) != 0)
		{
			snprintf(why, sizeof(why), "%s", errbuf);
			NoDevice(why);
			return;
		}
	}
	/* logical device 0 is current between requests */
	if (n > 1 && codevec_cuda_set_device(list[0], errbuf, sizeof(errbuf)) != 0)
	{
		snprintf(why, sizeof(why), "%s", errbuf);
		NoDevice(why);
		return;
	}
	ndevices = n;
	memcpy(device_ordinal, list, sizeof(int) * n);
	/* the status row's memory: every GPU once, however often it is listed */
	for (int i = 0; i < n; i++)
	{
		bool		seen = false;

		for (int j = 0; j < i; j++)
			seen |= list[j] == list[i];
		if (!seen)
		{
			sum_total += (int64) total_b[i];
			sum_used += (int64) (total_b[i] - free_b[i]);
		}
	}
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->state = GPU_SERVICE_READY;
	gpu_shared->device_index = list[0];
	strlcpy(gpu_shared->device_name, name[0], sizeof(gpu_shared->device_name));
	gpu_shared->memory_total = sum_total;
	gpu_shared->memory_used = sum_used;
	gpu_shared->message[0] = '\0';
	gpu_shared->ndevices = n;
	for (int i = 0; i < n; i++)
	{
		GpuDeviceStats *d = &gpu_shared->devices[i];

		memset(d, 0, sizeof(*d));
		d->ordinal = list[i];
		strlcpy(d->name, name[i], sizeof(d->name));
		d->memory_total = (int64) total_b[i];
		d->memory_used = (int64) (total_b[i] - free_b[i]);
	}
	SpinLockRelease(&gpu_shared->mutex);
#else
	NoDevice("codevec was built without CUDA (make CUDA=0, or no nvcc)");
#endif
}

/* ---------------------------------------------------------------------
 * The tables of request kinds and device stores
 * --------------------------------------------------------------------- */

void
GpuServiceRegisterKind(const GpuRequestKindData *kind)
{
	if (kind->kind <= GPU_REQUEST_PING || kind->kind >= GPU_MAX_KINDS ||
		(kind->run_group != NULL) != (kind->same_group != NULL))
		elog(ERROR, "bad GPU request kind %d (%s)", kind->kind, kind->name);
	if (kinds[kind->kind] != NULL && kinds[kind->kind] != kind)
		elog(ERROR, "GPU request kind %d registered twice (%s, %s)",
			 kind->kind, kinds[kind->kind]->name, kind->name);
	kinds[kind->kind] = kind;
}

void
GpuServiceRegisterStore(const GpuDeviceStoreData *store)
{
	for (int i = 0; i < nstores; i++)
		if (stores[i] == store)
			return;
	if (nstores >= GPU_MAX_STORES)
		elog(ERROR, "too many GPU device stores");
	stores[nstores++] = store;
}

int
GpuServiceDeviceIndex(void)
{
	return gpu_shared->device_index;
}

/* GpuServiceDeviceCount: see gpuserviceint.h */
int
GpuServiceDeviceCount(void)
{
	return ndevices;
}

/* GpuServiceDeviceOrdinal: see gpuserviceint.h */
int
GpuServiceDeviceOrdinal(int dev)
{
	Assert(dev >= 0 && dev < ndevices);
	return device_ordinal[dev];
}

/* GpuServiceUseDevice: see gpuserviceint.h */
bool
GpuServiceUseDevice(int dev, char *errbuf, size_t errlen)
{
#ifdef CODEVEC_USE_CUDA
	if (dev < 0 || dev >= ndevices)
	{
		snprintf(errbuf, errlen, "no logical device %d", dev);
		return false;
	}
	return codevec_cuda_set_device(device_ordinal[dev], errbuf, errlen) == 0;
#else
	snprintf(errbuf, errlen, "codevec was built without CUDA");
	return false;
#endif
}

/* What every store holds on each logical device (held: GPU_MAX_DEVICES) */
static void
StoresPerDevice(GpuDeviceHeld *held)
{
	memset(held, 0, sizeof(GpuDeviceHeld) * GPU_MAX_DEVICES);
	for (int i = 0; i < nstores; i++)
		if (stores[i]->per_device != NULL)
			stores[i]->per_device(held);
}

/* GpuServicePickDevice: see gpuserviceint.h */
int
GpuServicePickDevice(uint32 exclude, Size *free_bytes)
{
	GpuDeviceHeld held[GPU_MAX_DEVICES];
	int			best = -1;
	Size		best_free = 0;

	StoresPerDevice(held);
	for (int dev = 0; dev < ndevices; dev++)
	{
		Size		f = 0;
#ifdef CODEVEC_USE_CUDA
		size_t		free_b = 0,
					total_b = 0;
		char		errbuf[128];
#endif

		if (exclude & ((uint32) 1 << dev))
			continue;
#ifdef CODEVEC_USE_CUDA
		if (codevec_cuda_device_memory(device_ordinal[dev], &free_b, &total_b, errbuf,
									   sizeof(errbuf)) == 0)
			f = free_b;
#endif
		if (best < 0 || f > best_free ||
			(f == best_free && held[dev].bytes < held[best].bytes))
		{
			best = dev;
			best_free = f;
		}
	}
	if (free_bytes)
		*free_bytes = best_free;
	return best;
}

/* GpuServiceDeviceServed: see gpuserviceint.h */
void
GpuServiceDeviceServed(int dev, int nreq)
{
	if (dev >= 0 && dev < ndevices && nreq > 0)
		device_served[dev] += nreq;
}

Size
GpuServiceStoresBytes(const GpuDeviceStoreData *except)
{
	Size		total = 0;

	for (int i = 0; i < nstores; i++)
		if (stores[i] != except)
			total += stores[i]->bytes(NULL);
	return total;
}

void
GpuServiceUpdateMemoryStats(void)
{
	int			counts[3] = {0, 0, 0};
	GpuDeviceHeld held[GPU_MAX_DEVICES];

#ifdef CODEVEC_USE_CUDA
	size_t		free_b[GPU_MAX_DEVICES],
				total_b[GPU_MAX_DEVICES];
	bool		known[GPU_MAX_DEVICES];
	int64		sum_total = 0,
				sum_used = 0;
	char		errbuf[128];

	/* every GPU once, however often codevec.gpu_devices lists it */
	for (int i = 0; i < ndevices; i++)
	{
		bool		seen = false;

		for (int j = 0; j < i; j++)
			seen |= device_ordinal[j] == device_ordinal[i];
		known[i] = codevec_cuda_device_memory(device_ordinal[i], &free_b[i], &total_b[i],
											  errbuf, sizeof(errbuf)) == 0;
		if (known[i] && !seen)
		{
			sum_total += (int64) total_b[i];
			sum_used += (int64) (total_b[i] - free_b[i]);
		}
	}
	if (ndevices > 0 && known[0])
	{
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->memory_used = sum_used;
		gpu_shared->memory_total = sum_total;
		for (int i = 0; i < ndevices; i++)
			if (known[i])
			{
				gpu_shared->devices[i].memory_used = (int64) (total_b[i] - free_b[i]);
				gpu_shared->devices[i].memory_total = (int64) total_b[i];
			}
		SpinLockRelease(&gpu_shared->mutex);
	}
#endif
	for (int i = 0; i < nstores; i++)
	{
		int			n = 0;

		(void) stores[i]->bytes(&n);
		counts[stores[i]->counter] += n;
	}
	StoresPerDevice(held);
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->indexes_loaded = counts[GPU_STORE_COUNTS_INDEXES];
	gpu_shared->models_loaded = counts[GPU_STORE_COUNTS_MODELS];
	for (int i = 0; i < ndevices; i++)
	{
		GpuDeviceStats *d = &gpu_shared->devices[i];

		d->held = (int64) held[i].bytes;
		d->copies = held[i].copies;
		d->ranges = held[i].ranges;
		d->replicas = held[i].replicas;
		d->models = held[i].models;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/* GpuServiceKind: see gpuserviceint.h */
const GpuRequestKindData *
GpuServiceKind(int kind)
{
	return kind > GPU_REQUEST_PING && kind < GPU_MAX_KINDS ? kinds[kind] : NULL;
}

/* GpuServiceAnswered: see gpuserviceint.h */
void
GpuServiceAnswered(const int *slots, int n, double t0, int batch_size)
{
	TimestampTz now = GetCurrentTimestamp();
	double		t3 = GpuServiceNowUs(),
				t4;

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
			GpuServiceWakeProc(s->procno);
		}
	}
	gpu_shared->requests += n;
	if (batch_size > 0)
	{
		int			b = 0;

		gpu_shared->batches++;
		gpu_shared->max_batch = Max(gpu_shared->max_batch, batch_size);
		while (b < GPU_BATCH_BUCKETS - 1 && batch_size >= (2 << b))
			b++;
		gpu_shared->batch_hist[b]++;
	}
	SpinLockRelease(&gpu_shared->mutex);
	t4 = GpuServiceNowUs();
	GpuServiceStageAdd(GPU_STAGE_WAKE, t4 - t3, n);
	if (batch_size > 0)
		GpuServiceStageAdd(GPU_STAGE_BATCH, t4 - t0, batch_size);
	/* published with the next batch's answers or the loop's next idle turn */
}

/* GpuServiceCollectPosted: see gpuserviceint.h */
int
GpuServiceCollectPosted(int *slots, int n)
{
	TimestampTz now = GetCurrentTimestamp();
	int			first = n;
	double		queued = 0;

	SpinLockAcquire(&gpu_shared->mutex);
	for (int i = 0; i < GPU_MAX_SLOTS; i++)
	{
		GpuSlot    *s = &gpu_shared->slots[i];

		if (s->state == SLOT_POSTED)
		{
			s->state = SLOT_RUNNING;
			slots[n++] = i;
			queued += (double) Max(now - s->posted, 0);
		}
		else if (s->state == SLOT_ABANDONED && s->generation != gpu_shared->generation)
			s->state = SLOT_FREE;
	}
	/* the stages of the batch answered last (published here, mutex held) */
	PublishStages();
	SpinLockRelease(&gpu_shared->mutex);
	if (n > first)
		GpuServiceStageAdd(GPU_STAGE_QUEUE, queued, n - first);
	return n;
}

/* GpuServiceBegin: see gpuserviceint.h */
void
GpuServiceBegin(void)
{
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
				GpuServiceWakeProc(gpu_shared->slots[i].procno);
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
	/* no cold start: load the copies used last, in the background */
	if (gpu_shared->state == GPU_SERVICE_READY && service_hooks != NULL &&
		service_hooks->ready != NULL)
		service_hooks->ready();
}

/* GpuServiceIdle: see gpuserviceint.h */
void
GpuServiceIdle(void)
{
	/* write the prewarm list if the copies changed */
	if (service_hooks != NULL && service_hooks->save != NULL)
		service_hooks->save(false);
}

/* ---------------------------------------------------------------------
 * The backend side
 * --------------------------------------------------------------------- */


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

	values[0] = CStringGetTextDatum(gpu_service_state_names[snap.state]);
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


PG_FUNCTION_INFO_V1(codevec_gpu_stages);
/*
 * codevec_gpu_stages: one row per timed stage of the GPU service's work
 * (GpuStage, gpuserviceint.h) since the server started: its name, whether
 * it is device time (CUDA events) or host time (clock readings), how many
 * times it was timed (once per batch, or per k-NN call on one copy), the
 * requests those timings covered, and the total, mean (per timing), per
 * request and largest times in microseconds. Zero rows of counts before
 * any request; the stages' times are published at the end of each batch.
 */
Datum
codevec_gpu_stages(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		count[GPU_STAGES],
				requests[GPU_STAGES];
	double		us[GPU_STAGES],
				max_us[GPU_STAGES];

	InitMaterializedSRF(fcinfo, 0);
	if (gpu_shared == NULL)
	{
		memset(count, 0, sizeof(count));
		memset(requests, 0, sizeof(requests));
		memset(us, 0, sizeof(us));
		memset(max_us, 0, sizeof(max_us));
	}
	else
	{
		SpinLockAcquire(&gpu_shared->mutex);
		memcpy(count, gpu_shared->stage_count, sizeof(count));
		memcpy(requests, gpu_shared->stage_requests, sizeof(requests));
		memcpy(us, gpu_shared->stage_us, sizeof(us));
		memcpy(max_us, gpu_shared->stage_max_us, sizeof(max_us));
		SpinLockRelease(&gpu_shared->mutex);
	}
	for (int i = 0; i < GPU_STAGES; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = CStringGetTextDatum(gpu_stage_names[i]);
		values[1] = BoolGetDatum(GPU_STAGE_ON_DEVICE(i));
		values[2] = Int64GetDatum(count[i]);
		values[3] = Int64GetDatum(requests[i]);
		values[4] = Float8GetDatum(us[i]);
		values[5] = Float8GetDatum(count[i] > 0 ? us[i] / count[i] : 0);
		values[6] = Float8GetDatum(requests[i] > 0 ? us[i] / requests[i] : 0);
		values[7] = Float8GetDatum(max_us[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}


PG_FUNCTION_INFO_V1(codevec_gpu_devices);
/*
 * codevec_gpu_devices: one row per logical device the GPU service opened
 * (codevec.gpu_devices), in its order: its number, the CUDA ordinal, the
 * GPU's name, its memory used, free and total (MB, the whole GPU, read
 * when the service last loaded or dropped something), what the service
 * holds there (MB; whole index copies, row ranges of split copies,
 * replicas of hot copies, encoder models) and the KNN requests run there
 * (a split copy's request counts on every device holding one of its
 * ranges; a batch shared among replicas counts its queries' shares).
 * No rows without a ready service.
 */
Datum
codevec_gpu_devices(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	GpuDeviceStats devs[GPU_MAX_DEVICES];
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (gpu_shared != NULL)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		if (gpu_shared->state == GPU_SERVICE_READY)
		{
			n = Min(gpu_shared->ndevices, GPU_MAX_DEVICES);
			memcpy(devs, gpu_shared->devices, sizeof(GpuDeviceStats) * n);
		}
		SpinLockRelease(&gpu_shared->mutex);
	}
	for (int i = 0; i < n; i++)
	{
		Datum		values[12];
		bool		nulls[12] = {0};

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum(devs[i].ordinal);
		values[2] = CStringGetTextDatum(devs[i].name);
		values[3] = Int64GetDatum(devs[i].memory_used / (1024 * 1024));
		values[4] = Int64GetDatum((devs[i].memory_total - devs[i].memory_used) / (1024 * 1024));
		values[5] = Int64GetDatum(devs[i].memory_total / (1024 * 1024));
		values[6] = Int64GetDatum(devs[i].held / (1024 * 1024));
		values[7] = Int32GetDatum(devs[i].copies);
		values[8] = Int32GetDatum(devs[i].ranges);
		values[9] = Int32GetDatum(devs[i].replicas);
		values[10] = Int32GetDatum(devs[i].models);
		values[11] = Int64GetDatum(devs[i].requests);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
