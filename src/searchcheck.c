/*
 * searchcheck.c
 *	  codevec_search_check(): the argument checks of codevec-load's
 *	  code.search(), in C.
 *
 * code.search_check() (loaders/schema.c) is called by code.search with
 * its arguments; it is IMMUTABLE and code.search passes constants, so the
 * planner folds the call at plan time.  As a PL/pgSQL function it cost a
 * session's first code.search the compile of its body and the SPI plans
 * of its six expressions, about 0.45 ms of CPU (bench/keyword/README.md,
 * "Where a session's first call goes, part by part").  code.search_check
 * is now a LANGUAGE sql function whose body is one SELECT of this
 * function: with constant arguments the planner still evaluates it at
 * plan time (a one-line SQL function run once), otherwise it inlines it;
 * either way no PL/pgSQL compile happens.
 *
 * The errors are those the PL/pgSQL function raised, byte for byte: the
 * same checks in the same order, the same messages, SQLSTATE 22023 and
 * the hint for mode; a NULL mode is shown as <NULL> (what RAISE prints for
 * a NULL parameter), the other NULLs as NULL (coalesce(x::text, 'NULL')),
 * integers in int4out's form and keyword_weight in float8out's, which
 * follows extra_float_digits as the cast to text does.  Only the CONTEXT
 * lines differ: no "PL/pgSQL function ... at RAISE" line any more.
 * test/search/searchcheck.sh compares the two over a table of bad inputs.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(codevec_search_check);

/* code.search's bounds */
#define SEARCH_CHECK_MAX_K		10000
#define SEARCH_CHECK_MAX_DEPTH	100000

/*
 * Raise code.search's error for an integer argument out of its range:
 * "code.search: NAME must be RANGE, not VALUE" (VALUE NULL for a NULL).
 */
static void
RaiseIntArgument(FunctionCallInfo fcinfo, int argno, const char *name,
				 const char *range)
{
	char		value[16];

	if (PG_ARGISNULL(argno))
		strlcpy(value, "NULL", sizeof(value));
	else
		snprintf(value, sizeof(value), "%d", PG_GETARG_INT32(argno));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("code.search: %s must be %s, not %s", name, range, value)));
}

/*
 * codevec_search_check(query text, k integer, mode text, rrf_k integer,
 * depth integer, keyword_weight double precision) returns boolean:
 * true when code.search's arguments are valid, else error 22023 naming
 * the first that is not, checked in this order: query not NULL; mode
 * 'hybrid', 'vector' or 'keyword'; k 1..10000; depth 1..100000; rrf_k 0
 * or more; keyword_weight finite and 0 or more (NaN and Infinity are
 * refused, -0 is accepted).  Not STRICT: a NULL is an error, not NULL.
 */
Datum
codevec_search_check(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("code.search: query must not be NULL")));

	/* mode = 'hybrid' etc. on text: byte equality (deterministic collation) */
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("code.search: unknown mode \"%s\"", "<NULL>"),
				 errhint("mode is 'hybrid' (the default), 'vector' or 'keyword'.")));
	else
	{
		char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(2));

		if (strcmp(mode, "hybrid") != 0 && strcmp(mode, "vector") != 0 &&
			strcmp(mode, "keyword") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("code.search: unknown mode \"%s\"", mode),
					 errhint("mode is 'hybrid' (the default), 'vector' or 'keyword'.")));
		pfree(mode);
	}

	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) < 1 ||
		PG_GETARG_INT32(1) > SEARCH_CHECK_MAX_K)
		RaiseIntArgument(fcinfo, 1, "k", "between 1 and 10000");
	if (PG_ARGISNULL(4) || PG_GETARG_INT32(4) < 1 ||
		PG_GETARG_INT32(4) > SEARCH_CHECK_MAX_DEPTH)
		RaiseIntArgument(fcinfo, 4, "depth", "between 1 and 100000");
	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 0)
		RaiseIntArgument(fcinfo, 3, "rrf_k", "0 or more");

	/*
	 * NULL, negatives, -Infinity, Infinity and NaN (every comparison with
	 * NaN is false); -0 passes (-0 >= 0)
	 */
	if (PG_ARGISNULL(5) || !(PG_GETARG_FLOAT8(5) >= 0 && !isinf(PG_GETARG_FLOAT8(5))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("code.search: keyword_weight must be a finite number, 0 or more, not %s",
						PG_ARGISNULL(5) ? "NULL" :
						DatumGetCString(DirectFunctionCall1(float8out,
															PG_GETARG_DATUM(5))))));

	PG_RETURN_BOOL(true);
}
