/*
 * cuda_try.cuh
 *	  The error plumbing of cuda/'s C functions (CUDA code only): a message
 *	  into the caller's errbuf, and CUDA_TRY, which returns the status of a
 *	  failed runtime call (codevec_cuda_status) from the enclosing function,
 *	  whose parameters must be named errbuf and errlen. Included by
 *	  encoder.cu and bm25_device.cu.
 */
#ifndef CODEVEC_CUDA_TRY_CUH
#define CODEVEC_CUDA_TRY_CUH

#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>

#include "codevec_cuda.h"

/* Write a formatted message into errbuf (when there is one). */
static inline void
SetError(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* Run a CUDA runtime call; on failure say which and return its status */
#define CUDA_TRY(call) do { \
	cudaError_t err_ = (call); \
	if (err_ != cudaSuccess) { \
		SetError(errbuf, errlen, "%s: %s (%s) at %s:%d", #call, \
				 cudaGetErrorString(err_), cudaGetErrorName(err_), __FILE__, __LINE__); \
		return codevec_cuda_status(err_); \
	} } while (0)

#endif							/* CODEVEC_CUDA_TRY_CUH */
