/*
 * gpuembed.c
 *	  embed() on the GPU: the EMBED request of the GPU service, both sides.
 *
 * Backend side (CodevecGpuEmbed): the backend tokenizes on its CPU, writes
 * the token ids into the dynamic shared memory segment it keeps for the
 * session (CodevecGpuSessionSegment), posts it to the service
 * (CodevecGpuCall) and copies the embeddings out of the answer.
 *
 * Service side (EmbedRunGroup, registered by GpuEmbedRegister as the EMBED
 * kind and the device store of models): the encoder's CUDA code needs cuBLASLt,
 * which CUDA 13 ships only as a shared library; codevec.so must load on
 * machines without any CUDA library, so the encoder lives in its own shared
 * object, $libdir/codevec_cuda_encoder.so (cuda/encoder.cu, built by the
 * Makefile when nvcc is found), which only the service opens, with dlopen,
 * the first time someone embeds.  When it cannot be opened (no cuBLASLt on
 * the machine) EMBED requests are answered GPU_STATUS_UNAVAILABLE and
 * backends use their CPU encoder (codevec.device = auto) or fail (cuda).
 *
 * The service keeps up to GPU_MAX_MODELS models on the device (fp16
 * weights, see cuda/ENCODER.md), keyed by folder and reloaded when the
 * folder's model.safetensors changes (size or mtime); least recently used
 * ones are dropped first.  All EMBED requests for one model that the
 * service collected together run as one encoder call (the encoder packs
 * the sequences, so one short query and a batch of long snippets share
 * launches without padding); a sequence's embedding does not depend on
 * what it was batched with (cuda/encoder.h), so embed(text) and
 * embed(text[]) agree bit for bit.  With double buffering (gpuloop.c) a
 * group that fits one launch is started (codevec_cuda_encode_start) and
 * answered when the device is done, so the service's thread goes on
 * collecting and issuing meanwhile; a larger one (the loader's batches)
 * runs synchronously.  A model with calls in flight is never dropped: a
 * changed folder is reloaded beside it and the old copy dropped after.
 */
#include "postgres.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include "miscadmin.h"
#include "storage/dsm.h"
#include "utils/timestamp.h"

#include "gpuserviceint.h"
#include "model.h"

#ifdef CODEVEC_USE_CUDA
#include "model_cuda.h"
#endif

/* ---------------------------------------------------------------------
 * Service side
 * --------------------------------------------------------------------- */

#ifdef CODEVEC_USE_CUDA

#define GPU_MAX_MODELS			4
#define CUDA_ENCODER_LIBRARY	"codevec_cuda_encoder.so"

/* The encoder library's entry points (cuda/encoder.h), found by dlsym */
typedef struct EncoderApi
{
	void	   *handle;
	int			(*use_device) (int, char *, size_t);
	int			(*create) (const CodevecCudaEncoderConfig *, const CodevecCudaEncoderWeights *,
						   CodevecCudaEncoder *, char *, size_t);
	int			(*encode) (CodevecCudaEncoder, int, const int32_t *const *, const int *,
						   float *, char *, size_t);
	void		(*release) (CodevecCudaEncoder);
	int			(*info) (CodevecCudaEncoder, CodevecCudaEncoderInfo *);
	/* encodes started and finished later (NULL: a library without them) */
	int			(*encode_start) (CodevecCudaEncoder, int, const int32_t *const *, const int *,
								 int *, char *, size_t);
	int			(*encode_ready) (CodevecCudaEncoder, int);
	int			(*encode_finish) (CodevecCudaEncoder, int, float *, char *, size_t);
} EncoderApi;

static EncoderApi api;
static bool api_tried = false;
static char api_error[256] = "";

/* A model on the device */
typedef struct GpuModel
{
	bool		used;
	char		path[MAXPGPATH];
	off_t		file_size;		/* model.safetensors' size and mtime when loaded */
	time_t		file_mtime;
	int			hidden;
	int			vocab_size;
	int			max_positions;
	Size		device_bytes;	/* weights + work buffers */
	TimestampTz last_used;
	CodevecCudaEncoder enc;
	int			inflight;		/* groups started on it and not finished: it
								 * is not dropped before they are */
	bool		stale;			/* its folder changed while groups were in
								 * flight: dropped after the last one */
} GpuModel;

static GpuModel models[GPU_MAX_MODELS];

/* Open codevec_cuda_encoder.so once; false (api_error says why) if not */
static bool
LoadEncoderApi(int device)
{
	char		path[MAXPGPATH];
	char		err[256] = "";

	if (api_tried)
		return api.handle != NULL;
	api_tried = true;
	snprintf(path, sizeof(path), "%s/%s", pkglib_path, CUDA_ENCODER_LIBRARY);
	api.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (api.handle == NULL)
	{
		snprintf(api_error, sizeof(api_error), "the GPU encoder library could not be loaded: %s",
				 dlerror());
		return false;
	}
	api.use_device = dlsym(api.handle, "codevec_cuda_encoder_use_device");
	api.create = dlsym(api.handle, "codevec_cuda_encoder_create");
	api.encode = dlsym(api.handle, "codevec_cuda_encode");
	api.release = dlsym(api.handle, "codevec_cuda_encoder_free");
	api.info = dlsym(api.handle, "codevec_cuda_encoder_info");
	api.encode_start = dlsym(api.handle, "codevec_cuda_encode_start");
	api.encode_ready = dlsym(api.handle, "codevec_cuda_encode_ready");
	api.encode_finish = dlsym(api.handle, "codevec_cuda_encode_finish");
	if (!api.encode_start || !api.encode_ready || !api.encode_finish)
		api.encode_start = NULL;	/* every group runs synchronously */
	if (!api.use_device || !api.create || !api.encode || !api.release || !api.info)
	{
		snprintf(api_error, sizeof(api_error), "\"%s\" lacks the encoder's entry points", path);
		dlclose(api.handle);
		api.handle = NULL;
		return false;
	}
	if (api.use_device(device, err, sizeof(err)) != 0)
	{
		snprintf(api_error, sizeof(api_error), "the GPU encoder could not open device %d: %s",
				 device, err);
		dlclose(api.handle);
		api.handle = NULL;
		return false;
	}
	ereport(LOG, (errmsg("codevec gpu service: loaded the GPU encoder from \"%s\"", path)));
	return true;
}

/*
 * Whether a model was put on the device or dropped since the service's
 * memory figures were last read (cudaMemGetInfo per device): they are read
 * again only then, not at every embed group
 */
static bool models_changed = false;

static void
DropModel(GpuModel *m)
{
	if (m->enc)
		api.release(m->enc);
	memset(m, 0, sizeof(*m));
	models_changed = true;
}

/* codevec_gpu_status()'s memory figures again, if the models changed */
static void
UpdateMemoryStatsIfChanged(void)
{
	if (models_changed)
	{
		models_changed = false;
		GpuServiceUpdateMemoryStats();
	}
}

/* Device bytes the loaded models hold; *nmodels: how many */
static Size
GpuEmbedModelsBytes(int *nmodels)
{
	Size		total = 0;
	int			n = 0;

	for (int i = 0; i < GPU_MAX_MODELS; i++)
		if (models[i].used)
		{
			total += models[i].device_bytes;
			n++;
		}
	if (nmodels)
		*nmodels = n;
	return total;
}

/*
 * The logical device the encoder runs on (-1 until the first EMBED): with
 * several devices, the one with the most free memory then (ties: the one
 * holding least), kept for the service's life since the models live there.
 */
static int	embed_dev = -1;

/* GpuDeviceStoreData.per_device: every model is on embed_dev */
static void
GpuEmbedModelsPerDevice(GpuDeviceHeld *held)
{
	int			n = 0;
	Size		bytes = GpuEmbedModelsBytes(&n);

	if (embed_dev >= 0 && embed_dev < GpuServiceDeviceCount())
	{
		held[embed_dev].bytes += bytes;
		held[embed_dev].models += n;
	}
}

/* Answer every request of a group with the same status and message */
static void
FailGroup(GpuEmbedRequest **group, int ng, int status, int load_status, const char *msg)
{
	for (int j = 0; j < ng; j++)
	{
		group[j]->hdr.status = status;
		group[j]->load_status = load_status;
		strlcpy(group[j]->hdr.errmsg, msg, sizeof(group[j]->hdr.errmsg));
	}
}

/*
 * The model of folder path on the device: the loaded one if its
 * model.safetensors is unchanged, else read it (src/model.c, fp32), copy it
 * to the device (cuda/encoder.cu, fp16) and drop the host copy.  NULL with
 * group answered on failure.
 */
static GpuModel *
GetDeviceModel(GpuEmbedRequest **group, int ng, Size other_bytes)
{
	const char *path = group[0]->model;
	char		file[MAXPGPATH];
	char		err[256] = "";
	struct stat sb;
	GpuModel   *m = NULL;
	CvModel		cm;
	CvStatus	st;
	CodevecCudaEncoderConfig cfg;
	CodevecCudaEncoderWeights w;
	CodevecCudaLayerWeights *lw;
	CodevecCudaEncoderInfo info;
	Size		cap = (Size) codevec_gpu_memory_limit_mb * 1024 * 1024;
	int			rc;

	snprintf(file, sizeof(file), "%s/model.safetensors", path);
	if (stat(file, &sb) != 0)
		memset(&sb, 0, sizeof(sb));		/* cv_model_load reports it */
	for (int i = 0; i < GPU_MAX_MODELS; i++)
		if (models[i].used && !models[i].stale && strcmp(models[i].path, path) == 0)
		{
			if (models[i].file_size == sb.st_size && models[i].file_mtime == sb.st_mtime)
			{
				models[i].last_used = GetCurrentTimestamp();
				return &models[i];
			}
			/* the folder changed: reload (the old copy once nothing runs on it) */
			if (models[i].inflight > 0)
				models[i].stale = true;
			else
				DropModel(&models[i]);
		}

	st = cv_model_load(path, &cm, err, sizeof(err));
	if (st != CV_OK)
	{
		FailGroup(group, ng, GPU_STATUS_MODEL_ERROR, st, err);
		return NULL;
	}
	lw = malloc(sizeof(CodevecCudaLayerWeights) * cm->layers);
	if (lw == NULL)
	{
		cv_model_free(cm);
		FailGroup(group, ng, GPU_STATUS_FAILED, 0, "out of host memory loading the model");
		return NULL;
	}
	cv_model_to_cuda(cm, &cfg, &w, lw);

	/* a free slot, or the least recently used model's among those idle */
	for (int i = 0; i < GPU_MAX_MODELS && m == NULL; i++)
		if (!models[i].used)
			m = &models[i];
	if (m == NULL)
	{
		for (int i = 0; i < GPU_MAX_MODELS; i++)
			if (models[i].inflight == 0 && (m == NULL || models[i].last_used < m->last_used))
				m = &models[i];
		if (m == NULL)
		{
			free(lw);
			cv_model_free(cm);
			FailGroup(group, ng, GPU_STATUS_FAILED, 0,
					  "every model slot of the GPU service has encoder calls in flight");
			return NULL;
		}
		DropModel(m);
	}
	rc = api.create(&cfg, &w, &m->enc, err, sizeof(err));
	free(lw);
	if (rc != 0)
	{
		m->enc = NULL;
		cv_model_free(cm);
		FailGroup(group, ng, rc == CODEVEC_CUDA_ERR_NOMEM ? GPU_STATUS_NO_MEMORY :
				  rc == CODEVEC_CUDA_ERR_UNSUPPORTED ? GPU_STATUS_UNAVAILABLE : GPU_STATUS_FAILED,
				  0, err);
		return NULL;
	}
	api.info(m->enc, &info);
	m->used = true;
	models_changed = true;
	strlcpy(m->path, path, sizeof(m->path));
	m->file_size = sb.st_size;
	m->file_mtime = sb.st_mtime;
	m->hidden = cm->hidden;
	m->vocab_size = cm->vocab_size;
	m->max_positions = cm->max_positions;
	m->device_bytes = info.weight_bytes + info.work_bytes;
	m->last_used = GetCurrentTimestamp();
	cv_model_free(cm);
	if (cap > 0 && other_bytes + GpuEmbedModelsBytes(NULL) > cap)
	{
		snprintf(err, sizeof(err),
				 "the model needs %zu MB on the device; codevec.gpu_memory_limit is %d MB and %zu MB are in use",
				 m->device_bytes >> 20, codevec_gpu_memory_limit_mb,
				 (other_bytes + GpuEmbedModelsBytes(NULL) - m->device_bytes) >> 20);
		DropModel(m);
		FailGroup(group, ng, GPU_STATUS_NO_MEMORY, 0, err);
		return NULL;
	}
	ereport(LOG,
			(errmsg("codevec gpu service: model \"%s\" on the device: %zu MB of weights, %zu MB of work buffers",
					path, info.weight_bytes >> 20, info.work_bytes >> 20)));
	return m;
}

/*
 * A group of EMBED requests for one model, checked and laid out for one
 * encoder call: the requests still to answer (NULL: answered already, a
 * malformed one), every sequence's ids and length, room for the output.
 */
typedef struct GpuEmbedCall
{
	GpuModel   *m;
	GpuEmbedRequest *group[GPU_MAX_SLOTS];
	int			ng;
	int			nreq;			/* requests still to answer */
	int			nseq;
	const int32_t **ids;
	int		   *lens;
	float	   *out;
	int			ticket;			/* a started encoder call, or -1 */
	double		t0;				/* when it was prepared */
} GpuEmbedCall;

static void
EmbedCallFree(GpuEmbedCall *c)
{
	free(c->ids);
	free(c->lens);
	free(c->out);
	free(c);
}

/*
 * Prepare a group's encoder call on device (the model loaded first if need
 * be, within codevec.gpu_memory_limit less other_bytes held by other
 * stores): NULL when every request of it is answered already (a failure,
 * or nothing well formed).
 */
static GpuEmbedCall *
GpuEmbedPrepare(GpuEmbedRequest **group, int ng, int device, Size other_bytes)
{
	GpuEmbedCall *c;
	GpuModel   *m;
	char		err[256] = "";
	int			k;

	Assert(ng <= GPU_MAX_SLOTS);
	if (!LoadEncoderApi(device))
	{
		FailGroup(group, ng, GPU_STATUS_UNAVAILABLE, 0, api_error);
		return NULL;
	}
	/* several devices: another kind may have left its own current */
	if (GpuServiceDeviceCount() > 1 && api.use_device(device, err, sizeof(err)) != 0)
	{
		FailGroup(group, ng, GPU_STATUS_FAILED, 0, err);
		return NULL;
	}
	if ((m = GetDeviceModel(group, ng, other_bytes)) == NULL)
		return NULL;
	c = calloc(1, sizeof(GpuEmbedCall));
	if (c == NULL)
	{
		FailGroup(group, ng, GPU_STATUS_FAILED, 0, "out of host memory in the GPU service");
		return NULL;
	}
	c->m = m;
	c->ng = ng;
	c->ticket = -1;
	c->t0 = GpuServiceNowUs();

	/* check every request against the model: a bad id must not reach a kernel */
	for (int j = 0; j < ng; j++)
	{
		GpuEmbedRequest *r = group[j];
		const int32 *rl = GpuEmbedLens(r);
		const int32 *ri = GpuEmbedIds(r);
		int64		sum = 0;
		bool		ok = r->hidden == m->hidden && r->n >= 1;

		for (int i = 0; ok && i < r->n; i++)
		{
			ok = rl[i] >= 1 && rl[i] <= m->max_positions;
			sum += rl[i];
		}
		ok = ok && sum == r->total;
		for (int64 i = 0; ok && i < r->total; i++)
			ok = ri[i] >= 0 && ri[i] < m->vocab_size;
		if (!ok)
		{
			FailGroup(&r, 1, GPU_STATUS_FAILED, 0,
					  "malformed embed request (hidden size, sequence lengths or token ids do not fit the model)");
			continue;
		}
		c->group[j] = r;
		c->nseq += r->n;
		c->nreq++;
	}
	if (c->nseq == 0)
	{
		EmbedCallFree(c);
		return NULL;
	}

	c->ids = malloc(sizeof(int32_t *) * c->nseq);
	c->lens = malloc(sizeof(int) * c->nseq);
	c->out = malloc(sizeof(float) * (Size) c->nseq * m->hidden);
	if (!c->ids || !c->lens || !c->out)
	{
		for (int j = 0; j < ng; j++)
			if (c->group[j])
				FailGroup(&c->group[j], 1, GPU_STATUS_FAILED, 0, "out of host memory in the GPU service");
		EmbedCallFree(c);
		return NULL;
	}
	k = 0;
	for (int j = 0; j < ng; j++)
	{
		const int32 *rl;
		const int32 *ri;

		if (c->group[j] == NULL)
			continue;
		rl = GpuEmbedLens(c->group[j]);
		ri = GpuEmbedIds(c->group[j]);
		for (int i = 0; i < c->group[j]->n; i++)
		{
			c->ids[k] = (const int32_t *) ri;
			c->lens[k++] = rl[i];
			ri += rl[i];
		}
	}
	return c;
}

/*
 * Answer a prepared call's requests: their embeddings from c->out when rc
 * is 0, else err; then free the call.
 */
static void
GpuEmbedAnswer(GpuEmbedCall *c, int rc, const char *err)
{
	int			k = 0;

	for (int j = 0; j < c->ng; j++)
	{
		GpuEmbedRequest *r = c->group[j];

		if (r == NULL)
			continue;
		if (rc != 0)
			FailGroup(&r, 1, GPU_STATUS_FAILED, 0, err);
		else
		{
			memcpy(GpuEmbedOut(r), c->out + (Size) k * c->m->hidden,
				   sizeof(float) * (Size) r->n * c->m->hidden);
			k += r->n;
			r->hdr.status = 0;
		}
	}
	GpuServiceStageAdd(GPU_STAGE_EMBED, GpuServiceNowUs() - c->t0, c->nreq);
	EmbedCallFree(c);
}

/* Run a prepared call synchronously and answer it */
static void
GpuEmbedRunCall(GpuEmbedCall *c)
{
	char		err[256] = "";
	int			rc;

	rc = api.encode(c->m->enc, c->nseq, c->ids, c->lens, c->out, err, sizeof(err));
	GpuEmbedAnswer(c, rc, err);
}

/* The device (ordinal) the encoder runs on, chosen at the first EMBED */
static int
EmbedDevice(void)
{
	int			ndev = GpuServiceDeviceCount();

	if (embed_dev < 0 || embed_dev >= ndev)
		embed_dev = ndev > 1 ? Max(GpuServicePickDevice(0, NULL), 0) : 0;
	return ndev > 0 ? GpuServiceDeviceOrdinal(embed_dev) : GpuServiceDeviceIndex();
}

static const GpuDeviceStoreData models_store;

/*
 * EMBED requests for the same model run as one encoder call; the other
 * device stores' bytes count against codevec.gpu_memory_limit.
 */
static void
EmbedRunGroup(GpuRequestHeader **reqs, int n)
{
	GpuEmbedCall *c = GpuEmbedPrepare((GpuEmbedRequest **) reqs, n, EmbedDevice(),
									  GpuServiceStoresBytes(&models_store));

	if (c != NULL)
		GpuEmbedRunCall(c);
	UpdateMemoryStatsIfChanged();
}

/*
 * Double buffering (gpuloop.c): the group's encoder call issued on the
 * encoder's stream (codevec_cuda_encode_start) and answered by
 * EmbedFinishGroup, so the loop goes on collecting and issuing while the
 * forward pass runs. A group that needs several launches, or a library
 * without the started calls, runs synchronously here instead (NULL).
 */
static void *
EmbedStartGroup(GpuRequestHeader **reqs, int n)
{
	GpuEmbedCall *c = GpuEmbedPrepare((GpuEmbedRequest **) reqs, n, EmbedDevice(),
									  GpuServiceStoresBytes(&models_store));
	char		err[256] = "";
	int			rc;

	UpdateMemoryStatsIfChanged();
	if (c == NULL)
		return NULL;
	if (api.encode_start == NULL)
	{
		GpuEmbedRunCall(c);
		return NULL;
	}
	rc = api.encode_start(c->m->enc, c->nseq, c->ids, c->lens, &c->ticket, err, sizeof(err));
	GpuServiceStageAdd(GPU_STAGE_EMBED_START, GpuServiceNowUs() - c->t0, c->nreq);
	if (rc != 0)
	{
		GpuEmbedAnswer(c, rc, err);
		return NULL;
	}
	if (c->ticket < 0)
	{
		GpuEmbedRunCall(c);
		return NULL;
	}
	c->m->inflight++;
	return c;
}

static bool
EmbedGroupReady(void *handle)
{
	GpuEmbedCall *c = (GpuEmbedCall *) handle;

	return api.encode_ready(c->m->enc, c->ticket) != 0;
}

static void
EmbedFinishGroup(void *handle)
{
	GpuEmbedCall *c = (GpuEmbedCall *) handle;
	GpuModel   *m = c->m;
	char		err[256] = "";
	int			rc;

	rc = api.encode_finish(m->enc, c->ticket, c->out, err, sizeof(err));
	GpuEmbedAnswer(c, rc, err);
	if (--m->inflight == 0 && m->stale)
	{
		DropModel(m);
		UpdateMemoryStatsIfChanged();
	}
}

static const GpuDeviceStoreData models_store = {
	.name = "encoder models",
	.counter = GPU_STORE_COUNTS_MODELS,
	.bytes = GpuEmbedModelsBytes,
	.per_device = GpuEmbedModelsPerDevice
};

/* EMBED requests for the same model folder run as one encoder call */
static bool
EmbedSameGroup(const GpuRequestHeader *a, const GpuRequestHeader *b)
{
	return strcmp(((const GpuEmbedRequest *) a)->model,
				  ((const GpuEmbedRequest *) b)->model) == 0;
}

#define GPU_EMBED_HANDLER(f) f
#else							/* !CODEVEC_USE_CUDA: the loop answers NO_DEVICE */
#define GPU_EMBED_HANDLER(f) NULL
#endif							/* CODEVEC_USE_CUDA */

/*
 * An embed group reads and writes only its model's device memory and
 * pinned buffers and runs on the encoder's own stream, so it is started
 * while kNN batches (and an embed group of the batch before) are on the
 * device (gpuloop.c); beside_started keeps that true for a group run
 * synchronously.
 */
static const GpuRequestKindData embed_kind = {
	GPU_REQUEST_EMBED, "embed", true, NULL,
	GPU_EMBED_HANDLER(EmbedSameGroup), GPU_EMBED_HANDLER(EmbedRunGroup),
	GPU_EMBED_HANDLER(EmbedStartGroup), GPU_EMBED_HANDLER(EmbedGroupReady),
	GPU_EMBED_HANDLER(EmbedFinishGroup), true
};

/* GpuEmbedRegister: the request kind and the device store of this file */
void
GpuEmbedRegister(void)
{
	GpuServiceRegisterKind(&embed_kind);
#ifdef CODEVEC_USE_CUDA
	GpuServiceRegisterStore(&models_store);
#endif
}

/* ---------------------------------------------------------------------
 * Backend side
 * --------------------------------------------------------------------- */

#define EMBED_MAX_SEQS			4096	/* sequences per request */
#define EMBED_MAX_TOKENS		(1024 * 1024)	/* token ids per request */

int
CodevecGpuEmbed(const char *model_path, int hidden, int n, int32 *const *ids,
				const int *lens, float *out, int *load_status, char *errbuf, Size errlen)
{
	int			i = 0;

	*load_status = 0;
	if (!CodevecGpuServiceUsable())
		return GPU_EMBED_USE_CPU;
	while (i < n)
	{
		int			nb = 0;
		int64		total = 0;
		dsm_segment *seg;
		GpuEmbedRequest *r;
		int32	   *rl,
				   *ri;
		int			st;

		/* a request of at most EMBED_MAX_SEQS sequences and EMBED_MAX_TOKENS ids */
		while (i + nb < n && nb < EMBED_MAX_SEQS &&
			   (nb == 0 || total + lens[i + nb] <= EMBED_MAX_TOKENS))
			total += lens[i + nb++];

		seg = CodevecGpuSessionSegment(GpuEmbedRequestSize(nb, total, hidden));
		r = (GpuEmbedRequest *) dsm_segment_address(seg);
		memset(r, 0, sizeof(GpuEmbedRequest));
		r->hdr.kind = GPU_REQUEST_EMBED;
		r->hdr.payload_size = GpuEmbedRequestSize(nb, total, hidden) - sizeof(GpuRequestHeader);
		strlcpy(r->model, model_path, sizeof(r->model));
		r->n = nb;
		r->hidden = hidden;
		r->total = total;
		rl = GpuEmbedLens(r);
		ri = GpuEmbedIds(r);
		for (int k = 0; k < nb; k++)
		{
			rl[k] = lens[i + k];
			memcpy(ri, ids[i + k], sizeof(int32) * lens[i + k]);
			ri += lens[i + k];
		}

		st = CodevecGpuCall(seg);
		switch (st)
		{
			case 0:
				memcpy(out + (Size) i * hidden, GpuEmbedOut(r), sizeof(float) * (Size) nb * hidden);
				break;
			case GPU_STATUS_MODEL_ERROR:
				*load_status = r->load_status;
				strlcpy(errbuf, r->hdr.errmsg, errlen);
				return GPU_EMBED_MODEL_ERROR;
			case GPU_STATUS_NO_MEMORY:
				CodevecGpuFallback(r->hdr.errmsg, ERRCODE_OUT_OF_MEMORY);
				return GPU_EMBED_USE_CPU;
			default:			/* NO_DEVICE, UNAVAILABLE */
				CodevecGpuFallback(r->hdr.errmsg, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
				return GPU_EMBED_USE_CPU;
		}
		i += nb;
	}
	return GPU_EMBED_DONE;
}
