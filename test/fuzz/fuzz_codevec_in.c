/*
 * fuzz_codevec_in.c
 *	  libFuzzer harness for codevec_in (text input), through test/c/pgstub.c.
 *
 * Oracle: every input either parses, and then prints and re-parses to the
 * same bits, or raises one of the SQLSTATEs codevec_in documents. Anything
 * else (a crash, a sanitizer report, another SQLSTATE) is a finding.
 *
 *	  make -C test/fuzz && test/fuzz/build/fuzz_codevec_in -max_total_time=600
 */
#include "pgstub.h"

#include <stdlib.h>
#include <string.h>

#include "vector.h"
#include "utils/builtins.h"

extern Datum codevec_in(PG_FUNCTION_ARGS);
extern Datum codevec_out(PG_FUNCTION_ARGS);

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text;
	int32		typmod = -1;
	Datum		d;

	/* the first byte picks a typmod sometimes, to reach the typmod checks */
	if (size > 0 && data[0] < 8)
	{
		typmod = data[0];
		data++;
		size--;
	}
	/* a cstring ends at the first NUL, as the server would hand it over */
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	if (pgstub_call(codevec_in, &d, 3, CStringGetDatum(text), 0, Int32GetDatum(typmod)) == 0)
	{
		Codevec    *v = (Codevec *) DatumGetPointer(d);
		Datum		out,
					back;

		if (v->dim < 1 || v->dim > CODEVEC_MAX_DIM || (typmod != -1 && v->dim != typmod))
			abort();
		if (pgstub_call(codevec_out, &out, 1, d, 0, 0) != 0)
			abort();
		if (pgstub_call(codevec_in, &back, 3, out, 0, Int32GetDatum(-1)) != 0)
			abort();
		if (VARSIZE(DatumGetPointer(back)) != VARSIZE(v) ||
			memcmp(DatumGetPointer(back), v, VARSIZE(v)) != 0)
			abort();
	}
	else
	{
		const char *s = pgstub_sqlstate(pgstub_last_error.sqlerrcode);

		if (strcmp(s, "22P02") != 0 && strcmp(s, "22000") != 0 &&
			strcmp(s, "22003") != 0 && strcmp(s, "54000") != 0)
			abort();
	}
	pgstub_reset();
	free(text);
	return 0;
}
