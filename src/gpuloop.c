/*
 * gpuloop.c
 *	  The GPU service worker's loop and its batches: posted slots collected
 *	  into a batch, the batch's request segments mapped (and kept mapped
 *	  between batches), its requests run through their kinds' rows, and its
 *	  answers handed back; with double buffering, the next batch started
 *	  while the last one is still on the device. The service's shared
 *	  state, GUCs, devices and tables are gpuservice.c's.
 *
 * The loop collects posted slots into a batch (waiting up to
 * codevec.gpu_batch_window for more when nothing is on the device) and
 * submits it. A batch whose every request is of a kind with start_group
 * (kNN on a whole, current index copy: gpuknn.c; EMBED that fits one
 * launch: gpuembed.c, on the encoder's own stream) or of a kind that runs
 * beside started groups (BM25 top-k) is *started*: each kNN group's
 * copies and kernels and each embed group's forward pass are issued on
 * the device, the other groups run, and the loop goes on collecting, so
 * while one batch's kernels run the next one gathers and is issued behind
 * it, and the answers of the first are written while the second runs
 * (GPU_MAX_INFLIGHT batches at most). The requests of a started batch
 * that were not started (answered in place) are handed back at once
 * (AnswerUnheld), the others group by group as the device finishes each
 * (AnswerGroup): an EMBED group is not held back by a k-NN scan started
 * beside it, nor by an older batch still on the device. A code.search in
 * hybrid mode posts an EMBED, a KNN and a BM25 top-k, so under load most
 * batches hold all three; the service's one thread then only packs,
 * issues and answers (before embed groups were started, waiting for the
 * forward pass took about half its time). Any other
 * batch first waits for the batches in flight and then runs as before,
 * each group in one call, every other request alone, synchronously: a
 * request that changes a copy (UPLOAD, APPEND, MASK) or evicts one never
 * runs while a kernel reads it. codevec.gpu_double_buffer = off runs
 * every batch that way.
 *
 * The next batch is collected not at once but shortly before the one on
 * the device is expected to end (GpuBatchRoom), so it still starts before
 * the device idles and gathers every request that came meanwhile: the
 * kernels cost about the same for one query as for sixteen (one pass
 * over the rows). A lone request at one client loses nothing: its batch
 * is started, the loop finds nothing more posted, and waits for the
 * device (spinning on the batch's event, as the CUDA runtime's own wait
 * does) or a new request's latch, whichever comes first.
 */
#include "postgres.h"

#include "gpuserviceint.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

/* batches started and not yet wholly answered, at most */
#define GPU_MAX_INFLIGHT	2

/*
 * Request segments the service keeps mapped between batches. A backend
 * posts every small request (KNN, EMBED) in the same session segment, so
 * mapping it once saves, per request, the attach (shm_open, mmap, the
 * DSM control lock), the detach (munmap) and the page faults of writing
 * the answer into a fresh mapping. Holding a mapping keeps the segment
 * (and so its handle) alive, so a cached handle always names the segment
 * it was attached as. Only segments up to GPU_SEG_CACHE_MAX_BYTES are
 * kept (uploads stream through larger ones), at most GPU_SEG_CACHE of
 * them, least recently used out first, and none unused for
 * GPU_SEG_CACHE_IDLE_MS (a backend that left, or replaced its segment):
 * a segment kept alive also holds a slot of the server's DSM control
 * table (64 + 5 per backend), so dead ones must not pile up. A mapping a
 * batch in flight uses (refs > 0) is never unmapped.
 */
#define GPU_SEG_CACHE			128
#define GPU_SEG_CACHE_MAX_BYTES	(1024 * 1024)
#define GPU_SEG_CACHE_IDLE_MS	2000

typedef struct GpuSegCacheEntry
{
	dsm_handle	handle;
	dsm_segment *seg;			/* NULL: a free entry */
	TimestampTz used;
	int			refs;			/* batches not yet answered that use it */
} GpuSegCacheEntry;

static GpuSegCacheEntry seg_cache[GPU_SEG_CACHE];

/* A batch: its slots, their mapped requests, the groups it started */
typedef struct GpuBatch
{
	int			n;				/* requests not yet answered */
	int			size;			/* requests collected */
	int			slots[GPU_MAX_SLOTS];
	dsm_segment *segs[GPU_MAX_SLOTS];	/* NULL: the backend left */
	GpuRequestHeader *reqs[GPU_MAX_SLOTS];
	GpuSegCacheEntry *cached[GPU_MAX_SLOTS];	/* NULL: detach when answered */
	int			nstarted;
	const GpuRequestKindData *started_kind[GPU_MAX_SLOTS];
	void	   *started[GPU_MAX_SLOTS];
	bool		finished[GPU_MAX_SLOTS];	/* started group g answered */
	int			nfinished;
	bool		held[GPU_MAX_SLOTS];	/* its request is in a started group */
	int			group[GPU_MAX_SLOTS];	/* held: its group's index in started[] */
	double		t0;				/* attach began */
	double		begin;			/* when its device work could begin: its start,
								 * or the answer of the batch before it */
	double		done;			/* when the loop saw its last group done */
} GpuBatch;

/*
 * When to collect the next batch while one is on the device: as late as
 * still lets it start before that one ends, so it gathers every request
 * that came meanwhile (the kernels cost about the same for 1 query and
 * for 16: one pass over the rows). device_us: running mean of a batch's
 * time on the device, from its begin until the loop saw it done;
 * submit_us: of the host time a start takes. The next batch is collected
 * once the one in flight has run device_us - submit_us - GPU_LEAD_US.
 */
#define GPU_LEAD_US		30.0
static double device_us = 0;
static double submit_us = 0;

/* in flight: inflight[(head + i) % GPU_MAX_INFLIGHT], i < ninflight */
static GpuBatch inflight[GPU_MAX_INFLIGHT];
static int	head = 0;
static int	ninflight = 0;

/*
 * Map the request segment of a slot: the cached mapping, or a new one
 * (cached when small and an entry is free or unused by batches in
 * flight). NULL when the segment is gone (its backend left). *entry: the
 * cache entry (its refs counted up) or NULL, when the caller must detach.
 */
static dsm_segment *
AttachRequest(dsm_handle handle, TimestampTz now, GpuSegCacheEntry **entry)
{
	dsm_segment *seg;
	GpuSegCacheEntry *slot = NULL;

	*entry = NULL;
	for (int i = 0; i < GPU_SEG_CACHE; i++)
		if (seg_cache[i].seg != NULL && seg_cache[i].handle == handle)
		{
			seg_cache[i].used = now;
			seg_cache[i].refs++;
			*entry = &seg_cache[i];
			return seg_cache[i].seg;
		}
	seg = dsm_attach(handle);
	if (seg == NULL || dsm_segment_map_length(seg) > GPU_SEG_CACHE_MAX_BYTES)
		return seg;
	for (int i = 0; i < GPU_SEG_CACHE; i++)
		if (seg_cache[i].seg == NULL)
		{
			slot = &seg_cache[i];
			break;
		}
		else if (seg_cache[i].refs == 0 && (slot == NULL || seg_cache[i].used < slot->used))
			slot = &seg_cache[i];
	if (slot == NULL)
		return seg;				/* every entry is in use: not cached */
	if (slot->seg != NULL)
		dsm_detach(slot->seg);	/* the least recently used */
	dsm_pin_mapping(seg);
	slot->handle = handle;
	slot->seg = seg;
	slot->used = now;
	slot->refs = 1;
	*entry = slot;
	return seg;
}

/* Unmap kept request segments unused for a while and by batches in flight */
static void
GpuBatchPruneSegments(TimestampTz now)
{
	for (int i = 0; i < GPU_SEG_CACHE; i++)
		if (seg_cache[i].seg != NULL && seg_cache[i].refs == 0 &&
			TimestampDifferenceExceeds(seg_cache[i].used, now, GPU_SEG_CACHE_IDLE_MS))
		{
			dsm_detach(seg_cache[i].seg);
			seg_cache[i].seg = NULL;
		}
}

/* The row of a request's kind, or NULL (PING and unknown kinds) */
static const GpuRequestKindData *
KindOf(const GpuRequestHeader *req)
{
	if (req->kind <= GPU_REQUEST_PING || req->kind >= GPU_MAX_KINDS)
		return NULL;
	return GpuServiceKind(req->kind);
}

/* Whether the service can run requests of this kind now */
static bool
KindRunnable(const GpuRequestKindData *k)
{
	return !k->needs_device ||
		(gpu_shared->state == GPU_SERVICE_READY && (k->run != NULL || k->run_group != NULL));
}

/*
 * With several devices, make logical device 0 current before a kind runs
 * (a k-NN call leaves its copy's device current; kinds that allocate on
 * "the current device", like KMEANS and AUTOTUNE, use device 0). A failure
 * here shows in the kind's own first CUDA call.
 */
static void
UseFirstDevice(void)
{
	char		errbuf[128];

	if (GpuServiceDeviceCount() > 1)
		(void) GpuServiceUseDevice(0, errbuf, sizeof(errbuf));
}

/* Run one request in place; the answer goes into the same segment */
static void
RunRequest(GpuRequestHeader *req)
{
	const GpuRequestKindData *k = KindOf(req);

	if (req->kind == GPU_REQUEST_PING)
		req->status = 0;
	else if (k == NULL)
	{
		req->status = GPU_STATUS_FAILED;
		snprintf(req->errmsg, sizeof(req->errmsg), "unknown request kind %d", req->kind);
	}
	else if (!KindRunnable(k))
	{
		req->status = GPU_STATUS_NO_DEVICE;
		snprintf(req->errmsg, sizeof(req->errmsg), "%s",
				 gpu_shared->message[0] ? gpu_shared->message : "the GPU service has no CUDA device");
	}
	else
	{
		UseFirstDevice();
		if (k->run != NULL)
			k->run(req);
		else
			k->run_group(&req, 1);
	}
}

/*
 * Run every group of kind k among the batch's requests not yet done in
 * one call each, or, when start is true and the kind can, start it on the
 * device (kept in b->started); mark them done.
 */
static void
RunKindGroups(GpuBatch *b, bool *done, int kind, const GpuRequestKindData *k, bool start)
{
	for (int i = 0; i < b->n; i++)
	{
		GpuRequestHeader *group[GPU_MAX_SLOTS];
		int			members[GPU_MAX_SLOTS];
		int			ng = 0;

		if (done[i] || b->reqs[i]->kind != kind)
			continue;
		for (int j = i; j < b->n; j++)
			if (!done[j] && b->reqs[j]->kind == kind && k->same_group(b->reqs[i], b->reqs[j]))
			{
				members[ng] = j;
				group[ng++] = b->reqs[j];
				done[j] = true;
			}
		UseFirstDevice();
		if (start && k->start_group != NULL)
		{
			void	   *h = k->start_group(group, ng);

			if (h != NULL)
			{
				b->started_kind[b->nstarted] = k;
				b->started[b->nstarted] = h;
				b->finished[b->nstarted] = false;
				for (int j = 0; j < ng; j++)
				{
					b->held[members[j]] = true;
					b->group[members[j]] = b->nstarted;
				}
				b->nstarted++;
			}
		}
		else
			k->run_group(group, ng);
	}
}

/*
 * Run the groups of every kind that groups requests (RunKindGroups): the
 * groups started come first (pass 0), then those run in place (pass 1),
 * each in kind order. In a started batch the latter are of beside_started
 * kinds, whose device work then overlaps the started kernels.
 */
static void
RunGroups(GpuBatch *b, bool *done, bool start)
{
	for (int pass = 0; pass < 2; pass++)
		for (int kind = GPU_REQUEST_PING + 1; kind < GPU_MAX_KINDS; kind++)
		{
			const GpuRequestKindData *k = GpuServiceKind(kind);

			if (k != NULL && k->run_group != NULL && KindRunnable(k) &&
				(start && k->start_group != NULL) == (pass == 0))
				RunKindGroups(b, done, kind, k, start);
		}
}

/*
 * Whether every request of the batch may run while batches before it are
 * still on the device: PING, a kind that starts its groups or one that
 * runs beside started groups (the kind promises that its requests change
 * nothing other started groups use).
 */
static bool
Startable(const GpuBatch *b)
{
	for (int i = 0; i < b->n; i++)
	{
		const GpuRequestKindData *k;

		if (b->reqs[i] == NULL || b->reqs[i]->kind == GPU_REQUEST_PING)
			continue;
		k = KindOf(b->reqs[i]);
		if (k == NULL || (k->start_group == NULL && !k->beside_started) || !KindRunnable(k))
			return false;
	}
	return true;
}

/* Whether the device finished a started group in flight not yet answered */
static bool
AnyGroupReady(void)
{
	for (int j = 0; j < ninflight; j++)
	{
		const GpuBatch *b = &inflight[(head + j) % GPU_MAX_INFLIGHT];

		for (int g = 0; g < b->nstarted; g++)
			if (!b->finished[g] && b->started_kind[g]->group_ready(b->started[g]))
				return true;
	}
	return false;
}

/* Let go of request i's segment (its cached mapping's use, or the mapping) */
static void
ReleaseRequest(GpuBatch *b, int i)
{
	if (b->cached[i] != NULL)
		b->cached[i]->refs--;
	else if (b->segs[i] != NULL)
		dsm_detach(b->segs[i]);
}

/* Answer a batch that started nothing: segments let go, slots done */
static void
AnswerBatch(GpuBatch *b)
{
	double		t2 = GpuServiceNowUs();

	for (int i = 0; i < b->n; i++)
		ReleaseRequest(b, i);
	GpuServiceStageAdd(GPU_STAGE_DETACH, GpuServiceNowUs() - t2, b->n);
	GpuServiceAnswered(b->slots, b->n, b->t0, b->size);
	b->n = 0;
}

/*
 * Answer started group g of an in-flight batch (its device work done, or
 * waited for in finish_group): its requests' segments let go, their slots
 * done, whatever the batch's other groups or older batches still run, so
 * that an encoder call is not held back by a k-NN scan started beside it.
 * The batch counts in codevec_gpu_status() with its last group.
 */
static void
AnswerGroup(GpuBatch *b, int g)
{
	int			answered[GPU_MAX_SLOTS];
	int			na = 0;
	double		t1 = GpuServiceNowUs(),
				t2;

	UseFirstDevice();
	b->started_kind[g]->finish_group(b->started[g]);
	b->finished[g] = true;
	b->nfinished++;
	t2 = GpuServiceNowUs();
	for (int i = 0; i < b->n; i++)
		if (b->held[i] && b->group[i] == g)
		{
			ReleaseRequest(b, i);
			answered[na++] = b->slots[i];
		}
	GpuServiceStageAdd(GPU_STAGE_FINISH, t2 - t1, na);
	GpuServiceStageAdd(GPU_STAGE_DETACH, GpuServiceNowUs() - t2, na);
	GpuServiceAnswered(answered, na, b->t0, b->nfinished == b->nstarted ? b->size : 0);
}

/*
 * Answer at once the requests of a started batch that are not in a
 * started group (answered in place: groups of beside_started kinds, PING,
 * malformed or abandoned ones), so that they do not wait for the device
 * work of the others; the batch keeps only the held ones.
 */
static void
AnswerUnheld(GpuBatch *b)
{
	int			answered[GPU_MAX_SLOTS];
	int			na = 0,
				n = 0;
	double		t2 = GpuServiceNowUs();

	for (int i = 0; i < b->n; i++)
	{
		if (b->held[i])
		{
			b->slots[n] = b->slots[i];
			b->segs[n] = b->segs[i];
			b->reqs[n] = b->reqs[i];
			b->cached[n] = b->cached[i];
			b->group[n] = b->group[i];
			b->held[n++] = true;
			continue;
		}
		ReleaseRequest(b, i);
		answered[na++] = b->slots[i];
	}
	if (na == 0)
		return;
	b->n = n;
	GpuServiceStageAdd(GPU_STAGE_DETACH, GpuServiceNowUs() - t2, na);
	GpuServiceAnswered(answered, na, b->t0, 0);
}

/*
 * Answer the started groups in flight whose device work is done, each on
 * its own (wait: all of them, waiting, oldest batch first), then let go of
 * the oldest batches whose groups were all answered, and of the newest
 * ones (an embed-only batch done before the k-NN scan of the batch before
 * it: its place is free for the next batch); how many groups it answered.
 */
static int
GpuBatchAnswerReady(bool wait)
{
	int			answered = 0;

	for (int j = 0; j < ninflight; j++)
	{
		GpuBatch   *b = &inflight[(head + j) % GPU_MAX_INFLIGHT];

		for (int g = 0; g < b->nstarted; g++)
			if (!b->finished[g] && (wait || b->started_kind[g]->group_ready(b->started[g])))
			{
				/* seen done (before answering it, which is host work) */
				if (b->nfinished == b->nstarted - 1)
					b->done = GpuServiceNowUs();
				AnswerGroup(b, g);
				answered++;
			}
	}
	while (ninflight > 0 && inflight[head].nfinished == inflight[head].nstarted)
	{
		double		done = inflight[head].done;

		/* its device time (running mean over about 8 batches) */
		device_us += (done - inflight[head].begin - device_us) / 8;
		head = (head + 1) % GPU_MAX_INFLIGHT;
		ninflight--;
		/* the next one in flight had to wait for the device until then */
		if (ninflight > 0)
			inflight[head].begin = Max(inflight[head].begin, done);
	}
	/* the newest too when all its groups were answered before an older one's */
	while (ninflight > 0)
	{
		const GpuBatch *last = &inflight[(head + ninflight - 1) % GPU_MAX_INFLIGHT];

		if (last->nfinished < last->nstarted)
			break;
		ninflight--;
	}
	return answered;
}

/* Batches in flight */
static int
GpuBatchInFlight(void)
{
	return ninflight;
}

/*
 * Whether to collect the next batch now: with nothing on the device, yes;
 * with a batch in flight (and room for another), once it is about to end
 * (device_us above).
 */
static bool
GpuBatchRoom(void)
{
	if (ninflight == 0)
		return true;
	return ninflight < GPU_MAX_INFLIGHT &&
		GpuServiceNowUs() >= inflight[head].begin + device_us - submit_us - GPU_LEAD_US;
}

/*
 * Spin until the oldest batch in flight is done, or the service's latch
 * is set (a request came) and it is time to collect the next batch
 * (GpuBatchRoom), or a shutdown is requested; at once with nothing in
 * flight.
 */
static void
GpuBatchWait(void)
{
	if (ninflight == 0)
		return;
	for (;;)
	{
		if (AnyGroupReady())
			return;
		if (MyLatch->is_set && GpuBatchRoom())
			return;
		if (ShutdownRequestPending)
			return;
	}
}

/*
 * Map the requests of n collected slots and run them: started on the
 * device when every one is of a kind with start_group (the batch is then
 * in flight until answered), otherwise after the batches in flight were
 * answered, synchronously, and answered at once. Only with room.
 */
static void
GpuBatchSubmit(const int *slots, int n)
{
	TimestampTz now = GetCurrentTimestamp();
	GpuBatch   *b;
	bool		done[GPU_MAX_SLOTS];
	bool		start;
	double		t1,
				t2;

	Assert(n > 0 && n <= GPU_MAX_SLOTS && ninflight < GPU_MAX_INFLIGHT);
	b = &inflight[(head + ninflight) % GPU_MAX_INFLIGHT];
	b->t0 = GpuServiceNowUs();
	b->n = n;
	b->size = n;
	b->nstarted = 0;
	b->nfinished = 0;
	/* a segment already gone means its backend left: nothing to answer */
	for (int i = 0; i < n; i++)
	{
		b->slots[i] = slots[i];
		b->segs[i] = AttachRequest(gpu_shared->slots[slots[i]].handle, now, &b->cached[i]);
		b->reqs[i] = b->segs[i] ? (GpuRequestHeader *) dsm_segment_address(b->segs[i]) : NULL;
		done[i] = (b->segs[i] == NULL);
		b->held[i] = false;
	}
	t1 = GpuServiceNowUs();
	GpuServiceStageAdd(GPU_STAGE_ATTACH, t1 - b->t0, n);
	start = codevec_gpu_double_buffer && Startable(b);
	if (!start)
	{
		/*
		 * It may change what the batches in flight read: they end first.
		 * b's entry is not among theirs and, starting nothing, is answered
		 * below before anything else takes it.
		 */
		GpuBatchAnswerReady(true);
	}
	else if (ninflight > 0)
		GpuServiceStageAdd(GPU_STAGE_OVERLAP, 0, n);
	RunGroups(b, done, start);
	for (int i = 0; i < n; i++)
		if (!done[i])
			RunRequest(b->reqs[i]);
	t2 = GpuServiceNowUs();
	GpuServiceStageAdd(GPU_STAGE_RUN, t2 - t1, n);
	if (b->nstarted > 0)
	{
		submit_us += (t2 - b->t0 - submit_us) / 8;
		b->begin = t2;
		ninflight++;			/* b is the entry after the last in flight */
		AnswerUnheld(b);
	}
	else
		AnswerBatch(b);
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
	GpuServiceBegin();

	while (!ShutdownRequestPending)
	{
		int			n;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* answer the batches the device finished, oldest first */
		if (GpuBatchAnswerReady(false) > 0)
			continue;
		n = GpuBatchRoom() ? GpuServiceCollectPosted(slots, 0) : 0;
		if (n > 0)
		{
			/*
			 * batching window: let concurrent requests join this launch (with
			 * nothing on the device; else they gather while it runs)
			 */
			if (codevec_gpu_batch_window_us > 0 && n < GPU_MAX_SLOTS && GpuBatchInFlight() == 0)
			{
				TimestampTz deadline = GetCurrentTimestamp() + codevec_gpu_batch_window_us;
				double		w0 = GpuServiceNowUs();

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
					n = GpuServiceCollectPosted(slots, n);
				}
				GpuServiceStageAdd(GPU_STAGE_WINDOW, GpuServiceNowUs() - w0, n);
			}
			GpuBatchSubmit(slots, n);
			continue;
		}
		if (GpuBatchInFlight() > 0)
		{
			/* until the oldest batch is done or, with room, a request comes */
			GpuBatchWait();
			ResetLatch(MyLatch);
			continue;
		}
		/* idle: the prewarm list if the copies changed; unmap old segments */
		GpuServiceIdle();
		GpuBatchPruneSegments(GetCurrentTimestamp());
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	/* answer what is still on the device before leaving */
	GpuBatchAnswerReady(true);
	/* exit code 1: the postmaster restarts us after bgw_restart_time (unless shutting down) */
	proc_exit(1);
}
