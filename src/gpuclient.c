/*
 * gpuclient.c
 *	  The backend side of the GPU service: whether to use it
 *	  (CodevecGpuServiceUsable, CodevecGpuFallback), the session's request
 *	  segment, and posting a request and waiting for its answer
 *	  (CodevecGpuCall, or its two halves CodevecGpuPost and CodevecGpuWait
 *	  for a caller that works meanwhile); the SQL functions that only ask the service
 *	  (codevec_gpu_ping, codevec_gpu_autotune).
 *
 * A backend takes a free slot of the shared table (gpuserviceint.h), marks
 * it POSTED with the service generation it saw, sets the service's latch
 * and sleeps on its own until the slot is DONE, the generation changes
 * (the service restarted: GPU_STATUS_UNAVAILABLE, so the caller's failure
 * policy applies), codevec.gpu_timeout passes (ERROR) or the query is
 * cancelled. Leaving early (error, cancel, exit) marks the
 * slot ABANDONED when the service is running it, so the service frees it,
 * and the session's segment is replaced, since the service may still
 * write into it.
 */
#include "postgres.h"

#include "gpuserviceint.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

static bool fallback_warned = false;
static int	my_slot = -1;		/* slot this backend waits on, or -1 */
static int	beside_slot = -1;	/* slot of a call beside a posted request, or -1 */

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

/* CodevecGpuServiceUsable: see gpuservice.h */
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

/* CodevecGpuFallback: see gpuservice.h */
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

/* Give up a slot of this backend (answered, or error, cancel, exit); *slot = -1 */
static void
ReleaseSlot(int *slot)
{
	if (*slot < 0 || gpu_shared == NULL)
		return;
	SpinLockAcquire(&gpu_shared->mutex);
	{
		GpuSlot    *s = &gpu_shared->slots[*slot];

		if (s->state == SLOT_POSTED || s->state == SLOT_DONE ||
			s->generation != gpu_shared->generation)
			s->state = SLOT_FREE;
		else if (s->state == SLOT_RUNNING)
			s->state = SLOT_ABANDONED;	/* the service frees it when done */
	}
	SpinLockRelease(&gpu_shared->mutex);
	*slot = -1;
}

/* Give up the slot of this backend's posted (or called) request */
static void
AbandonSlot(void)
{
	ReleaseSlot(&my_slot);
}

/* before_shmem_exit: a backend leaving while it waits */
static void
AbandonAtExit(int code, Datum arg)
{
	ReleaseSlot(&my_slot);
	ReleaseSlot(&beside_slot);
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

/*
 * A kept segment (*seg, *segsize bytes) of at least size bytes: replaced
 * when too small or dirty (the service may still write into it), mapped
 * for the session
 */
static dsm_segment *
KeptSegment(dsm_segment **seg, Size *segsize, bool *dirty, Size size)
{
	if (*seg != NULL && (*dirty || *segsize < size))
	{
		dsm_detach(*seg);
		*seg = NULL;
	}
	if (*seg == NULL)
	{
		Size		want = SESSION_SEG_MIN_SIZE;

		while (want < size)
			want *= 2;
		*seg = dsm_create(want, 0);
		dsm_pin_mapping(*seg);
		*segsize = want;
		*dirty = false;
	}
	return *seg;
}

/* CodevecGpuSessionSegment: see gpuservice.h */
dsm_segment *
CodevecGpuSessionSegment(Size size)
{
	/* the caller writes into it: a request posted in it is answered first */
	CodevecGpuDrain();
	return KeptSegment(&session_seg, &session_seg_size, &session_seg_dirty, size);
}

/*
 * The request CodevecGpuPost posted and nobody waited for yet (NULL: none):
 * its segment, the service generation and the deadline it was posted
 * with, and its number (posted_count when it was posted), by which a caller
 * that posted ahead (gpuivfprefetch.c) knows it is still the one in flight.
 */
static dsm_segment *posted_seg = NULL;
static uint64 posted_generation = 0;
static TimestampTz posted_deadline = 0;
static uint64 posted_count = 0;

/*
 * A transaction ends with a request posted and never waited for (a
 * prefetch whose scan did not come): give up its slot; the service may
 * still write into its segment, which is then replaced.
 */
static void
AbandonPosted(void)
{
	if (posted_seg == NULL)
		return;
	if (posted_seg == session_seg)
		session_seg_dirty = true;
	posted_seg = NULL;
	AbandonSlot();
}

static void
PostedAtXactEnd(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		AbandonPosted();
}

/*
 * Sleep until slot is DONE (true) or the service restarted (false: it
 * never touches an older generation's slots); ERROR when the deadline
 * passes, and on cancellation. The latch is only a wake-up: an answer to
 * this backend's other request sets it too.
 */
static bool
WaitDone(int slot, uint64 generation, TimestampTz deadline)
{
	for (;;)
	{
		GpuSlotState st;
		uint64		gen;

		SpinLockAcquire(&gpu_shared->mutex);
		st = gpu_shared->slots[slot].state;
		gen = gpu_shared->generation;
		SpinLockRelease(&gpu_shared->mutex);
		if (st == SLOT_DONE)
			return true;
		if (gen != generation)
			return false;
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

/*
 * The status of a request waited for, its slot let go: restarted means the
 * service that took it died and another started (it never touches an
 * older generation's slots), so nothing was answered and the caller's
 * failure policy decides, as for a stopped service (GPU_STATUS_UNAVAILABLE);
 * else the service's status, a FAILED one raised as an ERROR if report.
 */
static int
Returned(GpuRequestHeader *req, bool restarted, bool report)
{
	if (restarted)
	{
		snprintf(req->errmsg, sizeof(req->errmsg),
				 "the codevec GPU service restarted while serving this request");
		req->status = GPU_STATUS_UNAVAILABLE;
		return GPU_STATUS_UNAVAILABLE;
	}
	if (req->status == GPU_STATUS_FAILED && report)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("codevec GPU service: %s", req->errmsg)));
	return req->status;
}

/* Wait for the posted request; raise ERROR for a FAILED status only if report */
static int
WaitPosted(bool report)
{
	dsm_segment *seg = posted_seg;
	uint64		generation = posted_generation;
	volatile bool restarted = false;
	GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);

	Assert(seg != NULL && my_slot >= 0);
	PG_TRY();
	{
		restarted = !WaitDone(my_slot, generation, posted_deadline);
	}
	PG_CATCH();
	{
		AbandonPosted();		/* the service may still write into seg */
		PG_RE_THROW();
	}
	PG_END_TRY();
	posted_seg = NULL;
	/* after a restart the segment is not reused for the session's next request */
	if (restarted && seg == session_seg)
		session_seg_dirty = true;
	AbandonSlot();				/* DONE -> FREE */
	return Returned(req, restarted, report);
}

/* CodevecGpuDrain: see gpuservice.h */
void
CodevecGpuDrain(void)
{
	if (posted_seg != NULL)
		(void) WaitPosted(false);
}

/* CodevecGpuPosted: see gpuservice.h */
uint64
CodevecGpuPosted(dsm_segment **seg)
{
	if (posted_seg == NULL)
		return 0;
	if (seg)
		*seg = posted_seg;
	return posted_count;
}

/*
 * Post seg's request in a free slot, its number into *slot, the service
 * generation into *generation, and wake the service; 0, or
 * GPU_STATUS_UNAVAILABLE (the request's status and message set) when the
 * service is stopped or restarting. All slots busy means as many requests
 * in flight: it waits for one.
 */
static int
TakeSlot(int *slot, dsm_segment *seg, uint64 *generation)
{
	int			service_procno = 0;
	GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);

	while (*slot < 0)
	{
		SpinLockAcquire(&gpu_shared->mutex);
		if (gpu_shared->state != GPU_SERVICE_READY && gpu_shared->state != GPU_SERVICE_NO_DEVICE)
		{
			/*
			 * Stopped or restarting since the caller looked (the service is
			 * killed or restarts between CodevecGpuServiceUsable and here):
			 * the caller's failure policy decides (auto: the CPU; cuda:
			 * ERROR 55000 with this message), like any request the service
			 * cannot serve.
			 */
			snprintf(req->errmsg, sizeof(req->errmsg), "the codevec GPU service is %s",
					 gpu_service_state_names[gpu_shared->state]);
			SpinLockRelease(&gpu_shared->mutex);
			req->status = GPU_STATUS_UNAVAILABLE;
			return GPU_STATUS_UNAVAILABLE;
		}
		for (int i = 0; i < GPU_MAX_SLOTS; i++)
			if (gpu_shared->slots[i].state == SLOT_FREE)
			{
				GpuSlot    *s = &gpu_shared->slots[i];

				s->state = SLOT_POSTED;
				s->generation = *generation = gpu_shared->generation;
				s->handle = dsm_segment_handle(seg);
				s->procno = CodevecMyProcNumber;
				s->posted = GetCurrentTimestamp();
				*slot = i;
				break;
			}
		service_procno = gpu_shared->procno;
		SpinLockRelease(&gpu_shared->mutex);
		if (*slot < 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	GpuServiceWakeProc(service_procno);
	return 0;
}

/* ERROR without the service's shared memory; the exit and end-of-transaction hooks, once */
static void
ClientStart(void)
{
	static bool hooks = false;

	if (gpu_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the codevec GPU service is not running"),
				 errhint("Add codevec to shared_preload_libraries and restart the server.")));
	if (!hooks)
	{
		before_shmem_exit(AbandonAtExit, (Datum) 0);
		RegisterXactCallback(PostedAtXactEnd, NULL);
		hooks = true;
	}
}

/* CodevecGpuPost: see gpuservice.h */
int
CodevecGpuPost(dsm_segment *seg)
{
	uint64		generation = 0;

	ClientStart();
	/* one request in flight per backend: one posted ahead is answered first */
	CodevecGpuDrain();
	if (TakeSlot(&my_slot, seg, &generation) != 0)
		return GPU_STATUS_UNAVAILABLE;
	posted_seg = seg;
	posted_generation = generation;
	posted_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), codevec_gpu_timeout_ms);
	posted_count++;
	return 0;
}

/* CodevecGpuWait: see gpuservice.h */
int
CodevecGpuWait(dsm_segment *seg)
{
	if (posted_seg != seg)
		elog(ERROR, "codevec GPU service: no request posted in this segment");
	return WaitPosted(true);
}

/* CodevecGpuCall: see gpuservice.h */
int
CodevecGpuCall(dsm_segment *seg)
{
	int			status = CodevecGpuPost(seg);

	if (status != 0)
		return status;
	return CodevecGpuWait(seg);
}

/*
 * The segment of calls beside a posted request (CodevecGpuBesideSegment),
 * kept like the session segment: replaced when too small or after a call
 * that did not come back normally.
 */
static dsm_segment *beside_seg = NULL;
static Size beside_seg_size = 0;
static bool beside_seg_dirty = false;

/* CodevecGpuBesideSegment: see gpuservice.h */
dsm_segment *
CodevecGpuBesideSegment(Size size)
{
	if (posted_seg == NULL)
		return CodevecGpuSessionSegment(size);
	return KeptSegment(&beside_seg, &beside_seg_size, &beside_seg_dirty, size);
}

/* CodevecGpuCallBeside: see gpuservice.h */
int
CodevecGpuCallBeside(dsm_segment *seg)
{
	GpuRequestHeader *req = (GpuRequestHeader *) dsm_segment_address(seg);
	uint64		generation = 0;
	TimestampTz deadline;
	volatile bool restarted = false;

	if (posted_seg == NULL || seg == posted_seg)
		return CodevecGpuCall(seg);
	ClientStart();
	if (TakeSlot(&beside_slot, seg, &generation) != 0)
		return GPU_STATUS_UNAVAILABLE;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), codevec_gpu_timeout_ms);
	PG_TRY();
	{
		restarted = !WaitDone(beside_slot, generation, deadline);
	}
	PG_CATCH();
	{
		/* the service may still write into seg */
		if (seg == beside_seg)
			beside_seg_dirty = true;
		ReleaseSlot(&beside_slot);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ReleaseSlot(&beside_slot);
	if (restarted && seg == beside_seg)
		beside_seg_dirty = true;
	return Returned(req, restarted, true);
}

/* CodevecGpuServiceReady: see gpuservice.h */
bool
CodevecGpuServiceReady(void)
{
	return ServiceState(NULL, 0) == GPU_SERVICE_READY;
}

/* ---------------------------------------------------------------------
 * SQL
 * --------------------------------------------------------------------- */

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
		if (CodevecGpuCall(seg) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s", req->errmsg[0] ? req->errmsg : "the codevec GPU service did not serve the ping")));
	}
	dsm_detach(seg);
	PG_RETURN_FLOAT8((double) (GetCurrentTimestamp() - t0) / n);
}

/* CodevecGpuServiceDescribe: see gpuservice.h */
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

/* The shared calibration for the key, or -1; the caller holds gpu_shared->mutex */
static int
FindCalibration(int metric, int dims, const char *kernels)
{
	for (int i = 0; i < gpu_shared->ncalibrations; i++)
		if (gpu_shared->calibrations[i].metric == metric && gpu_shared->calibrations[i].dims == dims &&
			strcmp(gpu_shared->calibrations[i].kernels, kernels) == 0)
			return i;
	return -1;
}

/* CodevecGpuCalibrationGet: see gpuservice.h */
bool
CodevecGpuCalibrationGet(int metric, int dims, const char *kernels, CodevecCalibration *out)
{
	int			i;

	if (gpu_shared == NULL)
		return false;
	SpinLockAcquire(&gpu_shared->mutex);
	i = FindCalibration(metric, dims, kernels);
	if (i >= 0)
		*out = gpu_shared->calibrations[i].c;
	SpinLockRelease(&gpu_shared->mutex);
	return i >= 0;
}

/* CodevecGpuCalibrationPut: see gpuservice.h */
void
CodevecGpuCalibrationPut(int metric, int dims, const char *kernels, const CodevecCalibration *c)
{
	if (gpu_shared == NULL || c->cpuNsPerRow <= 0 || strlen(kernels) >= sizeof(gpu_shared->calibrations[0].kernels))
		return;
	SpinLockAcquire(&gpu_shared->mutex);
	/* the first one kept stays (another backend may have been first) */
	if (FindCalibration(metric, dims, kernels) < 0 && gpu_shared->ncalibrations < GPU_CALIBRATIONS)
	{
		int			i = gpu_shared->ncalibrations++;

		gpu_shared->calibrations[i].metric = metric;
		gpu_shared->calibrations[i].dims = dims;
		strlcpy(gpu_shared->calibrations[i].kernels, kernels, sizeof(gpu_shared->calibrations[i].kernels));
		gpu_shared->calibrations[i].c = *c;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/* CodevecGpuPingGet: see gpuservice.h */
double
CodevecGpuPingGet(void)
{
	double		us = -1;

	if (gpu_shared == NULL)
		return -1;
	SpinLockAcquire(&gpu_shared->mutex);
	if (gpu_shared->ping_us > 0 && gpu_shared->ping_generation == gpu_shared->generation)
		us = gpu_shared->ping_us;
	SpinLockRelease(&gpu_shared->mutex);
	return us;
}

/* CodevecGpuPingPut: see gpuservice.h */
void
CodevecGpuPingPut(double us)
{
	if (gpu_shared == NULL || us <= 0)
		return;
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->ping_us = us;
	gpu_shared->ping_generation = gpu_shared->generation;
	SpinLockRelease(&gpu_shared->mutex);
}
