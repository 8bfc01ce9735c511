/*
 * gpuspread.h
 *	  k-NN over an index copy spread on several device indexes (gpuspread.c):
 *	  a copy split into row ranges (one device index each, on one or more
 *	  GPUs) searched at once and merged exactly, and a batch of queries
 *	  shared out among a copy's replicas. Service side only; no elog, no
 *	  palloc: it runs CUDA calls on helper threads.
 */
#ifndef CODEVEC_GPUSPREAD_H
#define CODEVEC_GPUSPREAD_H

#include "postgres.h"

#include <math.h>

#ifdef CODEVEC_USE_CUDA
#include "knn.h"

/*
 * One device index holding the copy's rows first .. first + n - 1 (its
 * local row r is the copy's row first + r); device: the service's logical
 * device number it lives on (for per-device counters only).
 */
typedef struct GpuSpreadTier
{
	CodevecCudaIndex idx;
	int64		first;
	int64		n;
	int			device;
} GpuSpreadTier;

/* Most device indexes one call searches (row ranges, delta tier) */
#define GPU_SPREAD_MAX_TIERS 17

/*
 * GpuSpreadKnn: the k nearest rows of nq queries (nq x dims floats) over
 * every tier, as if the tiers were one index: dist/ids (nq x k, the copy's
 * row numbers, -1 and +inf past the end) in (distance, row) order, and
 * when rows is not NULL the answers' fp32 vectors (nq x k x dims, zeros
 * for -1). ranges (the copy's rows, ranges[2i] first, ranges[2i+1] count;
 * NULL: every row) and qranges (NULL: every query scans all nranges) as
 * codevec_cuda_knn_qranges takes them; each tier scans its part of each
 * range. The tiers run at once, one helper thread each but the first, one
 * codevec_cuda_knn_batch call each; each tier's first k hold the copy's
 * first k (a row of none of them is at least as far as its own tier's
 * k-th), so merging by (distance, row) with NaN after every number is
 * exact. served[t] (may be NULL) gets the queries tier t ran; times the
 * slowest tier's breakdown. 0 or a CODEVEC_CUDA error (errbuf).
 */
extern int	GpuSpreadKnn(const GpuSpreadTier *tiers, int ntiers, const float *queries, int nq,
						 int dims, int k, int metric, const int64 *ranges, int nranges,
						 const int *qranges, float *dist, int64 *ids, float *rows,
						 int *served, CodevecCudaKnnTimes *times, char *errbuf, size_t errlen);

/*
 * GpuSpreadReplicas: the same answers as one codevec_cuda_knn_batch call
 * on reps[0] (the copy's whole rows), the queries shared out in contiguous
 * runs among the nrep replicas (identical device indexes), which run at
 * once. ranges/qranges as above (IVF lists; qranges NULL: every query the
 * same ranges). served[r] (may be NULL) gets the queries replica r ran.
 */
extern int	GpuSpreadReplicas(const CodevecCudaIndex *reps, int nrep, const float *queries,
							  int nq, int dims, int k, int metric, const int64 *ranges,
							  int nranges, const int *qranges, float *dist, int64 *ids,
							  float *rows, int *served, CodevecCudaKnnTimes *times,
							  char *errbuf, size_t errlen);

/*
 * GpuSpreadBefore: whether answer (da, ia) sorts before (db, ib) in the
 * k-NN order: a row before none (id -1), numbers before NaN, smaller
 * distance first, then smaller row.
 */
static inline bool
GpuSpreadBefore(float da, int64 ia, float db, int64 ib)
{
	bool		na,
				nb;

	if (ia < 0 || ib < 0)
		return ia >= 0 && ib < 0;
	na = isnan(da);
	nb = isnan(db);
	if (na != nb)
		return nb;
	if (!na && da != db)
		return da < db;
	return ia < ib;
}
#endif							/* CODEVEC_USE_CUDA */

#endif							/* CODEVEC_GPUSPREAD_H */
