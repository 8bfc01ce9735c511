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
 *   3. visit the blocks by bound, highest first; score a visited block
 *      exactly, term at a time in the query's order into an accumulator
 *      per id of the block, and offer its documents to the best-k heap;
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
 * has ~770 rows at shift 10; a row is ~6 bytes a posting), then only the
 * blocks whose bound reaches theta are decompressed and scored, at a few
 * nanoseconds a posting.  The first blocks visited hold the documents that
 * match the most and rarest terms, so theta is near its final value after
 * a few blocks.  bench/keyword/README.md has the numbers.
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
	int			nblocks;
} BmpList;

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

/* Look up a column of rel by name and check its type (22023 otherwise). */
static AttrNumber
ColumnOf(Relation rel, const char *name, Oid type)
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
		 AttrNumber att_block, AttrNumber att_max, AttrNumber att_post)
{
	IndexScanDesc scan = Bm25BeginScan(heap, index, snapshot, 1);
	ScanKeyData key;
	int			cap = 64;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(l->term_no));
	index_rescan(scan, &key, 1, NULL, 0);
	l->block = palloc(sizeof(int32) * cap);
	l->block_max = palloc(sizeof(float4) * cap);
	l->postings = palloc(sizeof(Datum) * cap);
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
		}
		l->block[l->nblocks] = b;
		l->block_max[l->nblocks] = m;
		l->postings[l->nblocks] = datumCopy(p, false, -1);
		l->nblocks++;
	}
	ExecClearTuple(slot);
	index_endscan(scan);
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
 * has postings.  Errors 22023: arrays of different lengths, NULLs, a
 * negative or non-finite idf, more than 1024 terms, a term given twice, k
 * or block_shift (0..16) out of range, an index or table of the wrong
 * shape; XX001 for a block that is not one, or an impact above its
 * block's max_impact.
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
				att_post;
	BmpList    *lists;
	BmpBlock   *blocks;
	int64		nblocks = 0,
				nvisited = 0,
				nscored = 0,
				npostings = 0;
	int		   *bpos;
	Bm25Hit    *heap_k;
	int			nheap = 0;
	double	   *acc;
	uint16	   *offsets,
			   *touched;
	float4	   *impacts;
	bool	   *seen;
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
	att_max = ColumnOf(heap, "max_impact", FLOAT4OID);
	att_post = ColumnOf(heap, "postings", BYTEAOID);
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
		LoadList(&lists[i], heap, index, snapshot, slot, att_block, att_max, att_post);
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
	heap_k = palloc(sizeof(Bm25Hit) * k);	/* 16 MB at most */
	acc = palloc(sizeof(double) << shift);
	seen = palloc0(sizeof(bool) << shift);
	touched = palloc(sizeof(uint16) << shift);
	offsets = palloc(sizeof(uint16) << shift);
	impacts = palloc(sizeof(float4) << shift);
	block_cxt = AllocSetContextCreate(CurrentMemoryContext, "bm25 block", ALLOCSET_DEFAULT_SIZES);
	for (int64 j = 0; j < nblocks; j++)
	{
		int32		b = blocks[j].block;
		int64		base = (int64) b << shift;
		int			ntouched = 0;
		MemoryContext old;

		if (nheap == k && blocks[j].bound < Bm25Cut(heap_k[0].score))
			break;
		if ((nvisited & 63) == 0)
			CHECK_FOR_INTERRUPTS();
		nvisited++;
		old = MemoryContextSwitchTo(block_cxt);
		for (int i = 0; i < nt; i++)
		{
			int			pos = FindBlock(&lists[i], b);
			bytea	   *p;
			int			n;
			float4		m;

			if (pos < 0)
				continue;
			p = DatumGetByteaPP(lists[i].postings[pos]);
			n = Bm25BlockDecode(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p), shift, offsets, impacts);
			m = lists[i].block_max[pos];
			npostings += n;
			for (int q = 0; q < n; q++)
			{
				uint16		o = offsets[q];

				/* the bound must hold, or the pruning would not be exact */
				if (impacts[q] > m)
					ereport(ERROR,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg("bm25 impact %g of id " INT64_FORMAT " is above its block's max_impact %g",
									impacts[q], base + o, m),
							 errhint("Run SELECT code.bm25_refresh();")));
				if (!seen[o])
				{
					seen[o] = true;
					acc[o] = 0;
					touched[ntouched++] = o;
				}
				acc[o] += lists[i].idf * (double) impacts[q];
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(block_cxt);
		for (int q = 0; q < ntouched; q++)
		{
			uint16		o = touched[q];

			seen[o] = false;
			Bm25HeapOffer(heap_k, &nheap, k, acc[o], base + o);
		}
		nscored += ntouched;
	}

	Bm25HeapSort(heap_k, nheap);
	for (int i = 0; i < nheap; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(heap_k[i].id);
		values[1] = Float8GetDatum(heap_k[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	elog(DEBUG1, "bm25 block-max top-%d of %d terms: %lld blocks, %lld scored, %lld postings read, %lld documents scored",
		 k, nt, (long long) nblocks, (long long) nvisited, (long long) npostings, (long long) nscored);

	MemoryContextDelete(block_cxt);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	PG_RETURN_VOID();
}
