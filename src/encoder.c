/*
 * encoder.c
 *	  BERT encoder forward pass on the CPU.
 *
 * The model is BERT (Devlin et al., "BERT: Pre-training of Deep
 * Bidirectional Transformers for Language Understanding", 2019), i.e. the
 * post-LayerNorm Transformer encoder of Vaswani et al. (2017), exactly as
 * Hugging Face transformers' BertModel computes it in eval mode:
 *
 *	  x0 = LayerNorm(word_emb[id] + pos_emb[position] + type_emb[0])
 *	  for each layer:
 *		q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv        (per head: d = H/heads)
 *		a = softmax(q k^T / sqrt(d) + mask) v                    (heads concatenated)
 *		x = LayerNorm(x + (a Wo^T + bo))
 *		x = LayerNorm(x + (GELU(x W1^T + b1) W2^T + b2))        (GELU with erf)
 *	  pooled = mean of x over the sequence's tokens, or x[CLS]
 *	  out = pooled / max(||pooled||_2, 1e-12)                  (when 2_Normalize)
 *
 * Batching.  Sequences of different lengths are not padded to a rectangle:
 * their tokens are packed back to back into one T x H matrix (T = the sum of
 * lengths), so every position-wise step - the QKV projection, the output
 * projection, both FFN GEMMs, the LayerNorms - is one large GEMM or loop over
 * T rows, and no work is spent on padding.  Only attention is per sequence
 * and per head: its scores are an L x L block that never mixes sequences.
 * This gives exactly what HF computes with the padding attention mask: a
 * masked key gets the dtype's minimum added before softmax, whose exp()
 * underflows to 0, so padded keys contribute nothing, and the padded query
 * rows are discarded by mean pooling's mask.
 *
 * GEMMs.  Linear layers keep PyTorch's [out, in] layout and go through
 * cblas_sgemm with B transposed; Q, K and V weights were fused into one
 * [3H, H] matrix by model.c so the projection is one call.  Biases are
 * broadcast into the output first and the GEMM accumulates (beta = 1).
 * OpenBLAS picks its kernels for the CPU (or as OPENBLAS_CORETYPE says) and
 * its threads; cv_encoder_set_threads() fixes the thread count (the
 * benchmark uses the same count for PyTorch).
 *
 * int8.  With m->precision CV_PRECISION_INT8 the four linear layers go
 * through the int8 layers qlinear.c attached (LayerLinear); attention,
 * LayerNorm and GELU stay fp32 as above, GELU applied by qlinear.c to each
 * chunk of FFN in's rows as it leaves the GEMM (still in the cache).  That
 * path owns the threads (OpenMP's pool, the one oneDNN uses), and OpenBLAS
 * runs one sequence's small attention GEMMs per call on one thread.  A
 * batch of several sequences runs in groups of whole sequences, each group
 * end to end on one thread (RunGroups; the threads meet once per call); a
 * single long sequence has its GEMMs and the steps between them (attention
 * per sequence, residual + LayerNorm per row: RunStep) split over the
 * threads.  Each row and each sequence is computed the same way whatever
 * the split, so the result does not depend on the thread count.
 *
 * Memory.  One work block per call: x, the residual branch and the context
 * (3 T x H), QKV (T x 3H), the FFN activation (T x I) and one L x L score
 * matrix per thread - about 1.6 MB for 256 tokens of a 384-wide model, 51 MB
 * for a group of 32 snippets of 100 tokens; kept for the next call when at
 * most 64 MB (WorkBuffer).
 */
#include "encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

/* batches of at most this many tokens in all run on one thread */
#define CODEVEC_ENCODER_SINGLE_THREAD_TOKENS 32

/* OpenBLAS extensions (declared in its cblas.h, not in netlib's) */
extern void openblas_set_num_threads(int num_threads);
extern int	openblas_get_num_threads(void);
extern char *openblas_get_corename(void);

/* Set the number of threads OpenBLAS uses (n >= 1); 0 leaves it alone. */
void
cv_encoder_set_threads(int n)
{
	if (n >= 1)
		openblas_set_num_threads(n);
}

/* Give the number of threads OpenBLAS uses now. */
int
cv_encoder_get_threads(void)
{
	return openblas_get_num_threads();
}

/*
 * Name the CPU kernels OpenBLAS picked ("Cooperlake", "Haswell", ...): its
 * own detection, or the OPENBLAS_CORETYPE environment variable when set.
 */
const char *
cv_encoder_blas_core(void)
{
	return openblas_get_corename();
}

/* Normalize each of n rows of width h in place: (x - mean) / sqrt(var + eps) * g + b. */
static void
LayerNorm(float *x, int n, int h, const float *g, const float *b, double eps)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		float	   *r = x + (size_t) i * h;
		double		mean = 0,
					var = 0,
					inv;

		for (j = 0; j < h; j++)
			mean += r[j];
		mean /= h;
		for (j = 0; j < h; j++)
		{
			double		d = r[j] - mean;

			var += d * d;
		}
		var /= h;
		inv = 1.0 / sqrt(var + eps);
		for (j = 0; j < h; j++)
			r[j] = (float) ((r[j] - mean) * inv) * g[j] + b[j];
	}
}

/* Fill n rows of width w with a bias vector (the GEMM then accumulates). */
static void
BroadcastBias(float *y, int n, int w, const float *bias)
{
	int			i;

	for (i = 0; i < n; i++)
		memcpy(y + (size_t) i * w, bias, sizeof(float) * w);
}

/* Compute y (n x out) = x (n x in) W^T + bias, W in PyTorch's [out, in] layout. */
static void
Linear(const float *x, int n, int in, const float *W, const float *bias,
	   int out, float *y)
{
	BroadcastBias(y, n, out, bias);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in,
				1.0f, x, in, W, in, 1.0f, y, out);
}

static void Gelu(float *x, size_t n);

/*
 * Run linear `which` (0 QKV, 1 attention output, 2 FFN in, 3 FFN out) of
 * layer l on n rows: fp32 through OpenBLAS, or int8 through the layers
 * cv_qlinear_attach() attached (qlinear.c) when m->precision says so.
 */
static CvStatus
LayerLinear(CvModel m, int l, int which, const float *x, int n, float *y,
			int threads, char *errbuf, size_t errlen)
{
	const CvLayerWeights *w = &m->layer[l];
	int			H = m->hidden,
				FF = m->intermediate;

	if (m->precision == CV_PRECISION_INT8)
		return m->int8_ops->linear(m->int8, l, which, x, n, y, which == 2 ? Gelu : NULL,
								   threads, errbuf, errlen);
	if (m->int8)
		m->int8_ops->observe(m->int8, l, which, x, n);
	switch (which)
	{
		case 0:
			Linear(x, n, H, w->qkv_w, w->qkv_b, 3 * H, y);
			break;
		case 1:
			Linear(x, n, H, w->ao_w, w->ao_b, H, y);
			break;
		case 2:
			Linear(x, n, H, w->ffn_in_w, w->ffn_in_b, FF, y);
			break;
		default:
			Linear(x, n, FF, w->ffn_out_w, w->ffn_out_b, H, y);
			break;
	}
	return CV_OK;
}

/*
 * Elementwise math, sixteen floats at a time through GCC vector extensions
 * (one AVX-512 register, two AVX2 or four SSE2 ones, see CV_SIMD_CLONES;
 * other targets get their own lowering),
 * because libm's scalar erff/expf took a fifth of the forward pass.
 *
 * exp: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the
 * degree-7 Taylor polynomial of e^r and 2^n built in the exponent bits;
 * relative error < 1e-7 on [-87, 88].
 * erf: Abramowitz & Stegun, Handbook of Mathematical Functions, 7.1.26,
 * erf(a) = 1 - (a1 t + ... + a5 t^5) e^{-a^2}, t = 1 / (1 + p a); absolute
 * error < 1.5e-7 in exact arithmetic, 5e-7 in float.  GELU's error is then
 * below 2.5e-7 |x|, under float rounding of the layer outputs it feeds.
 */
/*
 * 32-byte vectors are passed only to the always_inline helpers below, which
 * are compiled into each clone: no call ever crosses the two ABIs (the
 * Makefile builds this file with -Wno-psabi for that reason).
 */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vfloat __attribute__((vector_size(64)));
typedef int32_t vint __attribute__((vector_size(64)));

#define VLEN 16
#define VF(c) ((vfloat) {c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c})

/*
 * The loops below are compiled three times, for AVX-512, AVX2 and the
 * x86-64 baseline, and the loader picks one by CPUID (GCC's target_clones,
 * an ifunc).  The AVX-512 clone may fuse multiply-adds, so the clones agree
 * to float rounding, not bit for bit; one machine always runs the same one.
 * Sixteen lanes instead of eight: int8 bulk throughput +10% per CPU-second
 * (bench/embed), GELU and softmax being most of what int8 leaves.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CV_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CV_SIMD_CLONES
#endif

/* Compute e^x for x in [-87, 88] (callers clamp). */
static inline __attribute__((always_inline)) vfloat
ExpV(vfloat x)
{
	vfloat		n = (x * VF(1.44269504088896341f) + VF(12582912.0f)) - VF(12582912.0f);
	vfloat		r = x - n * VF(0.693145751953125f) - n * VF(1.42860682030941723212e-6f);
	vfloat		p = VF(1.0f / 5040);
	vint		bits;

	p = p * r + VF(1.0f / 720);
	p = p * r + VF(1.0f / 120);
	p = p * r + VF(1.0f / 24);
	p = p * r + VF(1.0f / 6);
	p = p * r + VF(0.5f);
	p = p * r + VF(1.0f);
	p = p * r + VF(1.0f);
	bits = (__builtin_convertvector(n, vint) + 127) << 23;
	return p * (vfloat) bits;
}

/* Clamp each lane of x to at least lo (lanes compare as floats). */
static inline __attribute__((always_inline)) vfloat
MaxV(vfloat x, vfloat lo)
{
	vint		m = x < lo;

	return (vfloat) (((vint) x & ~m) | ((vint) lo & m));
}

/* Compute GELU(x) = x/2 (1 + erf(x / sqrt 2)) on each lane. */
static inline __attribute__((always_inline)) vfloat
GeluV(vfloat x)
{
	vfloat		u = x * VF((float) M_SQRT1_2);
	vint		sign = (vint) u & (vint) VF(-0.0f);
	vfloat		a = (vfloat) ((vint) u & ~(vint) VF(-0.0f));
	vfloat		t,
				poly,
				y;

	a = -MaxV(-a, VF(-9.0f));	/* erf(9) is 1 in float; keeps e^{-a^2} in range */
	t = VF(1.0f) / (VF(1.0f) + VF(0.3275911f) * a);
	poly = VF(1.061405429f);
	poly = poly * t + VF(-1.453152027f);
	poly = poly * t + VF(1.421413741f);
	poly = poly * t + VF(-0.284496736f);
	poly = poly * t + VF(0.254829592f);
	y = VF(1.0f) - poly * t * ExpV(-a * a);
	y = (vfloat) ((vint) y | sign);
	return VF(0.5f) * x * (VF(1.0f) + y);
}

/* Apply GELU (erf form, as BertModel's "gelu") to n floats in place. */
CV_SIMD_CLONES
static void
Gelu(float *x, size_t n)
{
	size_t		i = 0;

	for (; i + VLEN <= n; i += VLEN)
	{
		vfloat		v;

		memcpy(&v, x + i, sizeof(v));
		v = GeluV(v);
		memcpy(x + i, &v, sizeof(v));
	}
	if (i < n)
	{
		vfloat		v = VF(0.0f);

		memcpy(&v, x + i, sizeof(float) * (n - i));
		v = GeluV(v);
		memcpy(x + i, &v, sizeof(float) * (n - i));
	}
}

/* Replace n floats by e^(x - shift), returning their sum (inlined into SoftmaxRows' clones). */
static inline __attribute__((always_inline)) float
ExpShiftSum(float *x, int n, float shift)
{
	vfloat		acc = VF(0.0f);
	float		sum = 0;
	int			i = 0,
				k;

	for (; i + VLEN <= n; i += VLEN)
	{
		vfloat		v;

		memcpy(&v, x + i, sizeof(v));
		v = ExpV(MaxV(v - VF(shift), VF(-87.0f)));
		acc += v;
		memcpy(x + i, &v, sizeof(v));
	}
	if (i < n)
	{
		vfloat		v = VF(0.0f);

		memcpy(&v, x + i, sizeof(float) * (n - i));
		v = ExpV(MaxV(v - VF(shift), VF(-87.0f)));
		memcpy(x + i, &v, sizeof(float) * (n - i));
		for (k = 0; k < n - i; k++)
			sum += v[k];
	}
	for (k = 0; k < VLEN; k++)
		sum += acc[k];
	return sum;
}

/*
 * Apply softmax to each of n rows of width w in place: the row's maximum
 * and the scaling by 1 / sum sixteen lanes at a time (the scalar loops were
 * a tenth of the int8 forward pass); the maximum is exact and each lane's
 * product rounds as the scalar one did, so the values are unchanged.
 */
CV_SIMD_CLONES
static void
SoftmaxRows(float *s, int n, int w)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		float	   *r = s + (size_t) i * w;
		vfloat		vm = VF(r[0]);
		float		mx = r[0];
		float		inv;

		for (j = 0; j + VLEN <= w; j += VLEN)
		{
			vfloat		v;

			memcpy(&v, r + j, sizeof(v));
			vm = MaxV(vm, v);	/* lane-wise max */
		}
		for (int k = 0; k < VLEN; k++)
			mx = vm[k] > mx ? vm[k] : mx;
		for (; j < w; j++)
			mx = r[j] > mx ? r[j] : mx;
		inv = 1.0f / ExpShiftSum(r, w, mx);
		for (j = 0; j + VLEN <= w; j += VLEN)
		{
			vfloat		v;

			memcpy(&v, r + j, sizeof(v));
			v *= VF(inv);
			memcpy(r + j, &v, sizeof(v));
		}
		for (; j < w; j++)
			r[j] *= inv;
	}
}

/*
 * Add the residual r to each of n rows of width h of x, then LayerNorm them
 * in place: x = LN(x + r).  Sixteen lanes at a time: the sums of the mean
 * and the variance in sixteen float partial sums (added up in double), the
 * scalar double loops having been a tenth of the int8 pass.  Row by row, so
 * a row's result does not depend on the others.
 */
CV_SIMD_CLONES
static void
AddLayerNorm(float *x, const float *r, int n, int h, const float *g, const float *b, double eps)
{
	for (int i = 0; i < n; i++)
	{
		float	   *row = x + (size_t) i * h;
		const float *add = r + (size_t) i * h;
		vfloat		vs = VF(0.0f),
					vq = VF(0.0f);
		double		sum = 0,
					sq = 0;
		float		mean,
					inv;
		int			j;

		for (j = 0; j + VLEN <= h; j += VLEN)
		{
			vfloat		v,
						a;

			memcpy(&v, row + j, sizeof(v));
			memcpy(&a, add + j, sizeof(a));
			v += a;
			memcpy(row + j, &v, sizeof(v));
			vs += v;
		}
		for (; j < h; j++)
		{
			row[j] += add[j];
			sum += row[j];
		}
		for (int k = 0; k < VLEN; k++)
			sum += vs[k];
		mean = (float) (sum / h);
		for (j = 0; j + VLEN <= h; j += VLEN)
		{
			vfloat		v;

			memcpy(&v, row + j, sizeof(v));
			v -= VF(mean);
			vq += v * v;
		}
		for (; j < h; j++)
			sq += (double) (row[j] - mean) * (row[j] - mean);
		for (int k = 0; k < VLEN; k++)
			sq += vq[k];
		inv = (float) (1.0 / sqrt(sq / h + eps));
		for (j = 0; j + VLEN <= h; j += VLEN)
		{
			vfloat		v,
						vg,
						vb;

			memcpy(&v, row + j, sizeof(v));
			memcpy(&vg, g + j, sizeof(vg));
			memcpy(&vb, b + j, sizeof(vb));
			v = (v - VF(mean)) * VF(inv) * vg + vb;
			memcpy(row + j, &v, sizeof(v));
		}
		for (; j < h; j++)
			row[j] = (row[j] - mean) * inv * g[j] + b[j];
	}
}

/*
 * Run scaled dot-product attention for one sequence of len tokens: qkv rows
 * are [q | k | v] (3H wide), ctx rows receive the heads' outputs side by side.
 */
static void
Attention(const float *qkv, int len, int H, int heads, float *scores, float *ctx)
{
	int			d = H / heads;
	float		scale = 1.0f / sqrtf((float) d);
	int			h;

	for (h = 0; h < heads; h++)
	{
		const float *q = qkv + h * d;
		const float *k = qkv + H + h * d;
		const float *v = qkv + 2 * H + h * d;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, d,
					scale, q, 3 * H, k, 3 * H, 0.0f, scores, len);
		SoftmaxRows(scores, len, len);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, d, len,
					1.0f, scores, len, v, 3 * H, 0.0f, ctx + h * d, H);
	}
}

/*
 * The position-wise steps between the GEMMs, over a range of sequences
 * (attention) or rows (the rest), so that the int8 path can spread them
 * over the threads of oneDNN's OpenMP pool (CvInt8Ops.parallel_for).  The
 * fp32 path runs each step over everything in one call, as before.
 */
typedef enum EncoderStep
{
	STEP_ATTENTION,				/* sequences: ctx = attention(qkv) */
	STEP_ADD_LN1,				/* rows: res = LN1(res + x) */
	STEP_GELU,					/* rows: ffn = GELU(ffn) */
	STEP_ADD_LN2				/* rows: x = LN2(x + res) */
} EncoderStep;

typedef struct StepArgs
{
	CvModel		m;
	const CvLayerWeights *w;
	const int  *lens;
	const size_t *starts;		/* first row of each sequence in the work block */
	size_t		row0;			/* the work block row the pointers below start at */
	float	   *x,
			   *res,
			   *ctx,
			   *qkv,
			   *ffn,
			   *scores;			/* one maxlen x maxlen block per thread */
	size_t		score_stride;
	EncoderStep step;
} StepArgs;

/* Run one step over items [begin, end) on thread tid; see StepArgs. */
static void
RunStep(void *arg, int begin, int end, int tid)
{
	StepArgs   *a = arg;
	int			H = a->m->hidden,
				FF = a->m->intermediate;
	size_t		lo = (size_t) begin * H;

	switch (a->step)
	{
		case STEP_ATTENTION:
			for (int b = begin; b < end; b++)
				Attention(a->qkv + (a->starts[b] - a->row0) * 3 * H, a->lens[b], H, a->m->heads,
						  a->scores + (size_t) tid * a->score_stride,
						  a->ctx + (a->starts[b] - a->row0) * H);
			break;
		case STEP_ADD_LN1:
			AddLayerNorm(a->res + lo, a->x + lo, end - begin, H, a->w->ln1_g, a->w->ln1_b, a->m->ln_eps);
			break;
		case STEP_GELU:
			Gelu(a->ffn + (size_t) begin * FF, (size_t) (end - begin) * FF);
			break;
		case STEP_ADD_LN2:
			AddLayerNorm(a->x + lo, a->res + lo, end - begin, H, a->w->ln2_g, a->w->ln2_b, a->m->ln_eps);
			break;
	}
}

/* Run a step over n items on `threads` threads (1: in this thread). */
static void
Step(StepArgs *a, EncoderStep step, int n, int threads)
{
	a->step = step;
	if (threads > 1 && a->m->int8_ops && a->m->int8_ops->parallel_for)
		a->m->int8_ops->parallel_for(threads, n, RunStep, a);
	else
		RunStep(a, 0, n, 0);
}

/*
 * The work block of the last call, kept for the next when it is at most
 * CODEVEC_ENCODER_KEEP_BYTES: a block of that size is mmap'ed by malloc and
 * its pages faulted in again on every call otherwise (a twentieth of the
 * int8 pass went to the kernel's page faults).  One per process: cv_encode
 * is not called from two threads at once.
 */
#define CODEVEC_ENCODER_KEEP_BYTES ((size_t) 64 << 20)
static float *kept_work = NULL;
static size_t kept_bytes = 0;

/* Give a work block of at least `bytes`, the kept one when it is big enough; NULL when out of memory. */
static float *
WorkBuffer(size_t bytes)
{
	if (kept_work && kept_bytes >= bytes)
	{
		float	   *w = kept_work;

		kept_work = NULL;
		return w;
	}
	free(kept_work);
	kept_work = NULL;
	kept_bytes = 0;
	if (bytes <= CODEVEC_ENCODER_KEEP_BYTES)
	{
		/* grow by a quarter ahead, so batches of slowly rising size reuse it */
		size_t		want = bytes + bytes / 4;

		if (want > CODEVEC_ENCODER_KEEP_BYTES)
			want = CODEVEC_ENCODER_KEEP_BYTES;
		kept_bytes = want;
		return malloc(want);
	}
	return malloc(bytes);
}

/* Give back a block WorkBuffer gave: kept when small enough, else freed. */
static void
ReleaseWorkBuffer(float *w)
{
	if (w == NULL)
		return;
	if (kept_bytes > 0 && kept_work == NULL)
		kept_work = w;
	else
		free(w);
}

/*
 * int8 batches of several sequences run in groups of whole sequences, each
 * group end to end on one thread (RunGroups): on several threads they meet
 * once per call instead of at every step of every layer (eight times a
 * layer, where the int8 path scaled 1.1x from one thread to two,
 * bench/embed), and on one a group's activations (T x (6H + FF) floats,
 * 5 MB for 400 tokens) stay in the caches between steps where a whole
 * batch's (50 MB) did not (+5% per CPU-second).  The groups are cut from
 * the sequences sorted longest first and taken by the threads in that
 * order as each finishes its last (so a thread slowed by other jobs does
 * not hold up the rest), and shrink as they go, as in guided scheduling:
 * each holds about (tokens not yet grouped) / (CODEVEC_ENCODER_GROUP_DIVISOR
 * x threads), within [CODEVEC_ENCODER_GROUP_MIN_TOKENS (the int8 GEMMs'
 * chunk of rows), CODEVEC_ENCODER_GROUP_MAX_TOKENS], so the threads finish
 * close together: on the 600 snippets of bench/embed, batches of 32, a cost
 * model of 2 threads (GEMMs per token, attention per token squared) gives
 * 98% of a perfect split, against 93% for groups of one size (T / 8).
 */
#define CODEVEC_ENCODER_GROUP_DIVISOR 2
#define CODEVEC_ENCODER_GROUP_MIN_TOKENS 128
#define CODEVEC_ENCODER_GROUP_MAX_TOKENS 512

/*
 * One call's shared state: the batch, its layout in the work block and,
 * when sequences run in groups on several threads, the groups and the
 * first error.
 */
typedef struct Pass
{
	CvModel		m;
	const int32_t *const *ids;	/* the batch, as given */
	const int  *order;			/* order[i]: batch index of the i-th sequence of the work block */
	const int  *olens;			/* olens[i] = its length */
	const size_t *ostarts;		/* ostarts[i] = its first row in the work block */
	float	   *x,				/* the work block's matrices, T rows each */
			   *res,
			   *ctx,
			   *qkv,
			   *ffn,
			   *scores;			/* one score_stride block per thread */
	size_t		score_stride;
	float	   *out;			/* batch x H, in the caller's order */
	float	  **hidden_states;
	/* RunGroups */
	const int  *gfirst;			/* group g: order[gfirst[g] .. gfirst[g + 1]) */
	int			ngroups;
	int			next;			/* the next group to take (atomic) */
	int			failed;			/* set once (atomic) by the first group that fails */
	CvStatus	st;
	char	   *errbuf;
	size_t		errlen;
} Pass;

/*
 * Run the whole encoder (embeddings, every layer, pooling, normalization)
 * over sequences order[first .. first + n) of a pass, whose rows are
 * contiguous in the work block, the GEMMs and steps on `threads` threads,
 * attention's scores in scratch block tid.  A row's and a sequence's result
 * depends on it alone (the int8 GEMM is exact, everything else works row by
 * row or sequence by sequence), so any grouping gives the same bits.
 */
static CvStatus
RunSeqs(Pass *p, int first, int n, int threads, int tid, char *errbuf, size_t errlen)
{
	CvModel		m = p->m;
	int			H = m->hidden,
				FF = m->intermediate;
	size_t		row0 = p->ostarts[first],
				T = p->ostarts[first + n - 1] + p->olens[first + n - 1] - row0,
				t = 0;
	float	   *x = p->x + row0 * H,
			   *res = p->res + row0 * H,
			   *ctx = p->ctx + row0 * H,
			   *qkv = p->qkv + row0 * 3 * H,
			   *ffn = p->ffn + row0 * FF;
	StepArgs	sa;
	CvStatus	st;
	int			l;

	sa.m = m;
	sa.lens = p->olens + first;
	sa.starts = p->ostarts + first;
	sa.row0 = row0;
	sa.x = x;
	sa.res = res;
	sa.ctx = ctx;
	sa.qkv = qkv;
	sa.ffn = ffn;
	sa.scores = p->scores + (size_t) tid * p->score_stride;
	sa.score_stride = p->score_stride;

	/* embeddings: word + position + token type 0, then LayerNorm */
	for (int i = 0; i < n; i++)
	{
		const int32_t *ids = p->ids[p->order[first + i]];

		for (int q = 0; q < p->olens[first + i]; q++, t++)
		{
			const float *we = m->word_emb + (size_t) ids[q] * H;
			const float *pe = m->pos_emb + (size_t) q * H;
			const float *te = m->type_emb;
			float	   *r = x + t * H;

			for (int j = 0; j < H; j++)
				r[j] = we[j] + pe[j] + te[j];
		}
	}
	LayerNorm(x, (int) T, H, m->emb_ln_g, m->emb_ln_b, m->ln_eps);
	if (p->hidden_states)
		memcpy(p->hidden_states[0] + row0 * H, x, sizeof(float) * T * H);

	for (l = 0; l < m->layers; l++)
	{
		/* self-attention: one fused QKV GEMM, then per sequence and head */
		if ((st = LayerLinear(m, l, 0, x, (int) T, qkv, threads, errbuf, errlen)) != CV_OK)
			return st;
		sa.w = &m->layer[l];
		Step(&sa, STEP_ATTENTION, n, threads);
		if ((st = LayerLinear(m, l, 1, ctx, (int) T, res, threads, errbuf, errlen)) != CV_OK)
			return st;
		Step(&sa, STEP_ADD_LN1, (int) T, threads);

		/* feed-forward: GELU(x W1^T + b1) W2^T + b2, residual, LayerNorm */
		if ((st = LayerLinear(m, l, 2, res, (int) T, ffn, threads, errbuf, errlen)) != CV_OK)
			return st;
		if (m->precision != CV_PRECISION_INT8)	/* int8: done as FFN in's epilogue */
			Step(&sa, STEP_GELU, (int) T, threads);
		if ((st = LayerLinear(m, l, 3, ffn, (int) T, x, threads, errbuf, errlen)) != CV_OK)
			return st;
		Step(&sa, STEP_ADD_LN2, (int) T, threads);
		if (p->hidden_states)
			memcpy(p->hidden_states[l + 1] + row0 * H, x, sizeof(float) * T * H);
	}

	/* pooling and L2 normalization, one sequence at a time */
	for (int i = 0; i < n; i++)
	{
		float	   *o = p->out + (size_t) p->order[first + i] * H;
		const float *xs = x + (p->ostarts[first + i] - row0) * H;
		int			len = p->olens[first + i];

		if (m->pooling == CV_POOL_CLS)
			memcpy(o, xs, sizeof(float) * H);
		else
		{
			for (int j = 0; j < H; j++)
			{
				double		s = 0;

				for (int q = 0; q < len; q++)
					s += xs[(size_t) q * H + j];
				o[j] = (float) (s / len);
			}
		}
		if (m->normalize)
		{
			double		n2 = 0,
						inv;

			for (int j = 0; j < H; j++)
				n2 += (double) o[j] * o[j];
			inv = 1.0 / fmax(sqrt(n2), 1e-12);
			for (int j = 0; j < H; j++)
				o[j] = (float) (o[j] * inv);
		}
	}
	return CV_OK;
}

/*
 * Take a pass's groups one after another until none is left (or one has
 * failed), each run whole on this thread; the body of the parallel_for
 * region of a grouped call (one item per thread).
 */
static void
RunGroups(void *arg, int begin, int end, int tid)
{
	Pass	   *p = arg;
	char		err[256];

	for (;;)
	{
		int			g = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		CvStatus	st;

		if (g >= p->ngroups || __atomic_load_n(&p->failed, __ATOMIC_RELAXED))
			return;
		st = RunSeqs(p, p->gfirst[g], p->gfirst[g + 1] - p->gfirst[g], 1, tid, err, sizeof(err));
		if (st != CV_OK)
		{
			if (!__atomic_exchange_n(&p->failed, 1, __ATOMIC_ACQ_REL))
			{
				p->st = st;
				snprintf(p->errbuf, p->errlen, "%s", err);
			}
			return;
		}
	}
}

/* Order sort keys (length descending, then batch index) for qsort. */
static int
CmpKey(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

/* Encode a batch of sequences; see encoder.h. */
CvStatus
cv_encode(CvModel m, int batch, const int32_t *const *ids, const int *lens,
		  float *out, float **hidden_states, char *errbuf, size_t errlen)
{
	int			H = m->hidden,
				FF = m->intermediate; /* not "I": <complex.h> via cblas.h */
	size_t		T = 0;
	int			maxlen = 0;
	int			b,
				saved_threads = 0,
				par = 1,		/* threads of the int8 path */
				grouped,
				ngroups = 0;
	CvStatus	st = CV_OK;
	Pass		p;
	void	   *layout;
	int		   *order,
			   *olens,
			   *gfirst;
	size_t	   *ostarts;
	int64_t    *keys;
	float	   *work;

	if (batch < 0)
	{
		snprintf(errbuf, errlen, "batch size %d is negative", batch);
		return CV_ERR_INVALID;
	}
	for (b = 0; b < batch; b++)
	{
		int			i;

		if (lens[b] < 1 || lens[b] > m->max_positions)
		{
			snprintf(errbuf, errlen, "sequence of %d tokens is outside 1 .. %d",
					 lens[b], m->max_positions);
			return CV_ERR_INVALID;
		}
		for (i = 0; i < lens[b]; i++)
			if (ids[b][i] < 0 || ids[b][i] >= m->vocab_size)
			{
				snprintf(errbuf, errlen, "token id %d is outside the vocabulary (%d)",
						 ids[b][i], m->vocab_size);
				return CV_ERR_INVALID;
			}
		T += lens[b];
		if (lens[b] > maxlen)
			maxlen = lens[b];
	}
	if (batch == 0)
		return CV_OK;
	if (m->precision == CV_PRECISION_INT8 && (m->int8 == NULL || m->int8_ops == NULL))
	{
		snprintf(errbuf, errlen, "int8 precision asked for but the model has no int8 layers");
		return CV_ERR_INVALID;
	}

	/*
	 * A short batch (a query) is faster on one thread: its GEMMs are too
	 * small to pay for waking and joining OpenBLAS's other threads.  The
	 * int8 path takes the threads for itself, and OpenBLAS, which then only
	 * multiplies one sequence's attention at a time, gets one per call.
	 * Several sequences on several threads run in groups (RunGroups); a
	 * single long one has its GEMMs and steps split over the threads.
	 */
	if (T <= CODEVEC_ENCODER_SINGLE_THREAD_TOKENS || m->precision == CV_PRECISION_INT8)
	{
		saved_threads = openblas_get_num_threads();
		if (m->precision == CV_PRECISION_INT8 && T > CODEVEC_ENCODER_SINGLE_THREAD_TOKENS)
			par = saved_threads;
		if (saved_threads > 1)
			openblas_set_num_threads(1);
		else
			saved_threads = 0;
	}
	grouped = m->precision == CV_PRECISION_INT8 && batch > 1 && hidden_states == NULL &&
		T > CODEVEC_ENCODER_SINGLE_THREAD_TOKENS;

	work = WorkBuffer(sizeof(float) * (T * (3 * (size_t) H + 3 * (size_t) H + FF) +
									   (size_t) par * maxlen * maxlen));
	layout = malloc((sizeof(int) * 3 + sizeof(size_t) + sizeof(int64_t)) * (batch + 1));
	if (!work || !layout)
	{
		ReleaseWorkBuffer(work);
		free(layout);
		if (saved_threads)
			openblas_set_num_threads(saved_threads);
		snprintf(errbuf, errlen, "out of memory for a batch of %zu tokens", T);
		return CV_ERR_NOMEM;
	}
	keys = layout;
	ostarts = (size_t *) (keys + batch + 1);
	order = (int *) (ostarts + batch + 1);
	olens = order + batch + 1;
	gfirst = olens + batch + 1;

	/* the work block's order: the batch's, or longest first when grouped */
	for (b = 0; b < batch; b++)
		keys[b] = grouped ? ((int64_t) (m->max_positions - lens[b]) << 32) | b : b;
	if (grouped)
		qsort(keys, batch, sizeof(int64_t), CmpKey);
	for (b = 0; b < batch; b++)
	{
		order[b] = (int) (keys[b] & 0xffffffff);
		olens[b] = lens[order[b]];
		ostarts[b] = b == 0 ? 0 : ostarts[b - 1] + olens[b - 1];
	}
	if (grouped)
	{
		size_t		left = T,	/* tokens not yet in a group */
					rows = 0;

		gfirst[0] = 0;
		for (b = 0; b < batch; b++)
		{
			size_t		target = left / ((size_t) CODEVEC_ENCODER_GROUP_DIVISOR * par);

			if (target > CODEVEC_ENCODER_GROUP_MAX_TOKENS)
				target = CODEVEC_ENCODER_GROUP_MAX_TOKENS;
			if (target < CODEVEC_ENCODER_GROUP_MIN_TOKENS)
				target = CODEVEC_ENCODER_GROUP_MIN_TOKENS;
			rows += olens[b];
			if (rows >= target || b == batch - 1)
			{
				gfirst[++ngroups] = b + 1;
				left -= rows;
				rows = 0;
			}
		}
		grouped = ngroups > 1;
	}

	memset(&p, 0, sizeof(p));
	p.m = m;
	p.ids = ids;
	p.order = order;
	p.olens = olens;
	p.ostarts = ostarts;
	p.x = work;
	p.res = p.x + T * H;
	p.ctx = p.res + T * H;
	p.qkv = p.ctx + T * H;
	p.ffn = p.qkv + T * 3 * H;
	p.scores = p.ffn + T * FF;
	p.score_stride = (size_t) maxlen * maxlen;
	p.out = out;
	p.hidden_states = hidden_states;
	if (grouped)
	{
		p.gfirst = gfirst;
		p.ngroups = ngroups;
		p.st = CV_OK;
		p.errbuf = errbuf;
		p.errlen = errlen;
		if (par > 1 && m->int8_ops->parallel_for)
			m->int8_ops->parallel_for(par < ngroups ? par : ngroups, par < ngroups ? par : ngroups,
									  RunGroups, &p);
		else
			RunGroups(&p, 0, 1, 0);
		st = p.st;
	}
	else
		st = RunSeqs(&p, 0, batch, par, 0, errbuf, errlen);

	ReleaseWorkBuffer(work);
	free(layout);
	if (saved_threads)
		openblas_set_num_threads(saved_threads);
	return st;
}
