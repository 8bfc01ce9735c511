/*
 * util.c -- growable buffers, a string map, hashing, JSON and COPY text
 * escaping, identifier splitting for the tsvector (UTF-8: encoding.c).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "cvl.h"

/* Allocate size bytes or exit with CVL_EXIT_INTERNAL: no caller can recover. */
void *
cvl_malloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "codevec-load: out of memory\n");
		exit(CVL_EXIT_INTERNAL);
	}
	return p;
}

/* Resize ptr to size bytes or exit with CVL_EXIT_INTERNAL. */
void *
cvl_realloc(void *ptr, size_t size)
{
	void	   *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "codevec-load: out of memory\n");
		exit(CVL_EXIT_INTERNAL);
	}
	return p;
}

/* Copy a NUL-terminated string. */
char *
cvl_strdup(const char *s)
{
	return cvl_strndup(s, strlen(s));
}

/* Copy n bytes of s into a new NUL-terminated string. */
char *
cvl_strndup(const char *s, size_t n)
{
	char	   *p = cvl_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Initialise an empty buffer (no allocation until the first append). */
void
cvl_buf_init(CvlBuf buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

/* Empty the buffer, keeping its memory. */
void
cvl_buf_reset(CvlBuf buf)
{
	buf->len = 0;
	if (buf->cap)
		buf->data[0] = '\0';
}

/* Release the buffer's memory. */
void
cvl_buf_free(CvlBuf buf)
{
	free(buf->data);
	cvl_buf_init(buf);
}

/* Make room for n more bytes plus the terminating NUL. */
void
cvl_buf_reserve(CvlBuf buf, size_t n)
{
	if (buf->len + n + 1 <= buf->cap)
		return;
	size_t		cap = buf->cap ? buf->cap : 64;

	while (cap < buf->len + n + 1)
		cap *= 2;
	buf->data = cvl_realloc(buf->data, cap);
	buf->cap = cap;
}

/* Append n bytes of s. */
void
cvl_buf_append(CvlBuf buf, const char *s, size_t n)
{
	cvl_buf_reserve(buf, n);
	memcpy(buf->data + buf->len, s, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
}

/* Append a NUL-terminated string. */
void
cvl_buf_puts(CvlBuf buf, const char *s)
{
	cvl_buf_append(buf, s, strlen(s));
}

/* Append one byte. */
void
cvl_buf_putc(CvlBuf buf, char c)
{
	cvl_buf_reserve(buf, 1);
	buf->data[buf->len++] = c;
	buf->data[buf->len] = '\0';
}

/* Append printf-formatted text. */
void
cvl_buf_printf(CvlBuf buf, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	cvl_buf_reserve(buf, (size_t) n);
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t) n;
}

/* Hand the buffer's string to the caller (never NULL) and reset it. */
char *
cvl_buf_steal(CvlBuf buf)
{
	char	   *s = buf->data ? buf->data : cvl_strdup("");

	cvl_buf_init(buf);
	return s;
}

/* Append s as a JSON string literal, quotes included (s is valid UTF-8). */
void
cvl_buf_append_json(CvlBuf buf, const char *s)
{
	if (s == NULL)
	{
		cvl_buf_puts(buf, "null");
		return;
	}
	cvl_buf_putc(buf, '"');
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		switch (*p)
		{
			case '"':
				cvl_buf_puts(buf, "\\\"");
				break;
			case '\\':
				cvl_buf_puts(buf, "\\\\");
				break;
			case '\n':
				cvl_buf_puts(buf, "\\n");
				break;
			case '\r':
				cvl_buf_puts(buf, "\\r");
				break;
			case '\t':
				cvl_buf_puts(buf, "\\t");
				break;
			default:
				if (*p < 0x20)
					cvl_buf_printf(buf, "\\u%04x", *p);
				else
					cvl_buf_putc(buf, (char) *p);
		}
	}
	cvl_buf_putc(buf, '"');
}

/* Append s as one COPY text-format field; NULL becomes \N. */
void
cvl_buf_append_copy(CvlBuf buf, const char *s)
{
	if (s == NULL)
	{
		cvl_buf_puts(buf, "\\N");
		return;
	}
	const char *run = s;

	for (const char *p = s;; p++)
	{
		char		c = *p;
		const char *esc = NULL;

		switch (c)
		{
			case '\\':
				esc = "\\\\";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '\0':
				break;
			default:
				continue;
		}
		cvl_buf_append(buf, run, (size_t) (p - run));
		if (c == '\0')
			break;
		cvl_buf_puts(buf, esc);
		run = p + 1;
	}
}

/* Is c part of an identifier (ASCII letters, digits, underscore)? */
static inline bool
IsIdentChar(unsigned char c)
{
	return isalnum(c) || c == '_';
}

/*
 * Append the words of s for to_tsvector('simple', ...): every identifier
 * whole, then, when it has several parts, each part of its snake_case and
 * camelCase split ("parseHTTPConfig_file" -> "parseHTTPConfig_file parse
 * HTTP Config file").  Other characters become single spaces.
 */
void
cvl_buf_append_identifiers(CvlBuf buf, const char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		unsigned char c = (unsigned char) s[i];

		if (!IsIdentChar(c) && c < 0x80)
		{
			i++;
			continue;
		}
		size_t		start = i;

		if (c >= 0x80)
		{
			/* non-ASCII word: copy as is, the text parser handles it */
			while (i < n && ((unsigned char) s[i] >= 0x80 || IsIdentChar((unsigned char) s[i])))
				i++;
			cvl_buf_append(buf, s + start, i - start);
			cvl_buf_putc(buf, ' ');
			continue;
		}
		while (i < n && IsIdentChar((unsigned char) s[i]))
			i++;
		cvl_buf_append(buf, s + start, i - start);
		cvl_buf_putc(buf, ' ');

		/* split into parts at '_' and lower->Upper / UPPER->Upper+lower */
		size_t		mark = buf->len;
		int			parts = 0;
		size_t		p = start;

		while (p < i)
		{
			while (p < i && s[p] == '_')
				p++;
			if (p >= i)
				break;
			size_t		q = p + 1;

			while (q < i && s[q] != '_')
			{
				unsigned char prev = (unsigned char) s[q - 1];
				unsigned char cur = (unsigned char) s[q];
				unsigned char next = q + 1 < i ? (unsigned char) s[q + 1] : 0;

				if (isupper(cur) && (islower(prev) || isdigit(prev)))
					break;
				if (isupper(cur) && isupper(prev) && islower(next))
					break;
				q++;
			}
			cvl_buf_append(buf, s + p, q - p);
			cvl_buf_putc(buf, ' ');
			parts++;
			p = q;
		}
		if (parts < 2)
		{
			/* one part: the whole identifier already says it */
			buf->len = mark;
			buf->data[buf->len] = '\0';
		}
	}
}

/* Write the hex SHA-256 of data into out (64 digits and a NUL). */
void
cvl_sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";

	EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++)
	{
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* Return a monotonic clock in seconds. */
double
cvl_clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Return the calling thread's CPU time in seconds. */
double
cvl_clock_thread(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---------- string map: open addressing, FNV-1a ---------- */

typedef struct CvlMapEntry
{
	char	   *key;
	char	   *value;
} CvlMapEntry;

struct CvlMapData
{
	CvlMapEntry *slots;
	size_t		cap;			/* power of two */
	size_t		count;
};

/* Hash a string with FNV-1a. */
static uint64_t
MapHash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

/* Create an empty map. */
CvlMap
cvl_map_new(void)
{
	CvlMap		map = cvl_malloc(sizeof(*map));

	map->cap = 1024;
	map->count = 0;
	map->slots = calloc(map->cap, sizeof(CvlMapEntry));
	if (map->slots == NULL)
		cvl_malloc((size_t) -1);
	return map;
}

/* Free the map and its strings. */
void
cvl_map_delete(CvlMap map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->cap; i++)
	{
		free(map->slots[i].key);
		free(map->slots[i].value);
	}
	free(map->slots);
	free(map);
}

/* Find the slot for key: its entry or the empty slot where it would go. */
static CvlMapEntry *
MapFind(CvlMapEntry *slots, size_t cap, const char *key)
{
	size_t		i = MapHash(key) & (cap - 1);

	while (slots[i].key && strcmp(slots[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Set key to value (both copied), replacing an older value. */
void
cvl_map_put(CvlMap map, const char *key, const char *value)
{
	if ((map->count + 1) * 2 > map->cap)
	{
		size_t		cap = map->cap * 2;
		CvlMapEntry *slots = calloc(cap, sizeof(CvlMapEntry));

		if (slots == NULL)
			cvl_malloc((size_t) -1);
		for (size_t i = 0; i < map->cap; i++)
			if (map->slots[i].key)
				*MapFind(slots, cap, map->slots[i].key) = map->slots[i];
		free(map->slots);
		map->slots = slots;
		map->cap = cap;
	}
	CvlMapEntry *e = MapFind(map->slots, map->cap, key);

	if (e->key)
		free(e->value);
	else
	{
		e->key = cvl_strdup(key);
		map->count++;
	}
	e->value = cvl_strdup(value);
}

/* Return the value for key, or NULL. */
const char *
cvl_map_get(CvlMap map, const char *key)
{
	CvlMapEntry *e = MapFind(map->slots, map->cap, key);

	return e->key ? e->value : NULL;
}

/* Return the number of keys. */
size_t
cvl_map_count(CvlMap map)
{
	return map->count;
}

/* Call fn for every entry, in no particular order. */
void
cvl_map_foreach(CvlMap map, CvlMapFn fn, void *arg)
{
	for (size_t i = 0; i < map->cap; i++)
		if (map->slots[i].key)
			fn(map->slots[i].key, map->slots[i].value, arg);
}
