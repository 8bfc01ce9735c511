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

#include "storage/dsm.h"

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
	GPU_REQUEST_PING = 1		/* round trip only: measures the protocol */
} GpuRequestKind;

/* Header of every request segment; the payload follows */
typedef struct GpuRequestHeader
{
	int32		kind;			/* GpuRequestKind */
	int32		status;			/* 0 = ok, set by the service */
	Size		payload_size;	/* bytes after the header */
	char		errmsg[256];	/* service's message when status != 0 */
} GpuRequestHeader;

extern int	codevec_device;
extern int	codevec_gpu_device;
extern int	codevec_gpu_memory_limit_mb;
extern int	codevec_gpu_batch_window_us;
extern int	codevec_gpu_timeout_ms;

/*
 * CodevecGpuServiceInit: define the GPU GUCs; when loading through
 * shared_preload_libraries, also request the shared memory and register the
 * service worker. Called from _PG_init.
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
 * CodevecGpuCall: post the request in seg (header filled, payload written)
 * and wait for the answer. Returns when the service has answered; raises
 * ERROR when it reports a failure (its message), restarts meanwhile, does
 * not answer within codevec.gpu_timeout, or the query is cancelled.
 */
extern void CodevecGpuCall(dsm_segment *seg);

PGDLLEXPORT void CodevecGpuServiceMain(Datum main_arg);

#endif							/* CODEVEC_GPUSERVICE_H */
