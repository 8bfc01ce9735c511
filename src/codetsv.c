/*
 * codetsv.c
 *	  codevec_code_tsvector(): code.snippets.tsv in one C call, the same
 *	  tsvector as the SQL expression it replaces, made with less work.
 *
 * codevec-load stores, for every snippet,
 *
 *   setweight(to_tsvector(cfg, name), 'A') || setweight(to_tsvector(cfg,
 *   signature), 'B') || setweight(to_tsvector(cfg, doc), 'C') ||
 *   setweight(to_tsvector(cfg, body), 'D')
 *
 * (cfg = codevec_code).  PostgreSQL's to_tsvector (parsetext() in
 * src/backend/tsearch/ts_parse.c) calls the parser through fmgr once per
 * token, queues every token (blanks included) in a palloc'd list, calls
 * the dictionary through fmgr for each word (the simple dictionary
 * lower-cases through wide characters in a UTF-8 database and looks the
 * result up in the stop word list by binary search), and make_tsvector()
 * then sorts every occurrence by lexeme.  Profiled on linux-source-6.1's
 * kernel/ (bench/loader/results-ingest-2026-12-04.md), those steps and the
 * parser's per-byte character classes were most of the cost; the classes
 * are now a table lookup (src/tsparser.c), which is most of the saving
 * (17% of the server's CPU for a first load); this function saves about
 * 1% more, as the tsvector assembly below (make_tsvector, setweight, ||)
 * stays PostgreSQL's.
 *
 * This function computes the same value with the same pieces, in an order
 * that does less:
 *
 *   1. tokens come straight from the parser's C interface (tsparser.h), no
 *      fmgr call or list node per token;
 *   2. each distinct token is lexized once per statement: the result of
 *      the configuration's dictionary (a stop word, a lexeme, or "not
 *      recognised") is kept in a hash table keyed by the token's bytes, so
 *      the dictionary's own lexize function still decides every result,
 *      and code's few thousand identifiers are lower-cased and looked up
 *      once instead of once per occurrence;
 *   3. the occurrences of one field are handed to make_tsvector() already
 *      in (lexeme, position) order: the distinct lexemes are sorted with
 *      tsCompareString (the order make_tsvector sorts in) and the
 *      occurrences placed by a counting sort, so make_tsvector's qsort
 *      only confirms the order (PostgreSQL's qsort returns at once on
 *      sorted input);
 *   4. setweight and || are PostgreSQL's own functions (tsvector_setweight,
 *      tsvector_concat), called directly.
 *
 * Positions follow parsetext(): a token whose type the configuration maps
 * and whose dictionary returns anything (a stop word included) takes the
 * next position, LIMITPOS-capped; tokens of unmapped types (blank) and
 * tokens no dictionary recognises take none.
 *
 * The shortcut is taken only when the result cannot differ: the
 * configuration's parser is codevec_code_parser, and every mapped token
 * type maps to one and the same dictionary, whose lexize function is
 * PostgreSQL's simple dictionary (dsimple_lexize: one lexeme or none,
 * no TSL_ADDPOS, TSL_FILTER or multi-word state).  Any other
 * configuration goes through parsetext() itself, as to_tsvector does.
 * The cache lives in the calling expression's fn_mcxt (one statement),
 * is dropped when the dictionary's cache entry is rebuilt (ALTER TEXT
 * SEARCH DICTIONARY) and is bounded by CODETSV_CACHE_MAX_BYTES.
 *
 * test/search/codetsv.sh checks, on real code, that every snippet's value
 * equals the SQL expression's.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "tsearch/ts_cache.h"
#include "tsearch/ts_public.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "compat.h"
#include "tsparser.h"

/* the cache is emptied when its memory passes this */
#define CODETSV_CACHE_MAX_BYTES (16 * 1024 * 1024)
#define CODETSV_INITIAL_SLOTS 4096

/* what the dictionary made of a token */
typedef enum LexKind
{
	LEX_UNKNOWN = 0,			/* not recognised: no position */
	LEX_STOP,					/* a stop word: a position, no lexeme */
	LEX_WORD					/* a lexeme */
} LexKind;

typedef struct LexEntry
{
	uint32		hash;
	int			toklen;
	const char *tok;			/* the token's bytes (cache memory) */
	const char *lexeme;			/* LEX_WORD: its lexeme, NUL-terminated */
	int			lexlen;
	LexKind		kind;
	uint64		stamp;			/* the field that last saw it */
	int			rank;			/* its lexeme's place in that field */
} LexEntry;

typedef struct CodeTsvState
{
	MemoryContext cxt;			/* entries, tokens and lexemes */
	Oid			dictId;			/* the dictionary the entries came from */
	void	   *dictData;		/* its cache entry's data when they did */
	LexEntry  **slots;			/* open addressing, power-of-two size */
	int			nslots;
	int			nused;
	uint64		stamp;			/* fields seen so far */
} CodeTsvState;

/* one occurrence of a lexeme in a field */
typedef struct Occurrence
{
	LexEntry   *entry;
	uint16		pos;
} Occurrence;

PG_FUNCTION_INFO_V1(codevec_code_tsvector);

/* Empty the cache (its memory too) and give it fresh slots. */
static void
CacheReset(CodeTsvState *st)
{
	MemoryContextReset(st->cxt);
	st->nslots = CODETSV_INITIAL_SLOTS;
	st->nused = 0;
	st->slots = MemoryContextAllocZero(st->cxt, sizeof(LexEntry *) * st->nslots);
}

/* Double the slot array, placing the entries again. */
static void
CacheGrow(CodeTsvState *st)
{
	int			n = st->nslots * 2;
	LexEntry  **slots = MemoryContextAllocZero(st->cxt, sizeof(LexEntry *) * n);

	for (int i = 0; i < st->nslots; i++)
	{
		LexEntry   *e = st->slots[i];

		if (e != NULL)
		{
			int			j = e->hash & (n - 1);

			while (slots[j] != NULL)
				j = (j + 1) & (n - 1);
			slots[j] = e;
		}
	}
	pfree(st->slots);
	st->slots = slots;
	st->nslots = n;
}

/*
 * The cache entry of token [tok, tok + len): found, or made by calling the
 * dictionary's lexize function exactly as parsetext()'s LexizeExec does.
 */
static LexEntry *
CacheLookup(CodeTsvState *st, TSDictionaryCacheEntry *dict, const char *tok, int len)
{
	uint32		h = hash_bytes((const unsigned char *) tok, len);
	int			j = h & (st->nslots - 1);
	LexEntry   *e;
	TSLexeme   *res;
	DictSubState dstate;
	char	   *copy;

	while ((e = st->slots[j]) != NULL)
	{
		if (e->hash == h && e->toklen == len && memcmp(e->tok, tok, len) == 0)
			return e;
		j = (j + 1) & (st->nslots - 1);
	}

	dstate.isend = dstate.getnext = false;
	dstate.private_state = NULL;
	res = (TSLexeme *) DatumGetPointer(FunctionCall4(&dict->lexize,
													 PointerGetDatum(dict->dictData),
													 PointerGetDatum(tok),
													 Int32GetDatum(len),
													 PointerGetDatum(&dstate)));

	e = MemoryContextAllocZero(st->cxt, sizeof(LexEntry));
	e->hash = h;
	e->toklen = len;
	copy = MemoryContextAlloc(st->cxt, len);
	memcpy(copy, tok, len);
	e->tok = copy;
	if (res == NULL)
		e->kind = LEX_UNKNOWN;
	else if (res[0].lexeme == NULL)
		e->kind = LEX_STOP;
	else
	{
		e->kind = LEX_WORD;
		e->lexlen = strlen(res[0].lexeme);
		e->lexeme = MemoryContextStrdup(st->cxt, res[0].lexeme);
		pfree(res[0].lexeme);
	}
	if (res != NULL)
		pfree(res);

	st->slots[j] = e;
	if (++st->nused * 2 > st->nslots)
		CacheGrow(st);
	return e;
}

/* qsort comparator: entries by lexeme, as make_tsvector orders words */
static int
CompareEntries(const void *a, const void *b)
{
	const LexEntry *x = *(LexEntry *const *) a;
	const LexEntry *y = *(LexEntry *const *) b;

	return tsCompareString((char *) x->lexeme, x->lexlen, (char *) y->lexeme, y->lexlen, false);
}

/*
 * to_tsvector(cfgId, buf[0:len]) by the shortcut (see the top of the file):
 * cfg's parser is codevec_code_parser and every mapped type goes to dict.
 */
static TSVector
FieldTsvectorFast(CodeTsvState *st, TSConfigCacheEntry *cfg,
				  TSDictionaryCacheEntry *dict, char *buf, int len)
{
	CodeParserData prs;
	char	   *tok;
	int			toklen;
	int			type;
	int			pos = 0;
	int			nocc = 0,
				maxocc = 64;
	Occurrence *occ = palloc(sizeof(Occurrence) * maxocc);
	int			ndistinct = 0,
				maxdistinct = 64;
	LexEntry  **distinct = palloc(sizeof(LexEntry *) * maxdistinct);
	uint64		stamp = ++st->stamp;
	ParsedText	out;
	int		   *start;
	int			nranks;

	CodevecTsParserInit(&prs, buf, len);
	while ((type = CodevecTsParserNext(&prs, &tok, &toklen)) > 0)
	{
		LexEntry   *e;

		if (toklen >= MAXSTRLEN)
		{
			/* parsetext()'s message; codevec_code_parser never makes these */
			ereport(NOTICE,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("word is too long to be indexed"),
					 errdetail("Words longer than %d characters are ignored.",
							   MAXSTRLEN)));
			continue;
		}
		if (type >= cfg->lenmap || cfg->map[type].len == 0)
			continue;			/* unmapped (blank): no position */
		e = CacheLookup(st, dict, tok, toklen);
		if (e->kind == LEX_UNKNOWN)
			continue;
		pos++;
		if (e->kind == LEX_STOP)
			continue;
		if (nocc == maxocc)
		{
			maxocc *= 2;
			occ = repalloc(occ, sizeof(Occurrence) * maxocc);
		}
		occ[nocc].entry = e;
		occ[nocc].pos = LIMITPOS(pos);
		nocc++;
		if (e->stamp != stamp)
		{
			e->stamp = stamp;
			if (ndistinct == maxdistinct)
			{
				maxdistinct *= 2;
				distinct = repalloc(distinct, sizeof(LexEntry *) * maxdistinct);
			}
			distinct[ndistinct++] = e;
		}
	}

	/* ranks: distinct lexemes in make_tsvector's order (tokens may share one) */
	qsort(distinct, ndistinct, sizeof(LexEntry *), CompareEntries);
	nranks = 0;
	for (int i = 0; i < ndistinct; i++)
	{
		if (i > 0 && CompareEntries(&distinct[i - 1], &distinct[i]) != 0)
			nranks++;
		distinct[i]->rank = nranks;
	}
	if (ndistinct > 0)
		nranks++;

	/* counting sort of the occurrences by rank, stable: positions ascend */
	start = palloc0(sizeof(int) * (nranks + 1));
	for (int i = 0; i < nocc; i++)
		start[occ[i].entry->rank + 1]++;
	for (int r = 0; r < nranks; r++)
		start[r + 1] += start[r];

	out.lenwords = Max(nocc, 2);
	out.curwords = nocc;
	out.pos = pos;
	out.words = palloc(sizeof(ParsedWord) * out.lenwords);
	for (int i = 0; i < nocc; i++)
	{
		LexEntry   *e = occ[i].entry;
		ParsedWord *w = &out.words[start[e->rank]++];
		char	   *word = palloc(e->lexlen + 1);

		/* make_tsvector pfrees every word: one palloc'd copy each */
		memcpy(word, e->lexeme, e->lexlen + 1);
		w->len = e->lexlen;
		w->nvariant = 0;
		w->flags = 0;
		w->alen = 0;
		w->word = word;
		w->pos.pos = occ[i].pos;
	}
	pfree(start);
	pfree(occ);
	pfree(distinct);
	return make_tsvector(&out);
}

/* to_tsvector(cfgId, buf[0:len]) as PostgreSQL computes it (to_tsvector_byid) */
static TSVector
FieldTsvectorGeneric(Oid cfgId, char *buf, int len)
{
	ParsedText	prs;

	prs.lenwords = len / 6;
	if (prs.lenwords < 2)
		prs.lenwords = 2;
	else if (prs.lenwords > MaxAllocSize / sizeof(ParsedWord))
		prs.lenwords = MaxAllocSize / sizeof(ParsedWord);
	prs.curwords = 0;
	prs.pos = 0;
	prs.words = (ParsedWord *) palloc(sizeof(ParsedWord) * prs.lenwords);
	parsetext(cfgId, &prs, buf, len);
	return make_tsvector(&prs);
}

/*
 * The dictionary the shortcut may use for cfg, or NULL when it may not
 * (see the top of the file).
 */
static TSDictionaryCacheEntry *
ShortcutDictionary(TSConfigCacheEntry *cfg)
{
	TSParserCacheEntry *prs = lookup_ts_parser_cache(cfg->prsId);
	Oid			dictId = InvalidOid;
	TSDictionaryCacheEntry *dict;

	if (prs->prsstart.fn_addr != codevec_tsparser_start ||
		prs->prstoken.fn_addr != codevec_tsparser_gettoken)
		return NULL;
	for (int t = 1; t < cfg->lenmap; t++)
	{
		ListDictionary *map = &cfg->map[t];

		if (map->len == 0)
			continue;
		if (map->len != 1 || (OidIsValid(dictId) && map->dictIds[0] != dictId))
			return NULL;
		dictId = map->dictIds[0];
	}
	if (!OidIsValid(dictId))
		return NULL;
	dict = lookup_ts_dictionary_cache(dictId);
	if (dict->lexize.fn_addr != dsimple_lexize)
		return NULL;
	return dict;
}

/*
 * codevec_code_tsvector(config regconfig, name text, signature text, doc
 * text, body text) -> tsvector: setweight(to_tsvector(config, name), 'A')
 * || ... 'B' (signature) || ... 'C' (doc) || ... 'D' (body).  STRICT.
 * Equal to that expression for every configuration (see the top of the
 * file); faster for codevec_code.
 */
Datum
codevec_code_tsvector(PG_FUNCTION_ARGS)
{
	static const char weights[4] = {'A', 'B', 'C', 'D'};
	Oid			cfgId;
	TSConfigCacheEntry *cfg;
	TSDictionaryCacheEntry *dict;
	CodeTsvState *st = (CodeTsvState *) fcinfo->flinfo->fn_extra;
	Datum		result = (Datum) 0;

	cfgId = PG_GETARG_OID(0);
	cfg = lookup_ts_config_cache(cfgId);
	dict = ShortcutDictionary(cfg);

	if (dict != NULL)
	{
		if (st == NULL)
		{
			st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CodeTsvState));
			st->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt,
											"codevec_code_tsvector cache",
											ALLOCSET_DEFAULT_SIZES);
			CacheReset(st);
			fcinfo->flinfo->fn_extra = st;
		}
		/* another dictionary, or its cache entry rebuilt, or too big */
		if (st->dictId != dict->dictId || st->dictData != dict->dictData ||
			MemoryContextMemAllocated(st->cxt, true) > CODETSV_CACHE_MAX_BYTES)
		{
			CacheReset(st);
			st->dictId = dict->dictId;
			st->dictData = dict->dictData;
		}
	}

	for (int i = 0; i < 4; i++)
	{
		text	   *in = PG_GETARG_TEXT_PP(i + 1);
		char	   *buf = VARDATA_ANY(in);
		int			len = VARSIZE_ANY_EXHDR(in);
		TSVector	v;
		Datum		w;

		v = dict ? FieldTsvectorFast(st, cfg, dict, buf, len)
			: FieldTsvectorGeneric(cfgId, buf, len);
		w = DirectFunctionCall2(tsvector_setweight, PointerGetDatum(v),
								CharGetDatum(weights[i]));
		pfree(v);
		if (i == 0)
			result = w;
		else
		{
			Datum		c = DirectFunctionCall2(tsvector_concat, result, w);

			pfree(DatumGetPointer(result));
			pfree(DatumGetPointer(w));
			result = c;
		}
	}
	PG_RETURN_DATUM(result);
}
