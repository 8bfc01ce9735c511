/*
 * gpukinds.c
 *	  The GPU layer's entry point: the service's GUCs, shared memory and
 *	  worker (gpuservice.c), then the table of request kinds, one
 *	  registration per kind file.
 *
 * Adding a request kind: a GPU_REQUEST_* number and its request layout in
 * gpuservice.h, a file with its service side (a GpuRequestKindData row, see
 * gpuserviceint.h) and backend side, and one line here. The service loop
 * does not change.
 */
#include "postgres.h"

#include "gpuserviceint.h"

/*
 * CodevecGpuServiceInit: define the GPU GUCs; when loading through
 * shared_preload_libraries, also request the shared memory and register the
 * service worker; register every request kind (in this process: the
 * service worker loads the library too). Called from _PG_init.
 */
void
CodevecGpuServiceInit(void)
{
	GpuServiceSetup();
	GpuCopiesRegister();		/* UPLOAD APPEND MASK AUTOTUNE: gpucopies.c */
	GpuKnnRegister();			/* KNN: gpuknn.c */
	GpuKmeansRegister();		/* KMEANS: gpukmeans.c */
	GpuEmbedRegister();			/* EMBED: gpuembed.c */
	GpuBm25Register();			/* BM25: gpubm25.c */
	GpuPrewarmRegister();		/* codevec.gpu_prewarm, start/save hooks: gpuprewarm.c */
}
