/*
 * fuzz_codevec_recv.c
 *	  libFuzzer harness for codevec_recv (binary input), through
 *	  test/c/pgstub.c.
 *
 * Oracle: every message either decodes to a valid codevec (1..16000 finite
 * elements, the typmod respected) whose codevec_send output is exactly the
 * bytes consumed, or raises one of the documented SQLSTATEs.
 *
 *	  make -C test/fuzz && test/fuzz/build/fuzz_codevec_recv -max_total_time=600
 */
#include "pgstub.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"
#include "lib/stringinfo.h"

extern Datum codevec_recv(PG_FUNCTION_ARGS);
extern Datum codevec_send(PG_FUNCTION_ARGS);

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StringInfoData buf;
	int32		typmod = -1;
	Datum		d;

	if (size > 0 && data[0] == 0xA5)
	{
		typmod = size > 1 ? data[1] : 1;
		data += size > 1 ? 2 : 1;
		size -= size > 1 ? 2 : 1;
	}
	/* exactly size bytes, with no slack after them, as ASan can see overruns */
	buf.data = malloc(size + 1);
	memcpy(buf.data, data, size);
	buf.data[size] = '\0';
	buf.len = (int) size;
	buf.maxlen = (int) size + 1;
	buf.cursor = 0;

	if (pgstub_call(codevec_recv, &d, 3, PointerGetDatum(&buf), 0, Int32GetDatum(typmod)) == 0)
	{
		Codevec    *v = (Codevec *) DatumGetPointer(d);
		Datum		sent;
		bytea	   *b;

		if (v->dim < 1 || v->dim > CODEVEC_MAX_DIM || (typmod != -1 && v->dim != typmod))
			abort();
		for (int i = 0; i < v->dim; i++)
			if (!isfinite(v->x[i]))
				abort();
		if (pgstub_call(codevec_send, &sent, 1, d, 0, 0) != 0)
			abort();
		b = (bytea *) DatumGetPointer(sent);
		if ((int) (VARSIZE(b) - VARHDRSZ) != buf.cursor ||
			memcmp(VARDATA(b), buf.data, buf.cursor) != 0)
			abort();
	}
	else
	{
		const char *s = pgstub_sqlstate(pgstub_last_error.sqlerrcode);

		if (strcmp(s, "08P01") != 0 && strcmp(s, "22P03") != 0 &&
			strcmp(s, "22000") != 0 && strcmp(s, "54000") != 0)
			abort();
	}
	pgstub_reset();
	free(buf.data);
	return 0;
}
