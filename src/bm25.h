/*
 * bm25.h
 *	  BM25 scoring of codevec_code tsvectors (src/bm25.c) and the two exact
 *	  top-k algorithms over its posting lists: Fagin's combined algorithm
 *	  over impact-ordered lists (src/bm25.c) and block-max pruning over
 *	  doc-ordered blocks (src/bm25block.c: the layout, src/bm25bmp.c: the
 *	  top-k), issue 21.
 */
#ifndef CODEVEC_BM25_H
#define CODEVEC_BM25_H

#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "fmgr.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

/* the score of a document may exceed a bound's sum by rounding: relative slack */
#define BM25_SLACK 1e-9

/* most query terms one top-k call takes */
#define BM25_MAX_TERMS 1024

/* the most a block shift can be: a block's offsets are uint16 (src/bm25block.c) */
#define BM25_MAX_SHIFT 16

/* bytes a posting takes in a block: uint16 offset, float4 impact */
#define BM25_POSTING_BYTES 6

/*
 * Sub-blocks (src/bm25block.c): a block of at least BM25_SUB_MIN postings
 * keeps beside them a directory of its sub-blocks of 2^BM25_SUB_SHIFT ids,
 * each with its postings' place and a bound of their impacts, so that the
 * top-k skips the sub-blocks that cannot reach the k-th score without
 * decoding them.  A sub-block holds at most 2^BM25_SUB_SHIFT postings,
 * which must fit the directory's uint8 count.
 */
#define BM25_SUB_SHIFT 6
#define BM25_SUB_MIN 16
StaticAssertDecl(BM25_SUB_SHIFT <= 8, "a sub-block's count must fit a uint8");

/* one sub-block of a block's directory, read by Bm25SubblocksParse */
typedef struct Bm25Sub
{
	int32		sub;			/* its ids are offsets [sub << s, (sub + 1) << s) */
	int32		start;			/* its first posting's place in the block */
	int32		count;			/* its postings, 1 or more */
	float4		bound;			/* at least every impact of them */
} Bm25Sub;

/* BM25's parameters, checked by the SQL entry points */
typedef struct Bm25Params
{
	float4		weights[4];		/* per tsvector weight, ts_rank's order {D, C, B, A} */
	float4		k1;				/* term frequency saturation, >= 0 */
	float4		b;				/* length normalisation, 0..1 */
	double		avgdl;			/* the average document length impacts use, > 0 */
} Bm25Params;

/* a scored document in a best-k heap */
typedef struct Bm25Hit
{
	double		score;
	int64		id;
} Bm25Hit;

/*
 * Check and read BM25's parameters (weights real[4] {D, C, B, A}, each finite
 * and >= 0; k1 finite >= 0; b in 0..1; avgdl finite > 0) into p.  Errors
 * 22023, 2202E for a weights array of the wrong shape.
 */
extern void Bm25ParamsInit(Bm25Params *p, ArrayType *weights, float4 k1, float4 b, double avgdl);

/* tf(t, d): the weighted term frequency of tsvector entry e (src/bm25.c) */
extern double Bm25EntryTf(TSVector tsv, WordEntry *e, const float4 *weights);

/* dl(d): the sum over tsv's lexemes of their weighted term frequencies */
extern double Bm25DocLength(TSVector tsv, const float4 *weights);

/* impact(t, d) for weighted frequency tf in a document of length dl */
extern float4 Bm25Impact(double tf, double dl, const Bm25Params *p);

/* Raise 22023 unless shift is 0..BM25_MAX_SHIFT */
extern void Bm25CheckShift(int32 shift);

/* The postings in a block's len bytes (XX001 when they are not a block) */
extern int	Bm25BlockCount(Size len, int shift);

/* Decode a block's bytes into offsets and impacts (2^shift room); returns n */
extern int	Bm25BlockDecode(const char *data, Size len, int shift, uint16 *offsets, float4 *impacts);

/* A block's bytea from n postings in offset order (src/bm25block.c) */
extern bytea *Bm25BlockEncode(const uint16 *offsets, const float4 *impacts, int n);

/*
 * The sub-block directory of a block of n postings of block_shift shift
 * (offsets increasing), or NULL when the block has fewer than BM25_SUB_MIN
 * postings or no more than one sub-block (shift <= BM25_SUB_SHIFT).
 */
extern bytea *Bm25SubblocksEncode(const uint16 *offsets, const float4 *impacts, int n, int shift);

/*
 * Read and check a directory (len bytes) of a block of npostings postings
 * of this shift into out (room for 2^(shift - BM25_SUB_SHIFT) entries);
 * returns the number of sub-blocks.  XX001 for a directory that is not one
 * of such a block.
 */
extern int	Bm25SubblocksParse(const char *data, Size len, int npostings, int shift, Bm25Sub *out);

/* Raise 22023 unless index rel is a btree whose first n key columns have types */
extern void Bm25CheckIndexColumns(Relation rel, int n, const Oid *types, const char *what);

/* Look up a column of rel by name and check its type (22023 otherwise; src/bm25bmp.c) */
extern AttrNumber Bm25ColumnOf(Relation rel, const char *name, Oid type);

/*
 * codevec_bm25_blocks_topk (src/bm25bmp.c): the CPU's block-max top-k, also
 * called with the fcinfo of codevec_bm25_gpu_topk, whose first five
 * arguments are its own (src/bm25gpu.c)
 */
extern PGDLLEXPORT Datum codevec_bm25_blocks_topk(PG_FUNCTION_ARGS);

/* index_beginscan for PostgreSQL 15 to 18 */
extern IndexScanDesc Bm25BeginScan(Relation heap, Relation index, Snapshot snapshot, int nkeys);

/* the cut below theta under which a bound rules a document out */
static inline double
Bm25Cut(double theta)
{
	return theta - (BM25_SLACK * fabs(theta) + BM25_SLACK);
}

/* Is a worse than b (lower score, or equal score and higher id)? */
static inline bool
Bm25HitWorse(const Bm25Hit *a, const Bm25Hit *b)
{
	return a->score < b->score || (a->score == b->score && a->id > b->id);
}

/* Restore the min-heap property of h[0..n) (worst first) from place i down. */
static inline void
Bm25HeapSiftDown(Bm25Hit *h, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;
		Bm25Hit		t;

		if (l < n && Bm25HitWorse(&h[l], &h[m]))
			m = l;
		if (r < n && Bm25HitWorse(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* Offer a scored document to the best-k heap h of *n entries (k at most). */
static inline void
Bm25HeapOffer(Bm25Hit *h, int *n, int k, double score, int64 id)
{
	Bm25Hit		hit = {score, id};

	if (*n < k)
	{
		int			i = (*n)++;

		h[i] = hit;
		while (i > 0 && Bm25HitWorse(&h[i], &h[(i - 1) / 2]))
		{
			Bm25Hit		t = h[i];

			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	}
	else if (Bm25HitWorse(&h[0], &hit))
	{
		h[0] = hit;
		Bm25HeapSiftDown(h, *n, 0);
	}
}

/* Sort the heap h of n entries best first (score descending, then id). */
static inline void
Bm25HeapSort(Bm25Hit *h, int n)
{
	for (int m = n; m > 1; m--)
	{
		Bm25Hit		t = h[0];

		h[0] = h[m - 1];
		h[m - 1] = t;
		Bm25HeapSiftDown(h, m - 1, 0);
	}
}

#endif							/* CODEVEC_BM25_H */
