/*
 * db.c -- the database side of codevec-load (libpq only, never the server).
 *
 * Schema: code.schema_version, code.repos, code.files, code.snippets (see
 * cvl_schema_sql in schema.c), created if missing under an advisory lock so that two loaders
 * starting together do not race.  emb is codevec(D) from the codevec
 * extension (CREATE EXTENSION IF NOT EXISTS codevec); --dims 0 leaves emb
 * out for servers without the extension.  The session uses client_encoding
 * UTF8, synchronous_commit off (a crash may lose the last batches, which a
 * rerun reloads; it cannot tear one), and holds an advisory lock on the
 * repository it loads, so concurrent loaders of one repository serialise.
 *
 * Writing, one transaction per batch of files (--batch-files, or earlier
 * when CVL_BATCH_MAX_BYTES of COPY data piled up), on a writer thread so
 * that the server works while the parsers go on (two batches at most: one
 * being filled, one being written; see HandOff()):
 *   1. COPY the batch's changed files into temp table cvl_stage_files and
 *      their snippets into cvl_stage_snippets (temp tables ON COMMIT DELETE
 *      ROWS, created once per session);
 *   2. delete the old snippets of those files;
 *   3. upsert code.files (ON CONFLICT (repo_id, path));
 *   4. insert the snippets joined to their file ids, computing tsv on the
 *      server with code.snippet_tsv(): setweight(to_tsvector(
 *      'codevec_code', ...)) of A name, B signature, C doc, D the first
 *      16,384 characters of the body.  codevec_code (the extension's code
 *      parser) splits identifiers, so "parse_config" and "parseConfig" both
 *      match "config", and documents and queries tokenize alike.  A server
 *      without that configuration (--dims 0, no extension) gets the old
 *      way: words split in C (cvl_buf_append_identifiers), 'simple';
 *   5. COMMIT.  A file's old and new snippets are never both visible.
 *
 * Isolation: when the server refuses a batch for something in its rows
 * (a CHECK constraint, a trigger, a value too long for a tsvector: any
 * error while the connection is fine, except the classes that say the
 * whole session or server is in trouble, see IsRowError()), the batch is
 * rolled back and written again in two halves, each half the same way
 * (bisection: a batch of 500 files with one bad file costs about 2 log2(500)
 * = 18 more transactions).  A single file that is still refused is
 * rejected: its rows are not written, it is recorded with the server's
 * message (cvl_db_drain_rejected(); main counts it as `rejected`, names it
 * with -v and exits 1) and everything else is written.  A rejected file
 * keeps the rows of its earlier version, if any, so the next run parses it
 * again.  A connection failure or a server-wide error still ends the run
 * (batches committed before it stay).
 * After all files: cvl_db_prune() removes files of the repository that
 * were not seen (or are now skipped as binary, too large, ...).
 *
 * Schema versions (code.schema_version, the highest row counts):
 *   1  tsv from words split in C, to_tsvector('simple', ...)
 *   2  tsv by code.snippet_tsv() (codevec_code); with an emb column also
 *      the search functions code.search(), code.more_like_this(),
 *      code.keyword_query(), code.is_test(), code.preview() (cvl_search_sql,
 *      re-created by every run so that they follow the loader); with an
 *      extension that has codevec_bm25_topk also BM25 (cvl_bm25_sql: tables
 *      code.bm25_params, code.bm25_terms, code.bm25_postings, their
 *      triggers on code.snippets, code.bm25_refresh(), code.bm25_search()
 *      and friends; code.search ranks keywords by BM25 once
 *      code.bm25_refresh() has built the postings, by ts_rank before)
 * A version-1 schema is upgraded in place when the server has codevec_code:
 * every tsv is recomputed (one UPDATE, in the schema transaction).  Without
 * codevec_code the loader stays at version 1 ('simple'; no code.search).
 *
 * Embedding: when to_regprocedure('embed(text[])') exists, snippets with
 * emb IS NULL are embedded in id order, --embed-batch (64) at a time,
 * by one UPDATE ... FROM unnest(ids), unnest(embed(texts)) per batch (each
 * its own transaction).
 *
 * Snippet counters: per batch, snippets of files new to the repository are
 * "added"; for changed files the new count is matched against the deleted
 * old count: min() "updated", the surplus "added", the deficit "removed".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cvl.h"

/* one file of a batch: where its COPY lines are, for bisection */
typedef struct BatchFile
{
	CvlFile		file;			/* the caller's; path and counts stay valid */
	size_t		files_off;		/* its line in Batch.files */
	size_t		snippets_off;	/* its first line in Batch.snippets */
	int			nsnippets;
} BatchFile;

/* one transaction's worth of COPY data */
typedef struct Batch
{
	CvlBufData	files;			/* COPY text for cvl_stage_files */
	CvlBufData	snippets;		/* COPY text for cvl_stage_snippets */
	BatchFile  *entries;		/* nfiles of them, in order */
	int			entries_cap;
	int			nfiles;
} Batch;

/* a file the server refused, until main drains it */
typedef struct Rejection
{
	CvlFile		file;
	int			nsnippets;
	char	   *message;
} Rejection;

struct CvlDbData
{
	PGconn	   *conn;
	int			dims;
	bool		has_emb;
	int			batch_files;
	int64_t		repo_id;
	char		repo_id_text[32];
	bool		server_tsv;		/* tsv by code.snippet_tsv() (version 2) */
	CvlBufData	words;			/* scratch for identifier splitting */
	Batch		batches[2];
	Batch	   *filling;		/* built by the main thread */
	Batch	   *pending;		/* handed to the writer; NULL: none */
	bool		writer_started;
	bool		writer_quit;
	bool		failed;			/* the writer hit an error (in error[]) */
	Rejection  *rejected;		/* files refused by the server (under lock) */
	int			nrejected;
	int			rejected_cap;
	char		sqlstate[6];	/* of the last error, "" when none */
	pthread_t	writer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char		error[1024];
	CvlDbStats	stats;
};

static const char *StageSql =
"SET client_min_messages = warning;\n"
/* a crash may lose the last batches, never corrupt them: rerun the load */
"SET synchronous_commit = off;\n"
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

/* Record a libpq error (from a result if given) as the db's message. */
static void
SetError(CvlDb db, const char *what, PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn);

	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(db->conn);
	snprintf(db->error, sizeof(db->error), "%s: %s", what, msg);
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", code ? code : "");
	size_t		n = strlen(db->error);

	while (n > 0 && (db->error[n - 1] == '\n' || db->error[n - 1] == ' '))
		db->error[--n] = '\0';
}

/* Run SQL expecting success; on failure set the error and return -1. */
static int
Exec(CvlDb db, const char *what, const char *sql)
{
	PGresult   *res = PQexec(db->conn, sql);
	ExecStatusType s = PQresultStatus(res);
	int			rc = 0;

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
	{
		SetError(db, what, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Run a parameterised statement; returns the result or NULL (error set). */
static PGresult *
ExecParams(CvlDb db, const char *what, const char *sql, int n,
		   const char *const *values)
{
	PGresult   *res = PQexecParams(db->conn, sql, n, NULL, values, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(res);

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
	{
		SetError(db, what, res);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Roll back after an error, keeping the first error message. */
static void
Rollback(CvlDb db)
{
	if (PQstatus(db->conn) == CONNECTION_OK &&
		PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

/* Stream data[0..len) through COPY ... FROM STDIN. */
static int
CopyIn(CvlDb db, const char *sql, const char *data, size_t len)
{
	PGresult   *res = PQexec(db->conn, sql);

	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		SetError(db, "COPY", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (size_t off = 0; off < len;)
	{
		size_t		n = len - off > (1 << 20) ? (1 << 20) : len - off;

		if (PQputCopyData(db->conn, data + off, (int) n) != 1)
		{
			SetError(db, "COPY", NULL);
			return -1;
		}
		off += n;
	}
	if (PQputCopyEnd(db->conn, NULL) != 1)
	{
		SetError(db, "COPY", NULL);
		return -1;
	}
	int			rc = 0;

	while ((res = PQgetResult(db->conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			SetError(db, "COPY", res);
			rc = -1;
		}
		PQclear(res);
	}
	return rc;
}

/* Swallow server notices (e.g. "relation already exists, skipping"). */
static void
QuietNotices(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

/*
 * Connect with libpq (conninfo: NULL, a database name, a conninfo string or
 * a URI; PG* environment variables fill the rest).  Returns NULL with a
 * message in err on failure.
 */
CvlDb
cvl_db_new(const char *conninfo, int dims, int batch_files,
		   char *err, size_t errlen)
{
	/* snippets are UTF-8 (checked per file): say so whatever the locale */
	const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *vals[] = {conninfo, "codevec-load", "UTF8", NULL};
	CvlDb		db = cvl_malloc(sizeof(*db));

	memset(db, 0, sizeof(*db));
	db->dims = dims;
	db->batch_files = batch_files;
	for (int i = 0; i < 2; i++)
	{
		cvl_buf_init(&db->batches[i].files);
		cvl_buf_init(&db->batches[i].snippets);
	}
	db->filling = &db->batches[0];
	cvl_buf_init(&db->words);
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->cond, NULL);
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
	{
		snprintf(err, errlen, "cannot connect to the database: %s",
				 db->conn ? PQerrorMessage(db->conn) : "out of memory");
		size_t		n = strlen(err);

		while (n > 0 && err[n - 1] == '\n')
			err[--n] = '\0';
		cvl_db_delete(db);
		return NULL;
	}
	PQsetNoticeProcessor(db->conn, QuietNotices, NULL);
	return db;
}

/* Append tmpl with @CFG@ and @EXT@ replaced. */
static void
AppendSubstituted(CvlBuf out, const char *tmpl, const char *cfg, const char *ext)
{
	const char *p = tmpl;

	while (*p)
	{
		if (strncmp(p, "@CFG@", 5) == 0)
		{
			cvl_buf_puts(out, cfg);
			p += 5;
		}
		else if (strncmp(p, "@EXT@", 5) == 0)
		{
			cvl_buf_puts(out, ext);
			p += 5;
		}
		else
			cvl_buf_putc(out, *p++);
	}
}

/*
 * Create schema code and its tables if missing, upgrade an older schema in
 * place, (re)create the search functions (one transaction, under an
 * advisory lock, so two loaders starting together do not race); then
 * create this session's staging tables.  Returns 0 or -1.
 */
int
cvl_db_schema_ensure(CvlDb db)
{
	CvlBufData	sql;
	char		emb[64] = "";
	PGresult   *res;
	int			rc;
	int			version;
	char	   *cfg = NULL;		/* 'schema.codevec_code' literal, or NULL */
	char	   *ext = NULL;		/* the extension's schema, an identifier */

	if (db->dims > 0)
		snprintf(emb, sizeof(emb), "emb codevec(%d),\n", db->dims);
	if (Exec(db, "BEGIN", "BEGIN; SET LOCAL client_min_messages = warning; "
			 "SELECT pg_advisory_xact_lock(hashtext('codevec-load schema'))") < 0)
		return -1;
	if (db->dims > 0 &&
		Exec(db, "CREATE EXTENSION codevec (needed for the emb column; "
			 "--dims 0 loads without it)",
			 "CREATE EXTENSION IF NOT EXISTS codevec") < 0)
		goto fail;

	/* the code configuration, preferably the extension's own */
	res = ExecParams(db, "looking for text search configuration codevec_code",
					 "SELECT quote_literal(quote_ident(n.nspname) || '.' || quote_ident(c.cfgname)), "
					 "(SELECT quote_ident(en.nspname) FROM pg_extension e "
					 " JOIN pg_namespace en ON en.oid = e.extnamespace WHERE e.extname = 'codevec') "
					 "FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace "
					 "JOIN pg_ts_parser p ON p.oid = c.cfgparser "
					 "WHERE c.cfgname = 'codevec_code' AND p.prsname = 'codevec_code_parser' "
					 "ORDER BY n.oid = (SELECT extnamespace FROM pg_extension "
					 "WHERE extname = 'codevec') DESC, n.nspname LIMIT 1", 0, NULL);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1))
	{
		cfg = cvl_strdup(PQgetvalue(res, 0, 0));
		ext = cvl_strdup(PQgetvalue(res, 0, 1));
	}
	PQclear(res);

	cvl_buf_init(&sql);
	cvl_buf_printf(&sql, cvl_schema_sql, emb);
	/* a new schema starts at the version this server supports */
	cvl_buf_printf(&sql, "INSERT INTO code.schema_version (version) SELECT %d "
				   "WHERE NOT EXISTS (SELECT 1 FROM code.schema_version);\n",
				   cfg ? CVL_SCHEMA_VERSION : 1);
	rc = Exec(db, "creating schema code", sql.data);
	cvl_buf_free(&sql);
	if (rc < 0)
		goto fail;
	res = ExecParams(db, "checking the schema version",
					 "SELECT max(version), "
					 "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
					 "'code.snippets'::regclass AND attname = 'emb' "
					 "AND NOT attisdropped) FROM code.schema_version", 0, NULL);
	if (res == NULL)
		goto fail;
	version = atoi(PQgetvalue(res, 0, 0));
	db->has_emb = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (version > CVL_SCHEMA_VERSION)
	{
		snprintf(db->error, sizeof(db->error),
				 "schema code has version %d, newer than this loader's %d; "
				 "upgrade codevec-load", version, CVL_SCHEMA_VERSION);
		goto fail;
	}
	if (version >= 2 && cfg == NULL)
	{
		snprintf(db->error, sizeof(db->error),
				 "schema code has version %d (tsv by the codevec_code text search "
				 "configuration) but the server has no codevec_code; "
				 "CREATE EXTENSION codevec (a version with it) first", version);
		goto fail;
	}
	if (cfg && db->has_emb)
	{
		/* the search surface, re-created so that it follows the loader */
		cvl_buf_init(&sql);
		AppendSubstituted(&sql, cvl_search_sql, cfg, ext);
		rc = Exec(db, "creating the search functions", sql.data);
		cvl_buf_free(&sql);
		if (rc < 0)
			goto fail;
		/* BM25, when the extension is new enough to have it */
		res = ExecParams(db, "looking for codevec_bm25_topk",
						 "SELECT to_regprocedure(quote_ident(e.nspname) || '.codevec_bm25_topk(integer[], "
						 "text[], double precision[], integer, real[], real, real, double precision, "
						 "regclass, regclass, name)') IS NOT NULL FROM pg_extension x "
						 "JOIN pg_namespace e ON e.oid = x.extnamespace WHERE x.extname = 'codevec'",
						 0, NULL);
		if (res == NULL)
			goto fail;
		rc = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (rc)
		{
			cvl_buf_init(&sql);
			AppendSubstituted(&sql, cvl_bm25_sql, cfg, ext);
			rc = Exec(db, "creating the BM25 tables and functions", sql.data);
			cvl_buf_free(&sql);
			if (rc < 0)
				goto fail;
		}
	}
	else if (cfg)
	{
		/* no emb column (--dims 0): the tsv function only */
		cvl_buf_init(&sql);
		AppendSubstituted(&sql, cvl_search_sql, cfg, ext);
		sql.data[strstr(sql.data, "CREATE OR REPLACE FUNCTION code.keyword_query") - sql.data] = '\0';
		rc = Exec(db, "creating code.snippet_tsv", sql.data);
		cvl_buf_free(&sql);
		if (rc < 0)
			goto fail;
	}
	if (cfg && version < 2)
	{
		/* upgrade in place: every tsv by codevec_code */
		cvl_buf_init(&sql);
		cvl_buf_printf(&sql, "UPDATE code.snippets SET tsv = code.snippet_tsv("
					   "qualified_name, signature, doc, code);\n"
					   "INSERT INTO code.schema_version (version) VALUES (%d);\n",
					   CVL_SCHEMA_VERSION);
		rc = Exec(db, "upgrading schema code to version 2 (recomputing tsv)", sql.data);
		cvl_buf_free(&sql);
		if (rc < 0)
			goto fail;
	}
	db->server_tsv = cfg != NULL;
	if (Exec(db, "COMMIT", "COMMIT") < 0)
		goto fail;
	free(cfg);
	free(ext);
	return Exec(db, "creating staging tables", StageSql);

fail:
	free(cfg);
	free(ext);
	Rollback(db);
	return -1;
}

/*
 * Find or create repository `name` (root: its absolute path; NULL only to
 * look an existing one up) and, when known is not NULL, load its files'
 * path -> sha256 into known.  Returns 0 or -1.
 */
int
cvl_db_repo_open(CvlDb db, const char *name, const char *root, CvlMap known)
{
	PGresult   *res;
	const char *params[2] = {name, root};

	if (root)
		res = ExecParams(db, "registering the repository",
						 "INSERT INTO code.repos (name, root) VALUES ($1, $2) "
						 "ON CONFLICT (name) DO UPDATE SET root = EXCLUDED.root "
						 "RETURNING id", 2, params);
	else
		res = ExecParams(db, "looking up the repository",
						 "SELECT id FROM code.repos WHERE name = $1", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1)
	{
		snprintf(db->error, sizeof(db->error), "no repository named \"%s\"", name);
		PQclear(res);
		return -1;
	}
	snprintf(db->repo_id_text, sizeof(db->repo_id_text), "%s", PQgetvalue(res, 0, 0));
	db->repo_id = atoll(db->repo_id_text);
	PQclear(res);
	if (known == NULL)
		return 0;

	/*
	 * One loader per repository at a time (session advisory lock, held
	 * until disconnect): a second one waits, then finds little to do.
	 */
	const char *lp[1] = {db->repo_id_text};

	res = ExecParams(db, "locking the repository",
					 "SELECT pg_advisory_lock(1668703596, $1::integer)", 1, lp);
	if (res == NULL)
		return -1;
	PQclear(res);

	const char *p[1] = {db->repo_id_text};

	res = ExecParams(db, "reading stored files",
					 "SELECT path, sha256 FROM code.files WHERE repo_id = $1", 1, p);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		cvl_map_put(known, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	return 0;
}

static int	HandOff(CvlDb db, bool wait);

/* Append the tsvector words of n bytes of text as one COPY field. */
static void
AppendWords(CvlDb db, CvlBuf out, const char *s, size_t n)
{
	if (s == NULL || db->server_tsv)
	{
		cvl_buf_puts(out, "\\N");	/* the server computes tsv from the text */
		return;
	}
	cvl_buf_reset(&db->words);
	cvl_buf_append_identifiers(&db->words, s, n);
	cvl_buf_append_copy(out, db->words.data ? db->words.data : "");
}

/*
 * Add one processed file to the current batch: parsed files are staged
 * (with all their snippets, so a file is never split across transactions);
 * others need no write here.  Flushes when the batch is full.  Returns 0 or
 * -1 (database error; the batch was rolled back).
 */
int
cvl_db_file_add(CvlDb db, CvlFile f)
{
	double		t0 = cvl_clock_now();
	Batch	   *b = db->filling;
	CvlBuf		fb = &b->files;
	CvlBuf		sb = &b->snippets;

	if (f->status != CVL_FILE_PARSED)
		return 0;
	if (b->nfiles == b->entries_cap)
	{
		b->entries_cap = b->entries_cap ? b->entries_cap * 2 : 64;
		b->entries = cvl_realloc(b->entries, (size_t) b->entries_cap * sizeof(BatchFile));
	}
	b->entries[b->nfiles].file = f;
	b->entries[b->nfiles].files_off = fb->len;
	b->entries[b->nfiles].snippets_off = sb->len;
	b->entries[b->nfiles].nsnippets = f->nsnippets;
	cvl_buf_append_copy(fb, f->path);
	cvl_buf_putc(fb, '\t');
	cvl_buf_append_copy(fb, f->language->name);
	cvl_buf_printf(fb, "\t%lld\t%s\t%s\n", (long long) f->bytes, f->sha256,
				   f->known ? "t" : "f");
	for (int i = 0; i < f->nsnippets; i++)
	{
		CvlSnippet	s = &f->snippets[i];
		size_t		codelen = strlen(s->code);

		cvl_buf_append_copy(sb, f->path);
		cvl_buf_printf(sb, "\t%d\t", i);
		cvl_buf_append_copy(sb, s->kind);
		cvl_buf_putc(sb, '\t');
		cvl_buf_append_copy(sb, s->symbol);
		cvl_buf_putc(sb, '\t');
		cvl_buf_append_copy(sb, s->qualified_name);
		cvl_buf_putc(sb, '\t');
		cvl_buf_append_copy(sb, s->signature);
		cvl_buf_putc(sb, '\t');
		cvl_buf_append_copy(sb, s->doc);
		cvl_buf_printf(sb, "\t%d\t%d\t", s->start_line, s->end_line);
		cvl_buf_append_copy(sb, s->code);
		cvl_buf_putc(sb, '\t');
		cvl_buf_append_copy(sb, s->embed_text);
		cvl_buf_putc(sb, '\t');
		AppendWords(db, sb, s->qualified_name, strlen(s->qualified_name));
		cvl_buf_putc(sb, '\t');
		AppendWords(db, sb, s->signature, s->signature ? strlen(s->signature) : 0);
		cvl_buf_putc(sb, '\t');
		AppendWords(db, sb, s->doc, s->doc ? strlen(s->doc) : 0);
		cvl_buf_putc(sb, '\t');
		AppendWords(db, sb, s->code, cvl_utf8_cut(s->code, codelen, CVL_TSV_BODY_MAX_BYTES));
		cvl_buf_putc(sb, '\n');
	}
	b->nfiles++;
	db->stats.t_rows += cvl_clock_now() - t0;
	if (b->nfiles >= db->batch_files ||
		fb->len + sb->len >= CVL_BATCH_MAX_BYTES)
		return HandOff(db, false);
	return 0;
}

/*
 * Did the last error come from the rows written (so that writing fewer
 * rows may succeed), rather than from the connection or the server as a
 * whole?  Not: no SQLSTATE (libpq's own failure), a broken connection, and
 * the classes 08 connection, 0A feature not supported, 25 transaction
 * state, 28 authorization, 3D/3F missing database/schema, 40 rollback
 * (serialization, deadlock), 42 syntax or access rule (a missing table, a
 * revoked privilege), 53 insufficient resources (disk full, out of
 * memory), 57 operator intervention (shutdown, cancel), 58 system error
 * (I/O), XX internal error.  Everything else (22 data exception, 23
 * integrity constraint, 54 program limit, P0 raised by a trigger, and
 * whatever SQLSTATE a user's trigger picks) is taken as the rows' fault.
 */
static bool
IsRowError(CvlDb db)
{
	static const char *global[] = {
		"08", "0A", "25", "28", "3D", "3F", "40", "42", "53", "57", "58", "XX",
	};

	if (db->sqlstate[0] == '\0' || PQstatus(db->conn) != CONNECTION_OK)
		return false;
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
		if (strncmp(db->sqlstate, global[i], 2) == 0)
			return false;
	return true;
}

/*
 * Write files [lo, hi) of a batch in one transaction (on the writer
 * thread).  Returns 0, 1 when the server refused the rows (IsRowError();
 * rolled back, the message in db->error), or -1 for any other error.
 */
static int
WriteRange(CvlDb db, Batch *b, int lo, int hi)
{
	double		t0 = cvl_clock_now(),
				t1,
				t2,
				t3;
	const char *p[1] = {db->repo_id_text};
	PGresult   *res;
	int64_t		deleted;
	size_t		f0 = b->entries[lo].files_off,
				f1 = hi < b->nfiles ? b->entries[hi].files_off : b->files.len;
	size_t		s0 = b->entries[lo].snippets_off,
				s1 = hi < b->nfiles ? b->entries[hi].snippets_off : b->snippets.len;
	int64_t		new_snippets = 0,
				changed_snippets = 0;

	for (int i = lo; i < hi; i++)
	{
		if (b->entries[i].file->known)
			changed_snippets += b->entries[i].nsnippets;
		else
			new_snippets += b->entries[i].nsnippets;
	}
	db->sqlstate[0] = '\0';
	if (Exec(db, "BEGIN", "BEGIN") < 0 ||
		CopyIn(db, "COPY cvl_stage_files FROM STDIN", b->files.data + f0, f1 - f0) < 0 ||
		CopyIn(db, "COPY cvl_stage_snippets FROM STDIN", b->snippets.data + s0, s1 - s0) < 0)
		goto fail;
	t1 = cvl_clock_now();
	db->stats.t_stage += t1 - t0;
	res = ExecParams(db, "deleting old snippets",
					 "WITH d AS (DELETE FROM code.snippets s "
					 "USING code.files f, cvl_stage_files st "
					 "WHERE s.file_id = f.id AND f.repo_id = $1 AND f.path = st.path "
					 "RETURNING 1) SELECT count(*) FROM d", 1, p);
	if (res == NULL)
		goto fail;
	deleted = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = ExecParams(db, "writing code.files",
					 "INSERT INTO code.files AS f "
					 "(repo_id, path, language, bytes, sha256, indexed_at) "
					 "SELECT $1, path, language, bytes, sha256, now() "
					 "FROM cvl_stage_files "
					 "ON CONFLICT (repo_id, path) DO UPDATE SET "
					 "language = EXCLUDED.language, bytes = EXCLUDED.bytes, "
					 "sha256 = EXCLUDED.sha256, indexed_at = EXCLUDED.indexed_at",
					 1, p);
	if (res == NULL)
		goto fail;
	PQclear(res);
	t2 = cvl_clock_now();
	db->stats.t_replace += t2 - t1;
	res = ExecParams(db, "writing code.snippets",
					 db->server_tsv ?
					 "INSERT INTO code.snippets (file_id, kind, symbol, "
					 "qualified_name, signature, doc, start_line, end_line, code, "
					 "embed_text, tsv) "
					 "SELECT f.id, st.kind, st.symbol, st.qualified_name, "
					 "st.signature, st.doc, st.start_line, st.end_line, st.code, "
					 "st.embed_text, "
					 "code.snippet_tsv(st.qualified_name, st.signature, st.doc, st.code) "
					 "FROM cvl_stage_snippets st "
					 "JOIN code.files f ON f.repo_id = $1 AND f.path = st.path "
					 "ORDER BY st.path, st.ord" :
					 "INSERT INTO code.snippets (file_id, kind, symbol, "
					 "qualified_name, signature, doc, start_line, end_line, code, "
					 "embed_text, tsv) "
					 "SELECT f.id, st.kind, st.symbol, st.qualified_name, "
					 "st.signature, st.doc, st.start_line, st.end_line, st.code, "
					 "st.embed_text, "
					 "setweight(to_tsvector('simple', coalesce(st.words_a, '')), 'A') || "
					 "setweight(to_tsvector('simple', coalesce(st.words_b, '')), 'B') || "
					 "setweight(to_tsvector('simple', coalesce(st.words_c, '')), 'C') || "
					 "setweight(to_tsvector('simple', coalesce(st.words_d, '')), 'D') "
					 "FROM cvl_stage_snippets st "
					 "JOIN code.files f ON f.repo_id = $1 AND f.path = st.path "
					 "ORDER BY st.path, st.ord", 1, p);
	if (res == NULL)
		goto fail;
	PQclear(res);
	t3 = cvl_clock_now();
	db->stats.t_insert += t3 - t2;
	if (Exec(db, "COMMIT", "COMMIT") < 0)
		goto fail;
	db->stats.t_commit += cvl_clock_now() - t3;

	int64_t		changed = changed_snippets;

	db->stats.snippets_added += new_snippets +
		(changed > deleted ? changed - deleted : 0);
	db->stats.snippets_updated += changed < deleted ? changed : deleted;
	db->stats.snippets_removed += deleted > changed ? deleted - changed : 0;
	db->stats.batches++;
	db->stats.t_copy += cvl_clock_now() - t0;
	return 0;

fail:
	{
		bool		rows = IsRowError(db);

		Rollback(db);
		db->stats.t_copy += cvl_clock_now() - t0;
		return rows ? 1 : -1;
	}
}

/* Record that the server refused file entry e (writer thread). */
static void
AddRejection(CvlDb db, const BatchFile *e)
{
	pthread_mutex_lock(&db->lock);
	if (db->nrejected == db->rejected_cap)
	{
		db->rejected_cap = db->rejected_cap ? db->rejected_cap * 2 : 16;
		db->rejected = cvl_realloc(db->rejected,
								   (size_t) db->rejected_cap * sizeof(Rejection));
	}
	db->rejected[db->nrejected].file = e->file;
	db->rejected[db->nrejected].nsnippets = e->nsnippets;
	/* the first line: "writing code.snippets: ERROR:  new row ... violates ..." */
	db->rejected[db->nrejected].message = cvl_strndup(db->error, strcspn(db->error, "\n"));
	db->nrejected++;
	pthread_mutex_unlock(&db->lock);
}

/*
 * Write files [lo, hi) of a batch, bisecting when the server refuses the
 * rows (see the top of this file) until the files it refuses are alone,
 * which are rejected.  Returns 0, or -1 for an error that ends the run.
 */
static int
WriteIsolated(CvlDb db, Batch *b, int lo, int hi)
{
	int			rc = WriteRange(db, b, lo, hi);

	if (rc <= 0)
		return rc;
	if (hi - lo == 1)
	{
		AddRejection(db, &b->entries[lo]);
		db->error[0] = '\0';
		return 0;
	}
	int			mid = lo + (hi - lo) / 2;

	if (WriteIsolated(db, b, lo, mid) < 0)
		return -1;
	return WriteIsolated(db, b, mid, hi);
}

/* Write one batch (writer thread).  Returns 0 or -1. */
static int
WriteBatch(CvlDb db, Batch *b)
{
	if (b->nfiles == 0)
		return 0;
	return WriteIsolated(db, b, 0, b->nfiles);
}

/* Empty a batch for reuse, keeping its memory. */
static void
BatchReset(Batch *b)
{
	cvl_buf_reset(&b->files);
	cvl_buf_reset(&b->snippets);
	b->nfiles = 0;
}

/*
 * Hand every file the server refused since the last call to fn (main
 * thread): the file (its snippets already freed), how many snippets it
 * had, and the server's message.
 */
void
cvl_db_drain_rejected(CvlDb db, CvlDbRejectFn fn, void *arg)
{
	Rejection  *list;
	int			n;

	pthread_mutex_lock(&db->lock);
	list = db->rejected;
	n = db->nrejected;
	db->rejected = NULL;
	db->nrejected = db->rejected_cap = 0;
	pthread_mutex_unlock(&db->lock);
	for (int i = 0; i < n; i++)
	{
		fn(list[i].file, list[i].nsnippets, list[i].message, arg);
		free(list[i].message);
	}
	free(list);
}

/*
 * Writer thread: write each handed-off batch, one at a time.  It owns the
 * connection while a batch is pending; the main thread touches the
 * connection only when no batch is pending (after cvl_db_flush()).
 */
static void *
WriterMain(void *arg)
{
	CvlDb		db = arg;

	pthread_mutex_lock(&db->lock);
	for (;;)
	{
		while (db->pending == NULL && !db->writer_quit)
			pthread_cond_wait(&db->cond, &db->lock);
		if (db->pending == NULL)
			break;
		Batch	   *b = db->pending;

		pthread_mutex_unlock(&db->lock);
		int			rc = db->failed ? -1 : WriteBatch(db, b);

		BatchReset(b);
		pthread_mutex_lock(&db->lock);
		if (rc < 0)
			db->failed = true;
		db->pending = NULL;
		pthread_cond_broadcast(&db->cond);
	}
	pthread_mutex_unlock(&db->lock);
	return NULL;
}

/*
 * Hand the filling batch to the writer thread (waiting while it still
 * writes the previous one), so that parsing goes on while the server
 * works; with wait, also wait until it is written.  Two batches at most
 * exist, so memory stays bounded.  Returns 0, or -1 once any batch failed.
 */
static int
HandOff(CvlDb db, bool wait)
{
	pthread_mutex_lock(&db->lock);
	if (!db->writer_started)
	{
		if (pthread_create(&db->writer, NULL, WriterMain, db) != 0)
		{
			pthread_mutex_unlock(&db->lock);
			snprintf(db->error, sizeof(db->error), "cannot start the writer thread");
			return -1;
		}
		db->writer_started = true;
	}
	while (db->pending != NULL)
		pthread_cond_wait(&db->cond, &db->lock);
	if (!db->failed && db->filling->nfiles > 0)
	{
		db->pending = db->filling;
		db->filling = db->filling == &db->batches[0] ? &db->batches[1] : &db->batches[0];
		pthread_cond_broadcast(&db->cond);
	}
	if (wait)
		while (db->pending != NULL)
			pthread_cond_wait(&db->cond, &db->lock);
	bool		failed = db->failed;

	pthread_mutex_unlock(&db->lock);
	if (failed)
		BatchReset(db->filling);
	return failed ? -1 : 0;
}

/* Write everything added so far and wait for it.  Returns 0 or -1. */
int
cvl_db_flush(CvlDb db)
{
	return HandOff(db, true);
}

/*
 * Remove the repository's files that this run did not keep: gone from the
 * tree, or now skipped as binary, empty, too large, undecodable (encoding)
 * or with a name that is not UTF-8.  Files that failed (unreadable, parse
 * timeout, rejected by the server) keep their old rows.
 */
int
cvl_db_prune(CvlDb db, CvlFileData *files, size_t nfiles)
{
	CvlBufData	keep;
	const char *p[1] = {db->repo_id_text};
	PGresult   *res;
	double		t0 = cvl_clock_now();

	cvl_buf_init(&keep);
	for (size_t i = 0; i < nfiles; i++)
	{
		CvlFileStatus s = files[i].status;

		if (s == CVL_FILE_PARSED || s == CVL_FILE_UNCHANGED ||
			s == CVL_FILE_UNREADABLE || s == CVL_FILE_PARSE_FAILED ||
			s == CVL_FILE_PENDING || s == CVL_FILE_REJECTED ||
			s == CVL_FILE_INVALID_OUTPUT)
		{
			cvl_buf_append_copy(&keep, files[i].path);
			cvl_buf_putc(&keep, '\n');
		}
	}
	if (Exec(db, "BEGIN", "BEGIN") < 0 ||
		CopyIn(db, "COPY cvl_stage_keep FROM STDIN", keep.data, keep.len) < 0)
		goto fail;
	res = ExecParams(db, "removing vanished files",
					 "WITH gone AS (SELECT f.id FROM code.files f "
					 "  WHERE f.repo_id = $1 AND NOT EXISTS "
					 "  (SELECT 1 FROM cvl_stage_keep k WHERE k.path = f.path)), "
					 "ds AS (DELETE FROM code.snippets s USING gone "
					 "  WHERE s.file_id = gone.id RETURNING 1), "
					 "df AS (DELETE FROM code.files f USING gone "
					 "  WHERE f.id = gone.id RETURNING 1) "
					 "SELECT (SELECT count(*) FROM ds), (SELECT count(*) FROM df)",
					 1, p);
	if (res == NULL)
		goto fail;
	db->stats.snippets_removed += atoll(PQgetvalue(res, 0, 0));
	db->stats.files_removed += atoll(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (Exec(db, "COMMIT", "COMMIT") < 0)
		goto fail;
	cvl_buf_free(&keep);
	db->stats.t_copy += cvl_clock_now() - t0;
	return 0;

fail:
	cvl_buf_free(&keep);
	Rollback(db);
	return -1;
}

/*
 * Bring the BM25 keyword postings (code.bm25_postings) up to date after a
 * load: built the first time, rebuilt when the corpus' average document
 * length has moved by more than 10% since (code.bm25_refresh(0.1); the
 * triggers keep them exact in between), then VACUUM (ANALYZE) of the
 * postings when they were rebuilt, so that code.search's index-only scans
 * read no heap.  Nothing on a schema without BM25 (an extension older than
 * 0.2.0).  Sets *rebuilt; returns -1 on error.
 */
int
cvl_db_bm25_refresh(CvlDb db, bool *rebuilt)
{
	PGresult   *res;
	double		t0 = cvl_clock_now();

	*rebuilt = false;
	res = ExecParams(db, "looking for BM25",
					 "SELECT to_regprocedure('code.bm25_refresh(double precision)') IS NOT NULL",
					 0, NULL);
	if (res == NULL)
		return -1;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
	{
		PQclear(res);
		return 0;
	}
	PQclear(res);
	res = ExecParams(db, "building the BM25 postings", "SELECT code.bm25_refresh(0.1)", 0, NULL);
	if (res == NULL)
		return -1;
	*rebuilt = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (*rebuilt && Exec(db, "VACUUM of the BM25 postings",
						 "VACUUM (ANALYZE) code.bm25_postings") < 0)
		return -1;
	db->stats.t_bm25 = cvl_clock_now() - t0;
	return 0;
}

/*
 * Fill emb for snippets that have none (this repository's, or every
 * repository's when all_repos), batch snippets per embed(text[]) call.
 * Sets *available to false, and returns 0, when the server has no
 * embed(text[]) or code.snippets has no emb column.  Returns -1 on error.
 */
int
cvl_db_embed(CvlDb db, int batch, bool all_repos, bool *available)
{
	PGresult   *res;
	char		batchtext[32];
	char		last[32] = "0";
	double		t0 = cvl_clock_now();

	*available = false;
	if (!db->has_emb)
		return 0;
	res = ExecParams(db, "looking for embed(text[])",
					 "SELECT to_regprocedure('embed(text[])') IS NOT NULL", 0, NULL);
	if (res == NULL)
		return -1;
	*available = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!*available)
		return 0;
	snprintf(batchtext, sizeof(batchtext), "%d", batch);
	for (;;)
	{
		/* no repository opened (--embed-only without --repo): any bigint */
		const char *p[4] = {db->repo_id_text[0] ? db->repo_id_text : "0",
		batchtext, last, all_repos ? "t" : "f"};

		res = ExecParams(db, "embedding snippets",
						 "UPDATE code.snippets s SET emb = e.v "
						 "FROM (SELECT unnest(b.ids) AS id, unnest(embed(b.texts)) AS v "
						 "      FROM (SELECT array_agg(x.id ORDER BY x.id) AS ids, "
						 "                   array_agg(x.embed_text ORDER BY x.id) AS texts "
						 "            FROM (SELECT s2.id, s2.embed_text "
						 "                  FROM code.snippets s2 "
						 "                  JOIN code.files f ON f.id = s2.file_id "
						 "                  WHERE s2.emb IS NULL AND s2.id > $3::bigint "
						 "                    AND ($4::boolean OR f.repo_id = $1::bigint) "
						 "                  ORDER BY s2.id LIMIT $2::integer) x) b "
						 "      WHERE b.ids IS NOT NULL) e "
						 "WHERE s.id = e.id RETURNING s.id",
						 4, p);
		if (res == NULL)
			return -1;
		int			n = PQntuples(res);
		long long	maxid = atoll(last);

		for (int i = 0; i < n; i++)
		{
			long long	id = atoll(PQgetvalue(res, i, 0));

			if (id > maxid)
				maxid = id;
		}
		PQclear(res);
		if (n == 0)
			break;
		db->stats.snippets_embedded += n;
		snprintf(last, sizeof(last), "%lld", maxid);
	}
	db->stats.t_embed += cvl_clock_now() - t0;
	return 0;
}

/* Return the last error message. */
const char *
cvl_db_error(CvlDb db)
{
	return db->error;
}

/* Return the write counters and timers. */
const CvlDbStats *
cvl_db_stats(CvlDb db)
{
	return &db->stats;
}

/* Close the connection and free the db (NULL is fine). */
void
cvl_db_delete(CvlDb db)
{
	if (db == NULL)
		return;
	if (db->writer_started)
	{
		pthread_mutex_lock(&db->lock);
		db->writer_quit = true;
		pthread_cond_broadcast(&db->cond);
		pthread_mutex_unlock(&db->lock);
		pthread_join(db->writer, NULL);
	}
	for (int i = 0; i < 2; i++)
	{
		cvl_buf_free(&db->batches[i].files);
		cvl_buf_free(&db->batches[i].snippets);
		free(db->batches[i].entries);
	}
	for (int i = 0; i < db->nrejected; i++)
		free(db->rejected[i].message);
	free(db->rejected);
	cvl_buf_free(&db->words);
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->cond);
	if (db->conn)
		PQfinish(db->conn);
	free(db);
}
