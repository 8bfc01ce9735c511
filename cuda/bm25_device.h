/*
 * bm25_device.h
 *	  BM25 keyword top-k on the device (issue 21): a corpus's posting lists
 *	  resident on the GPU, scored term at a time into a dense accumulator,
 *	  and the best k selected there, exactly as the CPU's top-k ranks them.
 *
 * The device store holds, for each of nterms terms (numbered 0..nterms-1,
 * code.bm25_terms' numbers), its postings in increasing document order:
 * a document number (0..ndocs-1) and an impact (float, finite, >= 0: the
 * BM25 weight of the term in the document, src/bm25.c). Document numbers
 * are dense and assigned in increasing id order by the caller, which keeps
 * the id of each; ties are broken by document number, so by id.
 *
 * A query's score of a document is exactly the CPU's
 * (codevec_bm25_blocks_topk, src/bm25bmp.c): the sum starts at 0 and adds
 * idf[i] * (double) impact in the order of the query's terms, each product
 * and each sum rounded to nearest in double (no fused multiply-add), so
 * the bits are the same. A document no query term names has no score and
 * is never returned. The best k are those of the highest score, then the
 * lowest document number (1 <= k <= CODEVEC_CUDA_BM25_MAX_K).
 *
 * How (bm25_device.cu): a double per document, reset before each query; one
 * launch per term, in the query's order, adds its postings (a document
 * appears once in a term's list, so no two threads of a launch touch one
 * sum); a radix select over a 32-bit key per document (its score rounded
 * down to float, so the key order never contradicts the score order)
 * finds the key of the k-th best; the documents at or above it (the k
 * best and whatever ties their key) come back to the host, which orders
 * them by (score, document) in double and keeps k.
 *
 * Rules of codevec_cuda.h: C interface, a status and an error message,
 * never an abort; a store is used by one thread at a time (the GPU
 * service's).
 */
#ifndef CODEVEC_CUDA_BM25_DEVICE_H
#define CODEVEC_CUDA_BM25_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "codevec_cuda.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* the largest k a top-k call takes */
#define CODEVEC_CUDA_BM25_MAX_K		4096

/* the most terms one query takes (src/bm25.h: BM25_MAX_TERMS) */
#define CODEVEC_CUDA_BM25_MAX_TERMS	1024

typedef struct CodevecCudaBm25Data *CodevecCudaBm25;

/*
 * codevec_cuda_bm25_create: a store of ndocs documents (1..2^31-1) and
 * nterms terms (1..2^31-1) on the current device, term t's postings being
 * [term_start[t], term_start[t + 1]) (nterms + 1 entries, non-decreasing,
 * term_start[0] = 0; the last is the number of postings). The postings
 * are then written with codevec_cuda_bm25_load, in pieces in order; the
 * store answers queries once every posting was written
 * (codevec_cuda_bm25_topk returns ERR_ARG before). Errors: ERR_ARG for
 * the sizes, ERR_NOMEM (device or host), ERR_CUDA, ERR_NODEVICE.
 */
int			codevec_cuda_bm25_create(uint32_t ndocs, uint32_t nterms, const uint64_t *term_start,
									 CodevecCudaBm25 *out, char *errbuf, size_t errlen);

/*
 * codevec_cuda_bm25_load: write postings [first, first + n) (n >= 0): the
 * document numbers docs[n] and impacts[n]. first must be the number of
 * postings written so far (the pieces come in order). Checked on the host
 * before they are copied (ERR_ARG, nothing written): every document <
 * ndocs, strictly increasing within each term (across pieces too), every
 * impact finite and >= 0, and the range within the store.
 */
int			codevec_cuda_bm25_load(CodevecCudaBm25 store, uint64_t first, uint64_t n,
								   const uint32_t *docs, const float *impacts,
								   char *errbuf, size_t errlen);

/*
 * codevec_cuda_bm25_topk: the best k documents for the query of nt terms
 * (0..CODEVEC_CUDA_BM25_MAX_TERMS, distinct, each < nterms) with weights
 * idf[nt] (finite, >= 0), best first: docs_out[*nout] and
 * scores_out[*nout] (room for k each), *nout = min(k, documents that have
 * a posting of some query term). ERR_ARG for a bad argument or a store not
 * loaded whole; the outputs are unset then. Waits for the device.
 */
int			codevec_cuda_bm25_topk(CodevecCudaBm25 store, int nt, const uint32_t *terms,
								   const double *idf, int k, uint32_t *docs_out,
								   double *scores_out, int *nout, char *errbuf, size_t errlen);

/*
 * One query of codevec_cuda_bm25_topk_batch: its terms and weights (as
 * codevec_cuda_bm25_topk's), k, and where its answer goes (room for k
 * each; *nout set).
 */
typedef struct CodevecCudaBm25Query
{
	int			nt;
	const uint32_t *terms;
	const double *idf;
	int			k;
	uint32_t   *docs_out;
	double	   *scores_out;
	int		   *nout;
} CodevecCudaBm25Query;

/*
 * codevec_cuda_bm25_topk_batch: codevec_cuda_bm25_topk for nq queries
 * (1..CODEVEC_CUDA_BM25_MAX_BATCH) at once, the same answers: one
 * cooperative launch runs them one after the other (the whole grid on
 * each, grid-wide barriers between its steps), one wait for all. ERR_ARG
 * for any bad query (no answer is set then).
 */
#define CODEVEC_CUDA_BM25_MAX_BATCH	256
int			codevec_cuda_bm25_topk_batch(CodevecCudaBm25 store, const CodevecCudaBm25Query *queries,
										 int nq, char *errbuf, size_t errlen);

/*
 * codevec_cuda_bm25_info: the store's documents, terms, postings and the
 * device bytes it holds (any output may be NULL).
 */
int			codevec_cuda_bm25_info(CodevecCudaBm25 store, uint32_t *ndocs, uint32_t *nterms,
								   uint64_t *npostings, size_t *device_bytes);

/* codevec_cuda_bm25_free: release the store (NULL is allowed). */
void		codevec_cuda_bm25_free(CodevecCudaBm25 store);

#ifdef __cplusplus
}
#endif

#endif							/* CODEVEC_CUDA_BM25_DEVICE_H */
