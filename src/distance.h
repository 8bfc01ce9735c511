/*
 * distance.h
 *	  The distance kernels in use by this backend and helpers built on them.
 */
#ifndef CODEVEC_DISTANCE_H
#define CODEVEC_DISTANCE_H

#include "distance_kernels.h"

/* Kernels chosen by codevec.cpu_kernels (default: widest the CPU supports) */
extern const CodevecKernels *codevec_kernels;

/*
 * CodevecDistanceInit: pick the kernels and define GUC codevec.cpu_kernels.
 * Called once from _PG_init.
 */
extern void CodevecDistanceInit(void);

/*
 * CodevecCosineDistance: 1 - a.b / (|a| |b|) over n floats, in [0, 2]; NaN
 * when either vector is all zeros (as pgvector).
 */
extern double CodevecCosineDistance(const float *a, const float *b, int n);

#endif							/* CODEVEC_DISTANCE_H */
