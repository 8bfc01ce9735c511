/*
 * test_real_model.c
 *	  Compare our embeddings of real strings with sentence-transformers'
 *	  (fixtures/real-model-*, made by gen_real_model_fixture.py) for the
 *	  default model that `make model` installs: cosine >= 0.99999 each.
 *
 * Usage: test_real_model MODEL_DIR STRINGS_JSONL REF_BIN
 * Prints one "ok"/"not ok" line per string and "real-model: P passed, F failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "encoder.h"
#include "model.h"
#include "tokenizer.h"
#include "numcheck.h"

#define MIN_COSINE 0.99999
#define BATCH 16

/* Embed every string in batches and compare with the references. */
int
main(int argc, char **argv)
{
	CvModel		m;
	char		err[1024];
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	char	  **texts = NULL;
	int			n = 0,
				i,
				passed = 0,
				failed = 0;
	float	   *ref,
			   *out;
	long		reflen;
	double		worst = 2;		/* above any cosine; num_worst_min lowers it */
	int			max_tokens;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s MODEL_DIR STRINGS_JSONL REF_BIN\n", argv[0]);
		return 2;
	}
	if (cv_model_load(argv[1], &m, err, sizeof(err)) != CV_OK)
	{
		printf("not ok - load %s: %s (run `make model` first)\n", argv[1], err);
		printf("real-model: 0 passed, 1 failed\n");
		return 1;
	}
	cv_encoder_set_threads(2);
	f = fopen(argv[2], "r");
	while (f && getline(&line, &cap, f) > 0)
	{
		cJSON	   *j = cJSON_Parse(line);

		texts = realloc(texts, sizeof(char *) * (n + 1));
		texts[n++] = strdup(cJSON_GetObjectItem(j, "text")->valuestring);
		cJSON_Delete(j);
	}
	if (f)
		fclose(f);
	f = fopen(argv[3], "rb");
	if (!f || n == 0)
	{
		printf("not ok - cannot read the fixtures\nreal-model: 0 passed, 1 failed\n");
		return 1;
	}
	fseek(f, 0, SEEK_END);
	reflen = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (reflen != (long) n * m->hidden * 4)
	{
		printf("not ok - %s holds %ld bytes, want %d strings x %d dims\n", argv[3],
			   reflen, n, m->hidden);
		printf("real-model: 0 passed, 1 failed\n");
		return 1;
	}
	ref = malloc(reflen);
	if (fread(ref, 1, reflen, f) != (size_t) reflen)
		return 1;
	fclose(f);
	out = malloc(sizeof(float) * n * m->hidden);
	max_tokens = m->max_seq_length > 0 ? m->max_seq_length : 256;

	for (i = 0; i < n; i += BATCH)
	{
		int32_t    *ids[BATCH];
		int			lens[BATCH];
		int			k,
					nb = n - i < BATCH ? n - i : BATCH;

		for (k = 0; k < nb; k++)
			cv_tokenize(m->tok, texts[i + k], strlen(texts[i + k]), max_tokens,
						&ids[k], &lens[k]);
		if (cv_encode(m, nb, (const int32_t *const *) ids, lens,
					  out + (size_t) i * m->hidden, NULL, err, sizeof(err)) != CV_OK)
		{
			/* NaN output: each string of the batch fails its check below */
			printf("# encode of strings %d..%d: %s\n", i + 1, i + nb, err);
			for (k = 0; k < nb * m->hidden; k++)
				out[(size_t) i * m->hidden + k] = NAN;
		}
		for (k = 0; k < nb; k++)
			free(ids[k]);
	}
	for (i = 0; i < n; i++)
	{
		double		c = num_cosine(out + (size_t) i * m->hidden, ref + (size_t) i * m->hidden,
								   m->hidden);

		num_worst_min(&worst, c);
		if (num_at_least(c, MIN_COSINE))
		{
			passed++;
			printf("ok - string %d cosine %.7f\n", i + 1, c);
		}
		else
		{
			failed++;
			printf("not ok - string %d cosine %.7f: %.60s\n", i + 1, c, texts[i]);
		}
	}
	printf("# %d strings, worst cosine %.8f (threshold %.5f), model %s\n", n, worst,
		   MIN_COSINE, m->name);
	printf("real-model: %d passed, %d failed\n", passed, failed);
	cv_model_free(m);
	return failed ? 1 : 0;
}
