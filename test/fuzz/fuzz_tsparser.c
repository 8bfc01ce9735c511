/*
 * fuzz_tsparser.c
 *	  libFuzzer harness for the codevec_code text search parser
 *	  (src/tsparser.c), the C part of to_tsvector('codevec_code', ...) and so
 *	  of code.keyword_query(), through test/c/pgstub.c.
 *
 * Byte 0 picks the database encoding (UTF8, SQL_ASCII, LATIN1, EUC_JP,
 * EUC_TW) and the locale of the wide-character classes (C or C.UTF-8); the
 * rest is the text, as the server hands it over (not NUL-terminated).
 *
 * Oracles, written from the parser's contract (top of tsparser.c), not its
 * code: the leaves (word, part, number, blank) tile the input exactly, in
 * order; every token lies inside the input, is 1..255 bytes long and has a
 * type lextype lists; a compound (ident, path) starts where the next leaf
 * starts and ends on a leaf boundary, and is made of leaves that follow it;
 * the parser ends (at most 3 tokens a byte).  A crash, a sanitizer report or
 * an ERROR is a finding.
 *
 *	  make -C test/fuzz && test/fuzz/build/fuzz_tsparser -max_total_time=600
 */
#include "pgstub.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tsearch/ts_public.h"

extern Datum codevec_tsparser_start(PG_FUNCTION_ARGS);
extern Datum codevec_tsparser_gettoken(PG_FUNCTION_ARGS);
extern Datum codevec_tsparser_end(PG_FUNCTION_ARGS);
extern Datum codevec_tsparser_lextype(PG_FUNCTION_ARGS);

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- backend stand-ins the parser calls ---- */

volatile sig_atomic_t InterruptPending = false;
static int	db_encoding = PG_UTF8;

void
ProcessInterrupts(void)
{
}

int
GetDatabaseEncoding(void)
{
	return db_encoding;
}

/* the server's pg_mblen: the database encoding's character length */
int
pg_mblen(const char *mbstr)
{
	return pg_encoding_mblen(db_encoding, mbstr);
}

#define MAX_TOKEN 255

static void
Fail(const char *what, int pos)
{
	fprintf(stderr, "fuzz_tsparser: %s at byte %d\n", what, pos);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int encodings[] = {PG_UTF8, PG_SQL_ASCII, PG_LATIN1, PG_EUC_JP, PG_EUC_TW};
	static int	lextypes[32];
	static bool init = false;
	char	   *text;
	int			len;
	Datum		state;
	int			leaf_end = 0;	/* end of the leaves handed out so far */
	int			open_end[2];	/* ends of the compounds not yet covered */
	int			depth = 0;
	int			ntokens = 0;

	if (!init)
	{
		Datum		d;
		LexDescr   *ld;

		if (pgstub_call(codevec_tsparser_lextype, &d, 1, 0, 0, 0) != 0)
			Fail("lextype raised an error", 0);
		ld = (LexDescr *) DatumGetPointer(d);
		for (int i = 0; ld[i].lexid != 0; i++)
		{
			if (ld[i].lexid < 1 || ld[i].lexid >= (int) lengthof(lextypes))
				Fail("lextype id out of range", 0);
			lextypes[ld[i].lexid] = 1;
		}
		pgstub_reset();
		init = true;
	}
	if (size < 1)
		return 0;
	db_encoding = encodings[data[0] % lengthof(encodings)];
	setlocale(LC_CTYPE, (data[0] & 0x80) ? "C" : "C.UTF-8");
	data++;
	size--;
	if (size > 1024 * 1024)
		return 0;
	len = (int) size;
	/* exactly len bytes: ASan catches a read past the end */
	text = malloc(len > 0 ? len : 1);
	memcpy(text, data, len);

	if (pgstub_call(codevec_tsparser_start, &state, 2, PointerGetDatum(text),
					Int32GetDatum(len), 0) != 0)
		Fail("start raised an error", 0);
	for (;;)
	{
		char	   *t = NULL;
		int			tlen = -1;
		Datum		d;
		int			type;
		int			off;

		if (pgstub_call(codevec_tsparser_gettoken, &d, 3, state,
						PointerGetDatum(&t), PointerGetDatum(&tlen)) != 0)
			Fail("gettoken raised an error", leaf_end);
		type = DatumGetInt32(d);
		if (type == 0)
			break;
		if (++ntokens > 3 * len + 3)
			Fail("too many tokens (no progress?)", leaf_end);
		if (type < 0 || type >= (int) lengthof(lextypes) || !lextypes[type])
			Fail("token type not in lextype", leaf_end);
		if (t == NULL || t < text || tlen < 1 || tlen > MAX_TOKEN || tlen > len ||
			t - text > len - tlen)
			Fail("token outside the input or of a bad length", leaf_end);
		off = (int) (t - text);
		if (type == 16 || type == 17)
		{
			/* compound: starts at the next leaf; a path may hold an ident */
			if (off != leaf_end)
				Fail("compound does not start at the next leaf", off);
			if (depth > 0 && off + tlen > open_end[depth - 1])
				Fail("compound runs past the enclosing compound", off);
			if (depth == 2)
				Fail("compounds nested three deep", off);
			open_end[depth++] = off + tlen;
			continue;
		}
		if (off != leaf_end)
			Fail("leaves do not tile the input", off);
		leaf_end = off + tlen;
		if (depth > 0 && leaf_end > open_end[depth - 1])
			Fail("a leaf crosses the end of its compound", off);
		while (depth > 0 && leaf_end == open_end[depth - 1])
			depth--;
	}
	if (leaf_end != len)
		Fail("leaves end before the input does", leaf_end);
	if (depth > 0)
		Fail("a compound ends after the input", open_end[depth - 1]);
	/* the end is sticky */
	{
		char	   *t;
		int			tlen;
		Datum		d;

		if (pgstub_call(codevec_tsparser_gettoken, &d, 3, state,
						PointerGetDatum(&t), PointerGetDatum(&tlen)) != 0 ||
			DatumGetInt32(d) != 0)
			Fail("a token after the end", len);
	}
	pgstub_call(codevec_tsparser_end, &state, 1, state, 0, 0);
	pgstub_reset();
	free(text);
	return 0;
}
