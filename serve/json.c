/*
 * json.c -- small helpers: rows as JSON objects over cJSON, UTF-8
 * validation, the clock and the log.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "serve.h"

/* PostgreSQL type OIDs (pg_type.dat) of the columns the statements return */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define FLOAT4OID 700
#define FLOAT8OID 701

/* Prints json compactly; malloc'd text (NULL when out of memory). */
char *
serve_json_print(const cJSON *json)
{
	return cJSON_PrintUnformatted(json);
}

/*
 * Converts row `row` of res to an object keyed by column name: integers
 * and floats as numbers, booleans as true/false, SQL NULL as null, every
 * other type as its text form.
 */
cJSON *
serve_json_row(const PGresult *res, int row)
{
	cJSON	   *obj = cJSON_CreateObject();

	for (int c = 0; c < PQnfields(res); c++)
	{
		const char *name = PQfname(res, c);
		const char *v = PQgetvalue(res, row, c);
		cJSON	   *item;

		if (PQgetisnull(res, row, c))
			item = cJSON_CreateNull();
		else
			switch (PQftype(res, c))
			{
				case INT2OID:
				case INT4OID:
				case INT8OID:
				case FLOAT4OID:
				case FLOAT8OID:
					/* cJSON keeps doubles; ids stay below 2^53 */
					item = cJSON_CreateNumber(strtod(v, NULL));
					break;
				case BOOLOID:
					item = cJSON_CreateBool(v[0] == 't');
					break;
				default:
					item = cJSON_CreateString(v);
			}
		cJSON_AddItemToObject(obj, name, item);
	}
	return obj;
}

/*
 * Checks that s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) without NUL bytes.
 */
bool
serve_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < n)
	{
		unsigned char c = p[i];
		int			len;
		unsigned	cp;

		if (c == 0)
			return false;
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			len = 2, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			len = 3, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			len = 4, cp = c & 0x07;
		else
			return false;
		if (i + len > n)
			return false;
		for (int j = 1; j < len; j++)
		{
			if ((p[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3F);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
			(cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* Milliseconds on the monotonic clock. */
double
serve_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Writes one line to stderr, prefixed with the UTC time (one write call). */
void
serve_log(const char *fmt,...)
{
	char		line[1024];
	struct timespec ts;
	struct tm	tm;
	int			n;
	va_list		ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n > (int) sizeof(line) - 2)
		n = (int) sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}
