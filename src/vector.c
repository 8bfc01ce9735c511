/*
 * vector.c
 *	  The codevec type: text and binary I/O, typmod, casts, comparison,
 *	  element-wise arithmetic and the sum/avg aggregates.
 *
 * Text form: '[1, 2.5, -3e-2]'. Whitespace is allowed around brackets,
 * elements and commas. Elements are parsed with strtof(), which rounds
 * correctly, and printed with PostgreSQL's shortest round-trip float
 * formatting (Ryu, src/common/f2s.c), so every float4 survives text I/O
 * bit for bit (except that -0 and 0 compare equal, as for real).
 *
 * Every check raises a PostgreSQL error with a SQLSTATE:
 *	22P02 malformed text        22000 NaN/infinity, empty, dimension mismatch
 *	22003 element out of range  54000 more than CODEVEC_MAX_DIM elements
 *	22023 bad typmod            22004 NULL array element
 *	22P03 malformed binary value
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "vector.h"
#include "compat.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

/* Element limit of the aggregates' float8 state array: count + sums */
#define STATE_DIMS(a) (ARR_DIMS(a)[0] - 1)

/* ---------------------------------------------------------------------
 * Checks shared by every entry point
 * --------------------------------------------------------------------- */

void
CodevecCheckDim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("codevec must have at least 1 dimension")));
	if (dim > CODEVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("codevec cannot have more than %d dimensions", CODEVEC_MAX_DIM)));
}

void
CodevecCheckSameDims(const Codevec *a, const Codevec *b, const char *what)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different codevec dimensions %d and %d in %s", a->dim, b->dim, what)));
}

void
CodevecCheckExpectedDim(int32 typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void
CodevecCheckElement(float4 value, int index)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in codevec"),
				 errdetail("Element %d is NaN.", index)));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in codevec"),
				 errdetail("Element %d is infinite.", index)));
}

/* Raise 22003 when an arithmetic result left the float4 range */
static inline void
CheckResultElement(float4 value)
{
	if (isinf(value))
		float_overflow_error();
}

Codevec *
InitCodevec(int dim)
{
	Size		size = CODEVEC_SIZE(dim);
	Codevec    *result = (Codevec *) palloc0(size);

	SET_VARSIZE(result, size);
	result->dim = (int16) dim;
	return result;
}

/* Say whether ch is whitespace in the sense of the SQL scanner */
static inline bool
IsCodevecSpace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

/* Raise 22P02 for the literal lit, with a detail saying where it broke */
pg_noreturn static void
InvalidSyntax(const char *lit, const char *detail_fmt, int element)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type codevec: \"%s\"", lit),
			 errdetail_internal(detail_fmt, element)));
}

/* ---------------------------------------------------------------------
 * Text and binary I/O
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(codevec_in);
/*
 * codevec_in: parse '[x1, x2, ...]' into a codevec; typmod (-1 = any) is the
 * declared dimension count.
 */
Datum
codevec_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			cap = 64;
	float4	   *x = palloc(sizeof(float4) * cap);
	int			dim = 0;
	char	   *pt = lit;
	Codevec    *result;

	while (IsCodevecSpace(*pt))
		pt++;
	if (*pt != '[')
		InvalidSyntax(lit, "Codevec contents must start with \"[\".", 0);
	pt++;
	while (IsCodevecSpace(*pt))
		pt++;
	if (*pt == ']')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("codevec must have at least 1 dimension")));

	for (;;)
	{
		char	   *end;
		float4		val;

		if (dim == CODEVEC_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("codevec cannot have more than %d dimensions", CODEVEC_MAX_DIM)));

		while (IsCodevecSpace(*pt))
			pt++;
		/* strtof would accept an empty string as 0 at end of input: refuse */
		if (*pt == '\0' || *pt == ',' || *pt == ']')
			InvalidSyntax(lit, "Element %d is empty.", dim + 1);

		errno = 0;
		val = strtof(pt, &end);
		if (end == pt)
			InvalidSyntax(lit, "Element %d is not a number.", dim + 1);
		if (errno == ERANGE && (val == 0.0f || isinf(val)))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for type real",
							pnstrdup(pt, end - pt)),
					 errdetail("Element %d of the codevec.", dim + 1)));
		CodevecCheckElement(val, dim + 1);
		/* grow by doubling: no 64 kB allocation per value on COPY's hot path */
		if (dim == cap)
		{
			cap = Min(cap * 2, CODEVEC_MAX_DIM);
			x = repalloc(x, sizeof(float4) * cap);
		}
		x[dim++] = val;
		pt = end;

		while (IsCodevecSpace(*pt))
			pt++;
		if (*pt == ',')
		{
			pt++;
			continue;
		}
		if (*pt == ']')
		{
			pt++;
			break;
		}
		if (*pt == '\0')
			InvalidSyntax(lit, "Missing \"]\" after element %d.", dim);
		InvalidSyntax(lit, "Unexpected character after element %d.", dim);
	}

	while (IsCodevecSpace(*pt))
		pt++;
	if (*pt != '\0')
		InvalidSyntax(lit, "Junk after closing bracket (after element %d).", dim);

	CodevecCheckExpectedDim(typmod, dim);

	result = InitCodevec(dim);
	memcpy(result->x, x, sizeof(float4) * dim);
	pfree(x);
	PG_RETURN_CODEVEC_P(result);
}

PG_FUNCTION_INFO_V1(codevec_out);
/*
 * codevec_out: print '[x1,x2,...]' with the shortest decimal form that reads
 * back to the same float4.
 */
Datum
codevec_out(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	char	   *buf = palloc((FLOAT_SHORTEST_DECIMAL_LEN + 1) * v->dim + 2);
	char	   *pt = buf;

	*pt++ = '[';
	for (int i = 0; i < v->dim; i++)
	{
		if (i > 0)
			*pt++ = ',';
		pt += float_to_shortest_decimal_bufn(v->x[i], pt);
	}
	*pt++ = ']';
	*pt = '\0';
	PG_FREE_IF_COPY(v, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(codevec_typmod_in);
/*
 * codevec_typmod_in: accept codevec(n) with 1 <= n <= CODEVEC_MAX_DIM.
 */
Datum
codevec_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("codevec takes exactly one modifier, its number of dimensions.")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type codevec must be at least 1")));
	if (*tl > CODEVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type codevec cannot exceed %d", CODEVEC_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(codevec_typmod_out);
/*
 * codevec_typmod_out: print the typmod as "(n)".
 */
Datum
codevec_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(typmod < 0 ? pstrdup("") : psprintf("(%d)", typmod));
}

PG_FUNCTION_INFO_V1(codevec_recv);
/*
 * codevec_recv: read the binary form (int16 dim, int16 unused = 0, then dim
 * float4 in network order) and validate it like the text form.
 */
Datum
codevec_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int16		dim;
	int16		unused;
	Codevec    *result;

	dim = (int16) pq_getmsgint(buf, sizeof(int16));
	unused = (int16) pq_getmsgint(buf, sizeof(int16));

	CodevecCheckDim(dim);
	CodevecCheckExpectedDim(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary codevec: reserved field is %d, expected 0", unused)));
	/* refuse before allocating when the message cannot hold dim elements */
	if ((Size) (buf->len - buf->cursor) < sizeof(float4) * (Size) dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary codevec: %d dimensions announced but only %d bytes follow",
						dim, buf->len - buf->cursor)));

	result = InitCodevec(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		CodevecCheckElement(result->x[i], i + 1);
	}
	PG_RETURN_CODEVEC_P(result);
}

PG_FUNCTION_INFO_V1(codevec_send);
/*
 * codevec_send: write the binary form read by codevec_recv.
 */
Datum
codevec_send(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, v->dim);
	pq_sendint16(&buf, v->unused);
	for (int i = 0; i < v->dim; i++)
		pq_sendfloat4(&buf, v->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(codevec);
/*
 * codevec: length coercion codevec -> codevec(typmod), run on assignment and
 * explicit casts.
 */
Datum
codevec(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	CodevecCheckExpectedDim(typmod, v->dim);
	PG_RETURN_CODEVEC_P(v);
}

/* ---------------------------------------------------------------------
 * Casts to and from arrays
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(array_to_codevec);
/*
 * array_to_codevec: cast a one-dimensional integer[], real[], double
 * precision[] or numeric[] without NULLs to codevec(typmod).
 */
Datum
array_to_codevec(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Codevec    *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be 1-D to cast to codevec"),
				 errdetail("The array has %d dimensions.", ARR_NDIM(array))));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);

	CodevecCheckDim(n);
	CodevecCheckExpectedDim(typmod, n);

	result = InitCodevec(n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls"),
					 errdetail("Element %d is NULL.", i + 1)));
		switch (elemtype)
		{
			case INT4OID:
				result->x[i] = (float4) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				result->x[i] = DatumGetFloat4(elems[i]);
				break;
			case FLOAT8OID:
			case NUMERICOID:
				{
					float8		d = elemtype == FLOAT8OID ? DatumGetFloat8(elems[i]) :
						DatumGetFloat8(DirectFunctionCall1(numeric_float8, elems[i]));

					result->x[i] = (float4) d;
					/* a finite double beyond float4 range: out of range, not inf */
					if (isinf(result->x[i]) && !isinf(d))
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("value out of range for codevec: overflow"),
								 errdetail("Element %d is %g.", i + 1, d)));
					/* likewise a non-zero double that rounds to zero */
					if (result->x[i] == 0.0f && d != 0.0)
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("value out of range for codevec: underflow"),
								 errdetail("Element %d is %g.", i + 1, d)));
					break;
				}
			default:
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("unsupported array element type %s for codevec",
								format_type_be(elemtype))));
		}
		CodevecCheckElement(result->x[i], i + 1);
	}
	PG_RETURN_CODEVEC_P(result);
}

PG_FUNCTION_INFO_V1(codevec_to_float4);
/*
 * codevec_to_float4: cast a codevec to real[] of the same length.
 */
Datum
codevec_to_float4(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	Datum	   *d = palloc(sizeof(Datum) * v->dim);

	for (int i = 0; i < v->dim; i++)
		d[i] = Float4GetDatum(v->x[i]);
	PG_RETURN_POINTER(construct_array(d, v->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}

/* ---------------------------------------------------------------------
 * Comparison (btree): element by element, then shorter first
 * --------------------------------------------------------------------- */

/* Return -1, 0 or 1 comparing a and b lexicographically */
static int
CodevecCmpInternal(const Codevec *a, const Codevec *b)
{
	int			n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	if (a->dim != b->dim)
		return a->dim < b->dim ? -1 : 1;
	return 0;
}

#define CODEVEC_CMP_FUNCTION(name, expr) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Codevec    *a = PG_GETARG_CODEVEC_P(0); \
	Codevec    *b = PG_GETARG_CODEVEC_P(1); \
	int			c = CodevecCmpInternal(a, b); \
	PG_FREE_IF_COPY(a, 0); \
	PG_FREE_IF_COPY(b, 1); \
	expr; \
}

/* codevec_lt .. codevec_cmp: the btree comparison family */
CODEVEC_CMP_FUNCTION(codevec_lt, PG_RETURN_BOOL(c < 0))
CODEVEC_CMP_FUNCTION(codevec_le, PG_RETURN_BOOL(c <= 0))
CODEVEC_CMP_FUNCTION(codevec_eq, PG_RETURN_BOOL(c == 0))
CODEVEC_CMP_FUNCTION(codevec_ne, PG_RETURN_BOOL(c != 0))
CODEVEC_CMP_FUNCTION(codevec_ge, PG_RETURN_BOOL(c >= 0))
CODEVEC_CMP_FUNCTION(codevec_gt, PG_RETURN_BOOL(c > 0))
CODEVEC_CMP_FUNCTION(codevec_cmp, PG_RETURN_INT32(c))

/* ---------------------------------------------------------------------
 * Element-wise arithmetic
 * --------------------------------------------------------------------- */

#define CODEVEC_ELEMENTWISE_FUNCTION(name, op, what) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Codevec    *a = PG_GETARG_CODEVEC_P(0); \
	Codevec    *b = PG_GETARG_CODEVEC_P(1); \
	Codevec    *r; \
	CodevecCheckSameDims(a, b, what); \
	r = InitCodevec(a->dim); \
	for (int i = 0; i < a->dim; i++) \
		r->x[i] = a->x[i] op b->x[i]; \
	for (int i = 0; i < a->dim; i++) \
		CheckResultElement(r->x[i]); \
	PG_RETURN_CODEVEC_P(r); \
}

/* codevec_add, codevec_sub, codevec_mul: element-wise +, -, * */
CODEVEC_ELEMENTWISE_FUNCTION(codevec_add, +, "operator +")
CODEVEC_ELEMENTWISE_FUNCTION(codevec_sub, -, "operator -")
CODEVEC_ELEMENTWISE_FUNCTION(codevec_mul, *, "operator *")

/* ---------------------------------------------------------------------
 * Norms
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(codevec_dims);
/*
 * codevec_dims: number of elements.
 */
Datum
codevec_dims(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);

	PG_RETURN_INT32(v->dim);
}

PG_FUNCTION_INFO_V1(codevec_norm);
/*
 * codevec_norm: Euclidean norm, accumulated in float8.
 */
Datum
codevec_norm(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	double		s = 0.0;

	for (int i = 0; i < v->dim; i++)
		s += (double) v->x[i] * (double) v->x[i];
	PG_RETURN_FLOAT8(sqrt(s));
}

PG_FUNCTION_INFO_V1(l2_normalize);
/*
 * l2_normalize: v / |v|; the zero vector is returned unchanged.
 */
Datum
l2_normalize(PG_FUNCTION_ARGS)
{
	Codevec    *v = PG_GETARG_CODEVEC_P(0);
	Codevec    *r = InitCodevec(v->dim);
	double		s = 0.0;

	for (int i = 0; i < v->dim; i++)
		s += (double) v->x[i] * (double) v->x[i];
	if (s > 0.0)
	{
		double		norm = sqrt(s);

		for (int i = 0; i < v->dim; i++)
			r->x[i] = (float4) (v->x[i] / norm);
	}
	PG_RETURN_CODEVEC_P(r);
}

/* ---------------------------------------------------------------------
 * Aggregates: sum and avg share a float8[] state {count, s1, ..., sd}
 * --------------------------------------------------------------------- */

/* Return the state array's data after checking its shape */
static float8 *
CheckStateArray(ArrayType *state, const char *caller)
{
	if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 1 ||
		ARR_HASNULL(state) || ARR_ELEMTYPE(state) != FLOAT8OID)
		elog(ERROR, "%s: expected a float8 state array", caller);
	return (float8 *) ARR_DATA_PTR(state);
}

/* Build a float8[] state from n + 1 values */
static ArrayType *
MakeState(const float8 *vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Float8GetDatum(vals[i]);
	return construct_array(d, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

PG_FUNCTION_INFO_V1(codevec_accum);
/*
 * codevec_accum: state transition for sum/avg: add one vector.
 */
Datum
codevec_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *statearray = PG_GETARG_ARRAYTYPE_P(0);
	Codevec    *v = PG_GETARG_CODEVEC_P(1);
	float8	   *st = CheckStateArray(statearray, "codevec_accum");
	int			sdim = STATE_DIMS(statearray);
	float8	   *next;

	if (sdim == 0)
	{
		next = palloc0(sizeof(float8) * (v->dim + 1));
		sdim = v->dim;
	}
	else
	{
		if (sdim != v->dim)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different codevec dimensions %d and %d in aggregate", sdim, v->dim)));
		next = palloc(sizeof(float8) * (sdim + 1));
		memcpy(next, st, sizeof(float8) * (sdim + 1));
	}
	next[0] += 1.0;
	for (int i = 0; i < sdim; i++)
	{
		next[i + 1] += (float8) v->x[i];
		if (isinf(next[i + 1]))
			float_overflow_error();
	}
	PG_RETURN_ARRAYTYPE_P(MakeState(next, sdim + 1));
}

PG_FUNCTION_INFO_V1(codevec_combine);
/*
 * codevec_combine: merge two partial states (parallel aggregation).
 */
Datum
codevec_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *a1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *a2 = PG_GETARG_ARRAYTYPE_P(1);
	float8	   *s1 = CheckStateArray(a1, "codevec_combine");
	float8	   *s2 = CheckStateArray(a2, "codevec_combine");
	int			d1 = STATE_DIMS(a1);
	int			d2 = STATE_DIMS(a2);
	float8	   *next;

	if (d1 == 0 || s1[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(MakeState(s2, d2 + 1));
	if (d2 == 0 || s2[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(MakeState(s1, d1 + 1));
	if (d1 != d2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different codevec dimensions %d and %d in aggregate", d1, d2)));
	next = palloc(sizeof(float8) * (d1 + 1));
	for (int i = 0; i <= d1; i++)
	{
		next[i] = s1[i] + s2[i];
		if (isinf(next[i]))
			float_overflow_error();
	}
	PG_RETURN_ARRAYTYPE_P(MakeState(next, d1 + 1));
}

/* Finish sum (divide = false) or avg (divide = true); NULL for no rows */
static Datum
FinishState(FunctionCallInfo fcinfo, bool divide)
{
	ArrayType  *statearray = PG_GETARG_ARRAYTYPE_P(0);
	float8	   *st = CheckStateArray(statearray, "codevec aggregate");
	int			dim = STATE_DIMS(statearray);
	Codevec    *r;

	if (dim == 0 || st[0] == 0.0)
		PG_RETURN_NULL();
	r = InitCodevec(dim);
	for (int i = 0; i < dim; i++)
	{
		r->x[i] = (float4) (divide ? st[i + 1] / st[0] : st[i + 1]);
		CheckResultElement(r->x[i]);
	}
	PG_RETURN_CODEVEC_P(r);
}

PG_FUNCTION_INFO_V1(codevec_avg);
/*
 * codevec_avg: final function of avg(codevec).
 */
Datum
codevec_avg(PG_FUNCTION_ARGS)
{
	return FinishState(fcinfo, true);
}

PG_FUNCTION_INFO_V1(codevec_sum);
/*
 * codevec_sum: final function of sum(codevec).
 */
Datum
codevec_sum(PG_FUNCTION_ARGS)
{
	return FinishState(fcinfo, false);
}
