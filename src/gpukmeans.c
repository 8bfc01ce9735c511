/*
 * gpukmeans.c
 *	  The service side of KMEANS requests: an IVF build's k-means training
 *	  and row assignment on the GPU (cuda/kmeans.h; the backend's side is
 *	  gpuivfbuild.c and gpuivfutils.c, the layout is in gpuservice.h).
 *
 * A building backend sends its samples in chunks (op SAMPLES, the last one
 * op TRAIN), then rows to assign (ASSIGN), then DONE. The samples and
 * the trained centroids stay in a staging area of the service's memory,
 * one per building backend, between those requests; a new training takes
 * a free area or the least recently used one.
 */
#include "postgres.h"

#include <stdlib.h>

#include "gpuserviceint.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#include "kmeans.h"
#include "knn.h"

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

static void
KmeansRun(GpuRequestHeader *req)
{
	RunKmeans((GpuKmeansRequest *) req);
}

#define GPU_KMEANS_HANDLER KmeansRun
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_KMEANS_HANDLER NULL
#endif							/* CODEVEC_USE_CUDA */

static const GpuRequestKindData kmeans_kind = {
	GPU_REQUEST_KMEANS, "kmeans", true, GPU_KMEANS_HANDLER, NULL, NULL
};

/* GpuKmeansRegister: the request kind of this file */
void
GpuKmeansRegister(void)
{
	GpuServiceRegisterKind(&kmeans_kind);
}
