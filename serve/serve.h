/*
 * serve.h -- codevec-serve: the configuration, and the interface between
 * its files (one concern each):
 *
 *   main.c    command line, signals, the two run modes (HTTP, MCP stdio)
 *   http.c    libmicrohttpd: routing, limits, bearer token, access log
 *   api.c     the operations (search, snippet, similar, repos) as JSON,
 *             shared by the JSON API and the MCP tools
 *   mcp.c     MCP: JSON-RPC 2.0 messages, the tools, their schemas
 *   pool.c    libpq connection pool, prepared statements only
 *   static.c  the page's files: a fixed table, nothing else is served
 *   json.c    small helpers over cJSON
 *
 * No global state besides the configuration (ServeConfig, read-only after
 * start) and the pool it owns.
 */
#ifndef CODEVEC_SERVE_H
#define CODEVEC_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifndef SERVE_VERSION
#error "SERVE_VERSION comes from codevec.control's default_version (serve/Makefile)"
#endif

#define SERVE_DEFAULT_PORT 8377
#define SERVE_DEFAULT_POOL 4
#define SERVE_DEFAULT_THREADS 8
#define SERVE_DEFAULT_MAX_CONNECTIONS 512
#define SERVE_DEFAULT_IDLE_TIMEOUT 10	/* seconds a connection may sit idle */
#define SERVE_DEFAULT_QUERY_TIMEOUT 10000	/* ms: statement_timeout */
#define SERVE_DEFAULT_WAIT_TIMEOUT 5000 /* ms waiting for a free connection */
#define SERVE_DEFAULT_REQUEST_TIMEOUT 15000	/* ms: a request's whole deadline */
#define SERVE_DEFAULT_CONNECTION_TIME 300	/* s a connection may stay open */
#define SERVE_MAX_URI 16384			/* bytes of a request's path and query: 414 */
#define SERVE_MAX_HEADERS 16384		/* bytes of its header names and values: 431 */
#define SERVE_MHD_MEMORY (64 * 1024)	/* libmicrohttpd's per-connection buffer */
#define SERVE_SHUTDOWN_GRACE 15000	/* ms for running requests at SIGTERM */
#define SERVE_MAX_BODY (1024 * 1024)	/* bytes of a POST /mcp body */
#define SERVE_MAX_QUERY_BYTES 8192	/* bytes of a search query */
#define SERVE_MAX_K 100
#define SERVE_MAX_CONTEXT 200		/* lines around a snippet */
#define SERVE_MAX_FILE_BYTES (16 * 1024 * 1024)

typedef struct ServeConfigData
{
	const char *conninfo;		/* libpq connection string; PG* env apply */
	const char *listen;			/* address to bind, default 127.0.0.1 */
	int			port;
	const char *token;			/* bearer token or NULL */
	const char *static_dir;		/* the page's files */
	const char *hljs_dir;		/* Debian's highlight.js */
	int			pool_size;
	int			threads;
	int			max_connections;
	int			idle_timeout;	/* s */
	int			query_timeout;	/* ms */
	int			wait_timeout;	/* ms */
	int			request_timeout;	/* ms: wait + statement of one request */
	int			connection_time;	/* s: a connection is closed after this */
	bool		quiet;			/* no access log */
	bool		mcp_stdio;
	bool		no_warm_up;		/* open connections lazily, not warmed at start */
} ServeConfigData;
typedef const ServeConfigData *ServeConfig;

/* ---------------------------------------------------------------- pool.c */

/* the prepared statements every pooled connection has */
typedef enum ServeStmt
{
	STMT_SEARCH,				/* code.search with the mode as a parameter */
	STMT_SEARCH_KEYWORD,		/* ... with mode 'keyword' written in */
	STMT_SEARCH_VECTOR,			/* ... 'vector' */
	STMT_SEARCH_HYBRID,			/* ... 'hybrid' */
	STMT_SNIPPET,
	STMT_SIMILAR,
	STMT_REPOS,
	STMT_LANGUAGES,
	STMT_HEALTH,
	STMT_SET_TIMEOUT,			/* statement_timeout for a request's deadline */
	STMT_COUNT
} ServeStmt;

typedef struct ServePoolData *ServePool;
typedef struct pg_result PGresult;

/* the outcome of one statement: a result, or an error with its SQLSTATE */
typedef struct ServeResultData
{
	PGresult   *res;			/* PGRES_TUPLES_OK result, or NULL */
	int			http_status;	/* 200, or the status the error maps to */
	char		sqlstate[6];	/* "" when none applies */
	char		message[512];
	double		wait_ms;		/* waiting for a connection */
	double		db_ms;			/* the statement's round trip */
} ServeResultData;

ServePool	serve_pool_new(ServeConfig config);
void		serve_pool_delete(ServePool pool);
void		serve_pool_warm_up(ServePool pool);
void		serve_pool_exec(ServePool pool, ServeStmt stmt, int nparams,
							const char *const *values, ServeResultData *out);
void		serve_result_clear(ServeResultData *r);

/*
 * The deadline (serve_now_ms() clock) of the request the calling thread
 * handles, 0 for none: every serve_pool_exec of that request waits for a
 * connection and runs its statement within it (504, SQLSTATE 57014, when
 * it is reached).  Per thread: a request runs on one thread.
 */
void		serve_deadline_set(double deadline_ms);

/* ---------------------------------------------------------------- api.c */

/*
 * An operation's answer: a JSON object (body) with HTTP status 200, or an
 * error (status >= 400, body = {"error": {...}}).  tool_error tells MCP
 * whether the error is the caller's or the database's (a tool error) or
 * the server's own.
 */
typedef struct ServeReplyData
{
	int			status;
	cJSON	   *body;
} ServeReplyData;

/* parameters, as strings from a URL or converted from MCP arguments */
typedef struct ServeParamsData
{
	const char *q;
	const char *k;
	const char *mode;
	const char *lang;
	const char *path_like;
	const char *exclude_tests;
	const char *context;
	const char *id;
} ServeParamsData;

void		serve_api_search(ServePool pool, const ServeParamsData *p, ServeReplyData *out);
void		serve_api_snippet(ServePool pool, const ServeParamsData *p, ServeReplyData *out);
void		serve_api_similar(ServePool pool, const ServeParamsData *p, ServeReplyData *out);
void		serve_api_repos(ServePool pool, ServeReplyData *out);
void		serve_api_health(ServePool pool, ServeReplyData *out);
void		serve_reply_error(ServeReplyData *out, int status, const char *sqlstate,
							  const char *fmt,...) __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- mcp.c */

/* the routing headers of a Streamable HTTP request (each NULL if absent) */
typedef struct ServeMcpHeadersData
{
	const char *version;		/* MCP-Protocol-Version */
	const char *method;			/* Mcp-Method (2026-07-28) */
	const char *name;			/* Mcp-Name (2026-07-28, tools/call) */
} ServeMcpHeadersData;

/*
 * Handles one JSON-RPC message (text of n bytes). Returns the response
 * text (malloc'd, caller frees) or NULL for a notification or a response.
 * headers: NULL on stdio; *http_status is set to the HTTP status to
 * answer with (202 when there is nothing to answer).
 */
char	   *serve_mcp_handle(ServePool pool, const char *text, size_t n,
							 const ServeMcpHeadersData *headers, int *http_status);
int			serve_mcp_stdio(ServePool pool);

/* ---------------------------------------------------------------- http.c */

typedef struct ServeHttpData *ServeHttp;

ServeHttp	serve_http_start(ServeConfig config, ServePool pool);
void		serve_http_stop(ServeHttp http);

/* ---------------------------------------------------------------- static.c */

/* a file of the page: its bytes (owned by the table) and content type */
typedef struct ServeStaticFileData
{
	const char *data;
	size_t		size;
	const char *content_type;
} ServeStaticFileData;

int			serve_static_load(ServeConfig config);
const ServeStaticFileData *serve_static_find(const char *url);
void		serve_static_free(void);

/* ---------------------------------------------------------------- json.c */

char	   *serve_json_print(const cJSON *json);
bool		serve_utf8_valid(const char *s, size_t n);
double		serve_now_ms(void);
cJSON	   *serve_json_row(const PGresult *res, int row);
void		serve_log(const char *fmt,...) __attribute__((format(printf, 1, 2)));

#endif							/* CODEVEC_SERVE_H */
