/*
 * test_tiny_model.c
 *	  Check model loading and the encoder against transformers on the tiny
 *	  random BERT fixtures (made by gen_tiny_model.py), and check that bad
 *	  model folders fail cleanly with the right status.
 *
 * Usage: test_tiny_model FIXTURES_DIR
 * Prints "ok"/"not ok" lines and "tiny-model: P passed, F failed".
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "encoder.h"
#include "model.h"
#include "tokenizer.h"
#include "numcheck.h"

#define REL_TOL 1e-5

static int	passed,
			failed;

/* Record one check and print its TAP-like line. */
static void
Check(int ok, const char *fmt,...)
{
	va_list		ap;

	if (ok)
		passed++;
	else
		failed++;
	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Read a whole file into a malloc'd buffer. */
static char *
Slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (fread(buf, 1, n, f) != (size_t) n)
	{
		fclose(f);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

/* Write bytes to a file. */
static void
Spit(const char *path, const void *buf, size_t len)
{
	FILE	   *f = fopen(path, "wb");

	if (f)
	{
		fwrite(buf, 1, len, f);
		fclose(f);
	}
}

/* Copy the good model into dir, then replace one file with given bytes. */
static void
MakeVariant(const char *src, const char *dir, const char *file,
			const void *bytes, size_t len)
{
	static const char *const files[] = {
		"config.json", "vocab.txt", "tokenizer_config.json", "modules.json",
		"sentence_bert_config.json", "model.safetensors", "1_Pooling/config.json"
	};
	char		a[1024],
				b[1024];
	size_t		i,
				n;

	snprintf(a, sizeof(a), "rm -rf '%s' && mkdir -p '%s/1_Pooling'", dir, dir);
	if (system(a) != 0)
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		char	   *buf;

		snprintf(a, sizeof(a), "%s/%s", src, files[i]);
		snprintf(b, sizeof(b), "%s/%s", dir, files[i]);
		buf = Slurp(a, &n);
		if (buf)
		{
			Spit(b, buf, n);
			free(buf);
		}
	}
	if (file)
	{
		snprintf(b, sizeof(b), "%s/%s", dir, file);
		if (bytes)
			Spit(b, bytes, len);
		else
			unlink(b);
	}
}

/* Expect loading dir to fail with status want and a message containing needle. */
static void
ExpectFail(const char *label, const char *dir, CvStatus want, const char *needle)
{
	CvModel		m = NULL;
	char		err[1024] = "";
	CvStatus	st = cv_model_load(dir, &m, err, sizeof(err));
	int			ok = (st == want && m == NULL && strstr(err, needle) != NULL);

	if (!ok)
		printf("  status %d (want %d), message: %s\n", st, want, err);
	Check(ok, "%s rejected", label);
	cv_model_free(m);
}

/* Run the checks on one good model folder against the reference pooled output. */
static void
CheckModel(const char *fixtures, const char *name, cJSON *ref, const float *refbin,
		   int check_layers)
{
	char		path[1024],
				err[1024];
	CvModel		m;
	cJSON	   *strings = cJSON_GetObjectItem(ref, "strings");
	cJSON	   *ids = cJSON_GetObjectItem(ref, "ids");
	int			n = cJSON_GetArraySize(strings);
	int32_t   **tids = calloc(n, sizeof(int32_t *));
	int		   *lens = calloc(n, sizeof(int));
	float	   *out,
			   *one;
	float	   *hs[64] = {0};
	size_t		T = 0;
	int			b,
				l,
				idsok = 1;
	cJSON	   *pooled;
	double		worst;

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	if (cv_model_load(path, &m, err, sizeof(err)) != CV_OK)
	{
		Check(0, "%s does not load: %s", name, err);
		return;
	}
	Check(1, "%s loads", name);

	/* our tokenizer must give the ids transformers used */
	for (b = 0; b < n; b++)
	{
		const char *s = cJSON_GetArrayItem(strings, b)->valuestring;
		cJSON	   *want = cJSON_GetArrayItem(ids, b);
		int			i;

		cv_tokenize(m->tok, s, strlen(s), 64, &tids[b], &lens[b]);
		if (lens[b] != cJSON_GetArraySize(want))
			idsok = 0;
		for (i = 0; idsok && i < lens[b]; i++)
			if (tids[b][i] != cJSON_GetArrayItem(want, i)->valueint)
				idsok = 0;
		T += lens[b];
	}
	Check(idsok, "%s token ids match transformers", name);

	out = malloc(sizeof(float) * n * m->hidden);
	one = malloc(sizeof(float) * m->hidden);
	for (l = 0; l <= m->layers; l++)
		hs[l] = malloc(sizeof(float) * T * m->hidden);
	if (cv_encode(m, n, (const int32_t *const *) tids, lens, out,
				  check_layers ? hs : NULL, err, sizeof(err)) != CV_OK)
	{
		Check(0, "encode: %s", err);
		return;
	}
	if (check_layers)
	{
		cJSON	   *layers = cJSON_GetObjectItem(ref, "hidden_states");

		for (l = 0; l <= m->layers; l++)
		{
			int			off = cJSON_GetObjectItem(cJSON_GetArrayItem(layers, l), "offset")->valueint;
			size_t		start = 0;
			char		label[64];

			worst = 0;
			for (b = 0; b < n; b++)
			{
				double		e = num_rel_err(hs[l] + start * m->hidden,
									   refbin + off + start * m->hidden,
									   (size_t) lens[b] * m->hidden);

				num_worst_max(&worst, e);
				start += lens[b];
			}
			snprintf(label, sizeof(label), "%s hidden_states[%d]", name, l);
			Check(num_at_most(worst, REL_TOL), "%s worst relative error %.3g", label, worst);
		}
	}
	pooled = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "pooled"), name);
	worst = 0;
	for (b = 0; b < n; b++)
	{
		double		e = num_rel_err(out + b * m->hidden,
							   refbin + cJSON_GetObjectItem(pooled, "offset")->valueint + b * m->hidden,
							   m->hidden);

		num_worst_max(&worst, e);
	}
	snprintf(path, sizeof(path), "%s pooled output vs sentence-transformers", name);
	Check(num_at_most(worst, REL_TOL), "%s: worst relative error %.3g", path, worst);

	/* one sequence at a time must give what the packed batch gave */
	worst = 0;
	for (b = 0; b < n; b++)
	{
		const int32_t *p = tids[b];
		double		e;

		if (cv_encode(m, 1, &p, &lens[b], one, NULL, err, sizeof(err)) != CV_OK)
			e = NAN;			/* a failed encode is a failed comparison */
		else
			e = num_rel_err(one, out + b * m->hidden, m->hidden);
		num_worst_max(&worst, e);
	}
	snprintf(path, sizeof(path), "%s batch of %d vs one at a time", name, n);
	Check(num_at_most(worst, 1e-6), "%s: worst relative error %.3g", path, worst);

	/* bad ids and lengths are refused, never read out of bounds */
	{
		int32_t		bad[3] = {2, 1000000, 3};
		const int32_t *p = bad;
		int			len3 = 3,
					len0 = 0;

		Check(cv_encode(m, 1, &p, &len3, one, NULL, err, sizeof(err)) == CV_ERR_INVALID,
			  "%s refuses an out-of-vocabulary id", name);
		Check(cv_encode(m, 1, &p, &len0, one, NULL, err, sizeof(err)) == CV_ERR_INVALID,
			  "%s refuses an empty sequence", name);
	}
	for (b = 0; b < n; b++)
		free(tids[b]);
	for (l = 0; l <= m->layers; l++)
		free(hs[l]);
	free(tids);
	free(lens);
	free(out);
	free(one);
	cv_model_free(m);
}

/* Run every check. */
int
main(int argc, char **argv)
{
	const char *fx;
	char		path[1024],
				tmpl[] = "/tmp/cvtest.XXXXXX",
			   *tmp,
			   *buf,
				dir[1100],
				good[1100];
	cJSON	   *ref;
	float	   *refbin;
	size_t		len;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
		return 2;
	}
	fx = argv[1];
	cv_encoder_set_threads(1);
	snprintf(path, sizeof(path), "%s/tiny-bert-ref.json", fx);
	buf = Slurp(path, NULL);
	ref = buf ? cJSON_Parse(buf) : NULL;
	free(buf);
	snprintf(path, sizeof(path), "%s/tiny-bert-ref.bin", fx);
	refbin = (float *) Slurp(path, &len);
	if (!ref || !refbin)
	{
		printf("cannot read the reference files in %s\n", fx);
		printf("tiny-model: 0 passed, 1 failed\n");
		return 1;
	}
	CheckModel(fx, "tiny-bert", ref, refbin, 1);
	CheckModel(fx, "tiny-bert-f16-cls", ref, refbin, 0);

	/* bad folders */
	tmp = mkdtemp(tmpl);
	snprintf(good, sizeof(good), "%s/tiny-bert", fx);
	snprintf(dir, sizeof(dir), "%s/missing", tmp);
	ExpectFail("missing folder", dir, CV_ERR_NOT_FOUND, "missing");

	snprintf(dir, sizeof(dir), "%s/noweights", tmp);
	MakeVariant(good, dir, "model.safetensors", NULL, 0);
	ExpectFail("folder without model.safetensors", dir, CV_ERR_NOT_FOUND, "model.safetensors");

	snprintf(dir, sizeof(dir), "%s/novocab", tmp);
	MakeVariant(good, dir, "vocab.txt", NULL, 0);
	ExpectFail("folder without vocab.txt", dir, CV_ERR_NOT_FOUND, "vocab.txt");

	snprintf(dir, sizeof(dir), "%s/short", tmp);
	MakeVariant(good, dir, "model.safetensors", "abc", 3);
	ExpectFail("3-byte safetensors", dir, CV_ERR_CORRUPT, "too short");

	{
		unsigned char hdr[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};

		snprintf(dir, sizeof(dir), "%s/hugeheader", tmp);
		MakeVariant(good, dir, "model.safetensors", hdr, sizeof(hdr));
		ExpectFail("header length past the file", dir, CV_ERR_CORRUPT, "header length");
	}
	{
		const char *j = "{\"x\": 1";
		unsigned char hdr[64] = {7, 0, 0, 0, 0, 0, 0, 0};

		memcpy(hdr + 8, j, 7);
		snprintf(dir, sizeof(dir), "%s/badjson", tmp);
		MakeVariant(good, dir, "model.safetensors", hdr, 15);
		ExpectFail("header not JSON", dir, CV_ERR_CORRUPT, "not valid JSON");
	}
	{
		/* the good file cut in half: offsets point past the end */
		char		p2[1200];
		char	   *w;
		size_t		wl;

		snprintf(p2, sizeof(p2), "%s/model.safetensors", good);
		w = Slurp(p2, &wl);
		snprintf(dir, sizeof(dir), "%s/truncated", tmp);
		MakeVariant(good, dir, "model.safetensors", w, wl / 2);
		ExpectFail("truncated safetensors", dir, CV_ERR_CORRUPT, "outside");
		free(w);
	}
	{
		/* a config whose hidden_size disagrees with the tensors */
		char		p2[1200];
		char	   *c,
				   *at;
		size_t		cl;

		snprintf(p2, sizeof(p2), "%s/config.json", good);
		c = Slurp(p2, &cl);
		at = strstr(c, "\"intermediate_size\": 64");
		if (at)
			memcpy(at, "\"intermediate_size\": 65", 23);
		snprintf(dir, sizeof(dir), "%s/shape", tmp);
		MakeVariant(good, dir, "config.json", c, cl);
		ExpectFail("shape disagreeing with config", dir, CV_ERR_CORRUPT, "implies");
		free(c);
	}
	{
		const char *c = "{\"model_type\": \"bert\", \"hidden_act\": \"relu\", \"hidden_size\": 32}";

		snprintf(dir, sizeof(dir), "%s/relu", tmp);
		MakeVariant(good, dir, "config.json", c, strlen(c));
		ExpectFail("hidden_act relu", dir, CV_ERR_UNSUPPORTED, "hidden_act");
	}
	{
		const char *c = "{\"model_type\": \"bert\", \"hidden_act\": \"gelu\", \"hidden_size\": 32}";

		snprintf(dir, sizeof(dir), "%s/nolayers", tmp);
		MakeVariant(good, dir, "config.json", c, strlen(c));
		ExpectFail("config without num_hidden_layers", dir, CV_ERR_UNSUPPORTED, "num_hidden_layers");
	}
	{
		const char *c = "{\"model_type\": \"roberta\"}";

		snprintf(dir, sizeof(dir), "%s/roberta", tmp);
		MakeVariant(good, dir, "config.json", c, strlen(c));
		ExpectFail("model_type roberta", dir, CV_ERR_UNSUPPORTED, "model_type");
	}
	{
		const char *c = "{\"word_embedding_dimension\": 32, \"pooling_mode_max_tokens\": true}";

		snprintf(dir, sizeof(dir), "%s/maxpool", tmp);
		MakeVariant(good, dir, "1_Pooling/config.json", c, strlen(c));
		ExpectFail("max pooling", dir, CV_ERR_UNSUPPORTED, "pooling_mode_max_tokens");
	}
	{
		const char *c = "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
			"{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
			"{\"idx\":2,\"name\":\"2\",\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]";

		snprintf(dir, sizeof(dir), "%s/dense", tmp);
		MakeVariant(good, dir, "modules.json", c, strlen(c));
		ExpectFail("Dense module", dir, CV_ERR_UNSUPPORTED, "Dense");
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	if (system(path) != 0)
		printf("could not remove %s\n", tmp);

	cJSON_Delete(ref);
	free(refbin);
	printf("tiny-model: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
