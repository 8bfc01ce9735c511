/*
 * model.h
 *	  A BERT encoder model read from a Hugging Face / sentence-transformers
 *	  folder: config.json, model.safetensors, vocab.txt,
 *	  tokenizer_config.json, modules.json, 1_Pooling/config.json, 2_Normalize.
 *
 * Plain C with malloc, no server dependency; functions return a CvStatus and
 * write a message into the caller's buffer instead of raising errors.
 */
#ifndef CODEVEC_MODEL_H
#define CODEVEC_MODEL_H

#include <stddef.h>

#include "tokenizer.h"

#define CODEVEC_MODEL_MAX_HIDDEN	8192
#define CODEVEC_MODEL_MAX_LAYERS	128
#define CODEVEC_MODEL_MAX_POSITIONS 65536
#define CODEVEC_MODEL_MAX_HEADER	(100 * 1024 * 1024) /* safetensors JSON */

typedef enum CvStatus
{
	CV_OK = 0,
	CV_ERR_NOT_FOUND,			/* folder or a required file is missing */
	CV_ERR_IO,					/* a file exists but cannot be read */
	CV_ERR_CORRUPT,				/* safetensors/JSON malformed or inconsistent */
	CV_ERR_UNSUPPORTED,			/* a config value this encoder cannot run */
	CV_ERR_INVALID,				/* bad argument */
	CV_ERR_NOMEM
} CvStatus;

typedef enum CvPooling
{
	CV_POOL_MEAN,				/* mean over the tokens (attention mask) */
	CV_POOL_CLS					/* the [CLS] token's final hidden state */
} CvPooling;

/* One post-LN BERT layer, Linear weights as PyTorch stores them: [out, in]. */
typedef struct CvLayerWeights
{
	float	   *qkv_w;			/* [3H, H]: query rows, then key, then value */
	float	   *qkv_b;			/* [3H] */
	float	   *ao_w;			/* attention.output.dense [H, H] */
	float	   *ao_b;
	float	   *ln1_g;			/* attention.output.LayerNorm [H] */
	float	   *ln1_b;
	float	   *ffn_in_w;		/* intermediate.dense [I, H] */
	float	   *ffn_in_b;
	float	   *ffn_out_w;		/* output.dense [H, I] */
	float	   *ffn_out_b;
	float	   *ln2_g;			/* output.LayerNorm [H] */
	float	   *ln2_b;
} CvLayerWeights;

/* Arithmetic of the encoder's linear layers on the CPU (codevec.cpu_precision). */
typedef enum CvPrecision
{
	CV_PRECISION_FP32 = 0,		/* fp32 GEMMs through OpenBLAS */
	CV_PRECISION_INT8			/* int8 GEMMs (qlinear.c); needs cv_qlinear_attach */
} CvPrecision;

/*
 * The int8 linear layers attached to a model (qlinear.c), called through this
 * table so that encoder.c and model.c do not link oneDNN's wrapper.
 * linear: y (n x out) = x (n x in) W^T + b for linear `which` of `layer`
 * (0 QKV, 1 attention output, 2 FFN in, 3 FFN out) on `threads` threads,
 * then epilogue (when not NULL) on the rows of y just written, in place,
 * while they are still in the cache (the encoder's GELU after FFN in).
 * observe: called by the fp32 path with each linear's input while int8
 * layers are attached (they ignore it once calibrated).
 */
typedef struct CvInt8Ops
{
	CvStatus	(*linear) (void *q, int layer, int which, const float *x, int n,
						   float *y, void (*epilogue) (float *y, size_t count),
						   int threads, char *errbuf, size_t errlen);
	/* see the fp32 input of that linear (calibration while attaching) */
	void		(*observe) (void *q, int layer, int which, const float *x, int n);
	/* run fn(arg, begin, end, tid) over [0, n) split on up to `threads` threads */
	void		(*parallel_for) (int threads, int n,
								 void (*fn) (void *arg, int begin, int end, int tid),
								 void *arg);
	void		(*free) (void *q);
} CvInt8Ops;

typedef struct CvModelData
{
	char	   *path;			/* the folder, as given */
	char	   *name;			/* its last path component */

	/* config.json */
	int			hidden;			/* hidden_size (= output dims) */
	int			layers;			/* num_hidden_layers */
	int			heads;			/* num_attention_heads */
	int			intermediate;	/* intermediate_size */
	int			max_positions;	/* max_position_embeddings */
	int			type_vocab;		/* type_vocab_size */
	int			vocab_size;		/* vocab_size */
	double		ln_eps;			/* layer_norm_eps */

	/* sentence-transformers modules */
	CvPooling	pooling;
	int			normalize;		/* 2_Normalize present: L2-normalize output */
	int			max_seq_length; /* sentence_bert_config.json; 0 when absent */

	/* weights, fp32, all in one malloc'd block */
	float	   *block;
	size_t		weight_bytes;	/* size of block */
	char		dtype[8];		/* dtype stored in model.safetensors */
	float	   *word_emb;		/* [vocab, H] */
	float	   *pos_emb;		/* [max_positions, H] */
	float	   *type_emb;		/* [type_vocab, H] */
	float	   *emb_ln_g;
	float	   *emb_ln_b;
	CvLayerWeights *layer;		/* [layers] */

	CvTokenizer tok;

	/* int8 inference (qlinear.c): NULL until cv_qlinear_attach() */
	CvPrecision precision;		/* what cv_encode runs; CV_PRECISION_FP32 at load */
	void	   *int8;			/* quantized linear layers */
	const CvInt8Ops *int8_ops;	/* how to run and free them */
	size_t		int8_bytes;		/* their memory */

	/* block lives in a mapping (cv_model_share_weights), not malloc'd */
	int			weights_shared;
	size_t		weights_maplen; /* the mapping's length (munmap) */
} CvModelData;

typedef CvModelData *CvModel;

/*
 * Load a model folder: parse and check every file, map model.safetensors,
 * validate its header against the file size and the config, convert the
 * weights to fp32.  On failure *out is NULL and errbuf says what and where.
 */
extern CvStatus cv_model_load(const char *dir, CvModel *out,
							  char *errbuf, size_t errlen);

/*
 * cv_model_load_ex: cv_model_load with flags.  CV_MODEL_NO_WEIGHTS reads
 * and checks everything but model.safetensors: config, modules, tokenizer
 * (block, layer and the weight pointers stay NULL, weight_bytes 0).  A
 * backend whose embeddings are computed by the GPU service needs only that.
 */
#define CV_MODEL_NO_WEIGHTS 0x01
extern CvStatus cv_model_load_ex(const char *dir, int flags, CvModel *out,
								 char *errbuf, size_t errlen);

/*
 * cv_model_share_weights: move m's fp32 weights (block) into a read-only
 * mapping for the children of a process that forks afterwards
 * (cv_map_for_children) and rebase every weight pointer.  Call it before
 * cv_qlinear_attach (the int8 layers point at the fp32 biases).  CV_OK, or
 * CV_ERR_NOMEM with the reason in errbuf (the model is then unchanged).
 */
extern CvStatus cv_model_share_weights(CvModel m, char *errbuf, size_t errlen);

/*
 * cv_map_for_children: map at least n bytes of zeroed, writable anonymous
 * memory that a process fills once, makes read-only (mprotect) and then
 * forks children that read it (the postmaster's preloaded model).  Where
 * transparent huge pages can be asked for (madvise or always), the memory
 * is private, 2 MB aligned and backed by huge pages, checked: fork() then
 * gives each child the whole mapping by copying one page-middle entry per
 * 2 MB (43 for 86 MB), and the child reads it without a page fault.
 * Otherwise it is a MAP_SHARED mapping, whose page table entries fork()
 * does not copy and each child fills on first touch (one fault per 16
 * pages, ~780 faults, ~3 ms of CPU in a session's first embed() of the
 * 86 MB fp32 model).  *maplen gets the length to munmap; NULL when no
 * memory could be mapped.
 */
extern void *cv_map_for_children(size_t n, size_t *maplen);

/* Free a model and everything it owns; NULL is fine. */
extern void cv_model_free(CvModel m);

/* Name a pooling mode as sentence-transformers does ("mean", "cls"). */
extern const char *cv_pooling_name(CvPooling p);

#endif							/* CODEVEC_MODEL_H */
