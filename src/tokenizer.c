/*
 * tokenizer.c
 *	  BERT's BasicTokenizer + WordPiece, faithful to Hugging Face `tokenizers`.
 *
 * The pipeline is the one BertTokenizerFast runs (tokenizers crate:
 * normalizers/bert.rs, pre_tokenizers/bert.rs, models/wordpiece,
 * processors/bert.rs), itself the Rust port of BERT's tokenization.py
 * (Devlin et al., 2019, https://github.com/google-research/bert):
 *
 *	0. special tokens ([CLS] [SEP] [UNK] [PAD] [MASK], when in the vocabulary)
 *	   written literally in the text are matched on the raw text first and
 *	   become their ids, as HF's added-token matching (normalized: false) does.
 *	1. clean text: drop U+0000, U+FFFD and "other" characters (Unicode
 *	   categories Cc, Cf, Cs, Co; unassigned code points are kept, as in HF)
 *	   except \t \n \r; map every White_Space
 *	   character to ' '.  (The filter runs first, so U+000B, U+000C and U+0085,
 *	   which are both Cc and White_Space, are dropped, as in HF.)
 *	2. CJK: put a space on both sides of every CJK Unified Ideograph (the
 *	   blocks BERT lists: 4E00-9FFF, 3400-4DBF, 20000-2A6DF, 2A700-2B73F,
 *	   2B740-2B81F, 2B820-2CEAF, F900-FAFF, 2F800-2FA1F).
 *	3. strip accents (when strip_accents, or when it is unset and lowercasing
 *	   is on): NFD through utf8proc, then drop nonspacing marks (Mn).
 *	4. lowercase: each character's full lowercase mapping (Rust's
 *	   char::to_lowercase: utf8proc's simple mapping, plus U+0130 -> "i\u0307",
 *	   the one unconditional multi-character entry of SpecialCasing.txt).
 *	5. pre-tokenize: split on White_Space (removed) and isolate every
 *	   punctuation character: ASCII punctuation !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
 *	   or Unicode categories Pc Pd Ps Pe Pi Pf Po.
 *	6. WordPiece (Wu et al., 2016; greedy longest-match-first): a word over
 *	   100 characters, or with a suffix no vocabulary entry matches, becomes
 *	   [UNK]; continuation pieces carry the "##" prefix.
 *	7. [CLS] pieces [SEP], the pieces cut so the whole fits max_tokens.
 *
 * The text is processed as a stream, one character at a time, and stops as
 * soon as max_tokens - 2 pieces exist, so a 1 GB text costs no more than the
 * prefix that fills the budget.  One documented simplification: NFD's
 * canonical reordering is not applied across input characters; it can only
 * change the order of combining characters with a nonzero combining class
 * that are not Mn (all Mn are dropped anyway), which real text does not have.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* One stream: the budget, the word being built and the ids so far. */
typedef struct TokStream
{
	CvTokenizer tok;
	int			lower;
	int			strip;
	int			limit;			/* pieces allowed (max_tokens - 2) */
	int32_t    *ids;			/* ids[0] is [CLS] */
	int			npieces;
	int			done;			/* budget reached */
	int32_t		word[CODEVEC_WORDPIECE_MAX_CHARS + 1];
	int			wordlen;		/* characters seen in the current word */
	/* scratch for WordPiece: UTF-8 bytes of the word and char offsets */
	char		wbytes[(CODEVEC_WORDPIECE_MAX_CHARS + 1) * 4];
	int			woff[CODEVEC_WORDPIECE_MAX_CHARS + 2];
	int32_t		wids[CODEVEC_WORDPIECE_MAX_CHARS + 1];
} TokStream;

/* Hash bytes with FNV-1a, optionally behind a "##" prefix. */
static uint32_t
HashBytes(int prefix, const char *s, size_t len)
{
	uint32_t	h = 2166136261u;
	size_t		i;

	if (prefix)
	{
		h = (h ^ (uint8_t) '#') * 16777619u;
		h = (h ^ (uint8_t) '#') * 16777619u;
	}
	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t) s[i]) * 16777619u;
	return h;
}

/* Find the slot of a token (prefix "##" when prefix), or the empty slot for it. */
static CvVocabEntry *
FindSlot(CvTokenizer tok, int prefix, const char *s, size_t len)
{
	uint32_t	mask = tok->nslots - 1;
	uint32_t	i = HashBytes(prefix, s, len) & mask;
	size_t		full = len + (prefix ? 2 : 0);

	for (;;)
	{
		CvVocabEntry *e = &tok->slots[i];

		if (e->id < 0)
			return e;
		if (e->len == full)
		{
			const char *t = tok->text + e->off;

			if (prefix)
			{
				if (t[0] == '#' && t[1] == '#' && memcmp(t + 2, s, len) == 0)
					return e;
			}
			else if (memcmp(t, s, len) == 0)
				return e;
		}
		i = (i + 1) & mask;
	}
}

/* Look up a token's id by its bytes; -1 when absent. */
int32_t
cv_tokenizer_lookup(CvTokenizer tok, const char *s, size_t len)
{
	return FindSlot(tok, 0, s, len)->id;
}

/* Read a whole file into a malloc'd buffer. */
static char *
ReadFile(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		cap = 0,
				n = 0;

	if (!f)
		return NULL;
	for (;;)
	{
		size_t		got;

		if (n + 65536 > cap)
		{
			char	   *nb;

			cap = cap ? cap * 2 : 262144;
			nb = realloc(buf, cap);
			if (!nb)
			{
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Load vocab.txt (one token a line, id = line number); errbuf gets a message. */
CvTokStatus
cv_tokenizer_load(const char *vocab_path, int do_lower_case, int strip_accents,
				  CvTokenizer *out, char *errbuf, size_t errlen)
{
	CvTokenizer tok;
	size_t		len = 0,
				pos = 0;
	char	   *buf;
	int32_t		nlines = 0;
	uint32_t	nslots = 1024;
	size_t		i;

	*out = NULL;
	buf = ReadFile(vocab_path, &len);
	if (!buf)
	{
		snprintf(errbuf, errlen, "could not read vocabulary \"%s\": %s",
				 vocab_path, strerror(errno));
		return errno == ENOMEM ? CV_TOK_NOMEM : CV_TOK_IO;
	}
	for (i = 0; i < len; i++)
		if (buf[i] == '\n')
			nlines++;
	if (len > 0 && buf[len - 1] != '\n')
		nlines++;
	if (nlines == 0)
	{
		free(buf);
		snprintf(errbuf, errlen, "vocabulary \"%s\" is empty", vocab_path);
		return CV_TOK_BADVOCAB;
	}
	while (nslots < (uint32_t) nlines * 2)
		nslots <<= 1;

	tok = calloc(1, sizeof(CvTokenizerData));
	if (!tok || !(tok->slots = malloc(sizeof(CvVocabEntry) * nslots)))
	{
		free(tok);
		free(buf);
		snprintf(errbuf, errlen, "out of memory loading vocabulary");
		return CV_TOK_NOMEM;
	}
	for (i = 0; i < nslots; i++)
		tok->slots[i].id = -1;
	tok->nslots = nslots;
	tok->text = buf;
	tok->text_len = len;
	tok->do_lower_case = do_lower_case;
	tok->strip_accents = strip_accents;
	tok->tokenize_chinese_chars = 1;

	/* one entry a line, trailing whitespace trimmed as Rust's trim_end does */
	nlines = 0;
	while (pos < len)
	{
		size_t		start = pos,
					end;
		CvVocabEntry *e;

		while (pos < len && buf[pos] != '\n')
			pos++;
		end = pos;
		if (pos < len)
			pos++;
		while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t' ||
							   buf[end - 1] == '\r' || buf[end - 1] == '\n' ||
							   buf[end - 1] == '\v' || buf[end - 1] == '\f'))
			end--;
		e = FindSlot(tok, 0, buf + start, end - start);
		/* a repeated token keeps the later id, as a HashMap insert does */
		e->off = (uint32_t) start;
		e->len = (uint32_t) (end - start);
		e->id = nlines++;
	}
	tok->vocab_size = nlines;

	tok->cls_id = cv_tokenizer_lookup(tok, "[CLS]", 5);
	tok->sep_id = cv_tokenizer_lookup(tok, "[SEP]", 5);
	tok->unk_id = cv_tokenizer_lookup(tok, "[UNK]", 5);
	tok->pad_id = cv_tokenizer_lookup(tok, "[PAD]", 5);
	if (tok->cls_id < 0 || tok->sep_id < 0 || tok->unk_id < 0)
	{
		snprintf(errbuf, errlen,
				 "vocabulary \"%s\" lacks one of [CLS], [SEP], [UNK]",
				 vocab_path);
		cv_tokenizer_free(tok);
		return CV_TOK_BADVOCAB;
	}
	*out = tok;
	return CV_TOK_OK;
}

/* Free a tokenizer and everything it owns; NULL is fine. */
void
cv_tokenizer_free(CvTokenizer tok)
{
	if (!tok)
		return;
	free(tok->slots);
	free(tok->text);
	free(tok);
}

/* Decode one UTF-8 character at s (n bytes left); invalid bytes give U+FFFD. */
static int32_t
DecodeUtf8(const unsigned char *s, size_t n, size_t *used)
{
	int32_t		cp;
	int			need,
				i;

	if (s[0] < 0x80)
	{
		*used = 1;
		return s[0];
	}
	if ((s[0] & 0xE0) == 0xC0)
	{
		cp = s[0] & 0x1F;
		need = 1;
	}
	else if ((s[0] & 0xF0) == 0xE0)
	{
		cp = s[0] & 0x0F;
		need = 2;
	}
	else if ((s[0] & 0xF8) == 0xF0)
	{
		cp = s[0] & 0x07;
		need = 3;
	}
	else
	{
		*used = 1;
		return 0xFFFD;
	}
	if ((size_t) need >= n)
	{
		*used = 1;
		return 0xFFFD;
	}
	for (i = 1; i <= need; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
		{
			*used = 1;
			return 0xFFFD;
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* overlong forms, surrogates and values past U+10FFFF are invalid */
	if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		(need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		(cp >= 0xD800 && cp <= 0xDFFF))
	{
		*used = 1;
		return 0xFFFD;
	}
	*used = need + 1;
	return cp;
}

/* Encode one character as UTF-8 into out (4 bytes room); return its length. */
static int
EncodeUtf8(int32_t cp, char *out)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/* Test the Unicode White_Space property (Rust's char::is_whitespace). */
static int
IsWhitespace(int32_t c)
{
	if (c == ' ' || (c >= 0x09 && c <= 0x0D))
		return 1;
	if (c < 0x85)
		return 0;
	return c == 0x85 || c == 0xA0 || c == 0x1680 ||
		(c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
		c == 0x202F || c == 0x205F || c == 0x3000;
}

/*
 * Test BERT's "control": categories Cc Cf Cs Co, except \t \n \r.  HF's
 * is_other() does not count unassigned code points (Cn), so neither do we.
 */
static int
IsControl(int32_t c)
{
	utf8proc_category_t cat;

	if (c == '\t' || c == '\n' || c == '\r')
		return 0;
	if (c >= 0x20 && c < 0x7F)
		return 0;
	cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
		cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO;
}

/* Test BERT's punctuation: ASCII punctuation or Unicode P* categories. */
static int
IsPunctuation(int32_t c)
{
	utf8proc_category_t cat;

	if (c < 0x80)
		return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) ||
			(c >= 91 && c <= 96) || (c >= 123 && c <= 126);
	cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_PC || cat == UTF8PROC_CATEGORY_PD ||
		cat == UTF8PROC_CATEGORY_PS || cat == UTF8PROC_CATEGORY_PE ||
		cat == UTF8PROC_CATEGORY_PI || cat == UTF8PROC_CATEGORY_PF ||
		cat == UTF8PROC_CATEGORY_PO;
}

/* Test the CJK Unified Ideograph blocks BERT splits on. */
static int
IsCjk(int32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
		(c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
		(c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
		(c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Append one id to the pieces, marking the stream done at the budget. */
static void
PushId(TokStream *st, int32_t id)
{
	if (st->npieces < st->limit)
		st->ids[1 + st->npieces++] = id;
	if (st->npieces >= st->limit)
		st->done = 1;
}

/* Run greedy longest-match-first WordPiece on the current word and emit it. */
static void
FlushWord(TokStream *st)
{
	CvTokenizer tok = st->tok;
	int			n = st->wordlen;
	int			i,
				start,
				npieces = 0;

	st->wordlen = 0;
	if (n == 0 || st->done)
		return;
	if (n > CODEVEC_WORDPIECE_MAX_CHARS)
	{
		PushId(st, tok->unk_id);
		return;
	}
	st->woff[0] = 0;
	for (i = 0; i < n; i++)
		st->woff[i + 1] = st->woff[i] + EncodeUtf8(st->word[i], st->wbytes + st->woff[i]);

	start = 0;
	while (start < n)
	{
		int			end = n;
		int32_t		found = -1;

		while (start < end)
		{
			CvVocabEntry *e = FindSlot(tok, start > 0,
									   st->wbytes + st->woff[start],
									   st->woff[end] - st->woff[start]);

			if (e->id >= 0)
			{
				found = e->id;
				break;
			}
			end--;
		}
		if (found < 0)
		{
			/* no piece matches: the whole word is [UNK] */
			PushId(st, tok->unk_id);
			return;
		}
		st->wids[npieces++] = found;
		start = end;
	}
	for (i = 0; i < npieces && !st->done; i++)
		PushId(st, st->wids[i]);
}

/* Feed one normalized character to the pre-tokenizer. */
static void
PreTokenize(TokStream *st, int32_t c)
{
	if (IsWhitespace(c))
	{
		FlushWord(st);
		return;
	}
	if (IsPunctuation(c))
	{
		FlushWord(st);
		st->word[0] = c;
		st->wordlen = 1;
		FlushWord(st);
		return;
	}
	/* past the 100-character limit only the count matters: it is [UNK] */
	if (st->wordlen <= CODEVEC_WORDPIECE_MAX_CHARS)
		st->word[st->wordlen] = c;
	if (st->wordlen <= CODEVEC_WORDPIECE_MAX_CHARS)
		st->wordlen++;
}

/* Lowercase one character when asked, then pre-tokenize the result. */
static void
LowerAndFeed(TokStream *st, int32_t c)
{
	if (st->lower)
	{
		if (c == 0x130)
		{
			/* Rust's full mapping: U+0130 -> U+0069 U+0307 */
			PreTokenize(st, 'i');
			PreTokenize(st, 0x307);
			return;
		}
		c = utf8proc_tolower(c);
	}
	PreTokenize(st, c);
}

/* Strip accents (NFD, drop Mn) when asked, then lowercase and feed. */
static void
StripAndFeed(TokStream *st, int32_t c)
{
	utf8proc_int32_t dec[32];
	utf8proc_ssize_t n,
				i;
	int			last = 0;

	if (!st->strip || c < 0xC0)
	{
		LowerAndFeed(st, c);
		return;
	}
	n = utf8proc_decompose_char(c, dec, 32, UTF8PROC_DECOMPOSE, &last);
	if (n < 0 || n > 32)
	{
		LowerAndFeed(st, c);
		return;
	}
	for (i = 0; i < n; i++)
		if (utf8proc_category(dec[i]) != UTF8PROC_CATEGORY_MN)
			LowerAndFeed(st, dec[i]);
}

/* Match a special token ([CLS] ...) at the start of s; return its id or -1. */
static int32_t
MatchSpecial(CvTokenizer tok, const char *s, size_t n, size_t *used)
{
	static const char *const specials[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};
	int			i;

	for (i = 0; i < 5; i++)
	{
		size_t		l = strlen(specials[i]);

		if (n >= l && memcmp(s, specials[i], l) == 0)
		{
			int32_t		id = cv_tokenizer_lookup(tok, specials[i], l);

			if (id >= 0)
			{
				*used = l;
				return id;
			}
		}
	}
	return -1;
}

/*
 * Tokenize UTF-8 text into [CLS] pieces [SEP], at most max_tokens ids.
 */
CvTokStatus
cv_tokenize(CvTokenizer tok, const char *text, size_t len, int max_tokens,
			int32_t **ids, int *n_ids)
{
	TokStream  *st;
	const unsigned char *s = (const unsigned char *) text;
	size_t		pos = 0;

	*ids = NULL;
	*n_ids = 0;
	if (max_tokens < 2)
		max_tokens = 2;
	st = malloc(sizeof(TokStream));
	if (!st)
		return CV_TOK_NOMEM;
	st->ids = malloc(sizeof(int32_t) * max_tokens);
	if (!st->ids)
	{
		free(st);
		return CV_TOK_NOMEM;
	}
	st->tok = tok;
	st->lower = tok->do_lower_case;
	st->strip = tok->strip_accents < 0 ? tok->do_lower_case : tok->strip_accents;
	st->limit = max_tokens - 2;
	st->npieces = 0;
	st->done = (st->limit == 0);
	st->wordlen = 0;
	st->ids[0] = tok->cls_id;

	while (pos < len && !st->done)
	{
		size_t		used;
		int32_t		c;
		int32_t		special;

		/* 0. special tokens written in the text, matched before normalizing */
		if (s[pos] == '[' && (special = MatchSpecial(tok, text + pos, len - pos, &used)) >= 0)
		{
			FlushWord(st);
			PushId(st, special);
			pos += used;
			continue;
		}
		c = DecodeUtf8(s + pos, len - pos, &used);

		pos += used;
		/* 1. clean text */
		if (c == 0 || c == 0xFFFD || IsControl(c))
			continue;
		if (IsWhitespace(c))
		{
			FlushWord(st);
			continue;
		}
		/* 2. CJK characters become words of their own */
		if (tok->tokenize_chinese_chars && IsCjk(c))
		{
			FlushWord(st);
			StripAndFeed(st, c);
			FlushWord(st);
			continue;
		}
		StripAndFeed(st, c);
	}
	FlushWord(st);

	st->ids[1 + st->npieces] = tok->sep_id;
	*ids = st->ids;
	*n_ids = st->npieces + 2;
	free(st);
	return CV_TOK_OK;
}
