/*
 * embed.c
 *	  embed(text) -> codevec, embed(text[]) -> codevec[] and
 *	  codevec_model_info(): the CPU encoder (tokenizer.c, model.c,
 *	  encoder.c) behind SQL.
 *
 * The model named by codevec.model is loaded lazily, once per backend, on
 * the first call that needs it, into malloc'd memory that lives as long as
 * the backend (the encoder core is plain C and never palloc's).  When the
 * setting changes, the next call frees the old model before loading the new
 * one, so a backend holds one model at a time.  With codevec in
 * shared_preload_libraries the postmaster loads the configured model first
 * (CodevecEmbedPreload, codevec.preload_model): its weights and int8
 * layers in read-only shared mappings, inherited by every backend, which
 * then never loads that model itself and never frees it.  Nothing in the
 * core raises errors: it returns a status and a message, which become
 * ereport()s here, after every malloc'd buffer of the call has been freed.
 *
 * codevec.model is either an installed model name, resolved under
 * $sharedir/extension/codevec_models/<name> (what `make model` installs;
 * "default" is a link to the default model), or a folder path (anything
 * with a '/').  Reading an arbitrary server folder is a file-reading
 * capability, so a path needs superuser or pg_read_server_files; installed
 * names are open to everyone.
 */
#include "postgres.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "vector.h"
#include "embed.h"
#include "encoder.h"
#include "gpuservice.h"
#include "model.h"
#include "qlinear.h"
#include "tokenizer.h"

static char *codevec_model_setting = NULL;
static int	codevec_max_tokens = CODEVEC_DEFAULT_MAX_TOKENS;
static int	codevec_cpu_precision = CODEVEC_DEFAULT_CPU_PRECISION;
static bool codevec_preload_model = true;

static const struct config_enum_entry cpu_precision_options[] = {
	{"fp32", CV_PRECISION_FP32, false},
	{"int8", CV_PRECISION_INT8, false},
	{NULL, 0, false}
};

/* why int8 cannot run in this process ("" until tried or when it can) */
static char int8_unavailable[256] = "";

/* The loaded model, and the setting and resolved folder it came from */
static CvModel loaded_model = NULL;
static char *loaded_setting = NULL;
static char *loaded_path = NULL;
static char loaded_sha256[65] = "";

/* Define the GUCs codevec.model, codevec.max_tokens and codevec.cpu_precision; called by _PG_init. */
void
CodevecEmbedInit(void)
{
	DefineCustomStringVariable("codevec.model",
							   "Encoder model used by embed(): an installed model name or a folder path.",
							   "A name is looked up under $sharedir/extension/codevec_models; "
							   "anything containing a slash is a Hugging Face / sentence-transformers "
							   "folder (config.json, vocab.txt, model.safetensors, modules.json).",
							   &codevec_model_setting,
							   CODEVEC_DEFAULT_MODEL,
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("codevec.max_tokens",
							"Token budget of embed(), [CLS] and [SEP] included; longer text is truncated.",
							"Must not exceed the model's max_position_embeddings.",
							&codevec_max_tokens,
							CODEVEC_DEFAULT_MAX_TOKENS,
							CODEVEC_MIN_MAX_TOKENS,
							CODEVEC_MAX_MAX_TOKENS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("codevec.cpu_precision",
							 "Arithmetic of embed()'s linear layers on the CPU: fp32 or int8.",
							 "int8 quantizes weights per output channel and activations per row and "
							 "runs integer GEMMs through oneDNN (AMX or VNNI); CPUs without those "
							 "instructions, or without libdnnl2, use fp32.",
							 &codevec_cpu_precision,
							 CODEVEC_DEFAULT_CPU_PRECISION,
							 cpu_precision_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * Only where the postmaster loads the library: a backend that loads it
	 * itself has nothing to preload, and on PostgreSQL 15 every GUC defined
	 * costs each such backend a sort of all GUCs (about 0.09 ms here).
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomBoolVariable("codevec.preload_model",
								 "Load embed()'s model in the postmaster, so that backends inherit it.",
								 "With codevec in shared_preload_libraries, the model codevec.model names "
								 "is read, quantized (codevec.cpu_precision = int8) and run once when the "
								 "server starts; every backend then shares those pages instead of "
								 "loading the model on its first embed() (about 0.2 s of CPU). "
								 "Skipped when codevec.device is cuda.",
								 &codevec_preload_model,
								 true,
								 PGC_POSTMASTER,
								 0,
								 NULL, NULL, NULL);
}

/*
 * Set m->precision from codevec.cpu_precision, quantizing the model on the
 * first int8 call.  Where int8 cannot run (no AMX/VNNI, no libdnnl2) the
 * encoder stays on fp32 and codevec_model_info() says why; running out of
 * memory while quantizing is an error.
 */
static void
ApplyCpuPrecision(CvModel m)
{
	char		err[256];
	CvStatus	st;

	m->precision = CV_PRECISION_FP32;
	if (codevec_cpu_precision != CV_PRECISION_INT8 || int8_unavailable[0] != '\0')
		return;
	if (m->int8 == NULL)
	{
		st = cv_qlinear_attach(m, err, sizeof(err));
		if (st == CV_ERR_UNSUPPORTED)
		{
			strlcpy(int8_unavailable, err, sizeof(int8_unavailable));
			return;
		}
		if (st != CV_OK)
			ereport(ERROR,
					(errcode(st == CV_ERR_NOMEM ? ERRCODE_OUT_OF_MEMORY : ERRCODE_INTERNAL_ERROR),
					 errmsg("could not quantize model \"%s\" to int8: %s", m->name, err)));
	}
	m->precision = CV_PRECISION_INT8;
}

/*
 * The model the postmaster preloaded (CodevecEmbedPreload), inherited by
 * every backend: never freed here (its weights are a shared mapping that
 * costs a backend nothing while untouched), used again whenever
 * codevec.model names it.
 */
static CvModel preloaded_model = NULL;
static char *preloaded_setting = NULL;
static char *preloaded_path = NULL;

/* Free the loaded model (unless it is the preloaded one) and what describes it. */
static void
UnloadModel(void)
{
	if (loaded_model != preloaded_model)
		cv_model_free(loaded_model);
	free(loaded_setting);
	free(loaded_path);
	loaded_model = NULL;
	loaded_setting = NULL;
	loaded_path = NULL;
	loaded_sha256[0] = '\0';
}

/* The characters an installed model name may contain (not first a ".") */
#define MODEL_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

typedef enum ModelSettingKind
{
	MODEL_SETTING_NAME,			/* an installed name: buf holds its folder */
	MODEL_SETTING_PATH,			/* a folder path (contains "/") */
	MODEL_SETTING_EMPTY,
	MODEL_SETTING_INVALID		/* a name with other characters, or a leading "." */
} ModelSettingKind;

/*
 * What codevec.model names, without raising errors (the postmaster's
 * preload calls it too): for an installed name, its folder under the share
 * directory into buf (len bytes).
 */
static ModelSettingKind
ClassifyModelSetting(const char *setting, char *buf, size_t len)
{
	char		share[MAXPGPATH];

	if (setting == NULL || setting[0] == '\0')
		return MODEL_SETTING_EMPTY;
	if (strchr(setting, '/') != NULL)
		return MODEL_SETTING_PATH;
	if (setting[0] == '.' || strspn(setting, MODEL_NAME_CHARS) != strlen(setting))
		return MODEL_SETTING_INVALID;
	get_share_path(my_exec_path, share);
	snprintf(buf, len, "%s/%s/%s", share, CODEVEC_MODELS_SUBDIR, setting);
	return MODEL_SETTING_NAME;
}

/*
 * Resolve codevec.model to a folder path (palloc'd): an installed name under
 * the share directory, or a path, which needs file-reading privileges.
 */
static char *
ResolveModelPath(const char *setting)
{
	char		folder[MAXPGPATH];

	switch (ClassifyModelSetting(setting, folder, sizeof(folder)))
	{
		case MODEL_SETTING_NAME:
			break;
		case MODEL_SETTING_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("codevec.model is empty"),
					 errhint("Set it to an installed model name such as \"default\" or to a model folder.")));
			break;
		case MODEL_SETTING_PATH:
			if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to load a model from folder \"%s\"", setting),
						 errdetail("Only roles with privileges of the \"pg_read_server_files\" role may set codevec.model to a path."),
						 errhint("Use an installed model name instead.")));
			return pstrdup(setting);
		case MODEL_SETTING_INVALID:
			if (strspn(setting, MODEL_NAME_CHARS) != strlen(setting))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid model name \"%s\"", setting),
						 errdetail("An installed model name may contain only letters, digits, \"-\", \"_\" and \".\".")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid model name \"%s\"", setting)));
			break;
	}
	return pstrdup(folder);
}

/*
 * Preload: see CodevecEmbedPreload.  Resolve codevec.model as
 * ResolveModelPath does, without raising errors (the postmaster must not;
 * a path is the server's own setting here, so no role is checked): into
 * buf, false with the reason in err when it names nothing.
 */
static bool
PreloadModelPath(const char *setting, char *buf, size_t len, char *err, size_t errlen)
{
	switch (ClassifyModelSetting(setting, buf, len))
	{
		case MODEL_SETTING_NAME:
			return true;
		case MODEL_SETTING_PATH:
			strlcpy(buf, setting, len);
			return true;
		case MODEL_SETTING_EMPTY:
			snprintf(err, errlen, "codevec.model is empty");
			return false;
		case MODEL_SETTING_INVALID:
			break;
	}
	snprintf(err, errlen, "invalid model name");
	return false;
}

/*
 * Encode a made-up sequence of len tokens with the model as it is, so that
 * the oneDNN primitives of that row bucket exist before the fork.
 */
static CvStatus
PreloadWarmUp(CvModel m, int len, char *err, size_t errlen)
{
	int32_t		ids[64];
	float	   *out = malloc(sizeof(float) * m->hidden);
	const int32_t *seq = ids;
	CvStatus	st;

	if (out == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return CV_ERR_NOMEM;
	}
	len = Min(Min(len, (int) lengthof(ids)), m->max_positions);
	for (int i = 0; i < len; i++)
		ids[i] = (m->vocab_size > 2000 ? 1000 + 37 * i : i) % m->vocab_size;
	ids[0] = m->tok->cls_id;
	ids[len - 1] = m->tok->sep_id;
	st = cv_encode(m, 1, &seq, &len, out, NULL, err, errlen);
	free(out);
	return st;
}

/*
 * CodevecEmbedPreload: called by _PG_init last, when the postmaster loads
 * the library (shared_preload_libraries) and codevec.preload_model is on:
 * load the model codevec.model names now, with its fp32 weights, attach
 * the int8 layers when codevec.cpu_precision is int8 (calibration,
 * quantization, oneDNN's weight layout) and encode two short made-up
 * queries (the oneDNN primitives a query's 16- and 32-row buckets use on
 * one thread).  The fp32 weights live in a read-only mapping of huge pages
 * where the kernel gives them (cv_model_share_weights, cv_map_for_children:
 * fork() copies one entry per 2 MB and a child reads them without a page
 * fault), else in an anonymous MAP_SHARED mapping, as the int8 layers do
 * (cv_qlinear_share), whose page table entries fork() does not copy: only
 * the small rest (tokenizer, oneDNN's objects) is private memory the
 * children inherit.
 * Every backend forked afterwards starts with loaded_model set: a
 * session's first embed() costs what its later ones do instead of ~0.2 s
 * of CPU and ~110 MB of its own memory (bench/keyword/README.md).
 *
 * Nothing here may raise an error (it would stop the postmaster): a model
 * that cannot be loaded is logged and left to the backends, which load it
 * on first use and report the error as before.  OpenMP stays on one thread
 * here (cv_int8_omp_threads) so that libgomp has no pool for the children
 * to inherit half of; OpenBLAS, which starts its threads when opened,
 * stops them itself before every fork (its pthread_atfork handler), and
 * the warm-up leaves it set to one thread (src/blas.c applies a thread
 * count only at the GEMM that needs it), so a child starts a pool of its
 * own only for GEMMs that run on several threads (batches), never for a
 * query.
 */
void
CodevecEmbedPreload(void)
{
	const char *setting = codevec_model_setting ? codevec_model_setting : CODEVEC_DEFAULT_MODEL;
	char		path[MAXPGPATH];
	char		real[PATH_MAX];
	char		err[1024];
	CvModel		m = NULL;
	CvStatus	st;
	instr_time	start,
				took;
	int			omp_saved = 0;
	const char *precision = "fp32";

	if (!process_shared_preload_libraries_in_progress || !codevec_preload_model ||
		codevec_device == CODEVEC_DEVICE_CUDA || preloaded_model != NULL)
		return;
	INSTR_TIME_SET_CURRENT(start);
	if (!PreloadModelPath(setting, path, sizeof(path), err, sizeof(err)))
		goto fail;
	if (realpath(path, real) == NULL)
	{
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((st = cv_model_load_ex(real, 0, &m, err, sizeof(err))) != CV_OK ||
		(st = cv_model_share_weights(m, err, sizeof(err))) != CV_OK)
		goto fail;
	if (m->hidden > CODEVEC_MAX_DIM)
	{
		snprintf(err, sizeof(err), "hidden_size %d is more than codevec's %d dimensions",
				 m->hidden, CODEVEC_MAX_DIM);
		goto fail;
	}
	if (codevec_cpu_precision == CV_PRECISION_INT8)
	{
		char		why[256];

		omp_saved = cv_int8_omp_threads(1);
		st = cv_qlinear_attach(m, why, sizeof(why));
		if (st == CV_ERR_UNSUPPORTED)
			strlcpy(int8_unavailable, why, sizeof(int8_unavailable));
		else if (st != CV_OK)
		{
			snprintf(err, sizeof(err), "could not quantize it to int8: %s", why);
			goto fail;
		}
		else if ((st = cv_qlinear_share(m, err, sizeof(err))) != CV_OK)
			goto fail;
		else
		{
			m->precision = CV_PRECISION_INT8;
			precision = "int8";
		}
	}
	if ((st = PreloadWarmUp(m, 12, err, sizeof(err))) != CV_OK ||
		(st = PreloadWarmUp(m, 28, err, sizeof(err))) != CV_OK)
		goto fail;
	if (omp_saved > 0)
		cv_int8_omp_threads(omp_saved);
	preloaded_setting = strdup(setting);
	preloaded_path = strdup(real);
	loaded_setting = strdup(setting);
	loaded_path = strdup(real);
	if (!preloaded_setting || !preloaded_path || !loaded_setting || !loaded_path)
	{
		snprintf(err, sizeof(err), "out of memory");
		free(preloaded_setting);
		free(preloaded_path);
		preloaded_setting = preloaded_path = NULL;
		UnloadModel();			/* loaded_model is still NULL: frees the two strings */
		goto fail;
	}
	preloaded_model = loaded_model = m;
	INSTR_TIME_SET_CURRENT(took);
	INSTR_TIME_SUBTRACT(took, start);
	ereport(LOG,
			(errmsg("codevec: model \"%s\" preloaded for embed() on the CPU (%s, %zu MB) in %.0f ms",
					setting, precision, (m->weight_bytes + m->int8_bytes) >> 20,
					INSTR_TIME_GET_MILLISEC(took))));
	return;

fail:
	if (omp_saved > 0)
		cv_int8_omp_threads(omp_saved);
	cv_model_free(m);
	ereport(LOG,
			(errmsg("codevec: could not preload model \"%s\": %s", setting, err),
			 errdetail("Backends load it on their first embed() instead.")));
}

/* Raise the error a failed cv_model_load() stands for. */
static void
ReportLoadError(CvStatus st, const char *setting, const char *path, const char *msg)
{
	int			code;

	switch (st)
	{
		case CV_ERR_NOT_FOUND:
			code = ERRCODE_UNDEFINED_FILE;
			break;
		case CV_ERR_CORRUPT:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case CV_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case CV_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case CV_ERR_INVALID:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		default:
			code = ERRCODE_IO_ERROR;
			break;
	}
	if (st == CV_ERR_NOT_FOUND)
		ereport(ERROR,
				(errcode(code),
				 errmsg("could not load codevec model \"%s\": %s", setting, msg),
				 errdetail("codevec.model resolved to \"%s\".", path),
				 errhint("Run \"make model\" to install the default model, or set codevec.model to a folder holding config.json, vocab.txt and model.safetensors.")));
	ereport(ERROR,
			(errcode(code),
			 errmsg("could not load codevec model \"%s\": %s", setting, msg),
			 errdetail("codevec.model resolved to \"%s\".", path)));
}

/*
 * Return the model codevec.model names, loading it on first use or change.
 * With weights false the tokenizer and config are enough (the GPU service
 * runs the model): the weights are not read, and are read later if a call
 * needs them.
 */
static CvModel
GetModel(bool weights)
{
	const char *setting = codevec_model_setting ? codevec_model_setting : CODEVEC_DEFAULT_MODEL;
	char	   *path;
	char		real[PATH_MAX];
	char		err[1024];
	CvModel		m;
	CvStatus	st;

	if (loaded_model != NULL && strcmp(loaded_setting, setting) == 0 &&
		(!weights || loaded_model->block != NULL))
		return loaded_model;

	/* one model per backend: drop the old one before reading the new */
	UnloadModel();
	if (preloaded_model != NULL && strcmp(preloaded_setting, setting) == 0)
	{
		loaded_model = preloaded_model;
		loaded_setting = strdup(preloaded_setting);
		loaded_path = strdup(preloaded_path);
		if (!loaded_setting || !loaded_path)
		{
			UnloadModel();
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		return loaded_model;
	}
	path = ResolveModelPath(setting);
	if (realpath(path, real) == NULL)
		ReportLoadError(CV_ERR_NOT_FOUND, setting, path,
						strchr(setting, '/') ? "the folder does not exist" :
						"no installed model of that name");
	st = cv_model_load_ex(real, weights ? 0 : CV_MODEL_NO_WEIGHTS, &m, err, sizeof(err));
	if (st != CV_OK)
		ReportLoadError(st, setting, path, err);
	if (m->hidden > CODEVEC_MAX_DIM)
	{
		cv_model_free(m);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has hidden_size %d, more than codevec's %d dimensions",
						setting, m->hidden, CODEVEC_MAX_DIM)));
	}
	loaded_setting = strdup(setting);
	loaded_path = strdup(real);
	if (!loaded_setting || !loaded_path)
	{
		cv_model_free(m);
		UnloadModel();
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	loaded_model = m;
	return m;
}

/* Check codevec.max_tokens against the model and return it. */
static int
MaxTokens(CvModel m)
{
	if (codevec_max_tokens > m->max_positions)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("codevec.max_tokens (%d) exceeds max_position_embeddings (%d) of model \"%s\"",
						codevec_max_tokens, m->max_positions, m->name)));
	return codevec_max_tokens;
}

/*
 * Tokenize one text value into a palloc'd id array ([CLS] ... [SEP]),
 * converting it to UTF-8 first when the database encoding is not.
 */
static int32 *
TokenizeText(CvModel m, text *t, int max_tokens, int *len)
{
	char	   *s = VARDATA_ANY(t);
	int			slen = VARSIZE_ANY_EXHDR(t);
	int32_t    *ids;
	int32	   *copy;
	CvTokStatus st;

	if (GetDatabaseEncoding() != PG_UTF8)
	{
		s = (char *) pg_do_encoding_conversion((unsigned char *) s, slen,
											   GetDatabaseEncoding(), PG_UTF8);
		slen = strlen(s);
	}
	st = cv_tokenize(m->tok, s, slen, max_tokens, &ids, len);
	if (st != CV_TOK_OK)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory tokenizing text")));
	/* move to palloc so that no later error can leak the malloc'd ids */
	copy = palloc(sizeof(int32) * *len);
	memcpy(copy, ids, sizeof(int32) * *len);
	free(ids);
	return copy;
}

/*
 * Run the encoder on n sequences into out (n x hidden), raising on failure:
 * on the GPU service when codevec.device allows and it can, else on this
 * backend's CPU (reading the weights first if only the tokenizer was
 * loaded).  m may be replaced by the model with weights; the caller must
 * use *mp afterwards.
 */
static void
Encode(CvModel *mp, int n, int32 **ids, int *lens, float *out)
{
	CvModel		m = *mp;
	char		err[256];
	CvStatus	st;

	if (codevec_device != CODEVEC_DEVICE_CPU)
	{
		int			load_status;

		switch (CodevecGpuEmbed(loaded_path, m->hidden, n, ids, lens, out,
								&load_status, err, sizeof(err)))
		{
			case GPU_EMBED_DONE:
				return;
			case GPU_EMBED_MODEL_ERROR:
				ReportLoadError((CvStatus) load_status, loaded_setting, loaded_path, err);
				break;
			default:
				break;
		}
	}
	if (m->block == NULL)
		*mp = m = GetModel(true);
	ApplyCpuPrecision(m);
	for (int i = 0; i < n; i += CODEVEC_EMBED_BATCH)
	{
		int			nb = Min(CODEVEC_EMBED_BATCH, n - i);

		CHECK_FOR_INTERRUPTS();
		st = cv_encode(m, nb, (const int32_t *const *) (ids + i), lens + i,
					   out + (size_t) i * m->hidden, NULL, err, sizeof(err));
		if (st == CV_ERR_NOMEM)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory in the encoder: %s", err)));
		if (st != CV_OK)
			elog(ERROR, "encoder failed: %s", err);
	}
}

/* Whether embed() should plan for the GPU service (no CPU weights needed) */
static bool
WantGpu(void)
{
	return codevec_device != CODEVEC_DEVICE_CPU && CodevecGpuServiceReady();
}

/* Build a codevec from hidden floats. */
static Codevec *
MakeCodevec(const float *x, int dim)
{
	Codevec    *v = InitCodevec(dim);

	memcpy(v->x, x, sizeof(float4) * dim);
	return v;
}

PG_FUNCTION_INFO_V1(embed);
/*
 * embed(text) -> codevec: the model's embedding of one text (hidden_size
 * dims, unit length when the model normalizes); text past codevec.max_tokens
 * tokens is truncated.  Runs on the GPU service when codevec.device is auto
 * (and the service is ready) or cuda, else on this backend's CPU.
 */
Datum
embed(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	CvModel		m = GetModel(!WantGpu());
	int			len;
	int32	   *ids = TokenizeText(m, t, MaxTokens(m), &len);
	float	   *out = palloc(sizeof(float) * m->hidden);

	Encode(&m, 1, &ids, &len, out);
	PG_RETURN_CODEVEC_P(MakeCodevec(out, m->hidden));
}

PG_FUNCTION_INFO_V1(embed_array);
/*
 * embed(text[]) -> codevec[]: embed every element: the GPU service gets
 * them all (in requests of up to 4096 sequences), the CPU encoder batches
 * of CODEVEC_EMBED_BATCH; NULL elements give NULL, the result has the
 * input's dimensions and bounds.  Each element's embedding is what
 * embed(text) gives for it.
 */
Datum
embed_array(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Oid			rettype = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			elemtype = OidIsValid(rettype) ? get_element_type(rettype) : InvalidOid;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				nn = 0,
				i;
	Datum	   *results;
	CvModel		m;
	int			max_tokens;
	int32	  **ids;
	int		   *lens;
	int		   *which;
	float	   *out;

	if (!OidIsValid(elemtype))
		elog(ERROR, "embed(text[]) could not determine its result type");
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(elemtype));

	m = GetModel(!WantGpu());
	max_tokens = MaxTokens(m);
	results = palloc0(sizeof(Datum) * n);
	ids = palloc(sizeof(int32 *) * n);
	lens = palloc(sizeof(int) * n);
	which = palloc(sizeof(int) * n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if ((i & 255) == 0)
			CHECK_FOR_INTERRUPTS();
		ids[nn] = TokenizeText(m, DatumGetTextPP(elems[i]), max_tokens, &lens[nn]);
		which[nn++] = i;
	}
	if (nn > 0)
	{
		out = palloc_extended(sizeof(float) * (Size) m->hidden * nn, MCXT_ALLOC_HUGE);
		Encode(&m, nn, ids, lens, out);
		for (i = 0; i < nn; i++)
		{
			results[which[i]] = PointerGetDatum(MakeCodevec(out + (size_t) i * m->hidden, m->hidden));
			pfree(ids[i]);
		}
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(results, nulls, ARR_NDIM(arr), ARR_DIMS(arr),
											 ARR_LBOUND(arr), elemtype, typlen, typbyval,
											 typalign));
}

PG_FUNCTION_INFO_V1(codevec_tokenize);
/*
 * codevec_tokenize(text) -> int[]: the token ids embed(text) would encode:
 * [CLS] ... [SEP], truncated to codevec.max_tokens.  Needs only the
 * model's tokenizer (its weights are not read for this).
 */
Datum
codevec_tokenize(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	CvModel		m = GetModel(false);
	int			len;
	int32	   *ids = TokenizeText(m, t, MaxTokens(m), &len);
	Datum	   *elems = palloc(sizeof(Datum) * len);

	for (int i = 0; i < len; i++)
		elems[i] = Int32GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, len, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/* Compute the sha256 of the loaded model's model.safetensors, once. */
static const char *
ModelSha256(void)
{
	pg_cryptohash_ctx *ctx;
	uint8		digest[32];
	char	   *path;
	FILE	   *f;
	char	   *buf;
	size_t		got;
	int			i;

	if (loaded_sha256[0])
		return loaded_sha256;
	path = psprintf("%s/model.safetensors", loaded_path);
	f = AllocateFile(path, PG_BINARY_R);
	if (!f)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256 context");
	buf = palloc(1024 * 1024);
	while ((got = fread(buf, 1, 1024 * 1024, f)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (pg_cryptohash_update(ctx, (uint8 *) buf, got) < 0)
			elog(ERROR, "could not update SHA-256 context");
	}
	if (ferror(f))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	FreeFile(f);
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not finalize SHA-256 context");
	pg_cryptohash_free(ctx);
	for (i = 0; i < 32; i++)
		snprintf(loaded_sha256 + 2 * i, 3, "%02x", digest[i]);
	pfree(buf);
	return loaded_sha256;
}

PG_FUNCTION_INFO_V1(codevec_model_info);
/*
 * codevec_model_info(): one row describing the model embed() uses now,
 * loading it if needed: name, dims, layers, heads, pooling, normalize,
 * max_tokens (codevec.max_tokens), max_positions, vocab_size, the weights'
 * stored dtype, the folder it was read from, model.safetensors' sha256, the
 * fp32 weight bytes held and the CPU arithmetic in use: OpenBLAS's kernels
 * and threads, and with codevec.cpu_precision = int8 oneDNN's instruction
 * set (or why int8 is unavailable).
 */
Datum
codevec_model_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[14];
	bool		nulls[14] = {0};
	CvModel		m;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "codevec_model_info: return type must be a row type");
	m = GetModel(true);
	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int32GetDatum(m->hidden);
	values[2] = Int32GetDatum(m->layers);
	values[3] = Int32GetDatum(m->heads);
	values[4] = CStringGetTextDatum(cv_pooling_name(m->pooling));
	values[5] = BoolGetDatum(m->normalize);
	values[6] = Int32GetDatum(codevec_max_tokens);
	values[7] = Int32GetDatum(m->max_positions);
	values[8] = Int32GetDatum(m->tok->vocab_size);
	values[9] = CStringGetTextDatum(m->dtype);
	values[10] = CStringGetTextDatum(loaded_path);
	values[11] = CStringGetTextDatum(ModelSha256());
	values[12] = Int64GetDatum((int64) m->weight_bytes);
	ApplyCpuPrecision(m);
	if (m->precision == CV_PRECISION_INT8)
		values[13] = CStringGetTextDatum(psprintf("int8 via oneDNN (%s), %zu bytes; OpenBLAS %s, %d threads",
												  cv_int8_isa(), m->int8_bytes,
												  cv_encoder_blas_core(),
												  cv_encoder_get_threads()));
	else if (codevec_cpu_precision == CV_PRECISION_INT8)
		values[13] = CStringGetTextDatum(psprintf("OpenBLAS %s, %d threads (fp32: int8 unavailable: %s)",
												  cv_encoder_blas_core(),
												  cv_encoder_get_threads(),
												  int8_unavailable));
	else
		values[13] = CStringGetTextDatum(psprintf("OpenBLAS %s, %d threads",
												  cv_encoder_blas_core(),
												  cv_encoder_get_threads()));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
