/*
 * bm25_device.cu
 *	  BM25 keyword top-k on the device: the store of posting lists and the
 *	  exact top-k over it (bm25_device.h has the interface and the contract).
 *
 * A query is one pass over the stream, then one wait:
 *   1. the score array (a double per document) holds SCORE_NONE, a bit
 *      pattern no sum produces (all ones: a NaN), for every document (set
 *      when the store is made, and again after each query: by step 4 in
 *      bm25_batch_kernel, by a memset after codevec_cuda_bm25_topk);
 *   2. bm25_term_kernel once per term, in the query's order: each posting
 *      adds idf * impact to its document's sum (0 + x for the first), with
 *      __dmul_rn and __dadd_rn so that nothing is fused and the bits are
 *      the CPU's (src/bm25bmp.c adds in the same order);
 *   3. a radix select, four launches of bm25_select_kernel (8 bits each,
 *      most significant first), over a 32-bit key per document: 0 without
 *      a score, else the bits of its score rounded down to float, plus one.
 *      Rounding down keeps the order (a higher key is a higher score), so
 *      the k-th best key T is found on keys alone; each launch builds a
 *      histogram of the next digit in shared memory, adds it to a global
 *      one, and its last block (a counter, after a fence) picks the digit
 *      where the k-th best lies and clears the histogram for the next;
 *   4. bm25_gather_kernel copies every document whose key is >= T (the k
 *      best, and any whose score rounds to T's float: ties of the key) to
 *      a candidate buffer, which comes back to the host with its count;
 *   5. the host sorts the candidates by (score descending, document) in
 *      double and keeps k. A buffer too small for the candidates (many
 *      equal scores) is grown and step 4 run again.
 * Selection by radix digits: the k-th largest key in four histogram passes
 * is the classic radix select (e.g. Alabi, Blanchard, Gordon and Steinbach,
 * "Fast k-selection algorithms for graphics processing units", JEA 2012).
 */
#include <cuda_runtime.h>
#include <cooperative_groups.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <algorithm>

#include "bm25_device.h"
#include "cuda_try.cuh"

#define SEL_BINS	256
#define SCORE_NONE	(-1LL)		/* bits of a reset score */
#define THREADS		256

/* the radix select's state on the device */
typedef struct Bm25Select
{
	unsigned int prefix;		/* the digits of T chosen so far */
	unsigned int mask;			/* which bits of prefix are chosen */
	unsigned int krem;			/* rank of the k-th best among keys under prefix */
	unsigned int all;			/* fewer scored documents than k: take them all */
	unsigned int done;			/* blocks of the current launch that finished */
	unsigned int pad[3];
	unsigned int hist[SEL_BINS];
} Bm25Select;

/* a candidate coming back to the host */
typedef struct Bm25Cand
{
	double		score;
	uint32_t	doc;
	uint32_t	pad;
} Bm25Cand;

/* the candidates' buffer: a count, then the candidates */
#define OUT_HEADER	16

/* a batch's query and term descriptors on the device (bm25_batch_kernel) */
typedef struct Bm25TermDesc
{
	uint64_t	start;
	uint64_t	len;
	double		idf;
} Bm25TermDesc;

typedef struct Bm25QueryDesc
{
	uint32_t	first_term;		/* its terms: td[first_term .. + nt) */
	uint32_t	nt;
	uint32_t	k;
	uint32_t	cap;			/* candidates its output has room for */
	uint64_t	out_off;		/* its output's place in the batch output, bytes */
} Bm25QueryDesc;

struct CodevecCudaBm25Data
{
	int			device;
	int			sms;
	uint32_t	ndocs;
	uint32_t	nterms;
	uint64_t	npostings;
	uint64_t	loaded;			/* postings written so far */
	uint32_t	last_doc;		/* the document of posting loaded - 1 */
	uint64_t   *term_start;		/* host, nterms + 1 */
	uint32_t   *d_docs;
	float	   *d_imp;
	double	   *d_score;		/* ndocs */
	Bm25Select *d_sel;
	char	   *d_out;			/* OUT_HEADER + cap candidates */
	char	   *h_out;			/* pinned, the same */
	uint32_t	cap;
	cudaStream_t stream;
	/* codevec_cuda_bm25_topk_batch: descriptors and outputs, host (pinned) and device */
	char	   *h_stage;
	char	   *d_stage;
	size_t		stage_cap;
	char	   *h_bout;
	char	   *d_bout;
	size_t		bout_cap;
	unsigned int batch_grid;	/* co-resident blocks of bm25_batch_kernel */
};

#define LAUNCH_TRY(what) CUDA_TRY((what, cudaGetLastError()))

/* ------------------------------------------------------------------ kernels */

/* a document's select key: 0 without a score, else its score rounded down to float, plus one */
static __device__ __forceinline__ uint32_t
Bm25Key(double s)
{
	if (__double_as_longlong(s) == SCORE_NONE)
		return 0;
	/* s >= +0 (0 + x, x = idf * impact >= 0), so the float's bits order as it does */
	return __float_as_uint(__double2float_rd(s)) + 1u;
}

/* the state of a new query's select: nothing chosen, rank k */
static __global__ void
bm25_reset_kernel(Bm25Select *sel, unsigned int *count, unsigned int k)
{
	sel->prefix = 0;
	sel->mask = 0;
	sel->krem = k;
	sel->all = 0;
	sel->done = 0;
	*count = 0;
}

/* add one term's postings (n of them) with weight idf, in document order */
static __global__ void
bm25_term_kernel(double *__restrict__ score, const uint32_t *__restrict__ docs,
				 const float *__restrict__ imp, uint64_t n, double idf)
{
	for (uint64_t i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (uint64_t) gridDim.x * blockDim.x)
	{
		uint32_t	d = docs[i];
		double		s = score[d];
		double		x = __dmul_rn(idf, (double) imp[i]);

		if (__double_as_longlong(s) == SCORE_NONE)
			s = 0.0;
		score[d] = __dadd_rn(s, x);
	}
}

/*
 * The digit where the krem-th best key under the prefix lies, from the
 * histogram of this pass (which is cleared for the next), by a whole block
 * of at least SEL_BINS threads: suffix sums of the bins in shared memory
 * sh (SEL_BINS + 1), then the one bin whose suffix reaches krem while the
 * next does not; none (fewer keys than krem, the first pass only): all.
 */
static __device__ void
Bm25PickDigit(Bm25Select *sel, int shift, uint32_t prefix, uint32_t mask, unsigned int *sh)
{
	const int	i = threadIdx.x;
	const unsigned int krem = sel->krem;

	if (i < SEL_BINS)
	{
		sh[i] = ((volatile unsigned int *) sel->hist)[i];
		sel->hist[i] = 0;
	}
	if (i == 0)
		sh[SEL_BINS] = 0;
	__syncthreads();
	for (int off = 1; off < SEL_BINS; off <<= 1)
	{
		unsigned int v = i + off < SEL_BINS ? sh[i + off] : 0;

		__syncthreads();
		if (i < SEL_BINS)
			sh[i] += v;
		__syncthreads();
	}
	if (i < SEL_BINS && sh[i] >= krem && sh[i + 1] < krem)
	{
		sel->prefix = prefix | ((uint32_t) i << shift);
		sel->mask = mask | (0xFFu << shift);
		sel->krem = krem - sh[i + 1];
	}
	if (i == 0 && sh[0] < krem)
		sel->all = 1;
}

/* one digit of the radix select: bits [shift, shift + 8) of the keys under the prefix */
static __global__ void
bm25_select_kernel(const double *__restrict__ score, uint32_t ndocs, int shift, Bm25Select *sel)
{
	__shared__ unsigned int h[SEL_BINS];
	__shared__ unsigned int sh[SEL_BINS + 1];
	__shared__ int last;
	uint32_t	prefix,
				mask;

	if (*(volatile unsigned int *) &sel->all)
		return;					/* set by an earlier launch: the same for every block */
	prefix = sel->prefix;
	mask = sel->mask;
	for (int i = threadIdx.x; i < SEL_BINS; i += blockDim.x)
		h[i] = 0;
	__syncthreads();
	for (uint32_t d = blockIdx.x * blockDim.x + threadIdx.x; d < ndocs; d += gridDim.x * blockDim.x)
	{
		uint32_t	key = Bm25Key(score[d]);

		if (key != 0 && (key & mask) == prefix)
			atomicAdd(&h[(key >> shift) & 0xFF], 1u);
	}
	__syncthreads();
	for (int i = threadIdx.x; i < SEL_BINS; i += blockDim.x)
		if (h[i] != 0)
			atomicAdd(&sel->hist[i], h[i]);
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		last = atomicAdd(&sel->done, 1u) == gridDim.x - 1;
	__syncthreads();
	if (!last)
		return;
	/* the last block: the digit where the k-th best key lies */
	Bm25PickDigit(sel, shift, prefix, mask, sh);
	if (threadIdx.x == 0)
		sel->done = 0;
}

/* every scored document whose key is at least the k-th best's, into cand (cap of them counted past) */
static __global__ void
bm25_gather_kernel(const double *__restrict__ score, uint32_t ndocs, const Bm25Select *sel,
				   char *out, uint32_t cap)
{
	unsigned int *count = (unsigned int *) out;
	Bm25Cand   *cand = (Bm25Cand *) (out + OUT_HEADER);
	const uint32_t t = sel->all ? 1u : sel->prefix;

	for (uint32_t d = blockIdx.x * blockDim.x + threadIdx.x; d < ndocs; d += gridDim.x * blockDim.x)
	{
		double		s = score[d];
		uint32_t	key = Bm25Key(s);

		if (key != 0 && key >= t)
		{
			unsigned int i = atomicAdd(count, 1u);

			if (i < cap)
			{
				cand[i].score = s;
				cand[i].doc = d;
			}
		}
	}
}

/* the device's clock in ns (PTX %globaltimer), for CODEVEC_BM25_MARKS */
static __device__ __forceinline__ unsigned long long
Now_ns(void)
{
	unsigned long long t;

	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	return t;
}

#define MARK(i) do { if (marks != NULL && tid == 0) marks[(i)] += Now_ns(); } while (0)

/*
 * A batch of queries in one cooperative launch (codevec_cuda_bm25_topk_batch):
 * for each query in turn, steps 1-4 of the top of this file by the whole
 * grid, a grid-wide barrier between steps (and between terms, which keeps
 * the CPU's order of the sums), so one launch and one wait serve them all.
 */
static __global__ void
bm25_batch_kernel(double *__restrict__ score, uint32_t ndocs, const uint32_t *__restrict__ docs,
				  const float *__restrict__ imp, const Bm25QueryDesc *qd, const Bm25TermDesc *td,
				  int nq, Bm25Select *sel, char *out, unsigned long long *marks)
{
	cooperative_groups::grid_group g = cooperative_groups::this_grid();
	__shared__ unsigned int h[SEL_BINS];
	__shared__ unsigned int sh[SEL_BINS + 1];
	const uint64_t tid = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x,
				nthreads = (uint64_t) gridDim.x * blockDim.x;

	for (int q = 0; q < nq; q++)
	{
		const Bm25QueryDesc Q = qd[q];
		unsigned int *count = (unsigned int *) (out + Q.out_off);
		Bm25Cand   *cand = (Bm25Cand *) (out + Q.out_off + OUT_HEADER);
		uint32_t	t;

		/* 1. the select's state (its histogram is zero; the scores are all
		 * SCORE_NONE: so the store makes them, and so step 4 leaves them) */
		if (tid == 0)
		{
			sel->prefix = 0;
			sel->mask = 0;
			sel->krem = Q.k;
			sel->all = 0;
			*count = 0;
		}
		MARK(0);
		g.sync();
		/* 2. the terms, in the query's order */
		for (uint32_t j = 0; j < Q.nt; j++)
		{
			const Bm25TermDesc T = td[Q.first_term + j];

			for (uint64_t i = tid; i < T.len; i += nthreads)
			{
				uint32_t	d = docs[T.start + i];
				double		sc = score[d];
				double		x = __dmul_rn(T.idf, (double) imp[T.start + i]);

				if (__double_as_longlong(sc) == SCORE_NONE)
					sc = 0.0;
				score[d] = __dadd_rn(sc, x);
			}
			g.sync();
		}
		MARK(1);
		/* 3. the radix select, a digit a pass */
		for (int shift = 24; shift >= 0 && !sel->all; shift -= 8)
		{
			const uint32_t prefix = sel->prefix,
						mask = sel->mask;

			for (int i = threadIdx.x; i < SEL_BINS; i += blockDim.x)
				h[i] = 0;
			__syncthreads();
			/* whole warps go round the loop together (the bound is rounded
			 * up), so that lanes of one bin add once: most keys share the
			 * first digits (a float's exponent) */
			for (uint64_t d0 = tid - (tid & 31); d0 < ndocs; d0 += nthreads)
			{
				uint64_t	d = d0 + (tid & 31);
				uint32_t	key = d < ndocs ? Bm25Key(score[d]) : 0;
				int			bin = key != 0 && (key & mask) == prefix ? (int) ((key >> shift) & 0xFF) : -1;
				unsigned int same = __match_any_sync(0xffffffffu, bin);

				if (bin >= 0 && (tid & 31) == (uint64_t) (__ffs(same) - 1))
					atomicAdd(&h[bin], (unsigned int) __popc(same));
			}
			__syncthreads();
			for (int i = threadIdx.x; i < SEL_BINS; i += blockDim.x)
				if (h[i] != 0)
					atomicAdd(&sel->hist[i], h[i]);
			g.sync();
			if (blockIdx.x == 0)
				Bm25PickDigit(sel, shift, prefix, mask, sh);
			g.sync();
		}
		MARK(2);
		/* 4. the candidates; every score back to SCORE_NONE for the next query */
		t = sel->all ? 1u : sel->prefix;
		for (uint64_t d = tid; d < ndocs; d += nthreads)
		{
			double		sc = score[d];
			uint32_t	key = Bm25Key(sc);

			if (key == 0)
				continue;
			score[d] = __longlong_as_double(SCORE_NONE);
			if (key >= t)
			{
				unsigned int i = atomicAdd(count, 1u);

				if (i < Q.cap)
				{
					cand[i].score = sc;
					cand[i].doc = (uint32_t) d;
				}
			}
		}
		g.sync();				/* before the next query adds to the scores */
		MARK(3);
	}
}

/* ------------------------------------------------------------------ the store */

/* blocks for a grid-stride launch over n items */
static unsigned int
Blocks(const CodevecCudaBm25Data *s, uint64_t n)
{
	uint64_t	b = (n + THREADS - 1) / THREADS;
	uint64_t	most = (uint64_t) s->sms * 8;

	if (b < 1)
		b = 1;
	return (unsigned int) (b < most ? b : most);
}

/* (Re)size the candidates' buffers to cap */
static int
Bm25Reserve(CodevecCudaBm25Data *s, uint32_t cap, char *errbuf, size_t errlen)
{
	size_t		bytes = OUT_HEADER + (size_t) cap * sizeof(Bm25Cand);

	if (s->d_out)
		cudaFree(s->d_out);
	if (s->h_out)
		cudaFreeHost(s->h_out);
	s->d_out = NULL;
	s->h_out = NULL;
	s->cap = 0;
	CUDA_TRY(cudaMalloc((void **) &s->d_out, bytes));
	CUDA_TRY(cudaMallocHost((void **) &s->h_out, bytes));
	s->cap = cap;
	return CODEVEC_CUDA_OK;
}

extern "C" void
codevec_cuda_bm25_free(CodevecCudaBm25 s)
{
	if (s == NULL)
		return;
	cudaSetDevice(s->device);
	if (s->stream)
		cudaStreamSynchronize(s->stream);
	cudaFree(s->d_docs);
	cudaFree(s->d_imp);
	cudaFree(s->d_score);
	cudaFree(s->d_sel);
	cudaFree(s->d_out);
	if (s->h_out)
		cudaFreeHost(s->h_out);
	cudaFree(s->d_stage);
	cudaFree(s->d_bout);
	if (s->h_stage)
		cudaFreeHost(s->h_stage);
	if (s->h_bout)
		cudaFreeHost(s->h_bout);
	if (s->stream)
		cudaStreamDestroy(s->stream);
	free(s->term_start);
	free(s);
}

/* the allocations of codevec_cuda_bm25_create, on s */
static int
Bm25Alloc(CodevecCudaBm25Data *s, char *errbuf, size_t errlen)
{
	size_t		np = s->npostings > 0 ? s->npostings : 1;

	CUDA_TRY(cudaGetDevice(&s->device));
	CUDA_TRY(cudaDeviceGetAttribute(&s->sms, cudaDevAttrMultiProcessorCount, s->device));
	CUDA_TRY(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
	CUDA_TRY(cudaMalloc((void **) &s->d_docs, np * sizeof(uint32_t)));
	CUDA_TRY(cudaMalloc((void **) &s->d_imp, np * sizeof(float)));
	CUDA_TRY(cudaMalloc((void **) &s->d_score, (size_t) s->ndocs * sizeof(double)));
	/* no scores: what bm25_batch_kernel expects of the array, and leaves */
	CUDA_TRY(cudaMemset(s->d_score, 0xFF, (size_t) s->ndocs * sizeof(double)));
	CUDA_TRY(cudaMalloc((void **) &s->d_sel, sizeof(Bm25Select)));
	CUDA_TRY(cudaMemset(s->d_sel, 0, sizeof(Bm25Select)));
	{
		int			per_sm = 0;

		CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, bm25_batch_kernel, THREADS, 0));
		s->batch_grid = (unsigned int) (s->sms * (per_sm < 4 ? per_sm : 4));
		if (s->batch_grid < 1)
		{
			SetError(errbuf, errlen, "bm25_batch_kernel cannot run on this device");
			return CODEVEC_CUDA_ERR_UNSUPPORTED;
		}
	}
	return Bm25Reserve(s, 1024, errbuf, errlen);
}

extern "C" int
codevec_cuda_bm25_create(uint32_t ndocs, uint32_t nterms, const uint64_t *term_start,
						 CodevecCudaBm25 *out, char *errbuf, size_t errlen)
{
	CodevecCudaBm25Data *s;
	int			rc;

	if (out == NULL)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_create: no output");
		return CODEVEC_CUDA_ERR_ARG;
	}
	*out = NULL;
	if (ndocs < 1 || ndocs > INT32_MAX || nterms < 1 || nterms > INT32_MAX || term_start == NULL ||
		term_start[0] != 0)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_create: bad sizes (%u documents, %u terms)",
				 ndocs, nterms);
		return CODEVEC_CUDA_ERR_ARG;
	}
	for (uint32_t t = 0; t < nterms; t++)
		if (term_start[t + 1] < term_start[t] ||
			term_start[t + 1] - term_start[t] > ndocs)
		{
			SetError(errbuf, errlen, "codevec_cuda_bm25_create: term %u's postings [%llu, %llu) "
					 "are not a range of at most %u", t, (unsigned long long) term_start[t],
					 (unsigned long long) term_start[t + 1], ndocs);
			return CODEVEC_CUDA_ERR_ARG;
		}
	s = (CodevecCudaBm25Data *) calloc(1, sizeof(CodevecCudaBm25Data));
	if (s == NULL || (s->term_start = (uint64_t *) malloc(sizeof(uint64_t) * ((size_t) nterms + 1))) == NULL)
	{
		free(s);
		SetError(errbuf, errlen, "codevec_cuda_bm25_create: out of host memory");
		return CODEVEC_CUDA_ERR_NOMEM;
	}
	memcpy(s->term_start, term_start, sizeof(uint64_t) * ((size_t) nterms + 1));
	s->ndocs = ndocs;
	s->nterms = nterms;
	s->npostings = term_start[nterms];
	rc = Bm25Alloc(s, errbuf, errlen);
	if (rc != CODEVEC_CUDA_OK)
	{
		codevec_cuda_bm25_free(s);
		return rc;
	}
	*out = s;
	return CODEVEC_CUDA_OK;
}

extern "C" int
codevec_cuda_bm25_load(CodevecCudaBm25 s, uint64_t first, uint64_t n, const uint32_t *docs,
					   const float *impacts, char *errbuf, size_t errlen)
{
	uint32_t	t,
				prev;

	if (s == NULL || first != s->loaded || n > s->npostings - first ||
		(n > 0 && (docs == NULL || impacts == NULL)))
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_load: postings [%llu, +%llu) are not the next "
				 "of the store (%llu of %llu written)", (unsigned long long) first,
				 (unsigned long long) n, (unsigned long long) (s ? s->loaded : 0),
				 (unsigned long long) (s ? s->npostings : 0));
		return CODEVEC_CUDA_ERR_ARG;
	}
	if (n == 0)
		return CODEVEC_CUDA_OK;
	/* the term of posting first: the last t with term_start[t] <= first */
	t = (uint32_t) (std::upper_bound(s->term_start, s->term_start + s->nterms + 1, first) -
					s->term_start) - 1;
	prev = s->last_doc;
	for (uint64_t i = 0; i < n; i++)
	{
		uint64_t	p = first + i;

		while (s->term_start[t + 1] <= p)
			t++;
		if (docs[i] >= s->ndocs || (p > s->term_start[t] && docs[i] <= prev) ||
			!isfinite(impacts[i]) || impacts[i] < 0)
		{
			SetError(errbuf, errlen, "codevec_cuda_bm25_load: posting %llu of term %u (document %u, "
					 "impact %g) is out of order or out of range", (unsigned long long) p, t,
					 docs[i], (double) impacts[i]);
			return CODEVEC_CUDA_ERR_ARG;
		}
		prev = docs[i];
	}
	CUDA_TRY(cudaSetDevice(s->device));
	CUDA_TRY(cudaMemcpyAsync(s->d_docs + first, docs, n * sizeof(uint32_t), cudaMemcpyHostToDevice, s->stream));
	CUDA_TRY(cudaMemcpyAsync(s->d_imp + first, impacts, n * sizeof(float), cudaMemcpyHostToDevice, s->stream));
	CUDA_TRY(cudaStreamSynchronize(s->stream));
	s->loaded += n;
	s->last_doc = prev;
	return CODEVEC_CUDA_OK;
}

/* Check a query's arguments against the store (codevec_cuda_bm25_topk's rules) */
static bool
Bm25QueryValid(const CodevecCudaBm25Data *s, const CodevecCudaBm25Query *q, char *errbuf, size_t errlen)
{
	uint32_t	sorted[CODEVEC_CUDA_BM25_MAX_TERMS];

	if (q->nt < 0 || q->nt > CODEVEC_CUDA_BM25_MAX_TERMS || q->k < 1 || q->k > CODEVEC_CUDA_BM25_MAX_K ||
		(q->nt > 0 && (q->terms == NULL || q->idf == NULL)) || q->docs_out == NULL ||
		q->scores_out == NULL || q->nout == NULL)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_topk: bad arguments (%d terms, k %d)", q->nt, q->k);
		return false;
	}
	for (int i = 0; i < q->nt; i++)
	{
		if (q->terms[i] >= s->nterms || !isfinite(q->idf[i]) || q->idf[i] < 0)
		{
			SetError(errbuf, errlen, "codevec_cuda_bm25_topk: term %u (idf %g) out of range",
					 q->terms[i], q->idf[i]);
			return false;
		}
		sorted[i] = q->terms[i];
	}
	std::sort(sorted, sorted + q->nt);
	for (int i = 1; i < q->nt; i++)
		if (sorted[i] == sorted[i - 1])
		{
			SetError(errbuf, errlen, "codevec_cuda_bm25_topk: term %u is given twice", sorted[i]);
			return false;
		}
	return true;
}

/* order of the candidates: score descending, then document */
static bool
CandBefore(const Bm25Cand &a, const Bm25Cand &b)
{
	return a.score > b.score || (a.score == b.score && a.doc < b.doc);
}

/* steps 4 and 5's copy: gather the candidates and bring them back, *count of them */
static int
Bm25Gather(CodevecCudaBm25Data *s, uint32_t *count, char *errbuf, size_t errlen)
{
	unsigned int nb = Blocks(s, s->ndocs);

	CUDA_TRY(cudaMemsetAsync(s->d_out, 0, OUT_HEADER, s->stream));
	LAUNCH_TRY((bm25_gather_kernel<<<nb, THREADS, 0, s->stream>>>(s->d_score, s->ndocs, s->d_sel,
																   s->d_out, s->cap)));
	CUDA_TRY(cudaMemcpyAsync(s->h_out, s->d_out, OUT_HEADER + (size_t) s->cap * sizeof(Bm25Cand),
							 cudaMemcpyDeviceToHost, s->stream));
	CUDA_TRY(cudaStreamSynchronize(s->stream));
	*count = *(unsigned int *) s->h_out;
	return CODEVEC_CUDA_OK;
}

extern "C" int
codevec_cuda_bm25_topk(CodevecCudaBm25 s, int nt, const uint32_t *terms, const double *idf, int k,
					   uint32_t *docs_out, double *scores_out, int *nout, char *errbuf, size_t errlen)
{
	CodevecCudaBm25Query query = {nt, terms, idf, k, docs_out, scores_out, nout};
	unsigned int nb;
	uint32_t	count;
	Bm25Cand   *cand;
	int			rc,
				n;

	if (s == NULL || s->loaded != s->npostings)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_topk: a store not loaded whole");
		return CODEVEC_CUDA_ERR_ARG;
	}
	if (!Bm25QueryValid(s, &query, errbuf, errlen))
		return CODEVEC_CUDA_ERR_ARG;
	*nout = 0;
	if (nt == 0)
		return CODEVEC_CUDA_OK;

	CUDA_TRY(cudaSetDevice(s->device));
	CUDA_TRY(cudaMemsetAsync(s->d_score, 0xFF, (size_t) s->ndocs * sizeof(double), s->stream));
	LAUNCH_TRY((bm25_reset_kernel<<<1, 1, 0, s->stream>>>(s->d_sel, (unsigned int *) s->d_out,
														   (unsigned int) k)));
	for (int i = 0; i < nt; i++)
	{
		uint64_t	a = s->term_start[terms[i]],
					len = s->term_start[terms[i] + 1] - a;

		if (len == 0)
			continue;
		LAUNCH_TRY((bm25_term_kernel<<<Blocks(s, len), THREADS, 0, s->stream>>>(
						s->d_score, s->d_docs + a, s->d_imp + a, len, idf[i] == 0 ? 0.0 : idf[i])));
	}
	nb = Blocks(s, s->ndocs);
	for (int shift = 24; shift >= 0; shift -= 8)
		LAUNCH_TRY((bm25_select_kernel<<<nb, THREADS, 0, s->stream>>>(s->d_score, s->ndocs, shift,
																	   s->d_sel)));
	rc = Bm25Gather(s, &count, errbuf, errlen);
	if (rc == CODEVEC_CUDA_OK && count > s->cap)
	{
		/* more ties at the k-th key than room: grow and gather again */
		uint32_t	cap = s->cap;

		while (cap < count)
			cap *= 2;
		rc = Bm25Reserve(s, cap, errbuf, errlen);
		if (rc == CODEVEC_CUDA_OK)
			rc = Bm25Gather(s, &count, errbuf, errlen);
	}
	/* no scores again, as bm25_batch_kernel expects them */
	if (rc == CODEVEC_CUDA_OK)
		CUDA_TRY(cudaMemsetAsync(s->d_score, 0xFF, (size_t) s->ndocs * sizeof(double), s->stream));
	if (rc != CODEVEC_CUDA_OK)
		return rc;
	if (count > s->cap)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_topk: %u candidates for %u places", count, s->cap);
		return CODEVEC_CUDA_ERR_CUDA;
	}
	cand = (Bm25Cand *) (s->h_out + OUT_HEADER);
	n = count < (uint32_t) k ? (int) count : k;
	std::partial_sort(cand, cand + n, cand + count, CandBefore);
	for (int i = 0; i < n; i++)
	{
		docs_out[i] = cand[i].doc;
		scores_out[i] = cand[i].score;
	}
	*nout = n;
	return CODEVEC_CUDA_OK;
}

/* (Re)size a pinned host buffer and its device twin to at least need bytes */
static int
Bm25Grow(char **h, char **d, size_t *cap, size_t need, char *errbuf, size_t errlen)
{
	size_t		want = *cap > 0 ? *cap : 4096;

	if (need <= *cap)
		return CODEVEC_CUDA_OK;
	while (want < need)
		want *= 2;
	if (*h)
		cudaFreeHost(*h);
	cudaFree(*d);
	*h = NULL;
	*d = NULL;
	*cap = 0;
	CUDA_TRY(cudaMallocHost((void **) h, want));
	CUDA_TRY(cudaMalloc((void **) d, want));
	*cap = want;
	return CODEVEC_CUDA_OK;
}

extern "C" int
codevec_cuda_bm25_topk_batch(CodevecCudaBm25 s, const CodevecCudaBm25Query *queries, int nq,
							 char *errbuf, size_t errlen)
{
	size_t		nterms = 0,
				stage,
				bout = 0;
	Bm25QueryDesc *qd;
	Bm25TermDesc *td;
	int			rc;

	if (s == NULL || s->loaded != s->npostings || queries == NULL || nq < 1 ||
		nq > CODEVEC_CUDA_BM25_MAX_BATCH)
	{
		SetError(errbuf, errlen, "codevec_cuda_bm25_topk_batch: bad arguments (%d queries) or a "
				 "store not loaded whole", nq);
		return CODEVEC_CUDA_ERR_ARG;
	}
	for (int q = 0; q < nq; q++)
	{
		if (!Bm25QueryValid(s, &queries[q], errbuf, errlen))
			return CODEVEC_CUDA_ERR_ARG;
		nterms += queries[q].nt;
		bout += OUT_HEADER + (size_t) (2 * queries[q].k + 256) * sizeof(Bm25Cand);
	}
	stage = sizeof(Bm25QueryDesc) * nq + sizeof(Bm25TermDesc) * (nterms > 0 ? nterms : 1);
	rc = Bm25Grow(&s->h_stage, &s->d_stage, &s->stage_cap, stage, errbuf, errlen);
	if (rc == CODEVEC_CUDA_OK)
		rc = Bm25Grow(&s->h_bout, &s->d_bout, &s->bout_cap, bout, errbuf, errlen);
	if (rc != CODEVEC_CUDA_OK)
		return rc;

	/* the descriptors: terms without postings left out (they add nothing) */
	qd = (Bm25QueryDesc *) s->h_stage;
	td = (Bm25TermDesc *) (s->h_stage + sizeof(Bm25QueryDesc) * nq);
	nterms = 0;
	bout = 0;
	for (int q = 0; q < nq; q++)
	{
		const CodevecCudaBm25Query *Q = &queries[q];

		qd[q].first_term = (uint32_t) nterms;
		qd[q].k = (uint32_t) Q->k;
		qd[q].cap = (uint32_t) (2 * Q->k + 256);
		qd[q].out_off = bout;
		for (int i = 0; i < Q->nt; i++)
		{
			uint64_t	a = s->term_start[Q->terms[i]],
						len = s->term_start[Q->terms[i] + 1] - a;

			if (len == 0)
				continue;
			td[nterms].start = a;
			td[nterms].len = len;
			td[nterms].idf = Q->idf[i] == 0 ? 0.0 : Q->idf[i];
			nterms++;
		}
		qd[q].nt = (uint32_t) nterms - qd[q].first_term;
		bout += OUT_HEADER + (size_t) qd[q].cap * sizeof(Bm25Cand);
	}

	CUDA_TRY(cudaSetDevice(s->device));
	CUDA_TRY(cudaMemcpyAsync(s->d_stage, s->h_stage, stage, cudaMemcpyHostToDevice, s->stream));
	{
		const Bm25QueryDesc *d_qd = (const Bm25QueryDesc *) s->d_stage;
		const Bm25TermDesc *d_td = (const Bm25TermDesc *) (s->d_stage + sizeof(Bm25QueryDesc) * nq);
		static int	want_marks = -1;
		static unsigned long long *d_marks = NULL;
		unsigned long long *marks = NULL;
		void	   *args[] = {&s->d_score, &s->ndocs, &s->d_docs, &s->d_imp, &d_qd, &d_td, &nq,
							  &s->d_sel, &s->d_bout, &marks};

		/* CODEVEC_BM25_MARKS=1: the steps' times on stderr (test_bm25 --speed) */
		if (want_marks < 0)
			want_marks = getenv("CODEVEC_BM25_MARKS") != NULL &&
				cudaMalloc((void **) &d_marks, 4 * sizeof(unsigned long long)) == cudaSuccess;
		if (want_marks)
		{
			marks = d_marks;
			CUDA_TRY(cudaMemsetAsync(d_marks, 0, 4 * sizeof(unsigned long long), s->stream));
		}
		CUDA_TRY(cudaLaunchCooperativeKernel((void *) bm25_batch_kernel, s->batch_grid, THREADS, args,
											 0, s->stream));
		if (want_marks)
		{
			unsigned long long m[4];

			CUDA_TRY(cudaMemcpyAsync(m, d_marks, sizeof(m), cudaMemcpyDeviceToHost, s->stream));
			CUDA_TRY(cudaStreamSynchronize(s->stream));
			fprintf(stderr, "bm25 marks: %d queries, %u blocks: terms %.1f us, select %.1f us, gather %.1f us a query\n",
					nq, s->batch_grid, (double) (m[1] - m[0]) / nq / 1e3, (double) (m[2] - m[1]) / nq / 1e3,
					(double) (m[3] - m[2]) / nq / 1e3);
		}
	}
	CUDA_TRY(cudaMemcpyAsync(s->h_bout, s->d_bout, bout, cudaMemcpyDeviceToHost, s->stream));
	CUDA_TRY(cudaStreamSynchronize(s->stream));

	for (int q = 0; q < nq; q++)
	{
		const CodevecCudaBm25Query *Q = &queries[q];
		uint32_t	count = *(unsigned int *) (s->h_bout + qd[q].out_off);
		Bm25Cand   *cand = (Bm25Cand *) (s->h_bout + qd[q].out_off + OUT_HEADER);
		int			n;

		if (count > qd[q].cap)
		{
			/* more ties at its k-th key than room: this one alone, with room */
			rc = codevec_cuda_bm25_topk(s, Q->nt, Q->terms, Q->idf, Q->k, Q->docs_out, Q->scores_out,
										Q->nout, errbuf, errlen);
			if (rc != CODEVEC_CUDA_OK)
				return rc;
			continue;
		}
		n = count < (uint32_t) Q->k ? (int) count : Q->k;
		std::partial_sort(cand, cand + n, cand + count, CandBefore);
		for (int i = 0; i < n; i++)
		{
			Q->docs_out[i] = cand[i].doc;
			Q->scores_out[i] = cand[i].score;
		}
		*Q->nout = n;
	}
	return CODEVEC_CUDA_OK;
}

extern "C" int
codevec_cuda_bm25_info(CodevecCudaBm25 s, uint32_t *ndocs, uint32_t *nterms, uint64_t *npostings,
					   size_t *device_bytes)
{
	if (s == NULL)
		return CODEVEC_CUDA_ERR_ARG;
	if (ndocs)
		*ndocs = s->ndocs;
	if (nterms)
		*nterms = s->nterms;
	if (npostings)
		*npostings = s->npostings;
	if (device_bytes)
		*device_bytes = (s->npostings > 0 ? s->npostings : 1) * (sizeof(uint32_t) + sizeof(float)) +
			(size_t) s->ndocs * sizeof(double) + sizeof(Bm25Select) +
			OUT_HEADER + (size_t) s->cap * sizeof(Bm25Cand);
	return CODEVEC_CUDA_OK;
}
