/*
 * bm25build.c
 *	  codevec_bm25_build(source_sql, weights, k1, b, avgdl, block_shift): the
 *	  BM25 posting blocks of a whole corpus in one pass over its documents
 *	  in id order, what code.bm25_refresh() stores (issues 21 and 23).
 *
 * The SQL build gives every posting its term number, sorts all of them by
 * (term, block, id) and packs each group (codevec_bm25_block_agg): on the
 * Linux kernel 40 million postings through a hash join, an external sort
 * and one aggregating process, 34 of the refresh's 63 s on 2 cores
 * (bench/loader/results-ingest-h200-2026-12-04.md).  A block holds the
 * postings of the 2^block_shift ids id >> block_shift, so the documents read
 * in id order complete their blocks one id range after the other: this
 * function keeps the postings of the current id range in a hash table by
 * lexeme (lib/simplehash.h), and when the first id of the next range comes
 * it encodes every lexeme's block (Bm25BlockEncode, the encoding of
 * codevec_bm25_pack), returns them and forgets the range.  No posting is
 * sorted (the ids arrive in order), and the memory held is one id range's
 * postings and lexemes (about 1 MB on the Linux kernel at block_shift 10)
 * besides the result's tuplestore, which spills to disk past work_mem.
 *
 * The impacts are codevec_bm25_impacts()' (Bm25Impact of Bm25EntryTf and
 * Bm25DocLength, src/bm25.c): a block's bytes are those of
 * codevec_bm25_pack(ids, impacts, block_shift) of its documents' impacts
 * in id order (test/search/bm25.sh compares this build with the SQL one
 * byte for byte).
 *
 * The documents come from source_sql, as tablefunc's crosstab(source_sql)
 * takes its rows: a query run with the caller's rights through SPI, read
 * as a cursor 1,000 rows at a time, that returns (id bigint, tsv tsvector)
 * in strictly increasing id order; rows whose tsv is NULL are skipped.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tsearch/ts_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "bm25.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(codevec_bm25_build);

/* rows fetched from the source query at a time */
#define BUILD_FETCH 1000

/* a lexeme as the hash table's key: bytes in the id range's memory */
typedef struct BuildKey
{
	const char *str;
	int			len;
} BuildKey;

/* one lexeme's postings in the current id range, in id order */
typedef struct BuildTerm
{
	BuildKey	key;
	uint32		hash;
	char		status;
	int			n;				/* postings held */
	int			cap;			/* room in offsets / impacts */
	float4		max_impact;
	uint16	   *offsets;		/* id - (block << shift), increasing */
	float4	   *impacts;
} BuildTerm;

#define SH_PREFIX buildterms
#define SH_ELEMENT_TYPE BuildTerm
#define SH_KEY_TYPE BuildKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k).str, (k).len)
#define SH_EQUAL(tb, a, b) ((a).len == (b).len && memcmp((a).str, (b).str, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* the build's state: the current id range and where its blocks go */
typedef struct BuildState
{
	Bm25Params	params;
	int			shift;
	int32		block;			/* id >> shift of the range held; -1: none */
	MemoryContext range_cxt;	/* the range's lexemes, postings and table */
	buildterms_hash *terms;
	Tuplestorestate *store;
	TupleDesc	desc;
} BuildState;

/* Return the block (id >> shift) of id; 22023 for ids a block cannot hold. */
static int32
BlockOf(int64 id, int shift)
{
	if (id < 0 || (id >> shift) > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 id " INT64_FORMAT " is outside what blocks of block_shift %d hold (0 to 2^%d - 1)",
						id, shift, 31 + shift)));
	return (int32) (id >> shift);
}

/* Return the range's rows, one per lexeme, to the tuplestore; forget the range. */
static void
FlushRange(BuildState *s)
{
	buildterms_iterator it;
	BuildTerm  *t;
	MemoryContext old;

	if (s->block < 0)
		return;
	old = MemoryContextSwitchTo(s->range_cxt);
	buildterms_start_iterate(s->terms, &it);
	while ((t = buildterms_iterate(s->terms, &it)) != NULL)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = PointerGetDatum(cstring_to_text_with_len(t->key.str, t->key.len));
		values[1] = Int32GetDatum(s->block);
		values[2] = Int32GetDatum(t->n);
		values[3] = Float4GetDatum(t->max_impact);
		values[4] = PointerGetDatum(Bm25BlockEncode(t->offsets, t->impacts, t->n));
		tuplestore_putvalues(s->store, s->desc, values, nulls);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(s->range_cxt);
	s->terms = NULL;
	s->block = -1;
}

/* Add the postings of one document (id in the range held) to the range. */
static void
AddDocument(BuildState *s, int64 id, TSVector tsv)
{
	WordEntry  *e = ARRPTR(tsv);
	char	   *str = STRPTR(tsv);
	double		dl = Bm25DocLength(tsv, s->params.weights);
	uint16		offset = (uint16) (id - ((int64) s->block << s->shift));

	for (int i = 0; i < tsv->size; i++)
	{
		BuildKey	key = {str + e[i].pos, e[i].len};
		float4		impact = Bm25Impact(Bm25EntryTf(tsv, &e[i], s->params.weights), dl, &s->params);
		bool		found;
		BuildTerm  *t = buildterms_insert(s->terms, key, &found);

		if (!found)
		{
			char	   *copy = MemoryContextAlloc(s->range_cxt, Max(key.len, 1));

			memcpy(copy, key.str, key.len);
			t->key.str = copy;
			t->n = 0;
			t->cap = 4;
			t->max_impact = 0;
			t->offsets = MemoryContextAlloc(s->range_cxt, sizeof(uint16) * t->cap);
			t->impacts = MemoryContextAlloc(s->range_cxt, sizeof(float4) * t->cap);
		}
		else if (t->n == t->cap)
		{
			/* a lexeme occurs once in a tsvector: at most 2^shift postings */
			t->cap = Min(t->cap * 2, 1 << s->shift);
			t->offsets = repalloc(t->offsets, sizeof(uint16) * t->cap);
			t->impacts = repalloc(t->impacts, sizeof(float4) * t->cap);
		}
		t->offsets[t->n] = offset;
		t->impacts[t->n] = impact;
		t->n++;
		if (impact > t->max_impact)
			t->max_impact = impact;
	}
}

/*
 * codevec_bm25_build(source_sql text, weights real[], k1 real, b real,
 * avgdl float8, block_shift int4) -> TABLE(lexeme text, block int4,
 * df int4, max_impact real, postings bytea): a row per lexeme and block of
 * 2^block_shift ids of the documents source_sql returns, df the number of
 * documents of the block that have the lexeme, max_impact the largest of
 * their impacts, postings their block (codevec_bm25_pack of the ids and
 * codevec_bm25_impacts' impacts with these weights, k1, b and avgdl).
 * Rows come block by block.  source_sql must return (id bigint, tsv
 * tsvector) with ids strictly increasing; NULL tsv rows are skipped.
 *
 * Errors: 22023 for bad weights, k1, b, avgdl or block_shift, ids not
 * increasing, negative or too large for a block (2^(31 + block_shift));
 * 22004 for a NULL id; 42804 for a query whose columns are not (bigint,
 * tsvector); the query's own errors.
 */
Datum
codevec_bm25_build(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BuildState	s;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext doc_cxt;
	int64		last = -1;
	bool		any = false;

	Bm25ParamsInit(&s.params, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_FLOAT4(2),
				   PG_GETARG_FLOAT4(3), PG_GETARG_FLOAT8(4));
	s.shift = PG_GETARG_INT32(5);
	Bm25CheckShift(s.shift);
	CodevecInitSRF(fcinfo);
	s.store = rsinfo->setResult;
	s.desc = rsinfo->setDesc;
	s.block = -1;
	s.terms = NULL;
	s.range_cxt = AllocSetContextCreate(CurrentMemoryContext, "codevec_bm25_build range",
										ALLOCSET_DEFAULT_SIZES);
	doc_cxt = AllocSetContextCreate(CurrentMemoryContext, "codevec_bm25_build document",
									ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "codevec_bm25_build: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	if (portal->tupDesc == NULL || portal->tupDesc->natts != 2 ||
		TupleDescAttr(portal->tupDesc, 0)->atttypid != INT8OID ||
		TupleDescAttr(portal->tupDesc, 1)->atttypid != TSVECTOROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("codevec_bm25_build: the source query must return two columns, id bigint and tsv tsvector")));
	for (;;)
	{
		SPI_cursor_fetch(portal, true, BUILD_FETCH);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int64		id;
			Datum		d;
			int32		block;
			MemoryContext old;

			CHECK_FOR_INTERRUPTS();
			id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("codevec_bm25_build: the source query returned a NULL id")));
			d = SPI_getbinval(tup, desc, 2, &isnull);
			if (isnull)
				continue;
			if (any && id <= last)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("codevec_bm25_build: ids must be strictly increasing, " INT64_FORMAT " came after " INT64_FORMAT,
								id, last),
						 errhint("End the source query with ORDER BY id.")));
			last = id;
			any = true;
			block = BlockOf(id, s.shift);
			if (block != s.block)
			{
				FlushRange(&s);
				s.block = block;
				s.terms = buildterms_create(s.range_cxt, 1024, NULL);
			}
			old = MemoryContextSwitchTo(doc_cxt);
			AddDocument(&s, id, DatumGetTSVector(d));
			MemoryContextSwitchTo(old);
			MemoryContextReset(doc_cxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	FlushRange(&s);
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(s.range_cxt);
	MemoryContextDelete(doc_cxt);
	PG_RETURN_VOID();
}
