/*
 * encoder.h
 *	  BERT encoder forward pass on the CPU (OpenBLAS; the linear layers in
 *	  int8 through qlinear.c when m->precision says so), with pooling and
 *	  L2 normalization as the model's sentence-transformers modules say.
 *
 * Plain C with malloc, no server dependency; returns a CvStatus.
 */
#ifndef CODEVEC_ENCODER_H
#define CODEVEC_ENCODER_H

#include <stdint.h>

#include "model.h"

/*
 * Encode a batch of token-id sequences of different lengths.
 *
 *	ids[b], lens[b]  sequence b: lens[b] ids (1 .. max_positions), each in
 *	                 [0, vocab_size); usually [CLS] ... [SEP] from cv_tokenize
 *	out              batch x hidden floats: the pooled (and, when the model
 *	                 has 2_Normalize, unit-length) embeddings
 *	hidden_states    NULL, or layers + 1 buffers of sum(lens) x hidden floats
 *	                 that receive the embedding output and every layer's
 *	                 output, the sequences packed back to back (for tests)
 *
 * Returns CV_ERR_INVALID for a bad length or id or for int8 precision
 * without cv_qlinear_attach(), CV_ERR_NOMEM when the work buffers cannot be
 * allocated, CV_ERR_UNSUPPORTED when oneDNN fails; out is then untouched.
 */
extern CvStatus cv_encode(CvModel m, int batch, const int32_t *const *ids,
						  const int *lens, float *out, float **hidden_states,
						  char *errbuf, size_t errlen);

/* Set the number of threads OpenBLAS uses (n >= 1); 0 leaves it alone. */
extern void cv_encoder_set_threads(int n);

/* Give the number of threads OpenBLAS uses now. */
extern int	cv_encoder_get_threads(void);

/* Name the CPU kernels OpenBLAS picked ("Cooperlake", "Haswell", ...). */
extern const char *cv_encoder_blas_core(void);

#endif							/* CODEVEC_ENCODER_H */
