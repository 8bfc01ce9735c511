/*
 * test_encoder.c
 *	  GPU encoder (cuda/encoder.cu) against the CPU fp32 reference
 *	  (src/encoder.c) on real strings, standalone (no PostgreSQL).
 *
 * Usage: test_encoder MODEL_DIR STRINGS_JSONL [MORE_JSONL [N_MORE]] [--quick]
 *
 * Loads the model with src/model.c, tokenizes every "text" of the JSONL
 * files with src/tokenizer.c (max_seq_length tokens), embeds them on the
 * CPU (OpenBLAS) and on the GPU, and checks:
 *	- cosine(GPU, CPU) >= 0.9999 for every string, every output finite
 *	  (the output is poisoned with NaN first);
 *	- batch = 1 gives bit-identical vectors to one large batched call, and
 *	  so does an encoder whose launches hold at most 512 tokens (chunking);
 *	- sequences of 300 and 512 tokens (several attention tiles);
 *	- [CLS] pooling, and error statuses for bad ids, lengths and shapes.
 * Informative (printed with '#', not counted): cuBLASLt's tanh GELU
 * epilogue and per-size GEMM heuristics, against the CPU and batch = 1.
 * --quick embeds 8 strings only (for compute-sanitizer).
 * Prints TAP lines and "encoder: N passed, N failed" last.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "encoder.h"			/* src/encoder.h: the CPU reference */
#include "model.h"
#include "tokenizer.h"
#include "model_cuda.h"
#include "numcheck.h"		/* test/c/numcheck.h: NaN-safe comparisons */

#define MIN_COSINE 0.9999

static int	ntest = 0,
			npassed = 0,
			nfailed = 0;

/* Print one TAP line and count it. */
static void
Check(int ok, const char *fmt, ...)
{
	va_list		ap;

	ntest++;
	printf("%s %d - ", ok ? "ok" : "not ok", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		npassed++;
	else
		nfailed++;
}

/* Give the cosine of two vectors of n floats (NaN for a zero or non-finite one). */
static double
Cosine(const float *a, const float *b, int n)
{
	return num_cosine(a, b, (size_t) n);
}

/* Read the "text" of every line of a JSONL file, appending to *texts. */
static int
ReadTexts(const char *path, char ***texts, int n, int limit)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	int			got = 0;

	if (!f)
		return n;
	while ((limit < 0 || got < limit) && getline(&line, &cap, f) > 0)
	{
		cJSON	   *j = cJSON_Parse(line);
		cJSON	   *t = j ? cJSON_GetObjectItem(j, "text") : NULL;

		if (t && cJSON_IsString(t))
		{
			*texts = realloc(*texts, sizeof(char *) * (n + 1));
			(*texts)[n++] = strdup(t->valuestring);
			got++;
		}
		cJSON_Delete(j);
	}
	free(line);
	fclose(f);
	return n;
}

/* Fill the GPU encoder's config and weight pointers from a loaded model. */
static void
FromModel(CvModel m, CodevecCudaEncoderConfig *cfg, CodevecCudaEncoderWeights *w,
		  CodevecCudaLayerWeights *lw)
{
	cv_model_to_cuda(m, cfg, w, lw);
}

/* Embed n sequences on the CPU in batches of 16. */
static int
CpuEncode(CvModel m, int n, int32_t **ids, int *lens, float *out)
{
	char		err[512];

	for (int i = 0; i < n; i += 16)
	{
		int			nb = n - i < 16 ? n - i : 16;

		if (cv_encode(m, nb, (const int32_t *const *) (ids + i), lens + i,
					  out + (size_t) i * m->hidden, NULL, err, sizeof(err)) != CV_OK)
		{
			printf("# cpu encode: %s\n", err);
			return 1;
		}
	}
	return 0;
}

/* Compare GPU output with the reference: worst cosine, count below MIN_COSINE. */
static int
CompareCos(const float *gpu, const float *ref, int n, int H, double *worst, int *worst_i)
{
	int			bad = 0;

	*worst = 2;
	*worst_i = -1;
	for (int i = 0; i < n; i++)
	{
		double		c = Cosine(gpu + (size_t) i * H, ref + (size_t) i * H, H);

		if (!num_at_least(c, MIN_COSINE))
			bad++;
		if (isfinite(*worst) && (!isfinite(c) || c < *worst))
			*worst_i = i;
		num_worst_min(worst, c);
	}
	return bad;
}

/* Count NaN/inf (unwritten poison) in n floats. */
static size_t
NonFinite(const float *x, size_t n)
{
	size_t		k = 0;

	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			k++;
	return k;
}

/* Fill n floats with NaN (poison). */
static void
Poison(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = NAN;
}

/* Largest |a - b| over n floats. */
static double
MaxDiff(const float *a, const float *b, size_t n)
{
	double		d = 0;

	for (size_t i = 0; i < n; i++)
		num_worst_max(&d, fabs((double) a[i] - b[i]));	/* NaN/inf stays */
	return d;
}

/* Embed sequences one at a time on the GPU. */
static int
GpuOneByOne(CodevecCudaEncoder e, int n, int32_t **ids, int *lens, float *out, int H)
{
	char		err[512];

	for (int i = 0; i < n; i++)
	{
		int			rc = codevec_cuda_encode(e, 1, (const int32_t *const *) (ids + i),
											 lens + i, out + (size_t) i * H, err, sizeof(err));

		if (rc != 0)
		{
			printf("# gpu encode: %s\n", err);
			return rc;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	CvModel		m;
	char		err[1024];
	char	  **texts = NULL;
	int			n = 0,
				quick = 0,
				rc;
	const char *args[4];
	int			nargs = 0;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (nargs < 4)
			args[nargs++] = argv[i];
	}
	if (nargs < 2)
	{
		fprintf(stderr, "usage: %s MODEL_DIR STRINGS_JSONL [MORE_JSONL [N_MORE]] [--quick]\n", argv[0]);
		return 2;
	}
	if (cv_model_load(args[0], &m, err, sizeof(err)) != CV_OK)
	{
		printf("not ok 1 - load %s: %s\nencoder: 0 passed, 1 failed\n", args[0], err);
		return 1;
	}
	cv_encoder_set_threads(8);
	n = ReadTexts(args[1], &texts, 0, quick ? 8 : -1);
	if (nargs >= 3 && !quick)
		n = ReadTexts(args[2], &texts, n, nargs >= 4 ? atoi(args[3]) : 1000);
	printf("# model %s (%s weights): %d layers x %d, %d heads, %s pooling; %d strings\n",
		   m->name, m->dtype, m->layers, m->hidden, m->heads, cv_pooling_name(m->pooling), n);

	const int	H = m->hidden;
	int			max_tokens = m->max_seq_length > 0 ? m->max_seq_length : 256;
	int32_t   **ids = malloc(sizeof(int32_t *) * (n + 2));
	int		   *lens = malloc(sizeof(int) * (n + 2));
	size_t		T = 0;

	for (int i = 0; i < n; i++)
	{
		cv_tokenize(m->tok, texts[i], strlen(texts[i]), max_tokens, &ids[i], &lens[i]);
		T += lens[i];
	}
	printf("# %zu tokens in all, max_tokens %d\n", T, max_tokens);

	float	   *ref = malloc(sizeof(float) * H * (n + 2));
	float	   *gpu = malloc(sizeof(float) * H * (n + 2));
	float	   *one = malloc(sizeof(float) * H * (n + 2));
	struct timespec t0,
				t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = CpuEncode(m, n, ids, lens, ref);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	Check(rc == 0, "CPU reference for %d strings (%.2f s, OpenBLAS %s)", n,
		  (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), cv_encoder_blas_core());

	CodevecCudaEncoderConfig cfg;
	CodevecCudaEncoderWeights w;
	CodevecCudaLayerWeights *lw = calloc(m->layers, sizeof(*lw));
	CodevecCudaEncoder e = NULL;

	FromModel(m, &cfg, &w, lw);
	rc = codevec_cuda_encoder_create(&cfg, &w, &e, err, sizeof(err));
	Check(rc == 0, "create the GPU encoder%s%s", rc ? ": " : "", rc ? err : "");
	if (rc != 0)
	{
		printf("encoder: %d passed, %d failed\n", npassed, nfailed);
		return 1;
	}
	{
		CodevecCudaEncoderInfo info;

		codevec_cuda_encoder_info(e, &info);
		printf("# device bytes: weights %zu, work %zu (max %d tokens, %d sequences a launch)\n",
			   info.weight_bytes, info.work_bytes, info.max_batch_tokens, info.max_batch_seqs);
	}

	/* 1. one batched call vs the CPU */
	double		worst;
	int			worst_i,
				bad;

	Poison(gpu, (size_t) n * H);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = codevec_cuda_encode(e, n, (const int32_t *const *) ids, lens, gpu, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	Check(rc == 0, "GPU batched encode of %d strings (%.1f ms, first call)%s%s", n,
		  1e3 * ((t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec)),
		  rc ? ": " : "", rc ? err : "");
	Check(NonFinite(gpu, (size_t) n * H) == 0, "every output element written and finite (%zu not)",
		  NonFinite(gpu, (size_t) n * H));
	bad = CompareCos(gpu, ref, n, H, &worst, &worst_i);
	Check(bad == 0, "cosine(GPU, CPU) >= %.4f for every string: worst %.7f (string %d, %d tokens), %d below",
		  MIN_COSINE, worst, worst_i + 1, worst_i >= 0 ? lens[worst_i] : 0, bad);
	{
		double		sum = 0;

		for (int i = 0; i < n; i++)
			sum += Cosine(gpu + (size_t) i * H, ref + (size_t) i * H, H);
		printf("# mean cosine %.8f, max |GPU - CPU| %.3g\n", sum / n, MaxDiff(gpu, ref, (size_t) n * H));
	}

	/* 2. batch = 1 is bit-identical to the batched call */
	Poison(one, (size_t) n * H);
	rc = GpuOneByOne(e, n, ids, lens, one, H);
	Check(rc == 0 && memcmp(one, gpu, sizeof(float) * n * H) == 0,
		  "batch = 1 gives bit-identical vectors to the batched call (max diff %.3g)",
		  MaxDiff(one, gpu, (size_t) n * H));

	/*
	 * 2a. started encodes (codevec_cuda_encode_start, as the GPU service
	 * runs them): three small batches in flight at once, each through its
	 * own pinned pair, three times over (plain launch, capture, replay),
	 * finished out of order, give the batched call's bits; a fourth start
	 * then finds no free pair and starts nothing, and codevec_cuda_encode
	 * refuses; a batch that needs several launches starts nothing
	 */
	{
		int			nb = n < 9 ? n / 3 : 3,
					same = 1,
					refused = 1,
					order[3] = {1, 2, 0};

		for (int round = 0; round < 3 && nb >= 1; round++)
		{
			int			ticket[3],
						t4 = 0;

			Poison(one, (size_t) n * H);
			for (int j = 0; j < 3; j++)
			{
				rc = codevec_cuda_encode_start(e, nb, (const int32_t *const *) (ids + j * nb),
											   lens + j * nb, &ticket[j], err, sizeof(err));
				same = same && rc == 0 && ticket[j] >= 0;
			}
			rc = codevec_cuda_encode_start(e, 1, (const int32_t *const *) ids, lens, &t4, err,
										   sizeof(err));
			refused = refused && rc == 0 && t4 == -1;
			rc = codevec_cuda_encode(e, 1, (const int32_t *const *) ids, lens, one, err, sizeof(err));
			refused = refused && rc == CODEVEC_CUDA_ERR_ARG;
			for (int j = 0; j < 3; j++)
			{
				int			b = order[j];

				rc = codevec_cuda_encode_finish(e, ticket[b], one + (size_t) b * nb * H, err,
												sizeof(err));
				same = same && rc == 0;
			}
			same = same && memcmp(one, gpu, sizeof(float) * 3 * nb * H) == 0;
		}
		Check(nb >= 1 && same,
			  "3 started encodes of %d strings in flight, finished out of order, 3 rounds: the batched call's bits (max diff %.3g)",
			  nb, MaxDiff(one, gpu, (size_t) 3 * nb * H));
		Check(refused, "a 4th start finds every pinned pair held and starts nothing; codevec_cuda_encode refuses");
		rc = codevec_cuda_encode_finish(e, 0, one, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_ARG, "finishing a ticket not started: CODEVEC_CUDA_ERR_ARG (%d)", rc);
		{
			int			t = 0;

			/* the n strings fit one launch only when short and few */
			rc = codevec_cuda_encode_start(e, n, (const int32_t *const *) ids, lens, &t, err,
										   sizeof(err));
			if (rc == 0 && t >= 0)
			{
				rc = codevec_cuda_encode_finish(e, t, one, err, sizeof(err));
				Check(rc == 0 && memcmp(one, gpu, sizeof(float) * n * H) == 0,
					  "all %d strings fit one launch: started, the batched call's bits", n);
			}
			else
				Check(rc == 0 && t == -1, "all %d strings need several launches: nothing started (rc %d)", n, rc);
		}
	}

	/*
	 * 2b. graphs are made at a shape's second use (graph_min_uses): the
	 * first strings' single-query shapes (exact, graph_pad = -1), three
	 * times each - a plain launch, a capture, a replay - give the batched
	 * call's bits every time
	 */
	{
		CodevecCudaEncoder e3;
		CodevecCudaEncoderInfo i0,
					i1;
		int32_t    *sid[8];
		int			slen[8],
					sidx[8],
					m3 = 0,
					same = 1;

		/* up to 8 strings of distinct lengths: distinct shapes */
		for (int i = 0; i < n && m3 < 8; i++)
		{
			int			dup = 0;

			for (int j = 0; j < m3; j++)
				dup |= slen[j] == lens[i];
			if (!dup)
			{
				sid[m3] = ids[i];
				slen[m3] = lens[i];
				sidx[m3++] = i;
			}
		}
		CodevecCudaEncoderConfig c3 = cfg;

		c3.graph_pad = -1;		/* exact shapes: distinct lengths, distinct graphs */
		rc = codevec_cuda_encoder_create(&c3, &w, &e3, err, sizeof(err));
		if (rc == 0)
		{
			for (int r = 0; r < 3 && rc == 0; r++)
			{
				codevec_cuda_encoder_info(e3, &i0);
				Poison(one, (size_t) m3 * H);
				rc = GpuOneByOne(e3, m3, sid, slen, one, H);
				for (int j = 0; j < m3; j++)
					same &= memcmp(one + (size_t) j * H, gpu + (size_t) sidx[j] * H,
								   sizeof(float) * H) == 0;
				codevec_cuda_encoder_info(e3, &i1);
				printf("# round %d: %ld launches, %ld captured, %ld replayed\n", r + 1,
					   i1.launches - i0.launches, i1.graph_captures - i0.graph_captures,
					   i1.graph_replays - i0.graph_replays);
				if (r == 0)
					Check(i1.graph_captures == 0 && i1.graph_replays == 0,
						  "first use of each shape: plain launches, no graph (%ld captured)",
						  i1.graph_captures);
				else if (r == 1)
					Check(i1.graph_captures == m3 && i1.graph_replays == 0,
						  "second use: each of the %d shapes captured (%ld graphs)", m3,
						  i1.graph_captures);
				else
					Check(i1.graph_captures == i0.graph_captures &&
						  i1.graph_replays - i0.graph_replays == m3,
						  "third use: every launch replays a graph (%ld of %d)",
						  i1.graph_replays - i0.graph_replays, m3);
			}
			codevec_cuda_encoder_free(e3);
		}
		Check(rc == 0 && same, "plain launch, capture and replay give the batched call's bits%s%s",
			  rc ? ": " : "", rc ? err : "");
	}

	/*
	 * 2c. bucket shapes (graph_pad, the default): every string alone,
	 * three passes.  Lengths that round to the same bucket (tokens to a
	 * multiple of 16, of 32 past 128) share one graph, so after two passes
	 * exactly one graph per bucket was captured and the third pass only
	 * replays; the padded launches give the batched call's bits.
	 */
	{
		CodevecCudaEncoder e4;
		CodevecCudaEncoderInfo i0,
					i1;
		int			buckets[64],
					nbuckets = 0,
					small = 0,
					same = 1;

		for (int i = 0; i < n; i++)
		{
			int			step = lens[i] <= 128 ? 16 : 32,
						tp = (lens[i] + step - 1) / step * step,
						seen = 0;

			if (lens[i] > CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_TOKENS)
				continue;		/* no graph: launched plainly, exact */
			small++;
			for (int j = 0; j < nbuckets; j++)
				seen |= buckets[j] == tp;
			if (!seen && nbuckets < 64)
				buckets[nbuckets++] = tp;
		}
		rc = codevec_cuda_encoder_create(&cfg, &w, &e4, err, sizeof(err));
		if (rc == 0)
		{
			codevec_cuda_encoder_info(e4, &i0);
			for (int r = 0; r < 3 && rc == 0; r++)
			{
				if (r == 2)
					codevec_cuda_encoder_info(e4, &i1);
				Poison(one, (size_t) n * H);
				rc = GpuOneByOne(e4, n, ids, lens, one, H);
				same &= rc == 0 && memcmp(one, gpu, sizeof(float) * n * H) == 0;
			}
			{
				CodevecCudaEncoderInfo i2;

				codevec_cuda_encoder_info(e4, &i2);
				printf("# bucket shapes: %d strings of <= %d tokens in %d buckets; "
					   "%ld captured in two passes, third pass %ld captured, %ld replayed\n",
					   small, CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_TOKENS, nbuckets,
					   i1.graph_captures - i0.graph_captures, i2.graph_captures - i1.graph_captures,
					   i2.graph_replays - i1.graph_replays);
				Check(rc == 0 && i1.graph_captures - i0.graph_captures == nbuckets,
					  "bucket shapes: one graph per bucket (%ld for %d buckets of %d strings)",
					  i1.graph_captures - i0.graph_captures, nbuckets, small);
				Check(rc == 0 && i2.graph_captures == i1.graph_captures &&
					  i2.graph_replays - i1.graph_replays == small,
					  "bucket shapes: the third pass replays for all %d strings (%ld)", small,
					  i2.graph_replays - i1.graph_replays);
			}
			codevec_cuda_encoder_free(e4);
		}
		Check(rc == 0 && same, "padded launches give the batched call's bits, every pass%s%s",
			  rc ? ": " : "", rc ? err : "");
	}

	/* 3. chunked launches of <= 512 tokens, graphs off: identical too */
	{
		CodevecCudaEncoderConfig c2 = cfg;
		CodevecCudaEncoder e2;

		c2.max_batch_tokens = 512;
		c2.max_batch_seqs = 7;
		c2.graph_max_tokens = -1;
		rc = codevec_cuda_encoder_create(&c2, &w, &e2, err, sizeof(err));
		if (rc == 0)
		{
			Poison(one, (size_t) n * H);
			rc = codevec_cuda_encode(e2, n, (const int32_t *const *) ids, lens, one, err, sizeof(err));
			codevec_cuda_encoder_free(e2);
		}
		Check(rc == 0 && memcmp(one, gpu, sizeof(float) * n * H) == 0,
			  "launches of <= 512 tokens / 7 sequences, no graphs: bit-identical (max diff %.3g)%s%s",
			  MaxDiff(one, gpu, (size_t) n * H), rc ? ": " : "", rc ? err : "");
	}

	/* 4. long sequences: 300 and 512 tokens of random ids */
	{
		int			L[2] = {300, m->max_positions < 512 ? m->max_positions : 512};
		int32_t    *lid[2];
		float		lr[2 * 1024],
					lg[2 * 1024];
		uint32_t	x = 12345;

		for (int s = 0; s < 2; s++)
		{
			lid[s] = malloc(sizeof(int32_t) * L[s]);
			for (int i = 0; i < L[s]; i++)
			{
				x = x * 1103515245u + 12345u;
				lid[s][i] = 1000 + (int) ((x >> 8) % (uint32_t) (m->vocab_size - 1000));
			}
			lid[s][0] = m->tok->cls_id;
			lid[s][L[s] - 1] = m->tok->sep_id;
		}
		rc = cv_encode(m, 2, (const int32_t *const *) lid, L, lr, NULL, err, sizeof(err));
		if (rc == 0)
			rc = codevec_cuda_encode(e, 2, (const int32_t *const *) lid, L, lg, err, sizeof(err));
		double		c0 = Cosine(lr, lg, H),
					c1 = Cosine(lr + H, lg + H, H);

		Check(rc == 0 && num_at_least(c0, MIN_COSINE) && num_at_least(c1, MIN_COSINE),
			  "sequences of %d and %d tokens: cosine %.7f, %.7f", L[0], L[1], c0, c1);
		free(lid[0]);
		free(lid[1]);
	}

	/* 5. [CLS] pooling */
	{
		int			k = n < 32 ? n : 32;
		CodevecCudaEncoderConfig c2 = cfg;
		CodevecCudaEncoder e2;
		CvPooling	saved = m->pooling;

		m->pooling = CV_POOL_CLS;
		rc = CpuEncode(m, k, ids, lens, ref);	/* first k of ref; restored below */
		m->pooling = saved;
		c2.pooling = CODEVEC_CUDA_POOL_CLS;
		if (rc == 0)
			rc = codevec_cuda_encoder_create(&c2, &w, &e2, err, sizeof(err));
		if (rc == 0)
		{
			Poison(one, (size_t) k * H);
			rc = codevec_cuda_encode(e2, k, (const int32_t *const *) ids, lens, one, err, sizeof(err));
			codevec_cuda_encoder_free(e2);
		}
		bad = CompareCos(one, ref, k, H, &worst, &worst_i);
		Check(rc == 0 && bad == 0, "[CLS] pooling, %d strings: worst cosine %.7f", k, worst);
		/* restore the mean-pooling reference for the informative runs */
		CpuEncode(m, k, ids, lens, ref);
	}

	/* 6. error statuses */
	{
		int32_t		bad_ids[3] = {101, m->vocab_size, 102};
		const int32_t *p = bad_ids;
		int			len3 = 3,
					len0 = 0,
					lenbig = m->max_positions + 1;
		CodevecCudaEncoderConfig c2 = cfg;
		CodevecCudaEncoder e2 = NULL;

		rc = codevec_cuda_encode(e, 1, &p, &len3, one, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_ARG, "token id = vocab_size is refused (%d: %s)", rc, err);
		bad_ids[1] = -1;
		rc = codevec_cuda_encode(e, 1, &p, &len3, one, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_ARG, "token id -1 is refused");
		rc = codevec_cuda_encode(e, 1, &p, &len0, one, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_ARG, "an empty sequence is refused (%s)", err);
		rc = codevec_cuda_encode(e, 1, &p, &lenbig, one, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_ARG, "a sequence over max_positions is refused (%s)", err);
		rc = codevec_cuda_encode(e, 0, NULL, NULL, NULL, err, sizeof(err));
		Check(rc == 0, "an empty batch is fine");
		c2.heads = 3;			/* head size 128 */
		rc = codevec_cuda_encoder_create(&c2, &w, &e2, err, sizeof(err));
		Check(rc == CODEVEC_CUDA_ERR_UNSUPPORTED && e2 == NULL,
			  "head size 128 is refused at create (%s)", err);
	}

	/* 7. informative: other GEMM/GELU choices */
	if (!quick)
	{
		for (int variant = 0; variant < 2; variant++)
		{
			CodevecCudaEncoderConfig c2 = cfg;
			CodevecCudaEncoder e2;

			if (variant == 0)
				c2.gelu_epilogue = 1;
			else
				c2.gemm_fixed_algo = 1;
			rc = codevec_cuda_encoder_create(&c2, &w, &e2, err, sizeof(err));
			if (rc != 0)
			{
				printf("# variant %d: %s\n", variant, err);
				continue;
			}
			codevec_cuda_encode(e2, n, (const int32_t *const *) ids, lens, gpu, err, sizeof(err));
			bad = CompareCos(gpu, ref, n, H, &worst, &worst_i);
			GpuOneByOne(e2, n, ids, lens, one, H);
			printf("# %s: worst cosine vs CPU %.7f (%d below %.4f); batch=1 vs batched: %s (max diff %.3g)\n",
				   variant == 0 ? "cuBLASLt GELU(tanh)+bias epilogue" : "one GEMM algorithm for all sizes",
				   worst, bad, MIN_COSINE,
				   memcmp(one, gpu, sizeof(float) * n * H) == 0 ? "identical" : "DIFFERENT",
				   MaxDiff(one, gpu, (size_t) n * H));
			codevec_cuda_encoder_free(e2);
		}
	}

	codevec_cuda_encoder_free(e);
	cv_model_free(m);
	printf("encoder: %d passed, %d failed\n", npassed, nfailed);
	return nfailed ? 1 : 0;
}
