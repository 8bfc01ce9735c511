/*
 * write.c -- the store stage of codevec-load: COPY batches written by
 * several writer threads, each on its own server connection.
 *
 * The pipeline (issue 23): the parser threads (pool.c) hand files in order
 * to the main thread, which turns each into COPY lines of the batch it is
 * filling (cvl_db_file_add).  A full batch goes to a queue; --connections
 * writer threads take batches from it, each writing one batch per
 * transaction on its own connection, so that the server computes tsvectors,
 * maintains the indexes and embeds on as many backends as there are
 * writers while the parsers go on.  nwriters + 1 batches exist in all (one
 * being filled, the others queued or being written): when every one is
 * taken the main thread waits, so memory stays bounded.  Batches touch
 * disjoint files, so they commit in any order.
 *
 * A batch closes at --batch-files files, CVL_BATCH_MAX_BYTES of COPY data
 * or, when rows are stored with their embeddings, at the embedding batch
 * (cvl_db_embed_plan: large on the GPU service, small on the CPU); a file
 * is never split across batches.
 *
 * One transaction per batch:
 *   1. COPY the batch's files into temp table cvl_stage_files and their
 *      snippets into cvl_stage_snippets (ON COMMIT DELETE ROWS);
 *   2. when some file was loaded before: delete its old snippets; with
 *      embeddings, the old (path, embed_text, emb) go to cvl_stage_old
 *      first, so a snippet whose embed_text did not change keeps its
 *      vector and is not embedded again;
 *   3. upsert code.files (ON CONFLICT (repo_id, path));
 *   4. with embeddings: one embed(text[]) call over the embed_texts that
 *      have no kept vector, into temp table cvl_stage_emb;
 *   5. insert the snippets joined to their file ids, with tsv computed by
 *      code.snippet_tsv() (version 2; 'simple' words from the loader for
 *      version 1) and emb from step 4 or 2: every row is written once,
 *      there is no UPDATE pass that rewrites it and its index entries;
 *   6. COMMIT.  A file's old and new snippets are never both visible.
 *
 * Isolation: when the server refuses a batch for something in its rows (a
 * CHECK constraint, a trigger, a value too long for a tsvector: any error
 * while the connection is fine, except the classes that say the session or
 * server is in trouble, see IsRowError()), the batch is rolled back and
 * written again in two halves, each half the same way (bisection: a batch
 * of 500 files with one bad file costs about 2 log2(500) = 18 more
 * transactions).  A single file still refused is rejected: its rows are
 * not written, it is recorded with the server's message
 * (cvl_db_drain_rejected(); main counts it as `rejected`, names it with -v
 * and exits 1).  A batch that fails while embedding is written again
 * without embeddings first (the rows are stored, embed() is not retried
 * for the rest of the run, and the catch-up pass, cvl_db_embed(), embeds
 * them and reports embed()'s error); only then does bisection look for
 * bad rows.  A connection failure or a server-wide error stops every
 * writer and ends the run (batches committed before it stay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbint.h"

static const char *InsertServerTsvSql =
"INSERT INTO code.snippets (file_id, kind, symbol, qualified_name, signature, "
"doc, start_line, end_line, code, embed_text, tsv) "
"SELECT f.id, st.kind, st.symbol, st.qualified_name, st.signature, st.doc, "
"st.start_line, st.end_line, st.code, st.embed_text, "
"code.snippet_tsv(st.qualified_name, st.signature, st.doc, st.code) "
"FROM cvl_stage_snippets st "
"JOIN code.files f ON f.repo_id = $1 AND f.path = st.path "
"ORDER BY st.path, st.ord";

static const char *InsertEmbeddedSql =
"INSERT INTO code.snippets (file_id, kind, symbol, qualified_name, signature, "
"doc, start_line, end_line, code, embed_text, emb, tsv) "
"SELECT f.id, st.kind, st.symbol, st.qualified_name, st.signature, st.doc, "
"st.start_line, st.end_line, st.code, st.embed_text, coalesce(e.emb, o.emb), "
"code.snippet_tsv(st.qualified_name, st.signature, st.doc, st.code) "
"FROM cvl_stage_snippets st "
"JOIN code.files f ON f.repo_id = $1 AND f.path = st.path "
"LEFT JOIN cvl_stage_emb e ON e.path = st.path AND e.ord = st.ord "
"LEFT JOIN cvl_stage_old o ON o.path = st.path AND o.embed_text = st.embed_text "
"ORDER BY st.path, st.ord";

static const char *InsertSimpleSql =
"INSERT INTO code.snippets (file_id, kind, symbol, qualified_name, signature, "
"doc, start_line, end_line, code, embed_text, tsv) "
"SELECT f.id, st.kind, st.symbol, st.qualified_name, st.signature, st.doc, "
"st.start_line, st.end_line, st.code, st.embed_text, "
"setweight(to_tsvector('simple', coalesce(st.words_a, '')), 'A') || "
"setweight(to_tsvector('simple', coalesce(st.words_b, '')), 'B') || "
"setweight(to_tsvector('simple', coalesce(st.words_c, '')), 'C') || "
"setweight(to_tsvector('simple', coalesce(st.words_d, '')), 'D') "
"FROM cvl_stage_snippets st "
"JOIN code.files f ON f.repo_id = $1 AND f.path = st.path "
"ORDER BY st.path, st.ord";

static const char *DeleteSql =
"WITH d AS (DELETE FROM code.snippets s "
"USING code.files f, cvl_stage_files st "
"WHERE s.file_id = f.id AND f.repo_id = $1 AND f.path = st.path "
"RETURNING 1) SELECT count(*) FROM d";

/* delete, keeping the old vectors of each (path, embed_text) for reuse */
static const char *DeleteKeepSql =
"WITH d AS (DELETE FROM code.snippets s "
"USING code.files f, cvl_stage_files st "
"WHERE s.file_id = f.id AND f.repo_id = $1 AND f.path = st.path "
"RETURNING f.path, s.embed_text, s.emb), "
"k AS (INSERT INTO cvl_stage_old (path, embed_text, emb) "
"SELECT DISTINCT ON (d.path, d.embed_text) d.path, d.embed_text, d.emb "
"FROM d WHERE d.emb IS NOT NULL) "
"SELECT count(*) FROM d";

static const char *UpsertFilesSql =
"INSERT INTO code.files AS f (repo_id, path, language, bytes, sha256, indexed_at) "
"SELECT $1, path, language, bytes, sha256, now() FROM cvl_stage_files "
"ON CONFLICT (repo_id, path) DO UPDATE SET "
"language = EXCLUDED.language, bytes = EXCLUDED.bytes, "
"sha256 = EXCLUDED.sha256, indexed_at = EXCLUDED.indexed_at";

/* one embed(text[]) call over the staged texts that kept no vector */
static const char *EmbedSql =
"INSERT INTO cvl_stage_emb (path, ord, emb) "
"SELECT u.path, u.ord, u.v FROM "
"(SELECT array_agg(x.path ORDER BY x.path, x.ord) AS paths, "
"        array_agg(x.ord ORDER BY x.path, x.ord) AS ords, "
"        array_agg(x.embed_text ORDER BY x.path, x.ord) AS texts "
" FROM cvl_stage_snippets x WHERE NOT EXISTS (SELECT 1 FROM cvl_stage_old o "
"   WHERE o.path = x.path AND o.embed_text = x.embed_text)) t, "
"unnest(t.paths, t.ords, embed(t.texts)) AS u(path, ord, v)";

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

/* Empty a batch for reuse, keeping its memory. */
static void
BatchReset(CvlBatch *b)
{
	cvl_buf_reset(&b->files);
	cvl_buf_reset(&b->snippets);
	b->nfiles = 0;
	b->nsnippets = 0;
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
IsRowError(CvlSession s)
{
	static const char *global[] = {
		"08", "0A", "25", "28", "3D", "3F", "40", "42", "53", "57", "58", "XX",
	};

	if (s->sqlstate[0] == '\0' || PQstatus(s->conn) != CONNECTION_OK)
		return false;
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
		if (strncmp(s->sqlstate, global[i], 2) == 0)
			return false;
	return true;
}

/*
 * Run a statement (with the repository id as $1 when it has one); returns
 * its first value (tuples) or its row count, or -1 (error set).
 */
static int64_t
ExecCount(CvlWriterData *w, const char *what, const char *sql, bool tuples)
{
	const char *p[1] = {w->db->repo_id_text};
	PGresult   *res = cvl_session_exec_params(&w->s, what, sql,
											  strstr(sql, "$1") ? 1 : 0, p);
	int64_t		n;

	if (res == NULL)
		return -1;
	n = tuples ? atoll(PQgetvalue(res, 0, 0)) : atoll(PQcmdTuples(res));
	PQclear(res);
	return n;
}

/*
 * Write files [lo, hi) of a batch in one transaction (writer thread), with
 * embeddings when embed.  Returns 0, 1 when the server refused the rows
 * (IsRowError(); rolled back, the message in w->s.error), or -1 for any
 * other error.
 */
static int
WriteRange(CvlWriterData *w, CvlBatch *b, int lo, int hi, bool embed)
{
	CvlDb		db = w->db;
	CvlSession	s = &w->s;
	CvlDbStats *st = &w->stats;
	double		t0 = cvl_clock_now(),
				t1,
				t2,
				t3,
				t4;
	int64_t		deleted = 0,
				embedded = 0;
	size_t		f0 = b->entries[lo].files_off,
				f1 = hi < b->nfiles ? b->entries[hi].files_off : b->files.len;
	size_t		s0 = b->entries[lo].snippets_off,
				s1 = hi < b->nfiles ? b->entries[hi].snippets_off : b->snippets.len;
	int64_t		new_snippets = 0,
				changed_snippets = 0;
	bool		any_known = false;
	const char *insert;

	for (int i = lo; i < hi; i++)
	{
		if (b->entries[i].file->known)
		{
			changed_snippets += b->entries[i].nsnippets;
			any_known = true;
		}
		else
			new_snippets += b->entries[i].nsnippets;
	}
	s->sqlstate[0] = '\0';
	if (cvl_session_exec(s, "BEGIN", "BEGIN") < 0 ||
		cvl_session_copy_in(s, "COPY cvl_stage_files FROM STDIN", b->files.data + f0, f1 - f0) < 0 ||
		cvl_session_copy_in(s, "COPY cvl_stage_snippets FROM STDIN", b->snippets.data + s0, s1 - s0) < 0)
		goto fail;
	/*
	 * Statistics for the staged files when some are known: without them the
	 * planner takes the temporary table for hundreds of rows and deletes
	 * the old snippets through a hash join over every snippet of the
	 * database (0.5 s on the Linux tree) instead of probing by file
	 */
	if (any_known && cvl_session_exec(s, "analyzing the staged files", "ANALYZE cvl_stage_files") < 0)
		goto fail;
	t1 = cvl_clock_now();
	st->t_stage += t1 - t0;
	/* a batch of new files has no old snippets: no delete to run */
	if (any_known &&
		(deleted = ExecCount(w, "deleting old snippets",
							 embed ? DeleteKeepSql : DeleteSql, true)) < 0)
		goto fail;
	if (ExecCount(w, "writing code.files", UpsertFilesSql, false) < 0)
		goto fail;
	t2 = cvl_clock_now();
	st->t_replace += t2 - t1;
	if (embed && (embedded = ExecCount(w, "embedding snippets", EmbedSql, false)) < 0)
		goto fail;
	t3 = cvl_clock_now();
	st->t_embed += t3 - t2;
	insert = embed ? InsertEmbeddedSql : db->server_tsv ? InsertServerTsvSql : InsertSimpleSql;
	if (ExecCount(w, "writing code.snippets", insert, false) < 0)
		goto fail;
	t4 = cvl_clock_now();
	st->t_insert += t4 - t3;
	if (cvl_session_exec(s, "COMMIT", "COMMIT") < 0)
		goto fail;
	st->t_commit += cvl_clock_now() - t4;

	int64_t		changed = changed_snippets;

	st->snippets_added += new_snippets + (changed > deleted ? changed - deleted : 0);
	st->snippets_updated += changed < deleted ? changed : deleted;
	st->snippets_removed += deleted > changed ? deleted - changed : 0;
	if (embed)
	{
		st->snippets_embedded += embedded;
		st->snippets_kept += new_snippets + changed_snippets - embedded;
	}
	st->batches++;
	st->t_copy += cvl_clock_now() - t0;
	return 0;

fail:
	{
		bool		rows = IsRowError(s);

		cvl_session_rollback(s);
		st->t_copy += cvl_clock_now() - t0;
		return rows ? 1 : -1;
	}
}

/* Record that the server refused file entry e (writer thread). */
static void
AddRejection(CvlWriterData *w, const CvlBatchFile *e)
{
	CvlDb		db = w->db;

	pthread_mutex_lock(&db->lock);
	if (db->nrejected == db->rejected_cap)
	{
		db->rejected_cap = db->rejected_cap ? db->rejected_cap * 2 : 16;
		db->rejected = cvl_realloc(db->rejected,
								   (size_t) db->rejected_cap * sizeof(CvlRejection));
	}
	db->rejected[db->nrejected].file = e->file;
	db->rejected[db->nrejected].nsnippets = e->nsnippets;
	/* the first line: "writing code.snippets: ERROR:  new row ... violates ..." */
	db->rejected[db->nrejected].message = cvl_strndup(w->s.error, strcspn(w->s.error, "\n"));
	db->nrejected++;
	pthread_mutex_unlock(&db->lock);
}

/* Should this writer store rows with their embeddings now? */
static bool
EmbedNow(CvlDb db)
{
	bool		on;

	pthread_mutex_lock(&db->lock);
	on = db->embed_inline;
	pthread_mutex_unlock(&db->lock);
	return on;
}

/*
 * Write files [lo, hi) of a batch, bisecting when the server refuses the
 * rows (see the top of this file) until the files it refuses are alone,
 * which are rejected.  Returns 0, or -1 for an error that ends the run.
 */
static int
WriteIsolated(CvlWriterData *w, CvlBatch *b, int lo, int hi, bool embed)
{
	CvlDb		db = w->db;
	int			rc = WriteRange(w, b, lo, hi, embed);

	if (rc == 0)
		return 0;
	if (embed)
	{
		/*
		 * Maybe embed() failed (no model, a dimension mismatch, the GPU
		 * service): store the rows without embeddings and stop embedding
		 * inline; the catch-up pass embeds them and reports its error.
		 */
		char		first[256];

		snprintf(first, sizeof(first), "%.*s", (int) strcspn(w->s.error, "\n"), w->s.error);
		rc = WriteIsolated(w, b, lo, hi, false);
		pthread_mutex_lock(&db->lock);
		if (db->embed_inline)
		{
			db->embed_inline = false;
			snprintf(db->embed_failure, sizeof(db->embed_failure), "%s", first);
		}
		db->embed_fallbacks++;
		pthread_mutex_unlock(&db->lock);
		return rc;
	}
	if (rc < 0)
		return -1;
	if (hi - lo == 1)
	{
		AddRejection(w, &b->entries[lo]);
		w->s.error[0] = '\0';
		return 0;
	}
	int			mid = lo + (hi - lo) / 2;

	if (WriteIsolated(w, b, lo, mid, false) < 0)
		return -1;
	return WriteIsolated(w, b, mid, hi, false);
}

/*
 * Writer thread: take handed-off batches from the queue and write each,
 * one transaction per batch, until told to quit.  The first error stops
 * every writer: its message goes to db->main.error for the main thread.
 */
static void *
WriterMain(void *arg)
{
	CvlWriterData *w = arg;
	CvlDb		db = w->db;

	pthread_mutex_lock(&db->lock);
	for (;;)
	{
		while (db->qlen == 0 && !db->writer_quit)
			pthread_cond_wait(&db->cond, &db->lock);
		if (db->qlen == 0)
			break;
		CvlBatch   *b = db->queue[db->qhead];

		db->qhead = (db->qhead + 1) % db->nbatches;
		db->qlen--;
		db->busy++;
		bool		failed = db->failed;

		pthread_mutex_unlock(&db->lock);
		/* after a failure the queued batches are dropped, not written */
		int			rc = failed ? -1 : WriteIsolated(w, b, 0, b->nfiles, EmbedNow(db));

		BatchReset(b);
		pthread_mutex_lock(&db->lock);
		if (rc < 0 && !db->failed)
		{
			char		errbuf[256];

			/* the first error ends the run: stop what the others are doing */
			db->failed = true;
			snprintf(db->main.error, sizeof(db->main.error), "%s", w->s.error);
			for (int i = 0; i < db->nwriters; i++)
				if (&db->writers[i] != w && db->writers[i].cancel)
					PQcancel(db->writers[i].cancel, errbuf, sizeof(errbuf));
		}
		db->busy--;
		db->spare[db->nspare++] = b;
		pthread_cond_broadcast(&db->cond);
	}
	pthread_mutex_unlock(&db->lock);
	return NULL;
}

/*
 * Connect the writers and start their threads (main thread, at the first
 * hand-off: the repository and the embedding plan are known by then).
 * Returns 0, or -1 with the message in db->main.error.
 */
static int
StartWriters(CvlDb db)
{
	char		err[512];

	for (int i = 0; i < db->nwriters; i++)
	{
		CvlWriterData *w = &db->writers[i];

		w->db = db;
		w->s.conn = cvl_session_connect(db->conninfo, err, sizeof(err));
		if (w->s.conn == NULL)
		{
			snprintf(db->main.error, sizeof(db->main.error), "writer connection %d: %s",
					 i + 1, err);
			return -1;
		}
		w->cancel = PQgetCancel(w->s.conn);
		if (cvl_session_stage(&w->s, db->has_emb) < 0)
		{
			snprintf(db->main.error, sizeof(db->main.error), "%s", w->s.error);
			return -1;
		}
		if (pthread_create(&w->thread, NULL, WriterMain, w) != 0)
		{
			snprintf(db->main.error, sizeof(db->main.error), "cannot start a writer thread");
			return -1;
		}
		w->running = true;
	}
	return 0;
}

/*
 * Queue the filling batch for the writers and take a spare one to fill
 * (waiting while all are queued or being written), so that parsing goes on
 * while the server works; with wait, also wait until every queued batch
 * is written.  Returns 0, or -1 once any batch failed.
 */
static int
HandOff(CvlDb db, bool wait)
{
	/* nothing was ever written (a run that changed nothing): no connections */
	if (!db->writers_started && db->filling->nfiles == 0)
		return 0;
	if (!db->writers_started)
	{
		db->writers_started = true;
		if (StartWriters(db) < 0)
		{
			pthread_mutex_lock(&db->lock);
			db->failed = true;
			pthread_mutex_unlock(&db->lock);
			BatchReset(db->filling);
			return -1;
		}
	}
	pthread_mutex_lock(&db->lock);
	if (!db->failed && db->filling->nfiles > 0)
	{
		db->queue[(db->qhead + db->qlen) % db->nbatches] = db->filling;
		db->qlen++;
		pthread_cond_broadcast(&db->cond);
		while (db->nspare == 0)
			pthread_cond_wait(&db->cond, &db->lock);
		db->filling = db->spare[--db->nspare];
	}
	if (wait)
		while (db->qlen > 0 || db->busy > 0)
			pthread_cond_wait(&db->cond, &db->lock);
	bool		failed = db->failed;

	pthread_mutex_unlock(&db->lock);
	if (failed)
		BatchReset(db->filling);
	return failed ? -1 : 0;
}

/*
 * Add one processed file to the current batch: parsed files are staged
 * (with all their snippets, so a file is never split across transactions);
 * others need no write here.  Hands the batch off when it is full.
 * Returns 0 or -1 (a database error; the writers stopped).
 */
int
cvl_db_file_add(CvlDb db, CvlFile f)
{
	double		t0 = cvl_clock_now();
	CvlBatch   *b = db->filling;
	CvlBuf		fb = &b->files;
	CvlBuf		sb = &b->snippets;

	if (f->status != CVL_FILE_PARSED)
		return 0;
	if (b->nfiles == b->entries_cap)
	{
		b->entries_cap = b->entries_cap ? b->entries_cap * 2 : 64;
		b->entries = cvl_realloc(b->entries, (size_t) b->entries_cap * sizeof(CvlBatchFile));
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
	b->nsnippets += f->nsnippets;
	db->stats.t_rows += cvl_clock_now() - t0;
	/* the plan is read without the lock: a stale value only sizes a batch */
	if (b->nfiles >= db->batch_files ||
		fb->len + sb->len >= CVL_BATCH_MAX_BYTES ||
		(db->embed_inline && b->nsnippets >= db->embed_batch))
		return HandOff(db, false);
	return 0;
}

/* Write everything added so far and wait for it.  Returns 0 or -1. */
int
cvl_db_flush(CvlDb db)
{
	return HandOff(db, true);
}

/*
 * Hand every file the server refused since the last call to fn (main
 * thread): the file (its snippets already freed), how many snippets it
 * had, and the server's message.
 */
void
cvl_db_drain_rejected(CvlDb db, CvlDbRejectFn fn, void *arg)
{
	CvlRejection *list;
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

/* Set up the store stage for nwriters writer connections (none started yet). */
void
cvl_write_init(CvlDb db, int nwriters)
{
	db->nwriters = nwriters < 1 ? 1 : nwriters;
	db->writers = cvl_malloc(sizeof(CvlWriterData) * (size_t) db->nwriters);
	memset(db->writers, 0, sizeof(CvlWriterData) * (size_t) db->nwriters);
	db->nbatches = db->nwriters + 1;
	db->batches = cvl_malloc(sizeof(CvlBatch) * (size_t) db->nbatches);
	memset(db->batches, 0, sizeof(CvlBatch) * (size_t) db->nbatches);
	db->queue = cvl_malloc(sizeof(CvlBatch *) * (size_t) db->nbatches);
	db->spare = cvl_malloc(sizeof(CvlBatch *) * (size_t) db->nbatches);
	for (int i = 0; i < db->nbatches; i++)
	{
		cvl_buf_init(&db->batches[i].files);
		cvl_buf_init(&db->batches[i].snippets);
		if (i > 0)
			db->spare[db->nspare++] = &db->batches[i];
	}
	db->filling = &db->batches[0];
}

/* Stop the writer threads (after the last flush) and close their connections. */
void
cvl_write_stop(CvlDb db)
{
	if (db->writers == NULL)
		return;
	pthread_mutex_lock(&db->lock);
	db->writer_quit = true;
	pthread_cond_broadcast(&db->cond);
	pthread_mutex_unlock(&db->lock);
	for (int i = 0; i < db->nwriters; i++)
	{
		CvlWriterData *w = &db->writers[i];

		if (w->running)
			pthread_join(w->thread, NULL);
		w->running = false;
		if (w->cancel)
			PQfreeCancel(w->cancel);
		w->cancel = NULL;
		if (w->s.conn)
			PQfinish(w->s.conn);
		w->s.conn = NULL;
	}
}

/* Free the store stage's memory (after cvl_write_stop). */
void
cvl_write_free(CvlDb db)
{
	for (int i = 0; i < db->nbatches; i++)
	{
		cvl_buf_free(&db->batches[i].files);
		cvl_buf_free(&db->batches[i].snippets);
		free(db->batches[i].entries);
	}
	free(db->batches);
	free(db->queue);
	free(db->spare);
	free(db->writers);
	for (int i = 0; i < db->nrejected; i++)
		free(db->rejected[i].message);
	free(db->rejected);
}
