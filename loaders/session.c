/*
 * session.c -- one server connection of codevec-load and its statements.
 *
 * A session (CvlSessionData, dbint.h) is a libpq connection with the last
 * error it saw (message and SQLSTATE); every thread uses only its own.  The
 * main connection (db.c: schema, repository, prune, embedding, BM25) and
 * each writer's connection (write.c: the COPY batches) are sessions.
 *
 * Connections use client_encoding UTF8 (every text is checked to be UTF-8
 * in the parser threads) and swallow server notices.  cvl_session_stage()
 * creates a session's staging tables (temp tables, ON COMMIT DELETE ROWS).
 *
 * Durability: a session keeps the server's synchronous_commit (on, unless
 * the server, database, role or PGOPTIONS says otherwise).  A batch is then
 * on disk before its COMMIT returns and before any other session can see
 * it, so a crash of the server (pg_ctl stop -m immediate; with fsync on,
 * a power loss) never takes back files a reader saw loaded, and the next
 * run reloads only what was never committed.  Until December 2026 the
 * loader set synchronous_commit = off: test/crash then saw files that
 * another session had read as committed disappear in a crash (the last
 * batches, still in the WAL buffers).  The cost is one WAL flush per batch
 * (500 files by default): see loaders/README.md, "Durability".
 *
 * This file depends on nothing of the loader but util.c; db.c and write.c
 * both use it (no circle between them: test/layout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbint.h"

static const char *StageSql =
"SET client_min_messages = warning;\n"
/* no SET synchronous_commit: what a reader saw committed survives a crash */
"CREATE TEMP TABLE IF NOT EXISTS cvl_stage_files (\n"
"  path text, language text, bytes bigint, sha256 text, known boolean)\n"
"  ON COMMIT DELETE ROWS;\n"
"CREATE TEMP TABLE IF NOT EXISTS cvl_stage_snippets (\n"
"  path text, ord integer, kind text, symbol text, qualified_name text,\n"
"  signature text, doc text, start_line integer, end_line integer,\n"
"  code text, embed_text text, words_a text, words_b text, words_c text,\n"
"  words_d text) ON COMMIT DELETE ROWS;\n"
"CREATE TEMP TABLE IF NOT EXISTS cvl_stage_keep (path text)\n"
"  ON COMMIT DELETE ROWS;\n";

/* with an emb column: the embeddings of a batch, new (emb) and kept (old) */
static const char *StageEmbSql =
"CREATE TEMP TABLE IF NOT EXISTS cvl_stage_emb ON COMMIT DELETE ROWS AS\n"
"  SELECT ''::text AS path, 0 AS ord, emb FROM code.snippets WITH NO DATA;\n"
"CREATE TEMP TABLE IF NOT EXISTS cvl_stage_old ON COMMIT DELETE ROWS AS\n"
"  SELECT ''::text AS path, embed_text, emb FROM code.snippets WITH NO DATA;\n";

/* Record a libpq error (from a result if given) as the session's message. */
void
cvl_session_set_error(CvlSession s, const char *what, PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn);

	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(s->conn);
	snprintf(s->error, sizeof(s->error), "%s: %s", what, msg);
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", code ? code : "");
	size_t		n = strlen(s->error);

	while (n > 0 && (s->error[n - 1] == '\n' || s->error[n - 1] == ' '))
		s->error[--n] = '\0';
}

/* Run SQL expecting success; on failure set the error and return -1. */
int
cvl_session_exec(CvlSession s, const char *what, const char *sql)
{
	PGresult   *res = PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int			rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		cvl_session_set_error(s, what, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Run a parameterised statement; returns the result or NULL (error set). */
PGresult *
cvl_session_exec_params(CvlSession s, const char *what, const char *sql, int n,
						const char *const *values)
{
	PGresult   *res = PQexecParams(s->conn, sql, n, NULL, values, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		cvl_session_set_error(s, what, res);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Roll back after an error, keeping the first error message. */
void
cvl_session_rollback(CvlSession s)
{
	if (PQstatus(s->conn) == CONNECTION_OK &&
		PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Stream data[0..len) through COPY ... FROM STDIN. */
int
cvl_session_copy_in(CvlSession s, const char *sql, const char *data, size_t len)
{
	PGresult   *res = PQexec(s->conn, sql);

	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		cvl_session_set_error(s, "COPY", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (size_t off = 0; off < len;)
	{
		size_t		n = len - off > (1 << 20) ? (1 << 20) : len - off;

		if (PQputCopyData(s->conn, data + off, (int) n) != 1)
		{
			cvl_session_set_error(s, "COPY", NULL);
			return -1;
		}
		off += n;
	}
	if (PQputCopyEnd(s->conn, NULL) != 1)
	{
		cvl_session_set_error(s, "COPY", NULL);
		return -1;
	}
	int			rc = 0;

	while ((res = PQgetResult(s->conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			cvl_session_set_error(s, "COPY", res);
			rc = -1;
		}
		PQclear(res);
	}
	return rc;
}

/* Create this session's settings and staging tables.  Returns 0 or -1. */
int
cvl_session_stage(CvlSession s, bool has_emb)
{
	if (cvl_session_exec(s, "creating staging tables", StageSql) < 0)
		return -1;
	return has_emb ? cvl_session_exec(s, "creating staging tables", StageEmbSql) : 0;
}

/* Swallow server notices (e.g. "relation already exists, skipping"). */
static void
QuietNotices(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

/*
 * Open one connection (conninfo: NULL, a database name, a conninfo string
 * or a URI; PG* environment variables fill the rest) in UTF-8 with server
 * notices swallowed.  Returns NULL with a message in err on failure.
 */
PGconn *
cvl_session_connect(const char *conninfo, char *err, size_t errlen)
{
	/* snippets are UTF-8 (checked per file): say so whatever the locale */
	const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *vals[] = {conninfo, "codevec-load", "UTF8", NULL};
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		snprintf(err, errlen, "cannot connect to the database: %s",
				 conn ? PQerrorMessage(conn) : "out of memory");
		size_t		n = strlen(err);

		while (n > 0 && err[n - 1] == '\n')
			err[--n] = '\0';
		if (conn)
			PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, QuietNotices, NULL);
	return conn;
}
