/*
 * bench_encoder.c
 *	  Time codevec's GPU encoder (cuda/encoder.cu): one 12-token query,
 *	  bulk batches of fixed length (128, 256 tokens), a batch of mixed
 *	  lengths, and each stage's share of the time; for all-MiniLM-L6-v2
 *	  (loaded with src/model.c) and a random-weight 12 x 384 BERT with
 *	  gte-small's shapes (12 layers, 12 heads, FFN 1536).
 *
 * Usage: bench_encoder MODEL_DIR [--quick]
 *
 * Token ids come from the same LCG as bench_torch.py (ids of sequence s of
 * length L: see SeqIds), so both benchmarks embed identical inputs.  Every
 * timing is of codevec_cuda_encode as the GPU service calls it:
 * synchronous, host packing and the copies of ids and outputs included.
 * Prints a table and "RESULT,..." CSV lines.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "model_cuda.h"

#define VOCAB 30522

/* Seconds on the monotonic clock. */
static double
Now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Fill ids with sequence s of length L: [CLS] random [SEP] (bench_torch.py's twin). */
static void
SeqIds(int32_t *ids, int s, int L)
{
	uint32_t	x = 1u + (uint32_t) s * 7919u + (uint32_t) L * 104729u;

	for (int i = 0; i < L; i++)
	{
		x = x * 1664525u + 1013904223u;
		ids[i] = 1000 + (int32_t) ((x >> 8) % (VOCAB - 1000));
	}
	ids[0] = 101;
	ids[L - 1] = 102;
}

/* Lengths of the mixed batch: 8 .. 256 tokens (bench_torch.py's twin). */
static void
MixedLens(int *lens, int n)
{
	uint32_t	x = 42;

	for (int i = 0; i < n; i++)
	{
		x = x * 1664525u + 1013904223u;
		lens[i] = 8 + (int) ((x >> 8) % 249);
	}
}

/* Normal(0, sd) from the sum of 4 uniforms (good enough for timing weights). */
static float
RandN(uint64_t *s, float sd)
{
	float		u = 0;

	for (int i = 0; i < 4; i++)
	{
		*s = *s * 6364136223846793005ull + 1442695040888963407ull;
		u += (float) ((*s >> 40) & 0xffffff) / 16777216.0f;
	}
	return (u - 2.0f) * 1.7320508f * sd;
}

/* Make a float array of n values ~ N(mean, sd). */
static float *
RandArray(uint64_t *s, size_t n, float mean, float sd)
{
	float	   *a = malloc(sizeof(float) * n);

	for (size_t i = 0; i < n; i++)
		a[i] = mean + RandN(s, sd);
	return a;
}

/* Compare doubles for qsort. */
static int
CmpD(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* FLOPs of one forward pass over sequences of the given lengths. */
static double
Flops(const CodevecCudaEncoderConfig *c, const int *lens, int n)
{
	double		f = 0;
	const double H = c->hidden,
				I = c->intermediate;

	for (int i = 0; i < n; i++)
	{
		double		L = lens[i];

		/* QKV, out-proj, FFN in, FFN out; attention QK^T and PV */
		f += c->layers * (2 * L * (3 * H * H + H * H + 2 * H * I) + 4 * L * L * H);
	}
	return f;
}

typedef struct Bench
{
	const char *name;
	CodevecCudaEncoderConfig cfg;
	CodevecCudaEncoderWeights w;
} Bench;

/* Time one 12-token query: p50/p99/mean in microseconds over runs calls. */
static void
Single(const Bench *b, const char *variant, CodevecCudaEncoderConfig cfg, int runs)
{
	CodevecCudaEncoder e;
	char		err[512];
	int32_t		ids[12];
	const int32_t *p = ids;
	int			len = 12;
	float		out[1024];
	double	   *t = malloc(sizeof(double) * runs);
	double		sum = 0;

	if (codevec_cuda_encoder_create(&cfg, &b->w, &e, err, sizeof(err)) != 0)
	{
		printf("# %s: %s\n", b->name, err);
		return;
	}
	SeqIds(ids, 0, 12);
	for (int i = 0; i < 50; i++)
		codevec_cuda_encode(e, 1, &p, &len, out, err, sizeof(err));
	for (int i = 0; i < runs; i++)
	{
		double		t0 = Now();

		if (codevec_cuda_encode(e, 1, &p, &len, out, err, sizeof(err)) != 0)
		{
			printf("# %s: %s\n", b->name, err);
			break;
		}
		t[i] = (Now() - t0) * 1e6;
		sum += t[i];
	}
	qsort(t, runs, sizeof(double), CmpD);
	printf("%-8s single 12-token query, %-22s p50 %7.1f us  p99 %7.1f us  mean %7.1f us (%d runs)\n",
		   b->name, variant, t[runs / 2], t[(int) (runs * 0.99)], sum / runs, runs);
	printf("RESULT,codevec,%s,single,%s,12,1,p50_us=%.1f,p99_us=%.1f,mean_us=%.1f\n",
		   b->name, variant, t[runs / 2], t[(int) (runs * 0.99)], sum / runs);
	codevec_cuda_encoder_free(e);
	free(t);
}

/*
 * The GPU service's query stream: batches of 1 .. 16 questions (a batch is
 * what arrived while the last one ran) drawn from 100 questions of 8 .. 40
 * tokens, so a batch's launch shape (tokens, sequences) rarely repeats.
 * Per batch: p50 / mean microseconds over nb batches, and how the encoder
 * ran them (plain launches, graphs captured, graphs replayed).
 */
static void
Stream(const Bench *b, const char *variant, CodevecCudaEncoderConfig cfg, int nb)
{
	CodevecCudaEncoder e;
	CodevecCudaEncoderInfo i0,
				i1;
	char		err[512];
	int32_t    *q[100];
	int			qlen[100],
				lens[16];
	const int32_t *ids[16];
	float	   *out = malloc(sizeof(float) * 16 * cfg.hidden);
	double	   *t = malloc(sizeof(double) * nb),
				sum = 0;
	uint32_t	x = 7;

	if (codevec_cuda_encoder_create(&cfg, &b->w, &e, err, sizeof(err)) != 0)
	{
		printf("# %s: %s\n", b->name, err);
		return;
	}
	for (int i = 0; i < 100; i++)
	{
		x = x * 1664525u + 1013904223u;
		qlen[i] = 8 + (int) ((x >> 8) % 33);
		q[i] = malloc(sizeof(int32_t) * qlen[i]);
		SeqIds(q[i], 5000 + i, qlen[i]);
	}
	codevec_cuda_encode(e, 1, (const int32_t *const *) q, qlen, out, err, sizeof(err));
	codevec_cuda_encoder_info(e, &i0);
	for (int r = 0; r < nb; r++)
	{
		int			n;
		double		t0;

		x = x * 1664525u + 1013904223u;
		n = 1 + (int) ((x >> 8) % 16);
		for (int j = 0; j < n; j++)
		{
			x = x * 1664525u + 1013904223u;
			int			k = (int) ((x >> 8) % 100);

			ids[j] = q[k];
			lens[j] = qlen[k];
		}
		t0 = Now();
		if (codevec_cuda_encode(e, n, ids, lens, out, err, sizeof(err)) != 0)
		{
			printf("# %s: %s\n", b->name, err);
			nb = r;
			break;
		}
		t[r] = (Now() - t0) * 1e6;
		sum += t[r];
	}
	codevec_cuda_encoder_info(e, &i1);
	if (nb > 0)
	{
		qsort(t, nb, sizeof(double), CmpD);
		printf("%-8s stream of 1..16 questions, %-16s p50 %7.1f us  mean %7.1f us a batch; "
			   "%ld launches: %ld captured, %ld replayed (%d batches)\n",
			   b->name, variant, t[nb / 2], sum / nb, i1.launches - i0.launches,
			   i1.graph_captures - i0.graph_captures, i1.graph_replays - i0.graph_replays, nb);
		printf("RESULT,codevec,%s,stream,%s,1-16,%d,p50_us=%.1f,mean_us=%.1f,captured=%ld,replayed=%ld\n",
			   b->name, variant, nb, t[nb / 2], sum / nb, i1.graph_captures - i0.graph_captures,
			   i1.graph_replays - i0.graph_replays);
	}
	for (int i = 0; i < 100; i++)
		free(q[i]);
	codevec_cuda_encoder_free(e);
	free(out);
	free(t);
}

/* Embed n sequences (ids, lens) repeatedly for >= min_s seconds; sequences/s. */
static double
Throughput(CodevecCudaEncoder e, int n, int32_t **ids, int *lens, float *out,
		   double min_s, int *reps_out)
{
	char		err[512];
	double		t0,
				el;
	int			reps = 0;

	if (codevec_cuda_encode(e, n, (const int32_t *const *) ids, lens, out, err, sizeof(err)) != 0)
	{
		printf("# encode: %s\n", err);
		return 0;
	}
	t0 = Now();
	do
	{
		codevec_cuda_encode(e, n, (const int32_t *const *) ids, lens, out, err, sizeof(err));
		reps++;
		el = Now() - t0;
	} while (el < min_s || reps < 3);
	*reps_out = reps;
	return n * reps / el;
}

/* Run every measurement for one model. */
static void
RunModel(const Bench *b, int quick)
{
	CodevecCudaEncoderConfig cfg = b->cfg;
	CodevecCudaEncoder e;
	char		err[512];
	const int	maxb = 512,
				maxl = 256,
				nmixed = quick ? 512 : 4096;
	int32_t   **ids = malloc(sizeof(int32_t *) * nmixed);
	int		   *lens = malloc(sizeof(int) * nmixed);
	float	   *out = malloc(sizeof(float) * cfg.hidden * nmixed);
	int			Ls[2] = {128, 256},
				Bs[4] = {64, 128, 256, 512};
	double		min_s = quick ? 0.05 : 0.3;

	/* single query: graphs (default), plain launches, one GEMM algorithm for all sizes */
	Single(b, "graph", cfg, quick ? 50 : 300);
	{
		CodevecCudaEncoderConfig c2 = cfg;

		c2.graph_max_tokens = -1;
		Single(b, "no-graph", c2, quick ? 50 : 300);
		c2 = cfg;
		c2.gemm_fixed_algo = 1;
		Single(b, "graph+fixed-gemm-algo", c2, quick ? 50 : 300);

		/*
		 * the service's stream: bucket shapes with graphs from a shape's
		 * 2nd use (the default); exact shapes with graphs from the 2nd
		 * use, from the 1st; no graphs
		 */
		Stream(b, "bucket-2nd-use", cfg, quick ? 200 : 2000);
		c2 = cfg;
		c2.graph_max_tokens = 256;	/* the cut-off before v4: larger batches launch plainly */
		Stream(b, "bucket-256", c2, quick ? 200 : 2000);
		c2 = cfg;
		c2.graph_pad = -1;
		Stream(b, "exact-2nd-use", c2, quick ? 200 : 2000);
		c2.graph_min_uses = 1;
		Stream(b, "exact-1st-use", c2, quick ? 200 : 2000);
		c2 = cfg;
		c2.graph_max_tokens = -1;
		Stream(b, "no-graph", c2, quick ? 200 : 2000);
	}

	cfg.max_batch_tokens = maxb * maxl;
	cfg.max_batch_seqs = maxb;
	for (int variant = 0; variant < 2; variant++)
	{
		CodevecCudaEncoderConfig c2 = cfg;
		const char *vname = variant == 0 ? "erf-gelu" : "tanh-gelu-epilogue";

		c2.gelu_epilogue = variant;
		if (codevec_cuda_encoder_create(&c2, &b->w, &e, err, sizeof(err)) != 0)
		{
			printf("# %s: %s\n", b->name, err);
			return;
		}
		for (int li = 0; li < 2; li++)
			for (int bi = 0; bi < 4; bi++)
			{
				int			L = Ls[li],
							B = Bs[bi],
							reps;

				if (variant == 1 && B != 256)
					continue;
				for (int s = 0; s < B; s++)
				{
					ids[s] = malloc(sizeof(int32_t) * L);
					SeqIds(ids[s], s, L);
					lens[s] = L;
				}
				double		sps = Throughput(e, B, ids, lens, out, min_s, &reps);
				double		tf = Flops(&c2, lens, B) / B * sps / 1e12;

				printf("%-8s bulk L=%3d batch=%3d %-18s %9.0f seq/s  %6.1f TFLOP/s  (%d reps)\n",
					   b->name, L, B, vname, sps, tf, reps);
				printf("RESULT,codevec,%s,bulk,%s,%d,%d,seq_per_s=%.0f,tflops=%.1f\n",
					   b->name, vname, L, B, sps, tf);
				for (int s = 0; s < B; s++)
					free(ids[s]);
			}
		if (variant == 1)
		{
			codevec_cuda_encoder_free(e);
			break;
		}

		/* mixed lengths 8 .. 256: packed, no padding */
		{
			int			reps;
			long		tok = 0;

			MixedLens(lens, nmixed);
			for (int s = 0; s < nmixed; s++)
			{
				ids[s] = malloc(sizeof(int32_t) * lens[s]);
				SeqIds(ids[s], s, lens[s]);
				tok += lens[s];
			}
			double		sps = Throughput(e, nmixed, ids, lens, out, min_s, &reps);
			double		tf = Flops(&c2, lens, nmixed) / nmixed * sps / 1e12;

			printf("%-8s mixed 8..256 (mean %.0f) x %d %-8s %9.0f seq/s  %6.1f TFLOP/s  (%d reps)\n",
				   b->name, (double) tok / nmixed, nmixed, vname, sps, tf, reps);
			printf("RESULT,codevec,%s,mixed,%s,%.0f,%d,seq_per_s=%.0f,tflops=%.1f\n",
				   b->name, vname, (double) tok / nmixed, nmixed, sps, tf);
			for (int s = 0; s < nmixed; s++)
				free(ids[s]);
		}

		/* stage shares: L = 256 x 256 sequences, and the 12-token query */
		for (int pc = 0; pc < 2; pc++)
		{
			int			L = pc == 0 ? 256 : 12,
						B = pc == 0 ? 256 : 1,
						reps = pc == 0 ? 5 : 50;
			double		ms[CODEVEC_CUDA_ENC_STAGES],
						total = 0;

			for (int s = 0; s < B; s++)
			{
				ids[s] = malloc(sizeof(int32_t) * L);
				SeqIds(ids[s], s, L);
				lens[s] = L;
			}
			codevec_cuda_encoder_set_profiling(e, 1);
			codevec_cuda_encode(e, B, (const int32_t *const *) ids, lens, out, err, sizeof(err));
			codevec_cuda_encoder_stage_times(e, ms, 1);
			for (int r = 0; r < reps; r++)
				codevec_cuda_encode(e, B, (const int32_t *const *) ids, lens, out, err, sizeof(err));
			codevec_cuda_encoder_stage_times(e, ms, 1);
			codevec_cuda_encoder_set_profiling(e, 0);
			for (int i = 0; i < CODEVEC_CUDA_ENC_STAGES; i++)
				total += ms[i];
			printf("%-8s stages, L=%d x %d (event-timed, %.3f ms a pass):\n", b->name, L, B, total / reps);
			for (int i = 0; i < CODEVEC_CUDA_ENC_STAGES; i++)
			{
				printf("    %-18s %8.4f ms  %5.1f%%\n", codevec_cuda_encoder_stage_names[i],
					   ms[i] / reps, 100 * ms[i] / total);
				printf("RESULT,codevec,%s,stage,%s,%d,%d,ms=%.4f,share=%.1f\n", b->name,
					   codevec_cuda_encoder_stage_names[i], L, B, ms[i] / reps, 100 * ms[i] / total);
			}
			for (int s = 0; s < B; s++)
				free(ids[s]);
		}
		codevec_cuda_encoder_free(e);
	}
	free(ids);
	free(lens);
	free(out);
}

int
main(int argc, char **argv)
{
	CvModel		m;
	char		err[512];
	int			quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
	Bench		b;
	CodevecCudaLayerWeights *lw;

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s MODEL_DIR [--quick]\n", argv[0]);
		return 2;
	}
	if (cv_model_load(argv[1], &m, err, sizeof(err)) != CV_OK)
	{
		fprintf(stderr, "load %s: %s\n", argv[1], err);
		return 1;
	}

	/* all-MiniLM-L6-v2 */
	memset(&b, 0, sizeof(b));
	b.name = "minilm6";
	lw = calloc(m->layers, sizeof(*lw));
	cv_model_to_cuda(m, &b.cfg, &b.w, lw);
	RunModel(&b, quick);

	/* random 12 x 384 BERT with gte-small's shapes */
	{
		const int	H = 384,
					I = 1536,
					L = 12;
		uint64_t	s = 7;
		CodevecCudaLayerWeights *rl = calloc(L, sizeof(*rl));

		memset(&b, 0, sizeof(b));
		b.name = "rand12";
		b.cfg = (CodevecCudaEncoderConfig) {0};
		b.cfg.hidden = H;
		b.cfg.layers = L;
		b.cfg.heads = 12;
		b.cfg.intermediate = I;
		b.cfg.max_positions = 512;
		b.cfg.type_vocab = 2;
		b.cfg.vocab_size = VOCAB;
		b.cfg.ln_eps = 1e-12;
		b.cfg.pooling = CODEVEC_CUDA_POOL_MEAN;
		b.cfg.normalize = 1;
		b.w.word_emb = RandArray(&s, (size_t) VOCAB * H, 0, 0.02f);
		b.w.pos_emb = RandArray(&s, (size_t) 512 * H, 0, 0.02f);
		b.w.type_emb = RandArray(&s, (size_t) 2 * H, 0, 0.02f);
		b.w.emb_ln_g = RandArray(&s, H, 1, 0.05f);
		b.w.emb_ln_b = RandArray(&s, H, 0, 0.05f);
		for (int l = 0; l < L; l++)
		{
			rl[l].qkv_w = RandArray(&s, (size_t) 3 * H * H, 0, 0.02f);
			rl[l].qkv_b = RandArray(&s, 3 * H, 0, 0.02f);
			rl[l].ao_w = RandArray(&s, (size_t) H * H, 0, 0.02f);
			rl[l].ao_b = RandArray(&s, H, 0, 0.02f);
			rl[l].ln1_g = RandArray(&s, H, 1, 0.05f);
			rl[l].ln1_b = RandArray(&s, H, 0, 0.05f);
			rl[l].ffn_in_w = RandArray(&s, (size_t) I * H, 0, 0.02f);
			rl[l].ffn_in_b = RandArray(&s, I, 0, 0.02f);
			rl[l].ffn_out_w = RandArray(&s, (size_t) H * I, 0, 0.02f);
			rl[l].ffn_out_b = RandArray(&s, H, 0, 0.02f);
			rl[l].ln2_g = RandArray(&s, H, 1, 0.05f);
			rl[l].ln2_b = RandArray(&s, H, 0, 0.05f);
		}
		b.w.layer = rl;
		RunModel(&b, quick);
	}
	cv_model_free(m);
	return 0;
}
