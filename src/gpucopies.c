/*
 * gpucopies.c
 *	  The GPU service's device copies of gpuivf indexes: the service side of
 *	  the UPLOAD, APPEND, MASK and AUTOTUNE requests (gpuservice.h has
 *	  their layouts; the backends' side is gpuivfgpu.c and gpuivfknn.c).
 *	  The KNN requests that search the copies are gpuknn.c's; gpucopies.h
 *	  is what the two files share (the copy's struct, GpuCopyFind,
 *	  GpuCopyStatus, GpuCopyMaybeReplicate).
 *
 * A copy is the index's vectors on the device (cuda/knn.h) and their heap
 * TIDs in the service's memory, keyed by GpuIndexKey. UPLOAD loads a copy
 * whole, chunk after chunk (an IVF copy list after list); APPEND adds the
 * rows a flat index gained since into the copy's delta tier; MASK hides
 * rows a VACUUM removed. Copies are evicted
 * least recently used first to stay under codevec.gpu_memory_limit with
 * the other device stores (the encoder's models, gpuembed.c).
 * GpuCopiesList names the complete copies for the prewarm list
 * (gpuprewarm.c).
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "gpuserviceint.h"
#include "gpuspread.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "codevec_cuda.h"
#include "knn.h"

#include "gpucopies.h"

/*
 * A copy still loading whose uploader sent nothing for this long is taken
 * over by the next backend that loads it (the first one died or gave up).
 */
#define GPU_UPLOAD_STALL_MS		5000

static GpuIndexCopy index_copies[GPU_MAX_INDEXES];

/* bumped when a copy completes or is dropped: the prewarm list changed */
static uint64 copies_generation = 0;

/* Device bytes a device index holds now (0 for NULL) */
static size_t
IndexBytes(CodevecCudaIndex idx)
{
	size_t		b = 0;

	if (idx == NULL || codevec_cuda_index_info(idx, &b, NULL, NULL, 0) != CODEVEC_CUDA_OK)
		return 0;
	return b;
}

/* Device bytes of a copy: its parts, delta tier and replicas */
static size_t
CopyDeviceBytes(const GpuIndexCopy *c)
{
	size_t		total = IndexBytes(c->delta);

	for (int p = 0; p < c->nparts; p++)
		total += IndexBytes(c->parts[p].idx);
	for (int i = 0; i < c->nreplicas; i++)
		total += IndexBytes(c->replicas[i]);
	return total;
}

/* Drop a copy's replicas (they are made again while it stays hot) */
static void
DropReplicas(GpuIndexCopy *c)
{
	for (int i = 0; i < c->nreplicas; i++)
		codevec_cuda_index_free(c->replicas[i]);
	c->nreplicas = 0;
	c->device_bytes = CopyDeviceBytes(c);
}

/* Drop a copy: device memory and TIDs */
static void
DropCopy(GpuIndexCopy *c)
{
	/* the loop answers started KNN groups before any request that drops */
	Assert(c->inflight == 0);
	if (c->complete)
		copies_generation++;
	DropReplicas(c);
	for (int p = 0; p < c->nparts; p++)
		codevec_cuda_index_free(c->parts[p].idx);
	codevec_cuda_index_free(c->delta);
	free(c->tids);
	free(c->delta_vecs);
	free(c->list_first);
	free(c->masked);
	memset(c, 0, sizeof(*c));
}

/* The copy of the same index (any version), or NULL */
GpuIndexCopy *
GpuCopyFind(const GpuIndexKey *key)
{
	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used && index_copies[i].key.dbid == key->dbid &&
			index_copies[i].key.indexid == key->indexid)
			return &index_copies[i];
	return NULL;
}

/* Bytes the device holds for held copies; *count: how many copies */
static Size
CopiesBytes(int *count)
{
	Size		total = 0;
	int			n = 0;

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used)
		{
			total += index_copies[i].device_bytes;
			n++;
		}
	if (count)
		*count = n;
	return total;
}

/* GpuDeviceStoreData.per_device: each copy's parts, delta and replicas */
static void
CopiesPerDevice(GpuDeviceHeld *held)
{
	int			ndev = GpuServiceDeviceCount();

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
	{
		const GpuIndexCopy *c = &index_copies[i];

		if (!c->used)
			continue;
		for (int p = 0; p < c->nparts; p++)
			if (c->parts[p].device < ndev)
			{
				held[c->parts[p].device].bytes += IndexBytes(c->parts[p].idx);
				if (c->nparts == 1)
					held[c->parts[p].device].copies++;
				else
					held[c->parts[p].device].ranges++;
			}
		if (c->nparts > 0 && c->parts[0].device < ndev)
			held[c->parts[0].device].bytes += IndexBytes(c->delta);
		for (int r = 0; r < c->nreplicas; r++)
			if (c->replica_device[r] < ndev)
			{
				held[c->replica_device[r]].bytes += IndexBytes(c->replicas[r]);
				held[c->replica_device[r]].replicas++;
			}
	}
}

static const GpuDeviceStoreData copies_store = {
	.name = "index copies",
	.counter = GPU_STORE_COUNTS_INDEXES,
	.bytes = CopiesBytes,
	.per_device = CopiesPerDevice
};

/*
 * How a copy stands against a request's key: 0 current, which includes a
 * copy ahead in inserts (it holds every row the key counts, and the rows
 * inserted since are invisible to the request's snapshot, which the heap
 * fetch filters like dead rows; so a backend never chases inserts made
 * after its scan began); GPU_STATUS_STALE when only rows the key counts
 * are missing; GPU_STATUS_NOT_LOADED when
 * there is none, it is incomplete, or another version (REINDEX, TRUNCATE,
 * VACUUM, other dims), or an IVF copy behind in inserts (its rows are
 * grouped by list: it is loaded again whole).
 */
int
GpuCopyStatus(const GpuIndexCopy *c, const GpuIndexKey *key, int dims)
{
	if (c == NULL || !c->complete || c->key.relfilenode != key->relfilenode ||
		c->key.deleteCount != key->deleteCount || c->dims != dims)
		return GPU_STATUS_NOT_LOADED;
	if (c->key.insertCount < key->insertCount)
		return c->lists > 1 ? GPU_STATUS_NOT_LOADED : GPU_STATUS_STALE;
	return 0;
}

/*
 * Count nreq KNN requests on a copy and, once a second, see whether it is
 * hot: more than codevec.gpu_replicate_rate requests a second on a whole
 * copy (not split, no delta tier), with another device that holds none
 * of it and has free memory for it twice over, and room under
 * codevec.gpu_memory_limit without evicting anything. Then make one more
 * replica there: a device index of the same rows, copied from the copy's
 * own fp32 rows on the device, GPU_REPLICA_CHUNK rows at a time (its
 * norms and fp16 copy derived as an upload derives them, so its answers
 * are the copy's, bit for bit). A failure only leaves the copy unreplicated.
 */
void
GpuCopyMaybeReplicate(GpuIndexCopy *c, int nreq)
{
	TimestampTz now = GetCurrentTimestamp();
	long		secs;
	int			usecs;
	double		elapsed,
				rate;
	size_t		bytes,
				cap = (size_t) codevec_gpu_memory_limit_mb * 1024 * 1024;
	uint32		exclude;
	Size		free_b = 0;
	int			dev,
				rc = CODEVEC_CUDA_OK;
	CodevecCudaIndex rep = NULL;
	int64	   *ids = NULL;
	float	   *buf = NULL;
	char		errbuf[256];

	if (codevec_gpu_replicate_rate <= 0 || GpuServiceDeviceCount() < 2)
		return;
	if (c->rate_start == 0)
		c->rate_start = now;
	c->rate_count += nreq;
	TimestampDifference(c->rate_start, now, &secs, &usecs);
	elapsed = secs + usecs / 1e6;
	if (elapsed < 1.0)
		return;
	rate = c->rate_count / elapsed;
	c->rate_start = now;
	c->rate_count = 0;
	if (rate < codevec_gpu_replicate_rate || c->nparts != 1 || !c->complete || c->ndelta > 0 ||
		c->nreplicas >= Min(GpuServiceDeviceCount() - 1, GPU_MAX_DEVICES))
		return;
	exclude = (uint32) 1 << c->parts[0].device;
	for (int i = 0; i < c->nreplicas; i++)
		exclude |= (uint32) 1 << c->replica_device[i];
	dev = GpuServicePickDevice(exclude, &free_b);
	bytes = IndexBytes(c->parts[0].idx);
	if (dev < 0 || free_b < 2 * bytes ||
		(cap > 0 && CopiesBytes(NULL) + GpuServiceStoresBytes(&copies_store) + bytes > cap))
		return;
	ids = malloc(sizeof(int64) * CODEVEC_CUDA_MAX_K);
	buf = malloc(sizeof(float) * (Size) GPU_REPLICA_CHUNK * c->dims);
	if (ids == NULL || buf == NULL || !GpuServiceUseDevice(dev, errbuf, sizeof(errbuf)) ||
		codevec_cuda_index_create(Max(c->n, 1), c->dims, CODEVEC_PREC_AUTO, &rep, errbuf,
								  sizeof(errbuf)) != CODEVEC_CUDA_OK)
		rc = CODEVEC_CUDA_ERR_NOMEM;
	for (int64 first = 0; rc == CODEVEC_CUDA_OK && first < c->n; first += GPU_REPLICA_CHUNK)
	{
		int64		cnt = Min((int64) GPU_REPLICA_CHUNK, c->n - first);

		for (int64 g = 0; rc == CODEVEC_CUDA_OK && g < cnt; g += CODEVEC_CUDA_MAX_K)
		{
			int			m = (int) Min((int64) CODEVEC_CUDA_MAX_K, cnt - g);

			for (int e = 0; e < m; e++)
				ids[e] = first + g + e;
			rc = codevec_cuda_index_rows(c->parts[0].idx, ids, m, buf + (Size) g * c->dims,
										 errbuf, sizeof(errbuf));
		}
		if (rc == CODEVEC_CUDA_OK)
			rc = codevec_cuda_index_upload(rep, buf, first, cnt, errbuf, sizeof(errbuf));
	}
	free(ids);
	free(buf);
	if (rc != CODEVEC_CUDA_OK)
	{
		codevec_cuda_index_free(rep);
		return;
	}
	c->replicas[c->nreplicas] = rep;
	c->replica_device[c->nreplicas++] = dev;
	c->device_bytes = CopyDeviceBytes(c);
	GpuServiceUpdateMemoryStats();
}

/* The largest norm of n rows of dims floats, folded into *maxnorm */
static void
FoldMaxNorm(float *maxnorm, const float *v, int64 n, int dims)
{
	for (int64 i = 0; i < n; i++)
	{
		double		s = 0;

		for (int j = 0; j < dims; j++)
			s += (double) v[i * dims + j] * v[i * dims + j];
		*maxnorm = Max(*maxnorm, (float) sqrt(s));
	}
}

/*
 * Make room for need more device bytes under codevec.gpu_memory_limit,
 * evicting least recently used copies other than keep; false if it cannot.
 */
static bool
MakeRoom(size_t need, const GpuIndexCopy *keep)
{
	size_t		cap = (size_t) codevec_gpu_memory_limit_mb * 1024 * 1024;

	while (cap > 0 && CopiesBytes(NULL) + GpuServiceStoresBytes(&copies_store) + need > cap)
	{
		GpuIndexCopy *lru = NULL;

		/* replicas go first: they are only for speed */
		for (int i = 0; i < GPU_MAX_INDEXES; i++)
			if (index_copies[i].used && index_copies[i].nreplicas > 0)
				lru = &index_copies[i];
		if (lru != NULL)
		{
			DropReplicas(lru);
			continue;
		}
		for (int i = 0; i < GPU_MAX_INDEXES; i++)
			if (index_copies[i].used && &index_copies[i] != keep &&
				(lru == NULL || index_copies[i].last_used < lru->last_used))
				lru = &index_copies[i];
		if (lru == NULL)
			return false;
		DropCopy(lru);
	}
	return true;
}

/*
 * Make a new copy's device indexes for total rows: one, holding every row
 * (with one device, as it always was; with several, on the device with
 * the most free memory), or, with several devices, contiguous parts of
 * about equal size when total passes codevec.gpu_split_rows or need bytes
 * pass nine tenths of the best device's free memory (one part per device
 * then). Parts go to the device with the most free memory among those
 * holding none of this copy yet (all of them again once each has one).
 * false with errbuf set when a device index cannot be made: the caller
 * drops the copy, which frees the parts made.
 */
static bool
CreateParts(GpuIndexCopy *c, int64 total, int dims, size_t need, char *errbuf, size_t errlen)
{
	int			ndev = GpuServiceDeviceCount();
	int			nparts = 1;
	int64		per;
	uint32		taken = 0;

	if (ndev > 1 && total > 1)
	{
		Size		free_b = 0;

		(void) GpuServicePickDevice(0, &free_b);
		if (codevec_gpu_split_rows > 0 && total > codevec_gpu_split_rows)
			nparts = (int) Min((total + codevec_gpu_split_rows - 1) / codevec_gpu_split_rows,
							   (int64) GPU_MAX_PARTS);
		else if (need > free_b / 10 * 9)
			nparts = Min(ndev, GPU_MAX_PARTS);
	}
	per = (total + nparts - 1) / nparts;
	if (nparts > 1)
		nparts = (int) ((total + per - 1) / per);	/* no empty part */
	for (int p = 0; p < nparts; p++)
	{
		GpuCopyPart *part = &c->parts[p];
		int			dev = 0;

		c->nparts = p + 1;
		part->first = p * per;
		part->n = nparts == 1 ? total : Min(per, total - part->first);
		if (ndev > 1)
		{
			dev = GpuServicePickDevice(taken, NULL);
			if (dev < 0)
			{
				taken = 0;
				dev = Max(GpuServicePickDevice(0, NULL), 0);
			}
			taken |= (uint32) 1 << dev;
			if (!GpuServiceUseDevice(dev, errbuf, errlen))
				return false;
		}
		part->device = dev;
		if (codevec_cuda_index_create(Max(part->n, 1), dims, CODEVEC_PREC_AUTO, &part->idx,
									  errbuf, errlen) != CODEVEC_CUDA_OK)
			return false;
	}
	return true;
}

/* Copy rows first .. first + n - 1 (n x dims floats at v) into the parts holding them */
static int
UploadRows(GpuIndexCopy *c, const float *v, int64 first, int64 n, char *errbuf, size_t errlen)
{
	for (int p = 0; p < c->nparts; p++)
	{
		GpuCopyPart *part = &c->parts[p];
		int64		lo = Max(first, part->first),
					hi = Min(first + n, part->first + part->n);
		int			rc;

		if (c->nparts == 1)
			return codevec_cuda_index_upload(part->idx, v, first, n, errbuf, errlen);
		if (lo < hi &&
			(rc = codevec_cuda_index_upload(part->idx, v + (Size) (lo - first) * c->dims,
											lo - part->first, hi - lo, errbuf, errlen)) != CODEVEC_CUDA_OK)
			return rc;
	}
	return CODEVEC_CUDA_OK;
}

/* Chunk of an index copy: the first one (re)creates the copy, evicting
 * least recently used copies to stay under codevec.gpu_memory_limit */
static void
RunUpload(GpuUploadRequest *r)
{
	GpuIndexCopy *c = GpuCopyFind(&r->key);
	const float *v = GpuUploadVectors(r);

	if (c != NULL && c->uploader != r->uploader && !c->complete &&
		!TimestampDifferenceExceeds(c->upload_last, GetCurrentTimestamp(), GPU_UPLOAD_STALL_MS))
	{
		/*
		 * Another backend is loading this copy: two uploads at once would
		 * interleave their chunks and spoil both. The caller waits and asks
		 * again (its KNN finds the copy once complete).
		 */
		r->hdr.status = r->first == 0 ? GPU_STATUS_BUSY : GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d is loading this index copy", c->uploader);
		return;
	}
	if (r->first != 0 && c != NULL && c->uploader != r->uploader)
	{
		/* a chunk of an upload another backend has since replaced */
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "backend %d loaded this index copy meanwhile", c->uploader);
		return;
	}
	if (r->first == 0)
	{
		size_t		need = (size_t) r->total * r->dims * 7 + (size_t) r->total * 24;	/* fp32 + fp16 + int8 + norms, scales, padding */
		int			slot = -1;

		if (c != NULL)
			DropCopy(c);
		if (!MakeRoom(need, NULL))
		{
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
					 "index needs about %zu MB, codevec.gpu_memory_limit is %d MB",
					 need >> 20, codevec_gpu_memory_limit_mb);
			GpuServiceUpdateMemoryStats();
			return;
		}
		for (int i = 0; i < GPU_MAX_INDEXES && slot < 0; i++)
			if (!index_copies[i].used)
				slot = i;
		if (slot < 0)
		{
			GpuIndexCopy *lru = &index_copies[0];

			for (int i = 1; i < GPU_MAX_INDEXES; i++)
				if (index_copies[i].last_used < lru->last_used)
					lru = &index_copies[i];
			DropCopy(lru);
			slot = lru - index_copies;
		}
		c = &index_copies[slot];
		memset(c, 0, sizeof(*c));
		c->tids = malloc(sizeof(ItemPointerData) * Max(r->total, 1));
		if (c->tids == NULL ||
			!CreateParts(c, r->total, r->dims, need, r->hdr.errmsg, sizeof(r->hdr.errmsg)))
		{
			if (c->tids == NULL)
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "out of host memory");
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NO_MEMORY;
			GpuServiceUpdateMemoryStats();
			return;
		}
		c->used = true;
		c->key = r->key;
		c->dims = r->dims;
		c->n = r->total;
		c->uploader = r->uploader;
		if (r->lists > 1)
		{
			/* IVF: the rows come list after list; keep where each starts */
			const int64 *counts = GpuUploadListCounts(r);
			int64		sum = 0;

			c->list_first = malloc(sizeof(int64) * ((Size) r->lists + 1));
			for (int l = 0; c->list_first != NULL && l < r->lists; l++)
			{
				c->list_first[l] = sum;
				sum += counts[l] >= 0 ? counts[l] : r->total + 1;
			}
			if (c->list_first == NULL || sum != r->total)
			{
				snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
						 c->list_first == NULL ? "out of host memory" :
						 "list row counts do not add up to the rows sent");
				DropCopy(c);
				r->hdr.status = GPU_STATUS_FAILED;
				GpuServiceUpdateMemoryStats();
				return;
			}
			c->list_first[r->lists] = sum;
			c->lists = r->lists;
		}
	}
	if (c == NULL || c->complete || c->key.deleteCount != r->key.deleteCount ||
		c->key.insertCount != r->key.insertCount ||
		c->key.relfilenode != r->key.relfilenode || r->first != c->loaded ||
		r->first + r->n > c->n || r->dims != c->dims)
	{
		/* a chunk out of sequence: the copy is unusable */
		if (c != NULL)
			DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	c->upload_last = GetCurrentTimestamp();
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	if (r->n > 0 &&
		UploadRows(c, v, r->first, r->n, r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
	{
		DropCopy(c);
		r->hdr.status = GPU_STATUS_FAILED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	memcpy(c->tids + r->first, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->loaded += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	if (c->loaded == c->n)
	{
		c->complete = true;
		copies_generation++;
		c->device_bytes = CopyDeviceBytes(c);
	}
	r->hdr.status = 0;
	GpuServiceUpdateMemoryStats();
}

/*
 * Rows inserted since the copy was loaded, into its delta tier (created on
 * the first APPEND with room for max(GPU_DELTA_MIN_ROWS, n / 8) rows). A
 * request that does not continue the copy exactly (another backend's
 * append came first) gets GPU_STATUS_STALE to ask again; one that does not
 * fit drops the copy (GPU_STATUS_NOT_LOADED: the backend loads it whole,
 * which folds the delta into the main rows).
 */
static void
RunAppend(GpuUploadRequest *r)
{
	GpuIndexCopy *c = GpuCopyFind(&r->key);
	const float *v = GpuUploadVectors(r);
	GpuIndexKey base = r->key;

	base.insertCount = c ? c->key.insertCount : 0;
	if (c == NULL || GpuCopyStatus(c, &base, r->dims) != 0 || r->n < 0 || c->lists > 1)
	{
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		return;
	}
	if (r->first != c->n + c->ndelta || r->total < r->first + r->n)
	{
		r->hdr.status = GPU_STATUS_STALE;
		return;
	}
	if (c->delta_cap == 0)
	{
		int64		cap = Max(GPU_DELTA_MIN_ROWS, c->n / 8);
		ItemPointerData *t = realloc(c->tids, sizeof(ItemPointerData) * (c->n + cap));

		if (t != NULL)
			c->tids = t;
		c->delta_vecs = malloc(sizeof(float) * (Size) cap * r->dims);
		if (t == NULL || c->delta_vecs == NULL)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			GpuServiceUpdateMemoryStats();
			return;
		}
		c->delta_cap = cap;
	}
	if (r->total - c->n > c->delta_cap)
	{
		/* the delta is full: fold it in by loading the index whole */
		DropCopy(c);
		r->hdr.status = GPU_STATUS_NOT_LOADED;
		GpuServiceUpdateMemoryStats();
		return;
	}
	FoldMaxNorm(&c->maxnorm, v, r->n, r->dims);
	memcpy(c->delta_vecs + (Size) c->ndelta * r->dims, v, sizeof(float) * (Size) r->n * r->dims);

	/* the delta's device index, made again with all its rows */
	codevec_cuda_index_free(c->delta);
	c->delta = NULL;
	if (c->ndelta + r->n > 0)
	{
		size_t		need = (size_t) (c->ndelta + r->n) * r->dims * 7 + (size_t) (c->ndelta + r->n) * 24;

		if (!MakeRoom(need, c) ||
			(GpuServiceDeviceCount() > 1 &&
			 !GpuServiceUseDevice(c->parts[0].device, r->hdr.errmsg, sizeof(r->hdr.errmsg))) ||
			codevec_cuda_index_create(c->ndelta + r->n, r->dims, CODEVEC_PREC_AUTO, &c->delta,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK ||
			codevec_cuda_index_upload(c->delta, c->delta_vecs, 0, c->ndelta + r->n,
									  r->hdr.errmsg, sizeof(r->hdr.errmsg)) != CODEVEC_CUDA_OK)
		{
			DropCopy(c);
			r->hdr.status = GPU_STATUS_NOT_LOADED;
			GpuServiceUpdateMemoryStats();
			return;
		}
	}
	memcpy(c->tids + c->n + c->ndelta, GpuUploadTids(r), sizeof(ItemPointerData) * r->n);
	c->ndelta += r->n;
	c->resume_blk = r->resume_blk;
	c->resume_off = r->resume_off;
	c->last_used = GetCurrentTimestamp();
	/*
	 * Complete: it holds every row up to the appender's read of the chain,
	 * so at least those its key counts. Never lowered: a backend whose key
	 * is older (its append came second) must not make the copy stale again
	 * for the newer keys it also serves.
	 */
	if (c->n + c->ndelta == r->total)
		c->key.insertCount = Max(c->key.insertCount, r->key.insertCount);
	c->device_bytes = CopyDeviceBytes(c);
	r->hdr.status = 0;
	GpuServiceUpdateMemoryStats();
}

/*
 * A VACUUM removed rows (see GpuMaskRequest): mask them in the copy and
 * move it to the new version, or drop it when that cannot be done safely.
 */
static void
RunMask(GpuMaskRequest *r)
{
	GpuIndexCopy *c = GpuCopyFind(&r->key);
	int64		rows;
	uint64	   *set = NULL;
	uint64		mask = 0;

	r->hdr.status = 0;
	if (c == NULL || c->key.relfilenode != r->key.relfilenode ||
		c->key.deleteCount >= r->newDeleteCount)
		return;					/* none, another relfilenode, or already newer */
	if (!c->complete || c->key.deleteCount != r->key.deleteCount || r->nblocks < 0 ||
		r->ntids < 0)
	{
		DropCopy(c);
		GpuServiceUpdateMemoryStats();
		return;
	}
	if (c->lists <= 1)
		for (int i = 0; i < r->nblocks; i++)
			if (GpuMaskBlocks(r)[i] == c->resume_blk)
			{
				/* the delta tier would resume at a moved offset */
				DropCopy(c);
				GpuServiceUpdateMemoryStats();
				return;
			}
	rows = c->n + c->ndelta;
	if (r->ntids > 0)
	{
		int64		cap = 16;

		while (cap < 2 * r->ntids)
			cap *= 2;
		mask = (uint64) cap - 1;
		set = calloc(cap, sizeof(uint64));
		if (c->masked_cap < c->n + Max(c->delta_cap, c->ndelta))
		{
			int64		newcap = c->n + Max(c->delta_cap, c->ndelta);
			uint8	   *m = realloc(c->masked, Max(newcap, 1));

			if (m != NULL)
			{
				memset(m + c->masked_cap, 0, newcap - c->masked_cap);
				c->masked = m;
				c->masked_cap = newcap;
			}
		}
		if (set == NULL || c->masked_cap < rows)
		{
			free(set);
			DropCopy(c);
			GpuServiceUpdateMemoryStats();
			return;
		}
		/* an open-addressing set of the removed TIDs (key + 1: 0 is empty) */
		for (int64 i = 0; i < r->ntids; i++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&GpuMaskTids(r)[i]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&GpuMaskTids(r)[i])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			set[h] = key;
		}
		for (int64 p = 0; p < rows; p++)
		{
			uint64		key = ((uint64) ItemPointerGetBlockNumberNoCheck(&c->tids[p]) << 16 |
							   ItemPointerGetOffsetNumberNoCheck(&c->tids[p])) + 1;
			uint64		h = (key * UINT64CONST(0x9E3779B97F4A7C15)) & mask;

			while (set[h] != 0 && set[h] != key)
				h = (h + 1) & mask;
			if (set[h] == key && !c->masked[p])
			{
				c->masked[p] = 1;
				c->nmasked++;
			}
		}
		free(set);
	}
	if (c->nmasked > GPU_MASK_MAX_ROWS)
	{
		/* too many holes: load it again, compacted */
		DropCopy(c);
		GpuServiceUpdateMemoryStats();
		return;
	}
	c->key.deleteCount = r->newDeleteCount;
}

/* Re-run the k-NN kernels' autotuning and answer its report */
static void
RunAutotune(GpuAutotuneRequest *r)
{
	if (r->dims < 1 || r->dims > 16000)
	{
		r->hdr.status = GPU_STATUS_FAILED;
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg), "bad dims %d", r->dims);
		return;
	}
	r->report[0] = '\0';
	r->hdr.status = codevec_cuda_autotune(r->dims, r->report, sizeof(r->report),
										  r->hdr.errmsg, sizeof(r->hdr.errmsg)) == CODEVEC_CUDA_OK ?
		0 : GPU_STATUS_FAILED;
}

static void
UploadRun(GpuRequestHeader *req)
{
	RunUpload((GpuUploadRequest *) req);
}

static void
AppendRun(GpuRequestHeader *req)
{
	RunAppend((GpuUploadRequest *) req);
}

static void
MaskRun(GpuRequestHeader *req)
{
	RunMask((GpuMaskRequest *) req);
}

static void
AutotuneRun(GpuRequestHeader *req)
{
	RunAutotune((GpuAutotuneRequest *) req);
}

/* GpuCopiesList: see gpuserviceint.h */
int
GpuCopiesList(GpuCopyName *out, int max)
{
	const GpuIndexCopy *order[GPU_MAX_INDEXES];
	int			n = 0;

	for (int i = 0; i < GPU_MAX_INDEXES; i++)
		if (index_copies[i].used && index_copies[i].complete)
		{
			/* insertion sort: queried first, then most recently used first */
			const GpuIndexCopy *c = &index_copies[i];
			int			j = n++;

			while (j > 0 && (order[j - 1]->queried < c->queried ||
							 (order[j - 1]->queried == c->queried &&
							  order[j - 1]->last_used < c->last_used)))
			{
				order[j] = order[j - 1];
				j--;
			}
			order[j] = &index_copies[i];
		}
	n = Min(n, max);
	for (int i = 0; i < n; i++)
	{
		out[i].dbid = order[i]->key.dbid;
		out[i].indexid = order[i]->key.indexid;
		out[i].queried = order[i]->queried;
	}
	return n;
}

/* GpuCopiesGeneration: see gpuserviceint.h */
uint64
GpuCopiesGeneration(void)
{
	return copies_generation;
}

#define GPU_COPIES_HANDLER(f) f
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_COPIES_HANDLER(f) NULL

int
GpuCopiesList(GpuCopyName *out, int max)
{
	return 0;
}

uint64
GpuCopiesGeneration(void)
{
	return 0;
}
#endif							/* CODEVEC_USE_CUDA */

static const GpuRequestKindData copies_kinds[] = {
	{GPU_REQUEST_UPLOAD, "upload", true, GPU_COPIES_HANDLER(UploadRun), NULL, NULL},
	{GPU_REQUEST_APPEND, "append", true, GPU_COPIES_HANDLER(AppendRun), NULL, NULL},
	{GPU_REQUEST_MASK, "mask", true, GPU_COPIES_HANDLER(MaskRun), NULL, NULL},
	{GPU_REQUEST_AUTOTUNE, "autotune", true, GPU_COPIES_HANDLER(AutotuneRun), NULL, NULL},
};

/* GpuCopiesRegister: the request kinds and the device store of this file */
void
GpuCopiesRegister(void)
{
	for (int i = 0; i < lengthof(copies_kinds); i++)
		GpuServiceRegisterKind(&copies_kinds[i]);
#ifdef CODEVEC_USE_CUDA
	GpuServiceRegisterStore(&copies_store);
#endif
}
