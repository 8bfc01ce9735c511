/*
 * pgstub.c
 *	  Backend stand-ins for testing src/vector.c outside the server; see
 *	  pgstub.h. Our own minimal implementations of the backend API that the
 *	  I/O functions use, written against PostgreSQL 15's headers.
 */
#include "pgstub.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/memutils.h"

PgstubError pgstub_last_error;

/* ---- arena: every palloc is a malloc'd block on a list ---- */

typedef struct Block
{
	struct Block *next;
	Size		size;
	max_align_t data[];
} Block;

static Block *arena = NULL;

/* Allocate size bytes on the arena */
static void *
arena_alloc(Size size, bool zero)
{
	Block	   *b = malloc(sizeof(Block) + (size ? size : 1));

	if (b == NULL)
		abort();
	b->next = arena;
	b->size = size;
	arena = b;
	if (zero)
		memset(b->data, 0, size);
	return b->data;
}

void
pgstub_reset(void)
{
	while (arena != NULL)
	{
		Block	   *n = arena->next;

		free(arena);
		arena = n;
	}
}

void *
palloc(Size size)
{
	if (size > MaxAllocSize)
		abort();
	return arena_alloc(size, false);
}

void *
palloc0(Size size)
{
	if (size > MaxAllocSize)
		abort();
	return arena_alloc(size, true);
}

void *
repalloc(void *pointer, Size size)
{
	Block	   *old = (Block *) ((char *) pointer - offsetof(Block, data));
	void	   *p = palloc(size);

	memcpy(p, pointer, Min(old->size, size));
	return p;					/* the old block goes with the arena */
}

void
pfree(void *pointer)
{
	(void) pointer;				/* freed with the arena */
}

char *
pstrdup(const char *in)
{
	return strcpy(palloc(strlen(in) + 1), in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
psprintf(const char *fmt,...)
{
	va_list		ap;
	char	   *buf = palloc(1024);

	va_start(ap, fmt);
	vsnprintf(buf, 1024, fmt, ap);
	va_end(ap);
	return buf;
}

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	return datum;				/* tests only build plain 4-byte-header values */
}

/* ---- ereport ---- */

static sigjmp_buf *error_jump = NULL;
static int	current_elevel;

bool
errstart(int elevel, const char *domain)
{
	(void) domain;
	current_elevel = elevel;
	if (elevel >= ERROR)
		memset(&pgstub_last_error, 0, sizeof(pgstub_last_error));
	return elevel >= ERROR;		/* drop warnings and notices */
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	(void) filename;
	(void) lineno;
	(void) funcname;
	if (current_elevel >= ERROR)
	{
		if (error_jump == NULL)
		{
			fprintf(stderr, "pgstub: ERROR outside pgstub_call: %s\n", pgstub_last_error.message);
			abort();
		}
		siglongjmp(*error_jump, 1);
	}
}

int
errcode(int sqlerrcode)
{
	pgstub_last_error.sqlerrcode = sqlerrcode;
	return 0;
}

#define FORMAT_INTO(buf) \
	do { va_list ap; va_start(ap, fmt); vsnprintf(buf, sizeof(buf), fmt, ap); va_end(ap); } while (0)

int
errmsg(const char *fmt,...)
{
	FORMAT_INTO(pgstub_last_error.message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FORMAT_INTO(pgstub_last_error.message);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	FORMAT_INTO(pgstub_last_error.detail);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	FORMAT_INTO(pgstub_last_error.detail);
	return 0;
}

void
float_overflow_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value out of range: overflow")));
	pg_unreachable();
}

const char *
pgstub_sqlstate(int sqlerrcode)
{
	static char buf[6];

	for (int i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sqlerrcode);
		sqlerrcode >>= 6;
	}
	buf[5] = '\0';
	return buf;
}

int
pgstub_call(PGFunction fn, Datum *result, int nargs, Datum a0, Datum a1, Datum a2)
{
	LOCAL_FCINFO(fcinfo, 3);
	sigjmp_buf	jb;
	sigjmp_buf *save = error_jump;

	InitFunctionCallInfoData(*fcinfo, NULL, nargs, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = a0;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = a1;
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = a2;
	fcinfo->args[2].isnull = false;

	if (sigsetjmp(jb, 0) != 0)
	{
		error_jump = save;
		return 1;
	}
	error_jump = &jb;
	*result = fn(fcinfo);
	error_jump = save;
	return 0;
}

/* ---- libpq/pqformat.c and stringinfo.c stand-ins ---- */

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen = str->maxlen;
	char	   *data;

	if (needed < 0 || (Size) needed >= MaxAllocSize - (Size) str->len)
		abort();
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	while (needed > newlen)
		newlen *= 2;
	data = palloc(newlen);
	memcpy(data, str->data, str->len + 1);
	str->data = data;
	str->maxlen = newlen;
}

void
pq_begintypsend(StringInfo buf)
{
	buf->maxlen = 64;
	buf->data = palloc(buf->maxlen);
	buf->len = 0;
	buf->cursor = 0;
	buf->data[0] = '\0';
	/* reserve the varlena header */
	buf->len = VARHDRSZ;
	buf->data[buf->len] = '\0';
}

bytea *
pq_endtypsend(StringInfo buf)
{
	bytea	   *result = (bytea *) buf->data;

	SET_VARSIZE(result, buf->len);
	return result;
}

unsigned int
pq_getmsgint(StringInfo msg, int b)
{
	unsigned char tmp[4];

	if (b != 1 && b != 2 && b != 4)
		abort();
	if (msg->cursor < 0 || b > msg->len - msg->cursor)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("insufficient data left in message")));
	memcpy(tmp, msg->data + msg->cursor, b);
	msg->cursor += b;
	if (b == 1)
		return tmp[0];
	if (b == 2)
		return (tmp[0] << 8) | tmp[1];
	return ((unsigned int) tmp[0] << 24) | (tmp[1] << 16) | (tmp[2] << 8) | tmp[3];
}

float4
pq_getmsgfloat4(StringInfo msg)
{
	union
	{
		float4		f;
		uint32		i;
	}			swap;

	swap.i = pq_getmsgint(msg, 4);
	return swap.f;
}

void
pq_sendfloat4(StringInfo buf, float4 f)
{
	union
	{
		float4		f;
		uint32		i;
	}			swap;

	swap.f = f;
	pq_sendint32(buf, swap.i);
}

/* ---- functions the tested paths never reach ---- */

#define NOT_REACHED(name) \
	do { fprintf(stderr, "pgstub: %s is not available outside the server\n", name); abort(); } while (0)

int32 *
ArrayGetIntegerTypmods(ArrayType *arr, int *n)
{
	(void) arr; (void) n;
	NOT_REACHED("ArrayGetIntegerTypmods");
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	(void) func; (void) collation; (void) arg1;
	NOT_REACHED("DirectFunctionCall1Coll");
}

ArrayType *
construct_array(Datum *elems, int nelems, Oid elmtype, int elmlen, bool elmbyval, char elmalign)
{
	(void) elems; (void) nelems; (void) elmtype; (void) elmlen; (void) elmbyval; (void) elmalign;
	NOT_REACHED("construct_array");
}

void
deconstruct_array(ArrayType *array, Oid elmtype, int elmlen, bool elmbyval, char elmalign,
				  Datum **elemsp, bool **nullsp, int *nelemsp)
{
	(void) array; (void) elmtype; (void) elmlen; (void) elmbyval; (void) elmalign;
	(void) elemsp; (void) nullsp; (void) nelemsp;
	NOT_REACHED("deconstruct_array");
}

char *
format_type_be(Oid type_oid)
{
	(void) type_oid;
	NOT_REACHED("format_type_be");
}

void
get_typlenbyvalalign(Oid typid, int16 *typlen, bool *typbyval, char *typalign)
{
	(void) typid; (void) typlen; (void) typbyval; (void) typalign;
	NOT_REACHED("get_typlenbyvalalign");
}

Datum
numeric_float8(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	NOT_REACHED("numeric_float8");
}
