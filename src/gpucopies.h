/*
 * gpucopies.h
 *	  What the two halves of the GPU service's index copies share: the copy
 *	  itself (gpucopies.c: load, delta tier, masks, parts and replicas,
 *	  eviction) and the KNN request kind that searches it (gpuknn.c).
 *	  Service side only, CUDA builds only.
 */
#ifndef CODEVEC_GPUCOPIES_H
#define CODEVEC_GPUCOPIES_H

#include "gpuserviceint.h"
#include "knn.h"

/*
 * Index copies held by the service (service-local memory). Each has its
 * vectors on the device (cuda/knn.h) and the heap TIDs of its rows here:
 * the main rows (n, loaded whole by UPLOAD) and the delta tier (ndelta rows
 * of at most delta_cap, appended by APPEND after inserts), searched
 * together; row positions run over the main rows, then the delta's, in
 * the index chain's order, as a fresh copy would number them.
 */
#define GPU_MAX_INDEXES 64
#define GPU_DELTA_MIN_ROWS	4096	/* delta tier: max(this, main rows / 8) */
#define GPU_MAX_PARTS		16		/* row ranges of one split copy */
#define GPU_REPLICA_CHUNK	16384	/* rows copied to a new replica at a time */

/*
 * Several devices (codevec.gpu_devices). A copy's main rows are parts[0 ..
 * nparts - 1]: one device index each, holding the contiguous rows first ..
 * first + n - 1, on a logical device. One part (nparts 1) is a whole copy,
 * what a service with one device always has; a copy is split when it has
 * more rows than codevec.gpu_split_rows or does not fit one device, and
 * its queries then scan every part at once and merge exactly
 * (GpuSpreadKnn). A whole copy queried more than
 * codevec.gpu_replicate_rate times a second gets replicas on other devices
 * (GpuSpreadReplicas shares a batch's queries among them). The delta tier
 * lives on part 0's device. Row numbers (ids, tids[], masked[]) are the
 * copy's, whatever part holds the row.
 */
StaticAssertDecl(GPU_MAX_PARTS + 1 <= GPU_SPREAD_MAX_TIERS && 1 + GPU_MAX_DEVICES <= GPU_SPREAD_MAX_TIERS,
				 "a split copy's parts and delta tier, or a copy and its replicas, fit one spread call");

typedef struct GpuCopyPart
{
	CodevecCudaIndex idx;
	int			device;			/* logical device */
	int64		first;			/* the copy's row held at local row 0 */
	int64		n;
} GpuCopyPart;

typedef struct GpuIndexCopy
{
	bool		used;
	bool		complete;		/* every chunk of the main rows arrived */
	GpuIndexKey key;			/* insertCount: the rows the copy holds */
	int			dims;
	int64		n;				/* main rows */
	int64		loaded;			/* main rows uploaded so far */
	int64		ndelta;			/* delta rows */
	int64		delta_cap;		/* 0 until the first APPEND */
	uint32		resume_blk;		/* chain position after the last row held */
	uint32		resume_off;
	float		maxnorm;
	size_t		device_bytes;	/* parts + delta + replicas */
	TimestampTz last_used;
	bool		queried;		/* a KNN request ran on it (not only loaded) */
	ItemPointerData *tids;		/* malloc'd: n main rows, then delta_cap */
	float	   *delta_vecs;		/* malloc'd: the delta rows (delta_cap x dims) */
	int			nparts;			/* main rows: 1 whole, more when split */
	GpuCopyPart parts[GPU_MAX_PARTS];
	int			nreplicas;		/* replicas of a whole copy besides parts[0] */
	CodevecCudaIndex replicas[GPU_MAX_DEVICES];
	int			replica_device[GPU_MAX_DEVICES];
	int			next_replica;	/* round robin for one-query calls */
	TimestampTz rate_start;		/* KNN requests counted since */
	int64		rate_count;
	CodevecCudaIndex delta;		/* exactly the ndelta rows: made again at each
								 * APPEND (a device index has a fixed row count) */
	uint8	   *masked;			/* malloc'd when a VACUUM masked rows: one
								 * byte per row position (main, then delta) */
	int64		masked_cap;		/* positions masked[] covers */
	int64		nmasked;
	int			lists;			/* IVF: lists > 1, rows stored list after list */
	int64	   *list_first;		/* malloc'd, lists + 1: list l holds main rows
								 * list_first[l] .. list_first[l + 1] - 1 */
	int			uploader;		/* pid of the backend loading it */
	TimestampTz upload_last;	/* when its last chunk came */
	int			inflight;		/* KNN groups started and not finished */
} GpuIndexCopy;

/*
 * GpuCopyFind: the copy of the same index (any version), or NULL.
 * GpuCopyStatus: how a copy stands against a request's key: 0 current
 *	  (which includes a flat copy with every insert up to the key's count),
 *	  GPU_STATUS_NOT_LOADED or GPU_STATUS_STALE (gpucopies.c has the rules).
 * GpuCopyMaybeReplicate: count nreq KNN requests on a copy and, with
 *	  several devices, give a hot whole copy one more replica.
 */
extern GpuIndexCopy *GpuCopyFind(const GpuIndexKey *key);
extern int	GpuCopyStatus(const GpuIndexCopy *c, const GpuIndexKey *key, int dims);
extern void GpuCopyMaybeReplicate(GpuIndexCopy *c, int nreq);

#endif							/* CODEVEC_GPUCOPIES_H */
