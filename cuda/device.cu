/*
 * device.cu
 *	  Device discovery for the extension: runtime version, device count and
 *	  names. The first CUDA runtime call of a process happens here.
 */
#include <cuda_runtime.h>
#include <stdio.h>

#include "codevec_cuda.h"

/* Copy the runtime's message for err into errbuf; err's status */
static int
set_error(cudaError_t err, const char *what, char *errbuf, size_t errlen)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s: %s (%s)", what, cudaGetErrorString(err),
				 cudaGetErrorName(err));
	return codevec_cuda_status(err);
}

extern "C" int
codevec_cuda_runtime_version(int *version)
{
	*version = CUDART_VERSION;
	return 0;
}

extern "C" int
codevec_cuda_device_count(int *count, char *errbuf, size_t errlen)
{
	cudaError_t err = cudaGetDeviceCount(count);

	if (err != cudaSuccess)
	{
		*count = 0;
		/* clear the sticky-free error so later calls start clean */
		(void) cudaGetLastError();
		return set_error(err, "cudaGetDeviceCount", errbuf, errlen);
	}
	return 0;
}

extern "C" int
codevec_cuda_device_name(int dev, char *name, size_t len, char *errbuf, size_t errlen)
{
	cudaDeviceProp prop;
	cudaError_t err;

	if (name == NULL || len == 0)
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "codevec_cuda_device_name: no output buffer");
		return CODEVEC_CUDA_ERR_ARG;
	}
	err = cudaGetDeviceProperties(&prop, dev);
	if (err != cudaSuccess)
		return set_error(err, "cudaGetDeviceProperties", errbuf, errlen);
	snprintf(name, len, "%s", prop.name);
	return 0;
}

extern "C" int
codevec_cuda_open_device(int dev, char *name, size_t len, size_t *free_bytes,
						 size_t *total_bytes, char *errbuf, size_t errlen)
{
	cudaError_t err;
	int			status;

	if ((status = codevec_cuda_device_name(dev, name, len, errbuf, errlen)) != 0)
		return status;
	if ((err = cudaSetDevice(dev)) != cudaSuccess)
		return set_error(err, "cudaSetDevice", errbuf, errlen);
	/* cudaFree(0) creates the primary context now rather than at first use */
	if ((err = cudaFree(0)) != cudaSuccess)
		return set_error(err, "cudaFree(0)", errbuf, errlen);
	if ((err = cudaMemGetInfo(free_bytes, total_bytes)) != cudaSuccess)
		return set_error(err, "cudaMemGetInfo", errbuf, errlen);
	return 0;
}

extern "C" int
codevec_cuda_memory(size_t *free_bytes, size_t *total_bytes, char *errbuf, size_t errlen)
{
	cudaError_t err = cudaMemGetInfo(free_bytes, total_bytes);

	if (err != cudaSuccess)
		return set_error(err, "cudaMemGetInfo", errbuf, errlen);
	return 0;
}

extern "C" int
codevec_cuda_set_device(int dev, char *errbuf, size_t errlen)
{
	cudaError_t err = cudaSetDevice(dev);

	if (err != cudaSuccess)
	{
		(void) cudaGetLastError();
		return set_error(err, "cudaSetDevice", errbuf, errlen);
	}
	return 0;
}

extern "C" int
codevec_cuda_device_memory(int dev, size_t *free_bytes, size_t *total_bytes,
						   char *errbuf, size_t errlen)
{
	cudaError_t err;
	int			prev = 0;

	if ((err = cudaGetDevice(&prev)) != cudaSuccess)
		return set_error(err, "cudaGetDevice", errbuf, errlen);
	if (prev != dev && (err = cudaSetDevice(dev)) != cudaSuccess)
		return set_error(err, "cudaSetDevice", errbuf, errlen);
	err = cudaMemGetInfo(free_bytes, total_bytes);
	if (prev != dev)
		(void) cudaSetDevice(prev);
	if (err != cudaSuccess)
		return set_error(err, "cudaMemGetInfo", errbuf, errlen);
	return 0;
}
