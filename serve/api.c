/*
 * api.c -- the operations behind the JSON API and the MCP tools: search,
 * snippet (with its file's surrounding lines), similar code, repositories
 * and health.  Each checks its parameters (strings, as they come from a
 * URL), runs one prepared statement through the pool and answers a JSON
 * object or an error {"error": {"status", "message", "sqlstate"}}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "serve.h"

/* Sets out to an error reply: status, message and SQLSTATE ("" or NULL: none). */
void
serve_reply_error(ServeReplyData *out, int status, const char *sqlstate, const char *fmt,...)
{
	char		msg[600];
	va_list		ap;
	cJSON	   *err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out->status = status;
	out->body = cJSON_CreateObject();
	err = cJSON_AddObjectToObject(out->body, "error");
	cJSON_AddNumberToObject(err, "status", status);
	cJSON_AddStringToObject(err, "message", msg);
	if (sqlstate && sqlstate[0])
		cJSON_AddStringToObject(err, "sqlstate", sqlstate);
	else
		cJSON_AddNullToObject(err, "sqlstate");
}

/* Turns a failed statement into an error reply. */
static void
ReplyDbError(ServeReplyData *out, const ServeResultData *r)
{
	serve_reply_error(out, r->http_status, r->sqlstate, "%s", r->message);
}

/*
 * Parses an integer parameter in [lo, hi]; absent or empty -> def.
 * Returns false (and sets the error reply) when malformed or out of range.
 */
static bool
IntParam(ServeReplyData *out, const char *name, const char *s, long long lo, long long hi,
		 long long def, long long *v)
{
	char	   *end;

	if (!s || !*s)
	{
		*v = def;
		return true;
	}
	errno = 0;
	*v = strtoll(s, &end, 10);
	if (errno || *end || end == s || (*s != '-' && (*s < '0' || *s > '9')))
	{
		serve_reply_error(out, 400, "22023", "parameter %s must be an integer", name);
		return false;
	}
	if (*v < lo || *v > hi)
	{
		serve_reply_error(out, 400, "22023", "parameter %s must be between %lld and %lld, not %lld",
						  name, lo, hi, *v);
		return false;
	}
	return true;
}

/* Checks a text parameter: well-formed UTF-8 of at most max bytes. */
static bool
TextParam(ServeReplyData *out, const char *name, const char *s, size_t max)
{
	size_t		n;

	if (!s)
		return true;
	n = strlen(s);
	if (n > max)
	{
		serve_reply_error(out, 400, "22001", "parameter %s is longer than %zu bytes", name, max);
		return false;
	}
	if (!serve_utf8_valid(s, n))
	{
		serve_reply_error(out, 400, "22021", "parameter %s is not valid UTF-8", name);
		return false;
	}
	return true;
}

/* Parses a boolean parameter (true/false, 1/0, yes/no, on/off); absent: false. */
static bool
BoolParam(ServeReplyData *out, const char *name, const char *s, bool *v)
{
	*v = false;
	if (!s || !*s)
		return true;
	if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
		*v = true;
	else if (!(!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
			   !strcasecmp(s, "off")))
	{
		serve_reply_error(out, 400, "22023", "parameter %s must be true or false", name);
		return false;
	}
	return true;
}

/* an empty optional text parameter means "no filter" */
static const char *
NullIfEmpty(const char *s)
{
	return s && *s ? s : NULL;
}

/* The rows of res as a JSON array of objects. */
static cJSON *
Rows(const PGresult *res)
{
	cJSON	   *arr = cJSON_CreateArray();

	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(arr, serve_json_row(res, i));
	return arr;
}

static void
AddTimings(cJSON *obj, const ServeResultData *r, double t0)
{
	cJSON	   *t = cJSON_AddObjectToObject(obj, "timings");

	/* microsecond resolution is plenty */
	cJSON_AddNumberToObject(t, "wait_ms", round(r->wait_ms * 1e3) / 1e3);
	cJSON_AddNumberToObject(t, "db_ms", round(r->db_ms * 1e3) / 1e3);
	cJSON_AddNumberToObject(t, "total_ms", round((serve_now_ms() - t0) * 1e3) / 1e3);
}

/*
 * GET /api/search?q=&k=&mode=&lang=&path_like=&exclude_tests=
 * {"query", "k", "mode", "results": [code.search's rows + code (first 30
 * lines) and code_truncated], "timings": {wait_ms, db_ms, total_ms}}.
 * q is required (at most SERVE_MAX_QUERY_BYTES), k 1..SERVE_MAX_K
 * (default 10); mode is checked by code.search itself (SQLSTATE 22023).
 */
void
serve_api_search(ServePool pool, const ServeParamsData *p, ServeReplyData *out)
{
	double		t0 = serve_now_ms();
	long long	k;
	bool		excl;
	char		kbuf[24];
	const char *vals[6];
	const char *mode;
	ServeResultData r;

	if (!p->q)
	{
		serve_reply_error(out, 400, "22023", "missing parameter q (the query)");
		return;
	}
	if (!TextParam(out, "q", p->q, SERVE_MAX_QUERY_BYTES) ||
		!TextParam(out, "mode", p->mode, 64) ||
		!TextParam(out, "lang", p->lang, 64) ||
		!TextParam(out, "path_like", p->path_like, 1024) ||
		!IntParam(out, "k", p->k, 1, SERVE_MAX_K, 10, &k) ||
		!BoolParam(out, "exclude_tests", p->exclude_tests, &excl))
		return;
	snprintf(kbuf, sizeof(kbuf), "%lld", k);
	mode = p->mode && *p->mode ? p->mode : "hybrid";
	vals[0] = p->q;
	vals[1] = kbuf;
	vals[2] = NullIfEmpty(p->lang);
	vals[3] = NullIfEmpty(p->path_like);
	vals[4] = excl ? "true" : "false";
	vals[5] = mode;
	/* the statement of a known mode is planned once (pool.c) */
	if (strcmp(mode, "keyword") == 0)
		serve_pool_exec(pool, STMT_SEARCH_KEYWORD, 5, vals, &r);
	else if (strcmp(mode, "vector") == 0)
		serve_pool_exec(pool, STMT_SEARCH_VECTOR, 5, vals, &r);
	else if (strcmp(mode, "hybrid") == 0)
		serve_pool_exec(pool, STMT_SEARCH_HYBRID, 5, vals, &r);
	else
		serve_pool_exec(pool, STMT_SEARCH, 6, vals, &r);
	if (!r.res)
	{
		ReplyDbError(out, &r);
		return;
	}
	out->status = 200;
	out->body = cJSON_CreateObject();
	cJSON_AddStringToObject(out->body, "query", p->q);
	cJSON_AddNumberToObject(out->body, "k", k);
	cJSON_AddStringToObject(out->body, "mode", mode);
	cJSON_AddItemToObject(out->body, "results", Rows(r.res));
	AddTimings(out->body, &r, t0);
	serve_result_clear(&r);
}

/*
 * Reads file root/path if its sha256 is still `sha` and returns lines
 * [from, to] (1-based, clipped) as a string; otherwise NULL with *why set.
 */
static char *
FileLines(const char *root, const char *path, const char *sha, int from, int to,
		  int *first, const char **why)
{
	char		full[PATH_MAX];
	struct stat st;
	char	   *buf;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	char		hex[65];
	int			fd;
	ssize_t		got = 0;
	size_t		start = 0,
				end;
	int			line = 1;

	if (path[0] == '/' || strstr(path, "..") ||
		snprintf(full, sizeof(full), "%s/%s", root, path) >= (int) sizeof(full))
	{
		*why = "the file's path is not inside its repository";
		return NULL;
	}
	fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
	{
		if (fd >= 0)
			close(fd);
		*why = "the file cannot be read by the server";
		return NULL;
	}
	if (st.st_size > SERVE_MAX_FILE_BYTES || !(buf = malloc(st.st_size + 1)))
	{
		close(fd);
		*why = "the file is too large";
		return NULL;
	}
	while (got < st.st_size)
	{
		ssize_t		n = read(fd, buf + got, st.st_size - got);

		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	EVP_Digest(buf, got, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	if (got != st.st_size || !sha || strcmp(hex, sha) != 0)
	{
		free(buf);
		*why = "the file changed since it was loaded";
		return NULL;
	}
	/* find the byte range of lines from..to */
	if (from < 1)
		from = 1;
	for (size_t i = 0; i < (size_t) got && line < from; i++)
		if (buf[i] == '\n')
		{
			line++;
			start = i + 1;
		}
	*first = line;
	end = start;
	for (; end < (size_t) got; end++)
		if (buf[end] == '\n' && ++line > to)
			break;
	memmove(buf, buf + start, end - start);
	buf[end - start] = '\0';
	if (!serve_utf8_valid(buf, end - start))
	{
		free(buf);
		*why = "the file is not UTF-8";
		return NULL;
	}
	return buf;
}

/*
 * GET /api/snippet/{id}?context=N: the snippet's row (repo, path,
 * language, kind, symbol, qualified_name, signature, doc, start_line,
 * end_line, code) and "context": {"start_line", "end_line", "text"}, the
 * file's lines from start_line - N to end_line + N (N 0..200, default 5)
 * read from the repository on disk when it is unchanged (same sha256), or
 * null with "context_unavailable" saying why.  404 for an unknown id.
 */
void
serve_api_snippet(ServePool pool, const ServeParamsData *p, ServeReplyData *out)
{
	double		t0 = serve_now_ms();
	long long	id,
				ctx;
	char		idbuf[24];
	const char *vals[1];
	ServeResultData r;
	cJSON	   *row;
	int			start,
				end,
				first = 0;
	const char *why = NULL;
	char	   *text;

	if (!p->id || !*p->id)
	{
		serve_reply_error(out, 400, "22023", "missing snippet id");
		return;
	}
	if (!IntParam(out, "id", p->id, 1, INT64_MAX, 0, &id) ||
		!IntParam(out, "context", p->context, 0, SERVE_MAX_CONTEXT, 5, &ctx))
		return;
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	vals[0] = idbuf;
	serve_pool_exec(pool, STMT_SNIPPET, 1, vals, &r);
	if (!r.res)
	{
		ReplyDbError(out, &r);
		return;
	}
	if (PQntuples(r.res) == 0)
	{
		serve_result_clear(&r);
		serve_reply_error(out, 404, NULL, "no snippet with id %lld", id);
		return;
	}
	row = serve_json_row(r.res, 0);
	/* root, sha256 and bytes are for the server only */
	cJSON_DeleteItemFromObject(row, "root");
	cJSON_DeleteItemFromObject(row, "sha256");
	cJSON_DeleteItemFromObject(row, "bytes");
	start = atoi(PQgetvalue(r.res, 0, PQfnumber(r.res, "start_line")));
	end = atoi(PQgetvalue(r.res, 0, PQfnumber(r.res, "end_line")));
	text = FileLines(PQgetvalue(r.res, 0, PQfnumber(r.res, "root")),
					 PQgetvalue(r.res, 0, PQfnumber(r.res, "path")),
					 PQgetvalue(r.res, 0, PQfnumber(r.res, "sha256")),
					 start - (int) ctx, end + (int) ctx, &first, &why);
	if (text)
	{
		cJSON	   *c = cJSON_AddObjectToObject(row, "context");
		int			nl = 0;

		for (const char *s = text; *s; s++)
			nl += *s == '\n';
		cJSON_AddNumberToObject(c, "start_line", first);
		cJSON_AddNumberToObject(c, "end_line", first + nl);
		cJSON_AddStringToObject(c, "text", text);
		free(text);
	}
	else
	{
		cJSON_AddNullToObject(row, "context");
		cJSON_AddStringToObject(row, "context_unavailable", why);
	}
	AddTimings(row, &r, t0);
	out->status = 200;
	out->body = row;
	serve_result_clear(&r);
}

/*
 * GET /api/similar/{id}?k=: {"id", "k", "results": code.more_like_this's
 * rows (+ code, code_truncated), "timings"}.  k 1..SERVE_MAX_K, default 10.
 */
void
serve_api_similar(ServePool pool, const ServeParamsData *p, ServeReplyData *out)
{
	double		t0 = serve_now_ms();
	long long	id,
				k;
	char		idbuf[24],
				kbuf[24];
	const char *vals[2];
	ServeResultData r;

	if (!p->id || !*p->id)
	{
		serve_reply_error(out, 400, "22023", "missing snippet id");
		return;
	}
	if (!IntParam(out, "id", p->id, 1, INT64_MAX, 0, &id) ||
		!IntParam(out, "k", p->k, 1, SERVE_MAX_K, 10, &k))
		return;
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	snprintf(kbuf, sizeof(kbuf), "%lld", k);
	vals[0] = idbuf;
	vals[1] = kbuf;
	serve_pool_exec(pool, STMT_SIMILAR, 2, vals, &r);
	if (!r.res)
	{
		/* more_like_this says 22023 "no snippet with id": that is a 404 */
		if (strstr(r.message, "no snippet with id"))
			r.http_status = 404;
		ReplyDbError(out, &r);
		return;
	}
	out->status = 200;
	out->body = cJSON_CreateObject();
	cJSON_AddNumberToObject(out->body, "id", (double) id);
	cJSON_AddNumberToObject(out->body, "k", k);
	cJSON_AddItemToObject(out->body, "results", Rows(r.res));
	AddTimings(out->body, &r, t0);
	serve_result_clear(&r);
}

/*
 * GET /api/repos: {"repos": [{id, name, root, files, snippets}],
 * "languages": [{language, files}]}.
 */
void
serve_api_repos(ServePool pool, ServeReplyData *out)
{
	double		t0 = serve_now_ms();
	ServeResultData r,
				l;

	serve_pool_exec(pool, STMT_REPOS, 0, NULL, &r);
	if (!r.res)
	{
		ReplyDbError(out, &r);
		return;
	}
	serve_pool_exec(pool, STMT_LANGUAGES, 0, NULL, &l);
	if (!l.res)
	{
		serve_result_clear(&r);
		ReplyDbError(out, &l);
		return;
	}
	out->status = 200;
	out->body = cJSON_CreateObject();
	cJSON_AddItemToObject(out->body, "repos", Rows(r.res));
	cJSON_AddItemToObject(out->body, "languages", Rows(l.res));
	r.db_ms += l.db_ms;
	r.wait_ms += l.wait_ms;
	AddTimings(out->body, &r, t0);
	serve_result_clear(&r);
	serve_result_clear(&l);
}

/*
 * GET /healthz: 200 {"status": "ok", "database": "ok"} when the database
 * answers and has code.search; 503 with the reason otherwise.
 */
void
serve_api_health(ServePool pool, ServeReplyData *out)
{
	ServeResultData r;

	serve_pool_exec(pool, STMT_HEALTH, 0, NULL, &r);
	if (!r.res)
	{
		ReplyDbError(out, &r);
		return;
	}
	out->status = 200;
	out->body = cJSON_CreateObject();
	cJSON_AddStringToObject(out->body, "status", "ok");
	cJSON_AddStringToObject(out->body, "database", "ok");
	cJSON_AddStringToObject(out->body, "version", SERVE_VERSION);
	serve_result_clear(&r);
}
