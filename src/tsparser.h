/*
 * tsparser.h
 *	  codevec_code_parser's token generator, for callers inside the
 *	  extension (src/codetsv.c) that want the tokens without the fmgr calls
 *	  of PostgreSQL's text search parser interface.
 *
 * CodevecTsParserInit() starts a parser over len bytes of text (in the
 * database encoding, not terminated, left unchanged and used in place);
 * CodevecTsParserNext() returns the next token's type (0 at the end) and
 * points *t / *tlen at its bytes.  The tokens are exactly those
 * codevec_tsparser_gettoken() hands to to_tsvector (src/tsparser.c).
 */
#ifndef CODEVEC_TSPARSER_H
#define CODEVEC_TSPARSER_H

#include "fmgr.h"

/* token types: ids as in wparser_def.c where the headline cares */
#define CODEVEC_TS_WORD		1	/* identifier or word with one part */
#define CODEVEC_TS_PART		2	/* a part of a split identifier */
#define CODEVEC_TS_NUMBER	3	/* an identifier of digits only */
#define CODEVEC_TS_BLANK	12	/* anything else (wparser_def's SPACE) */
#define CODEVEC_TS_IDENT	16	/* identifier of 2+ parts, before them */
#define CODEVEC_TS_PATH		17	/* a.b, a/b, a::b, a->b, before its pieces */

/* longest token indexed, in bytes (PostgreSQL's own limit is 2047) */
#define CODEVEC_TS_MAX_TOKEN 255

/* where the token generator is */
typedef enum ParserPhase
{
	PHASE_SCAN = 0,				/* between chunks: scan the next one */
	PHASE_COMPONENT,			/* inside a path (or a lone identifier) */
	PHASE_PARTS					/* inside an identifier of several parts */
} ParserPhase;

typedef struct CodeParserData
{
	const char *text;
	int			len;
	int			pos;			/* start of the next unscanned chunk */
	bool		utf8;			/* database encoding is UTF-8 */
	ParserPhase phase;
	int			cend;			/* end of the current path / identifier */
	int			cur;			/* next component or separator in it */
	int			iend;			/* end of the current identifier */
	int			ipos;			/* next part of it */
	int			blank_pos;		/* rest of a long blank, handed out first */
	int			blank_end;
} CodeParserData;

typedef CodeParserData *CodeParser;

extern void CodevecTsParserInit(CodeParser prs, const char *text, int len);
extern int	CodevecTsParserNext(CodeParser prs, char **t, int *tlen);

/* the parser's fmgr entry points (codevec_code_parser's START, GETTOKEN) */
extern Datum codevec_tsparser_start(PG_FUNCTION_ARGS);
extern Datum codevec_tsparser_gettoken(PG_FUNCTION_ARGS);

#endif							/* CODEVEC_TSPARSER_H */
