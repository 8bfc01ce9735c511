/*
 * db.c -- the database side of codevec-load (libpq only, never the server).
 *
 * Schema: code.schema_version, code.repos, code.files, code.snippets (see
 * cvl_schema_sql in schema.c), created if missing under an advisory lock so that two loaders
 * starting together do not race.  emb is codevec(D) from the codevec
 * extension (CREATE EXTENSION IF NOT EXISTS codevec); --dims 0 leaves emb
 * out for servers without the extension.  The main connection is a session
 * (session.c: settings, staging tables, statements) and holds an advisory
 * lock on the repository it loads, so concurrent loaders of one repository
 * serialise.
 *
 * Writing: write.c (the store stage: batches, the writer connections,
 * isolation of rows the server refuses); db.c starts and stops it
 * (cvl_write_init, cvl_write_stop), write.c never calls db.c.
 * After all files: cvl_db_prune() removes files of the repository that
 * were not seen (or are now skipped as binary, too large, ...).
 *
 * Schema versions (code.schema_version, the highest row counts):
 *   1  tsv from words split in C, to_tsvector('simple', ...)
 *   2  tsv by code.snippet_tsv() (codevec_code: codevec_code_tsvector()
 *      where the extension has it, else the same value in plain SQL,
 *      cvl_snippet_tsv_sql / cvl_snippet_tsv_c_sql); with an emb column also
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
 * Embedding: cvl_db_embed_plan() asks the server once per run whether
 * embed(text[]) works and where it runs: on the GPU service (state ready
 * and codevec.device not cpu) batches are CVL_GPU_EMBED_BATCH snippets,
 * else --embed-batch (64); rows are then stored with their embeddings by
 * the writers (write.c).  cvl_db_embed() is the catch-up pass: snippets
 * still without emb (loaded with --no-embed, or stored without when
 * embed() failed mid-run) are embedded in id order, a batch per
 * UPDATE ... FROM unnest(ids), unnest(embed(texts)) (each its own
 * transaction).
 *
 * Snippet counters: per batch, snippets of files new to the repository are
 * "added"; for changed files the new count is matched against the deleted
 * old count: min() "updated", the surplus "added", the deficit "removed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbint.h"

/*
 * Connect (see cvl_session_connect) for a load that writes through
 * connections writer connections (opened at the first batch).  Returns
 * NULL with a message in err on failure.
 */
CvlDb
cvl_db_new(const char *conninfo, int dims, int batch_files, int connections,
		   char *err, size_t errlen)
{
	CvlDb		db = cvl_malloc(sizeof(*db));

	memset(db, 0, sizeof(*db));
	db->dims = dims;
	db->batch_files = batch_files;
	db->conninfo = conninfo ? cvl_strdup(conninfo) : NULL;
	db->embed_batch = CVL_DEFAULT_EMBED_BATCH;
	cvl_buf_init(&db->words);
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->cond, NULL);
	db->main.conn = cvl_session_connect(conninfo, err, errlen);
	if (db->main.conn == NULL)
	{
		cvl_db_delete(db);
		return NULL;
	}
	if (connections <= 0)
	{
		/*
		 * The server's cores: known when it is on this machine (a socket
		 * or a loopback address), half of them for the writers, the other
		 * half for the parsers; 4 for a server elsewhere.
		 */
		const char *host = PQhost(db->main.conn);
		long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		bool		local = host == NULL || host[0] == '\0' || host[0] == '/' ||
			strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
			strcmp(host, "::1") == 0;

		connections = local ? (int) (ncpu / 2) : 4;
		connections = connections < 2 ? 2 : connections > 8 ? 8 : connections;
	}
	cvl_write_init(db, connections);
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
	const char *tsv_sql = NULL;	/* code.snippet_tsv()'s definition */

	if (db->dims > 0)
		snprintf(emb, sizeof(emb), "emb codevec(%d),\n", db->dims);
	if (cvl_session_exec(&db->main, "BEGIN", "BEGIN; SET LOCAL client_min_messages = warning; "
			 "SELECT pg_advisory_xact_lock(hashtext('codevec-load schema'))") < 0)
		return -1;
	if (db->dims > 0 &&
		cvl_session_exec(&db->main, "CREATE EXTENSION codevec (needed for the emb column; "
			 "--dims 0 loads without it)",
			 "CREATE EXTENSION IF NOT EXISTS codevec") < 0)
		goto fail;

	/* the code configuration, preferably the extension's own */
	res = cvl_session_exec_params(&db->main, "looking for text search configuration codevec_code",
					 "SELECT quote_literal(quote_ident(n.nspname) || '.' || quote_ident(c.cfgname)), "
					 "(SELECT quote_ident(en.nspname) FROM pg_extension e "
					 " JOIN pg_namespace en ON en.oid = e.extnamespace WHERE e.extname = 'codevec'), "
					 "(SELECT to_regprocedure(quote_ident(en.nspname) || '.codevec_code_tsvector(regconfig, "
					 " text, text, text, text)') IS NOT NULL FROM pg_extension e "
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
		tsv_sql = PQgetvalue(res, 0, 2)[0] == 't' ? cvl_snippet_tsv_c_sql : cvl_snippet_tsv_sql;
	}
	PQclear(res);

	cvl_buf_init(&sql);
	cvl_buf_printf(&sql, cvl_schema_sql, emb);
	/* a new schema starts at the version this server supports */
	cvl_buf_printf(&sql, "INSERT INTO code.schema_version (version) SELECT %d "
				   "WHERE NOT EXISTS (SELECT 1 FROM code.schema_version);\n",
				   cfg ? CVL_SCHEMA_VERSION : 1);
	rc = cvl_session_exec(&db->main, "creating schema code", sql.data);
	cvl_buf_free(&sql);
	if (rc < 0)
		goto fail;
	res = cvl_session_exec_params(&db->main, "checking the schema version",
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
		snprintf(db->main.error, sizeof(db->main.error),
				 "schema code has version %d, newer than this loader's %d; "
				 "upgrade codevec-load", version, CVL_SCHEMA_VERSION);
		goto fail;
	}
	if (version >= 2 && cfg == NULL)
	{
		snprintf(db->main.error, sizeof(db->main.error),
				 "schema code has version %d (tsv by the codevec_code text search "
				 "configuration) but the server has no codevec_code; "
				 "CREATE EXTENSION codevec (a version with it) first", version);
		goto fail;
	}
	/*
	 * The snippets still without an embedding, for the fill-in pass
	 * (cvl_db_embed): without this index every run walks all the snippets
	 * to find none (0.6 s on the Linux tree's 785k). Small, as rows are
	 * stored with their vectors. Not on a sharded coordinator, whose
	 * snippets are foreign partitions.
	 */
	if (db->has_emb &&
		cvl_session_exec(&db->main, "creating index snippets_emb_missing_idx",
						 cvl_emb_missing_idx_sql) < 0)
		goto fail;
	if (cfg && db->has_emb)
	{
		/* the search surface, re-created so that it follows the loader */
		cvl_buf_init(&sql);
		AppendSubstituted(&sql, tsv_sql, cfg, ext);
		AppendSubstituted(&sql, cvl_search_sql, cfg, ext);
		rc = cvl_session_exec(&db->main, "creating the search functions", sql.data);
		cvl_buf_free(&sql);
		if (rc < 0)
			goto fail;
		/* BM25, when the extension is new enough to have it */
		res = cvl_session_exec_params(&db->main, "looking for codevec_bm25_blocks_topk",
						 "SELECT to_regprocedure(quote_ident(e.nspname) || '.codevec_bm25_blocks_topk(integer[], "
						 "double precision[], integer, regclass, integer)') IS NOT NULL FROM pg_extension x "
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
			rc = cvl_session_exec(&db->main, "creating the BM25 tables and functions", sql.data);
			cvl_buf_free(&sql);
			if (rc < 0)
				goto fail;
		}
	}
	else if (cfg)
	{
		/* no emb column (--dims 0): the tsv function only */
		cvl_buf_init(&sql);
		AppendSubstituted(&sql, tsv_sql, cfg, ext);
		rc = cvl_session_exec(&db->main, "creating code.snippet_tsv", sql.data);
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
		rc = cvl_session_exec(&db->main, "upgrading schema code to version 2 (recomputing tsv)", sql.data);
		cvl_buf_free(&sql);
		if (rc < 0)
			goto fail;
	}
	db->server_tsv = cfg != NULL;
	if (cvl_session_exec(&db->main, "COMMIT", "COMMIT") < 0)
		goto fail;
	free(cfg);
	free(ext);
	return cvl_session_stage(&db->main, db->has_emb);

fail:
	free(cfg);
	free(ext);
	cvl_session_rollback(&db->main);
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
		res = cvl_session_exec_params(&db->main, "registering the repository",
						 "INSERT INTO code.repos (name, root) VALUES ($1, $2) "
						 "ON CONFLICT (name) DO UPDATE SET root = EXCLUDED.root "
						 "RETURNING id", 2, params);
	else
		res = cvl_session_exec_params(&db->main, "looking up the repository",
						 "SELECT id FROM code.repos WHERE name = $1", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1)
	{
		snprintf(db->main.error, sizeof(db->main.error), "no repository named \"%s\"", name);
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
	 * The key is the id's low 31 bits: a shard's ids (tools/shards.sh)
	 * start at shard * 2^32 and do not fit an integer; ids below 2^31 keep
	 * their old key.
	 */
	const char *lp[1] = {db->repo_id_text};

	res = cvl_session_exec_params(&db->main, "locking the repository",
					 "SELECT pg_advisory_lock(1668703596, ($1::bigint & 2147483647)::integer)", 1, lp);
	if (res == NULL)
		return -1;
	PQclear(res);

	const char *p[1] = {db->repo_id_text};

	res = cvl_session_exec_params(&db->main, "reading stored files",
					 "SELECT path, sha256 FROM code.files WHERE repo_id = $1", 1, p);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		cvl_map_put(known, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	return 0;
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
	if (cvl_session_exec(&db->main, "BEGIN", "BEGIN") < 0 ||
		cvl_session_copy_in(&db->main, "COPY cvl_stage_keep FROM STDIN", keep.data, keep.len) < 0 ||
		/*
		 * Statistics, so that the planner hashes the kept paths: without
		 * them it sorted all of them for a merge anti join, on disk past
		 * work_mem and by the database's collation (0.47 s of a 2.1 s
		 * incremental load of the Linux tree on the H200 host, 2026-12-05;
		 * the hash anti join takes 22 ms on the 2-core machine).
		 */
		cvl_session_exec(&db->main, "analyzing the kept paths", "ANALYZE cvl_stage_keep") < 0)
		goto fail;
	res = cvl_session_exec_params(&db->main, "removing vanished files",
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
	if (cvl_session_exec(&db->main, "COMMIT", "COMMIT") < 0)
		goto fail;
	cvl_buf_free(&keep);
	db->stats.t_copy += cvl_clock_now() - t0;
	return 0;

fail:
	cvl_buf_free(&keep);
	cvl_session_rollback(&db->main);
	return -1;
}

/*
 * Bring the BM25 keyword postings (code.bm25_postings) up to date after a
 * load: built the first time, rebuilt when the corpus' average document
 * length has moved by more than 10% since (code.bm25_refresh(0.1); the
 * triggers keep them exact in between) with as many parallel workers as
 * the loader has writers, then VACUUM (ANALYZE) of the
 * postings when they were rebuilt, so that code.search's index-only scans
 * read no heap.  Nothing on a schema without BM25 (an extension older than
 * 0.2.0).  Sets *rebuilt; returns -1 on error.
 */
int
cvl_db_bm25_refresh(CvlDb db, bool *rebuilt)
{
	PGresult   *res;
	char		workers[16];
	double		t0 = cvl_clock_now();

	*rebuilt = false;
	res = cvl_session_exec_params(&db->main, "looking for BM25",
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
	/*
	 * The build reads every snippet in max_parallel_maintenance_workers
	 * parallel workers (default 2): as many as the loader has writer
	 * connections (half the server's cores when it is on this machine, 4
	 * for another), when that is more, for this session only. The server
	 * still caps them by max_parallel_workers and max_worker_processes,
	 * and the postings are the same for any number.
	 */
	snprintf(workers, sizeof(workers), "%d", db->nwriters);
	{
		const char *p[1] = {workers};

		res = cvl_session_exec_params(&db->main, "setting the BM25 build's parallel workers",
						 "SELECT set_config('max_parallel_maintenance_workers', "
						 "greatest(current_setting('max_parallel_maintenance_workers')::integer, "
						 "$1::integer)::text, false)", 1, p);
	}
	if (res == NULL)
		return -1;
	PQclear(res);
	res = cvl_session_exec_params(&db->main, "building the BM25 postings", "SELECT code.bm25_refresh(0.1)", 0, NULL);
	if (res == NULL)
		return -1;
	*rebuilt = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (cvl_session_exec(&db->main, "resetting max_parallel_maintenance_workers",
						 "RESET max_parallel_maintenance_workers") < 0)
		return -1;
	if (*rebuilt && cvl_session_exec(&db->main, "VACUUM of the BM25 postings",
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
	res = cvl_session_exec_params(&db->main, "looking for embed(text[])",
					 "SELECT to_regprocedure('embed(text[])') IS NOT NULL", 0, NULL);
	if (res == NULL)
		return -1;
	*available = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!*available)
		return 0;
	/*
	 * A sharded codevec's coordinator (shards/README.md): its snippets are
	 * foreign partitions, whose rows an UPDATE through it cannot change
	 * (the BM25 triggers' transition tables); nothing to embed is fine
	 * (tools/shards.sh setup runs --embed-only there for the schema),
	 * anything else is embedded on the shards by --coordinator.
	 */
	res = cvl_session_exec_params(&db->main, "looking for snippets without embedding",
					 "SELECT to_regclass('code_shards.shards') IS NOT NULL "
					 "AND EXISTS (SELECT 1 FROM code.snippets WHERE emb IS NULL)", 0, NULL);
	if (res == NULL)
		return -1;
	if (PQgetvalue(res, 0, 0)[0] == 't')
	{
		PQclear(res);
		snprintf(db->main.error, sizeof(db->main.error),
				 "this database is a sharded codevec's coordinator, whose snippets "
				 "without embedding are on its shards; embed them there: "
				 "codevec-load --coordinator CONNINFO --embed-only [--repo NAME] "
				 "(shards/README.md)");
		return -1;
	}
	PQclear(res);
	snprintf(batchtext, sizeof(batchtext), "%d", batch);
	for (;;)
	{
		/* no repository opened (--embed-only without --repo): any bigint */
		const char *p[4] = {db->repo_id_text[0] ? db->repo_id_text : "0",
		batchtext, last, all_repos ? "t" : "f"};

		res = cvl_session_exec_params(&db->main, "embedding snippets",
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
	return db->main.error;
}

/* Return the write counters and timers: the main session's plus every writer's. */
const CvlDbStats *
cvl_db_stats(CvlDb db)
{
	CvlDbStats *t = &db->total;

	*t = db->stats;
	for (int i = 0; i < db->nwriters; i++)
	{
		const CvlDbStats *w = &db->writers[i].stats;

		t->snippets_added += w->snippets_added;
		t->snippets_updated += w->snippets_updated;
		t->snippets_removed += w->snippets_removed;
		t->files_removed += w->files_removed;
		t->snippets_embedded += w->snippets_embedded;
		t->snippets_kept += w->snippets_kept;
		t->batches += w->batches;
		t->t_copy += w->t_copy;
		t->t_stage += w->t_stage;
		t->t_replace += w->t_replace;
		t->t_insert += w->t_insert;
		t->t_commit += w->t_commit;
		t->t_embed_inline += w->t_embed;
	}
	return t;
}

/* Return how many writer connections the store stage uses. */
int
cvl_db_writers(CvlDb db)
{
	return db->nwriters;
}

/* order doubles for qsort */
static int
CompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * Refuse to mix vectors of two models in code.snippets.emb: embed() the
 * stored embed_text of the first CVL_MODEL_PROBES embedded snippets (by id,
 * over every repository: one column, one index) again and compare with
 * their stored vectors; a median cosine distance above
 * CVL_MODEL_MAX_DISTANCE means codevec.model (or codevec.max_tokens) is not
 * what made them.  Cheap: one embed() of three texts, through the primary
 * key.  Nothing is checked when no snippet has a vector yet (a new schema,
 * or after UPDATE code.snippets SET emb = NULL).  Returns 0, or -1 with the
 * session's error set (a mismatch or a failed query).
 */
static int
CheckSameModel(CvlDb db)
{
	char		sql[640];
	PGresult   *res;
	double		dist[CVL_MODEL_PROBES];
	int			n;

	snprintf(sql, sizeof(sql),
			 "SELECT s.id, (s.emb <=> (embed(ARRAY[s.embed_text]))[1])::float8, "
			 "current_setting('codevec.model', true), current_setting('codevec.max_tokens', true) "
			 "FROM (SELECT id, emb, embed_text FROM code.snippets "
			 "WHERE emb IS NOT NULL AND embed_text IS NOT NULL ORDER BY id LIMIT %d) s "
			 "ORDER BY s.id", CVL_MODEL_PROBES);
	res = cvl_session_exec_params(&db->main, "comparing stored embeddings with embed()",
								  sql, 0, NULL);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n == 0)
	{
		PQclear(res);
		return 0;
	}
	for (int i = 0; i < n; i++)
		dist[i] = PQgetisnull(res, i, 1) ? 2.0 : strtod(PQgetvalue(res, i, 1), NULL);
	qsort(dist, n, sizeof(double), CompareDouble);
	if (dist[n / 2] > CVL_MODEL_MAX_DISTANCE)
	{
		snprintf(db->main.error, sizeof(db->main.error),
				 "code.snippets holds embeddings of another model: the stored vectors of "
				 "%d snippets (ids %s..%s) are at a median cosine distance of %.4f from "
				 "embed() of their embed_text now (codevec.model = '%s', codevec.max_tokens = "
				 "%s; the same model stays below %.2f); vectors of two models do not mix "
				 "in one column. To re-embed everything with this model: "
				 "psql -c 'UPDATE code.snippets SET emb = NULL', then codevec-load "
				 "--embed-only; or set codevec.model back to the model that made them",
				 n, PQgetvalue(res, 0, 0), PQgetvalue(res, n - 1, 0), dist[n / 2],
				 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), CVL_MODEL_MAX_DISTANCE);
		snprintf(db->main.sqlstate, sizeof(db->main.sqlstate), "%s", "");
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/*
 * Decide how this run embeds (once, before loading): whether the server
 * has a working embed(text[]) whose vectors fit code.snippets.emb (then the
 * writers store rows with their embeddings), where it runs, and the batch:
 * batch when > 0 (--embed-batch), else CVL_GPU_EMBED_BATCH on the GPU
 * service (codevec_gpu_status() state ready and codevec.device not cpu) and
 * CVL_DEFAULT_EMBED_BATCH on the CPU.  A probe that fails leaves rows to
 * the catch-up pass (cvl_db_embed), which reports the error.  When embed()
 * works and code.snippets already holds vectors, CheckSameModel refuses a
 * model that did not make them.  Returns 0, or -1 when the connection
 * failed or the model differs (the error is set).
 */
int
cvl_db_embed_plan(CvlDb db, int batch, CvlEmbedPlan *plan)
{
	PGresult   *res;

	memset(plan, 0, sizeof(*plan));
	snprintf(plan->device, sizeof(plan->device), "none");
	plan->batch = batch > 0 ? batch : CVL_DEFAULT_EMBED_BATCH;
	plan->connections = db->nwriters;
	db->embed_batch = plan->batch;
	if (!db->has_emb || !db->server_tsv)
		return 0;
	res = cvl_session_exec_params(&db->main, "looking for embed(text[])",
								  "SELECT to_regprocedure('embed(text[])') IS NOT NULL, "
								  "to_regprocedure('codevec_gpu_status()') IS NOT NULL, "
								  "coalesce(current_setting('codevec.device', true), 'auto')",
								  0, NULL);
	if (res == NULL)
		return -1;
	plan->available = PQgetvalue(res, 0, 0)[0] == 't';
	bool		status = PQgetvalue(res, 0, 1)[0] == 't';
	bool		cpu = strcmp(PQgetvalue(res, 0, 2), "cpu") == 0;

	PQclear(res);
	if (!plan->available)
		return 0;
	snprintf(plan->device, sizeof(plan->device), "cpu");
	if (status && !cpu)
	{
		res = PQexec(db->main.conn, "SELECT state FROM codevec_gpu_status()");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			strcmp(PQgetvalue(res, 0, 0), "ready") == 0)
		{
			plan->gpu = true;
			snprintf(plan->device, sizeof(plan->device), "gpu service");
		}
		PQclear(res);
	}
	if (batch <= 0)
		plan->batch = plan->gpu ? CVL_GPU_EMBED_BATCH : CVL_DEFAULT_EMBED_BATCH;
	db->embed_batch = plan->batch;

	/* the probe: embed() works here and its vectors fit the column */
	res = PQexec(db->main.conn,
				 "SELECT codevec_dims(x.e[1]) = coalesce(nullif(a.atttypmod, -1), "
				 "codevec_dims(x.e[1])) FROM (SELECT embed(ARRAY['def probe(): pass']) AS e) x, "
				 "pg_attribute a WHERE a.attrelid = 'code.snippets'::regclass "
				 "AND a.attname = 'emb' AND NOT a.attisdropped");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		PQgetvalue(res, 0, 0)[0] == 't')
		plan->inline_rows = true;
	else
		snprintf(plan->probe_error, sizeof(plan->probe_error), "%.*s",
				 (int) strcspn(PQresultErrorMessage(res), "\n"),
				 PQresultStatus(res) == PGRES_TUPLES_OK ?
				 "embed()'s dimensions differ from code.snippets.emb's" :
				 PQresultErrorMessage(res));
	PQclear(res);
	if (PQstatus(db->main.conn) != CONNECTION_OK)
	{
		cvl_session_set_error(&db->main, "probing embed()", NULL);
		return -1;
	}
	if (plan->inline_rows && CheckSameModel(db) < 0)
		return -1;
	db->embed_inline = plan->inline_rows;
	return 0;
}

/*
 * How many batches were stored without embeddings because embed() failed
 * while writing, and the first such error ("" when none).
 */
int64_t
cvl_db_embed_fallbacks(CvlDb db, const char **message)
{
	int64_t		n;

	pthread_mutex_lock(&db->lock);
	n = db->embed_fallbacks;
	*message = db->embed_failure;
	pthread_mutex_unlock(&db->lock);
	return n;
}

/* Close the connections, stop the writers and free the db (NULL is fine). */
void
cvl_db_delete(CvlDb db)
{
	if (db == NULL)
		return;
	if (db->writers)
	{
		cvl_write_stop(db);
		cvl_write_free(db);
	}
	cvl_buf_free(&db->words);
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->cond);
	if (db->main.conn)
		PQfinish(db->main.conn);
	free(db->conninfo);
	free(db);
}
