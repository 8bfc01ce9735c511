/*
 * dbint.h -- what db.c, write.c and session.c share; not the loader's
 * interface (that is cvl.h).
 *
 *   db.c       the main connection: schema, repository, prune, the
 *              embedding plan and the catch-up embed pass, the BM25 postings
 *   write.c    the store stage: COPY batches, a queue of them, and the
 *              writer threads, each with its own server connection
 *   session.c  one connection and its statements, used by both
 *
 * Calls go one way: db.c -> write.c -> session.c, and db.c -> session.c
 * (test/layout checks that no two .c files depend on each other).
 *
 * A session is one server connection with the last error it saw; every
 * thread uses only its own session.
 */
#ifndef CVL_DBINT_H
#define CVL_DBINT_H

#include <pthread.h>

#include <libpq-fe.h>

#include "cvl.h"

typedef struct CvlSessionData
{
	PGconn	   *conn;
	char		sqlstate[6];	/* of the last error, "" when none */
	char		error[1024];
} CvlSessionData;

typedef CvlSessionData *CvlSession;

/* one file of a batch: where its COPY lines are, for bisection */
typedef struct CvlBatchFile
{
	CvlFile		file;			/* the caller's; path and counts stay valid */
	size_t		files_off;		/* its line in Batch.files */
	size_t		snippets_off;	/* its first line in Batch.snippets */
	int			nsnippets;
} CvlBatchFile;

/* one transaction's worth of COPY data */
typedef struct CvlBatch
{
	CvlBufData	files;			/* COPY text for cvl_stage_files */
	CvlBufData	snippets;		/* COPY text for cvl_stage_snippets */
	CvlBatchFile *entries;		/* nfiles of them, in order */
	int			entries_cap;
	int			nfiles;
	int			nsnippets;
} CvlBatch;

/* a file the server refused, until main drains it */
typedef struct CvlRejection
{
	CvlFile		file;
	int			nsnippets;
	char	   *message;
} CvlRejection;

/* one writer thread and its connection */
typedef struct CvlWriterData
{
	CvlDb		db;
	CvlSessionData s;
	PGcancel   *cancel;			/* to stop its statement when another writer failed */
	pthread_t	thread;
	bool		running;
	CvlDbStats	stats;			/* its counters and timers, summed by cvl_db_stats */
} CvlWriterData;

struct CvlDbData
{
	CvlSessionData main;		/* schema, repository, prune, embed, BM25 */
	char	   *conninfo;		/* for the writers' connections */
	int			dims;
	bool		has_emb;
	int			batch_files;
	int64_t		repo_id;
	char		repo_id_text[32];
	bool		server_tsv;		/* tsv by code.snippet_tsv() (version 2) */
	CvlBufData	words;			/* scratch for identifier splitting (main thread) */

	/* the embedding plan (cvl_db_embed_plan) */
	bool		embed_inline;	/* store rows with their embeddings */
	int			embed_batch;	/* snippets per embed() call (and per batch) */
	int64_t		embed_fallbacks;	/* batches stored without, embed() failed */
	char		embed_failure[256]; /* the first such error */

	/* the store stage (write.c); under lock */
	int			nwriters;
	CvlWriterData *writers;
	CvlBatch   *batches;		/* nwriters + 1 of them */
	int			nbatches;
	CvlBatch   *filling;		/* built by the main thread */
	CvlBatch  **queue;			/* handed off, not yet taken: a ring */
	int			qhead;
	int			qlen;
	CvlBatch  **spare;			/* written, ready for reuse */
	int			nspare;
	int			busy;			/* writers writing a batch now */
	bool		writers_started;
	bool		writer_quit;
	bool		failed;			/* a writer hit an error (in main.error) */
	CvlRejection *rejected;		/* files refused by the server */
	int			nrejected;
	int			rejected_cap;
	pthread_mutex_t lock;
	pthread_cond_t cond;

	CvlDbStats	stats;			/* the main session's */
	CvlDbStats	total;			/* what cvl_db_stats returns */
};

/* session.c: one session's statements */
PGconn	   *cvl_session_connect(const char *conninfo, char *err, size_t errlen);
void		cvl_session_set_error(CvlSession s, const char *what, PGresult *res);
int			cvl_session_exec(CvlSession s, const char *what, const char *sql);
PGresult   *cvl_session_exec_params(CvlSession s, const char *what, const char *sql,
									int n, const char *const *values);
int			cvl_session_copy_in(CvlSession s, const char *sql, const char *data,
								size_t len);
void		cvl_session_rollback(CvlSession s);
int			cvl_session_stage(CvlSession s, bool has_emb);

/* write.c: the store stage (db.c starts and stops it) */
void		cvl_write_init(CvlDb db, int nwriters);
void		cvl_write_stop(CvlDb db);
void		cvl_write_free(CvlDb db);

#endif							/* CVL_DBINT_H */
