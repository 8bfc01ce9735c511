/*
 * fuzz_loader_text.c -- libFuzzer harness for codevec-load's text handling:
 * decoding (loaders/encoding.c: BOMs, declared encodings, U+FFFD for stray
 * bytes), cutting on character boundaries, and the texts that extraction
 * builds from the decoded source (signature, doc, embed_text).
 *
 * Input: byte 0 picks the language (bits 0-1 and 7: Python, C, JavaScript,
 * Go, C++, TypeScript, Rust, Java; TypeScript with byte 1 odd is TSX), the
 * --embed-words mode (bits 2-5) and --strip-docs (bit 6), byte 1 the
 * --embed-max-bytes (1..1021), the rest is the file.  Oracles, each independent of the code under test:
 *   - a decoded text is well-formed UTF-8 by RefValid() (code point
 *     arithmetic, not the loader's byte-range table), has no NUL and is not
 *     empty;
 *   - a file without a BOM or a declared encoding decodes to exactly
 *     RefRepair(input): every maximal subpart (a longest prefix of a
 *     well-formed sequence, found by the range of code points its
 *     completions can reach) replaced by U+FFFD;
 *   - cvl_utf8_cut() returns the largest boundary at or below each limit;
 *   - every snippet field is well-formed UTF-8, a signature is at most 400
 *     bytes and embed_text at most --embed-max-bytes.
 * Any violation aborts (a finding).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvl.h"

#define CHECK(cond, what) \
	do { if (!(cond)) { fprintf(stderr, "fuzz_loader_text: %s\n", what); abort(); } } while (0)

/* Decode the code point at p[0..n): its length, or 0 if ill-formed. */
static size_t
RefDecode(const unsigned char *p, size_t n)
{
	size_t		len;
	uint32_t	cp;

	if (p[0] < 0x80)
		return 1;
	else if ((p[0] & 0xE0) == 0xC0)
		len = 2, cp = p[0] & 0x1F;
	else if ((p[0] & 0xF0) == 0xE0)
		len = 3, cp = p[0] & 0x0F;
	else if ((p[0] & 0xF8) == 0xF0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++)
	{
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3F);
	}
	static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};

	if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* Is s[0..n) well-formed UTF-8 (by RefDecode)? */
static bool
RefValid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;

	for (size_t i = 0; i < n;)
	{
		size_t		len = RefDecode(p + i, n - i);

		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/*
 * Can the k bytes at p begin a well-formed sequence?  The completions of a
 * prefix reach a contiguous range of code points (fill with 80 for the
 * least, BF for the greatest); the prefix is viable when that range meets
 * the scalar values of its length.
 */
static bool
RefViablePrefix(const unsigned char *p, size_t k)
{
	size_t		len;
	uint32_t	lo,
				hi;

	if ((p[0] & 0xE0) == 0xC0)
		len = 2, lo = hi = p[0] & 0x1F;
	else if ((p[0] & 0xF0) == 0xE0)
		len = 3, lo = hi = p[0] & 0x0F;
	else if ((p[0] & 0xF8) == 0xF0)
		len = 4, lo = hi = p[0] & 0x07;
	else
		return false;
	if (k >= len)
		return false;
	for (size_t i = 1; i < len; i++)
	{
		if (i < k)
		{
			if ((p[i] & 0xC0) != 0x80)
				return false;
			lo = (lo << 6) | (p[i] & 0x3F);
			hi = (hi << 6) | (p[i] & 0x3F);
		}
		else
		{
			lo = lo << 6;
			hi = (hi << 6) | 0x3F;
		}
	}
	static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
	uint32_t	a = lo > least[len] ? lo : least[len];
	uint32_t	b = hi < 0x10FFFF ? hi : 0x10FFFF;

	if (a > b)
		return false;
	/* all that is left are surrogates? */
	return !(a >= 0xD800 && b <= 0xDFFF);
}

/* Reference replacement: maximal subparts become U+FFFD. */
static void
RefRepair(const char *s, size_t n, CvlBuf out)
{
	const unsigned char *p = (const unsigned char *) s;

	for (size_t i = 0; i < n;)
	{
		size_t		len = RefDecode(p + i, n - i);

		if (len)
		{
			cvl_buf_append(out, s + i, len);
			i += len;
			continue;
		}
		size_t		k = 1;

		while (k < 3 && i + k < n && RefViablePrefix(p + i, k + 1))
			k++;
		cvl_buf_append(out, "\xEF\xBF\xBD", 3);
		i += k;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *langs[] = {"python", "c", "javascript", "go",
	"cpp", "typescript", "rust", "java", "tsx"};
	static const char *paths[] = {"pkg/fuzz.py", "fuzz.c", "fuzz.js", "fuzz.go",
	"src/fuzz.cpp", "fuzz.ts", "src/fuzz.rs", "org/fuzz/Fuzz.java", "fuzz.tsx"};
	static TSParser *parser;

	if (size < 2)
		return 0;
	int			which = (data[0] & 3) | ((data[0] & 0x80) >> 5);

	if (which == 5 && (data[1] & 1))
		which = 8;				/* TSX */
	CvlExtractOptions options = {
		.strip_docs = (data[0] & 0x40) != 0,
		.embed_fields = CVL_EMBED_DEFAULT_FIELDS,
		.embed_max_bytes = 1 + (size_t) data[1] * 4,
		.embed_words = (CvlEmbedWords) ((data[0] >> 2) % 5),
	};
	const char *src = (const char *) data + 2;
	size_t		n = size - 2;
	bool		python = which == 0;
	char	   *text;
	size_t		len;
	char		enc[CVL_ENCODING_NAME_MAX];
	int64_t		replaced;
	CvlFileStatus st;

	st = cvl_source_decode(src, n, python, &text, &len, enc, &replaced);
	if (st != CVL_FILE_PENDING)
	{
		CHECK(st == CVL_FILE_EMPTY || st == CVL_FILE_BINARY || st == CVL_FILE_ENCODING,
			  "unexpected decode status");
		CHECK(text == NULL, "text returned with a skip");
		return 0;
	}
	CHECK(len > 0 && RefValid(text, len), "decoded text is not well-formed UTF-8");
	CHECK(memchr(text, '\0', len) == NULL, "decoded text has a NUL");

	/* no BOM and nothing declared: exactly the reference replacement */
	const unsigned char *u = (const unsigned char *) src;
	bool		bom = n >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF) ||
								 (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) ||
								 (n >= 4 && u[0] == 0 && u[1] == 0 && u[2] == 0xFE && u[3] == 0xFF));
	char		name[64];

	if (!bom && !cvl_encoding_declared(src, n, python, name, sizeof(name)))
	{
		CvlBufData	ref;

		cvl_buf_init(&ref);
		RefRepair(src, n, &ref);
		CHECK(ref.len == len && memcmp(ref.data, text, len) == 0,
			  "replacement differs from the maximal-subpart reference");
		CHECK((replaced == 0) == (ref.len == n && memcmp(ref.data, src, n) == 0),
			  "replacement count");
		cvl_buf_free(&ref);
	}

	/* cuts: the largest boundary at or below each limit */
	for (size_t m = 0; m <= len + 1; m += 1 + m / 8)
	{
		size_t		c = cvl_utf8_cut(text, len, m);

		if (len <= m)
		{
			CHECK(c == len, "a text within the limit was cut");
			continue;
		}
		CHECK(c <= m, "cut longer than its limit");
		CHECK(RefValid(text, c), "cut splits a character");
		for (size_t q = c + 1; q <= m; q++)		/* no boundary in (c, m] */
			CHECK((text[q] & 0xC0) == 0x80, "cut is not the largest boundary");
	}

	/* extraction: every field well-formed, bounded */
	CvlFileData file;

	memset(&file, 0, sizeof(file));
	file.path = (char *) paths[which];
	file.language = cvl_language_named(langs[which]);
	cvl_extract_configure(&options);
	if (parser == NULL)
	{
		parser = ts_parser_new();
		ts_parser_set_timeout_micros(parser, 2 * 1000 * 1000);
	}
	ts_parser_set_language(parser, file.language->grammar());
	TSTree	   *tree = ts_parser_parse_string(parser, NULL, text, (uint32_t) len);

	if (tree)
	{
		cvl_snippets_extract(&file, tree, text, len);
		ts_tree_delete(tree);
	}
	else
		ts_parser_reset(parser);
	for (int i = 0; i < file.nsnippets; i++)
	{
		CvlSnippet	s = &file.snippets[i];
		const char *fields[] = {s->symbol, s->qualified_name, s->signature, s->doc,
		s->code, s->embed_text};

		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			CHECK(fields[f] == NULL || RefValid(fields[f], strlen(fields[f])),
				  "a snippet field is not well-formed UTF-8");
		CHECK(s->signature == NULL || strlen(s->signature) <= 400, "signature over 400 bytes");
		CHECK(strlen(s->embed_text) <= options.embed_max_bytes, "embed_text over its limit");
	}
	cvl_file_clear_snippets(&file);
	if (text != src)
		free(text);
	return 0;
}
