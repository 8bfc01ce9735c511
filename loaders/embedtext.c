/*
 * embedtext.c -- the text a snippet's embedding is computed from.
 *
 * cvl_embed_text_build() writes a snippet's embed_text from its fields
 * (--embed-fields: path, kind, name, signature, doc, body) with its
 * identifiers as words or as they are (--embed-words; the identifier split
 * of cvl_buf_append_words(), which is src/tsparser.c's, so the vector and
 * the keyword side see the same words), cut to --embed-max-bytes.  The
 * options are the run's (cvl_extract_configure() passes them on before any
 * worker starts; the workers read them without locks).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cvl.h"

/* the run's settings: extract.c's defaults until cvl_embed_text_configure */
static CvlExtractOptions Options = {
	.embed_fields = CVL_EMBED_DEFAULT_FIELDS,
	.embed_max_bytes = CVL_EMBED_TEXT_MAX_BYTES,
	.embed_words = CVL_EMBED_DEFAULT_WORDS,
};

/*
 * Set the embed_text options of the whole run (cvl_extract_configure calls
 * it; embed_max_bytes 0 means CVL_EMBED_TEXT_MAX_BYTES).
 */
void
cvl_embed_text_configure(const CvlExtractOptions *options)
{
	Options = *options;
	if (Options.embed_max_bytes == 0)
		Options.embed_max_bytes = CVL_EMBED_TEXT_MAX_BYTES;
}

/*
 * Parse an --embed-fields list ("path,kind,name,signature,doc,body", any
 * subset, any order; the text keeps the fixed order) into CVL_EMBED_* bits.
 * Returns 0, or -1 for an unknown or empty list.
 */
int
cvl_embed_fields_parse(const char *list, unsigned *fields)
{
	static const struct
	{
		const char *name;
		unsigned	bit;
	}			names[] = {
		{"path", CVL_EMBED_PATH}, {"kind", CVL_EMBED_KIND},
		{"name", CVL_EMBED_NAME}, {"signature", CVL_EMBED_SIGNATURE},
		{"doc", CVL_EMBED_DOC}, {"body", CVL_EMBED_BODY},
	};
	unsigned	bits = 0;
	const char *p = list;

	while (*p)
	{
		const char *e = strchr(p, ',');
		size_t		n = e ? (size_t) (e - p) : strlen(p);
		bool		found = false;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == n && strncmp(names[i].name, p, n) == 0)
			{
				bits |= names[i].bit;
				found = true;
			}
		if (!found)
			return -1;
		p = e ? e + 1 : p + n;
	}
	if (bits == 0)
		return -1;
	*fields = bits;
	return 0;
}

/*
 * Parse an --embed-words value (none, name, all, name+all, bare).  Returns
 * 0, or -1 for an unknown one.
 */
int
cvl_embed_words_parse(const char *name, CvlEmbedWords *words)
{
	static const struct
	{
		const char *name;
		CvlEmbedWords words;
	}			names[] = {
		{"none", CVL_EMBED_WORDS_NONE}, {"name", CVL_EMBED_WORDS_NAME},
		{"all", CVL_EMBED_WORDS_ALL}, {"name+all", CVL_EMBED_WORDS_NAME_ALL},
		{"bare", CVL_EMBED_WORDS_BARE},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
		{
			*words = names[i].words;
			return 0;
		}
	return -1;
}

/* character classes inside identifiers, as src/tsparser.c has them */
typedef enum WordClass
{
	WC_NONE = 0,				/* not an identifier character */
	WC_LOWER,
	WC_UPPER,
	WC_DIGIT,
	WC_UNDERSCORE,
	WC_OTHER					/* a byte of a non-ASCII character */
} WordClass;

/*
 * Classify one byte.  Non-ASCII bytes are caseless identifier characters:
 * what the text search parser does under the "C" locale (it asks
 * iswupper() under a UTF-8 one; the loader has no database locale).
 */
static inline WordClass
ClassifyWordByte(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return WC_LOWER;
	if (c >= 'A' && c <= 'Z')
		return WC_UPPER;
	if (c >= '0' && c <= '9')
		return WC_DIGIT;
	if (c == '_')
		return WC_UNDERSCORE;
	return c >= 0x80 ? WC_OTHER : WC_NONE;
}

/*
 * Return the end of the identifier part of s[p, end) that starts at p (not
 * '_').  The parts of src/tsparser.c's PartEnd(): boundaries at '_',
 * lower->Upper (camelCase), before the last capital of a capital run that
 * a lower-case letter follows (HTTPConfig: HTTP|Config; a plural acronym
 * stays whole: URLs, IDs), and between digits and anything else.
 */
static size_t
WordPartEnd(const char *s, size_t p, size_t end)
{
	WordClass	prev = ClassifyWordByte((unsigned char) s[p]);

	for (p++; p < end; p++)
	{
		WordClass	cur = ClassifyWordByte((unsigned char) s[p]);

		if (cur == WC_UNDERSCORE)
			break;
		if (cur == WC_UPPER && prev == WC_LOWER)
			break;
		if ((cur == WC_DIGIT) != (prev == WC_DIGIT))
			break;
		if (cur == WC_UPPER && prev == WC_UPPER && p + 1 < end &&
			ClassifyWordByte((unsigned char) s[p + 1]) == WC_LOWER &&
			!(s[p + 1] == 's' &&
			  (p + 2 >= end || ClassifyWordByte((unsigned char) s[p + 2]) != WC_LOWER)))
			break;
		prev = cur;
	}
	return p;
}

/*
 * Append s[0, n) with every identifier as its parts in lower case, one
 * space between them: "parseHTTPConfig(read_file_v2)" becomes "parse http
 * config(read file v 2)".  An identifier of underscores only stays as it
 * is.  With punct false, everything between identifiers becomes one space,
 * or one newline when it holds one ("parse http config read file v 2").
 * Stops once buf holds limit bytes or more (callers cut after).
 */
void
cvl_buf_append_words(CvlBuf buf, const char *s, size_t n, bool punct, size_t limit)
{
	size_t		i = 0;

	while (i < n && buf->len < limit)
	{
		size_t		start = i;

		if (ClassifyWordByte((unsigned char) s[i]) == WC_NONE)
		{
			bool		nl = false;

			while (i < n && ClassifyWordByte((unsigned char) s[i]) == WC_NONE)
				nl |= s[i++] == '\n';
			if (punct)
				cvl_buf_append(buf, s + start, i - start);
			else if (buf->len > 0 && i < n)
			{
				/* one separator; a newline wins over a space before it */
				char	   *last = &buf->data[buf->len - 1];

				if (*last == ' ' && nl)
					*last = '\n';
				else if (*last != ' ' && *last != '\n')
					cvl_buf_putc(buf, nl ? '\n' : ' ');
			}
			continue;
		}
		while (i < n && ClassifyWordByte((unsigned char) s[i]) != WC_NONE)
			i++;

		bool		any = false;
		size_t		p = start;

		while (p < i)
		{
			if (s[p] == '_')
			{
				p++;
				continue;
			}
			size_t		e = WordPartEnd(s, p, i);

			if (any)
				cvl_buf_putc(buf, ' ');
			for (; p < e; p++)
				cvl_buf_putc(buf, s[p] >= 'A' && s[p] <= 'Z' ? s[p] - 'A' + 'a' : s[p]);
			any = true;
		}
		if (!any)
			cvl_buf_append(buf, s + start, i - start);
	}
}

/*
 * Append text to embed_text: as it is, or (words) with its identifiers as
 * words; stops once buf holds limit bytes or more.
 */
static void
AppendEmbedPiece(CvlBuf buf, const char *s, size_t n, bool words, bool punct, size_t limit)
{
	if (words)
		cvl_buf_append_words(buf, s, n, punct, limit);
	else
	{
		if (buf->len + n > limit)
			n = buf->len < limit ? limit - buf->len : 0;
		cvl_buf_append(buf, s, n);
	}
}

/*
 * Build the text that is embedded for a snippet, and stored as embed_text
 * so that what was embedded is always known.  With every field
 * (--embed-fields picks a subset, by default all but path and kind;
 * absent fields leave no line):
 *
 *     <words of qualified_name>    (--embed-words name or name+all)
 *     <path>
 *     <kind> <qualified_name>      (only <qualified_name> without kind)
 *     <signature>
 *     <doc, at most CVL_EMBED_DOC_MAX_BYTES>
 *     <code, from its first line>
 *
 * --embed-words name puts the first line ("server new http server" for
 * server.NewHTTPServer); all writes every identifier of the other lines as
 * words (cvl_buf_append_words); name+all (the default) does both but keeps
 * the qualified_name line as is; bare is all without punctuation.  Then
 * the cut: to --embed-max-bytes (default CVL_EMBED_TEXT_MAX_BYTES, about
 * half the model's 256-token budget, see cvl.h) at a UTF-8 boundary, and
 * back to the last line end when one lies in the last quarter, so the
 * budget is in bytes of what is embedded.  Returns a malloc'd string.
 */
char *
cvl_embed_text_build(const char *path, const CvlSnippetData *s)
{
	CvlBufData	b;
	unsigned	f = Options.embed_fields;
	size_t		max = Options.embed_max_bytes;
	CvlEmbedWords w = Options.embed_words;
	bool		words = w == CVL_EMBED_WORDS_ALL || w == CVL_EMBED_WORDS_NAME_ALL ||
		w == CVL_EMBED_WORDS_BARE;
	bool		punct = w != CVL_EMBED_WORDS_BARE;

	cvl_buf_init(&b);
	if ((w == CVL_EMBED_WORDS_NAME || w == CVL_EMBED_WORDS_NAME_ALL) && (f & CVL_EMBED_NAME))
	{
		cvl_buf_append_words(&b, s->qualified_name, strlen(s->qualified_name), false, SIZE_MAX);
		cvl_buf_putc(&b, '\n');
	}
	if (f & CVL_EMBED_PATH)
	{
		AppendEmbedPiece(&b, path, strlen(path), words, punct, SIZE_MAX);
		cvl_buf_putc(&b, '\n');
	}
	if (f & CVL_EMBED_KIND)
	{
		cvl_buf_puts(&b, s->kind);
		cvl_buf_putc(&b, (f & CVL_EMBED_NAME) ? ' ' : '\n');
	}
	if (f & CVL_EMBED_NAME)
	{
		AppendEmbedPiece(&b, s->qualified_name, strlen(s->qualified_name),
						 words && w != CVL_EMBED_WORDS_NAME_ALL, punct, SIZE_MAX);
		cvl_buf_putc(&b, '\n');
	}
	if ((f & CVL_EMBED_SIGNATURE) && s->signature)
	{
		AppendEmbedPiece(&b, s->signature, strlen(s->signature), words, punct, SIZE_MAX);
		cvl_buf_putc(&b, '\n');
	}
	if ((f & CVL_EMBED_DOC) && s->doc)
	{
		size_t		n = strlen(s->doc);

		AppendEmbedPiece(&b, s->doc, cvl_utf8_cut(s->doc, n, CVL_EMBED_DOC_MAX_BYTES),
						 words, punct, SIZE_MAX);
		cvl_buf_putc(&b, '\n');
	}
	if ((f & CVL_EMBED_BODY) && s->code && b.len < max)
		AppendEmbedPiece(&b, s->code, strlen(s->code), words, punct, max + 8);
	if (b.len > max)
	{
		size_t		cut = cvl_utf8_cut(b.data, b.len, max);
		char	   *nl = memrchr(b.data, '\n', cut);

		if (nl && (size_t) (nl - b.data) > max * 3 / 4)
			cut = (size_t) (nl - b.data);
		b.len = cut;
		b.data[cut] = '\0';
	}
	while (b.len > 0 && isspace((unsigned char) b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	if (b.data == NULL)
		return cvl_strdup("");
	return cvl_buf_steal(&b);
}
