/*
 * encoder.h
 *	  The BERT encoder on the GPU: plain C interface (extern "C").
 *
 * Computes what src/encoder.c (the CPU fp32 reference) computes - post-LN
 * BERT, GELU(erf), mean or [CLS] pooling, optional L2 normalisation - with
 * fp16 weights and activations on the device and fp32 accumulation
 * (cuBLASLt GEMMs, our own fused kernels; design in cuda/ENCODER.md).
 *
 * No PostgreSQL and no src/ headers: the caller passes the config numbers
 * and fp32 host weight pointers (src/model.h's CvModelData maps one to one).
 * Conventions of codevec_cuda.h: every function returns CODEVEC_CUDA_OK
 * (0) or a CODEVEC_CUDA_ERR_* status, writes a NUL-terminated message into
 * errbuf (errlen bytes) on failure, and never aborts.
 *
 * One encoder belongs to one host thread at a time (the GPU service's);
 * calls on the same encoder from several threads must be serialised.
 */
#ifndef CODEVEC_CUDA_ENCODER_H
#define CODEVEC_CUDA_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "codevec_cuda.h"

#ifdef __cplusplus
extern "C"
{
#endif

#define CODEVEC_CUDA_POOL_MEAN	0	/* mean over the sequence's tokens */
#define CODEVEC_CUDA_POOL_CLS	1	/* the first ([CLS]) token */

/* defaults when a CodevecCudaEncoderConfig field is 0 */
#define CODEVEC_CUDA_ENCODER_DEFAULT_MAX_TOKENS 16384	/* tokens per launch */
#define CODEVEC_CUDA_ENCODER_DEFAULT_MAX_SEQS	1024	/* sequences per launch */
#define CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_TOKENS 640	/* graph-replay cut-off: 16 x 40 */
#define CODEVEC_CUDA_ENCODER_DEFAULT_GRAPH_USES 2	/* captured at a shape's 2nd use */

/* Shapes and options: config.json and the sentence-transformers modules. */
typedef struct CodevecCudaEncoderConfig
{
	int			hidden;			/* hidden_size H: 256 .. 1024, a multiple of 64 */
	int			layers;			/* num_hidden_layers, >= 1 */
	int			heads;			/* num_attention_heads; H / heads must be 32 or 64 */
	int			intermediate;	/* intermediate_size I, a multiple of 8 */
	int			max_positions;	/* max_position_embeddings */
	int			type_vocab;		/* type_vocab_size (only row 0 is used) */
	int			vocab_size;
	double		ln_eps;			/* layer_norm_eps */
	int			pooling;		/* CODEVEC_CUDA_POOL_MEAN or _CLS */
	int			normalize;		/* 1: L2-normalise the pooled vector */

	/* resources; 0 picks the default above */
	int			max_batch_tokens;	/* tokens per launch (device work buffers) */
	int			max_batch_seqs;		/* sequences per launch */
	int			graph_max_tokens;	/* launches of <= this many tokens replay
									 * a cached CUDA graph; -1 disables graphs */
	int			graph_min_uses;	/* a launch shape is captured into a graph
								 * when it is met for the n-th time among
								 * the last shapes seen (default 2; 1:
								 * at once) - shapes that never repeat
								 * (the service's mixed batches) run as
								 * plain launches instead of paying a
								 * capture each */
	int			graph_pad;		/* 0 or 1: a launch that may use a graph
								 * is padded to a bucket shape (tokens to
								 * a multiple of 16, 32 past 128;
								 * sequences and attention tiles to a
								 * power of two) so that mixed batches
								 * share graphs and GEMM plans; -1: exact
								 * shapes */
	int			gelu_epilogue;	/* 1: cuBLASLt's GELU+bias epilogue (tanh
								 * approximation, not BERT's erf); 0: our
								 * erf kernel (default, exact) */
	int			gemm_fixed_algo;	/* 1: one cuBLASLt algorithm per layer shape
									 * for every batch size; 0 (default): the
									 * heuristic's pick per size among those
									 * that do not split K.  Both give the same
									 * bits for a sequence whatever the batch. */
} CodevecCudaEncoderConfig;

/* One layer's fp32 host weights, PyTorch's [out, in] layout (= CvLayerWeights). */
typedef struct CodevecCudaLayerWeights
{
	const float *qkv_w;			/* [3H, H]: query rows, then key, then value */
	const float *qkv_b;			/* [3H] */
	const float *ao_w;			/* [H, H] */
	const float *ao_b;			/* [H] */
	const float *ln1_g;			/* [H] */
	const float *ln1_b;
	const float *ffn_in_w;		/* [I, H] */
	const float *ffn_in_b;		/* [I] */
	const float *ffn_out_w;		/* [H, I] */
	const float *ffn_out_b;		/* [H] */
	const float *ln2_g;			/* [H] */
	const float *ln2_b;
} CodevecCudaLayerWeights;

/* All fp32 host weights; read during create only, the caller keeps them. */
typedef struct CodevecCudaEncoderWeights
{
	const float *word_emb;		/* [vocab_size, H] */
	const float *pos_emb;		/* [max_positions, H] */
	const float *type_emb;		/* [type_vocab, H]; row 0 is added */
	const float *emb_ln_g;		/* [H] */
	const float *emb_ln_b;
	const CodevecCudaLayerWeights *layer;	/* [layers] */
} CodevecCudaEncoderWeights;

typedef struct CodevecCudaEncoderData CodevecCudaEncoderData;
typedef CodevecCudaEncoderData *CodevecCudaEncoder;

/* What an encoder holds on the device, for the service's state view. */
typedef struct CodevecCudaEncoderInfo
{
	size_t		weight_bytes;	/* fp16 weights, fp32 LayerNorm parameters */
	size_t		work_bytes;		/* activations, inputs, outputs, workspace */
	int			max_batch_tokens;
	int			max_batch_seqs;
	int			graphs_cached;	/* CUDA graphs held for small launches */
	long		launches;		/* forward passes run (chunks) */
	long		graph_replays;	/* of which replayed a cached graph */
	long		graph_captures;	/* of which captured a new graph */
} CodevecCudaEncoderInfo;

/*
 * codevec_cuda_encoder_create: check cfg, copy the weights to the current
 * device as fp16 and allocate work buffers for cfg->max_batch_tokens tokens
 * (at least max_positions).  The current device must be set (see
 * codevec_cuda_open_device).  On failure *out is NULL and nothing is held.
 * Errors: CODEVEC_CUDA_ERR_ARG / _UNSUPPORTED (a shape), _NOMEM (device or
 * host memory), _CUBLAS, _CUDA.
 */
int			codevec_cuda_encoder_create(const CodevecCudaEncoderConfig *cfg,
										const CodevecCudaEncoderWeights *w,
										CodevecCudaEncoder *out,
										char *errbuf, size_t errlen);

/*
 * codevec_cuda_encode: embed batch sequences.  ids[b] holds lens[b] token
 * ids (1 .. max_positions of them, each in [0, vocab_size)), usually
 * [CLS] ... [SEP]; out receives batch x hidden floats.  Sequences are packed
 * back to back (no padding) and cut into launches of at most
 * max_batch_tokens tokens / max_batch_seqs sequences.  Synchronous: returns
 * when out is written.  A sequence's result does not depend on the others
 * in the batch.  On failure out may be partly written.
 */
int			codevec_cuda_encode(CodevecCudaEncoder e, int batch,
								const int32_t *const *ids, const int *lens,
								float *out, char *errbuf, size_t errlen);

/*
 * codevec_cuda_encode_start: codevec_cuda_encode without waiting, for a
 * batch that fits one launch (max_batch_tokens tokens, max_batch_seqs
 * sequences): checks the batch as codevec_cuda_encode does, copies the ids
 * (the caller may reuse ids at once), issues the launch on the encoder's
 * stream and sets *ticket (>= 0).  *ticket = -1 with status 0 when it
 * started nothing because the batch needs several launches, profiling is
 * on or every pinned buffer holds a started encode (three: the GPU
 * service keeps at most two in flight): the caller then runs
 * codevec_cuda_encode.  The same bits as codevec_cuda_encode.  Errors as
 * codevec_cuda_encode's.
 *
 * codevec_cuda_encode_ready: 1 when the device finished the ticket's
 * launch (or it failed; finish reports it) or the ticket is not started,
 * 0 while it runs; never waits.
 *
 * codevec_cuda_encode_finish: wait for the ticket's launch, copy its
 * batch x hidden floats to out (NULL: drop them) and free the ticket.
 * Errors: CODEVEC_CUDA_ERR_ARG (no such ticket), _CUDA.
 */
int			codevec_cuda_encode_start(CodevecCudaEncoder e, int batch,
									  const int32_t *const *ids, const int *lens,
									  int *ticket, char *errbuf, size_t errlen);
int			codevec_cuda_encode_ready(CodevecCudaEncoder e, int ticket);
int			codevec_cuda_encode_finish(CodevecCudaEncoder e, int ticket, float *out,
									   char *errbuf, size_t errlen);

/*
 * codevec_cuda_encoder_use_device: make device dev current for the calling
 * thread in this library's CUDA runtime, attaching to the device's primary
 * context (the one codevec.so's runtime uses too).  The GPU service loads
 * the encoder as its own shared object, codevec_cuda_encoder.so (it needs
 * cuBLASLt, which has no static library), with a CUDA runtime of its own:
 * it calls this once before codevec_cuda_encoder_create.
 */
int			codevec_cuda_encoder_use_device(int dev, char *errbuf, size_t errlen);

/* codevec_cuda_encoder_free: release everything; NULL is fine. */
void		codevec_cuda_encoder_free(CodevecCudaEncoder e);

/* codevec_cuda_encoder_info: fill *info (device bytes, counters). */
int			codevec_cuda_encoder_info(CodevecCudaEncoder e,
									  CodevecCudaEncoderInfo *info);

/*
 * Stage timing for benchmarks.  With profiling on, graphs are not used and
 * every launch is followed by a CUDA event; each codevec_cuda_encode adds
 * the event intervals into per-stage totals (milliseconds) that
 * codevec_cuda_encoder_stage_times copies out (and clears when reset != 0).
 */
#define CODEVEC_CUDA_ENC_STAGES 9
extern const char *const codevec_cuda_encoder_stage_names[CODEVEC_CUDA_ENC_STAGES];
int			codevec_cuda_encoder_set_profiling(CodevecCudaEncoder e, int on);
int			codevec_cuda_encoder_stage_times(CodevecCudaEncoder e,
											 double ms[CODEVEC_CUDA_ENC_STAGES],
											 int reset);

#ifdef __cplusplus
}
#endif

#endif							/* CODEVEC_CUDA_ENCODER_H */
