/*
 * tsparser.c
 *	  codevec_code_parser: a text search parser that splits source code.
 *
 * PostgreSQL's default parser (src/backend/tsearch/wparser_def.c) reads
 * prose: it keeps `parse_config` whole, breaks `os.path.join` into a host
 * name, and `parseHTTPConfig` is one opaque word.  Code search needs the
 * pieces of an identifier (a question says "parse http config") and the
 * whole (someone pastes `parseHTTPConfig`).  This parser emits both, the
 * way the default parser emits a hyphenated word whole and then its parts:
 *
 *   input                 tokens (type: text), in order
 *   parseHTTPConfig       ident: parseHTTPConfig, part: parse, part: HTTP,
 *                         part: Config
 *   read_file_v2          ident: read_file_v2, part: read, blank: _,
 *                         part: file, blank: _, part: v, part: 2
 *   os.path.join          path: os.path.join, word: os, blank: ., word:
 *                         path, blank: ., word: join
 *   src/foo/bar.c, std::vector, node->next   path, then as above
 *   config, café, 42      word: config, word: café, number: 42
 *   anything else         blank (spaces, operators, quotes ...)
 *
 * An identifier is a run of letters, digits, '_' and non-ASCII letters.  Its
 * parts are split at '_', at a lower-to-upper change (camelCase), before
 * the last capital of a capital run followed by a lower-case letter
 * (HTTPConfig -> HTTP Config) and between letters and digits.  A path is two
 * or more identifiers joined by ".", "/", "::" or "->" with nothing between.
 * Case is left alone: the dictionary lower-cases (the codevec_code
 * configuration maps every type but blank to `simple`).
 *
 * The leaves (word, part, number, blank) tile the input exactly, and the
 * token type numbers follow wparser_def.c where that matters, so that
 * PostgreSQL's own headline function (prsd_headline, as contrib/test_parser
 * uses it) works: `ident` and `path` take the numbers of the default
 * parser's compound words (16, 17: skipped by the headline, which shows
 * their parts), `blank` takes 12 (space).
 *
 * Non-ASCII: any multibyte character is an identifier character unless,
 * in a UTF-8 database, the server's LC_CTYPE says it is a space or
 * punctuation (iswspace/iswpunct); its case (for camelCase splitting) comes
 * from iswupper/iswlower, so `größeBerechnen` splits under a UTF-8 locale
 * and stays whole under "C".  A multibyte sequence that runs past the end
 * of the input (never the case for a valid text value) is taken byte by
 * byte.  Tokens longer than CODEVEC_TS_MAX_TOKEN bytes are not indexed:
 * leaves become blanks (handed out in pieces of at most that size),
 * compounds are not emitted (their pieces are), so a 1 MB line of minified
 * code costs time linear in its length and no "word is too long" notices.
 * Capital runs: HTTPConfig splits HTTP|Config, but a plural acronym stays
 * one part (getURLs: get, URLs).
 */
#include "postgres.h"

#include <wctype.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tsearch/ts_public.h"

#include "tsparser.h"

/* character classes inside identifiers */
typedef enum CharClass
{
	CC_NONE = 0,				/* not an identifier character */
	CC_LOWER,
	CC_UPPER,
	CC_DIGIT,
	CC_UNDERSCORE,
	CC_OTHER					/* a letter without case (or unknown case) */
} CharClass;

PG_FUNCTION_INFO_V1(codevec_tsparser_start);
PG_FUNCTION_INFO_V1(codevec_tsparser_gettoken);
PG_FUNCTION_INFO_V1(codevec_tsparser_end);
PG_FUNCTION_INFO_V1(codevec_tsparser_lextype);

/* the class of each ASCII byte (ClassifyChar's fast path) */
static const unsigned char AsciiClass[128] = {
	['0'] = CC_DIGIT, ['1'] = CC_DIGIT, ['2'] = CC_DIGIT, ['3'] = CC_DIGIT,
	['4'] = CC_DIGIT, ['5'] = CC_DIGIT, ['6'] = CC_DIGIT, ['7'] = CC_DIGIT,
	['8'] = CC_DIGIT, ['9'] = CC_DIGIT,
	['A'] = CC_UPPER, ['B'] = CC_UPPER, ['C'] = CC_UPPER, ['D'] = CC_UPPER,
	['E'] = CC_UPPER, ['F'] = CC_UPPER, ['G'] = CC_UPPER, ['H'] = CC_UPPER,
	['I'] = CC_UPPER, ['J'] = CC_UPPER, ['K'] = CC_UPPER, ['L'] = CC_UPPER,
	['M'] = CC_UPPER, ['N'] = CC_UPPER, ['O'] = CC_UPPER, ['P'] = CC_UPPER,
	['Q'] = CC_UPPER, ['R'] = CC_UPPER, ['S'] = CC_UPPER, ['T'] = CC_UPPER,
	['U'] = CC_UPPER, ['V'] = CC_UPPER, ['W'] = CC_UPPER, ['X'] = CC_UPPER,
	['Y'] = CC_UPPER, ['Z'] = CC_UPPER,
	['_'] = CC_UNDERSCORE,
	['a'] = CC_LOWER, ['b'] = CC_LOWER, ['c'] = CC_LOWER, ['d'] = CC_LOWER,
	['e'] = CC_LOWER, ['f'] = CC_LOWER, ['g'] = CC_LOWER, ['h'] = CC_LOWER,
	['i'] = CC_LOWER, ['j'] = CC_LOWER, ['k'] = CC_LOWER, ['l'] = CC_LOWER,
	['m'] = CC_LOWER, ['n'] = CC_LOWER, ['o'] = CC_LOWER, ['p'] = CC_LOWER,
	['q'] = CC_LOWER, ['r'] = CC_LOWER, ['s'] = CC_LOWER, ['t'] = CC_LOWER,
	['u'] = CC_LOWER, ['v'] = CC_LOWER, ['w'] = CC_LOWER, ['x'] = CC_LOWER,
	['y'] = CC_LOWER, ['z'] = CC_LOWER,
};

/*
 * Classify the multibyte character at byte offset p (its first byte is
 * not ASCII); sets *clen to its length in bytes (at least 1, never past
 * the end of the text).
 */
static pg_noinline CharClass
ClassifyMultibyte(CodeParser prs, int p, int *clen)
{
	int			left = prs->len - p;
	int			n;

	*clen = 1;
	n = pg_mblen(prs->text + p);
	if (n < 1 || n > left)
		return CC_OTHER;		/* truncated sequence: one byte at a time */
	*clen = n;
	if (prs->utf8 && pg_utf8_islegal((const unsigned char *) prs->text + p, n))
	{
		pg_wchar	cp = utf8_to_unicode((const unsigned char *) prs->text + p);
		wint_t		wc = (wint_t) cp;

		if (iswspace(wc) || iswpunct(wc))
			return CC_NONE;
		if (iswupper(wc))
			return CC_UPPER;
		if (iswlower(wc))
			return CC_LOWER;
		if (iswdigit(wc))
			return CC_DIGIT;
	}
	return CC_OTHER;
}

/*
 * Classify the character at byte offset p; sets *clen to its length in
 * bytes (at least 1, never past the end of the text).  ASCII, almost all
 * of code, by a table lookup inlined into the callers.
 */
static inline CharClass
ClassifyChar(CodeParser prs, int p, int *clen)
{
	unsigned char c = (unsigned char) prs->text[p];

	if (likely(c < 0x80))
	{
		*clen = 1;
		return (CharClass) AsciiClass[c];
	}
	return ClassifyMultibyte(prs, p, clen);
}

/* Is there an identifier character at byte offset p? */
static inline bool
IsIdentAt(CodeParser prs, int p)
{
	int			n;

	return p < prs->len && ClassifyChar(prs, p, &n) != CC_NONE;
}

/* Return the end of the identifier that starts at p. */
static int
IdentEnd(CodeParser prs, int p)
{
	int			n;

	while (p < prs->len && ClassifyChar(prs, p, &n) != CC_NONE)
		p += n;
	return p;
}

/*
 * Length of a path separator ("." "/" "::" "->") at p that is followed by
 * an identifier character, or 0.
 */
static int
SeparatorAt(CodeParser prs, int p)
{
	const char *s = prs->text;
	int			n = 0;

	if (p >= prs->len)
		return 0;
	if (s[p] == '.' || s[p] == '/')
		n = 1;
	else if (p + 1 < prs->len &&
			 ((s[p] == ':' && s[p + 1] == ':') || (s[p] == '-' && s[p + 1] == '>')))
		n = 2;
	return n > 0 && IsIdentAt(prs, p + n) ? n : 0;
}

/*
 * Return the end of the part of identifier [p, end) that starts at p (p is
 * not '_').  Boundaries: '_', lower->upper, UPPER->Upper+lower, letter<->digit.
 */
static int
PartEnd(CodeParser prs, int p, int end)
{
	int			n;
	CharClass	prev = ClassifyChar(prs, p, &n);

	p += n;
	while (p < end)
	{
		CharClass	cur = ClassifyChar(prs, p, &n);

		if (cur == CC_UNDERSCORE)
			break;
		if (cur == CC_UPPER && prev == CC_LOWER)
			break;
		if ((cur == CC_DIGIT) != (prev == CC_DIGIT))
			break;
		if (cur == CC_UPPER && prev == CC_UPPER && p + n < end)
		{
			int			n2;
			int			n3;

			/* HTTPConfig: HTTP|Config, but URLs and IDs stay whole */
			if (ClassifyChar(prs, p + n, &n2) == CC_LOWER &&
				!(prs->text[p + n] == 's' &&
				  (p + n + n2 >= end || ClassifyChar(prs, p + n + n2, &n3) != CC_LOWER)))
				break;
		}
		prev = cur;
		p += n;
	}
	return p;
}

/*
 * Count the parts of identifier [p, end), stopping at 2; sets *digits when
 * the identifier is digits only and *underscore when it has a '_'.
 */
static int
CountParts(CodeParser prs, int p, int end, bool *digits, bool *underscore)
{
	int			parts = 0;
	int			n;

	*digits = true;
	*underscore = false;
	while (p < end)
	{
		CharClass	c = ClassifyChar(prs, p, &n);

		if (c != CC_DIGIT)
			*digits = false;
		if (c == CC_UNDERSCORE)
		{
			*underscore = true;
			p += n;
			continue;
		}
		if (++parts >= 2)
		{
			*digits = false;
			break;
		}
		p = PartEnd(prs, p, end);
	}
	return parts;
}

/*
 * Hand out token [start, end) of a type; returns the type.  A leaf longer
 * than CODEVEC_TS_MAX_TOKEN bytes becomes blank, and a long blank goes out
 * in pieces of at most that many bytes (whole characters): to_tsvector
 * says "word is too long to be indexed" for any token over 2047 bytes,
 * blanks included.  The rest is handed out before anything else.
 */
static int
Emit(CodeParser prs, int start, int end, int type, char **t, int *tlen)
{
	if (end - start > CODEVEC_TS_MAX_TOKEN)
	{
		int			p = start;
		int			n;

		type = CODEVEC_TS_BLANK;	/* too long to be a useful lexeme */
		while (p < end)
		{
			(void) ClassifyChar(prs, p, &n);
			if (p + n - start > CODEVEC_TS_MAX_TOKEN && p > start)
				break;
			p += n;
		}
		prs->blank_pos = p;
		prs->blank_end = end;
		end = p;
	}
	*t = (char *) prs->text + start;
	*tlen = end - start;
	return type;
}

/*
 * Start parser prs over len bytes of text (in the database encoding, not
 * terminated; used in place, so it must outlive the parser).
 */
void
CodevecTsParserInit(CodeParser prs, const char *text, int len)
{
	memset(prs, 0, sizeof(CodeParserData));
	prs->text = text;
	prs->len = len < 0 ? 0 : len;
	prs->utf8 = GetDatabaseEncoding() == PG_UTF8;
	prs->phase = PHASE_SCAN;
}

/*
 * codevec_tsparser_start(text internal, len int4) -> internal: the parser
 * state over len bytes of text (in the database encoding, not terminated).
 */
Datum
codevec_tsparser_start(PG_FUNCTION_ARGS)
{
	CodeParser	prs = palloc(sizeof(CodeParserData));

	CodevecTsParserInit(prs, (const char *) PG_GETARG_POINTER(0), PG_GETARG_INT32(1));
	PG_RETURN_POINTER(prs);
}

/*
 * Step inside an identifier of several parts: its next part or '_' run.
 * Returns a token type, or -1 when the identifier is done.
 */
static int
NextPart(CodeParser prs, char **t, int *tlen)
{
	int			p = prs->ipos;
	int			start = p;
	int			n;

	if (p >= prs->iend)
	{
		prs->cur = prs->iend;
		prs->phase = PHASE_COMPONENT;
		return -1;
	}
	if (ClassifyChar(prs, p, &n) == CC_UNDERSCORE)
	{
		while (p < prs->iend && prs->text[p] == '_')
			p++;
		prs->ipos = p;
		return Emit(prs, start, p, CODEVEC_TS_BLANK, t, tlen);
	}
	prs->ipos = PartEnd(prs, p, prs->iend);
	return Emit(prs, start, prs->ipos, CODEVEC_TS_PART, t, tlen);
}

/*
 * Step inside a path (or a lone identifier): the next identifier (whole,
 * then its parts via PHASE_PARTS) or separator.  Returns a token type, or
 * -1 to go on without a token.
 */
static int
NextComponent(CodeParser prs, char **t, int *tlen)
{
	int			p = prs->cur;
	int			end;
	int			parts;
	bool		digits;
	bool		underscore;

	if (p >= prs->cend)
	{
		prs->pos = prs->cend;
		prs->phase = PHASE_SCAN;
		return -1;
	}
	if (!IsIdentAt(prs, p))
	{
		/* a separator inside the path */
		int			sep = SeparatorAt(prs, p);

		if (sep < 1)
			sep = 1;			/* cannot happen: paths are built of these */
		prs->cur = p + sep;
		return Emit(prs, p, p + sep, CODEVEC_TS_BLANK, t, tlen);
	}
	end = IdentEnd(prs, p);
	parts = CountParts(prs, p, end, &digits, &underscore);
	/* several parts, or one with '_' around it (__init__, _x) */
	if (parts >= 2 || (parts == 1 && underscore))
	{
		prs->iend = end;
		prs->ipos = p;
		prs->phase = PHASE_PARTS;
		if (end - p <= CODEVEC_TS_MAX_TOKEN)
			return Emit(prs, p, end, CODEVEC_TS_IDENT, t, tlen);
		return -1;				/* too long: only its parts */
	}
	prs->cur = end;
	if (parts == 0)				/* underscores only */
		return Emit(prs, p, end, CODEVEC_TS_BLANK, t, tlen);
	return Emit(prs, p, end, digits ? CODEVEC_TS_NUMBER : CODEVEC_TS_WORD, t, tlen);
}

/*
 * Between chunks: a run of non-identifier characters (blank), or an
 * identifier and the path it may start (the path itself is returned when
 * it has two or more identifiers).  Returns a token type, 0 at the end of
 * the input, or -1 to go on.
 */
static int
NextChunk(CodeParser prs, char **t, int *tlen)
{
	int			p = prs->pos;
	int			start = p;
	int			components = 1;
	int			sep;
	int			n;

	if (p >= prs->len)
		return 0;
	if (!IsIdentAt(prs, p))
	{
		while (p < prs->len && ClassifyChar(prs, p, &n) == CC_NONE)
			p += n;
		prs->pos = p;
		return Emit(prs, start, p, CODEVEC_TS_BLANK, t, tlen);
	}
	p = IdentEnd(prs, p);
	while ((sep = SeparatorAt(prs, p)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		p = IdentEnd(prs, p + sep);
		components++;
	}
	prs->cend = p;
	prs->cur = start;
	prs->phase = PHASE_COMPONENT;
	if (components >= 2 && p - start <= CODEVEC_TS_MAX_TOKEN)
		return Emit(prs, start, p, CODEVEC_TS_PATH, t, tlen);
	return -1;
}

/*
 * Return the next token's type (0 at the end of the input), with *t and
 * *tlen set to its bytes.  See the top of the file for the order.
 */
int
CodevecTsParserNext(CodeParser prs, char **t, int *tlen)
{
	int			type;

	do
	{
		if (prs->blank_pos < prs->blank_end)
		{
			int			start = prs->blank_pos;

			prs->blank_pos = prs->blank_end;	/* Emit() sets it again if need be */
			type = Emit(prs, start, prs->blank_end, CODEVEC_TS_BLANK, t, tlen);
		}
		else if (prs->phase == PHASE_PARTS)
			type = NextPart(prs, t, tlen);
		else if (prs->phase == PHASE_COMPONENT)
			type = NextComponent(prs, t, tlen);
		else
			type = NextChunk(prs, t, tlen);
	} while (type < 0);
	return type;
}

/*
 * codevec_tsparser_gettoken(state internal, token internal, len internal)
 * -> int4: the next token's type (0 at the end), with *token and *len set
 * to its bytes in the input (CodevecTsParserNext()).
 */
Datum
codevec_tsparser_gettoken(PG_FUNCTION_ARGS)
{
	CodeParser	prs = (CodeParser) PG_GETARG_POINTER(0);
	char	  **t = (char **) PG_GETARG_POINTER(1);
	int		   *tlen = (int *) PG_GETARG_POINTER(2);

	PG_RETURN_INT32(CodevecTsParserNext(prs, t, tlen));
}

/* codevec_tsparser_end(state internal): free the parser state. */
Datum
codevec_tsparser_end(PG_FUNCTION_ARGS)
{
	pfree(PG_GETARG_POINTER(0));
	PG_RETURN_VOID();
}

/*
 * codevec_tsparser_lextype(internal) -> internal: the token types (a
 * LexDescr array ending with lexid 0), as ts_token_type() lists them.
 */
Datum
codevec_tsparser_lextype(PG_FUNCTION_ARGS)
{
	static const struct
	{
		int			id;
		const char *alias;
		const char *descr;
	}			types[] = {
		{CODEVEC_TS_WORD, "word", "Word or identifier of one part"},
		{CODEVEC_TS_PART, "part", "Part of an identifier (camelCase, snake_case, digits)"},
		{CODEVEC_TS_NUMBER, "number", "Number"},
		{CODEVEC_TS_BLANK, "blank", "Space, punctuation and separators"},
		{CODEVEC_TS_IDENT, "ident", "Identifier of several parts, whole"},
		{CODEVEC_TS_PATH, "path", "Dotted name, path, :: or -> chain, whole"},
	};
	int			n = lengthof(types);
	LexDescr   *descr = palloc(sizeof(LexDescr) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		descr[i].lexid = types[i].id;
		descr[i].alias = pstrdup(types[i].alias);
		descr[i].descr = pstrdup(types[i].descr);
	}
	descr[n].lexid = 0;
	PG_RETURN_POINTER(descr);
}
