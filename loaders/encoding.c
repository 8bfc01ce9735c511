/*
 * encoding.c -- source bytes -> the UTF-8 text that gets parsed and stored.
 *
 * Files are read as Python and editors read them, in this order:
 *
 *   1. A byte order mark decides: UTF-32 (LE, BE) and UTF-16 (LE, BE) are
 *      decoded with glibc iconv; a UTF-8 BOM (EF BB BF) is dropped.
 *   2. Without a UTF-16/32 BOM, a NUL byte makes the file `binary`.
 *   3. A declared encoding: for Python the PEP 263 rule exactly as
 *      tokenize.detect_encoding() applies it (a comment matching
 *      `^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)` on line 1, or on line 2 when
 *      line 1 is blank or only a comment; a UTF-8 BOM with another declared
 *      encoding is an error); for the other languages the Emacs cookie
 *      `-*- coding: NAME -*-` (also `-*- mode: c; coding: NAME -*-`) on
 *      line 1, or line 2 when line 1 is a `#!` line (an end-of-line suffix
 *      such as `-unix` dropped).  A declared encoding other than UTF-8 is
 *      decoded with iconv; an unknown name, bytes the encoding cannot
 *      decode, or a UTF-8 BOM in front of another declared encoding skip the
 *      file with the reason `encoding` (Python refuses such a file too).
 *   4. Otherwise the text is UTF-8.  Stray invalid bytes do not skip the
 *      file: each maximal ill-formed subsequence (Unicode 15, section 3.9,
 *      "U+FFFD Substitution of Maximal Subparts", which is also what
 *      Python's bytes.decode('utf-8', 'replace') does) becomes one U+FFFD,
 *      and the replacements are counted and reported.
 *   5. The decoded text may not contain NUL (`binary`) or be empty.
 *
 * Line numbers are unchanged by every step (each decoder maps a newline to
 * a newline); the SHA-256 and byte count of a file stay those of its bytes
 * on disk, so change detection does not depend on this file.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cvl.h"

/* ---------- UTF-8 ---------- */

/*
 * Length of the well-formed UTF-8 character at p[0..n), or 0 when there is
 * none; then *bad is the length of its maximal subpart (1..3 bytes: the
 * lead byte and the continuation bytes that could still have been part of
 * a well-formed character), the bytes that one U+FFFD replaces.  Table 3-7
 * of the Unicode standard: no overlongs, no surrogates, nothing above
 * U+10FFFF.
 */
static inline size_t
Utf8Sequence(const unsigned char *p, size_t n, size_t *bad)
{
	unsigned char c = p[0];
	size_t		len;
	unsigned char lo = 0x80,
				hi = 0xBF;		/* range of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	else
	{
		*bad = 1;
		return 0;
	}
	for (size_t k = 1; k < len; k++)
	{
		if (k >= n || p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xBF))
		{
			*bad = k;
			return 0;
		}
	}
	return len;
}

/* Is s[0..n) well-formed UTF-8 (no overlongs, no surrogates)? */
bool
cvl_utf8_is_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;
	size_t		bad;

	while (i < n)
	{
		/* ASCII runs eight bytes at a time: most source is ASCII */
		while (i + 8 <= n)
		{
			uint64_t	w;

			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (p[i] < 0x80)
		{
			i++;
			continue;
		}
		size_t		len = Utf8Sequence(p + i, n - i, &bad);

		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/*
 * Copy s[0..n) into out with every maximal ill-formed subsequence replaced
 * by U+FFFD (EF BF BD), as Python's bytes.decode('utf-8', 'replace') does.
 * Returns the number of replacements.
 */
int64_t
cvl_utf8_repair(const char *s, size_t n, CvlBuf out)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0,
				run = 0;
	int64_t		replaced = 0;
	size_t		bad;

	while (i < n)
	{
		size_t		len = Utf8Sequence(p + i, n - i, &bad);

		if (len > 0)
		{
			i += len;
			continue;
		}
		cvl_buf_append(out, s + run, i - run);
		cvl_buf_append(out, "\xEF\xBF\xBD", 3);
		replaced++;
		i += bad;
		run = i;
	}
	cvl_buf_append(out, s + run, n - run);
	return replaced;
}

/*
 * Return the largest length <= max that does not split a UTF-8 character
 * of s[0..n) (s well-formed).  A character is at most 4 bytes, so at most
 * 3 bytes are given back.
 */
size_t
cvl_utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	for (int k = 0; k < 3 && max > 0 && ((unsigned char) s[max] & 0xC0) == 0x80; k++)
		max--;
	return max;
}

/* ---------- declared encodings ---------- */

/* Return the end of the line starting at s[off] (its '\n' or n). */
static size_t
LineEnd(const char *s, size_t n, size_t off)
{
	const char *nl = off < n ? memchr(s + off, '\n', n - off) : NULL;

	return nl ? (size_t) (nl - s) : n;
}

/* Is c a character of an encoding name ([-\w.] in ASCII)? */
static inline bool
IsNameChar(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.';
}

/*
 * Find "coding" followed by one of `seps`, optional blanks and a name in
 * s[a..b); copy the name into name (at most size-1 bytes).  The first
 * occurrence that matches wins (the non-greedy `.*?` of PEP 263's regex).
 */
static bool
FindCoding(const char *s, size_t a, size_t b, const char *seps,
		   char *name, size_t size)
{
	for (size_t i = a; i + 6 < b; i++)
	{
		if (memcmp(s + i, "coding", 6) != 0 || strchr(seps, s[i + 6]) == NULL ||
			s[i + 6] == '\0')
			continue;
		size_t		j = i + 7;

		while (j < b && (s[j] == ' ' || s[j] == '\t'))
			j++;
		size_t		k = j;

		while (k < b && IsNameChar((unsigned char) s[k]))
			k++;
		if (k == j)
			continue;
		size_t		len = k - j < size - 1 ? k - j : size - 1;

		memcpy(name, s + j, len);
		name[len] = '\0';
		return true;
	}
	return false;
}

/* PEP 263's cookie_re on one line: [ \t\f]* '#' .*? coding[:=] ... */
static bool
PythonCookie(const char *s, size_t a, size_t b, char *name, size_t size)
{
	while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\f'))
		a++;
	if (a >= b || s[a] != '#')
		return false;
	return FindCoding(s, a + 1, b, ":=", name, size);
}

/* PEP 263's blank_re: a line that is blank or only a comment. */
static bool
PythonBlankOrComment(const char *s, size_t a, size_t b)
{
	while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\f'))
		a++;
	return a >= b || s[a] == '#' || s[a] == '\r' || s[a] == '\n';
}

/* The Emacs cookie on one line: "-*-" ... "coding:" NAME ... "-*-". */
static bool
EmacsCookie(const char *s, size_t a, size_t b, char *name, size_t size)
{
	const char *open = memmem(s + a, b - a, "-*-", 3);

	if (open == NULL)
		return false;
	size_t		from = (size_t) (open - s) + 3;
	const char *close = memmem(s + from, b - from, "-*-", 3);

	if (close == NULL)
		return false;
	return FindCoding(s, from, (size_t) (close - s), ":", name, size);
}

/*
 * Python's tokenize._get_normal_name(): the first 12 characters lower-cased
 * with '_' as '-'; "utf-8" and "utf-8-*" are "utf-8", "latin-1",
 * "iso-8859-1", "iso-latin-1" and those followed by "-*" are "iso-8859-1";
 * anything else stays as it was written.
 */
static void
PythonNormalName(char *name, size_t size)
{
	char		n[13];
	size_t		i;
	static const char *latin1[] = {"latin-1", "iso-8859-1", "iso-latin-1"};

	for (i = 0; name[i] && i < 12; i++)
		n[i] = name[i] == '_' ? '-' : (char) tolower((unsigned char) name[i]);
	n[i] = '\0';
	if (strcmp(n, "utf-8") == 0 || strncmp(n, "utf-8-", 6) == 0)
	{
		snprintf(name, size, "utf-8");
		return;
	}
	for (size_t k = 0; k < 3; k++)
	{
		size_t		l = strlen(latin1[k]);

		if (strcmp(n, latin1[k]) == 0 || (strncmp(n, latin1[k], l) == 0 && n[l] == '-'))
		{
			snprintf(name, size, "iso-8859-1");
			return;
		}
	}
}

/* Drop an Emacs end-of-line suffix: "latin-1-unix" is "latin-1". */
static void
EmacsStripEol(char *name)
{
	static const char *eol[] = {"-unix", "-dos", "-mac"};
	size_t		n = strlen(name);

	for (size_t k = 0; k < 3; k++)
	{
		size_t		l = strlen(eol[k]);

		if (n > l && strcasecmp(name + n - l, eol[k]) == 0)
		{
			name[n - l] = '\0';
			return;
		}
	}
}

/*
 * Find the encoding declared in the first lines of s[0..n), by the rule of
 * the file's language (see the top of this file), its name normalised as
 * Python (PythonNormalName) or Emacs (EmacsStripEol) would.  Returns false
 * when none is declared.
 */
bool
cvl_encoding_declared(const char *s, size_t n, bool python, char *name, size_t size)
{
	size_t		e1 = LineEnd(s, n, 0);
	size_t		e2 = e1 < n ? LineEnd(s, n, e1 + 1) : n;

	bool		found;

	if (python)
	{
		found = PythonCookie(s, 0, e1, name, size) ||
			(e1 < n && PythonBlankOrComment(s, 0, e1) &&
			 PythonCookie(s, e1 + 1, e2, name, size));
		if (found)
			PythonNormalName(name, size);
		return found;
	}
	found = EmacsCookie(s, 0, e1, name, size) ||
		(e1 < n && n >= 2 && s[0] == '#' && s[1] == '!' &&
		 EmacsCookie(s, e1 + 1, e2, name, size));
	if (found)
		EmacsStripEol(name);
	return found;
}

/*
 * Is a declared name UTF-8?  Python's rule (tokenize._get_normal_name:
 * "utf-8" and "utf-8-*" after lower-casing and '_' -> '-') plus the other
 * names Python's codec registry gives its utf_8 codec.
 */
static bool
NameIsUtf8(const char *name)
{
	char		n[16];
	size_t		i;

	for (i = 0; name[i] && i < sizeof(n) - 1; i++)
		n[i] = name[i] == '_' ? '-' : (char) tolower((unsigned char) name[i]);
	n[i] = '\0';
	return strcmp(n, "utf-8") == 0 || strncmp(n, "utf-8-", 6) == 0 ||
		strcmp(n, "utf8") == 0 || strcmp(n, "u8") == 0 ||
		strcmp(n, "utf") == 0 || strcmp(n, "cp65001") == 0;
}

/*
 * Open an iconv converter from a Python/Emacs encoding name to UTF-8.
 * glibc spells some names differently ("latin1" for Python's "latin-1",
 * "EUC-JP" for "euc_jp"), so a few spellings are tried.  Returns
 * (iconv_t) -1 when glibc knows none of them.
 */
static iconv_t
OpenDecoder(const char *name)
{
	static const struct
	{
		const char *python;
		const char *glibc;
	}			aliases[] = {
		{"iso-latin-1", "ISO-8859-1"}, {"mac-roman", "MACINTOSH"},
		{"macroman", "MACINTOSH"}, {"mac-latin2", "MAC-CENTRALEUROPE"},
		{"iso2022-jp", "ISO-2022-JP"}, {"iso2022-kr", "ISO-2022-KR"},
		{"hz", "HZ-GB-2312"},
	};
	char		dash[64],
				bare[64];
	size_t		i,
				j = 0;
	iconv_t		cd = iconv_open("UTF-8", name);

	if (cd != (iconv_t) -1)
		return cd;
	for (i = 0; name[i] && i < sizeof(dash) - 1; i++)
	{
		dash[i] = name[i] == '_' ? '-' : (char) tolower((unsigned char) name[i]);
		if (name[i] != '_' && name[i] != '-')
			bare[j++] = dash[i];
	}
	dash[i] = '\0';
	bare[j] = '\0';
	for (size_t k = 0; k < sizeof(aliases) / sizeof(aliases[0]); k++)
		if (strcmp(dash, aliases[k].python) == 0)
			return iconv_open("UTF-8", aliases[k].glibc);
	cd = iconv_open("UTF-8", dash);
	if (cd == (iconv_t) -1)
		cd = iconv_open("UTF-8", bare);
	return cd;
}

/*
 * Decode s[0..n) from `name` to UTF-8 into out with iconv.  Returns 0, or
 * -1 for an unknown encoding or bytes it cannot decode (an incomplete
 * sequence at the end included).
 */
static int
IconvDecode(const char *name, const char *s, size_t n, CvlBuf out)
{
	iconv_t		cd = OpenDecoder(name);
	char	   *in = (char *) s;
	size_t		inleft = n;
	int			rc = 0;

	if (cd == (iconv_t) -1)
		return -1;
	cvl_buf_reset(out);
	while (inleft > 0)
	{
		/* 4 output bytes per input byte are enough for any decoder */
		size_t		room = inleft * 4 + 16;

		cvl_buf_reserve(out, room);
		char	   *o = out->data + out->len;
		size_t		oleft = room;
		size_t		r = iconv(cd, &in, &inleft, &o, &oleft);

		out->len = (size_t) (o - out->data);
		if (r == (size_t) -1 && errno != E2BIG)
		{
			rc = -1;			/* EILSEQ, or EINVAL: cut off at the end */
			break;
		}
	}
	if (rc == 0)
	{
		/* flush a stateful encoding's shift state */
		char		tail[16];
		char	   *o = tail;
		size_t		oleft = sizeof(tail);

		if (iconv(cd, NULL, NULL, &o, &oleft) == (size_t) -1)
			rc = -1;
		else
			cvl_buf_append(out, tail, (size_t) (o - tail));
	}
	if (out->data)
		out->data[out->len] = '\0';
	iconv_close(cd);
	return rc;
}

/*
 * Turn a file's bytes into the UTF-8 text that is parsed (the rules at the
 * top of this file).  On success returns CVL_FILE_PENDING with the text in
 * *text / *textlen: src itself when it is already well-formed UTF-8 without
 * a BOM (nothing is copied), else a malloc'd copy that the caller frees
 * (text != src).  *encoding names what was decoded ("utf-8", "utf-8-bom",
 * "utf-16le", or the declared name, at most CVL_ENCODING_NAME_MAX bytes) and
 * *replaced counts U+FFFD replacements.  Otherwise returns CVL_FILE_EMPTY,
 * CVL_FILE_BINARY or CVL_FILE_ENCODING.
 */
CvlFileStatus
cvl_source_decode(const char *src, size_t len, bool python,
				  char **text, size_t *textlen,
				  char encoding[CVL_ENCODING_NAME_MAX], int64_t *replaced)
{
	const unsigned char *u = (const unsigned char *) src;
	const char *wide = NULL;
	size_t		bom = 0;
	char		declared[CVL_ENCODING_NAME_MAX];
	CvlBufData	out;

	*text = NULL;
	*textlen = 0;
	*replaced = 0;
	snprintf(encoding, CVL_ENCODING_NAME_MAX, "utf-8");
	if (len == 0)
		return CVL_FILE_EMPTY;
	if (len >= 4 && u[0] == 0xFF && u[1] == 0xFE && u[2] == 0 && u[3] == 0)
		wide = "UTF-32LE", bom = 4;
	else if (len >= 4 && u[0] == 0 && u[1] == 0 && u[2] == 0xFE && u[3] == 0xFF)
		wide = "UTF-32BE", bom = 4;
	else if (len >= 2 && u[0] == 0xFF && u[1] == 0xFE)
		wide = "UTF-16LE", bom = 2;
	else if (len >= 2 && u[0] == 0xFE && u[1] == 0xFF)
		wide = "UTF-16BE", bom = 2;
	cvl_buf_init(&out);
	if (wide)
	{
		for (int i = 0; wide[i]; i++)
			encoding[i] = (char) tolower((unsigned char) wide[i]);
		encoding[strlen(wide)] = '\0';
		if (IconvDecode(wide, src + bom, len - bom, &out) < 0)
		{
			cvl_buf_free(&out);
			return CVL_FILE_ENCODING;
		}
	}
	else
	{
		if (memchr(src, '\0', len) != NULL)
			return CVL_FILE_BINARY;
		if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
		{
			bom = 3;
			snprintf(encoding, CVL_ENCODING_NAME_MAX, "utf-8-bom");
		}
		bool		has_decl = cvl_encoding_declared(src + bom, len - bom, python,
													 declared, sizeof(declared));

		/*
		 * A BOM with another declared encoding: Python's "encoding problem:
		 * utf-8" (for Python, any name but the normalised "utf-8", so even
		 * "utf8"; for the others, any name that is not UTF-8)
		 */
		if (has_decl && bom &&
			(python ? strcmp(declared, "utf-8") != 0 : !NameIsUtf8(declared)))
		{
			snprintf(encoding, CVL_ENCODING_NAME_MAX, "%s", declared);
			return CVL_FILE_ENCODING;
		}
		if (has_decl && !NameIsUtf8(declared))
		{
			snprintf(encoding, CVL_ENCODING_NAME_MAX, "%s", declared);
			if (IconvDecode(declared, src + bom, len - bom, &out) < 0)
			{
				cvl_buf_free(&out);
				return CVL_FILE_ENCODING;
			}
		}
		else if (cvl_utf8_is_valid(src + bom, len - bom))
		{
			if (bom == 0)
			{
				*text = (char *) src;
				*textlen = len;
				return CVL_FILE_PENDING;
			}
			cvl_buf_append(&out, src + bom, len - bom);
		}
		else
			*replaced = cvl_utf8_repair(src + bom, len - bom, &out);
	}
	if (out.len == 0)
	{
		cvl_buf_free(&out);
		return CVL_FILE_EMPTY;
	}
	if (memchr(out.data, '\0', out.len) != NULL || !cvl_utf8_is_valid(out.data, out.len))
	{
		CvlFileStatus st = memchr(out.data, '\0', out.len) ? CVL_FILE_BINARY : CVL_FILE_ENCODING;

		cvl_buf_free(&out);
		return st;
	}
	*textlen = out.len;
	*text = cvl_buf_steal(&out);
	return CVL_FILE_PENDING;
}
