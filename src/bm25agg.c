/*
 * bm25agg.c
 *	  codevec_bm25_block_agg(id, impact, block_shift): the aggregate that
 *	  packs one BM25 posting block (src/bm25block.c's layout) from its
 *	  postings in any order, with a combine function, so that
 *	  code.bm25_refresh() can build the blocks with parallel workers
 *	  (issue 21).
 *
 * The serial build sorts every posting by (term, block, id) and packs each
 * group with codevec_bm25_pack(array_agg(id), array_agg(impact)); array_agg
 * has no combine function on PostgreSQL 15, and a sorted input cannot be
 * split over workers.  This aggregate's state is the group's postings as
 * (offset in the block, impact) pairs in arrival order: the transition
 * appends, the combine function appends another worker's pairs (each
 * snippet is read by one process, so the two sets of ids are disjoint),
 * the serial/deserial functions carry a state between processes as
 * bytea, and the final function sorts by offset and encodes the block.
 * The result is byte for byte what codevec_bm25_pack gives for the same
 * postings in id order (the encoding is one function, Bm25BlockEncode).
 *
 * Errors: 22023 for ids of one group in different blocks, an id given
 * twice, a bad impact or block_shift; 22004 for NULL arguments.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "bm25.h"

PG_FUNCTION_INFO_V1(codevec_bm25_block_agg_sfunc);
PG_FUNCTION_INFO_V1(codevec_bm25_block_agg_combine);
PG_FUNCTION_INFO_V1(codevec_bm25_block_agg_serial);
PG_FUNCTION_INFO_V1(codevec_bm25_block_agg_deserial);
PG_FUNCTION_INFO_V1(codevec_bm25_block_agg_final);

/* the postings of one group, in arrival order */
typedef struct Bm25AggState
{
	int32		shift;			/* block_shift of the group */
	int32		block;			/* id >> shift of every id in it */
	int			n;				/* postings held */
	int			cap;			/* room in offsets / impacts */
	uint16	   *offsets;		/* id - (block << shift) */
	float4	   *impacts;
} Bm25AggState;

/* A new empty state for block of shift, in memory context cxt. */
static Bm25AggState *
AggStateNew(MemoryContext cxt, int32 shift, int32 block, int cap)
{
	Bm25AggState *s = MemoryContextAlloc(cxt, sizeof(Bm25AggState));

	s->shift = shift;
	s->block = block;
	s->n = 0;
	s->cap = Max(cap, 4);
	s->offsets = MemoryContextAlloc(cxt, sizeof(uint16) * s->cap);
	s->impacts = MemoryContextAlloc(cxt, sizeof(float4) * s->cap);
	return s;
}

/* Make room for more postings in s (its arrays live in their own context). */
static void
AggStateReserve(Bm25AggState *s, int more)
{
	int			want = s->n + more;

	if (want <= s->cap)
		return;
	/* a block holds at most 2^shift distinct ids; more means an id twice */
	if (want > (1 << s->shift))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 block %d of block_shift %d is given more postings than it has ids",
						s->block, s->shift)));
	s->cap = Min(Max(want, s->cap * 2), 1 << s->shift);
	s->offsets = repalloc(s->offsets, sizeof(uint16) * s->cap);
	s->impacts = repalloc(s->impacts, sizeof(float4) * s->cap);
}

/* The aggregate's memory context (errors outside an aggregate call). */
static MemoryContext
AggContext(FunctionCallInfo fcinfo, const char *fn)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", fn)));
	return cxt;
}

/*
 * codevec_bm25_block_agg_sfunc(state internal, id int8, impact real,
 * block_shift int4) -> internal: add one posting.
 */
Datum
codevec_bm25_block_agg_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AggContext(fcinfo, "codevec_bm25_block_agg_sfunc");
	Bm25AggState *s = PG_ARGISNULL(0) ? NULL : (Bm25AggState *) PG_GETARG_POINTER(0);
	int64		id;
	float4		impact;
	int32		shift;
	MemoryContext old;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("codevec_bm25_block_agg does not take NULL ids, impacts or block_shift")));
	id = PG_GETARG_INT64(1);
	impact = PG_GETARG_FLOAT4(2);
	shift = PG_GETARG_INT32(3);
	Bm25CheckShift(shift);
	if (!(impact >= 0 && isfinite(impact)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 impacts must be finite and 0 or more, not %g", impact)));
	if (id < 0 || (id >> shift) > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 id " INT64_FORMAT " has no block of block_shift %d", id, shift)));
	if (s == NULL)
		s = AggStateNew(cxt, shift, (int32) (id >> shift), 8);
	else if (s->shift != shift || s->block != (id >> shift))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 id " INT64_FORMAT " is not in block %d of block_shift %d",
						id, s->block, s->shift),
				 errhint("Group the postings by id >> block_shift.")));
	old = MemoryContextSwitchTo(cxt);
	AggStateReserve(s, 1);
	MemoryContextSwitchTo(old);
	s->offsets[s->n] = (uint16) (id - ((int64) s->block << shift));
	s->impacts[s->n] = impact;
	s->n++;
	PG_RETURN_POINTER(s);
}

/*
 * codevec_bm25_block_agg_combine(a internal, b internal) -> internal: a
 * with b's postings appended (the groups of two workers).
 */
Datum
codevec_bm25_block_agg_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AggContext(fcinfo, "codevec_bm25_block_agg_combine");
	Bm25AggState *a = PG_ARGISNULL(0) ? NULL : (Bm25AggState *) PG_GETARG_POINTER(0);
	Bm25AggState *b = PG_ARGISNULL(1) ? NULL : (Bm25AggState *) PG_GETARG_POINTER(1);
	MemoryContext old;

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = AggStateNew(cxt, b->shift, b->block, b->n);
	else if (a->shift != b->shift || a->block != b->block)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 blocks %d and %d (block_shift %d and %d) cannot be combined",
						a->block, b->block, a->shift, b->shift)));
	old = MemoryContextSwitchTo(cxt);
	AggStateReserve(a, b->n);
	MemoryContextSwitchTo(old);
	memcpy(a->offsets + a->n, b->offsets, sizeof(uint16) * b->n);
	memcpy(a->impacts + a->n, b->impacts, sizeof(float4) * b->n);
	a->n += b->n;
	PG_RETURN_POINTER(a);
}

/*
 * codevec_bm25_block_agg_serial(internal) -> bytea: int32 shift, int32
 * block, int32 n, then n offsets and n impacts (pq binary format).
 */
Datum
codevec_bm25_block_agg_serial(PG_FUNCTION_ARGS)
{
	Bm25AggState *s = (Bm25AggState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	AggContext(fcinfo, "codevec_bm25_block_agg_serial");
	pq_begintypsend(&buf);
	pq_sendint32(&buf, s->shift);
	pq_sendint32(&buf, s->block);
	pq_sendint32(&buf, s->n);
	for (int i = 0; i < s->n; i++)
		pq_sendint16(&buf, s->offsets[i]);
	for (int i = 0; i < s->n; i++)
		pq_sendfloat4(&buf, s->impacts[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* codevec_bm25_block_agg_deserial(bytea, internal) -> internal */
Datum
codevec_bm25_block_agg_deserial(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AggContext(fcinfo, "codevec_bm25_block_agg_deserial");
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	Bm25AggState *s;
	int32		shift,
				block,
				n;

	/* a read-only StringInfo over the bytes (initReadOnlyStringInfo is 17+) */
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = 0;
	buf.cursor = 0;
	shift = pq_getmsgint(&buf, 4);
	block = pq_getmsgint(&buf, 4);
	n = pq_getmsgint(&buf, 4);
	Bm25CheckShift(shift);
	if (n < 0 || n > (1 << shift))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 aggregate state of %d postings for block_shift %d", n, shift)));
	s = AggStateNew(cxt, shift, block, n);
	for (int i = 0; i < n; i++)
		s->offsets[i] = (uint16) pq_getmsgint(&buf, 2);
	for (int i = 0; i < n; i++)
		s->impacts[i] = pq_getmsgfloat4(&buf);
	s->n = n;
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(s);
}

/* qsort order of (offset, impact) pairs: by offset */
typedef struct Bm25Pair
{
	uint16		offset;
	float4		impact;
} Bm25Pair;

static int
PairCmp(const void *a, const void *b)
{
	uint16		x = ((const Bm25Pair *) a)->offset;
	uint16		y = ((const Bm25Pair *) b)->offset;

	return (x > y) - (x < y);
}

/*
 * codevec_bm25_block_agg_final(internal, ...) -> bytea: the block, its
 * postings in id order (22023 for an id given twice).  Sorts the state in
 * place (the aggregate is declared FINALFUNC_MODIFY = READ_WRITE).
 */
Datum
codevec_bm25_block_agg_final(PG_FUNCTION_ARGS)
{
	Bm25AggState *s;
	bool		sorted = true;

	AggContext(fcinfo, "codevec_bm25_block_agg_final");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (Bm25AggState *) PG_GETARG_POINTER(0);
	for (int i = 1; i < s->n && sorted; i++)
		sorted = s->offsets[i] > s->offsets[i - 1];
	if (!sorted)
	{
		Bm25Pair   *p = palloc(sizeof(Bm25Pair) * s->n);

		for (int i = 0; i < s->n; i++)
		{
			p[i].offset = s->offsets[i];
			p[i].impact = s->impacts[i];
		}
		qsort(p, s->n, sizeof(Bm25Pair), PairCmp);
		for (int i = 0; i < s->n; i++)
		{
			if (i > 0 && p[i].offset == p[i - 1].offset)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("bm25 id " INT64_FORMAT " is given twice in a block",
								((int64) s->block << s->shift) + p[i].offset)));
			s->offsets[i] = p[i].offset;
			s->impacts[i] = p[i].impact;
		}
		pfree(p);
	}
	PG_RETURN_BYTEA_P(Bm25BlockEncode(s->offsets, s->impacts, s->n));
}
