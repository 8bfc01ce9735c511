/*
 * main.c -- codevec-load: command line, progress, summary, exit codes.
 *
 * For each PATH: walk (walk.c), then parse on all cores (pool.c) while this
 * thread writes results in file order either as JSON lines on stdout
 * (--jsonl) or to the database in COPY batches (db.c); then remove files
 * that disappeared and embed new snippets.  See --help for the surface.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "cvl.h"

#ifndef CVL_VERSION
#error "CVL_VERSION comes from codevec.control's default_version (loaders/Makefile)"
#endif
#ifndef CVL_GRAMMAR_VERSIONS
#define CVL_GRAMMAR_VERSIONS "unknown"	/* set by the Makefile */
#endif

typedef struct Options
{
	const char *conninfo;
	const char *coordinator;	/* --coordinator: load the repository's shard */
	const char *repo;
	bool		jsonl;
	bool		no_embed;
	bool		no_bm25;		/* leave the BM25 keyword postings as they are */
	bool		embed_only;
	bool		verbose;
	int			progress;		/* -1 auto, 0 off, 1 on */
	int			jobs;
	int			dims;
	int			batch_files;
	int			embed_batch;	/* 0: by the device (cvl_db_embed_plan) */
	int			connections;	/* 0: by the server's cores */
	int64_t		max_file_bytes;
	CvlWalkOptions walk;
	CvlExtractOptions extract;
} Options;

typedef struct Stats
{
	int64_t		seen;
	int64_t		status[CVL_FILE_STATUS_COUNT];
	int64_t		walk_skips[CVL_WALK_SKIP_COUNT];
	int64_t		syntax_errors;
	int64_t		snippets;		/* extracted */
	int64_t		bytes;			/* of parsed files */
	int64_t		new_files;
	int64_t		changed_files;
	int64_t		decoded_files;	/* from a declared encoding or UTF-16/32 */
	int64_t		bom_files;		/* UTF-8 with a byte order mark */
	int64_t		replaced_files; /* with invalid UTF-8 made U+FFFD */
	int64_t		replaced;		/* sequences replaced, in all */
	double		t_read;
	double		t_parse;
	double		t_extract;
	double		t_walk;
	double		t_start;
} Stats;

typedef struct Run
{
	const Options *options;
	Stats	   *stats;
	CvlDb		db;
	CvlBufData	out;			/* JSONL output buffer */
	size_t		done;			/* files emitted in this PATH */
	size_t		total;
	int64_t		snippets_at_start;
	double		t_path_start;
	double		t_last_progress;
	bool		tty;
	bool		db_failed;
} Run;

/*
 * codevec-load --coordinator C --embed-only (no --repo): fill the missing
 * embeddings of every shard the coordinator lists (cvl_shard_list), each
 * by a direct connection to the shard (an UPDATE through the coordinator's
 * foreign partitions cannot work: shards/README.md), one shard after the
 * other; says per shard how many it embedded unless quiet.  The
 * coordinator keeps nothing derived from emb, so it needs no refresh.
 * Returns an exit status: 0, or CVL_EXIT_DB at the first shard that fails
 * (its number and reason on stderr; shards before it stay embedded).
 */
static int
EmbedShards(const Options *o, bool quiet)
{
	char		err[512];
	int			n;
	int		   *shards;
	char	  **conninfos;
	int			rc = CVL_EXIT_OK;

	if (cvl_shard_list(o->coordinator, &n, &shards, &conninfos, err, sizeof(err)) < 0)
	{
		fprintf(stderr, "codevec-load: %s\n", err);
		return CVL_EXIT_DB;
	}
	for (int i = 0; i < n && rc == CVL_EXIT_OK; i++)
	{
		CvlEmbedPlan plan;
		bool		available = true;
		CvlDb		db = cvl_db_new(conninfos[i], o->dims, o->batch_files, 1,
									err, sizeof(err));

		if (db == NULL)
		{
			fprintf(stderr, "codevec-load: shard %d: %s\n", shards[i], err);
			rc = CVL_EXIT_DB;
			break;
		}
		memset(&plan, 0, sizeof(plan));
		if (cvl_db_schema_ensure(db) < 0 ||
			cvl_db_embed_plan(db, o->embed_batch, &plan) < 0 ||
			cvl_db_embed(db, plan.batch, true, &available) < 0)
		{
			fprintf(stderr, "codevec-load: shard %d: %s\n", shards[i], cvl_db_error(db));
			rc = CVL_EXIT_DB;
		}
		else if (!available)
			fprintf(stderr, "codevec-load: shard %d: notice: nothing embedded: the "
					"server has no embed(text[]) function yet, or code.snippets has "
					"no emb column\n", shards[i]);
		else if (!quiet)
			fprintf(stderr, "codevec-load: shard %d: %lld snippets embedded (%s, %d per call)\n",
					shards[i], (long long) cvl_db_stats(db)->snippets_embedded,
					plan.device, plan.batch);
		cvl_db_delete(db);
	}
	for (int i = 0; i < n; i++)
		free(conninfos[i]);
	free(conninfos);
	free(shards);
	return rc;
}

/* Print the usage text. */
static void
PrintHelp(void)
{
	printf(
		   "codevec-load %s -- load source trees into codevec's code.* tables\n"
		   "\n"
		   "Usage: codevec-load [OPTION]... PATH...\n"
		   "       codevec-load --embed-only [--repo NAME] [-d CONNINFO]\n"
		   "       codevec-load --embed-only [--repo NAME] --coordinator CONNINFO\n"
		   "\n"
		   "Parses every C, C++, Python, JavaScript, TypeScript/TSX, Go, Rust and Java\n"
		   "file under each PATH with tree-sitter and stores its functions, methods,\n"
		   "classes and types in code.repos / code.files / code.snippets (schema created\n"
		   "if missing).  A second run re-parses only files whose SHA-256 changed and\n"
		   "removes files that disappeared.\n"
		   "\n"
		   "Connection (standard libpq: PGHOST, PGPORT, PGUSER, PGDATABASE, ... apply):\n"
		   "  -d, --dbname=CONNINFO   database name or conninfo string / URI\n"
		   "      --repo=NAME         repository name (default: PATH's base name;\n"
		   "                          only with a single PATH)\n"
		   "      --coordinator=CONNINFO  a sharded codevec (shards/README.md): load\n"
		   "                          the repository into the shard the coordinator's\n"
		   "                          code.shard_for(NAME, number of shards) names\n"
		   "                          (its conninfo from code_shards.shards), then run\n"
		   "                          code.shard_refresh() on the coordinator (its\n"
		   "                          BM25 postings and statistics; not with\n"
		   "                          --no-bm25: refresh later).  One PATH; instead\n"
		   "                          of -d.  With --embed-only: fill the missing\n"
		   "                          embeddings of every shard (or --repo NAME's\n"
		   "                          shard), each shard directly; re-embed a sharded\n"
		   "                          codevec so (-d COORDINATOR --embed-only cannot:\n"
		   "                          the coordinator's partitions are foreign tables)\n"
		   "      --dims=D            dimension of code.snippets.emb codevec(D) when the\n"
		   "                          table is created (default %d; 0: no emb column,\n"
		   "                          for servers without the codevec extension)\n"
		   "\n"
		   "What to load:\n"
		   "      --include=GLOB      load only files matching GLOB (repeatable)\n"
		   "      --exclude=GLOB      skip files and directories matching GLOB\n"
		   "                          (repeatable); globs match the path relative to\n"
		   "                          PATH or the base name (fnmatch)\n"
		   "      --max-file-bytes=N  skip larger files (default %d = 1 MiB; K/M/G ok)\n"
		   "  .gitignore, .git/info/exclude are honoured when PATH is in a git work\n"
		   "  tree; .git and symlinks are always skipped.\n"
		   "\n"
		   "Output and embedding:\n"
		   "      --jsonl             write snippets as JSON lines to stdout, no database\n"
		   "      --no-embed          do not call embed() for new snippets\n"
		   "      --no-bm25           leave the BM25 keyword postings as they are (by\n"
		   "                          default a load builds them the first time and\n"
		   "                          rebuilds them when the average snippet length\n"
		   "                          moved by 10%%: code.bm25_refresh(0.1), with\n"
		   "                          max_parallel_maintenance_workers raised to the\n"
		   "                          writer connections for it)\n"
		   "      --embed-only        only fill missing embeddings (no parsing)\n"
		   "      --embed-batch=N     snippets per embed(text[]) call and per transaction\n"
		   "                          (default: %d on the server's GPU service, %d on the CPU)\n"
		   "      --embed-fields=LIST what embed_text holds, a comma list of path, kind,\n"
		   "                          name, signature, doc, body (default: name,\n"
		   "                          signature,doc,body; the text keeps that order)\n"
		   "      --embed-max-bytes=N cut embed_text to N bytes (default %d, about half\n"
		   "                          the encoder's 256-token budget; K/M ok)\n"
		   "      --embed-words=MODE  identifiers in embed_text as words, split like\n"
		   "                          codevec_code's parser (parseHTTPConfig: parse http\n"
		   "                          config): none (as in the source), name (a first\n"
		   "                          line of the name's words), all (every identifier),\n"
		   "                          name+all (default: both, the name line kept as\n"
		   "                          is), bare (all, no punctuation)\n"
		   "      --strip-docs        index code without its documentation: doc is NULL,\n"
		   "                          not embedded nor in tsv, and Python docstrings\n"
		   "                          (and doc comments of nested definitions) are cut\n"
		   "                          out of code; lines keep their numbers\n"
		   "      --batch-files=N     files per transaction (default %d)\n"
		   "  -j, --jobs=N            parser threads (default: number of cores)\n"
		   "      --connections=N     server connections writing (and embedding) in\n"
		   "                          parallel (default: half the cores, 2 to 8, for a\n"
		   "                          server on this machine; 4 for one elsewhere)\n"
		   "\n"
		   "Messages:\n"
		   "      --progress / --no-progress   force the progress display on or off\n"
		   "                          (default: a bar on a terminal, else a line / 10 s)\n"
		   "  -v, --verbose           name every skipped file and why, and every file\n"
		   "                          decoded or repaired (see Text below)\n"
		   "  -q, --quiet             no progress and no summary\n"
		   "  -h, --help              show this help;  -V, --version  show the version\n"
		   "\n"
		   "Text: files are read as Python and editors read them.  A UTF-8 byte order\n"
		   "  mark is dropped; UTF-16 and UTF-32 files with a BOM are decoded; a declared\n"
		   "  encoding is decoded with iconv (Python: PEP 263's coding: comment on line\n"
		   "  1 or 2; other languages: an Emacs -*- coding: NAME -*- cookie on line 1,\n"
		   "  or 2 after #!); an unknown encoding, or bytes it cannot decode, skip the\n"
		   "  file (reason: encoding).  Otherwise the text is UTF-8, and invalid bytes\n"
		   "  do not skip the file: each invalid sequence becomes U+FFFD (as Python's\n"
		   "  errors='replace' does), counted in the summary.  A file name that is not\n"
		   "  UTF-8 is skipped (path-not-utf8).  Every text cut (signature, doc,\n"
		   "  embed_text) ends on a character boundary.\n"
		   "\n"
		   "Skip reasons: gitignored, excluded, no-grammar, symlink, special,\n"
		   "  unreadable-dir (walk); too-large, empty, binary, encoding, path-not-utf8,\n"
		   "  unreadable, vanished, parse-failed, invalid-output (a loader bug: text\n"
		   "  that is not UTF-8 is never sent), rejected (the server refused the\n"
		   "  file's rows: the rest of its batch is written, the file keeps its old\n"
		   "  rows and the next run tries it again).\n"
		   "\n"
		   "Exit status:\n"
		   "  0  everything loaded (policy skips such as binary or too large are fine)\n"
		   "  1  partial success: some files or directories could not be read or\n"
		   "     parsed, or the server rejected some files (unreadable, unreadable-dir,\n"
		   "     parse-failed, invalid-output, rejected); embedding still ran\n"
		   "  2  usage error\n"
		   "  3  connection or database error (batches committed before it stay),\n"
		   "     or code.snippets holds vectors of another model than codevec.model's\n"
		   "     (nothing written; re-embed: UPDATE code.snippets SET emb = NULL,\n"
		   "     then --embed-only; sharded: both on every shard, the second as\n"
		   "     --coordinator CONNINFO --embed-only)\n"
		   "  4  internal error: out of memory, PATH missing, bad grammar ABI\n",
		   CVL_VERSION, CVL_DEFAULT_DIMS, CVL_DEFAULT_MAX_FILE_BYTES,
		   CVL_GPU_EMBED_BATCH, CVL_DEFAULT_EMBED_BATCH, CVL_EMBED_TEXT_MAX_BYTES,
		   CVL_DEFAULT_BATCH_FILES);
}

/* Parse a positive size with an optional K/M/G suffix; -1 on error. */
static int64_t
ParseSize(const char *s)
{
	char	   *end;
	long long	v = strtoll(s, &end, 10);

	if (end == s || v < 0)
		return -1;
	switch (*end)
	{
		case '\0':
			return v;
		case 'k':
		case 'K':
			v *= 1024;
			break;
		case 'm':
		case 'M':
			v *= 1024 * 1024;
			break;
		case 'g':
		case 'G':
			v *= 1024LL * 1024 * 1024;
			break;
		default:
			return -1;
	}
	return end[1] == '\0' || (end[1] == 'B' && end[2] == '\0') ||
		(end[1] == 'i' && end[2] == 'B' && end[3] == '\0') ? v : -1;
}

/* Parse a positive int option or exit with a usage error. */
static int
ParseIntOption(const char *name, const char *s, int min)
{
	char	   *end;
	long		v = strtol(s, &end, 10);

	if (end == s || *end != '\0' || v < min || v > 1000000)
	{
		fprintf(stderr, "codevec-load: invalid value for --%s: \"%s\"\n", name, s);
		exit(CVL_EXIT_USAGE);
	}
	return (int) v;
}

/* Format seconds as m:ss. */
static void
FormatDuration(char *buf, size_t n, double secs)
{
	if (secs < 0 || secs > 359999)
		secs = 0;
	long		s = (long) (secs + 0.5);

	if (s >= 3600)
		snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
	else
		snprintf(buf, n, "%ld:%02ld", s / 60, s % 60);
}

/* Show progress: a bar on a terminal, a plain line every 10 s otherwise. */
static void
ShowProgress(Run *run, bool final)
{
	double		now = cvl_clock_now();
	double		interval = run->tty ? 0.2 : 10.0;

	if (!run->options->progress)
		return;
	if (!final && now - run->t_last_progress < interval)
		return;
	run->t_last_progress = now;

	double		el = now - run->t_path_start;
	double		fps = el > 0 ? run->done / el : 0;
	double		sps = el > 0 ? (run->stats->snippets - run->snippets_at_start) / el : 0;
	double		eta = fps > 0 ? (run->total - run->done) / fps : 0;
	char		etabuf[32];

	FormatDuration(etabuf, sizeof(etabuf), eta);
	if (run->tty)
	{
		int			width = 24;
		int			fill = run->total ? (int) (width * run->done / run->total) : width;
		char		bar[32];

		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
		bar[width] = '\0';
		fprintf(stderr, "\r[%s] %zu/%zu files  %.0f files/s  %.0f snippets/s  ETA %s \033[K",
				bar, run->done, run->total, fps, sps, etabuf);
		if (final)
			fputc('\n', stderr);
	}
	else
		fprintf(stderr, "codevec-load: %zu/%zu files, %.0f files/s, %.0f snippets/s, ETA %s\n",
				run->done, run->total, fps, sps, etabuf);
	fflush(stderr);
}

/* Write one file's snippets as JSON lines. */
static void
WriteJsonl(Run *run, CvlFile f)
{
	CvlBuf		b = &run->out;

	for (int i = 0; i < f->nsnippets; i++)
	{
		CvlSnippet	s = &f->snippets[i];

		cvl_buf_puts(b, "{\"path\":");
		cvl_buf_append_json(b, f->path);
		cvl_buf_puts(b, ",\"language\":");
		cvl_buf_append_json(b, f->language->name);
		cvl_buf_puts(b, ",\"kind\":");
		cvl_buf_append_json(b, s->kind);
		cvl_buf_puts(b, ",\"symbol\":");
		cvl_buf_append_json(b, s->symbol);
		cvl_buf_puts(b, ",\"qualified_name\":");
		cvl_buf_append_json(b, s->qualified_name);
		cvl_buf_puts(b, ",\"signature\":");
		cvl_buf_append_json(b, s->signature);
		cvl_buf_puts(b, ",\"doc\":");
		cvl_buf_append_json(b, s->doc);
		cvl_buf_printf(b, ",\"start_line\":%d,\"end_line\":%d,\"code\":",
					   s->start_line, s->end_line);
		cvl_buf_append_json(b, s->code);
		cvl_buf_puts(b, ",\"embed_text\":");
		cvl_buf_append_json(b, s->embed_text);
		cvl_buf_puts(b, "}\n");
	}
	if (b->len > (1 << 20))
	{
		fwrite(b->data, 1, b->len, stdout);
		cvl_buf_reset(b);
	}
}

/*
 * Account for a file the server refused (called from cvl_db_drain_rejected
 * on this thread): it was counted as parsed when emitted.
 */
static void
Rejected(CvlFile f, int nsnippets, const char *message, void *arg)
{
	Run		   *run = arg;
	Stats	   *st = run->stats;

	st->status[CVL_FILE_PARSED]--;
	st->status[CVL_FILE_REJECTED]++;
	st->snippets -= nsnippets;
	st->bytes -= f->bytes;
	st->syntax_errors -= f->has_error;
	if (f->known)
		st->changed_files--;
	else
		st->new_files--;
	f->status = CVL_FILE_REJECTED;
	if (run->options->verbose)
		fprintf(stderr, "%scodevec-load: skipped %s: rejected (%s)\n",
				run->tty ? "\r\033[K" : "", f->path, message);
}

/* Pool callback: account for one file and send it to its sink. */
static int
EmitFile(CvlFile f, void *arg)
{
	Run		   *run = arg;
	Stats	   *st = run->stats;

	st->status[f->status]++;
	st->t_read += f->t_read;
	st->t_parse += f->t_parse;
	st->t_extract += f->t_extract;
	if (f->status == CVL_FILE_PARSED)
	{
		st->snippets += f->nsnippets;
		st->bytes += f->bytes;
		st->syntax_errors += f->has_error;
		if (f->known)
			st->changed_files++;
		else
			st->new_files++;
		if (f->replaced)
		{
			st->replaced_files++;
			st->replaced += f->replaced;
		}
		if (strcmp(f->encoding, "utf-8-bom") == 0)
			st->bom_files++;
		else if (strcmp(f->encoding, "utf-8") != 0)
			st->decoded_files++;
		if (run->options->verbose && f->replaced)
			fprintf(stderr, "%scodevec-load: %s: %lld invalid UTF-8 sequence%s "
					"replaced by U+FFFD\n", run->tty ? "\r\033[K" : "", f->path,
					(long long) f->replaced, f->replaced == 1 ? "" : "s");
		else if (run->options->verbose && strcmp(f->encoding, "utf-8") != 0)
			fprintf(stderr, "%scodevec-load: %s: decoded from %s\n",
					run->tty ? "\r\033[K" : "", f->path, f->encoding);
	}
	else if (f->status != CVL_FILE_UNCHANGED && run->options->verbose)
		fprintf(stderr, "%scodevec-load: skipped %s: %s\n", run->tty ? "\r\033[K" : "",
				f->path, cvl_file_status_name(f->status));
	run->done++;
	if (run->db)
	{
		int			rc = cvl_db_file_add(run->db, f);

		cvl_db_drain_rejected(run->db, Rejected, run);
		if (rc < 0)
		{
			run->db_failed = true;
			return -1;
		}
	}
	else if (f->status == CVL_FILE_PARSED)
		WriteJsonl(run, f);
	ShowProgress(run, false);
	return 0;
}

/* Print the final summary to stderr. */
static void
PrintSummary(const Options *o, const Stats *st, CvlDb db, const CvlEmbedPlan *plan)
{
	double		el = cvl_clock_now() - st->t_start;
	char		dur[32];
	int64_t		skipped = 0;

	for (int i = CVL_FILE_TOO_LARGE; i < CVL_FILE_STATUS_COUNT; i++)
		skipped += st->status[i];
	for (int i = 0; i < CVL_WALK_SKIP_COUNT; i++)
		skipped += st->walk_skips[i];
	FormatDuration(dur, sizeof(dur), el);
	fprintf(stderr, "codevec-load: %lld files seen, %lld parsed (%lld new, %lld changed, "
			"%lld with syntax errors), %lld unchanged, %lld skipped\n",
			(long long) st->seen, (long long) st->status[CVL_FILE_PARSED],
			(long long) st->new_files, (long long) st->changed_files,
			(long long) st->syntax_errors, (long long) st->status[CVL_FILE_UNCHANGED],
			(long long) skipped);
	if (skipped)
	{
		fprintf(stderr, "codevec-load: skipped:");
		for (int i = 0; i < CVL_WALK_SKIP_COUNT; i++)
			if (st->walk_skips[i])
				fprintf(stderr, " %s %lld", cvl_walk_skip_name(i), (long long) st->walk_skips[i]);
		for (int i = CVL_FILE_TOO_LARGE; i < CVL_FILE_STATUS_COUNT; i++)
			if (st->status[i])
				fprintf(stderr, " %s %lld", cvl_file_status_name(i), (long long) st->status[i]);
		fputc('\n', stderr);
	}
	if (db)
	{
		const CvlDbStats *ds = cvl_db_stats(db);

		fprintf(stderr, "codevec-load: snippets %lld added, %lld updated, %lld removed; "
				"%lld files removed; %lld snippets embedded",
				(long long) ds->snippets_added, (long long) ds->snippets_updated,
				(long long) ds->snippets_removed, (long long) ds->files_removed,
				(long long) ds->snippets_embedded);
		if (ds->snippets_kept)
			fprintf(stderr, ", %lld embeddings kept (embed_text unchanged)",
					(long long) ds->snippets_kept);
		fputc('\n', stderr);
		if (plan->available)
			fprintf(stderr, "codevec-load: embed: %s, %d snippets per call, %s, "
					"%d writer connection%s\n", plan->device, plan->batch,
					plan->inline_rows ? "rows stored with their embeddings" :
					"embedded after storing", plan->connections,
					plan->connections == 1 ? "" : "s");
	}
	else if (o->jsonl)
		fprintf(stderr, "codevec-load: %lld snippets written\n", (long long) st->snippets);
	if (st->decoded_files || st->bom_files || st->replaced_files)
		fprintf(stderr, "codevec-load: text: %lld files decoded from a declared encoding "
				"or UTF-16/32, %lld with a UTF-8 BOM, %lld with invalid UTF-8 "
				"(%lld sequences replaced by U+FFFD)\n",
				(long long) st->decoded_files, (long long) st->bom_files,
				(long long) st->replaced_files, (long long) st->replaced);
	fprintf(stderr, "codevec-load: %s elapsed, %.1f MB parsed (%.1f MB/s, %.0f files/s)\n",
			dur, st->bytes / 1e6, el > 0 ? st->bytes / 1e6 / el : 0,
			el > 0 ? (st->status[CVL_FILE_PARSED] + st->status[CVL_FILE_UNCHANGED]) / el : 0);
	fprintf(stderr, "codevec-load: time: walk %.2f s; parser threads' CPU: "
			"read+check+hash %.2f s, parse %.2f s, extract %.2f s",
			st->t_walk, st->t_read, st->t_parse, st->t_extract);
	if (db)
	{
		const CvlDbStats *ds = cvl_db_stats(db);

		fprintf(stderr, "; build rows %.2f s\n"
				"codevec-load: time: writers waiting on the server %.2f s (%d connection%s, "
				"summed): COPY to staging %.2f s, delete old + upsert files %.2f s, "
				"embed %.2f s, insert snippets (tsvector, indexes) %.2f s, commit %.2f s; "
				"embed after storing %.2f s; BM25 postings %.2f s",
				ds->t_rows, ds->t_copy, plan->connections, plan->connections == 1 ? "" : "s",
				ds->t_stage, ds->t_replace, ds->t_embed_inline,
				ds->t_insert, ds->t_commit, ds->t_embed, ds->t_bm25);
	}
	fputc('\n', stderr);
}

/* Return the repository name a PATH gets by default: its base name. */
static void
DefaultRepoName(const char *path, char *out, size_t n)
{
	char		abs[PATH_MAX];
	struct stat sb;

	if (realpath(path, abs) == NULL)
		snprintf(abs, sizeof(abs), "%s", path);
	if (stat(abs, &sb) == 0 && S_ISREG(sb.st_mode))
	{
		char		tmp[PATH_MAX];

		snprintf(tmp, sizeof(tmp), "%s", abs);
		snprintf(abs, sizeof(abs), "%s", dirname(tmp));
	}
	snprintf(out, n, "%s", basename(abs));
}

/*
 * Check that no two PATHs default to the same repository name: the second
 * load would otherwise remove the first one's files as vanished.
 */
static bool
DistinctRepoNames(char **paths, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
		{
			char		a[PATH_MAX],
						b[PATH_MAX];

			DefaultRepoName(paths[i], a, sizeof(a));
			DefaultRepoName(paths[j], b, sizeof(b));
			if (strcmp(a, b) == 0)
			{
				fprintf(stderr, "codevec-load: \"%s\" and \"%s\" would both be "
						"repository \"%s\"; load them one at a time with --repo\n",
						paths[i], paths[j], a);
				return false;
			}
		}
	return true;
}

/* Load one PATH: walk, parse, write, prune, embed.  Returns an exit code. */
static int
LoadPath(const Options *o, const char *path, Stats *st, CvlDb db,
		 const CvlEmbedPlan *plan)
{
	char		err[512];
	CvlWalker	w;
	CvlFileData *files;
	size_t		nfiles;
	int			rc = CVL_EXIT_OK;
	double		t0 = cvl_clock_now();
	CvlMap		known = NULL;
	Run			run;

	w = cvl_walker_new(path, &o->walk, err, sizeof(err));
	if (w == NULL)
	{
		fprintf(stderr, "codevec-load: %s\n", err);
		return CVL_EXIT_INTERNAL;
	}
	if (cvl_walker_run(w) < 0)
	{
		fprintf(stderr, "codevec-load: cannot list \"%s\"\n", path);
		cvl_walker_delete(w);
		return CVL_EXIT_INTERNAL;
	}
	files = cvl_walker_files(w, &nfiles);
	st->t_walk += cvl_clock_now() - t0;
	for (int i = 0; i < CVL_WALK_SKIP_COUNT; i++)
	{
		st->walk_skips[i] += cvl_walker_skips(w)[i];
		if (i != CVL_WALK_UNREADABLE_DIR)
			st->seen += cvl_walker_skips(w)[i];
	}
	st->seen += (int64_t) nfiles;
	if (cvl_walker_skips(w)[CVL_WALK_UNREADABLE_DIR])
		rc = CVL_EXIT_PARTIAL;

	char		abs[PATH_MAX];
	char		base[PATH_MAX];
	struct stat sb;

	if (realpath(path, abs) == NULL)
		snprintf(abs, sizeof(abs), "%s", path);
	snprintf(base, sizeof(base), "%s", abs);
	bool		single = stat(abs, &sb) == 0 && S_ISREG(sb.st_mode);

	if (single)
		snprintf(abs, sizeof(abs), "%s", dirname(base));
	snprintf(base, sizeof(base), "%s", abs);

	if (db)
	{
		const char *name = o->repo ? o->repo : basename(base);
		CvlBufData	goodname,
					goodroot;

		/* text columns: a name or root that is not UTF-8 gets U+FFFD */
		cvl_buf_init(&goodname);
		cvl_buf_init(&goodroot);
		cvl_utf8_repair(name, strlen(name), &goodname);
		cvl_utf8_repair(abs, strlen(abs), &goodroot);
		known = cvl_map_new();
		int			r = cvl_db_repo_open(db, goodname.data ? goodname.data : "",
										 goodroot.data ? goodroot.data : "", known);

		cvl_buf_free(&goodname);
		cvl_buf_free(&goodroot);
		if (r < 0)
		{
			fprintf(stderr, "codevec-load: %s\n", cvl_db_error(db));
			cvl_map_delete(known);
			cvl_walker_delete(w);
			return CVL_EXIT_DB;
		}
	}

	CvlPoolOptions po = {
		.root = abs,
		.nthreads = o->jobs,
		.max_file_bytes = o->max_file_bytes,
		.known = known,
	};

	memset(&run, 0, sizeof(run));
	run.options = o;
	run.stats = st;
	run.db = db;
	run.total = nfiles;
	run.tty = isatty(STDERR_FILENO);
	run.t_path_start = cvl_clock_now();
	run.t_last_progress = run.t_path_start;
	run.snippets_at_start = st->snippets;
	cvl_buf_init(&run.out);
	cvl_pool_run(&po, files, nfiles, EmitFile, &run);
	if (run.out.len)
		fwrite(run.out.data, 1, run.out.len, stdout);
	fflush(stdout);
	cvl_buf_free(&run.out);
	ShowProgress(&run, true);

	if (db && !run.db_failed && cvl_db_flush(db) < 0)
		run.db_failed = true;
	if (db)
		cvl_db_drain_rejected(db, Rejected, &run);
	if (db && !run.db_failed)
	{
		/* a root that vanished mid-run must not wipe the repository */
		if (stat(abs, &sb) != 0)
		{
			fprintf(stderr, "codevec-load: \"%s\" vanished during the run; "
					"stale files were not removed\n", abs);
			rc = CVL_EXIT_PARTIAL;
		}
		else if (single)
			;					/* one file loaded: the others stay as they are */
		else if (cvl_db_prune(db, files, nfiles) < 0)
			run.db_failed = true;
	}
	if (db && !run.db_failed && !o->no_embed)
	{
		bool		available = true;

		const char *why;
		int64_t		fallbacks = cvl_db_embed_fallbacks(db, &why);

		if (fallbacks && o->verbose)
			fprintf(stderr, "codevec-load: %lld batch%s stored without embeddings, "
					"embedding now: %s\n", (long long) fallbacks,
					fallbacks == 1 ? "" : "es", why);
		if (cvl_db_embed(db, plan->batch, false, &available) < 0)
			run.db_failed = true;
		else if (!available)
			fprintf(stderr, "codevec-load: notice: snippets stored without "
					"embeddings: the server has no embed(text[]) function yet, "
					"or code.snippets has no emb column (run --embed-only later)\n");
	}
	if (db && !run.db_failed && !o->no_bm25)
	{
		/* keyword search: BM25 postings built once, kept by triggers */
		bool		rebuilt;

		if (cvl_db_bm25_refresh(db, &rebuilt) < 0)
			run.db_failed = true;
		else if (rebuilt && o->verbose)
			fprintf(stderr, "codevec-load: BM25 keyword postings built\n");
	}
	if (run.db_failed)
	{
		fprintf(stderr, "%scodevec-load: database error: %s\n",
				run.tty && o->progress ? "\r\033[K" : "", cvl_db_error(db));
		rc = CVL_EXIT_DB;
	}
	for (int i = 0; rc == CVL_EXIT_OK && i < CVL_FILE_STATUS_COUNT; i++)
		if (cvl_file_status_is_error(i) && st->status[i])
			rc = CVL_EXIT_PARTIAL;
	cvl_map_delete(known);
	cvl_walker_delete(w);
	return rc;
}

/*
 * Whether the options and the npaths PATHs go together; says why not on
 * stderr (then exit with CVL_EXIT_USAGE).
 */
static bool
CheckOptions(const Options *o, int npaths, char **paths)
{
	if (o->embed_only && (o->jsonl || npaths > 0 || o->no_embed))
	{
		fprintf(stderr, "codevec-load: --embed-only takes no PATH, --jsonl or --no-embed\n");
		return false;
	}
	if (!o->embed_only && npaths == 0)
	{
		fprintf(stderr, "codevec-load: no PATH given\n"
				"Try \"codevec-load --help\" for more information.\n");
		return false;
	}
	if (o->repo && npaths > 1)
	{
		fprintf(stderr, "codevec-load: --repo needs exactly one PATH\n");
		return false;
	}
	if (!o->jsonl && npaths > 1 && !DistinctRepoNames(paths, npaths))
		return false;
	if (o->jsonl && o->conninfo)
	{
		fprintf(stderr, "codevec-load: --jsonl writes no database; drop -d\n");
		return false;
	}
	if (o->coordinator && (o->conninfo || o->jsonl || npaths > 1))
	{
		fprintf(stderr, "codevec-load: --coordinator loads one repository into its "
				"shard: one PATH (or --embed-only), no -d or --jsonl\n");
		return false;
	}
	return true;
}

/* ParseOptions: go on with the run */
#define CVL_CONTINUE (-1)

/*
 * Parse the command line into *o (its include and exclude arrays have room
 * for one glob per argument) and *quiet, and check the combinations.
 * Returns CVL_CONTINUE, or the exit status to end with: after --help or
 * --version, or a usage error said on stderr.
 */
static int
ParseOptions(int argc, char **argv, Options *o, bool *quiet)
{
	static const struct option longopts[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"coordinator", required_argument, NULL, 'O'},
		{"repo", required_argument, NULL, 'r'},
		{"jsonl", no_argument, NULL, 'J'},
		{"include", required_argument, NULL, 'I'},
		{"exclude", required_argument, NULL, 'X'},
		{"max-file-bytes", required_argument, NULL, 'M'},
		{"dims", required_argument, NULL, 'D'},
		{"no-embed", no_argument, NULL, 'n'},
		{"no-bm25", no_argument, NULL, 'K'},
		{"embed-only", no_argument, NULL, 'E'},
		{"embed-batch", required_argument, NULL, 'B'},
		{"embed-fields", required_argument, NULL, 'f'},
		{"embed-max-bytes", required_argument, NULL, 'm'},
		{"embed-words", required_argument, NULL, 'w'},
		{"strip-docs", no_argument, NULL, 's'},
		{"batch-files", required_argument, NULL, 'F'},
		{"jobs", required_argument, NULL, 'j'},
		{"connections", required_argument, NULL, 'C'},
		{"progress", no_argument, NULL, 'P'},
		{"no-progress", no_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int			c;

	while ((c = getopt_long(argc, argv, "d:j:vqhV", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				o->conninfo = optarg;
				break;
			case 'O':
				o->coordinator = optarg;
				break;
			case 'r':
				o->repo = optarg;
				break;
			case 'J':
				o->jsonl = true;
				break;
			case 'I':
				o->walk.include[o->walk.ninclude++] = optarg;
				break;
			case 'X':
				o->walk.exclude[o->walk.nexclude++] = optarg;
				break;
			case 'M':
				o->max_file_bytes = ParseSize(optarg);
				if (o->max_file_bytes <= 0 || o->max_file_bytes > INT32_MAX)
				{
					fprintf(stderr, "codevec-load: invalid value for --max-file-bytes: \"%s\"\n", optarg);
					return CVL_EXIT_USAGE;
				}
				break;
			case 'D':
				o->dims = ParseIntOption("dims", optarg, 0);
				break;
			case 'n':
				o->no_embed = true;
				break;
			case 'K':
				o->no_bm25 = true;
				break;
			case 'E':
				o->embed_only = true;
				break;
			case 'B':
				o->embed_batch = ParseIntOption("embed-batch", optarg, 1);
				break;
			case 'f':
				if (cvl_embed_fields_parse(optarg, &o->extract.embed_fields) < 0)
				{
					fprintf(stderr, "codevec-load: invalid value for --embed-fields: \"%s\" "
							"(a comma list of path, kind, name, signature, doc, body)\n", optarg);
					return CVL_EXIT_USAGE;
				}
				break;
			case 'm':
				{
					int64_t		v = ParseSize(optarg);

					if (v < 1 || v > 16 * 1024 * 1024)
					{
						fprintf(stderr, "codevec-load: invalid value for --embed-max-bytes: \"%s\" "
								"(1 to 16M)\n", optarg);
						return CVL_EXIT_USAGE;
					}
					o->extract.embed_max_bytes = (size_t) v;
				}
				break;
			case 'w':
				if (cvl_embed_words_parse(optarg, &o->extract.embed_words) < 0)
				{
					fprintf(stderr, "codevec-load: invalid value for --embed-words: \"%s\" "
							"(none, name, all, name+all or bare)\n", optarg);
					return CVL_EXIT_USAGE;
				}
				break;
			case 's':
				o->extract.strip_docs = true;
				break;
			case 'F':
				o->batch_files = ParseIntOption("batch-files", optarg, 1);
				break;
			case 'j':
				o->jobs = ParseIntOption("jobs", optarg, 1);
				break;
			case 'C':
				o->connections = ParseIntOption("connections", optarg, 1);
				if (o->connections > CVL_MAX_CONNECTIONS)
				{
					fprintf(stderr, "codevec-load: invalid value for --connections: \"%s\" "
							"(1 to %d)\n", optarg, CVL_MAX_CONNECTIONS);
					return CVL_EXIT_USAGE;
				}
				break;
			case 'P':
				o->progress = 1;
				break;
			case 'p':
				o->progress = 0;
				break;
			case 'v':
				o->verbose = true;
				break;
			case 'q':
				*quiet = true;
				break;
			case 'h':
				PrintHelp();
				return CVL_EXIT_OK;
			case 'V':
				printf("codevec-load %s (tree-sitter ABI %d..%d)\ngrammars: %s\n",
					   CVL_VERSION, TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION,
					   TREE_SITTER_LANGUAGE_VERSION, CVL_GRAMMAR_VERSIONS);
				return CVL_EXIT_OK;
			default:
				fprintf(stderr, "Try \"codevec-load --help\" for more information.\n");
				return CVL_EXIT_USAGE;
		}
	}
	if (!CheckOptions(o, argc - optind, argv + optind))
		return CVL_EXIT_USAGE;
	if (o->progress < 0)
		o->progress = !*quiet;
	if (*quiet)
		o->progress = 0;
	return CVL_CONTINUE;
}

/*
 * --coordinator: ask the coordinator which shard the repository of path
 * belongs to (--repo, else the default name of path) and point
 * o->conninfo at that shard; says which unless quiet.  Returns the
 * shard's number, or -1 after saying why on stderr.
 */
static int
RouteToShard(Options *o, const char *path, bool quiet)
{
	char		name[PATH_MAX];
	char		err[512];
	CvlBufData	goodname;
	char	   *shardinfo = NULL;
	int			shard = -1;
	int			r;

	/* the name as LoadPath stores it (not UTF-8: U+FFFD) picks the shard */
	if (o->repo)
		snprintf(name, sizeof(name), "%s", o->repo);
	else
		DefaultRepoName(path, name, sizeof(name));
	cvl_buf_init(&goodname);
	cvl_utf8_repair(name, strlen(name), &goodname);
	r = cvl_shard_route(o->coordinator, goodname.data ? goodname.data : "", &shard,
						&shardinfo, err, sizeof(err));
	cvl_buf_free(&goodname);
	if (r < 0)
	{
		fprintf(stderr, "codevec-load: %s\n", err);
		return -1;
	}
	if (!quiet)
		fprintf(stderr, "codevec-load: repository \"%s\" goes to shard %d\n", name, shard);
	o->conninfo = shardinfo;	/* lives until exit */
	return shard;
}

/*
 * Connect to the database (shard: its number for messages, or -1), make
 * sure of schema code, and plan the embedding into *plan unless
 * --no-embed.  Returns the connections, or NULL after saying why on stderr.
 */
static CvlDb
OpenDatabase(const Options *o, int shard, CvlEmbedPlan *plan)
{
	char		err[512];
	CvlDb		db = cvl_db_new(o->conninfo, o->dims, o->batch_files, o->connections,
								err, sizeof(err));

	if (db == NULL)
	{
		if (shard >= 0)
			fprintf(stderr, "codevec-load: shard %d: %s\n", shard, err);
		else
			fprintf(stderr, "codevec-load: %s\n", err);
		return NULL;
	}
	if (cvl_db_schema_ensure(db) < 0)
	{
		fprintf(stderr, "codevec-load: %s\n", cvl_db_error(db));
		cvl_db_delete(db);
		return NULL;
	}
	plan->connections = cvl_db_writers(db);
	if (!o->no_embed && cvl_db_embed_plan(db, o->embed_batch, plan) < 0)
	{
		fprintf(stderr, "codevec-load: %s\n", cvl_db_error(db));
		cvl_db_delete(db);
		return NULL;
	}
	return db;
}

/*
 * --embed-only: fill the missing embeddings (with --repo, that
 * repository's only).  Returns an exit status (0 or CVL_EXIT_DB, said on
 * stderr); a server without embed(text[]) or an emb column is a notice.
 */
static int
EmbedOnly(const Options *o, CvlDb db, const CvlEmbedPlan *plan)
{
	bool		available = true;
	int			rc = CVL_EXIT_OK;

	if (o->repo && cvl_db_repo_open(db, o->repo, NULL, NULL) < 0)
		rc = CVL_EXIT_DB;
	else if (cvl_db_embed(db, plan->batch, o->repo == NULL, &available) < 0)
		rc = CVL_EXIT_DB;
	if (rc == CVL_EXIT_DB)
		fprintf(stderr, "codevec-load: %s\n", cvl_db_error(db));
	else if (!available)
		fprintf(stderr, "codevec-load: notice: nothing embedded: the server "
				"has no embed(text[]) function yet, or code.snippets has no "
				"emb column\n");
	return rc;
}

/* Parse the command line, then load each PATH or fill embeddings. */
int
main(int argc, char **argv)
{
	Options		o;
	Stats		st;
	bool		quiet = false;
	char		err[512];
	int			rc;
	CvlDb		db = NULL;
	CvlEmbedPlan plan;
	char	   *include[argc > 0 ? argc : 1];	/* at most one glob per arg */
	char	   *exclude[argc > 0 ? argc : 1];
	int			shard = -1;		/* --coordinator: the repository's shard */

	memset(&o, 0, sizeof(o));
	memset(&st, 0, sizeof(st));
	o.progress = -1;
	o.dims = CVL_DEFAULT_DIMS;
	o.batch_files = CVL_DEFAULT_BATCH_FILES;
	o.max_file_bytes = CVL_DEFAULT_MAX_FILE_BYTES;
	o.jobs = (int) sysconf(_SC_NPROCESSORS_ONLN);
	o.walk.include = include;
	o.walk.exclude = exclude;
	o.extract.embed_fields = CVL_EMBED_DEFAULT_FIELDS;
	o.extract.embed_max_bytes = CVL_EMBED_TEXT_MAX_BYTES;
	o.extract.embed_words = CVL_EMBED_DEFAULT_WORDS;
	rc = ParseOptions(argc, argv, &o, &quiet);
	if (rc != CVL_CONTINUE)
		return rc;
	rc = CVL_EXIT_OK;
	if (!cvl_languages_check(err, sizeof(err)))
	{
		fprintf(stderr, "codevec-load: %s\n", err);
		return CVL_EXIT_INTERNAL;
	}
	cvl_extract_configure(&o.extract);
	git_libgit2_init();
	st.t_start = cvl_clock_now();

	if (o.coordinator && o.embed_only && o.repo == NULL)
	{
		rc = EmbedShards(&o, quiet);
		git_libgit2_shutdown();
		return rc;
	}
	memset(&plan, 0, sizeof(plan));
	if ((o.coordinator && (shard = RouteToShard(&o, argv[optind], quiet)) < 0) ||
		(!o.jsonl && (db = OpenDatabase(&o, shard, &plan)) == NULL))
	{
		git_libgit2_shutdown();
		return CVL_EXIT_DB;
	}
	if (o.verbose && plan.available && !plan.inline_rows)
		fprintf(stderr, "codevec-load: embed() probe failed, embedding after storing: %s\n",
				plan.probe_error);
	if (o.embed_only)
		rc = EmbedOnly(&o, db, &plan);
	else
	{
		for (int i = optind; i < argc; i++)
		{
			int			r = LoadPath(&o, argv[i], &st, db, &plan);

			if (r > rc)
				rc = r;
			if (r == CVL_EXIT_DB)
				break;
		}
	}
	if (!quiet)
		PrintSummary(&o, &st, db, &plan);
	cvl_db_delete(db);
	if (o.coordinator && !o.embed_only && !o.no_bm25 && rc <= CVL_EXIT_PARTIAL)
	{
		/* the coordinator's BM25 postings and statistics over every shard */
		if (cvl_shard_refresh(o.coordinator, err, sizeof(err)) < 0)
		{
			fprintf(stderr, "codevec-load: %s\n", err);
			rc = CVL_EXIT_DB;
		}
	}
	git_libgit2_shutdown();
	return rc;
}
