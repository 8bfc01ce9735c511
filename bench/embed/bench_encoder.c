/*
 * bench_encoder.c
 *	  Time codevec's CPU encoder (tokenizer + BERT forward + pooling), called
 *	  directly: latency of one 12-token query (p50/p99) and throughput for
 *	  batches of 128- and 256-token snippets; resident memory of the model.
 *
 * Usage: bench_encoder MODEL_DIR THREADS INPUTS_JSON [QUERY_ITERS]
 *	  INPUTS_JSON (from make_inputs.py) holds the query and the snippets, so
 *	  that bench_st.py times exactly the same inputs.
 * Prints one JSON object on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "encoder.h"
#include "model.h"
#include "tokenizer.h"

/* Give a monotonic time in seconds. */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Give this process's resident set size in kB (VmRSS). */
static long
RssKb(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];
	long		kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Order doubles for qsort. */
static int
CmpDouble(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* Embed texts (tokenize + encode), batch at a time; return seconds. */
static double
EmbedAll(CvModel m, cJSON *texts, int max_tokens, int batch, float *out, int *ntok)
{
	int			n = cJSON_GetArraySize(texts);
	int			i,
				k;
	double		t0 = Now();
	char		err[256];

	*ntok = 0;
	for (i = 0; i < n; i += batch)
	{
		int			nb = n - i < batch ? n - i : batch;
		int32_t    *ids[256];
		int			lens[256];

		for (k = 0; k < nb; k++)
		{
			const char *s = cJSON_GetArrayItem(texts, i + k)->valuestring;

			cv_tokenize(m->tok, s, strlen(s), max_tokens, &ids[k], &lens[k]);
			*ntok += lens[k];
		}
		if (cv_encode(m, nb, (const int32_t *const *) ids, lens, out, NULL, err, sizeof(err)) != CV_OK)
		{
			fprintf(stderr, "encode: %s\n", err);
			exit(1);
		}
		for (k = 0; k < nb; k++)
			free(ids[k]);
	}
	return Now() - t0;
}

/* Run the benchmark. */
int
main(int argc, char **argv)
{
	CvModel		m;
	char		err[1024];
	long		rss0,
				rss1;
	double		tload;
	FILE	   *f;
	char	   *buf;
	long		len;
	cJSON	   *in,
			   *q;
	int			iters = argc > 4 ? atoi(argv[4]) : 200;
	int			threads = atoi(argv[2]);
	double	   *lat;
	float	   *out;
	int			i,
				ntok,
				qlen;
	const char *query;
	int32_t    *qids;
	cJSON	   *res = cJSON_CreateObject();
	static const int sizes[2] = {128, 256};

	if (argc < 4)
	{
		fprintf(stderr, "usage: %s MODEL_DIR THREADS INPUTS_JSON [QUERY_ITERS]\n", argv[0]);
		return 2;
	}
	cv_encoder_set_threads(threads);
	rss0 = RssKb();
	tload = Now();
	if (cv_model_load(argv[1], &m, err, sizeof(err)) != CV_OK)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	tload = Now() - tload;
	rss1 = RssKb();

	f = fopen(argv[3], "rb");
	if (!f)
	{
		perror(argv[3]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(len + 1);
	if (fread(buf, 1, len, f) != (size_t) len)
		return 1;
	buf[len] = '\0';
	fclose(f);
	in = cJSON_Parse(buf);
	q = cJSON_GetObjectItem(in, "query");
	query = q->valuestring;
	out = malloc(sizeof(float) * m->hidden * 256);

	/* query latency: tokenize + encode one text, as embed(text) does */
	cv_tokenize(m->tok, query, strlen(query), 256, &qids, &qlen);
	free(qids);
	lat = malloc(sizeof(double) * iters);
	for (i = 0; i < 20; i++)
		EmbedAll(m, cJSON_GetObjectItem(in, "query_list"), 256, 1, out, &ntok);
	for (i = 0; i < iters; i++)
		lat[i] = EmbedAll(m, cJSON_GetObjectItem(in, "query_list"), 256, 1, out, &ntok);
	qsort(lat, iters, sizeof(double), CmpDouble);

	cJSON_AddStringToObject(res, "impl", "codevec-c");
	cJSON_AddNumberToObject(res, "threads", cv_encoder_get_threads());
	cJSON_AddStringToObject(res, "blas", cv_encoder_blas_core());
	cJSON_AddStringToObject(res, "model", m->name);
	cJSON_AddNumberToObject(res, "query_tokens", qlen);
	cJSON_AddNumberToObject(res, "query_p50_ms", 1000 * lat[iters / 2]);
	cJSON_AddNumberToObject(res, "query_p99_ms", 1000 * lat[(int) (iters * 0.99)]);
	for (i = 0; i < 2; i++)
	{
		char		key[64],
					name[32];
		cJSON	   *texts;
		double		secs;
		int			n;

		snprintf(name, sizeof(name), "snippets_%d", sizes[i]);
		texts = cJSON_GetObjectItem(in, name);
		n = cJSON_GetArraySize(texts);
		EmbedAll(m, texts, sizes[i], 32, out, &ntok);	/* warm-up */
		secs = EmbedAll(m, texts, sizes[i], 32, out, &ntok);
		if (ntok != n * sizes[i])
			fprintf(stderr, "warning: %d tokens, want %d\n", ntok, n * sizes[i]);
		snprintf(key, sizeof(key), "seq_per_s_%d", sizes[i]);
		cJSON_AddNumberToObject(res, key, n / secs);
	}
	cJSON_AddNumberToObject(res, "load_s", tload);
	cJSON_AddNumberToObject(res, "model_rss_mb", (rss1 - rss0) / 1024.0);
	cJSON_AddNumberToObject(res, "peak_rss_mb", RssKb() / 1024.0);
	printf("%s\n", cJSON_PrintUnformatted(res));
	cv_model_free(m);
	return 0;
}
