/*
 * test_int8.c
 *	  The int8 encoder path (src/qlinear.c, codevec.cpu_precision = int8):
 *
 *	  quantize    cv_quantize_rows_u8 against hand-worked rows and the
 *	              rounding bound |x - s (q - z)| <= s / 2 on random rows
 *	  real model  int8 vs sentence-transformers' fp32 reference (the
 *	              committed fixture, independent of our fp32 path) and vs
 *	              our fp32: min cosine >= 0.99, mean >= 0.999
 *	  batching    each string embedded alone equals its row of a batch:
 *	              bit for bit at int8; at fp32 to cosine distance < 1e-6
 *	              (OpenBLAS picks different kernels for different row
 *	              counts, so fp32 rows can differ in the last bits)
 *	  threads     int8 at 2 threads equals int8 at 1 thread bit for bit:
 *	              batches of 16 and all strings as one batch (which the
 *	              encoder runs in groups of sequences, one per thread)
 *	  tiny model  the 32-wide random BERT runs at int8 (shapes far from
 *	              the real model's), cosine to fp32 >= 0.99
 *	  errors      int8 asked for without cv_qlinear_attach: CV_ERR_INVALID
 *
 * Where this CPU cannot run int8 (cv_int8_available says why) the int8
 * checks are reported as skipped ("ok ... # SKIP").
 *
 * Usage: test_int8 MODEL_DIR STRINGS_JSONL REF_BIN TINY_MODEL_DIR
 * Prints TAP lines and "int8: P passed, F failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "encoder.h"
#include "model.h"
#include "qlinear.h"
#include "tokenizer.h"
#include "numcheck.h"

#define BATCH 16

static int	passed,
			failed;

/* Print one TAP line and count it. */
static void
Check(int ok, const char *fmt, const char *detail)
{
	printf("%s - %s%s%s\n", ok ? "ok" : "not ok", fmt, detail ? ": " : "", detail ? detail : "");
	if (ok)
		passed++;
	else
		failed++;
}

/* Embed n texts (batch at a time) into out; returns 0 on an encoder error. */
static int
EmbedTexts(CvModel m, char **texts, int n, int batch, float *out)
{
	char		err[256];
	int			max_tokens = m->max_seq_length > 0 ? m->max_seq_length : 256;

	if (max_tokens > m->max_positions)
		max_tokens = m->max_positions;
	for (int i = 0; i < n; i += batch)
	{
		int32_t    *ids[BATCH];
		int			lens[BATCH],
					nb = n - i < batch ? n - i : batch;
		CvStatus	st;

		for (int k = 0; k < nb; k++)
			cv_tokenize(m->tok, texts[i + k], strlen(texts[i + k]), max_tokens, &ids[k], &lens[k]);
		st = cv_encode(m, nb, (const int32_t *const *) ids, lens,
					   out + (size_t) i * m->hidden, NULL, err, sizeof(err));
		for (int k = 0; k < nb; k++)
			free(ids[k]);
		if (st != CV_OK)
		{
			printf("# encode: %s\n", err);
			return 0;
		}
	}
	return 1;
}

/* Embed all n texts as one batch into out; returns its token count, 0 on an error. */
static long
EmbedOneBatch(CvModel m, char **texts, int n, float *out)
{
	int32_t   **ids = malloc(sizeof(int32_t *) * n);
	int		   *lens = malloc(sizeof(int) * n);
	long		total = 0;
	char		err[256];

	for (int k = 0; k < n; k++)
	{
		cv_tokenize(m->tok, texts[k], strlen(texts[k]), 256, &ids[k], &lens[k]);
		total += lens[k];
	}
	if (cv_encode(m, n, (const int32_t *const *) ids, lens, out, NULL, err, sizeof(err)) != CV_OK)
	{
		printf("# encode: %s\n", err);
		total = 0;
	}
	for (int k = 0; k < n; k++)
		free(ids[k]);
	free(ids);
	free(lens);
	return total;
}

/* Give min and mean cosine of n row pairs. */
static void
CosineStats(const float *a, const float *b, int n, int d, double *min, double *mean)
{
	double		sum = 0;

	*min = 2;
	for (int i = 0; i < n; i++)
	{
		double		c = num_cosine(a + (size_t) i * d, b + (size_t) i * d, d);

		num_worst_min(min, c);
		sum += c;
	}
	*mean = sum / n;
}

/* Check cv_quantize_rows_u8 on worked rows and random ones. */
static void
TestQuantize(void)
{
	/* row 1: [-1, 0, 1.55]: s = 2.55/255 = 0.01, z = 100, q = 0, 100, 255 */
	float		x[3] = {-1.0f, 0.0f, 1.55f};
	unsigned char q[3];
	float		s;
	int			z;
	float		r[1000];
	unsigned char qr[1000];
	double		worst = 0;
	char		msg[128];

	cv_quantize_rows_u8(x, 1, 3, q, &s, &z);
	snprintf(msg, sizeof(msg), "s %g z %d q %d %d %d", s, z, q[0], q[1], q[2]);
	Check(num_close(s, 0.01, 1e-7) && z == 100 && q[0] == 0 && q[1] == 100 && q[2] == 255,
		  "quantize [-1, 0, 1.55]: scale 0.01, zero point 100, q 0 100 255", msg);

	/* all positive: the range is widened to 0, so z = 0 and 0 stays exact */
	x[0] = 0.5f;
	x[1] = 2.55f;
	x[2] = 1.0f;
	cv_quantize_rows_u8(x, 1, 3, q, &s, &z);
	snprintf(msg, sizeof(msg), "s %g z %d q %d %d %d", s, z, q[0], q[1], q[2]);
	Check(z == 0 && q[0] == 50 && q[1] == 255 && q[2] == 100,
		  "quantize [0.5, 2.55, 1]: zero point 0, q 50 255 100", msg);

	/* all zero: no division by zero, everything maps back to 0 */
	memset(x, 0, sizeof(x));
	cv_quantize_rows_u8(x, 1, 3, q, &s, &z);
	Check(s > 0 && isfinite(s) && q[0] == z && q[1] == z && q[2] == z,
		  "quantize an all-zero row: finite scale, every q equals the zero point", NULL);

	/* random rows of odd lengths (the vector body and the scalar tail) */
	srand(7);
	for (int len = 1; len <= 1000; len += 37)
	{
		for (int j = 0; j < len; j++)
			r[j] = (float) (rand() / (double) RAND_MAX * 7.0 - 2.0);
		cv_quantize_rows_u8(r, 1, len, qr, &s, &z);
		for (int j = 0; j < len; j++)
			num_worst_max(&worst, fabs(r[j] - s * (qr[j] - z)) / s);
	}
	snprintf(msg, sizeof(msg), "max |x - s (q - z)| / s = %.4f", worst);
	Check(num_at_most(worst, 0.5001), "quantize random rows of 1..1000: error <= half a step", msg);
}

/* Read the fixture strings and the sentence-transformers reference. */
static int
ReadFixtures(const char *strings, const char *refbin, int hidden, char ***texts, float **ref)
{
	FILE	   *f = fopen(strings, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	int			n = 0;
	long		len;

	*texts = NULL;
	while (f && getline(&line, &cap, f) > 0)
	{
		cJSON	   *j = cJSON_Parse(line);

		*texts = realloc(*texts, sizeof(char *) * (n + 1));
		(*texts)[n++] = strdup(cJSON_GetObjectItem(j, "text")->valuestring);
		cJSON_Delete(j);
	}
	if (f)
		fclose(f);
	free(line);
	f = fopen(refbin, "rb");
	if (!f || n == 0)
		return 0;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (len != (long) n * hidden * 4)
		return 0;
	*ref = malloc(len);
	if (fread(*ref, 1, len, f) != (size_t) len)
		return 0;
	fclose(f);
	return n;
}

/* Run the real-model checks at int8. */
static void
TestRealModel(const char *dir, const char *strings, const char *refbin)
{
	CvModel		m;
	char		err[1024],
				msg[256];
	char	  **texts;
	float	   *ref = NULL,
			   *fp32,
			   *int8,
			   *alone;
	int			n,
				d,
				same8 = 1,
				same32 = 1;
	double		min,
				mean;

	if (cv_model_load(dir, &m, err, sizeof(err)) != CV_OK)
	{
		Check(0, "load the real model", err);
		return;
	}
	cv_encoder_set_threads(2);
	d = m->hidden;
	n = ReadFixtures(strings, refbin, d, &texts, &ref);
	if (n == 0)
	{
		Check(0, "read the real-model fixtures", strings);
		return;
	}
	fp32 = malloc(sizeof(float) * n * d);
	int8 = malloc(sizeof(float) * n * d);
	alone = malloc(sizeof(float) * n * d);

	/* asking for int8 before attaching is an error, not a silent fp32 */
	m->precision = CV_PRECISION_INT8;
	{
		int32_t    *ids;
		int			len;
		float		o[4096];

		cv_tokenize(m->tok, "x", 1, 16, &ids, &len);
		Check(cv_encode(m, 1, (const int32_t *const *) &ids, &len, o, NULL, err, sizeof(err)) == CV_ERR_INVALID,
			  "int8 without cv_qlinear_attach: CV_ERR_INVALID", err);
		free(ids);
	}
	m->precision = CV_PRECISION_FP32;
	Check(EmbedTexts(m, texts, n, BATCH, fp32), "fp32: embed the fixture strings", NULL);
	for (int i = 0; i < n; i++)
		EmbedTexts(m, texts + i, 1, 1, alone + (size_t) i * d);
	CosineStats(alone, fp32, n, d, &min, &mean);
	same32 = num_at_least(min, 1 - 1e-6);
	snprintf(msg, sizeof(msg), "min cosine %.8f", min);
	Check(same32, "fp32: each string alone equals its row of a batch of 16 (cosine distance < 1e-6)", msg);

	if (cv_qlinear_attach(m, err, sizeof(err)) != CV_OK)
	{
		printf("ok - int8 real-model checks # SKIP %s\n", err);
		passed++;
		cv_model_free(m);
		return;
	}
	m->precision = CV_PRECISION_INT8;
	Check(EmbedTexts(m, texts, n, BATCH, int8), "int8: embed the fixture strings", cv_int8_isa());

	CosineStats(int8, ref, n, d, &min, &mean);
	snprintf(msg, sizeof(msg), "%d strings, min %.6f, mean %.6f", n, min, mean);
	Check(num_at_least(min, 0.99) && num_at_least(mean, 0.999),
		  "int8 vs sentence-transformers fp32: min cosine >= 0.99, mean >= 0.999", msg);
	CosineStats(int8, fp32, n, d, &min, &mean);
	snprintf(msg, sizeof(msg), "%d strings, min %.6f, mean %.6f", n, min, mean);
	Check(num_at_least(min, 0.99) && num_at_least(mean, 0.999),
		  "int8 vs our fp32: min cosine >= 0.99, mean >= 0.999", msg);
	/* and it is not fp32 under another name: quantization moves the numbers */
	Check(memcmp(int8, fp32, sizeof(float) * n * d) != 0,
		  "int8 output differs from fp32 (the int8 path ran)", NULL);

	for (int i = 0; i < n; i++)
		EmbedTexts(m, texts + i, 1, 1, alone + (size_t) i * d);
	for (int i = 0; i < n && same8; i++)
		if (memcmp(alone + (size_t) i * d, int8 + (size_t) i * d, sizeof(float) * d) != 0)
		{
			snprintf(msg, sizeof(msg), "string %d differs", i + 1);
			same8 = 0;
		}
	Check(same8, "int8: each string alone equals its row of a batch of 16, bit for bit",
		  same8 ? NULL : msg);

	/*
	 * The thread count changes nothing: batches of 16, and all strings in
	 * one batch (thousands of tokens: the encoder splits it into groups of
	 * whole sequences run one per thread, longest first), at 2 threads and
	 * at 1, against the batches of 16 at 2 threads above.
	 */
	{
		float	   *one1 = malloc(sizeof(float) * n * d),
				   *one2 = malloc(sizeof(float) * n * d);
		long		tokens;

		cv_encoder_set_threads(1);
		EmbedTexts(m, texts, n, BATCH, alone);
		Check(memcmp(alone, int8, sizeof(float) * n * d) == 0,
			  "int8: batches of 16 at 1 thread equal them at 2 threads, bit for bit", NULL);
		tokens = EmbedOneBatch(m, texts, n, one1);
		cv_encoder_set_threads(2);
		snprintf(msg, sizeof(msg), "%d strings, %ld tokens", n, tokens);
		Check(tokens > 0 && EmbedOneBatch(m, texts, n, one2) == tokens &&
			  memcmp(one2, int8, sizeof(float) * n * d) == 0 &&
			  memcmp(one1, int8, sizeof(float) * n * d) == 0,
			  "int8: all strings as one batch at 2 threads and at 1 equal the batches of 16, bit for bit", msg);
		free(one1);
		free(one2);
	}

	/* switching back gives fp32 again, bit for bit */
	m->precision = CV_PRECISION_FP32;
	EmbedTexts(m, texts, n, BATCH, alone);
	Check(memcmp(alone, fp32, sizeof(float) * n * d) == 0,
		  "back to fp32 after int8: the same bits as before", NULL);
	cv_model_free(m);
	for (int i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(ref);
	free(fp32);
	free(int8);
	free(alone);
}

/* Run the tiny random model at int8. */
static void
TestTinyModel(const char *dir)
{
	CvModel		m;
	char		err[1024],
				msg[128];
	char	   *texts[4] = {"hello world", "def f(x): return x", "a", "int main(void) { return 0; }"};
	float		fp32[4 * 32],
				int8[4 * 32];
	double		min,
				mean;

	if (cv_model_load(dir, &m, err, sizeof(err)) != CV_OK)
	{
		Check(0, "load the tiny model", err);
		return;
	}
	if (cv_qlinear_attach(m, err, sizeof(err)) != CV_OK)
	{
		printf("ok - int8 tiny-model checks # SKIP %s\n", err);
		passed++;
		cv_model_free(m);
		return;
	}
	EmbedTexts(m, texts, 4, 4, fp32);
	m->precision = CV_PRECISION_INT8;
	Check(EmbedTexts(m, texts, 4, 4, int8) && num_all_finite(int8, 4 * m->hidden),
		  "int8: the tiny model (hidden 32, 4 heads, intermediate 64) runs", NULL);
	CosineStats(int8, fp32, 4, m->hidden, &min, &mean);
	snprintf(msg, sizeof(msg), "min %.6f", min);
	Check(num_at_least(min, 0.99), "int8 tiny model vs fp32: min cosine >= 0.99", msg);
	cv_model_free(m);
}

/*
 * Move the tiny model's fp32 weights and then its int8 layers into shared
 * mappings (what the postmaster does when it preloads a model): the
 * vectors at fp32 and at int8 stay the same bit for bit, the weights are
 * read-only there, and cv_model_free unmaps them.
 */
static void
TestShared(const char *dir)
{
	CvModel		m,
				s;
	char		err[1024];
	char	   *texts[4] = {"hello world", "def f(x): return x", "a", "int main(void) { return 0; }"};
	float		want32[4 * 32],
				want8[4 * 32],
				got32[4 * 32],
				got8[4 * 32];

	if (cv_model_load(dir, &m, err, sizeof(err)) != CV_OK || cv_model_load(dir, &s, err, sizeof(err)) != CV_OK)
	{
		Check(0, "load the tiny model twice", err);
		return;
	}
	Check(cv_model_share_weights(s, err, sizeof(err)) == CV_OK && s->weights_shared,
		  "cv_model_share_weights moves the fp32 weights", err);
	if (cv_qlinear_attach(m, err, sizeof(err)) != CV_OK || cv_qlinear_attach(s, err, sizeof(err)) != CV_OK)
	{
		printf("ok - shared int8 layers # SKIP %s\n", err);
		passed++;
		cv_model_free(m);
		cv_model_free(s);
		return;
	}
	Check(cv_qlinear_share(s, err, sizeof(err)) == CV_OK, "cv_qlinear_share moves the int8 layers", err);
	EmbedTexts(m, texts, 4, 4, want32);
	EmbedTexts(s, texts, 4, 4, got32);
	m->precision = s->precision = CV_PRECISION_INT8;
	EmbedTexts(m, texts, 4, 4, want8);
	EmbedTexts(s, texts, 4, 4, got8);
	Check(memcmp(want32, got32, sizeof(float) * 4 * m->hidden) == 0,
		  "fp32 from shared weights: bit for bit the private model's", NULL);
	Check(memcmp(want8, got8, sizeof(float) * 4 * m->hidden) == 0,
		  "int8 from shared layers: bit for bit the private model's", NULL);
	cv_model_free(m);
	cv_model_free(s);
}

/* Run every check. */
int
main(int argc, char **argv)
{
	char		err[256];

	if (argc != 5)
	{
		fprintf(stderr, "usage: %s MODEL_DIR STRINGS_JSONL REF_BIN TINY_MODEL_DIR\n", argv[0]);
		return 2;
	}
	if (cv_int8_available(err, sizeof(err)) == CV_OK)
		printf("# int8 through oneDNN, instruction set %s\n", cv_int8_isa());
	else
		printf("# int8 unavailable here: %s\n", err);
	TestQuantize();
	TestRealModel(argv[1], argv[2], argv[3]);
	TestTinyModel(argv[4]);
	TestShared(argv[4]);
	printf("int8: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
