/*
 * codevec_cuda.h
 *	  The plain C interface between the extension and its CUDA code.
 *
 * Rules for everything declared here (STYLE.md):
 *	- callable from C (extern "C"), no PostgreSQL headers on either side;
 *	- every function returns a status (0 = success, otherwise a cudaError_t
 *	  value or CODEVEC_CUDA_E_*), fills errbuf (errlen bytes, NUL-terminated)
 *	  with a message on failure, and never aborts the process;
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

/* Status codes of our own, above the cudaError_t range */
#define CODEVEC_CUDA_E_INVALID	10001	/* bad argument from the caller */

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

#ifdef __cplusplus
}
#endif

#endif							/* CODEVEC_CUDA_H */
