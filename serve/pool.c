/*
 * pool.c -- a small libpq connection pool with prepared statements only.
 *
 * pool_size connections, opened lazily and re-opened when the server went
 * away.  A request takes a free connection (waiting at most wait_timeout
 * ms), runs one prepared statement with text parameters (never SQL built
 * from strings) and gives it back.  Every connection is read-only
 * (default_transaction_read_only) and has statement_timeout = query_timeout,
 * so a request can neither write to the database nor run forever.  All
 * statements are read-only, so one that fails because the connection broke
 * is retried once on a fresh connection (the database that went away and
 * came back).
 *
 * A request's deadline (serve_deadline_set, --request-timeout) bounds the
 * wait for a connection and the statement: when less than query_timeout is
 * left, the connection's statement_timeout is lowered to what is left for
 * that statement and set back after it (two more round trips, only then).
 *
 * At start (serve_pool_warm_up, unless --no-warm-up) a thread opens every
 * connection and runs each mode's search once: a PostgreSQL session's
 * first code.search fills its catalog and relation caches and plans the
 * statement (code.search_check included), 4-8 ms of CPU more than a
 * later call on the 2-core machine and ~20 ms on the GPU host
 * (bench/keyword/README.md, "first call"), which a user's first requests
 * would otherwise pay once per connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "serve.h"

/*
 * the first 30 lines of a result's code, by primary key: a LATERAL
 * subquery with LIMIT 1 is not pulled up into a join, so the plan stays k
 * index probes (a join would hash all of code.snippets: 2.7 ms at 4,196
 * snippets, growing with the corpus)
 */
#define FIRST_LINES \
	"SELECT array_to_string((string_to_array(sn.code, E'\\n'))[1:30], E'\\n') AS code," \
	" (sn.end_line - sn.start_line + 1) > 30 AS code_truncated FROM code.snippets sn"

/*
 * code.search's rows and each row's first lines.  code.search is one SQL
 * statement that PostgreSQL inlines into the caller's query (not WITH
 * ORDINALITY, which keeps it a function scan whose body is planned again
 * on every execution), so the rows are put in code.search's own order by
 * ORDER: its rank in the mode's list, or the fused score then id.  A
 * statement per mode has the mode written in: its plan keeps only that
 * mode's lists, so the plan cache settles on one generic plan instead of
 * planning every call (STMT_SEARCH, mode as a parameter, serves other
 * modes, which code.search refuses with 22023).  Parameters: $1 query, $2
 * k, $3 lang, $4 path_like, $5 exclude_tests (then $6 mode).
 */
#define SEARCH(MODE, ORDER) \
	"SELECT s.id, s.repo, s.path, s.language, s.kind, s.symbol, s.qualified_name," \
	" s.start_line, s.end_line, s.preview, s.score, s.vector_rank, s.keyword_rank," \
	" s.distance, s.keyword_score," \
	" c.code, c.code_truncated" \
	" FROM code.search(query => $1::text, k => $2::integer, mode => " MODE "," \
	" lang => $3::text, path_like => $4::text, exclude_tests => $5::boolean) AS s" \
	" CROSS JOIN LATERAL (" FIRST_LINES " WHERE sn.id = s.id LIMIT 1) c ORDER BY " ORDER

/* the statements: name and text; parameters are typed by their casts */
static const struct
{
	const char *name;
	const char *sql;
} Statements[STMT_COUNT] = {
	[STMT_SEARCH] = {"search",
		SEARCH("$6::text", "CASE $6::text WHEN 'vector' THEN s.vector_rank"
			   " WHEN 'keyword' THEN s.keyword_rank END, s.score DESC, s.id")},
	[STMT_SEARCH_KEYWORD] = {"search_keyword", SEARCH("'keyword'", "s.keyword_rank")},
	[STMT_SEARCH_VECTOR] = {"search_vector", SEARCH("'vector'", "s.vector_rank")},
	[STMT_SEARCH_HYBRID] = {"search_hybrid", SEARCH("'hybrid'", "s.score DESC, s.id")},
	[STMT_SNIPPET] = {"snippet",
		"SELECT s.id, r.name AS repo, f.path, f.language, s.kind, s.symbol, s.qualified_name,"
		" s.signature, s.doc, s.start_line, s.end_line, s.code, r.root, f.sha256, f.bytes"
		" FROM code.snippets s JOIN code.files f ON f.id = s.file_id"
		" JOIN code.repos r ON r.id = f.repo_id WHERE s.id = $1::bigint"},
	[STMT_SIMILAR] = {"similar",
		"SELECT m.id, m.repo, m.path, m.language, m.kind, m.symbol, m.qualified_name,"
		" m.start_line, m.end_line, m.preview, m.score, m.vector_rank, m.keyword_rank,"
		" m.distance, m.keyword_score,"
		" c.code, c.code_truncated"
		" FROM code.more_like_this(snippet_id => $1::bigint, k => $2::integer)"
		" WITH ORDINALITY AS m"
		" CROSS JOIN LATERAL (" FIRST_LINES " WHERE sn.id = m.id LIMIT 1) c ORDER BY m.ordinality"},
	[STMT_REPOS] = {"repos",
		"SELECT r.id, r.name, r.root,"
		" (SELECT count(*) FROM code.files f WHERE f.repo_id = r.id) AS files,"
		" (SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id"
		"  WHERE f.repo_id = r.id) AS snippets"
		" FROM code.repos r ORDER BY r.name, r.id"},
	[STMT_LANGUAGES] = {"languages",
		"SELECT language, count(*) AS files FROM code.files"
		" WHERE language IS NOT NULL GROUP BY language ORDER BY language"},
	[STMT_HEALTH] = {"health",
		"SELECT (SELECT count(*) FROM pg_catalog.pg_proc p"
		" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
		" WHERE n.nspname = 'code' AND p.proname = 'search') > 0 AS search_installed"},
	[STMT_SET_TIMEOUT] = {"set_timeout",
		"SELECT pg_catalog.set_config('statement_timeout', $1::text, false)"},
};

/* the deadline of the request this thread handles (0: none) */
static __thread double RequestDeadline;

/* Sets the calling thread's request deadline (serve.h). */
void
serve_deadline_set(double deadline_ms)
{
	RequestDeadline = deadline_ms;
}

typedef struct Slot
{
	PGconn	   *conn;			/* NULL until opened, or after it broke */
	bool		busy;
} Slot;

struct ServePoolData
{
	ServeConfig config;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int			n;
	Slot	   *slots;
	pthread_t	warmer;			/* serve_pool_warm_up's thread */
	bool		warming;		/* it was started (and not yet joined) */
	volatile bool stopping;		/* serve_pool_delete: the warm-up stops early */
};

/* Creates a pool of config->pool_size connections (none opened yet). */
ServePool
serve_pool_new(ServeConfig config)
{
	ServePool	pool = calloc(1, sizeof(*pool));

	if (!pool)
		return NULL;
	pool->config = config;
	pool->n = config->pool_size;
	pool->slots = calloc(pool->n, sizeof(Slot));
	if (!pool->slots)
	{
		free(pool);
		return NULL;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->freed, NULL);
	return pool;
}

/* Closes every connection and frees the pool (no request may be running). */
void
serve_pool_delete(ServePool pool)
{
	if (!pool)
		return;
	if (pool->warming)
	{
		pool->stopping = true;
		pthread_join(pool->warmer, NULL);
	}
	for (int i = 0; i < pool->n; i++)
		if (pool->slots[i].conn)
			PQfinish(pool->slots[i].conn);
	free(pool->slots);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->freed);
	free(pool);
}

/* Frees a result's PGresult. */
void
serve_result_clear(ServeResultData *r)
{
	if (r->res)
		PQclear(r->res);
	r->res = NULL;
}

/* Takes a free slot, waiting at most wait_ms ms; NULL on timeout. */
static Slot *
PoolAcquire(ServePool pool, int wait_ms)
{
	struct timespec deadline;
	Slot	   *slot = NULL;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long) (wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
	{
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pool->lock);
	for (;;)
	{
		for (int i = 0; i < pool->n && !slot; i++)
			if (!pool->slots[i].busy)
				slot = &pool->slots[i];
		if (slot)
		{
			slot->busy = true;
			break;
		}
		if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&pool->lock);
	return slot;
}

/* Gives a slot back and wakes one waiter. */
static void
PoolRelease(ServePool pool, Slot *slot)
{
	pthread_mutex_lock(&pool->lock);
	slot->busy = false;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->lock);
}

/* Logs a server notice (warnings of embed(), say) as one line. */
static void
OnNotice(void *arg, const char *message)
{
	(void) arg;
	serve_log("database: %.*s", (int) strcspn(message, "\n"), message);
}

/*
 * Opens the slot's connection and prepares every statement; on failure
 * fills out (503, SQLSTATE 08006 or the server's) and returns false.
 */
static bool
SlotConnect(ServePool pool, Slot *slot, ServeResultData *out)
{
	char		options[128];
	const char *keys[] = {"dbname", "application_name", "connect_timeout", "options", NULL};
	const char *vals[5];

	snprintf(options, sizeof(options),
			 "-c default_transaction_read_only=on -c statement_timeout=%d",
			 pool->config->query_timeout);
	vals[0] = pool->config->conninfo ? pool->config->conninfo : "";
	vals[1] = "codevec-serve";
	vals[2] = "5";
	vals[3] = options;
	vals[4] = NULL;
	if (slot->conn)
		PQfinish(slot->conn);
	slot->conn = PQconnectdbParams(keys, vals, 1);
	if (!slot->conn || PQstatus(slot->conn) != CONNECTION_OK)
	{
		const char *msg = slot->conn ? PQerrorMessage(slot->conn) : "out of memory";

		out->http_status = 503;
		strcpy(out->sqlstate, "08006");
		snprintf(out->message, sizeof(out->message), "database unavailable: %.*s",
				 (int) strcspn(msg, "\n"), msg);
		if (slot->conn)
			PQfinish(slot->conn);
		slot->conn = NULL;
		return false;
	}
	PQsetNoticeProcessor(slot->conn, OnNotice, NULL);
	for (int i = 0; i < STMT_COUNT; i++)
	{
		PGresult   *res = PQprepare(slot->conn, Statements[i].name, Statements[i].sql, 0, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			/* a database without code.search (nothing loaded yet) */
			out->http_status = 503;
			snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", state ? state : "");
			snprintf(out->message, sizeof(out->message),
					 "database not ready for search (load code with codevec-load): %s",
					 msg ? msg : PQerrorMessage(slot->conn));
			PQclear(res);
			PQfinish(slot->conn);
			slot->conn = NULL;
			return false;
		}
		PQclear(res);
	}
	return true;
}

/* the HTTP status a SQLSTATE maps to */
static int
StatusOf(const char *state)
{
	if (!state)
		return 500;
	if (strncmp(state, "22", 2) == 0)	/* data exception: the caller's input */
		return 400;
	if (strcmp(state, "57014") == 0)	/* query canceled: statement_timeout */
		return 504;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
		strcmp(state, "53300") == 0)	/* connection, shutdown, too many */
		return 503;
	return 500;
}

/*
 * Runs prepared statement stmt with nparams text values (NULL = SQL NULL)
 * on a pooled connection.  On success out->res holds the rows; otherwise
 * out->http_status, sqlstate and message say what went wrong.  Never
 * raises; the caller clears out with serve_result_clear.
 */
/* Fills out with the 504 of a request whose deadline was reached. */
static void
DeadlineReached(ServePool pool, ServeResultData *out)
{
	out->http_status = 504;
	strcpy(out->sqlstate, "57014");
	snprintf(out->message, sizeof(out->message),
			 "the request's deadline of %d ms was reached", pool->config->request_timeout);
}

/*
 * Sets the connection's statement_timeout to ms; false when the
 * connection failed (the statement that follows finds out and retries).
 */
static bool
SetStatementTimeout(Slot *slot, int ms)
{
	char		buf[16];
	const char *vals[1] = {buf};
	PGresult   *res;
	bool		ok;

	snprintf(buf, sizeof(buf), "%d", ms);
	res = PQexecPrepared(slot->conn, Statements[STMT_SET_TIMEOUT].name, 1, vals, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return ok;
}

void
serve_pool_exec(ServePool pool, ServeStmt stmt, int nparams,
				const char *const *values, ServeResultData *out)
{
	double		t0 = serve_now_ms();
	bool		drop = false;	/* close the connection after this statement */
	double		deadline = RequestDeadline;
	int			wait_ms = pool->config->wait_timeout;
	Slot	   *slot;

	memset(out, 0, sizeof(*out));
	if (deadline > 0)
	{
		if (deadline - t0 < 1)
		{
			DeadlineReached(pool, out);
			return;
		}
		if (deadline - t0 < wait_ms)
			wait_ms = (int) (deadline - t0);
	}
	slot = PoolAcquire(pool, wait_ms);
	out->wait_ms = serve_now_ms() - t0;
	if (!slot && deadline > 0 && deadline - serve_now_ms() < 1)
	{
		DeadlineReached(pool, out);
		return;
	}
	if (!slot)
	{
		out->http_status = 503;
		strcpy(out->sqlstate, "53300");
		snprintf(out->message, sizeof(out->message),
				 "all %d database connections are busy (waited %d ms)",
				 pool->n, pool->config->wait_timeout);
		return;
	}
	for (int attempt = 0; attempt < 2; attempt++)
	{
		PGresult   *res;
		const char *state;
		const char *msg;
		bool		lowered = false;

		if ((!slot->conn || PQstatus(slot->conn) != CONNECTION_OK) &&
			!SlotConnect(pool, slot, out))
			break;
		t0 = serve_now_ms();
		if (deadline > 0 && deadline - t0 < pool->config->query_timeout)
		{
			if (deadline - t0 < 1)
			{
				DeadlineReached(pool, out);
				break;
			}
			lowered = SetStatementTimeout(slot, (int) (deadline - t0));
		}
		res = PQexecPrepared(slot->conn, Statements[stmt].name, nparams, values,
							 NULL, NULL, 0);
		out->db_ms = serve_now_ms() - t0;
		/* never leave a lowered timeout on a pooled connection */
		if (lowered && PQstatus(slot->conn) == CONNECTION_OK &&
			!SetStatementTimeout(slot, pool->config->query_timeout))
			drop = true;
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
		{
			out->res = res;
			out->http_status = 200;
			break;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		if (lowered && state && strcmp(state, "57014") == 0)
		{
			/* cancelled by the timeout the deadline set */
			DeadlineReached(pool, out);
			PQclear(res);
			break;
		}
		if (PQstatus(slot->conn) == CONNECTION_BAD)
		{
			/* the server went away: retry once on a new connection */
			PQclear(res);
			PQfinish(slot->conn);
			slot->conn = NULL;
			out->http_status = 503;
			strcpy(out->sqlstate, "08006");
			snprintf(out->message, sizeof(out->message), "database connection lost");
			continue;
		}
		out->http_status = StatusOf(state);
		snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", state ? state : "");
		snprintf(out->message, sizeof(out->message), "%s",
				 msg ? msg : PQerrorMessage(slot->conn));
		PQclear(res);
		break;
	}
	if (drop && slot->conn)
	{
		PQfinish(slot->conn);
		slot->conn = NULL;
	}
	PoolRelease(pool, slot);
}

/* Takes slot i when it is free (a request may hold it: then NULL). */
static Slot *
PoolTake(ServePool pool, int i)
{
	Slot	   *slot = NULL;

	pthread_mutex_lock(&pool->lock);
	if (!pool->slots[i].busy)
	{
		slot = &pool->slots[i];
		slot->busy = true;
	}
	pthread_mutex_unlock(&pool->lock);
	return slot;
}

/*
 * The warm-up thread: each free connection opened and each mode's search
 * statement run once (k 1, no filters).  A connection a request already
 * holds is skipped (that request opens it); the first failure (no
 * database, nothing loaded yet) is logged and ends the warm-up: the
 * connections are then opened by the requests, as without it.
 */
static void *
WarmUp(void *arg)
{
	static const ServeStmt modes[] = {STMT_SEARCH_HYBRID, STMT_SEARCH_VECTOR, STMT_SEARCH_KEYWORD};
	const char *const values[5] = {"warm up this connection's caches", "1", NULL, NULL, "false"};
	ServePool	pool = arg;
	double		t0 = serve_now_ms();
	int			warmed = 0;

	for (int i = 0; i < pool->n && !pool->stopping; i++)
	{
		Slot	   *slot = PoolTake(pool, i);
		ServeResultData out;
		bool		ok = true;

		if (!slot)
			continue;
		memset(&out, 0, sizeof(out));
		if (!slot->conn && !SlotConnect(pool, slot, &out))
		{
			serve_log("warm-up: %s", out.message);
			PoolRelease(pool, slot);
			break;
		}
		for (int m = 0; m < (int) (sizeof(modes) / sizeof(modes[0])) && ok && !pool->stopping; m++)
		{
			PGresult   *res = PQexecPrepared(slot->conn, Statements[modes[m]].name, 5, values,
											 NULL, NULL, 0);

			if (PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

				serve_log("warm-up: %s: %s", Statements[modes[m]].name,
						  msg ? msg : PQerrorMessage(slot->conn));
				ok = false;
			}
			PQclear(res);
		}
		if (PQstatus(slot->conn) != CONNECTION_OK)
		{
			PQfinish(slot->conn);
			slot->conn = NULL;
		}
		PoolRelease(pool, slot);
		if (!ok)
			break;
		warmed++;
	}
	serve_log("warm-up: %d of %d database connections opened and searched once (%.0f ms)",
			  warmed, pool->n, serve_now_ms() - t0);
	return NULL;
}

/*
 * Starts the warm-up thread (see the file's comment); requests may run
 * meanwhile.  The thread blocks SIGTERM and SIGINT, so that they reach the
 * thread that waits for them (sigwait in HTTP mode; in stdio mode the
 * reader, whose read they must interrupt).
 */
void
serve_pool_warm_up(ServePool pool)
{
	sigset_t	stop,
				old;

	if (!pool || pool->warming)
		return;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	pool->warming = pthread_create(&pool->warmer, NULL, WarmUp, pool) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
