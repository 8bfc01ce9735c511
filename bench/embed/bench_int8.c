/*
 * bench_int8.c
 *	  Time codevec's CPU encoder at one precision (fp32 or int8) on real
 *	  snippets, called directly (tokenizer + forward + pooling, as embed()
 *	  runs them): p50/p99 latency of one short query and bulk throughput
 *	  over the first N snippets in batches of 32 (what embed(text[]) hands
 *	  the encoder at a time), 256-token budget (codevec.max_tokens' default).
 *	  Optionally writes the N embeddings (N x hidden float32, little-endian)
 *	  for the fidelity check (fidelity.py).
 *
 * Built with -DCV_NO_INT8 against older sources it times the encoder as it
 * was before int8 (run.sh's "codevec-fp32-before" row).
 *
 * Usage: bench_int8 MODEL_DIR THREADS fp32|int8 SNIPPETS_JSONL N [EMB_OUT [QUERY_ITERS]]
 *	  SNIPPETS_JSONL: one JSON string per line (make_snippets.sh).
 *	  SORT=1 in the environment: the N snippets sorted by token count first
 *	  (stable), the batches bench_ort.py's SORT=1 gives ONNX Runtime; the
 *	  row is named ...-sorted and writes no embeddings.
 *	  IMPL=name in the environment: the row's name instead (run_int8.sh's
 *	  codevec-int8-base rows, an earlier commit's encoder).
 * Prints one JSON object on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <cjson/cJSON.h>

#include "encoder.h"
#include "model.h"
#include "tokenizer.h"
#ifndef CV_NO_INT8				/* -DCV_NO_INT8: build against the sources before int8 */
#include "qlinear.h"
#endif

#define BATCH 32				/* embed(text[])'s CODEVEC_EMBED_BATCH */
#define MAX_TOKENS 256
#define QUERY "compute the sha256 of a file in chunks"

/* Give a monotonic time in seconds. */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Give the CPU seconds (user + system, all threads) this process has used. */
static double
CpuSeconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* Give /proc/loadavg's first field, the 1-minute load (the machine is shared). */
static double
LoadAvg(void)
{
	double		l = -1;
	FILE	   *f = fopen("/proc/loadavg", "r");

	if (f && fscanf(f, "%lf", &l) != 1)
		l = -1;
	if (f)
		fclose(f);
	return l;
}

/* Order doubles for qsort. */
static int
CmpDouble(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* Embed n texts batch at a time into out (n x hidden); return the token count. */
static long
EmbedAll(CvModel m, char **texts, int n, int batch, float *out)
{
	long		ntok = 0;
	int			i,
				k;
	char		err[256];

	for (i = 0; i < n; i += batch)
	{
		int			nb = n - i < batch ? n - i : batch;
		int32_t    *ids[BATCH];
		int			lens[BATCH];

		for (k = 0; k < nb; k++)
		{
			if (cv_tokenize(m->tok, texts[i + k], strlen(texts[i + k]), MAX_TOKENS,
							&ids[k], &lens[k]) != CV_TOK_OK)
			{
				fprintf(stderr, "tokenize failed on text %d\n", i + k);
				exit(1);
			}
			ntok += lens[k];
		}
		if (cv_encode(m, nb, (const int32_t *const *) ids, lens,
					  out + (size_t) i * m->hidden, NULL, err, sizeof(err)) != CV_OK)
		{
			fprintf(stderr, "encode: %s\n", err);
			exit(1);
		}
		for (k = 0; k < nb; k++)
			free(ids[k]);
	}
	return ntok;
}

/* Read up to max JSON-string lines of a file. */
static char **
ReadTexts(const char *path, int max, int *n)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	char	  **texts = malloc(sizeof(char *) * max);

	*n = 0;
	if (!f)
	{
		perror(path);
		exit(1);
	}
	while (*n < max && getline(&line, &cap, f) > 0)
	{
		cJSON	   *s = cJSON_Parse(line);

		if (!s || !cJSON_IsString(s))
		{
			fprintf(stderr, "%s:%d: not a JSON string\n", path, *n + 1);
			exit(1);
		}
		texts[(*n)++] = strdup(s->valuestring);
		cJSON_Delete(s);
	}
	free(line);
	fclose(f);
	return texts;
}

/* a snippet's token count and place, for SORT=1 */
typedef struct SortKey
{
	int			len;
	int			pos;
} SortKey;

/* Order SortKeys by token count, then place (a stable sort, as Python's). */
static int
CmpKey(const void *a, const void *b)
{
	const SortKey *x = a,
			   *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Reorder n texts by their token count under m's tokenizer (SORT=1). */
static void
SortByTokens(CvModel m, char **texts, int n)
{
	SortKey    *k = malloc(sizeof(SortKey) * n);
	char	  **copy = malloc(sizeof(char *) * n);

	for (int i = 0; i < n; i++)
	{
		int32_t    *ids;
		int			len;

		if (cv_tokenize(m->tok, texts[i], strlen(texts[i]), MAX_TOKENS, &ids, &len) != CV_TOK_OK)
		{
			fprintf(stderr, "tokenize failed on text %d\n", i);
			exit(1);
		}
		free(ids);
		k[i].len = len;
		k[i].pos = i;
		copy[i] = texts[i];
	}
	qsort(k, n, sizeof(SortKey), CmpKey);
	for (int i = 0; i < n; i++)
		texts[i] = copy[k[i].pos];
	free(k);
	free(copy);
}

/* Run the benchmark. */
int
main(int argc, char **argv)
{
	CvModel		m;
	char		err[1024];
	int			threads,
				n,
				i,
				iters;
	int			int8,
				sorted;
	char	  **texts,
			   *qlist[1] = {QUERY};
	float	   *out;
	double	   *lat,
				t0,
				c0,
				secs,
				cpu;
	long		ntok;
	cJSON	   *res = cJSON_CreateObject();

	if (argc < 6)
	{
		fprintf(stderr, "usage: %s MODEL_DIR THREADS fp32|int8 SNIPPETS_JSONL N [EMB_OUT [QUERY_ITERS]]\n", argv[0]);
		return 2;
	}
	threads = atoi(argv[2]);
	int8 = strcmp(argv[3], "int8") == 0;
	iters = argc > 7 ? atoi(argv[7]) : 200;
	cv_encoder_set_threads(threads);
	if (cv_model_load(argv[1], &m, err, sizeof(err)) != CV_OK)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	t0 = Now();
	if (int8)
	{
#ifndef CV_NO_INT8
		if (cv_qlinear_attach(m, err, sizeof(err)) != CV_OK)
		{
			fprintf(stderr, "int8: %s\n", err);
			return 1;
		}
		m->precision = CV_PRECISION_INT8;
#else
		fprintf(stderr, "built with CV_NO_INT8\n");
		return 1;
#endif
	}
	cJSON_AddNumberToObject(res, "quantize_s", Now() - t0);
	texts = ReadTexts(argv[4], atoi(argv[5]), &n);
	sorted = getenv("SORT") && strcmp(getenv("SORT"), "1") == 0;
	if (sorted)
		SortByTokens(m, texts, n);
	out = malloc(sizeof(float) * m->hidden * (n > BATCH ? n : BATCH));

	/* query latency: one text per call, as embed(text) */
	lat = malloc(sizeof(double) * iters);
	for (i = 0; i < 20; i++)
		EmbedAll(m, qlist, 1, 1, out);
	for (i = 0; i < iters; i++)
	{
		t0 = Now();
		EmbedAll(m, qlist, 1, 1, out);
		lat[i] = Now() - t0;
	}
	qsort(lat, iters, sizeof(double), CmpDouble);

	/* bulk: warm up on one batch, then time all n */
	EmbedAll(m, texts, n < BATCH ? n : BATCH, BATCH, out);
	t0 = Now();
	c0 = CpuSeconds();
	ntok = EmbedAll(m, texts, n, BATCH, out);
	secs = Now() - t0;
	cpu = CpuSeconds() - c0;

	{
		char		impl[64];

#ifdef CV_NO_INT8
		snprintf(impl, sizeof(impl), "codevec-fp32-before%s", sorted ? "-sorted" : "");
#else
		snprintf(impl, sizeof(impl), "codevec-%s%s", int8 ? "int8" : "fp32", sorted ? "-sorted" : "");
#endif
		cJSON_AddStringToObject(res, "impl", getenv("IMPL") && getenv("IMPL")[0] ? getenv("IMPL") : impl);
	}
	cJSON_AddNumberToObject(res, "threads", threads);
	cJSON_AddStringToObject(res, "blas", cv_encoder_blas_core());
#ifndef CV_NO_INT8
	cJSON_AddStringToObject(res, "int8_isa", int8 ? cv_int8_isa() : "-");
#endif
	cJSON_AddStringToObject(res, "model", m->name);
	cJSON_AddNumberToObject(res, "query_p50_ms", 1000 * lat[iters / 2]);
	cJSON_AddNumberToObject(res, "query_p99_ms", 1000 * lat[(int) (iters * 0.99)]);
	cJSON_AddNumberToObject(res, "snippets", n);
	cJSON_AddNumberToObject(res, "mean_tokens", (double) ntok / n);
	cJSON_AddNumberToObject(res, "bulk_s", secs);
	cJSON_AddNumberToObject(res, "snippets_per_s", n / secs);
	cJSON_AddNumberToObject(res, "tokens_per_s", ntok / secs);
	cJSON_AddNumberToObject(res, "bulk_cpu_s", cpu);
	cJSON_AddNumberToObject(res, "snippets_per_cpu_s", n / cpu);
	cJSON_AddNumberToObject(res, "loadavg_end", LoadAvg());
	if (argc > 6 && argv[6][0] && !sorted)
	{
		FILE	   *f = fopen(argv[6], "wb");

		if (!f || fwrite(out, sizeof(float) * m->hidden, n, f) != (size_t) n || fclose(f) != 0)
		{
			perror(argv[6]);
			return 1;
		}
	}
	printf("%s\n", cJSON_PrintUnformatted(res));
	cv_model_free(m);
	return 0;
}
