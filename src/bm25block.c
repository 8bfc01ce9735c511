/*
 * bm25block.c
 *	  BM25 posting blocks: the doc-ordered layout of code.bm25_blocks
 *	  (issue 21) and the SQL functions that build, edit and read it.
 *
 * The ids are cut into a grid of blocks of 2^shift ids: block b holds ids
 * [b << shift, (b + 1) << shift).  A term's postings in block b are one
 * bytea, "postings", of n entries in id order:
 *
 *   uint16 offset[n]    id - (b << shift), strictly increasing
 *   float4 impact[n]    the BM25 impact (src/bm25.c), finite, >= 0
 *
 * (6 bytes a posting, native byte order: the value never leaves the
 * server it was built on except through SQL, where unpack gives ids and
 * impacts).  shift is at most 16 so an offset fits in 16 bits.  Next to it
 * code.bm25_blocks keeps max_impact, the largest impact in the block: the
 * block's bound in the top-k (src/bm25bmp.c).  The grid is common to all
 * terms, so one block number names the same ids in every list and a
 * block's bound for a query is a sum over the terms that have it.
 *
 * The functions here are the only code that knows the byte layout:
 * codevec_bm25_pack (build a block from ids and impacts),
 * codevec_bm25_unpack (read it back), codevec_bm25_edit (remove and add
 * postings, for the triggers that keep the blocks exact) and
 * codevec_bm25_block_max; Bm25BlockDecode for the top-k.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/tuplestore.h"

#include "bm25.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(codevec_bm25_pack);
PG_FUNCTION_INFO_V1(codevec_bm25_unpack);
PG_FUNCTION_INFO_V1(codevec_bm25_edit);
PG_FUNCTION_INFO_V1(codevec_bm25_block_max);
PG_FUNCTION_INFO_V1(codevec_bm25_subblocks);
PG_FUNCTION_INFO_V1(codevec_bm25_subblocks_unpack);

/* Raise 22023 unless shift is a valid block shift (0..16). */
void
Bm25CheckShift(int32 shift)
{
	if (shift < 0 || shift > BM25_MAX_SHIFT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 block_shift must be between 0 and %d, not %d", BM25_MAX_SHIFT, shift)));
}

/*
 * The number of postings in block data of len bytes; XX001 when len is not
 * a multiple of a posting or holds more than 2^shift of them.
 */
int
Bm25BlockCount(Size len, int shift)
{
	if (len % BM25_POSTING_BYTES != 0 || len / BM25_POSTING_BYTES > ((Size) 1 << shift))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 block of %zu bytes is not a block of postings for block_shift %d",
						len, shift)));
	return len / BM25_POSTING_BYTES;
}

/*
 * Decode block data (len bytes) into offsets and impacts (room for 2^shift
 * entries each); returns the count.  Raises XX001 for data that is not a
 * block of that shift (a length not a multiple of 6, too many entries,
 * offsets out of range or not increasing, a negative or non-finite impact).
 */
int
Bm25BlockDecode(const char *data, Size len, int shift, uint16 *offsets, float4 *impacts)
{
	int			n = Bm25BlockCount(len, shift);

	memcpy(offsets, data, sizeof(uint16) * n);
	memcpy(impacts, data + sizeof(uint16) * n, sizeof(float4) * n);
	for (int i = 0; i < n; i++)
		if ((i > 0 && offsets[i] <= offsets[i - 1]) || offsets[i] >= ((uint32) 1 << shift) ||
			!(impacts[i] >= 0 && isfinite(impacts[i])))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 block has a bad posting at %d (offset %u, impact %g)",
							i, offsets[i], impacts[i])));
	return n;
}

/* Build a bytea block of n postings (offsets increasing). */
bytea *
Bm25BlockEncode(const uint16 *offsets, const float4 *impacts, int n)
{
	bytea	   *r = palloc(VARHDRSZ + (Size) n * BM25_POSTING_BYTES);

	SET_VARSIZE(r, VARHDRSZ + (Size) n * BM25_POSTING_BYTES);
	memcpy(VARDATA(r), offsets, sizeof(uint16) * n);
	memcpy(VARDATA(r) + sizeof(uint16) * n, impacts, sizeof(float4) * n);
	return r;
}

/*
 * Sub-block directories.  A block of n >= BM25_SUB_MIN postings and shift >
 * BM25_SUB_SHIFT has, in code.bm25_postings.subblocks, the list of its
 * non-empty sub-blocks of 2^BM25_SUB_SHIFT ids (the idea of Mallia, Suel
 * and Tonellotto's small blocks, SIGIR 2024, kept inside the row):
 *
 *   uint32 n            the postings of the block it describes
 *   float4 scale        their largest impact
 *   uint8  sub_shift    BM25_SUB_SHIFT
 *   then per non-empty sub-block, in sub-block order (4 bytes each):
 *   uint16 sub          sub-block number: offsets [sub << s, (sub + 1) << s)
 *   uint8  count - 1    its postings, consecutive in the block
 *   uint8  q            bound = (float4) (scale * q / 255), the least q whose
 *                       bound is at least the sub-block's largest impact
 *
 * (9 + 4 bytes a sub-block, native byte order, like the postings.)  q =
 * 255 gives scale exactly (scale * 255 is exact in a double), so a q
 * always exists.
 */
#define BM25_SUB_HEADER 9
#define BM25_SUB_ENTRY 4

/* The bound a directory's q stands for (the same function encodes and reads). */
static inline float4
SubBound(float4 scale, int q)
{
	return (float4) ((double) scale * q / 255.0);
}

bytea *
Bm25SubblocksEncode(const uint16 *offsets, const float4 *impacts, int n, int shift)
{
	int			s = BM25_SUB_SHIFT;
	int			nsub = 0;
	float4		scale = 0;
	uint32		n32 = (uint32) n;
	uint8		s8 = (uint8) s;
	bytea	   *r;
	char	   *w;

	if (n < BM25_SUB_MIN || shift <= s)
		return NULL;
	for (int i = 0; i < n; i++)
	{
		scale = Max(scale, impacts[i]);
		if (i == 0 || (offsets[i] >> s) != (offsets[i - 1] >> s))
			nsub++;
	}
	r = palloc(VARHDRSZ + BM25_SUB_HEADER + (Size) nsub * BM25_SUB_ENTRY);
	SET_VARSIZE(r, VARHDRSZ + BM25_SUB_HEADER + (Size) nsub * BM25_SUB_ENTRY);
	w = VARDATA(r);
	memcpy(w, &n32, 4);
	memcpy(w + 4, &scale, 4);
	memcpy(w + 8, &s8, 1);
	w += BM25_SUB_HEADER;
	for (int i = 0; i < n;)
	{
		uint16		sub = offsets[i] >> s;
		float4		m = 0;
		int			j = i;
		uint8		c,
					q = 0;

		for (; j < n && (offsets[j] >> s) == sub; j++)
			m = Max(m, impacts[j]);
		while (SubBound(scale, q) < m)
			q++;
		c = (uint8) (j - i - 1);
		memcpy(w, &sub, 2);
		memcpy(w + 2, &c, 1);
		memcpy(w + 3, &q, 1);
		w += BM25_SUB_ENTRY;
		i = j;
	}
	return r;
}

int
Bm25SubblocksParse(const char *data, Size len, int npostings, int shift, Bm25Sub *out)
{
	uint32		n32;
	float4		scale;
	uint8		s8;
	int			nsub,
				start = 0,
				last = -1;

	if (len < BM25_SUB_HEADER || (len - BM25_SUB_HEADER) % BM25_SUB_ENTRY != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 sub-block directory of %zu bytes is not one", len)));
	memcpy(&n32, data, 4);
	memcpy(&scale, data + 4, 4);
	memcpy(&s8, data + 8, 1);
	nsub = (len - BM25_SUB_HEADER) / BM25_SUB_ENTRY;
	if (n32 != (uint32) npostings || s8 != BM25_SUB_SHIFT || shift <= BM25_SUB_SHIFT ||
		!(scale >= 0 && isfinite(scale)) || nsub > (1 << (shift - BM25_SUB_SHIFT)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 sub-block directory (%u postings, sub_shift %d) does not describe a block of %d postings of block_shift %d",
						n32, s8, npostings, shift),
				 errhint("Run SELECT code.bm25_refresh();")));
	data += BM25_SUB_HEADER;
	for (int i = 0; i < nsub; i++, data += BM25_SUB_ENTRY)
	{
		uint16		sub;
		uint8		c,
					q;

		memcpy(&sub, data, 2);
		memcpy(&c, data + 2, 1);
		memcpy(&q, data + 3, 1);
		if ((int) sub <= last || sub >= (1 << (shift - BM25_SUB_SHIFT)) ||
			start + c + 1 > npostings)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("bm25 sub-block directory has a bad entry at %d (sub-block %u, %d postings)",
							i, sub, c + 1),
					 errhint("Run SELECT code.bm25_refresh();")));
		out[i].sub = sub;
		out[i].start = start;
		out[i].count = c + 1;
		out[i].bound = SubBound(scale, q);
		start += c + 1;
		last = sub;
	}
	if (start != npostings)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bm25 sub-block directory covers %d of %d postings", start, npostings),
				 errhint("Run SELECT code.bm25_refresh();")));
	return nsub;
}

/* Deconstruct an int8[] without NULLs (22004 for a NULL element). */
static int
GetIds(ArrayType *a, int64 **ids, const char *what)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, &n);
	*ids = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("bm25 %s must not contain NULLs", what)));
		(*ids)[i] = DatumGetInt64(d[i]);
	}
	return n;
}

/* Deconstruct a real[] of finite values >= 0 (22004 for NULLs, 22023 else). */
static int
GetImpacts(ArrayType *a, float4 **impacts)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(a, FLOAT4OID, 4, true, TYPALIGN_INT, &d, &nulls, &n);
	*impacts = palloc(sizeof(float4) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		float4		v;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("bm25 impacts must not contain NULLs")));
		v = DatumGetFloat4(d[i]);
		if (!(v >= 0 && isfinite(v)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bm25 impacts must be finite and 0 or more, not %g", v)));
		(*impacts)[i] = v;
	}
	return n;
}

/* Return the offset of id in block (22023 when id lies outside it). */
static inline uint16
OffsetIn(int64 id, int32 block, int shift)
{
	if ((id >> shift) != block || id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 id " INT64_FORMAT " is not in block %d of block_shift %d",
						id, block, shift)));
	return (uint16) (id - ((int64) block << shift));
}

/*
 * codevec_bm25_pack(ids int8[], impacts real[], block_shift int4) -> bytea:
 * the block of these postings (ids all in one block, strictly increasing;
 * impacts finite and >= 0, one per id).  Errors 22023 for arrays of
 * different lengths, ids not increasing or in several blocks, bad
 * impacts or shift; 22004 for NULL elements.
 */
Datum
codevec_bm25_pack(PG_FUNCTION_ARGS)
{
	int64	   *ids;
	float4	   *impacts;
	int			n = GetIds(PG_GETARG_ARRAYTYPE_P(0), &ids, "ids");
	int			ni = GetImpacts(PG_GETARG_ARRAYTYPE_P(1), &impacts);
	int32		shift = PG_GETARG_INT32(2);
	uint16	   *offsets;
	int32		block;

	Bm25CheckShift(shift);
	if (n != ni)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 ids and impacts must have the same length, not %d and %d", n, ni)));
	offsets = palloc(sizeof(uint16) * Max(n, 1));
	block = n > 0 ? (int32) (ids[0] >> shift) : 0;
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && ids[i] <= ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bm25 ids must be strictly increasing")));
		offsets[i] = OffsetIn(ids[i], block, shift);
	}
	PG_RETURN_BYTEA_P(Bm25BlockEncode(offsets, impacts, n));
}

/*
 * The postings of an SQL argument: check shift (22023), decode b into new
 * arrays of room 2^shift (XX001 for bytes that are not a block); returns n.
 */
static int
DecodeArg(bytea *b, int32 shift, uint16 **offsets, float4 **impacts)
{
	Bm25CheckShift(shift);
	*offsets = palloc(sizeof(uint16) << shift);
	*impacts = palloc(sizeof(float4) << shift);
	return Bm25BlockDecode(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), shift, *offsets, *impacts);
}

/*
 * codevec_bm25_unpack(postings bytea, block int4, block_shift int4)
 *   -> TABLE(id int8, impact real): the postings of a block, in id order.
 *   Errors: 22023 for a bad shift, XX001 for bytes that are not a block.
 */
Datum
codevec_bm25_unpack(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	int32		block = PG_GETARG_INT32(1);
	int32		shift = PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint16	   *offsets;
	float4	   *impacts;
	int			n;

	n = DecodeArg(b, shift, &offsets, &impacts);
	CodevecInitSRF(fcinfo);
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(((int64) block << shift) + offsets[i]);
		values[1] = Float4GetDatum(impacts[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * codevec_bm25_edit(postings bytea, block int4, block_shift int4,
 *   remove int8[], add_ids int8[], add_impacts real[]) -> bytea
 *
 * The block with the postings of the ids in remove taken out (ids not
 * there are ignored), then add_ids added with their impacts (an id
 * already there gets the new impact).  The result may be empty (the caller deletes such rows).  Errors 22023:
 * ids outside the block, arrays of different lengths, bad impacts or
 * shift; XX001 for bytes that are not a block.
 */
Datum
codevec_bm25_edit(PG_FUNCTION_ARGS)
{
	int32		block,
				shift;
	int64	   *rm,
			   *add;
	float4	   *add_imp;
	int			nrm,
				nadd,
				naddi,
				n = 0,
				size;
	uint16	   *offsets;
	float4	   *impacts;
	float4	   *slot;			/* per offset: impact, NaN when absent */
	uint16	   *out_off;
	float4	   *out_imp;
	int			nout = 0;

	block = PG_GETARG_INT32(1);
	shift = PG_GETARG_INT32(2);
	Bm25CheckShift(shift);
	nrm = GetIds(PG_GETARG_ARRAYTYPE_P(3), &rm, "remove");
	nadd = GetIds(PG_GETARG_ARRAYTYPE_P(4), &add, "add_ids");
	naddi = GetImpacts(PG_GETARG_ARRAYTYPE_P(5), &add_imp);
	if (nadd != naddi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bm25 add_ids and add_impacts must have the same length, not %d and %d",
						nadd, naddi)));
	size = 1 << shift;
	offsets = palloc(sizeof(uint16) * size);
	impacts = palloc(sizeof(float4) * size);
	slot = palloc(sizeof(float4) * size);
	for (int i = 0; i < size; i++)
		slot[i] = get_float4_nan();
	{
		bytea	   *b = PG_GETARG_BYTEA_PP(0);

		n = Bm25BlockDecode(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), shift, offsets, impacts);
	}
	for (int i = 0; i < n; i++)
		slot[offsets[i]] = impacts[i];
	for (int i = 0; i < nrm; i++)
		slot[OffsetIn(rm[i], block, shift)] = get_float4_nan();
	for (int i = 0; i < nadd; i++)
		slot[OffsetIn(add[i], block, shift)] = add_imp[i];
	out_off = offsets;
	out_imp = impacts;
	for (int i = 0; i < size; i++)
		if (!isnan(slot[i]))
		{
			out_off[nout] = (uint16) i;
			out_imp[nout] = slot[i];
			nout++;
		}
	PG_RETURN_BYTEA_P(Bm25BlockEncode(out_off, out_imp, nout));
}

/*
 * codevec_bm25_block_max(postings bytea, block_shift int4) -> real: the
 * largest impact of a block (0 when empty).  XX001 for bytes that are not
 * a block.
 */
Datum
codevec_bm25_block_max(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	int32		shift = PG_GETARG_INT32(1);
	uint16	   *offsets;
	float4	   *impacts;
	float4		m = 0;
	int			n = DecodeArg(b, shift, &offsets, &impacts);

	for (int i = 0; i < n; i++)
		m = Max(m, impacts[i]);
	PG_RETURN_FLOAT4(m);
}

/*
 * codevec_bm25_subblocks(postings bytea, block_shift int4) -> bytea: the
 * sub-block directory of a block (top of the sub-block section above), NULL
 * when it has fewer than BM25_SUB_MIN postings or shift is at most
 * BM25_SUB_SHIFT.  Errors: 22023 for a bad shift, XX001 for bytes that are
 * not a block.
 */
Datum
codevec_bm25_subblocks(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	int32		shift = PG_GETARG_INT32(1);
	uint16	   *offsets;
	float4	   *impacts;
	int			n = DecodeArg(b, shift, &offsets, &impacts);
	bytea	   *r = Bm25SubblocksEncode(offsets, impacts, n, shift);

	if (r == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(r);
}

/*
 * codevec_bm25_subblocks_unpack(subblocks bytea, postings bytea, block_shift
 *   int4) -> TABLE(sub int4, start int4, count int4, bound real): a
 *   directory's sub-blocks, in order, checked against its block (the
 *   postings: count, and every impact at most its sub-block's bound).
 *   Errors: 22023 for a bad shift, XX001 for a directory that is not the
 *   block's.
 */
Datum
codevec_bm25_subblocks_unpack(PG_FUNCTION_ARGS)
{
	bytea	   *d = PG_GETARG_BYTEA_PP(0);
	bytea	   *b = PG_GETARG_BYTEA_PP(1);
	int32		shift = PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint16	   *offsets;
	float4	   *impacts;
	Bm25Sub    *subs;
	int			n = DecodeArg(b, shift, &offsets, &impacts),
				nsub;

	subs = palloc(sizeof(Bm25Sub) * Max(1, 1 << Max(shift - BM25_SUB_SHIFT, 0)));
	nsub = Bm25SubblocksParse(VARDATA_ANY(d), VARSIZE_ANY_EXHDR(d), n, shift, subs);
	CodevecInitSRF(fcinfo);
	for (int i = 0; i < nsub; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		for (int j = subs[i].start; j < subs[i].start + subs[i].count; j++)
			if ((offsets[j] >> BM25_SUB_SHIFT) != subs[i].sub || impacts[j] > subs[i].bound)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("bm25 posting %d (offset %u, impact %g) is not in sub-block %d under its bound %g",
								j, offsets[j], impacts[j], subs[i].sub, subs[i].bound)));
		values[0] = Int32GetDatum(subs[i].sub);
		values[1] = Int32GetDatum(subs[i].start);
		values[2] = Int32GetDatum(subs[i].count);
		values[3] = Float4GetDatum(subs[i].bound);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
