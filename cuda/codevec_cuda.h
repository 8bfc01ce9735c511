/*
 * codevec_cuda.h
 *	  The plain C interface between the extension and its CUDA code.
 *
 * Rules for everything declared here and in the other cuda/ headers
 * (knn.h, kmeans.h, encoder.h; STYLE.md):
 *	- callable from C (extern "C"), no PostgreSQL headers on either side;
 *	- every function returns a status, CODEVEC_CUDA_OK (0) or one negative
 *	  CODEVEC_CUDA_ERR_* below (the one status scheme of cuda/), fills
 *	  errbuf (errlen bytes, NUL-terminated) with a lowercase message on
 *	  failure, and never aborts the process;
 *	- the caller (C code in src/) turns a failure into an ereport().
 *
 * The CUDA runtime is linked statically (libcudart_static.a), so the
 * extension loads where no CUDA runtime is installed; the runtime looks for
 * the driver (libcuda.so) only when the first CUDA call is made, and that
 * call reports cudaErrorInsufficientDriver / cudaErrorNoDevice on a machine
 * without one.
 */
#ifndef CODEVEC_CUDA_H
#define CODEVEC_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#endif

/*
 * Status codes of every codevec_cuda_* function. A failed CUDA runtime call
 * is ERR_CUDA unless codevec_cuda_status() below tells it apart (out of
 * memory, no device); errbuf names the call and the runtime's message.
 */
#define CODEVEC_CUDA_OK				0
#define CODEVEC_CUDA_ERR_CUDA		(-1)	/* a CUDA runtime call failed */
#define CODEVEC_CUDA_ERR_ARG		(-2)	/* bad argument (sizes, metric, k, tokens) */
#define CODEVEC_CUDA_ERR_NOMEM		(-3)	/* device or host allocation failed */
#define CODEVEC_CUDA_ERR_NODEVICE	(-4)	/* no driver or no usable CUDA device */
#define CODEVEC_CUDA_ERR_UNSUPPORTED (-5)	/* a model shape the kernels cannot run */
#define CODEVEC_CUDA_ERR_CUBLAS		(-6)	/* a cuBLASLt call failed */

#ifdef __CUDACC__
/*
 * codevec_cuda_status: the status of a CUDA runtime call's result (CUDA
 * code only: cudaError_t is not part of the C interface).
 */
static inline int
codevec_cuda_status(cudaError_t err)
{
	switch (err)
	{
		case cudaSuccess:
			return CODEVEC_CUDA_OK;
		case cudaErrorMemoryAllocation:
			return CODEVEC_CUDA_ERR_NOMEM;
		case cudaErrorNoDevice:
		case cudaErrorInsufficientDriver:
			return CODEVEC_CUDA_ERR_NODEVICE;
		default:
			return CODEVEC_CUDA_ERR_CUDA;
	}
}
#endif

/*
 * codevec_cuda_runtime_version: the CUDA runtime version this library was
 * built with, as major * 1000 + minor * 10 (e.g. 13000). Needs no driver.
 */
int			codevec_cuda_runtime_version(int *version);

/*
 * codevec_cuda_device_count: number of CUDA devices visible to this process.
 * With no driver or no device, *count = 0 and the status says why (errbuf
 * holds the runtime's message). Initialises CUDA in the calling process:
 * never call it in the postmaster.
 */
int			codevec_cuda_device_count(int *count, char *errbuf, size_t errlen);

/*
 * codevec_cuda_device_name: the name of device dev ("NVIDIA H100 80GB HBM3")
 * into name (len bytes, NUL-terminated).
 */
int			codevec_cuda_device_name(int dev, char *name, size_t len,
									 char *errbuf, size_t errlen);

/*
 * codevec_cuda_open_device: make device dev current for the calling thread,
 * create its context, and report its name (len bytes) and free and total
 * memory in bytes. Called once by the GPU service at start.
 */
int			codevec_cuda_open_device(int dev, char *name, size_t len,
									 size_t *free_bytes, size_t *total_bytes,
									 char *errbuf, size_t errlen);

/*
 * codevec_cuda_memory: free and total memory of the current device, bytes.
 */
int			codevec_cuda_memory(size_t *free_bytes, size_t *total_bytes,
								char *errbuf, size_t errlen);

/*
 * codevec_cuda_set_device: make device dev current for the calling thread
 * (its primary context, created on first use). The GPU service calls it
 * before work that allocates on "the current device" when it has opened
 * several (codevec.gpu_devices); an index remembers its own device.
 */
int			codevec_cuda_set_device(int dev, char *errbuf, size_t errlen);

/*
 * codevec_cuda_device_memory: free and total memory of device dev, bytes;
 * the calling thread's current device is left as it was.
 */
int			codevec_cuda_device_memory(int dev, size_t *free_bytes, size_t *total_bytes,
									   char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif							/* CODEVEC_CUDA_H */
