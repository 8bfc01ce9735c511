/*
 * shard.c -- codevec-load --coordinator: load a repository into the shard
 * of a sharded codevec that its name belongs to (shards/README.md).
 *
 * A sharded codevec's coordinator is a PostgreSQL database whose
 * code.repos, code.files and code.snippets are partitioned tables with one
 * postgres_fdw foreign partition per shard.  codevec-load cannot write
 * through it (it upserts with INSERT ... ON CONFLICT ... DO UPDATE, which
 * postgres_fdw refuses, and a shard's ids come from its own sequences), so
 * it asks the coordinator where a repository goes and loads that shard
 * directly:
 *
 *   cvl_shard_route    code.shard_for(name, number of shards) and that
 *                      shard's conninfo, from code_shards.shards;
 *   cvl_shard_refresh  code.shard_refresh() after the load: the planner's
 *                      statistics of every foreign partition and the
 *                      coordinator's BM25 postings over every shard's rows;
 *   cvl_shard_list     every attached shard's number and conninfo
 *                      (--coordinator --embed-only without --repo embeds
 *                      each shard directly: an UPDATE of emb through the
 *                      coordinator's foreign partitions cannot work, the
 *                      BM25 triggers need transition tables, which foreign
 *                      tables do not have).
 *
 * Both open their own short connection to the coordinator (libpq only;
 * the load itself goes through db.c like any other).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cvl.h"
#include "dbint.h"

/* Copy a libpq message into err without its trailing newlines. */
static void
SetError(char *err, size_t errlen, const char *what, const char *message)
{
	size_t		n;

	snprintf(err, errlen, "%s: %s", what, message ? message : "out of memory");
	n = strlen(err);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}

/* Say why a statement failed: its SQLSTATE, message and detail, in err. */
static void
SetResultError(char *err, size_t errlen, const char *what, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	size_t		n;

	if (primary == NULL)
	{
		SetError(err, errlen, what, PQresultErrorMessage(res));
		return;
	}
	snprintf(err, errlen, "%s failed (%s): %s%s%s", what, state ? state : "?????", primary,
			 detail ? ": " : "", detail ? detail : "");
	for (n = 0; err[n]; n++)
		if (err[n] == '\n')
			err[n] = ' ';
	while (n > 0 && err[n - 1] == ' ')
		err[--n] = '\0';
}

/*
 * Connect to the coordinator: cvl_session_connect (UTF-8, notices
 * swallowed); NULL with "cannot connect to the coordinator: ..." in err.
 */
static PGconn *
Connect(const char *coordinator, char *err, size_t errlen)
{
	static const char prefix[] = "cannot connect to the database";
	char		msg[512];
	PGconn	   *conn = cvl_session_connect(coordinator, msg, sizeof(msg));

	if (conn == NULL)
		snprintf(err, errlen, "cannot connect to the coordinator%s",
				 strncmp(msg, prefix, sizeof(prefix) - 1) == 0 ? msg + sizeof(prefix) - 1 : msg);
	return conn;
}

/*
 * Find the shard a repository named repo is loaded into: its number
 * (code.shard_for(repo, the number of attached shards), the coordinator's
 * own function) in *shard and its conninfo as code.shard_add() recorded it
 * in *conninfo (malloc'd, the caller frees).  Returns 0, or -1 with a
 * message in err: the coordinator unreachable, not a coordinator (no
 * code_shards.shards), without shards, or missing that shard's number.
 */
int
cvl_shard_route(const char *coordinator, const char *repo, int *shard,
				char **conninfo, char *err, size_t errlen)
{
	PGconn	   *conn = Connect(coordinator, err, errlen);
	PGresult   *res;
	const char *params[1];
	int			rc = -1;

	if (conn == NULL)
		return -1;
	params[0] = repo;
	res = PQexecParams(conn,
					   "SELECT n.n, code.shard_for($1, n.n), s.conninfo "
					   "FROM (SELECT count(*)::integer AS n FROM code_shards.shards) n "
					   "LEFT JOIN code_shards.shards s ON s.shard = code.shard_for($1, n.n)",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0 ||
					  strcmp(state, "3F000") == 0))
			snprintf(err, errlen, "the --coordinator database is not a sharded codevec "
					 "coordinator (no code_shards.shards or code.shard_for(); "
					 "tools/shards.sh setup makes one)");
		else
			SetResultError(err, errlen, "asking the coordinator for the shard", res);
	}
	else if (PQntuples(res) != 1 || atoi(PQgetvalue(res, 0, 0)) == 0)
		snprintf(err, errlen, "the coordinator has no shards (tools/shards.sh setup "
				 "attaches them)");
	else if (PQgetisnull(res, 0, 2))
		snprintf(err, errlen, "repository \"%s\" belongs to shard %s of %s, which is "
				 "not attached to the coordinator (shards are numbered 0 to N - 1)",
				 repo, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
	else
	{
		*shard = atoi(PQgetvalue(res, 0, 1));
		*conninfo = cvl_strdup(PQgetvalue(res, 0, 2));
		rc = 0;
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/*
 * Every shard attached to the coordinator, in shard order: *n numbers in
 * *shards and their conninfos (as code.shard_add() recorded them) in
 * *conninfos (malloc'd arrays of malloc'd strings, the caller frees both).
 * Returns 0, or -1 with a message in err: the coordinator unreachable,
 * not a coordinator, or without shards.
 */
int
cvl_shard_list(const char *coordinator, int *n, int **shards, char ***conninfos,
			   char *err, size_t errlen)
{
	PGconn	   *conn = Connect(coordinator, err, errlen);
	PGresult   *res;
	int			rc = -1;

	*n = 0;
	*shards = NULL;
	*conninfos = NULL;
	if (conn == NULL)
		return -1;
	res = PQexec(conn, "SELECT shard, conninfo FROM code_shards.shards ORDER BY shard");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0))
			snprintf(err, errlen, "the --coordinator database is not a sharded codevec "
					 "coordinator (no code_shards.shards; tools/shards.sh setup makes one)");
		else
			SetResultError(err, errlen, "asking the coordinator for its shards", res);
	}
	else if (PQntuples(res) == 0)
		snprintf(err, errlen, "the coordinator has no shards (tools/shards.sh setup "
				 "attaches them)");
	else
	{
		*n = PQntuples(res);
		*shards = cvl_malloc(sizeof(int) * *n);
		*conninfos = cvl_malloc(sizeof(char *) * *n);
		for (int i = 0; i < *n; i++)
		{
			(*shards)[i] = atoi(PQgetvalue(res, i, 0));
			(*conninfos)[i] = cvl_strdup(PQgetvalue(res, i, 1));
		}
		rc = 0;
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/*
 * Run code.shard_refresh() on the coordinator (after a load into a shard:
 * statistics of every foreign partition, BM25 postings over every shard).
 * Returns 0, or -1 with a message (the SQLSTATE's text, e.g. a shard that
 * is down) in err.
 */
int
cvl_shard_refresh(const char *coordinator, char *err, size_t errlen)
{
	PGconn	   *conn = Connect(coordinator, err, errlen);
	PGresult   *res;
	int			rc = 0;

	if (conn == NULL)
		return -1;
	res = PQexec(conn, "SELECT code.shard_refresh()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		SetResultError(err, errlen, "code.shard_refresh() on the coordinator", res);
		rc = -1;
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}
