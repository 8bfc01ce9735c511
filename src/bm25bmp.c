/*
 * bm25bmp.c
 *	  Exact BM25 top-k by block-max pruning over doc-ordered posting blocks
 *	  (issue 21): codevec_bm25_blocks_topk().
 *
 * The scores are src/bm25.c's: score(d, q) = sum over the query terms t_i,
 * in the order given, of idf_i * (double) impact(t_i, d), with the float4
 * impacts BM25 stores.  The postings are code.bm25_blocks' (src/bm25block.c
 * has the layout): per term and block of the id grid (2^shift ids), the
 * term's postings there and max_impact, their largest impact.
 *
 * The algorithm is block-max pruning (Mallia, Suel and Tonellotto,
 * "Faster Learned Sparse Retrieval with Block-Max Pruning", SIGIR 2024),
 * built on the block-max idea of Ding and Suel (SIGIR 2011):
 *
 *   1. read every query term's rows (one btree range scan each: block,
 *      max_impact and the postings still compressed or out of line);
 *   2. for every block some term has: bound(b) = sum over the terms that
 *      have b of idf_i * max_impact_i(b), an upper bound of every score
 *      in b;
 *   3. visit the blocks by bound, highest first.  In a visited block, the
 *      bound of each sub-block of 2^BM25_SUB_SHIFT ids is the sum over
 *      the terms that have it of idf_i * their bound there: the stored
 *      directory's (code.bm25_postings.subblocks, src/bm25block.c), or,
 *      for a row without one (fewer than 16 postings), the largest of its
 *      decoded impacts there.  Each sub-block whose bound still reaches
 *      theta when its turn comes is scored exactly, term at a time in the
 *      query's order into an accumulator per id, its documents offered to
 *      the best-k heap.  The postings
 *      of a skipped sub-block are never decoded: a common word's row is
 *      read, but only the few sub-blocks where it meets the rarer terms
 *      are scored.
 *   4. stop at the first block whose bound is below theta, the k-th best
 *      score (every block left is bounded lower still).
 *
 * Step 3 adds a document's contributions in the query's term order,
 * starting from 0, exactly as codevec_bm25_topk() does, so both give the
 * same double for every document.  Visiting order does not change the
 * result: the heap keeps the best k by score, then id, and a block is cut
 * only when its bound is below theta by more than a relative slack of
 * BM25_SLACK (a sum of bounds taken in another order may round a few ulps
 * below a score); a document equal to theta is always scored.  Hence the
 * result is exactly the first k of all matching documents ordered by
 * score descending, then id.
 *
 * Cost: the rows of the query's terms (a word in most of 785k documents
 * has ~48 rows at shift 14, ~770 at shift 10; a row is ~6 bytes a
 * posting, plus 4 bytes a non-empty sub-block in its directory), then
 * only the sub-blocks whose bound reaches theta are decoded and scored, at
 * a few nanoseconds a posting.  Large blocks keep the rows few, the
 * sub-blocks keep the bounds tight: on the Linux kernel the default shift
 * 14 with directories takes less than half the time of shift 10 without
 * (bench/keyword/README.md).  The first blocks visited hold the documents
 * that match the most and rarest terms, so theta is near its final value
 * after a few blocks.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "bm25.h"
#include "relacl.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(codevec_bm25_blocks_topk);

/* one query term: its blocks in block order */
typedef struct BmpList
{
	int32		term_no;		/* term number in code.bm25_blocks */
	double		idf;
	int32	   *block;			/* ascending */
	float4	   *block_max;
	Datum	   *postings;		/* the bytea as stored (maybe compressed or toasted) */
	Datum	   *subblocks;		/* their sub-block directories, 0 for none */
	int			nblocks;
} BmpList;

/* where one term's postings of one sub-block of the visited block are */
typedef struct BmpSeg
{
	int32		stamp;			/* the visit that set it; other values are stale */
	int32		start;			/* first posting's place in the term's row */
	int32		count;
	float4		bound;			/* at least each of their impacts */
} BmpSeg;

/* a block some term has, with its bound */
typedef struct BmpBlock
{
	int32		block;
	double		bound;
} BmpBlock;

/* Order blocks by bound descending, then block ascending (qsort). */
static int
CompareBlocks(const void *a, const void *b)
{
	const BmpBlock *x = a,
			   *y = b;

	if (x->bound != y->bound)
		return x->bound > y->bound ? -1 : 1;
	return (x->block > y->block) - (x->block < y->block);
}

/* Return the place of block b in list l (binary search), -1 when absent. */
static int
FindBlock(const BmpList *l, int32 b)
{
	int			lo = 0,
				hi = l->nblocks - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (l->block[mid] == b)
			return mid;
		if (l->block[mid] < b)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Bm25ColumnOf: see bm25.h */
AttrNumber
Bm25ColumnOf(Relation rel, const char *name, Oid type)
{
	AttrNumber	att = get_attnum(RelationGetRelid(rel), name);

	if (att <= 0 || get_atttype(RelationGetRelid(rel), att) != type)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" has no %s column \"%s\"", RelationGetRelationName(rel),
						format_type_be(type), name)));
	return att;
}

/*
 * Read every row of list l's term through the btree on (term, block):
 * block numbers, maxima and the postings datums, copied as stored (a
 * toasted or compressed value is expanded only if its block is scored).
 */
static void
LoadList(BmpList *l, Relation heap, Relation index, Snapshot snapshot, TupleTableSlot *slot,
		 AttrNumber att_block, AttrNumber att_max, AttrNumber att_post, AttrNumber att_sub)
{
	IndexScanDesc scan = Bm25BeginScan(heap, index, snapshot, 1);
	ScanKeyData key;
	int			cap = 64;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(l->term_no));
	index_rescan(scan, &key, 1, NULL, 0);
	l->block = palloc(sizeof(int32) * cap);
	l->block_max = palloc(sizeof(float4) * cap);
	l->postings = palloc(sizeof(Datum) * cap);
	l->subblocks = palloc(sizeof(Datum) * cap);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		n1,
					n2,
					n3;
		int32		b = DatumGetInt32(slot_getattr(slot, att_block, &n1));
		float4		m = DatumGetFloat4(slot_getattr(slot, att_max, &n2));
		Datum		p = slot_getattr(slot, att_post, &n3);

		if (n1 || n2 || n3)
			continue;
		if (!(m >= 0 && isfinite(m)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 block maximum of term %d block %d is %g", l->term_no, b, m)));
		if (l->nblocks > 0 && b <= l->block[l->nblocks - 1])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 blocks of term %d are not unique and in order", l->term_no)));
		if (l->nblocks == cap)
		{
			cap *= 2;
			l->block = repalloc(l->block, sizeof(int32) * cap);
			l->block_max = repalloc(l->block_max, sizeof(float4) * cap);
			l->postings = repalloc(l->postings, sizeof(Datum) * cap);
			l->subblocks = repalloc(l->subblocks, sizeof(Datum) * cap);
		}
		l->block[l->nblocks] = b;
		l->block_max[l->nblocks] = m;
		l->postings[l->nblocks] = datumCopy(p, false, -1);
		l->subblocks[l->nblocks] = (Datum) 0;
		if (att_sub != InvalidAttrNumber)
		{
			bool		n4;
			Datum		d = slot_getattr(slot, att_sub, &n4);

			if (!n4)
				l->subblocks[l->nblocks] = datumCopy(d, false, -1);
		}
		l->nblocks++;
	}
	ExecClearTuple(slot);
	index_endscan(scan);
}

/* the state of one top-k: its lists and the best k so far */
typedef struct BmpState
{
	BmpList    *lists;
	int			nt;
	MemoryContext query_cxt;	/* where the buffers live */
	int			shift;
	int			sub_shift;		/* Min(shift, BM25_SUB_SHIFT) */
	int			nsub;			/* sub-blocks a block: 2^(shift - sub_shift) */
	Bm25Hit    *heap_k;
	int			nheap;
	int			k;
	/* per query term, for the block being visited */
	int		   *rowpos;			/* its row in lists[i], -1 if none */
	const char **rowdata;		/* the row's postings (maybe unaligned) */
	int		   *rown;			/* their count */
	uint16	  **rowoff;			/* decoded offsets and impacts, or NULL when */
	float4	  **rowimp;			/* only the directory's sub-blocks are read */
	uint16	  **offbuf;			/* where a term's rows are decoded: room */
	float4	  **impbuf;			/* for bufcap[i] postings, grown on demand */
	int		   *bufcap;
	BmpSeg	   *segs;			/* [term * nsub + sub] */
	/* per sub-block of the visited block */
	int32	   *sub_stamp;
	double	   *sub_bound;
	int32	   *subs;			/* the sub-blocks some term has, in the order met */
	int			nsubs;
	Bm25Sub    *dir;			/* a directory being read */
	/* counts for DEBUG1 */
	int64		nsubscored,
				npostings,
				nscored;
} BmpState;

/* Add a term's sub-block to the visited block's bound and find its postings. */
static inline void
AddSeg(BmpState *st, int i, int32 stamp, int sub, int start, int count, float4 bound)
{
	BmpSeg	   *g = &st->segs[(Size) i * st->nsub + sub];

	if (st->sub_stamp[sub] != stamp)
	{
		st->sub_stamp[sub] = stamp;
		st->sub_bound[sub] = 0;
		st->subs[st->nsubs] = sub;
		st->nsubs++;
	}
	st->sub_bound[sub] += st->lists[i].idf * (double) bound;
	g->stamp = stamp;
	g->start = start;
	g->count = count;
	g->bound = bound;
}

/*
 * Term i's row of block b (at place pos of its list): add its sub-blocks'
 * bounds to the visited block's and note where their postings are, from
 * the row's directory or, for a row without one, from its postings
 * decoded into the term's buffer.  Memory in the current context.
 */
static void
RowBounds(BmpState *st, int i, int pos, int64 base, int32 stamp)
{
	BmpList    *l = &st->lists[i];
	bytea	   *p = DatumGetByteaPP(l->postings[pos]);
	Size		len = VARSIZE_ANY_EXHDR(p);
	float4		m = l->block_max[pos];
	int			n;

	st->rowdata[i] = VARDATA_ANY(p);
	if (l->subblocks[pos] != (Datum) 0 && st->shift > BM25_SUB_SHIFT)
	{
		bytea	   *d = DatumGetByteaPP(l->subblocks[pos]);
		int			nd;

		st->rown[i] = Bm25BlockCount(len, st->shift);
		st->rowoff[i] = NULL;
		st->rowimp[i] = NULL;
		nd = Bm25SubblocksParse(VARDATA_ANY(d), VARSIZE_ANY_EXHDR(d), st->rown[i], st->shift, st->dir);
		/* both bound the sub-block: the directory's may be a step above */
		for (int e = 0; e < nd; e++)
			AddSeg(st, i, stamp, st->dir[e].sub, st->dir[e].start, st->dir[e].count,
				   Min(st->dir[e].bound, m));
		return;
	}
	n = Bm25BlockCount(len, st->shift);
	if (n > st->bufcap[i])
	{
		MemoryContext old = MemoryContextSwitchTo(st->query_cxt);

		st->bufcap[i] = Max(n, 2 * st->bufcap[i]);
		st->offbuf[i] = repalloc(st->offbuf[i], sizeof(uint16) * st->bufcap[i]);
		st->impbuf[i] = repalloc(st->impbuf[i], sizeof(float4) * st->bufcap[i]);
		MemoryContextSwitchTo(old);
	}
	st->rowoff[i] = st->offbuf[i];
	st->rowimp[i] = st->impbuf[i];
	n = Bm25BlockDecode(st->rowdata[i], len, st->shift, st->rowoff[i], st->rowimp[i]);
	st->rown[i] = n;
	for (int q = 0; q < n;)
	{
		int			sub = st->rowoff[i][q] >> st->sub_shift;
		int			start = q;
		float4		sm = 0;

		for (; q < n && (st->rowoff[i][q] >> st->sub_shift) == sub; q++)
		{
			/* the bound must hold, or the pruning would not be exact */
			if (st->rowimp[i][q] > m)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("bm25 impact %g of id " INT64_FORMAT " is above its block's max_impact %g",
								st->rowimp[i][q], base + st->rowoff[i][q], m),
						 errhint("Run SELECT code.bm25_refresh();")));
			sm = Max(sm, st->rowimp[i][q]);
		}
		AddSeg(st, i, stamp, sub, start, q - start, sm);
	}
}

/* the accumulator of one sub-block: a bit per id says its sum has begun */
StaticAssertDecl(BM25_SUB_SHIFT <= 6, "a sub-block's ids must fit a 64-bit mask");

/* Add x to the sum of the sub-block's id j, starting it at 0 the first time. */
static inline void
SubAdd(double *acc, uint64 *seen, int j, double x)
{
	uint64		bit = UINT64CONST(1) << j;

	if (!(*seen & bit))
	{
		*seen |= bit;
		acc[j] = 0;
	}
	acc[j] += x;
}

/*
 * Score sub-block sub of the visited block (ids from base) exactly: term at
 * a time in the query's order into the sub-block's accumulator (a
 * document's sum starts at 0 and adds its terms' idf * impact in the
 * query's order, as the whole block's accumulator did before sub-blocks);
 * offer its documents to the best-k heap (which keeps the best k by score,
 * then id, whatever the order they come in).
 */
static void
ScoreSub(BmpState *st, int sub, int64 base, int32 stamp)
{
	double		acc[1 << BM25_SUB_SHIFT];
	uint64		seen = 0;
	int			lowbits = (1 << st->sub_shift) - 1;
	int64		subbase = base + ((int64) sub << st->sub_shift);

	st->nsubscored++;
	for (int i = 0; i < st->nt; i++)
	{
		BmpSeg	   *g = &st->segs[(Size) i * st->nsub + sub];
		double		idf = st->lists[i].idf;

		/* set in this visit only for a term whose row has the sub-block */
		if (g->stamp != stamp)
			continue;
		st->npostings += g->count;
		if (st->rowoff[i] != NULL)
		{
			const uint16 *off = st->rowoff[i] + g->start;
			const float4 *imp = st->rowimp[i] + g->start;

			for (int q = 0; q < g->count; q++)
				SubAdd(acc, &seen, off[q] & lowbits, idf * (double) imp[q]);
		}
		else
		{
			/* read in place (the row may be unaligned), checked as read */
			const char *od = st->rowdata[i] + sizeof(uint16) * g->start;
			const char *vd = st->rowdata[i] + sizeof(uint16) * st->rown[i] + sizeof(float4) * g->start;
			int			prev = -1;

			for (int q = 0; q < g->count; q++)
			{
				uint16		o;
				float4		v;

				memcpy(&o, od + sizeof(uint16) * q, sizeof(uint16));
				memcpy(&v, vd + sizeof(float4) * q, sizeof(float4));
				if ((int) o <= prev || (o >> st->sub_shift) != sub || !(v >= 0 && v <= g->bound))
					ereport(ERROR,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg("bm25 posting of id " INT64_FORMAT " (impact %g) is not in sub-block %d under its bound %g",
									base + o, v, sub, g->bound),
							 errhint("Run SELECT code.bm25_refresh();")));
				prev = o;
				SubAdd(acc, &seen, o & lowbits, idf * (double) v);
			}
		}
	}
	while (seen != 0)
	{
		int			j = pg_rightmost_one_pos64(seen);

		seen &= seen - 1;
		st->nscored++;
		Bm25HeapOffer(st->heap_k, &st->nheap, st->k, acc[j], subbase + j);
	}
}

/*
 * Visit block b (stamp: a number no earlier visit used): its sub-blocks'
 * bounds from the terms' rows (RowBounds), then each sub-block whose bound
 * still reaches theta when its turn comes, scored (ScoreSub).  The
 * sub-blocks go in the order first met: sorting them by bound costs more
 * than it saves (it would raise theta sooner, but the blocks come by bound
 * already; bench/keyword/README.md).  Memory in the current context, reset
 * by the caller.
 */
static void
VisitBlock(BmpState *st, int32 b, int32 stamp)
{
	int64		base = (int64) b << st->shift;

	st->nsubs = 0;
	for (int i = 0; i < st->nt; i++)
	{
		st->rowpos[i] = FindBlock(&st->lists[i], b);
		if (st->rowpos[i] >= 0)
			RowBounds(st, i, st->rowpos[i], base, stamp);
	}
	for (int c = 0; c < st->nsubs; c++)
	{
		int			sub = st->subs[c];

		if (st->nheap < st->k || st->sub_bound[sub] >= Bm25Cut(st->heap_k[0].score))
			ScoreSub(st, sub, base, stamp);
	}
}

/*
 * codevec_bm25_blocks_topk(terms int4[], idf float8[], k int4,
 *   blocks_index regclass, block_shift int4) -> TABLE(id int8, score float8)
 *
 * The k (1..1,000,000) documents with the highest sum over i of idf[i] *
 * impact(terms[i], document), best first, ties by id, by block-max pruning
 * (top of this file).  blocks_index is a btree on (term int4, block int4)
 * of a table with columns max_impact real and postings bytea
 * (src/bm25block.c), one row per term and block = id >> block_shift that
 * has postings, and optionally subblocks bytea (codevec_bm25_subblocks of
 * the postings, or NULL).  Errors 22023: arrays of different lengths, NULLs, a
 * negative or non-finite idf, more than 1024 terms, a term given twice, k
 * or block_shift (0..16) out of range, an index or table of the wrong
 * shape; XX001 for a block that is not one, an impact above its
 * block's max_impact, or a directory that does not describe its block.
 */
Datum
codevec_bm25_blocks_topk(PG_FUNCTION_ARGS)
{
	ArrayType  *terms_a = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *idf_a = PG_GETARG_ARRAYTYPE_P(1);
	int32		k = PG_GETARG_INT32(2);
	Oid			index_oid = PG_GETARG_OID(3);
	int32		shift = PG_GETARG_INT32(4);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const Oid key_types[2] = {INT4OID, INT4OID};
	Datum	   *terms_d,
			   *idf_d;
	bool	   *terms_n,
			   *idf_n;
	int			nt,
				ni;
	Relation	index,
				heap;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	AttrNumber	att_block,
				att_max,
				att_post,
				att_sub;
	BmpList    *lists;
	BmpBlock   *blocks;
	int64		nblocks = 0,
				nvisited = 0;
	int		   *bpos;
	BmpState	st;
	MemoryContext block_cxt;

	if (k < 1 || k > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 k must be between 1 and 1000000, not %d", k)));
	Bm25CheckShift(shift);
	deconstruct_array(terms_a, INT4OID, 4, true, TYPALIGN_INT, &terms_d, &terms_n, &nt);
	deconstruct_array(idf_a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &idf_d, &idf_n, &ni);
	if (nt != ni)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 terms and idf must have the same length, not %d and %d", nt, ni)));
	if (nt > BM25_MAX_TERMS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 takes at most %d query terms, not %d", BM25_MAX_TERMS, nt)));
	for (int i = 0; i < nt; i++)
	{
		if (terms_n[i] || idf_n[i] ||
			!(DatumGetFloat8(idf_d[i]) >= 0 && isfinite(DatumGetFloat8(idf_d[i]))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bm25 query term %d has a NULL or an idf that is not finite and 0 or more",
							i + 1)));
		/* a term twice would count its postings twice */
		for (int j = 0; j < i; j++)
			if (DatumGetInt32(terms_d[j]) == DatumGetInt32(terms_d[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("bm25 query term %d is given twice", DatumGetInt32(terms_d[i]))));
	}

	CodevecInitSRF(fcinfo);
	if (nt == 0)
		PG_RETURN_VOID();

	RequireIndexTableSelect(index_oid);
	index = index_open(index_oid, AccessShareLock);
	Bm25CheckIndexColumns(index, 2, key_types, "(term int4, block int4)");
	heap = table_open(index->rd_index->indrelid, AccessShareLock);
	att_block = index->rd_index->indkey.values[1];
	if (att_block <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a btree index on (term int4, block int4)",
						RelationGetRelationName(index))));
	att_max = Bm25ColumnOf(heap, "max_impact", FLOAT4OID);
	att_post = Bm25ColumnOf(heap, "postings", BYTEAOID);
	/* the sub-block directories are optional (a table made before them) */
	att_sub = get_attnum(RelationGetRelid(heap), "subblocks");
	if (att_sub != InvalidAttrNumber && get_atttype(RelationGetRelid(heap), att_sub) != BYTEAOID)
		att_sub = InvalidAttrNumber;
	snapshot = GetActiveSnapshot();
	if (snapshot == NULL)
		snapshot = GetTransactionSnapshot();
	slot = table_slot_create(heap, NULL);

	/* 1. every term's rows */
	lists = palloc0(sizeof(BmpList) * nt);
	for (int i = 0; i < nt; i++)
	{
		lists[i].term_no = DatumGetInt32(terms_d[i]);
		lists[i].idf = DatumGetFloat8(idf_d[i]);
		LoadList(&lists[i], heap, index, snapshot, slot, att_block, att_max, att_post, att_sub);
		nblocks += lists[i].nblocks;
	}

	/* 2. the blocks' bounds: a merge of the lists' ascending block numbers */
	blocks = palloc(sizeof(BmpBlock) * Max(nblocks, 1));
	bpos = palloc0(sizeof(int) * nt);
	nblocks = 0;
	for (;;)
	{
		int64		b = PG_INT64_MAX;
		double		bound = 0;

		for (int i = 0; i < nt; i++)
			if (bpos[i] < lists[i].nblocks && lists[i].block[bpos[i]] < b)
				b = lists[i].block[bpos[i]];
		if (b == PG_INT64_MAX)
			break;
		for (int i = 0; i < nt; i++)
			if (bpos[i] < lists[i].nblocks && lists[i].block[bpos[i]] == b)
			{
				bound += lists[i].idf * (double) lists[i].block_max[bpos[i]];
				bpos[i]++;
			}
		blocks[nblocks].block = (int32) b;
		blocks[nblocks].bound = bound;
		nblocks++;
	}
	qsort(blocks, nblocks, sizeof(BmpBlock), CompareBlocks);

	/* 3, 4. score the blocks best bound first until a bound is below theta */
	memset(&st, 0, sizeof(st));
	st.lists = lists;
	st.nt = nt;
	st.shift = shift;
	st.sub_shift = Min(shift, BM25_SUB_SHIFT);
	st.nsub = 1 << (shift - st.sub_shift);
	st.k = k;
	st.heap_k = palloc(sizeof(Bm25Hit) * k);	/* 16 MB at most */
	st.rowpos = palloc(sizeof(int) * nt);
	st.rowdata = palloc(sizeof(char *) * nt);
	st.rown = palloc(sizeof(int) * nt);
	st.rowoff = palloc(sizeof(uint16 *) * nt);
	st.rowimp = palloc(sizeof(float4 *) * nt);
	st.query_cxt = CurrentMemoryContext;
	st.bufcap = palloc(sizeof(int) * nt);
	st.offbuf = palloc(sizeof(uint16 *) * nt);
	st.impbuf = palloc(sizeof(float4 *) * nt);
	for (int i = 0; i < nt; i++)
	{
		st.bufcap[i] = 32;
		st.offbuf[i] = palloc(sizeof(uint16) * 32);
		st.impbuf[i] = palloc(sizeof(float4) * 32);
	}
	st.segs = palloc0(sizeof(BmpSeg) * nt * st.nsub);
	st.sub_stamp = palloc0(sizeof(int32) * st.nsub);
	st.sub_bound = palloc(sizeof(double) * st.nsub);
	st.subs = palloc(sizeof(int32) * st.nsub);
	st.dir = palloc(sizeof(Bm25Sub) * st.nsub);
	block_cxt = AllocSetContextCreate(CurrentMemoryContext, "bm25 block", ALLOCSET_DEFAULT_SIZES);
	for (int64 j = 0; j < nblocks; j++)
	{
		MemoryContext old;

		if (st.nheap == k && blocks[j].bound < Bm25Cut(st.heap_k[0].score))
			break;
		if ((nvisited & 63) == 0)
			CHECK_FOR_INTERRUPTS();
		nvisited++;
		old = MemoryContextSwitchTo(block_cxt);
		VisitBlock(&st, blocks[j].block, (int32) nvisited);
		MemoryContextSwitchTo(old);
		MemoryContextReset(block_cxt);
	}

	Bm25HeapSort(st.heap_k, st.nheap);
	for (int i = 0; i < st.nheap; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(st.heap_k[i].id);
		values[1] = Float8GetDatum(st.heap_k[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	elog(DEBUG1, "bm25 block-max top-%d of %d terms: %lld blocks, %lld visited, %lld sub-blocks scored, %lld postings read, %lld documents scored",
		 k, nt, (long long) nblocks, (long long) nvisited, (long long) st.nsubscored,
		 (long long) st.npostings, (long long) st.nscored);

	MemoryContextDelete(block_cxt);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	PG_RETURN_VOID();
}
