/*
 * qlinear.h
 *	  int8 linear layers for the CPU encoder: weights quantized per output
 *	  channel when attached to a model, activations per row when run,
 *	  integer GEMM through oneDNN (AMX or AVX-512/AVX VNNI, as the CPU has).
 *
 * Plain C with malloc, no server dependency; oneDNN is opened with dlopen()
 * on first use, so nothing here costs a process that never asks for int8.
 */
#ifndef CODEVEC_QLINEAR_H
#define CODEVEC_QLINEAR_H

#include <stddef.h>

#include "model.h"

/*
 * Check that int8 inference can run here: libdnnl.so.2 loads and the CPU
 * has an integer dot-product instruction that oneDNN uses (AMX-INT8,
 * AVX512-VNNI or AVX-VNNI).  Without one, oneDNN's u8 x s8 kernels add
 * pairs of products in saturating 16-bit lanes (vpmaddubsw) and give wrong
 * sums for full-range weights, so those CPUs stay on fp32.
 * Returns CV_OK, or CV_ERR_UNSUPPORTED with the reason in errbuf.
 */
extern CvStatus cv_int8_available(char *errbuf, size_t errlen);

/* Name the instruction set oneDNN runs int8 GEMMs with ("amx", "avx512_vnni", ...; "none"). */
extern const char *cv_int8_isa(void);

/*
 * Set the number of threads oneDNN's OpenMP regions (and QParallelFor) get
 * in this thread from now on to n (n < 1: leave it) and return the number
 * before, or 0 where int8 cannot run.  The postmaster preloading a model
 * runs with 1 so that libgomp starts no thread pool there: a forked child
 * would inherit the pool's bookkeeping but not its threads.
 */
extern int	cv_int8_omp_threads(int n);

/*
 * Quantize m's linear layers (QKV, attention output, FFN in and out of
 * every layer) to int8 and attach them to m (m->int8, m->int8_ops), once;
 * cv_encode then runs them when m->precision is CV_PRECISION_INT8.
 * Weights: smoothed (SmoothQuant, input ranges from one fp32 calibration
 * pass over pseudo-random tokens), then symmetric per output channel,
 * scale = max |w| / 127.
 * Needs m's fp32 weights.  Returns CV_OK (also when already attached),
 * CV_ERR_UNSUPPORTED (see cv_int8_available), CV_ERR_NOMEM.
 */
extern CvStatus cv_qlinear_attach(CvModel m, char *errbuf, size_t errlen);

/*
 * cv_qlinear_share: move the int8 layers cv_qlinear_attach gave m (weights
 * in oneDNN's layout, scales, sums, smoothing) into one anonymous
 * MAP_SHARED mapping, read-only, as cv_model_share_weights does for the
 * fp32 weights: children forked afterwards get them without fork()
 * copying their page table entries.  The per-call scratch stays private.
 * CV_OK (also with no int8 layers), or CV_ERR_NOMEM (m unchanged).
 */
extern CvStatus cv_qlinear_share(CvModel m, char *errbuf, size_t errlen);

/*
 * Quantize n rows of k floats to u8 with a zero point per row (asymmetric,
 * the range widened to include 0): q = clamp(round(x / scale) + zp, 0, 255),
 * scale = (max - min) / 255.  Exposed for the unit test.
 */
extern void cv_quantize_rows_u8(const float *x, int n, int k, unsigned char *q,
								float *scale, int *zp);

#endif							/* CODEVEC_QLINEAR_H */
