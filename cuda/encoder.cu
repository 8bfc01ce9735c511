/*
 * encoder.cu
 *	  The BERT encoder forward pass on the GPU (see encoder.h, ENCODER.md).
 *
 * The function is src/encoder.c's (BertModel in eval mode, Devlin et al.
 * 2019): x0 = LN(word[id] + pos[p] + type[0]); per layer
 * x = LN(x + Attn(x) Wo^T + bo), x = LN(x + GELU(x W1^T + b1) W2^T + b2);
 * then mean/[CLS] pooling and L2 normalisation.  Here:
 *
 * Precision.  Weights, embeddings and activations live in fp16 on the
 * device (as PyTorch's model.half() keeps them); every GEMM and every
 * reduction (LayerNorm statistics, softmax, pooling) accumulates in fp32.
 * LayerNorm parameters stay fp32.
 *
 * Packing.  Sequences of a batch are packed back to back into T rows (no
 * padding).  Position-wise work - the four GEMMs per layer, LayerNorms,
 * GELU - runs over the T rows at once; only attention looks at sequence
 * boundaries (seq_off[]), so padding costs nothing anywhere.
 *
 * Launch sequence for one launch (a chunk of sequences), 8 kernels a layer:
 *	  H2D(ids, positions, offsets, attention tiles)
 *	  embed_ln                  gather word+pos+type, LayerNorm      -> x
 *	  per layer:
 *		GEMM qkv (+bias epilogue)                                    -> qkv [T,3H]
 *		attention               flash-style, per (sequence, head,
 *		                        128-query tile); reads q/k/v of a head
 *		                        straight out of the packed qkv rows, so
 *		                        the "head split" is only an index     -> ctx [T,H]
 *		GEMM out-proj (+bias)                                        -> y
 *		add_ln                  x = LN(y + x)
 *		GEMM ffn-in (+bias)                                          -> f [T,I]
 *		gelu                    erf GELU in place (or cuBLASLt's
 *		                        tanh GELU epilogue, when configured)
 *		GEMM ffn-out (+bias)                                         -> y
 *		add_ln                  x = LN(y + x)
 *	  pool                      masked mean / CLS, L2 normalise     -> out fp32
 *	  D2H(out)
 *
 * GEMMs go through cuBLASLt with fp16 A/B/D, fp32 compute and the bias
 * epilogue; PyTorch's [out, in] weights are used as they are (a transposed
 * A in cuBLAS's column-major view).  Algorithms come from cuBLASLt's
 * heuristic once per (shape, epilogue), restricted to algorithms that do
 * not split K so results are batch-invariant (GetPlan), and are cached.
 *
 * Attention (after Dao, "FlashAttention-2", 2023): one block of 8 warps per
 * 128 queries of one head of one sequence; the block copies the head's K
 * and V for the whole sequence into shared memory (cp.async), then each
 * warp owns 16 query rows and keeps Q, the running row max/sum and the
 * output in registers while it walks the keys 64 at a time; both products
 * are mma.sync.m16n8k16 (fp16 in, fp32 accumulate), the score fragment is
 * re-used as the A operand of P V without leaving registers, V fragments
 * come from ldmatrix.trans; softmax is online with exp2.  Keys past the
 * sequence end are masked to -inf (what HF's additive mask does: they get
 * weight 0).
 *
 * Small launches (a query) are dominated by launch overhead: launches of
 * at most graph_max_tokens tokens are captured once per (tokens, sequences,
 * attention tiles, padded max length) into a CUDA graph - copies
 * included - and replayed, from the shape's second use on (graph_min_uses:
 * capturing costs more than several plain launches).  The service's
 * batches of mixed questions would rarely repeat an exact shape, so such
 * launches are padded to a bucket shape first (graph_pad, PadShape):
 * tokens to a multiple of 16 (of 32 past 128), sequences and attention
 * tiles to a power of two.  Padding tokens are rows no sequence owns
 * (position-wise work is row-independent, attention and pooling read only
 * seq_off's ranges), padding sequences are empty and padding tiles start
 * past their sequence's end, so the real rows' results are unchanged.
 */
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "cuda_try.cuh"

#define ATT_WARPS	8			/* warps per attention block, 16 queries each */
#define ATT_QTILE	(ATT_WARPS * 16)	/* queries per attention block */
#define ATT_KTILE	64			/* keys per step (and smem padding unit) */
#define ATT_MAX_SMEM (200 * 1024)	/* K and V^T of the longest sequence */
#define GEMM_CACHE	64			/* cached cuBLASLt plans */
#define GRAPH_CACHE 64			/* cached CUDA graphs */
#define SHAPE_CACHE 256			/* launch shapes remembered for graph_min_uses */
#define ENC_BUFFERS 3			/* pinned input/output pairs: two encodes in
								 * flight (the GPU service's double
								 * buffering) and a synchronous one */
#define WORKSPACE_BYTES (32u << 20)

const char *const codevec_cuda_encoder_stage_names[CODEVEC_CUDA_ENC_STAGES] = {
	"h2d+embedding+LN", "QKV GEMM", "attention", "out-proj GEMM",
	"residual+LN", "FFN-in GEMM", "GELU", "FFN-out GEMM", "pooling+d2h"
};

enum
{
	ST_EMB, ST_QKV, ST_ATT, ST_AO, ST_LN, ST_FFN1, ST_GELU, ST_FFN2, ST_POOL
};

/* One cuBLASLt plan: Y[n, m] = X[n, k] W[m, k]^T + b, all row-major fp16;
 * n is 0 for a plan used at every n (gemm_fixed_algo, see GetPlan). */
typedef struct GemmPlan
{
	int			m,
				n,
				k,
				epi;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t a;	/* W; X and Y layouts are made per call */
	cublasLtMatmulAlgo_t algo;
	long		used;
} GemmPlan;

/*
 * What a launch's graph depends on: tokens, sequences, tiles, padded
 * length, and the pinned input/output pair it copies through (a graph
 * holds their addresses)
 */
typedef struct LaunchShape
{
	int			tokens,
				seqs,
				tiles,
				lpad,
				buf;
} LaunchShape;

static inline bool
SameShape(const LaunchShape &a, const LaunchShape &b)
{
	return a.tokens == b.tokens && a.seqs == b.seqs && a.tiles == b.tiles && a.lpad == b.lpad &&
		a.buf == b.buf;
}

typedef struct GraphEntry
{
	LaunchShape shape;
	cudaGraphExec_t exec;
	long		used;
} GraphEntry;

/* A launch shape met recently and not (yet) captured: how often, when last. */
typedef struct ShapeSeen
{
	LaunchShape shape;
	int			uses;
	long		used;
} ShapeSeen;

/*
 * The slot for a new entry of a cache of cap entries, *n of them in use
 * (each with a "used" clock): a free one, else the least recently used,
 * and then *evicted is true (the caller releases what it held).
 */
template <typename T>
static T *
CacheSlot(T *cache, int *n, int cap, bool *evicted)
{
	T		   *p = &cache[0];

	*evicted = *n >= cap;
	if (!*evicted)
		return &cache[(*n)++];
	for (int i = 1; i < cap; i++)
		if (cache[i].used < p->used)
			p = &cache[i];
	return p;
}

typedef struct LayerDev
{
	__half	   *qkv_w,
			   *qkv_b,
			   *ao_w,
			   *ao_b,
			   *ffn_in_w,
			   *ffn_in_b,
			   *ffn_out_w,
			   *ffn_out_b;
	float	   *ln1_g,
			   *ln1_b,
			   *ln2_g,
			   *ln2_b;
} LayerDev;

struct CodevecCudaEncoderData
{
	CodevecCudaEncoderConfig cfg;
	int			dhead;
	cudaStream_t stream;
	cublasLtHandle_t lt;

	/* weights: one fp16 block, one fp32 block */
	void	   *wblock;
	size_t		wbytes;
	__half	   *word_emb,
			   *pos_emb,
			   *type_emb;
	float	   *emb_ln_g,
			   *emb_ln_b;
	LayerDev   *layer;			/* host array of device pointers */

	/* work buffers */
	void	   *work;
	size_t		work_bytes;
	__half	   *x,
			   *y,
			   *qkv,
			   *ctx,
			   *ffn;
	int32_t    *d_in;			/* ids[T] | pos[T] | seq_off[S+1] | tiles[2 x tiles] */
	float	   *d_out;			/* [S, H] */
	void	   *workspace;
	int32_t    *h_in;			/* the pinned pair in use: h_in_buf[buf] ... */
	float	   *h_out;
	int			buf;
	size_t		in_words;

	/*
	 * ENC_BUFFERS pinned input/output pairs, so that encodes started
	 * (codevec_cuda_encode_start) and not yet finished keep their input
	 * until the device copied it and their output until finished; a pair
	 * is pending from its start to its finish, done records the end of
	 * its launch, pending_seqs how many embeddings it holds
	 */
	int32_t    *h_in_buf[ENC_BUFFERS];
	float	   *h_out_buf[ENC_BUFFERS];
	cudaEvent_t done[ENC_BUFFERS];
	int			pending[ENC_BUFFERS];
	int			pending_seqs[ENC_BUFFERS];

	GemmPlan	plans[GEMM_CACHE];
	int			nplans;
	GraphEntry	graphs[GRAPH_CACHE];
	int			ngraphs;
	ShapeSeen	shapes[SHAPE_CACHE];
	int			nshapes;
	long		clock;
	long		launches,
				replays,
				captures;

	int			profiling;
	cudaEvent_t ev[2 + 8 * 128];
	int			nev;
	int			ev_stage[2 + 8 * 128];
	double		stage_ms[CODEVEC_CUDA_ENC_STAGES];
};

/* ---------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

#define LT_TRY(call) do { \
	cublasStatus_t st_ = (call); \
	if (st_ != CUBLAS_STATUS_SUCCESS) { \
		SetError(errbuf, errlen, "%s: cuBLASLt status %d at %s:%d", #call, \
				 (int) st_, __FILE__, __LINE__); \
		return CODEVEC_CUDA_ERR_CUBLAS; \
	} } while (0)

/*
 * Check a launch: the launch error always (cheap, no sync); in debug builds
 * (-DCODEVEC_CUDA_DEBUG) also wait for the kernel and check its execution.
 */
#ifdef CODEVEC_CUDA_DEBUG
#define LAUNCH_CHECK(e) do { \
	CUDA_TRY(cudaGetLastError()); \
	cudaStreamCaptureStatus cs_; \
	CUDA_TRY(cudaStreamIsCapturing((e)->stream, &cs_)); \
	if (cs_ == cudaStreamCaptureStatusNone) CUDA_TRY(cudaStreamSynchronize((e)->stream)); \
	} while (0)
#else
#define LAUNCH_CHECK(e) CUDA_TRY(cudaGetLastError())
#endif

/* the kernels (device code) */
#include "encoder_kernels.cuh"

/* ---------------------------------------------------------------------
 * Launchers
 * --------------------------------------------------------------------- */

/* Shared memory of an attention block: K and V, each [lpad][D+8]. */
static size_t
AttentionSmem(int lpad, int D)
{
	return 2 * (size_t) lpad * (D + 8) * sizeof(__half);
}

/* Record a profiling event closing the interval that belongs to stage. */
static int
ProfileMark(CodevecCudaEncoder e, int stage, char *errbuf, size_t errlen)
{
	if (!e->profiling || e->nev >= (int) (sizeof(e->ev) / sizeof(e->ev[0])))
		return 0;
	e->ev_stage[e->nev] = stage;
	CUDA_TRY(cudaEventRecord(e->ev[e->nev], e->stream));
	e->nev++;
	return 0;
}

/*
 * Find or make the cuBLASLt plan for Y[n,m] = X[n,k] W[m,k]^T (+ epilogue).
 *
 * Batch invariance: embed(text) and embed(text[]) must give identical bits,
 * but cuBLASLt's heuristic picks different kernels for different n (the
 * token count, i.e. the batch), and a kernel that splits K (split-K,
 * stream-K reductions) sums an output in a different order.  So the
 * heuristic is asked per n, but only an algorithm that keeps K in one
 * piece is taken: every such kernel accumulates each output over k = 0..K
 * in order in fp32, whatever its tile shape, so a row's result does not
 * depend on the other rows (test_encoder checks batch = 1 against batched
 * and chunked runs bit for bit).  cfg.gemm_fixed_algo = 1 goes further and
 * uses one algorithm per (m, k, epilogue) for every n - the best at
 * n = max_batch_tokens - at the price of slow small batches (v1 did this:
 * 255 us instead of 139 us for one 12-token query, ENCODER.md).
 */
static int
GetPlan(CodevecCudaEncoder e, int m, int n, int k, int epi, GemmPlan **out,
		char *errbuf, size_t errlen)
{
	GemmPlan   *p = NULL;
	int			nkey = e->cfg.gemm_fixed_algo ? 0 : n;
	int			i;
	bool		evicted;

	e->clock++;
	for (i = 0; i < e->nplans; i++)
		if (e->plans[i].m == m && e->plans[i].n == nkey && e->plans[i].k == k &&
			e->plans[i].epi == epi)
		{
			e->plans[i].used = e->clock;
			*out = &e->plans[i];
			return 0;
		}
	p = CacheSlot(e->plans, &e->nplans, GEMM_CACHE, &evicted);
	if (evicted)
	{
		cublasLtMatmulDescDestroy(p->desc);
		cublasLtMatrixLayoutDestroy(p->a);
	}
	memset(p, 0, sizeof(*p));
	p->m = -1;					/* invalid until complete */

	cublasOperation_t ta = CUBLAS_OP_T,
				tb = CUBLAS_OP_N;
	cublasLtEpilogue_t ep = (cublasLtEpilogue_t) epi;
	cublasLtMatmulPreference_t pref;
	cublasLtMatmulHeuristicResult_t res[8];
	cublasLtMatrixLayout_t lb = NULL,
				lc = NULL;
	int			nres = 0,
				hn = nkey ? nkey : e->cfg.max_batch_tokens;
	size_t		ws = WORKSPACE_BYTES;

	LT_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
	/* a placeholder bias so the heuristic sees an aligned pointer */
	void	   *bias = e->workspace;

	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
	/* column-major view: A = W as k x m (ld k), B = X as k x n, C = Y as m x n */
	LT_TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16F, k, m, k));
	LT_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16F, k, hn, k));
	LT_TRY(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16F, m, hn, m));
	LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
	cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref,
															 CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));

	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmulAlgoGetHeuristic(e->lt, p->desc, p->a, lb, lc, lc,
											pref, 8, res, &nres);
	cublasLtMatmulPreferenceDestroy(pref);
	cublasLtMatrixLayoutDestroy(lb);
	cublasLtMatrixLayoutDestroy(lc);
	if (st != CUBLAS_STATUS_SUCCESS || nres < 1)
	{
		SetError(errbuf, errlen, "cuBLASLt has no algorithm for a %d x %d x %d fp16 GEMM (status %d)",
				 hn, m, k, (int) st);
		return CODEVEC_CUDA_ERR_CUBLAS;
	}
	/* the first algorithm that keeps K in one piece (see above) */
	p->algo = res[0].algo;
	for (i = 0; i < nres; i++)
		{
			int32_t		splitk = 1;
			size_t		got = 0;

			uint32_t	red = CUBLASLT_REDUCTION_SCHEME_NONE;

			if (cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
													 &splitk, sizeof(splitk), &got) != CUBLAS_STATUS_SUCCESS)
				splitk = 1;
			if (cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
													 &red, sizeof(red), &got) != CUBLAS_STATUS_SUCCESS)
				red = CUBLASLT_REDUCTION_SCHEME_NONE;
			if (splitk <= 1 && red == CUBLASLT_REDUCTION_SCHEME_NONE)
			{
				p->algo = res[i].algo;
				break;
			}
		}
	p->m = m;
	p->n = nkey;
	p->k = k;
	p->epi = epi;
	p->used = e->clock;
	*out = p;
	return 0;
}

/* Y[n, m] = X[n, k] W[m, k]^T + bias[m] (then GELU with epi GELU_BIAS). */
static int
gemm_launch(CodevecCudaEncoder e, const __half *X, const __half *W,
			const __half *bias, __half *Y, int n, int m, int k, int epi,
			char *errbuf, size_t errlen)
{
	GemmPlan   *p;
	float		one = 1.0f,
				zero = 0.0f;
	cublasLtMatrixLayoutOpaque_t ob,
				oc;
	cublasLtMatrixLayout_t lb = &ob,
				lc = &oc;
	int			rc;

	if ((rc = GetPlan(e, m, n, k, epi, &p, errbuf, errlen)) != 0)
		return rc;
	/* B and C layouts carry n: made on the stack for each call, no allocation */
	LT_TRY(cublasLtMatrixLayoutInit(lb, CUDA_R_16F, k, n, k));
	LT_TRY(cublasLtMatrixLayoutInit(lc, CUDA_R_16F, m, n, m));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
										  &bias, sizeof(bias)));
	LT_TRY(cublasLtMatmul(e->lt, p->desc, &one, W, p->a, X, lb, &zero, Y, lc,
						  Y, lc, &p->algo, e->workspace, WORKSPACE_BYTES, e->stream));
	return 0;
}

/* Launch a warp-per-row kernel instantiated for H/32 values per lane. */
#define ROW_KERNEL_SWITCH(V_, call) \
	switch (V_) { \
	case 8: { const int VV = 8; call; } break; \
	case 12: { const int VV = 12; call; } break; \
	case 16: { const int VV = 16; call; } break; \
	case 24: { const int VV = 24; call; } break; \
	case 32: { const int VV = 32; call; } break; \
	default: SetError(errbuf, errlen, "hidden size %d is not supported", (V_) * 32); \
		return CODEVEC_CUDA_ERR_UNSUPPORTED; }

/*
 * Enqueue one forward pass over the packed inputs already described by
 * T tokens, S sequences and ntiles attention tiles, the longest sequence
 * rounded up to 64 being lpad_max (the H2D copy is the caller's); leaves
 * S x H floats in d_out.
 */
static int
forward_launch(CodevecCudaEncoder e, int T, int S, int ntiles, int lpad_max,
			   char *errbuf, size_t errlen)
{
	const CodevecCudaEncoderConfig *c = &e->cfg;
	const int	H = c->hidden,
				I = c->intermediate,
				V = H / 32;
	const float eps = (float) c->ln_eps;
	const int32_t *ids = e->d_in,
			   *pos = e->d_in + T,
			   *seq_off = e->d_in + 2 * T,
			   *tiles = e->d_in + 2 * T + S + 1;
	const int	rows_per_block = 4; /* 128 threads = 4 warps = 4 rows */
	const int	row_blocks = (T + rows_per_block - 1) / rows_per_block;
	const float scale_log2 = 1.4426950408889634f / sqrtf((float) e->dhead);
	int			rc;

	ROW_KERNEL_SWITCH(V, (embed_ln_kernel<VV><<<row_blocks, 128, 0, e->stream>>>(
		ids, pos, e->word_emb, e->pos_emb, e->type_emb, e->emb_ln_g, e->emb_ln_b,
		eps, T, e->x)));
	LAUNCH_CHECK(e);
	if ((rc = ProfileMark(e, ST_EMB, errbuf, errlen)) != 0)
		return rc;

	for (int l = 0; l < c->layers; l++)
	{
		const LayerDev *w = &e->layer[l];

		if ((rc = gemm_launch(e, e->x, w->qkv_w, w->qkv_b, e->qkv, T, 3 * H, H,
							  CUBLASLT_EPILOGUE_BIAS, errbuf, errlen)) != 0)
			return rc;
		if ((rc = ProfileMark(e, ST_QKV, errbuf, errlen)) != 0)
			return rc;

		dim3		agrid(ntiles, c->heads);

		size_t		smem = AttentionSmem(lpad_max, e->dhead);

		if (e->dhead == 32)
			attention_kernel<32><<<agrid, ATT_WARPS * 32, smem, e->stream>>>(
				e->qkv, seq_off, tiles, H, lpad_max, scale_log2, e->ctx);
		else
			attention_kernel<64><<<agrid, ATT_WARPS * 32, smem, e->stream>>>(
				e->qkv, seq_off, tiles, H, lpad_max, scale_log2, e->ctx);
		LAUNCH_CHECK(e);
		if ((rc = ProfileMark(e, ST_ATT, errbuf, errlen)) != 0)
			return rc;

		if ((rc = gemm_launch(e, e->ctx, w->ao_w, w->ao_b, e->y, T, H, H,
							  CUBLASLT_EPILOGUE_BIAS, errbuf, errlen)) != 0)
			return rc;
		if ((rc = ProfileMark(e, ST_AO, errbuf, errlen)) != 0)
			return rc;
		ROW_KERNEL_SWITCH(V, (add_ln_kernel<VV><<<row_blocks, 128, 0, e->stream>>>(
			e->y, e->x, w->ln1_g, w->ln1_b, eps, T)));
		LAUNCH_CHECK(e);
		if ((rc = ProfileMark(e, ST_LN, errbuf, errlen)) != 0)
			return rc;

		if ((rc = gemm_launch(e, e->x, w->ffn_in_w, w->ffn_in_b, e->ffn, T, I, H,
							  c->gelu_epilogue ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS,
							  errbuf, errlen)) != 0)
			return rc;
		if ((rc = ProfileMark(e, ST_FFN1, errbuf, errlen)) != 0)
			return rc;
		if (!c->gelu_epilogue)
		{
			size_t		n8 = (size_t) T * I / 8;
			int			blocks = (int) ((n8 + 255) / 256);

			gelu_kernel<<<blocks, 256, 0, e->stream>>>((uint4 *) e->ffn, n8);
			LAUNCH_CHECK(e);
			if ((rc = ProfileMark(e, ST_GELU, errbuf, errlen)) != 0)
				return rc;
		}
		if ((rc = gemm_launch(e, e->ffn, w->ffn_out_w, w->ffn_out_b, e->y, T, H, I,
							  CUBLASLT_EPILOGUE_BIAS, errbuf, errlen)) != 0)
			return rc;
		if ((rc = ProfileMark(e, ST_FFN2, errbuf, errlen)) != 0)
			return rc;
		ROW_KERNEL_SWITCH(V, (add_ln_kernel<VV><<<row_blocks, 128, 0, e->stream>>>(
			e->y, e->x, w->ln2_g, w->ln2_b, eps, T)));
		LAUNCH_CHECK(e);
		if ((rc = ProfileMark(e, ST_LN, errbuf, errlen)) != 0)
			return rc;
	}
	pool_kernel<<<S, 128, 0, e->stream>>>(e->x, seq_off, H,
										   c->pooling == CODEVEC_CUDA_POOL_CLS,
										   c->normalize, e->d_out);
	LAUNCH_CHECK(e);
	return 0;
}

/* ---------------------------------------------------------------------
 * Interface
 * --------------------------------------------------------------------- */

/* Convert n floats to fp16 into dst (host). */
static void
ToHalf(__half *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = __float2half_rn(src[i]);
}

/* Check an encoder configuration: 0, ERR_ARG or ERR_UNSUPPORTED */
static int
CheckConfig(const CodevecCudaEncoderConfig *cfg, const CodevecCudaEncoderWeights *w,
			char *errbuf, size_t errlen)
{
	if (cfg == NULL || w == NULL || w->layer == NULL)
	{
		SetError(errbuf, errlen, "codevec_cuda_encoder_create: no config or weights");
		return CODEVEC_CUDA_ERR_ARG;
	}
	if (cfg->hidden <= 0 || cfg->layers <= 0 || cfg->heads <= 0 ||
		cfg->intermediate <= 0 || cfg->max_positions <= 0 || cfg->vocab_size <= 0 ||
		cfg->type_vocab <= 0 || !(cfg->ln_eps > 0) || cfg->max_batch_tokens < 0 ||
		cfg->max_batch_seqs < 0 ||
		(cfg->pooling != CODEVEC_CUDA_POOL_MEAN && cfg->pooling != CODEVEC_CUDA_POOL_CLS))
	{
		SetError(errbuf, errlen, "codevec_cuda_encoder_create: invalid config");
		return CODEVEC_CUDA_ERR_ARG;
	}
	if (cfg->hidden % cfg->heads != 0 ||
		(cfg->hidden / cfg->heads != 32 && cfg->hidden / cfg->heads != 64))
	{
		SetError(errbuf, errlen, "attention head size %d x %d is not supported (head size must be 32 or 64)",
				 cfg->heads, cfg->hidden / cfg->heads);
		return CODEVEC_CUDA_ERR_UNSUPPORTED;
	}
	if (!(cfg->hidden == 256 || cfg->hidden == 384 || cfg->hidden == 512 ||
		  cfg->hidden == 768 || cfg->hidden == 1024) || cfg->intermediate % 8 != 0)
	{
		SetError(errbuf, errlen, "hidden size %d / intermediate size %d is not supported "
				 "(hidden 256, 384, 512, 768 or 1024; intermediate a multiple of 8)",
				 cfg->hidden, cfg->intermediate);
		return CODEVEC_CUDA_ERR_UNSUPPORTED;
	}
	return 0;
}

/*
 * Create the encoder's stream and cuBLASLt handle and copy the weights w
 * to the device in one block (fp16 embeddings, matrices and biases, then
 * the fp32 LayerNorm parameters), staged on the host in that layout.
 */
static int
UploadWeights(CodevecCudaEncoder e, const CodevecCudaEncoderWeights *w, char *errbuf, size_t errlen)
{
	const CodevecCudaEncoderConfig *cfg = &e->cfg;
	const int	H = cfg->hidden,
				I = cfg->intermediate,
				L = cfg->layers;
	/* fp16 part: embeddings, matrices, biases; fp32 part: LayerNorms */
	size_t		nh = (size_t) cfg->vocab_size * H + (size_t) cfg->max_positions * H + H +
		(size_t) L * (3 * (size_t) H * H + 3 * H + (size_t) H * H + H +
					  (size_t) I * H + I + (size_t) H * I + H);
	size_t		nf = 2 * (size_t) H + (size_t) L * 4 * H;

	nh = (nh + 7) & ~(size_t) 7;	/* keep the fp32 part 16-byte aligned */
	e->wbytes = nh * sizeof(__half) + nf * sizeof(float);
	/*
	 * The highest stream priority: in the GPU service a query's encoding
	 * runs beside k-NN scans (src/gpuloop.c), and its small kernels should
	 * get the SMs as the scan's blocks finish rather than after all of them
	 */
	int			prio_least,
				prio_greatest;

	CUDA_TRY(cudaDeviceGetStreamPriorityRange(&prio_least, &prio_greatest));
	CUDA_TRY(cudaStreamCreateWithPriority(&e->stream, cudaStreamNonBlocking, prio_greatest));
	LT_TRY(cublasLtCreate(&e->lt));
	CUDA_TRY(cudaMalloc(&e->wblock, e->wbytes));

	/* stage on the host in the device's layout, then one copy */
	char	   *hb = (char *) malloc(e->wbytes);

	if (hb == NULL)
	{
		SetError(errbuf, errlen, "out of host memory staging %zu weight bytes", e->wbytes);
		return CODEVEC_CUDA_ERR_NOMEM;
	}
	__half	   *hh = (__half *) hb;
	float	   *hf = (float *) (hb + nh * sizeof(__half));
	__half	   *dh = (__half *) e->wblock;
	float	   *df = (float *) ((char *) e->wblock + nh * sizeof(__half));
	size_t		oh = 0,
				of = 0;

#define PUT_H(dst, src, n) do { ToHalf(hh + oh, (src), (n)); (dst) = dh + oh; oh += (n); } while (0)
#define PUT_F(dst, src, n) do { memcpy(hf + of, (src), sizeof(float) * (n)); (dst) = df + of; of += (n); } while (0)
	PUT_H(e->word_emb, w->word_emb, (size_t) cfg->vocab_size * H);
	PUT_H(e->pos_emb, w->pos_emb, (size_t) cfg->max_positions * H);
	PUT_H(e->type_emb, w->type_emb, (size_t) H);
	PUT_F(e->emb_ln_g, w->emb_ln_g, H);
	PUT_F(e->emb_ln_b, w->emb_ln_b, H);
	for (int l = 0; l < L; l++)
	{
		const CodevecCudaLayerWeights *s = &w->layer[l];
		LayerDev   *d = &e->layer[l];

		PUT_H(d->qkv_w, s->qkv_w, 3 * (size_t) H * H);
		PUT_H(d->qkv_b, s->qkv_b, 3 * (size_t) H);
		PUT_H(d->ao_w, s->ao_w, (size_t) H * H);
		PUT_H(d->ao_b, s->ao_b, (size_t) H);
		PUT_H(d->ffn_in_w, s->ffn_in_w, (size_t) I * H);
		PUT_H(d->ffn_in_b, s->ffn_in_b, (size_t) I);
		PUT_H(d->ffn_out_w, s->ffn_out_w, (size_t) H * I);
		PUT_H(d->ffn_out_b, s->ffn_out_b, (size_t) H);
		PUT_F(d->ln1_g, s->ln1_g, H);
		PUT_F(d->ln1_b, s->ln1_b, H);
		PUT_F(d->ln2_g, s->ln2_g, H);
		PUT_F(d->ln2_b, s->ln2_b, H);
	}
#undef PUT_H
#undef PUT_F
	cudaError_t err = cudaMemcpy(e->wblock, hb, e->wbytes, cudaMemcpyHostToDevice);

	free(hb);
	CUDA_TRY(err);
	return 0;
}

/* Make pinned pair b the one the next launch copies through */
static void
UseBuffer(CodevecCudaEncoder e, int b)
{
	e->buf = b;
	e->h_in = e->h_in_buf[b];
	e->h_out = e->h_out_buf[b];
}

/* A pinned pair no started encode holds, or -1 */
static int
FreeBuffer(const CodevecCudaEncoder e)
{
	for (int b = 0; b < ENC_BUFFERS; b++)
		if (!e->pending[b])
			return b;
	return -1;
}

/*
 * Allocate the encoder's work buffers for e->cfg's batch limits (one
 * device block, every row buffer 256-byte aligned; pinned host buffers for
 * the input and output) and size the attention kernel's shared memory.
 */
static int
AllocWork(CodevecCudaEncoder e, char *errbuf, size_t errlen)
{
	const CodevecCudaEncoderConfig *cfg = &e->cfg;
	const int	H = cfg->hidden,
				I = cfg->intermediate;
	const size_t T = cfg->max_batch_tokens,
				S = cfg->max_batch_seqs;
	size_t		ntiles_max = S + T / ATT_QTILE + 1;
	size_t		sizes[8];
	size_t		total = 0;

	e->in_words = 2 * T + (S + 1) + 2 * ntiles_max;
	sizes[0] = T * H * sizeof(__half);	/* x */
	sizes[1] = T * H * sizeof(__half);	/* y */
	sizes[2] = T * 3 * H * sizeof(__half);	/* qkv */
	sizes[3] = T * H * sizeof(__half);	/* ctx */
	sizes[4] = T * I * sizeof(__half);	/* ffn */
	sizes[5] = e->in_words * sizeof(int32_t);
	sizes[6] = S * H * sizeof(float);
	sizes[7] = WORKSPACE_BYTES;
	for (int i = 0; i < 8; i++)
		total += (sizes[i] + 255) & ~(size_t) 255;
	e->work_bytes = total;
	CUDA_TRY(cudaMalloc(&e->work, total));
	/* padding rows of a bucket launch (PadShape) then read finite values */
	CUDA_TRY(cudaMemset(e->work, 0, total));
	char	   *p = (char *) e->work;
	void	  **dst[8] = {(void **) &e->x, (void **) &e->y, (void **) &e->qkv,
		(void **) &e->ctx, (void **) &e->ffn, (void **) &e->d_in,
	(void **) &e->d_out, &e->workspace};

	for (int i = 0; i < 8; i++)
	{
		*dst[i] = p;
		p += (sizes[i] + 255) & ~(size_t) 255;
	}
	for (int i = 0; i < ENC_BUFFERS; i++)
	{
		CUDA_TRY(cudaMallocHost(&e->h_in_buf[i], sizes[5]));
		CUDA_TRY(cudaMallocHost(&e->h_out_buf[i], sizes[6]));
		CUDA_TRY(cudaEventCreateWithFlags(&e->done[i], cudaEventDisableTiming));
	}
	UseBuffer(e, 0);
	/* attention keeps a whole sequence's K and V^T in shared memory */
	{
		int			lp = (cfg->max_positions + ATT_KTILE - 1) / ATT_KTILE * ATT_KTILE;
		size_t		smem = AttentionSmem(lp, e->dhead);

		if (smem > ATT_MAX_SMEM)
		{
			SetError(errbuf, errlen, "max_position_embeddings %d is too long for the attention kernel "
					 "(%zu bytes of shared memory, at most %d)", cfg->max_positions, smem, ATT_MAX_SMEM);
			return CODEVEC_CUDA_ERR_UNSUPPORTED;
		}
		if (e->dhead == 32)
			CUDA_TRY(cudaFuncSetAttribute(attention_kernel<32>,
										  cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
		else
			CUDA_TRY(cudaFuncSetAttribute(attention_kernel<64>,
										  cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
	}
	return 0;
}

extern "C" int
codevec_cuda_encoder_create(const CodevecCudaEncoderConfig *cfg,
							const CodevecCudaEncoderWeights *w,
							CodevecCudaEncoder *out, char *errbuf, size_t errlen)
{
	CodevecCudaEncoder e;
	int			rc;

	*out = NULL;
	if ((rc = CheckConfig(cfg, w, errbuf, errlen)) != 0)
		return rc;
	e = (CodevecCudaEncoder) calloc(1, sizeof(*e));
	if (e == NULL)
	{
		SetError(errbuf, errlen, "out of host memory for the encoder");
		return CODEVEC_CUDA_ERR_NOMEM;
	}
	e->cfg = *cfg;
	e->dhead = cfg->hidden / cfg->heads;
	if (e->cfg.max_batch_tokens == 0)
		e->cfg.max_batch_tokens = CODEVEC_CUDA_ENCODER_DEFAULT_MAX_TOKENS;
	if (e->cfg.max_batch_tokens < cfg->max_positions)
		e->cfg.max_batch_tokens = cfg->max_positions;
	if (e->cfg.max_batch_seqs == 0)
		e->cfg.max_batch_seqs = CODEVEC_CUDA_ENCODER_DEFAULT_MAX_SEQS;
	if (e->cfg.graph_max_tokens == 0)
		e->cfg.graph_max_tokens = CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_TOKENS;
	if (e->cfg.graph_min_uses <= 0)
		e->cfg.graph_min_uses = CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_USES;
	e->layer = (LayerDev *) calloc(cfg->layers, sizeof(LayerDev));
	if (e->layer == NULL)
	{
		free(e);
		SetError(errbuf, errlen, "out of host memory for the encoder");
		return CODEVEC_CUDA_ERR_NOMEM;
	}
	rc = UploadWeights(e, w, errbuf, errlen);
	if (rc == 0)
		rc = AllocWork(e, errbuf, errlen);
	if (rc != 0)
	{
		codevec_cuda_encoder_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

extern "C" void
codevec_cuda_encoder_free(CodevecCudaEncoder e)
{
	if (e == NULL)
		return;
	if (e->stream)
		cudaStreamSynchronize(e->stream);
	for (int i = 0; i < e->ngraphs; i++)
		cudaGraphExecDestroy(e->graphs[i].exec);
	for (int i = 0; i < e->nplans; i++)
	{
		if (e->plans[i].desc)
			cublasLtMatmulDescDestroy(e->plans[i].desc);
		if (e->plans[i].a)
			cublasLtMatrixLayoutDestroy(e->plans[i].a);
	}
	for (size_t i = 0; i < sizeof(e->ev) / sizeof(e->ev[0]); i++)
		if (e->ev[i])
			cudaEventDestroy(e->ev[i]);
	if (e->lt)
		cublasLtDestroy(e->lt);
	cudaFree(e->wblock);
	cudaFree(e->work);
	for (int i = 0; i < ENC_BUFFERS; i++)
	{
		cudaFreeHost(e->h_in_buf[i]);
		cudaFreeHost(e->h_out_buf[i]);
		if (e->done[i])
			cudaEventDestroy(e->done[i]);
	}
	if (e->stream)
		cudaStreamDestroy(e->stream);
	free(e->layer);
	free(e);
}

/*
 * Count one more use of a launch shape that has no graph; true when it has
 * now been met cfg.graph_min_uses times among the SHAPE_CACHE shapes seen
 * last (least recently used forgotten first).  Capturing and instantiating
 * a graph costs several plain launches, so a shape is captured only once it
 * repeats: a single query's shapes repeat at once, the service's batches of
 * several questions of varying lengths mostly never do.
 */
static bool
ShapeRepeats(CodevecCudaEncoder e, const LaunchShape &shape)
{
	ShapeSeen  *sh = NULL;
	bool		evicted;

	if (e->cfg.graph_min_uses <= 1)
		return true;
	for (int i = 0; i < e->nshapes && sh == NULL; i++)
		if (SameShape(e->shapes[i].shape, shape))
			sh = &e->shapes[i];
	if (sh == NULL)
	{
		sh = CacheSlot(e->shapes, &e->nshapes, SHAPE_CACHE, &evicted);
		sh->shape = shape;
		sh->uses = 0;
	}
	sh->used = e->clock;
	return ++sh->uses >= e->cfg.graph_min_uses;
}

/* The smallest power of two >= n (n >= 1) */
static int
PowerOfTwoAtLeast(int n)
{
	int			p = 1;

	while (p < n)
		p *= 2;
	return p;
}

/*
 * The bucket shape a launch of T tokens, S sequences and ntiles attention
 * tiles is padded to when it may replay a graph (cfg.graph_pad): tokens
 * to a multiple of 16 (32 past 128 tokens), sequences and tiles to a
 * power of two; the exact sizes when graphs or padding are off, the
 * launch (padded or not) is too big for a graph, or a padded size would
 * not fit the work buffers.
 */
static void
PadShape(const CodevecCudaEncoder e, int T, int S, int ntiles, int *Tp, int *Sp, int *tilesp)
{
	const CodevecCudaEncoderConfig *c = &e->cfg;
	int			step = T <= 128 ? 16 : 32,
				tp = (T + step - 1) / step * step,
				sp = PowerOfTwoAtLeast(S),
				np = PowerOfTwoAtLeast(ntiles);
	bool		pad = c->graph_pad >= 0 && !e->profiling && c->graph_max_tokens > 0 &&
		tp <= c->graph_max_tokens && tp <= c->max_batch_tokens && sp <= c->max_batch_seqs &&
		(size_t) (2 * tp + sp + 1 + 2 * np) <= e->in_words;

	*Tp = pad ? tp : T;
	*Sp = pad ? sp : S;
	*tilesp = pad ? np : ntiles;
}

/*
 * Run one launch: S sequences already packed into h_in (T tokens, ntiles
 * attention tiles, the longest rounded up to 64 lpad_max); the results
 * land in h_out (wait: before it returns; else once the stream reaches
 * them).  Small launches replay a cached graph of copy + forward + copy,
 * one graph per (T, S, ntiles, lpad_max, pinned pair), made at the shape's
 * graph_min_uses-th use (ShapeRepeats); until then they launch plainly.
 */
static int
RunChunk(CodevecCudaEncoder e, int T, int S, int ntiles, int lpad_max, bool wait,
		 char *errbuf, size_t errlen)
{
	const size_t in_bytes = (size_t) (2 * T + S + 1 + 2 * ntiles) * sizeof(int32_t);
	const size_t out_bytes = (size_t) S * e->cfg.hidden * sizeof(float);
	int			rc;
	int			use_graph = !e->profiling && e->cfg.graph_max_tokens > 0 &&
		T <= e->cfg.graph_max_tokens;

	const LaunchShape shape = {T, S, ntiles, lpad_max, e->buf};
	GraphEntry *ge = NULL;
	bool		evicted;

	e->launches++;
	e->clock++;
	if (use_graph)
	{
		for (int i = 0; i < e->ngraphs; i++)
			if (SameShape(e->graphs[i].shape, shape))
				ge = &e->graphs[i];
		if (ge == NULL && !ShapeRepeats(e, shape))
			use_graph = 0;		/* a plain launch, below */
	}
	if (use_graph)
	{
		if (ge == NULL)
		{
			cudaGraph_t graph;
			cudaGraphExec_t exec;

			/* cuBLASLt plans (host-side heuristics) may be made during capture */
			CUDA_TRY(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
			rc = 0;
			{
				cudaError_t err = cudaMemcpyAsync(e->d_in, e->h_in, in_bytes,
												  cudaMemcpyHostToDevice, e->stream);

				if (err != cudaSuccess)
				{
					SetError(errbuf, errlen, "cudaMemcpyAsync: %s", cudaGetErrorString(err));
					rc = (int) err;
				}
			}
			if (rc == 0)
				rc = forward_launch(e, T, S, ntiles, lpad_max, errbuf, errlen);
			if (rc == 0)
			{
				cudaError_t err = cudaMemcpyAsync(e->h_out, e->d_out, out_bytes,
												  cudaMemcpyDeviceToHost, e->stream);

				if (err != cudaSuccess)
				{
					SetError(errbuf, errlen, "cudaMemcpyAsync: %s", cudaGetErrorString(err));
					rc = (int) err;
				}
			}
			{
				cudaError_t err = cudaStreamEndCapture(e->stream, &graph);

				if (rc != 0)
				{
					if (err == cudaSuccess)
						cudaGraphDestroy(graph);
					(void) cudaGetLastError();
					return rc;
				}
				CUDA_TRY(err);
			}
			{
				cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);

				cudaGraphDestroy(graph);
				CUDA_TRY(err);
			}
			ge = CacheSlot(e->graphs, &e->ngraphs, GRAPH_CACHE, &evicted);
			if (evicted)
				cudaGraphExecDestroy(ge->exec);
			ge->shape = shape;
			ge->exec = exec;
			e->captures++;
		}
		else
			e->replays++;
		ge->used = e->clock;
		CUDA_TRY(cudaGraphLaunch(ge->exec, e->stream));
		if (wait)
			CUDA_TRY(cudaStreamSynchronize(e->stream));
		return 0;
	}

	e->nev = 0;
	if (e->profiling)
		CUDA_TRY(cudaEventRecord(e->ev[e->nev++], e->stream));
	e->ev_stage[0] = -1;
	CUDA_TRY(cudaMemcpyAsync(e->d_in, e->h_in, in_bytes, cudaMemcpyHostToDevice, e->stream));
	if ((rc = forward_launch(e, T, S, ntiles, lpad_max, errbuf, errlen)) != 0)
		return rc;
	CUDA_TRY(cudaMemcpyAsync(e->h_out, e->d_out, out_bytes, cudaMemcpyDeviceToHost, e->stream));
	if ((rc = ProfileMark(e, ST_POOL, errbuf, errlen)) != 0)
		return rc;
	if (!wait)
		return 0;				/* never with profiling (encode_start) */
	CUDA_TRY(cudaStreamSynchronize(e->stream));
	if (e->profiling)
		for (int i = 1; i < e->nev; i++)
		{
			float		ms;

			CUDA_TRY(cudaEventElapsedTime(&ms, e->ev[i - 1], e->ev[i]));
			e->stage_ms[e->ev_stage[i]] += ms;
		}
	return 0;
}

/*
 * Check a batch's arguments and token ids (no bad id may reach a kernel);
 * with_out: an output array was given (codevec_cuda_encode's out)
 */
static int
CheckBatch(const CodevecCudaEncoder e, int batch, const int32_t *const *ids, const int *lens,
		   bool with_out, char *errbuf, size_t errlen)
{
	const CodevecCudaEncoderConfig *c;

	if (e == NULL || batch < 0 || (batch > 0 && (ids == NULL || lens == NULL || !with_out)))
	{
		SetError(errbuf, errlen, "codevec_cuda_encode: invalid arguments");
		return CODEVEC_CUDA_ERR_ARG;
	}
	c = &e->cfg;
	for (int b = 0; b < batch; b++)
	{
		if (lens[b] < 1 || lens[b] > c->max_positions)
		{
			SetError(errbuf, errlen, "sequence %d has %d tokens, outside 1 .. %d",
					 b + 1, lens[b], c->max_positions);
			return CODEVEC_CUDA_ERR_ARG;
		}
		for (int i = 0; i < lens[b]; i++)
			if (ids[b][i] < 0 || ids[b][i] >= c->vocab_size)
			{
				SetError(errbuf, errlen, "token id %d of sequence %d is outside the vocabulary (%d)",
						 ids[b][i], b + 1, c->vocab_size);
				return CODEVEC_CUDA_ERR_ARG;
			}
	}
	return 0;
}

/*
 * How many sequences from first on fit one launch (at least one: every
 * sequence fits the work buffers alone)
 */
static int
ChunkSeqs(const CodevecCudaEncoder e, int batch, const int *lens, int first)
{
	const CodevecCudaEncoderConfig *c = &e->cfg;
	int			b = first,
				T = 0;

	while (b < batch && b - first < c->max_batch_seqs && T + lens[b] <= c->max_batch_tokens)
		T += lens[b++];
	return b - first;
}

/*
 * Pack sequences first .. first + S - 1 into the pinned pair in use and
 * launch them (RunChunk); their embeddings land in h_out.
 */
static int
LaunchSeqs(CodevecCudaEncoder e, const int32_t *const *ids, const int *lens, int first, int S,
		   bool wait, char *errbuf, size_t errlen)
{
	int			T = 0,
				ntiles = 0,
				maxlen = 0;

	for (int s = first; s < first + S; s++)
	{
		T += lens[s];
		ntiles += (lens[s] + ATT_QTILE - 1) / ATT_QTILE;
		if (lens[s] > maxlen)
			maxlen = lens[s];
	}
	int			lpad_max = (maxlen + ATT_KTILE - 1) / ATT_KTILE * ATT_KTILE;

	/* the sizes launched: a bucket shape or the exact ones */
	int			Tl,
				Sl,
				tl;

	PadShape(e, T, S, ntiles, &Tl, &Sl, &tl);

	/*
	 * Pack ids | positions | seq_off | tiles.  Tiles of long sequences first
	 * would balance the attention grid a little better; the kernel's blocks
	 * are short, so plain order is kept.
	 */
	int32_t    *hid = e->h_in,
			   *hpos = e->h_in + Tl,
			   *hoff = e->h_in + 2 * Tl,
			   *htile = e->h_in + 2 * Tl + Sl + 1;
	int			t = 0,
				nt = 0;

	for (int s = 0; s < S; s++)
	{
		int			len = lens[first + s];

		hoff[s] = t;
		memcpy(hid + t, ids[first + s], sizeof(int32_t) * len);
		for (int p = 0; p < len; p++)
			hpos[t + p] = p;
		t += len;
		for (int q = 0; q * ATT_QTILE < len; q++)
		{
			htile[2 * nt] = s;
			htile[2 * nt + 1] = q;
			nt++;
		}
	}
	/* padding: token rows no sequence owns, empty sequences, and tiles whose
	 * first query lies past sequence 0's end (they only load) */
	for (; t < Tl; t++)
		hid[t] = hpos[t] = 0;
	for (int s = S; s <= Sl; s++)
		hoff[s] = T;
	for (; nt < tl; nt++)
	{
		htile[2 * nt] = 0;
		htile[2 * nt + 1] = (lpad_max + ATT_QTILE - 1) / ATT_QTILE;
	}
	return RunChunk(e, Tl, Sl, tl, lpad_max, wait, errbuf, errlen);
}

extern "C" int
codevec_cuda_encode(CodevecCudaEncoder e, int batch, const int32_t *const *ids,
					const int *lens, float *out, char *errbuf, size_t errlen)
{
	int			b = 0,
				buf,
				rc;

	if ((rc = CheckBatch(e, batch, ids, lens, out != NULL, errbuf, errlen)) != 0)
		return rc;
	if ((buf = FreeBuffer(e)) < 0)
	{
		SetError(errbuf, errlen, "every pinned buffer of the encoder holds a started encode (finish one first)");
		return CODEVEC_CUDA_ERR_ARG;
	}
	UseBuffer(e, buf);
	while (b < batch)
	{
		int			S = ChunkSeqs(e, batch, lens, b);

		if ((rc = LaunchSeqs(e, ids, lens, b, S, true, errbuf, errlen)) != 0)
			return rc;
		memcpy(out + (size_t) b * e->cfg.hidden, e->h_out, sizeof(float) * S * e->cfg.hidden);
		b += S;
	}
	return 0;
}

extern "C" int
codevec_cuda_encode_start(CodevecCudaEncoder e, int batch, const int32_t *const *ids,
						  const int *lens, int *ticket, char *errbuf, size_t errlen)
{
	int			buf,
				rc;

	if (ticket == NULL)
	{
		SetError(errbuf, errlen, "codevec_cuda_encode_start: invalid arguments");
		return CODEVEC_CUDA_ERR_ARG;
	}
	*ticket = -1;
	if ((rc = CheckBatch(e, batch, ids, lens, true, errbuf, errlen)) != 0)
		return rc;
	if (batch < 1 || e->profiling || ChunkSeqs(e, batch, lens, 0) < batch ||
		(buf = FreeBuffer(e)) < 0)
		return 0;				/* the caller runs codevec_cuda_encode */
	UseBuffer(e, buf);
	if ((rc = LaunchSeqs(e, ids, lens, 0, batch, false, errbuf, errlen)) != 0)
	{
		/* what was enqueued must not outlive the pair's reuse */
		cudaStreamSynchronize(e->stream);
		cudaGetLastError();
		return rc;
	}
	CUDA_TRY(cudaEventRecord(e->done[buf], e->stream));
	e->pending[buf] = 1;
	e->pending_seqs[buf] = batch;
	*ticket = buf;
	return 0;
}

extern "C" int
codevec_cuda_encode_ready(CodevecCudaEncoder e, int ticket)
{
	cudaError_t err;

	if (e == NULL || ticket < 0 || ticket >= ENC_BUFFERS || !e->pending[ticket])
		return 1;
	err = cudaEventQuery(e->done[ticket]);
	if (err == cudaErrorNotReady)
		return 0;
	if (err != cudaSuccess)
		cudaGetLastError();		/* finish reports it */
	return 1;
}

extern "C" int
codevec_cuda_encode_finish(CodevecCudaEncoder e, int ticket, float *out, char *errbuf,
						   size_t errlen)
{
	if (e == NULL || ticket < 0 || ticket >= ENC_BUFFERS || !e->pending[ticket])
	{
		SetError(errbuf, errlen, "codevec_cuda_encode_finish: no encode started under this ticket");
		return CODEVEC_CUDA_ERR_ARG;
	}
	e->pending[ticket] = 0;		/* whatever happens below, the pair is free after */
	CUDA_TRY(cudaEventSynchronize(e->done[ticket]));
	if (out != NULL)
		memcpy(out, e->h_out_buf[ticket],
			   sizeof(float) * (size_t) e->pending_seqs[ticket] * e->cfg.hidden);
	return 0;
}

extern "C" int
codevec_cuda_encoder_info(CodevecCudaEncoder e, CodevecCudaEncoderInfo *info)
{
	if (e == NULL || info == NULL)
		return CODEVEC_CUDA_ERR_ARG;
	info->weight_bytes = e->wbytes;
	info->work_bytes = e->work_bytes;
	info->max_batch_tokens = e->cfg.max_batch_tokens;
	info->max_batch_seqs = e->cfg.max_batch_seqs;
	info->graphs_cached = e->ngraphs;
	info->launches = e->launches;
	info->graph_replays = e->replays;
	info->graph_captures = e->captures;
	return 0;
}

extern "C" int
codevec_cuda_encoder_set_profiling(CodevecCudaEncoder e, int on)
{
	if (e == NULL)
		return CODEVEC_CUDA_ERR_ARG;
	/* the events are made on first use: most encoders never profile */
	if (on && e->ev[0] == NULL)
		for (size_t i = 0; i < sizeof(e->ev) / sizeof(e->ev[0]); i++)
			if (cudaEventCreate(&e->ev[i]) != cudaSuccess)
				return CODEVEC_CUDA_ERR_ARG;
	e->profiling = on != 0;
	return 0;
}

extern "C" int
codevec_cuda_encoder_stage_times(CodevecCudaEncoder e, double ms[CODEVEC_CUDA_ENC_STAGES],
								 int reset)
{
	if (e == NULL || ms == NULL)
		return CODEVEC_CUDA_ERR_ARG;
	memcpy(ms, e->stage_ms, sizeof(e->stage_ms));
	if (reset)
		memset(e->stage_ms, 0, sizeof(e->stage_ms));
	return 0;
}

extern "C" int
codevec_cuda_encoder_use_device(int dev, char *errbuf, size_t errlen)
{
	CUDA_TRY(cudaSetDevice(dev));
	CUDA_TRY(cudaFree(0));		/* attach to the device's primary context now */
	return 0;
}
