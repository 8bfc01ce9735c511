/*
 * model_cuda.h
 *	  A model read by model.c, described to the GPU encoder (cuda/encoder.h):
 *	  its config and fp32 weight pointers, which map one to one.
 *
 * Header-only (static inline) so that the GPU service (gpuembed.c), the
 * standalone encoder test (test/cuda/test_encoder.c) and its benchmark
 * (bench/encoder/bench_encoder.c) share one mapping without a library.
 */
#ifndef CODEVEC_MODEL_CUDA_H
#define CODEVEC_MODEL_CUDA_H

#include <string.h>

#include "model.h"
#include "../cuda/encoder.h"

/*
 * cv_model_to_cuda: fill *cfg (resource fields 0: the encoder's defaults)
 * and *w from m; lw must hold m->layers entries and becomes w->layer. The
 * pointers are m's: keep m until codevec_cuda_encoder_create returns.
 */
static inline void
cv_model_to_cuda(const CvModelData *m, CodevecCudaEncoderConfig *cfg,
				 CodevecCudaEncoderWeights *w, CodevecCudaLayerWeights *lw)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hidden = m->hidden;
	cfg->layers = m->layers;
	cfg->heads = m->heads;
	cfg->intermediate = m->intermediate;
	cfg->max_positions = m->max_positions;
	cfg->type_vocab = m->type_vocab;
	cfg->vocab_size = m->vocab_size;
	cfg->ln_eps = m->ln_eps;
	cfg->pooling = m->pooling == CV_POOL_CLS ? CODEVEC_CUDA_POOL_CLS : CODEVEC_CUDA_POOL_MEAN;
	cfg->normalize = m->normalize;
	w->word_emb = m->word_emb;
	w->pos_emb = m->pos_emb;
	w->type_emb = m->type_emb;
	w->emb_ln_g = m->emb_ln_g;
	w->emb_ln_b = m->emb_ln_b;
	for (int l = 0; l < m->layers; l++)
	{
		const CvLayerWeights *s = &m->layer[l];

		lw[l].qkv_w = s->qkv_w;
		lw[l].qkv_b = s->qkv_b;
		lw[l].ao_w = s->ao_w;
		lw[l].ao_b = s->ao_b;
		lw[l].ln1_g = s->ln1_g;
		lw[l].ln1_b = s->ln1_b;
		lw[l].ffn_in_w = s->ffn_in_w;
		lw[l].ffn_in_b = s->ffn_in_b;
		lw[l].ffn_out_w = s->ffn_out_w;
		lw[l].ffn_out_b = s->ffn_out_b;
		lw[l].ln2_g = s->ln2_g;
		lw[l].ln2_b = s->ln2_b;
	}
	w->layer = lw;
}

#endif							/* CODEVEC_MODEL_CUDA_H */
