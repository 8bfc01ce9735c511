/*
 * model.c
 *	  Read a BERT model folder in Hugging Face / sentence-transformers layout.
 *
 * Files, in the order they are read:
 *	  config.json            BertModel hyperparameters; anything this encoder
 *	                         cannot run is rejected naming the field
 *	  modules.json           sentence-transformers pipeline: Transformer,
 *	                         Pooling, Normalize (optional: plain HF folder ->
 *	                         mean pooling, no normalization, as
 *	                         sentence-transformers does for such a folder)
 *	  1_Pooling/config.json  pooling_mode_cls_token / pooling_mode_mean_tokens
 *	  sentence_bert_config.json   max_seq_length (optional)
 *	  tokenizer_config.json  do_lower_case, strip_accents (optional)
 *	  vocab.txt              WordPiece vocabulary
 *	  model.safetensors      weights (safetensors format: an 8-byte
 *	                         little-endian header length N, N bytes of JSON
 *	                         {name: {dtype, shape, data_offsets}}, then data)
 *
 * The safetensors header is checked before a byte of data is trusted: N
 * against the file size, every tensor's offsets against the data size and
 * against dtype size x shape, and every tensor the encoder uses against the
 * shape config.json implies.  Weights are converted from F32, F16 or BF16 to
 * fp32 in one malloc'd block and the file is unmapped again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE				/* memrchr, strndup */
#endif

#include "model.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

/* State shared by the loading steps: the model so far and the error buffer. */
typedef struct LoadCtx
{
	CvModel		m;
	char	   *err;
	size_t		errlen;
	const unsigned char *data;	/* safetensors data section */
	size_t		data_len;
	cJSON	   *header;			/* safetensors header */
	float	   *next;			/* bump pointer into m->block */
} LoadCtx;

static CvStatus Fail(LoadCtx *ctx, CvStatus st, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Write a printf-style message into the error buffer and return the status. */
static CvStatus
Fail(LoadCtx *ctx, CvStatus st, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(ctx->err, ctx->errlen, fmt, ap);
	va_end(ap);
	return st;
}

/* Join a folder and a file name into a malloc'd path. */
static char *
JoinPath(const char *dir, const char *file)
{
	size_t		n = strlen(dir) + strlen(file) + 2;
	char	   *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, file);
	return p;
}

/* Parse a JSON file; a missing file gives NULL with *missing set. */
static CvStatus
ReadJson(LoadCtx *ctx, const char *dir, const char *file, int required,
		 cJSON **out)
{
	char	   *path = JoinPath(dir, file);
	FILE	   *f;
	char	   *buf;
	long		len;
	CvStatus	st = CV_OK;

	*out = NULL;
	if (!path)
		return Fail(ctx, CV_ERR_NOMEM, "out of memory");
	f = fopen(path, "rb");
	if (!f)
	{
		if (errno == ENOENT && !required)
		{
			free(path);
			return CV_OK;
		}
		st = Fail(ctx, errno == ENOENT ? CV_ERR_NOT_FOUND : CV_ERR_IO,
				  "could not open \"%s\": %s", path, strerror(errno));
		free(path);
		return st;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
		len > 64 * 1024 * 1024)
	{
		fclose(f);
		st = Fail(ctx, CV_ERR_IO, "could not read \"%s\" (too large or not a file)", path);
		free(path);
		return st;
	}
	buf = malloc(len + 1);
	if (!buf)
	{
		fclose(f);
		free(path);
		return Fail(ctx, CV_ERR_NOMEM, "out of memory");
	}
	if (fread(buf, 1, len, f) != (size_t) len)
	{
		fclose(f);
		free(buf);
		st = Fail(ctx, CV_ERR_IO, "could not read \"%s\"", path);
		free(path);
		return st;
	}
	fclose(f);
	buf[len] = '\0';
	*out = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!*out || (!cJSON_IsObject(*out) && !cJSON_IsArray(*out)))
	{
		cJSON_Delete(*out);
		*out = NULL;
		st = Fail(ctx, CV_ERR_CORRUPT, "\"%s\" is not valid JSON", path);
	}
	free(path);
	return st;
}

/*
 * Whether JSON value v is a whole number within [lo, hi] (hi <= 2^53, where
 * doubles still hold every integer).  The range is checked before any
 * conversion: casting a double outside an integer type's range is undefined
 * behaviour in C (fuzz_model found `1e92` in config.json).
 */
static int
JsonWhole(const cJSON *v, double lo, double hi)
{
	return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
		v->valuedouble == floor(v->valuedouble);
}

/* Read a required positive integer field of config.json within [1, max]. */
static CvStatus
ConfigInt(LoadCtx *ctx, cJSON *cfg, const char *field, int max, int *out)
{
	cJSON	   *v = cJSON_GetObjectItemCaseSensitive(cfg, field);

	if (!v)
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"config.json of \"%s\" lacks field \"%s\"", ctx->m->path, field);
	if (!JsonWhole(v, 1, max))
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"config.json field \"%s\" must be an integer between 1 and %d",
					field, max);
	*out = (int) v->valuedouble;
	return CV_OK;
}

/* Check that an optional string field of config.json, if set, has one value. */
static CvStatus
ConfigString(LoadCtx *ctx, cJSON *cfg, const char *field, const char *want)
{
	cJSON	   *v = cJSON_GetObjectItemCaseSensitive(cfg, field);

	if (!v || cJSON_IsNull(v))
		return CV_OK;
	if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"config.json field \"%s\" is \"%s\"; this encoder runs only \"%s\"",
					field, cJSON_IsString(v) ? v->valuestring : "(not a string)", want);
	return CV_OK;
}

/* Parse config.json into the model's hyperparameters. */
static CvStatus
ParseConfig(LoadCtx *ctx)
{
	CvModel		m = ctx->m;
	cJSON	   *cfg,
			   *v;
	CvStatus	st;

	if ((st = ReadJson(ctx, m->path, "config.json", 1, &cfg)) != CV_OK)
		return st;
	if (!cJSON_IsObject(cfg))
	{
		cJSON_Delete(cfg);
		return Fail(ctx, CV_ERR_CORRUPT, "config.json of \"%s\" is not a JSON object", m->path);
	}
	if ((st = ConfigString(ctx, cfg, "model_type", "bert")) != CV_OK ||
		(st = ConfigString(ctx, cfg, "hidden_act", "gelu")) != CV_OK ||
		(st = ConfigString(ctx, cfg, "position_embedding_type", "absolute")) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "hidden_size", CODEVEC_MODEL_MAX_HIDDEN, &m->hidden)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "num_hidden_layers", CODEVEC_MODEL_MAX_LAYERS, &m->layers)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "num_attention_heads", CODEVEC_MODEL_MAX_HIDDEN, &m->heads)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "intermediate_size", 8 * CODEVEC_MODEL_MAX_HIDDEN, &m->intermediate)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "max_position_embeddings", CODEVEC_MODEL_MAX_POSITIONS, &m->max_positions)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "type_vocab_size", 1024, &m->type_vocab)) != CV_OK ||
		(st = ConfigInt(ctx, cfg, "vocab_size", 10 * 1000 * 1000, &m->vocab_size)) != CV_OK)
	{
		cJSON_Delete(cfg);
		return st;
	}
	/* hidden_act absent means BertConfig's default, "gelu" */
	if (m->hidden % m->heads != 0)
	{
		cJSON_Delete(cfg);
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"config.json field \"num_attention_heads\" (%d) does not divide \"hidden_size\" (%d)",
					m->heads, m->hidden);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "is_decoder")) && cJSON_IsTrue(v))
	{
		cJSON_Delete(cfg);
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"config.json field \"is_decoder\" is true; this encoder runs only encoders");
	}
	m->ln_eps = 1e-12;
	if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps")) != NULL)
	{
		if (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 1)
		{
			cJSON_Delete(cfg);
			return Fail(ctx, CV_ERR_UNSUPPORTED,
						"config.json field \"layer_norm_eps\" must be a number in (0, 1]");
		}
		m->ln_eps = v->valuedouble;
	}
	cJSON_Delete(cfg);
	return CV_OK;
}

/* Read one pooling config (1_Pooling/config.json or the like). */
static CvStatus
ParsePooling(LoadCtx *ctx, const char *subdir)
{
	static const char *const unsupported[] = {
		"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
		"pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"
	};
	CvModel		m = ctx->m;
	char	   *dir = JoinPath(m->path, subdir);
	cJSON	   *cfg,
			   *v;
	CvStatus	st;
	int			i,
				cls,
				mean;

	if (!dir)
		return Fail(ctx, CV_ERR_NOMEM, "out of memory");
	st = ReadJson(ctx, dir, "config.json", 1, &cfg);
	free(dir);
	if (st != CV_OK)
		return st;
	for (i = 0; i < 4; i++)
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, unsupported[i])) && cJSON_IsTrue(v))
		{
			cJSON_Delete(cfg);
			return Fail(ctx, CV_ERR_UNSUPPORTED,
						"pooling config field \"%s\" is true; only mean and CLS pooling are supported",
						unsupported[i]);
		}
	cls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode_cls_token"));
	mean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode_mean_tokens"));
	if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode")) && cJSON_IsString(v))
	{
		cls = strcmp(v->valuestring, "cls") == 0;
		mean = strcmp(v->valuestring, "mean") == 0;
		if (!cls && !mean)
		{
			/* the message quotes v: format it before cfg (and v) is freed */
			st = Fail(ctx, CV_ERR_UNSUPPORTED,
					  "pooling config field \"pooling_mode\" is \"%s\"; only \"mean\" and \"cls\" are supported",
					  v->valuestring);
			cJSON_Delete(cfg);
			return st;
		}
	}
	cJSON_Delete(cfg);
	if (cls == mean)
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"pooling config in \"%s/%s\" must set exactly one of \"pooling_mode_cls_token\" and \"pooling_mode_mean_tokens\"",
					m->path, subdir);
	m->pooling = cls ? CV_POOL_CLS : CV_POOL_MEAN;
	return CV_OK;
}

/* Read modules.json (and the pooling config it names). */
static CvStatus
ParseModules(LoadCtx *ctx)
{
	CvModel		m = ctx->m;
	cJSON	   *mods,
			   *it;
	CvStatus	st;
	int			have_pooling = 0;

	m->pooling = CV_POOL_MEAN;
	m->normalize = 0;
	if ((st = ReadJson(ctx, m->path, "modules.json", 0, &mods)) != CV_OK)
		return st;
	if (!mods)
	{
		/* plain Hugging Face folder: a lone 1_Pooling still counts */
		char	   *p = JoinPath(m->path, "1_Pooling/config.json");

		if (!p)
			return Fail(ctx, CV_ERR_NOMEM, "out of memory");
		if (access(p, R_OK) == 0)
			st = ParsePooling(ctx, "1_Pooling");
		free(p);
		return st;
	}
	if (!cJSON_IsArray(mods))
	{
		cJSON_Delete(mods);
		return Fail(ctx, CV_ERR_CORRUPT, "modules.json of \"%s\" is not a JSON array", m->path);
	}
	cJSON_ArrayForEach(it, mods)
	{
		cJSON	   *type = cJSON_GetObjectItemCaseSensitive(it, "type");
		cJSON	   *path = cJSON_GetObjectItemCaseSensitive(it, "path");
		const char *t;

		if (!cJSON_IsString(type))
		{
			cJSON_Delete(mods);
			return Fail(ctx, CV_ERR_CORRUPT, "modules.json entry without a \"type\" string");
		}
		/*
		 * sentence-transformers has moved its classes between modules
		 * (sentence_transformers.models.Pooling, ...modules.pooling.Pooling):
		 * compare the class name only.
		 */
		t = strrchr(type->valuestring, '.') ? strrchr(type->valuestring, '.') + 1 : type->valuestring;
		if (strncmp(type->valuestring, "sentence_transformers.", 22) != 0)
			t = type->valuestring;
		if (strcmp(t, "Transformer") == 0)
			continue;
		if (strcmp(t, "Pooling") == 0)
		{
			if (!cJSON_IsString(path) || strstr(path->valuestring, "..") || path->valuestring[0] == '/')
			{
				cJSON_Delete(mods);
				return Fail(ctx, CV_ERR_CORRUPT, "modules.json Pooling entry has a bad \"path\"");
			}
			if ((st = ParsePooling(ctx, path->valuestring)) != CV_OK)
			{
				cJSON_Delete(mods);
				return st;
			}
			have_pooling = 1;
			continue;
		}
		if (strcmp(t, "Normalize") == 0)
		{
			m->normalize = 1;
			continue;
		}
		Fail(ctx, CV_ERR_UNSUPPORTED,
			 "modules.json module type \"%s\" is not supported (only Transformer, Pooling, Normalize)",
			 type->valuestring);
		cJSON_Delete(mods);
		return CV_ERR_UNSUPPORTED;
	}
	cJSON_Delete(mods);
	(void) have_pooling;
	return CV_OK;
}

/* Read tokenizer options and max_seq_length, then load vocab.txt. */
static CvStatus
ParseTokenizer(LoadCtx *ctx)
{
	CvModel		m = ctx->m;
	cJSON	   *cfg,
			   *v;
	CvStatus	st;
	int			lower = 1,
				strip = -1;
	char	   *vocab;
	CvTokStatus ts;

	if ((st = ReadJson(ctx, m->path, "tokenizer_config.json", 0, &cfg)) != CV_OK)
		return st;
	if (cfg)
	{
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case")) && cJSON_IsBool(v))
			lower = cJSON_IsTrue(v);
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents")) && cJSON_IsBool(v))
			strip = cJSON_IsTrue(v);
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "tokenize_chinese_chars")) &&
			cJSON_IsFalse(v))
		{
			cJSON_Delete(cfg);
			return Fail(ctx, CV_ERR_UNSUPPORTED,
						"tokenizer_config.json field \"tokenize_chinese_chars\" is false; only true is supported");
		}
		cJSON_Delete(cfg);
	}
	if ((st = ReadJson(ctx, m->path, "sentence_bert_config.json", 0, &cfg)) != CV_OK)
		return st;
	if (cfg)
	{
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "max_seq_length")) && cJSON_IsNumber(v) &&
			v->valuedouble >= 2 && v->valuedouble <= m->max_positions)
			m->max_seq_length = (int) v->valuedouble;
		if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case")) && cJSON_IsTrue(v))
		{
			cJSON_Delete(cfg);
			return Fail(ctx, CV_ERR_UNSUPPORTED,
						"sentence_bert_config.json field \"do_lower_case\" is true; not supported");
		}
		cJSON_Delete(cfg);
	}
	vocab = JoinPath(m->path, "vocab.txt");
	if (!vocab)
		return Fail(ctx, CV_ERR_NOMEM, "out of memory");
	ts = cv_tokenizer_load(vocab, lower, strip, &m->tok, ctx->err, ctx->errlen);
	if (ts == CV_TOK_IO && access(vocab, F_OK) != 0)
		st = CV_ERR_NOT_FOUND;
	else if (ts == CV_TOK_IO)
		st = CV_ERR_IO;
	else if (ts == CV_TOK_NOMEM)
		st = CV_ERR_NOMEM;
	else if (ts == CV_TOK_BADVOCAB)
		st = CV_ERR_CORRUPT;
	free(vocab);
	if (st != CV_OK)
		return st;
	if (m->tok->vocab_size > m->vocab_size)
		return Fail(ctx, CV_ERR_CORRUPT,
					"vocab.txt has %d entries but config.json field \"vocab_size\" is %d",
					(int) m->tok->vocab_size, m->vocab_size);
	return CV_OK;
}

/* Give the byte size of a safetensors dtype; 0 for one we cannot convert. */
static size_t
DtypeSize(const char *dtype)
{
	if (strcmp(dtype, "F32") == 0)
		return 4;
	if (strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0)
		return 2;
	return 0;
}

/* Give the byte size of any safetensors dtype, for offset checks; 0 if unknown. */
static size_t
AnyDtypeSize(const char *dtype)
{
	static const struct
	{
		const char *name;
		size_t		size;
	}			t[] = {
		{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
		{"I16", 2}, {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},
		{"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}
	};
	size_t		i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(dtype, t[i].name) == 0)
			return t[i].size;
	return 0;
}

/* Convert an IEEE half to float. */
static float
HalfToFloat(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1F;
	uint32_t	man = h & 0x3FF;
	uint32_t	bits;
	float		f;

	if (exp == 0)
	{
		/* zero or subnormal: man * 2^-24 */
		f = (float) man * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7F800000 | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

/*
 * Validate the whole safetensors header: every entry's dtype, shape and
 * offsets must be consistent with each other and with the data size.
 */
static CvStatus
ValidateHeader(LoadCtx *ctx, const char *path)
{
	cJSON	   *it;

	if (!cJSON_IsObject(ctx->header))
		return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": safetensors header is not a JSON object", path);
	cJSON_ArrayForEach(it, ctx->header)
	{
		cJSON	   *dtype,
				   *shape,
				   *offs,
				   *d;
		uint64_t	numel = 1,
					begin,
					end;
		size_t		esize;

		if (strcmp(it->string, "__metadata__") == 0)
			continue;
		dtype = cJSON_GetObjectItemCaseSensitive(it, "dtype");
		shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
		offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
			cJSON_GetArraySize(offs) != 2)
			return Fail(ctx, CV_ERR_CORRUPT,
						"\"%s\": safetensors entry \"%s\" lacks dtype, shape or data_offsets",
						path, it->string);
		esize = AnyDtypeSize(dtype->valuestring);
		if (esize == 0)
			return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": tensor \"%s\" has unknown dtype \"%s\"",
						path, it->string, dtype->valuestring);
		cJSON_ArrayForEach(d, shape)
		{
			if (!JsonWhole(d, 0, 1e12))
				return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": tensor \"%s\" has a bad shape",
							path, it->string);
			numel *= (uint64_t) d->valuedouble;
			if (numel > ((uint64_t) 1 << 40))
				return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": tensor \"%s\" is too large",
							path, it->string);
		}
		d = cJSON_GetArrayItem(offs, 0);
		if (!JsonWhole(d, 0, 9007199254740992.0))
			return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": tensor \"%s\" has bad data_offsets",
						path, it->string);
		begin = (uint64_t) d->valuedouble;
		d = cJSON_GetArrayItem(offs, 1);
		if (!JsonWhole(d, 0, 9007199254740992.0))
			return Fail(ctx, CV_ERR_CORRUPT, "\"%s\": tensor \"%s\" has bad data_offsets",
						path, it->string);
		end = (uint64_t) d->valuedouble;
		if (begin > end || end > ctx->data_len)
			return Fail(ctx, CV_ERR_CORRUPT,
						"\"%s\": tensor \"%s\" data_offsets [%llu, %llu] lie outside the %zu data bytes (truncated file?)",
						path, it->string, (unsigned long long) begin,
						(unsigned long long) end, ctx->data_len);
		if (end - begin != numel * esize)
			return Fail(ctx, CV_ERR_CORRUPT,
						"\"%s\": tensor \"%s\" holds %llu bytes but its shape and dtype need %llu",
						path, it->string, (unsigned long long) (end - begin),
						(unsigned long long) (numel * esize));
	}
	return CV_OK;
}

/*
 * Copy one tensor into the fp32 block, converting from its dtype, after
 * checking its shape is exactly {d0} or {d0, d1}.  The name is tried as given,
 * with the "bert." prefix, and with LayerNorm's old gamma/beta spelling.
 */
static CvStatus
LoadTensor(LoadCtx *ctx, const char *name, int d0, int d1, float **out)
{
	char		tried[3][256];
	cJSON	   *t = NULL,
			   *dtype,
			   *shape,
			   *offs;
	int			i,
				ndim = d1 > 0 ? 2 : 1;
	size_t		numel = (size_t) d0 * (d1 > 0 ? d1 : 1);
	size_t		begin;
	const unsigned char *src;
	float	   *dst = ctx->next;

	snprintf(tried[0], 256, "%s", name);
	snprintf(tried[1], 256, "bert.%s", name);
	tried[2][0] = '\0';
	for (i = 0; i < 2 && !t; i++)
		t = cJSON_GetObjectItemCaseSensitive(ctx->header, tried[i]);
	if (!t && strstr(name, "LayerNorm."))
	{
		/* TF-converted checkpoints name LayerNorm parameters gamma and beta */
		const char *dot = strrchr(name, '.');
		const char *alt = strcmp(dot, ".weight") == 0 ? "gamma" : "beta";

		snprintf(tried[2], 256, "%.*s.%s", (int) (dot - name), name, alt);
		t = cJSON_GetObjectItemCaseSensitive(ctx->header, tried[2]);
		if (!t)
		{
			snprintf(tried[2], 256, "bert.%.*s.%s", (int) (dot - name), name, alt);
			t = cJSON_GetObjectItemCaseSensitive(ctx->header, tried[2]);
		}
	}
	if (!t)
		return Fail(ctx, CV_ERR_CORRUPT,
					"model.safetensors of \"%s\" lacks tensor \"%s\"", ctx->m->path, name);
	dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
	shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
	offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
	if (DtypeSize(dtype->valuestring) == 0)
		return Fail(ctx, CV_ERR_UNSUPPORTED,
					"tensor \"%s\" has dtype \"%s\"; only F32, F16 and BF16 are supported",
					name, dtype->valuestring);
	if (cJSON_GetArraySize(shape) != ndim ||
		cJSON_GetArrayItem(shape, 0)->valuedouble != d0 ||
		(ndim == 2 && cJSON_GetArrayItem(shape, 1)->valuedouble != d1))
	{
		char		have[64] = "";

		for (i = 0; i < cJSON_GetArraySize(shape) && i < 4; i++)
			snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%.0f",
					 i ? ", " : "", cJSON_GetArrayItem(shape, i)->valuedouble);
		if (ndim == 2)
			return Fail(ctx, CV_ERR_CORRUPT,
						"tensor \"%s\" has shape [%s] but config.json implies [%d, %d]",
						name, have, d0, d1);
		return Fail(ctx, CV_ERR_CORRUPT,
					"tensor \"%s\" has shape [%s] but config.json implies [%d]",
					name, have, d0);
	}
	begin = (size_t) cJSON_GetArrayItem(offs, 0)->valuedouble;
	src = ctx->data + begin;
	if (strcmp(dtype->valuestring, "F32") == 0)
		memcpy(dst, src, numel * 4);
	else if (strcmp(dtype->valuestring, "F16") == 0)
	{
		size_t		k;

		for (k = 0; k < numel; k++)
		{
			uint16_t	h;

			memcpy(&h, src + 2 * k, 2);
			dst[k] = HalfToFloat(h);
		}
	}
	else
	{
		size_t		k;

		for (k = 0; k < numel; k++)
		{
			uint16_t	h;
			uint32_t	bits;

			memcpy(&h, src + 2 * k, 2);
			bits = (uint32_t) h << 16;
			memcpy(&dst[k], &bits, 4);
		}
	}
	snprintf(ctx->m->dtype, sizeof(ctx->m->dtype), "%s", dtype->valuestring);
	ctx->next += numel;
	if (out)
		*out = dst;
	return CV_OK;
}

/* Map model.safetensors, validate it and convert every weight to fp32. */
static CvStatus
LoadWeights(LoadCtx *ctx)
{
	CvModel		m = ctx->m;
	char	   *path = JoinPath(m->path, "model.safetensors");
	int			fd;
	struct stat sb;
	void	   *map = MAP_FAILED;
	uint64_t	hlen = 0;
	size_t		H,
				I,
				total;
	CvStatus	st = CV_OK;
	int			l;

	if (!path)
		return Fail(ctx, CV_ERR_NOMEM, "out of memory");
	fd = open(path, O_RDONLY);
	if (fd < 0)
	{
		st = Fail(ctx, errno == ENOENT ? CV_ERR_NOT_FOUND : CV_ERR_IO,
				  "could not open \"%s\": %s", path, strerror(errno));
		goto done;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
	{
		st = Fail(ctx, CV_ERR_IO, "\"%s\" is not a regular file", path);
		goto done;
	}
	if (sb.st_size < 8)
	{
		st = Fail(ctx, CV_ERR_CORRUPT, "\"%s\" is too short to be a safetensors file (%lld bytes)",
				  path, (long long) sb.st_size);
		goto done;
	}
	map = mmap(NULL, sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
	{
		st = Fail(ctx, CV_ERR_IO, "could not map \"%s\": %s", path, strerror(errno));
		goto done;
	}
	{
		const unsigned char *b = map;
		int			k;

		for (k = 7; k >= 0; k--)
			hlen = (hlen << 8) | b[k];
	}
	if (hlen < 2 || hlen > CODEVEC_MODEL_MAX_HEADER || hlen > (uint64_t) sb.st_size - 8)
	{
		st = Fail(ctx, CV_ERR_CORRUPT,
				  "\"%s\": safetensors header length %llu does not fit the file size %lld",
				  path, (unsigned long long) hlen, (long long) sb.st_size);
		goto done;
	}
	ctx->header = cJSON_ParseWithLength((const char *) map + 8, hlen);
	if (!ctx->header)
	{
		st = Fail(ctx, CV_ERR_CORRUPT, "\"%s\": safetensors header is not valid JSON", path);
		goto done;
	}
	ctx->data = (const unsigned char *) map + 8 + hlen;
	ctx->data_len = sb.st_size - 8 - hlen;
	if ((st = ValidateHeader(ctx, path)) != CV_OK)
		goto done;

	/* one block for every weight, laid out in the order they are loaded */
	H = m->hidden;
	I = m->intermediate;
	total = (size_t) m->vocab_size * H + (size_t) m->max_positions * H +
		(size_t) m->type_vocab * H + 2 * H +
		(size_t) m->layers * (3 * H * H + 3 * H + H * H + H + 2 * H +
							  I * H + I + H * I + H + 2 * H);
	m->weight_bytes = total * sizeof(float);
	m->block = malloc(m->weight_bytes);
	m->layer = calloc(m->layers, sizeof(CvLayerWeights));
	if (!m->block || !m->layer)
	{
		st = Fail(ctx, CV_ERR_NOMEM, "out of memory allocating %zu bytes of weights",
				  m->weight_bytes);
		goto done;
	}
	ctx->next = m->block;
	if ((st = LoadTensor(ctx, "embeddings.word_embeddings.weight", m->vocab_size, H, &m->word_emb)) ||
		(st = LoadTensor(ctx, "embeddings.position_embeddings.weight", m->max_positions, H, &m->pos_emb)) ||
		(st = LoadTensor(ctx, "embeddings.token_type_embeddings.weight", m->type_vocab, H, &m->type_emb)) ||
		(st = LoadTensor(ctx, "embeddings.LayerNorm.weight", H, 0, &m->emb_ln_g)) ||
		(st = LoadTensor(ctx, "embeddings.LayerNorm.bias", H, 0, &m->emb_ln_b)))
		goto done;
	for (l = 0; l < m->layers; l++)
	{
		CvLayerWeights *w = &m->layer[l];
		char		n[128];

#define LAYER_TENSOR(suffix, d0, d1, dst) \
		(snprintf(n, sizeof(n), "encoder.layer.%d.%s", l, suffix), \
		 LoadTensor(ctx, n, d0, d1, dst))

		/* query, key, value weights land back to back: one [3H, H] matrix */
		if ((st = LAYER_TENSOR("attention.self.query.weight", H, H, &w->qkv_w)) ||
			(st = LAYER_TENSOR("attention.self.key.weight", H, H, NULL)) ||
			(st = LAYER_TENSOR("attention.self.value.weight", H, H, NULL)) ||
			(st = LAYER_TENSOR("attention.self.query.bias", H, 0, &w->qkv_b)) ||
			(st = LAYER_TENSOR("attention.self.key.bias", H, 0, NULL)) ||
			(st = LAYER_TENSOR("attention.self.value.bias", H, 0, NULL)) ||
			(st = LAYER_TENSOR("attention.output.dense.weight", H, H, &w->ao_w)) ||
			(st = LAYER_TENSOR("attention.output.dense.bias", H, 0, &w->ao_b)) ||
			(st = LAYER_TENSOR("attention.output.LayerNorm.weight", H, 0, &w->ln1_g)) ||
			(st = LAYER_TENSOR("attention.output.LayerNorm.bias", H, 0, &w->ln1_b)) ||
			(st = LAYER_TENSOR("intermediate.dense.weight", I, H, &w->ffn_in_w)) ||
			(st = LAYER_TENSOR("intermediate.dense.bias", I, 0, &w->ffn_in_b)) ||
			(st = LAYER_TENSOR("output.dense.weight", H, I, &w->ffn_out_w)) ||
			(st = LAYER_TENSOR("output.dense.bias", H, 0, &w->ffn_out_b)) ||
			(st = LAYER_TENSOR("output.LayerNorm.weight", H, 0, &w->ln2_g)) ||
			(st = LAYER_TENSOR("output.LayerNorm.bias", H, 0, &w->ln2_b)))
			goto done;
#undef LAYER_TENSOR
	}

done:
	if (map != MAP_FAILED)
		munmap(map, sb.st_size);
	if (fd >= 0)
		close(fd);
	cJSON_Delete(ctx->header);
	ctx->header = NULL;
	free(path);
	return st;
}

/* Load a model folder; see model.h. */
CvStatus
cv_model_load(const char *dir, CvModel *out, char *errbuf, size_t errlen)
{
	return cv_model_load_ex(dir, 0, out, errbuf, errlen);
}

/* Load a model folder, optionally without its weights; see model.h. */
CvStatus
cv_model_load_ex(const char *dir, int flags, CvModel *out, char *errbuf, size_t errlen)
{
	LoadCtx		ctx;
	CvModel		m;
	CvStatus	st;
	struct stat sb;
	const char *slash;
	size_t		dlen;

	*out = NULL;
	memset(&ctx, 0, sizeof(ctx));
	ctx.err = errbuf;
	ctx.errlen = errlen;
	if (!dir || !*dir)
		return Fail(&ctx, CV_ERR_INVALID, "model folder path is empty");
	if (stat(dir, &sb) != 0)
		return Fail(&ctx, errno == ENOENT ? CV_ERR_NOT_FOUND : CV_ERR_IO,
					"could not open model folder \"%s\": %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return Fail(&ctx, CV_ERR_NOT_FOUND, "model path \"%s\" is not a folder", dir);

	m = calloc(1, sizeof(CvModelData));
	if (!m)
		return Fail(&ctx, CV_ERR_NOMEM, "out of memory");
	ctx.m = m;
	m->path = strdup(dir);
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	slash = dlen ? memrchr(dir, '/', dlen) : NULL;
	m->name = slash ? strndup(slash + 1, dir + dlen - slash - 1) : strndup(dir, dlen);
	if (!m->path || !m->name)
	{
		cv_model_free(m);
		return Fail(&ctx, CV_ERR_NOMEM, "out of memory");
	}
	if ((st = ParseConfig(&ctx)) != CV_OK ||
		(st = ParseModules(&ctx)) != CV_OK ||
		(st = ParseTokenizer(&ctx)) != CV_OK ||
		((flags & CV_MODEL_NO_WEIGHTS) == 0 && (st = LoadWeights(&ctx)) != CV_OK))
	{
		cv_model_free(m);
		return st;
	}
	*out = m;
	return CV_OK;
}

/* Free a model and everything it owns; NULL is fine. */
void
cv_model_free(CvModel m)
{
	if (!m)
		return;
	if (m->int8 && m->int8_ops)
		m->int8_ops->free(m->int8);
	cv_tokenizer_free(m->tok);
	if (m->weights_shared)
		munmap(m->block, m->weights_maplen);
	else
		free(m->block);
	free(m->layer);
	free(m->path);
	free(m->name);
	free(m);
}

#define CV_HUGE_PAGE ((size_t) 2 << 20)

/* Whether the kernel gives transparent huge pages to memory that asks */
static int
ThpAvailable(void)
{
	char		buf[128];
	FILE	   *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	int			ok = 0;

	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL)
		ok = strstr(buf, "[always]") != NULL || strstr(buf, "[madvise]") != NULL;
	fclose(f);
	return ok;
}

/* Give the bytes of the mapping that starts at p that huge pages back (smaps) */
static size_t
AnonHugeBytes(const void *p)
{
	char		line[256];
	FILE	   *f = fopen("/proc/self/smaps", "r");
	int			in = 0;
	size_t		kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		unsigned long lo,
					hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)	/* a mapping's first line */
			in = lo == (unsigned long) (uintptr_t) p;
		else if (in && sscanf(line, "AnonHugePages: %zu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb << 10;
}

/* See model.h. */
void *
cv_map_for_children(size_t n, size_t *maplen)
{
	size_t		len = (n + CV_HUGE_PAGE - 1) & ~(CV_HUGE_PAGE - 1);
	char	   *p;

#ifdef MADV_HUGEPAGE
	if (ThpAvailable())
	{
		char	   *raw = mmap(NULL, len + CV_HUGE_PAGE, PROT_READ | PROT_WRITE,
							   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (raw != MAP_FAILED)
		{
			/* the 2 MB aligned len bytes in it; the rest is given back */
			p = (char *) (((uintptr_t) raw + CV_HUGE_PAGE - 1) & ~(uintptr_t) (CV_HUGE_PAGE - 1));
			if (p > raw)
				munmap(raw, p - raw);
			if (p + len < raw + len + CV_HUGE_PAGE)
				munmap(p + len, raw + len + CV_HUGE_PAGE - (p + len));
			if (madvise(p, len, MADV_HUGEPAGE) == 0)
			{
				/* fault each 2 MB in now, then check that huge pages came */
				for (size_t o = 0; o < len; o += CV_HUGE_PAGE)
					p[o] = 0;
				if (AnonHugeBytes(p) >= len)
				{
					*maplen = len;
					return p;
				}
			}
			munmap(p, len);
		}
	}
#endif
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	*maplen = n;
	return p;
}

/* See model.h. */
CvStatus
cv_model_share_weights(CvModel m, char *errbuf, size_t errlen)
{
	float	   *from = m->block,
			   *to;
	size_t		n = m->weight_bytes,
				nf = n / sizeof(float);
	size_t		maplen;

	if (from == NULL || m->weights_shared || n == 0)
		return CV_OK;
	to = cv_map_for_children(n, &maplen);
	if (to == NULL)
	{
		snprintf(errbuf, errlen, "could not map %zu bytes of shared memory: %s", n, strerror(errno));
		return CV_ERR_NOMEM;
	}
	memcpy(to, from, n);
	if (mprotect(to, maplen, PROT_READ) != 0)
	{
		snprintf(errbuf, errlen, "could not protect the shared weights: %s", strerror(errno));
		munmap(to, maplen);
		return CV_ERR_NOMEM;
	}
#define REBASE(p) do { if ((p) >= from && (p) < from + nf) (p) = to + ((p) - from); } while (0)
	REBASE(m->word_emb);
	REBASE(m->pos_emb);
	REBASE(m->type_emb);
	REBASE(m->emb_ln_g);
	REBASE(m->emb_ln_b);
	for (int l = 0; l < m->layers; l++)
	{
		CvLayerWeights *w = &m->layer[l];

		REBASE(w->qkv_w);
		REBASE(w->qkv_b);
		REBASE(w->ao_w);
		REBASE(w->ao_b);
		REBASE(w->ln1_g);
		REBASE(w->ln1_b);
		REBASE(w->ffn_in_w);
		REBASE(w->ffn_in_b);
		REBASE(w->ffn_out_w);
		REBASE(w->ffn_out_b);
		REBASE(w->ln2_g);
		REBASE(w->ln2_b);
	}
#undef REBASE
	m->block = to;
	m->weights_shared = 1;
	m->weights_maplen = maplen;
	free(from);
	return CV_OK;
}

/* Name a pooling mode as sentence-transformers does. */
const char *
cv_pooling_name(CvPooling p)
{
	return p == CV_POOL_CLS ? "cls" : "mean";
}
