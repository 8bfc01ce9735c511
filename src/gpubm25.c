/*
 * gpubm25.c
 *	  The service side of BM25 requests: stores of BM25 posting lists on the
 *	  device (cuda/bm25_device.h) and the keyword top-k over them (issue 21; the
 *	  layout is in gpuservice.h, the backend's side is bm25gpu.c).
 *
 * One store per database (a new one replaces the others: code.bm25_refresh()
 * makes a new postings index), at one generation of its postings: a backend whose TOPK finds no complete store at its snapshot's
 * generation (GPU_STATUS_NOT_LOADED) sends a new one (CREATE, then LOAD in
 * order), which replaces the older; while it does, TOPK for that index
 * answers GPU_STATUS_BUSY and the other backends rank on the CPU. An
 * upload whose sender sent nothing for GPU_BM25_STALL_MS is taken over by
 * the next CREATE (the sender died or gave up); a CREATE of an older
 * generation than a complete store's (a reader of an older snapshot) is
 * refused (BUSY), so the newer store stays. Stores are evicted least
 * recently used first when GPU_BM25_STORES are in use, and a new one must
 * fit codevec.gpu_memory_limit with what the other device stores hold.
 */
#include "postgres.h"

#include "gpuserviceint.h"
#include "utils/timestamp.h"

#ifdef CODEVEC_USE_CUDA
#include "bm25_device.h"

#define GPU_BM25_STORES		8
#define GPU_BM25_STALL_MS	5000

typedef struct GpuBm25Store
{
	bool		used;
	GpuBm25Key	key;
	CodevecCudaBm25 h;
	int64		base;			/* the id of document 0 */
	uint64		npostings;
	uint64		loaded;
	int32		uploader;		/* pid of the sender while loading, else 0 */
	TimestampTz last_used;		/* a TOPK, or the last piece of a load */
} GpuBm25Store;

static GpuBm25Store bm25_stores[GPU_BM25_STORES];

static bool
SameIndex(const GpuBm25Key *a, const GpuBm25Key *b)
{
	return a->dbid == b->dbid && a->indexid == b->indexid;
}

static bool
SameKey(const GpuBm25Key *a, const GpuBm25Key *b)
{
	return SameIndex(a, b) && a->relfilenode == b->relfilenode && a->generation == b->generation;
}

static Size
StoreBytes(const GpuBm25Store *s)
{
	size_t		b = 0;

	if (s->used && s->h != NULL)
		codevec_cuda_bm25_info(s->h, NULL, NULL, NULL, &b);
	return b;
}

/* Device bytes of every store, their number into *count (GpuDeviceStoreData.bytes) */
static Size
Bm25Bytes(int *count)
{
	Size		b = 0;
	int			n = 0;

	for (int i = 0; i < GPU_BM25_STORES; i++)
		if (bm25_stores[i].used)
		{
			b += StoreBytes(&bm25_stores[i]);
			n++;
		}
	if (count)
		*count = n;
	return b;
}

/* What the stores hold on each logical device: all on the first */
static void
Bm25PerDevice(GpuDeviceHeld *held)
{
	held[0].bytes += Bm25Bytes(NULL);
}

static const GpuDeviceStoreData bm25_store = {
	.name = "bm25 postings",
	.counter = GPU_STORE_COUNTS_NONE,
	.bytes = Bm25Bytes,
	.per_device = Bm25PerDevice
};

static void
DropStore(GpuBm25Store *s)
{
	codevec_cuda_bm25_free(s->h);
	memset(s, 0, sizeof(*s));
}

static void
Fail(GpuBm25Request *r, int status, const char *msg)
{
	r->hdr.status = status;
	strlcpy(r->hdr.errmsg, msg, sizeof(r->hdr.errmsg));
}

/* The store of r's index, or NULL */
static GpuBm25Store *
FindIndex(const GpuBm25Request *r)
{
	for (int i = 0; i < GPU_BM25_STORES; i++)
		if (bm25_stores[i].used && SameIndex(&bm25_stores[i].key, &r->key))
			return &bm25_stores[i];
	return NULL;
}

/* Whether store s is being loaded by a live sender other than pid */
static bool
LoadingByOther(const GpuBm25Store *s, int32 pid)
{
	return s->uploader != 0 && s->uploader != pid &&
		!TimestampDifferenceExceeds(s->last_used, GetCurrentTimestamp(), GPU_BM25_STALL_MS);
}

static void
RunCreate(GpuBm25Request *r)
{
	GpuBm25Store *s = FindIndex(r);
	Size		cap = (Size) codevec_gpu_memory_limit_mb * 1024 * 1024;
	const uint64 *start = GpuBm25TermStart(r);
	Size		need;
	int			rc;

	if (s != NULL && LoadingByOther(s, r->uploader))
	{
		Fail(r, GPU_STATUS_BUSY, "another backend is loading these BM25 postings");
		return;
	}
	if (s != NULL && s->uploader == 0 && s->key.generation > r->key.generation)
	{
		/* a reader of an older snapshot: the newer store stays */
		Fail(r, GPU_STATUS_BUSY, "newer BM25 postings are on the device");
		return;
	}
	/* one store a database: the older one (or this sender's own restart),
	 * and those of indexes code.bm25_refresh() dropped, go */
	for (int i = 0; i < GPU_BM25_STORES; i++)
		if (bm25_stores[i].used && bm25_stores[i].key.dbid == r->key.dbid &&
			!LoadingByOther(&bm25_stores[i], r->uploader))
			DropStore(&bm25_stores[i]);
	s = NULL;
	if (r->ndocs < 1 || r->nterms < 1)
	{
		Fail(r, GPU_STATUS_FAILED, "bad BM25 store sizes");
		return;
	}
	/* what cuda/bm25_device.cu allocates: 8 bytes a posting and a document */
	need = (Size) start[r->nterms] * 8 + (Size) r->ndocs * 8 + 65536;
	if (cap > 0 && GpuServiceStoresBytes(&bm25_store) + Bm25Bytes(NULL) + need > cap)
	{
		snprintf(r->hdr.errmsg, sizeof(r->hdr.errmsg),
				 "BM25 postings need %zu MB on the device; codevec.gpu_memory_limit is %d MB",
				 need >> 20, codevec_gpu_memory_limit_mb);
		r->hdr.status = GPU_STATUS_NO_MEMORY;
		return;
	}
	/* a free place, or the least recently used store's */
	for (int i = 0; i < GPU_BM25_STORES && s == NULL; i++)
		if (!bm25_stores[i].used)
			s = &bm25_stores[i];
	if (s == NULL)
	{
		s = &bm25_stores[0];
		for (int i = 1; i < GPU_BM25_STORES; i++)
			if (bm25_stores[i].last_used < s->last_used)
				s = &bm25_stores[i];
		DropStore(s);
	}
	rc = codevec_cuda_bm25_create(r->ndocs, r->nterms, start, &s->h, r->hdr.errmsg,
								  sizeof(r->hdr.errmsg));
	if (rc != CODEVEC_CUDA_OK)
	{
		s->h = NULL;
		r->hdr.status = rc == CODEVEC_CUDA_ERR_NOMEM ? GPU_STATUS_NO_MEMORY : GPU_STATUS_FAILED;
		return;
	}
	s->used = true;
	s->key = r->key;
	s->base = r->base;
	s->npostings = start[r->nterms];
	s->loaded = 0;
	s->uploader = s->npostings > 0 ? r->uploader : 0;
	s->last_used = GetCurrentTimestamp();
	r->hdr.status = 0;
}

static void
RunLoad(GpuBm25Request *r)
{
	GpuBm25Store *s = FindIndex(r);
	int			rc;

	if (s == NULL || !SameKey(&s->key, &r->key) || s->uploader != r->uploader || r->n < 0 ||
		r->first != (int64) s->loaded)
	{
		Fail(r, GPU_STATUS_FAILED, "BM25 postings out of sequence (the store was replaced)");
		return;
	}
	rc = codevec_cuda_bm25_load(s->h, (uint64) r->first, (uint64) r->n, GpuBm25LoadDocs(r),
								GpuBm25LoadImpacts(r), r->hdr.errmsg, sizeof(r->hdr.errmsg));
	if (rc != CODEVEC_CUDA_OK)
	{
		DropStore(s);
		r->hdr.status = rc == CODEVEC_CUDA_ERR_NOMEM ? GPU_STATUS_NO_MEMORY : GPU_STATUS_FAILED;
		return;
	}
	s->loaded += r->n;
	if (s->loaded == s->npostings)
		s->uploader = 0;		/* complete */
	s->last_used = GetCurrentTimestamp();
	r->hdr.status = 0;
}

/*
 * Answer n TOPK requests of one key (Bm25SameGroup) with one batched call:
 * one cooperative launch and one wait for all (cuda/bm25_device.h).
 */
static void
RunTopkGroup(GpuBm25Request **rs, int n)
{
	GpuBm25Store *s = FindIndex(rs[0]);
	uint32		nterms = 0;
	CodevecCudaBm25Query *qs;
	GpuBm25Request **ok;
	uint32	   *terms;
	double	   *idf;
	int			nq = 0,
				total = 0,
				rc;

	if (s != NULL && LoadingByOther(s, 0))
	{
		for (int i = 0; i < n; i++)
			Fail(rs[i], GPU_STATUS_BUSY, "BM25 postings are being loaded");
		return;
	}
	if (s == NULL || s->uploader != 0 || !SameKey(&s->key, &rs[0]->key))
	{
		for (int i = 0; i < n; i++)
			Fail(rs[i], GPU_STATUS_NOT_LOADED, "no current BM25 postings on the device");
		return;
	}
	for (int i = 0; i < n; i++)
		total += Max(Min(rs[i]->nt, GPU_BM25_MAX_TERMS), 0);
	qs = malloc(sizeof(CodevecCudaBm25Query) * n);
	ok = malloc(sizeof(GpuBm25Request *) * n);
	terms = malloc(sizeof(uint32) * Max(total, 1));
	idf = malloc(sizeof(double) * Max(total, 1));
	total = 0;
	if (qs == NULL || ok == NULL || terms == NULL || idf == NULL)
	{
		for (int i = 0; i < n; i++)
			Fail(rs[i], GPU_STATUS_FAILED, "out of host memory for a BM25 batch");
		goto done;
	}
	codevec_cuda_bm25_info(s->h, NULL, &nterms, NULL, NULL);
	for (int i = 0; i < n; i++)
	{
		GpuBm25Request *r = rs[i];
		CodevecCudaBm25Query *q = &qs[nq];

		if (r->k < 1 || r->k > GPU_BM25_MAX_K || r->nt < 0 || r->nt > GPU_BM25_MAX_TERMS)
		{
			Fail(r, GPU_STATUS_FAILED, "bad BM25 top-k request");
			continue;
		}
		/* a term past the store's has no postings in it: left out (the sums do not change) */
		q->nt = 0;
		q->terms = terms + total;
		q->idf = idf + total;
		for (int j = 0; j < r->nt; j++)
			if (GpuBm25Terms(r)[j] < nterms)
			{
				((uint32 *) q->terms)[q->nt] = GpuBm25Terms(r)[j];
				((double *) q->idf)[q->nt] = GpuBm25Idf(r)[j];
				q->nt++;
			}
		total += q->nt;
		q->k = r->k;
		q->docs_out = GpuBm25Docs(r);
		q->scores_out = GpuBm25Scores(r);
		q->nout = &r->nout;
		ok[nq++] = r;
	}
	if (nq == 0)
		goto done;
	rc = codevec_cuda_bm25_topk_batch(s->h, qs, nq, ok[0]->hdr.errmsg, sizeof(ok[0]->hdr.errmsg));
	for (int i = 0; i < nq; i++)
	{
		if (rc != CODEVEC_CUDA_OK)
		{
			if (i > 0)
				strlcpy(ok[i]->hdr.errmsg, ok[0]->hdr.errmsg, sizeof(ok[i]->hdr.errmsg));
			ok[i]->hdr.status = rc == CODEVEC_CUDA_ERR_NOMEM ? GPU_STATUS_NO_MEMORY : GPU_STATUS_FAILED;
			continue;
		}
		ok[i]->base = s->base;
		ok[i]->hdr.status = 0;
	}
	s->last_used = GetCurrentTimestamp();
done:
	free(qs);
	free(ok);
	free(terms);
	free(idf);
}

/* TOPK requests of one store share a batch; every other request runs alone */
static bool
Bm25SameGroup(const GpuRequestHeader *a, const GpuRequestHeader *b)
{
	const GpuBm25Request *x = (const GpuBm25Request *) a,
			   *y = (const GpuBm25Request *) b;

	return a == b || (x->op == GPU_BM25_TOPK && y->op == GPU_BM25_TOPK && SameKey(&x->key, &y->key));
}

/*
 * A group (Bm25SameGroup): its TOPK requests in one batch, or its one
 * CREATE or LOAD. Synchronous on the store's own stream and buffers, so it
 * may run beside the k-NN groups started on the device (beside_started).
 */
static void
Bm25RunGroup(GpuRequestHeader **reqs, int n)
{
	GpuBm25Request *r = (GpuBm25Request *) reqs[0];

	switch (r->op)
	{
		case GPU_BM25_CREATE:
			RunCreate(r);
			break;
		case GPU_BM25_LOAD:
			RunLoad(r);
			break;
		case GPU_BM25_TOPK:
			RunTopkGroup((GpuBm25Request **) reqs, n);
			break;
		default:
			Fail(r, GPU_STATUS_FAILED, "unknown BM25 request");
	}
}

#define GPU_BM25_SAME Bm25SameGroup
#define GPU_BM25_GROUP Bm25RunGroup
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_BM25_SAME NULL
#define GPU_BM25_GROUP NULL
#endif							/* CODEVEC_USE_CUDA */

static const GpuRequestKindData bm25_kind = {
	.kind = GPU_REQUEST_BM25,
	.name = "bm25",
	.needs_device = true,
	.same_group = GPU_BM25_SAME,
	.run_group = GPU_BM25_GROUP,
	.beside_started = true
};

/* GpuBm25Register: the request kind of this file, and its device store */
void
GpuBm25Register(void)
{
	GpuServiceRegisterKind(&bm25_kind);
#ifdef CODEVEC_USE_CUDA
	GpuServiceRegisterStore(&bm25_store);
#endif
}
