/*
 * pgstub.h
 *	  A minimal stand-in for the PostgreSQL backend, so that the extension's
 *	  type I/O (src/vector.c) can run in a plain process: unit tests, and
 *	  libFuzzer harnesses that call codevec_in / codevec_recv millions of
 *	  times a second.
 *
 * What it provides: palloc & co. on an arena freed by pgstub_reset(); the
 * ereport() machinery (errstart/errfinish) that longjmps to pgstub_try()'s
 * caller with the SQLSTATE and message of the error; the pq_* message
 * readers; and abort()ing stubs for backend functions the I/O paths never
 * reach (catalog lookups, array construction).
 */
#ifndef PGSTUB_H
#define PGSTUB_H

#include "postgres.h"

#include "compat.h"
#include "fmgr.h"

/* Last error raised through ereport(ERROR) */
typedef struct PgstubError
{
	int			sqlerrcode;		/* MAKE_SQLSTATE value */
	char		message[512];
	char		detail[512];
} PgstubError;

extern PgstubError pgstub_last_error;

/*
 * pgstub_call: call fn(fcinfo-style args) and return 0 with *result set, or
 * 1 when it raised an ERROR (pgstub_last_error says which). nargs <= 3.
 */
extern int	pgstub_call(PGFunction fn, Datum *result, int nargs,
						Datum a0, Datum a1, Datum a2);

/* Free everything palloc'd since the last reset */
extern void pgstub_reset(void);

/* Format a SQLSTATE value as its five characters */
extern const char *pgstub_sqlstate(int sqlerrcode);

#endif							/* PGSTUB_H */
