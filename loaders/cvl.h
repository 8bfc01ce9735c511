/*
 * cvl.h -- every constant, struct and prototype of codevec-load.
 *
 * codevec-load turns source trees into rows of code.repos, code.files and
 * code.snippets (see shared DESIGN.md).  The parts, one file each:
 *
 *   main.c     command line, progress, summary, exit codes
 *   walk.c     tree walk: .gitignore via libgit2, globs, size limit
 *   pool.c     worker threads: read, hash, parse, extract; ordered output
 *   file.c     the file object: status names, its snippets
 *   lang.c     languages by file name, their tree-sitter grammars
 *   extract.c  syntax tree -> snippets (kind, names, signature, doc, lines)
 *   embedtext.c  cvl_embed_text_build(), the text that gets embedded
 *   encoding.c source bytes -> UTF-8 text (BOMs, declared encodings via
 *              iconv, U+FFFD for stray bytes); UTF-8 checks and cuts
 *   db.c       libpq: schema, repository, prune, the embedding plan and the
 *              catch-up embed pass, BM25 postings
 *   session.c  one server connection and its statements (db.c, write.c)
 *   write.c    the store stage: COPY batches written by several writer
 *              connections, with their embeddings; a batch the server
 *              rejects is bisected down to its files
 *   util.c     buffers, hashing, JSON/COPY escaping, identifiers
 *   shard.c    --coordinator: the shard a repository goes to, every
 *              shard (--embed-only), the coordinator's refresh after
 *              the load
 *
 * Object style follows tree-sitter: cvl_<object>_<verb>(self, ...), with
 * paired _new/_delete.  Worker threads never print; they record a status
 * and the main thread reports.
 */
#ifndef CVL_H
#define CVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tree_sitter/api.h>

/* exit codes (documented in --help) */
#define CVL_EXIT_OK					0	/* everything loaded */
#define CVL_EXIT_PARTIAL			1	/* some files failed (unreadable ...) */
#define CVL_EXIT_USAGE				2	/* bad command line */
#define CVL_EXIT_DB					3	/* connection or database error */
#define CVL_EXIT_INTERNAL			4	/* out of memory, walk root missing */

#define CVL_DEFAULT_MAX_FILE_BYTES	(1024 * 1024)
#define CVL_DEFAULT_DIMS			384
#define CVL_DEFAULT_BATCH_FILES		500 	/* files per transaction */
#define CVL_BATCH_MAX_BYTES			(32 * 1024 * 1024)	/* COPY data per txn */
#define CVL_DEFAULT_EMBED_BATCH		64		/* snippets per embed() call (CPU) */
#define CVL_GPU_EMBED_BATCH			1024	/* on the GPU service */
#define CVL_MAX_CONNECTIONS			64		/* --connections */
#define CVL_SCHEMA_VERSION			2		/* 2: tsv by codevec_code, code.search */
#define CVL_POOL_WINDOW				64		/* files in flight at once */

/*
 * Vectors of two models never mix (cvl_db_embed_plan): the stored vectors of
 * the first CVL_MODEL_PROBES embedded snippets are compared with embed() of
 * their embed_text now, and a median cosine distance above this means that
 * another model made them.  The same model stays far below it: GPU fp16 and
 * CPU fp32 agree to 1e-5, codevec.cpu_precision int8 to 0.01 per text; a
 * fine-tuned model moves code embeddings much further from its base.
 */
#define CVL_MODEL_PROBES			3
#define CVL_MODEL_MAX_DISTANCE		0.05

/*
 * The embedding budget.  all-MiniLM-L6-v2 reads 256 WordPiece tokens; code
 * averages about 3.5-4 characters per token, so 1000 bytes is about the
 * budget.  500 is the default: a mean-pooled vector of the whole budget is
 * dominated by the body, and bench/quality measured 500 at least as good
 * as 1000 (with --embed-words name+all: MRR@10 0.588 against 0.587 on the
 * sub-corpus) for half the tokens.  The doc part is capped so that a long
 * docstring cannot crowd out the code.
 */
#define CVL_EMBED_TEXT_MAX_BYTES	500
#define CVL_EMBED_DOC_MAX_BYTES		300
/* tsvector input caps: to_tsvector has a 1 MB result limit */
#define CVL_TSV_BODY_MAX_BYTES		(16 * 1024)

/* ---------- util.c ---------- */

typedef struct CvlBufData
{
	char	   *data;			/* always NUL-terminated when cap > 0 */
	size_t		len;
	size_t		cap;
} CvlBufData;

typedef CvlBufData *CvlBuf;

void	   *cvl_malloc(size_t size);
void	   *cvl_realloc(void *ptr, size_t size);
char	   *cvl_strdup(const char *s);
char	   *cvl_strndup(const char *s, size_t n);
void		cvl_buf_init(CvlBuf buf);
void		cvl_buf_reserve(CvlBuf buf, size_t n);
void		cvl_buf_reset(CvlBuf buf);
void		cvl_buf_free(CvlBuf buf);
void		cvl_buf_append(CvlBuf buf, const char *s, size_t n);
void		cvl_buf_puts(CvlBuf buf, const char *s);
void		cvl_buf_putc(CvlBuf buf, char c);
void		cvl_buf_printf(CvlBuf buf, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
char	   *cvl_buf_steal(CvlBuf buf);
void		cvl_buf_append_json(CvlBuf buf, const char *s);
void		cvl_buf_append_copy(CvlBuf buf, const char *s);
void		cvl_buf_append_identifiers(CvlBuf buf, const char *s, size_t n);
void		cvl_sha256_hex(const void *data, size_t n, char out[65]);
double		cvl_clock_now(void);
double		cvl_clock_thread(void);

/* a string -> string hash map (path -> sha256), read-only once built */
typedef struct CvlMapData *CvlMap;
CvlMap		cvl_map_new(void);
void		cvl_map_delete(CvlMap map);
void		cvl_map_put(CvlMap map, const char *key, const char *value);
const char *cvl_map_get(CvlMap map, const char *key);
size_t		cvl_map_count(CvlMap map);
typedef void (*CvlMapFn) (const char *key, const char *value, void *arg);
void		cvl_map_foreach(CvlMap map, CvlMapFn fn, void *arg);

/* ---------- encoding.c ---------- */

#define CVL_ENCODING_NAME_MAX		32

bool		cvl_utf8_is_valid(const char *s, size_t n);
int64_t		cvl_utf8_repair(const char *s, size_t n, CvlBuf out);
size_t		cvl_utf8_cut(const char *s, size_t n, size_t max);
bool		cvl_encoding_declared(const char *s, size_t n, bool python,
								  char *name, size_t size);

/* ---------- lang.c ---------- */

typedef struct CvlLanguageData
{
	const char *name;			/* "python", "c", "tsx", ... */
	const TSLanguage *(*grammar) (void);
	const char *separator;		/* joins qualified names: "." or "::" */
} CvlLanguageData;

typedef const CvlLanguageData *CvlLanguage;

CvlLanguage cvl_language_for_path(const char *path);
CvlLanguage cvl_language_named(const char *name);
bool		cvl_header_looks_cpp(const char *src, size_t len);
bool		cvl_languages_check(char *err, size_t errlen);

/* ---------- file.c: files and snippets ---------- */

typedef enum CvlFileStatus
{
	CVL_FILE_PENDING = 0,
	CVL_FILE_PARSED,			/* new or changed: snippets extracted */
	CVL_FILE_UNCHANGED,			/* sha256 equals the stored one */
	CVL_FILE_TOO_LARGE,			/* bigger than --max-file-bytes */
	CVL_FILE_EMPTY,
	CVL_FILE_BINARY,			/* has a NUL byte */
	CVL_FILE_ENCODING,			/* declared/BOM encoding unknown or undecodable */
	CVL_FILE_PATH_ENCODING,		/* the file name is not UTF-8 (cannot be stored) */
	CVL_FILE_UNREADABLE,		/* open/read failed (permissions, I/O) */
	CVL_FILE_VANISHED,			/* deleted between walk and read */
	CVL_FILE_PARSE_FAILED,		/* tree-sitter gave no tree (timeout) */
	CVL_FILE_INVALID_OUTPUT,	/* extracted text not UTF-8 (a loader bug) */
	CVL_FILE_REJECTED,			/* the server refused the file's rows */
	CVL_FILE_STATUS_COUNT
} CvlFileStatus;

const char *cvl_file_status_name(CvlFileStatus status);
bool		cvl_file_status_is_error(CvlFileStatus status);

/* encoding.c: a file's bytes as UTF-8 text, or why not (a status) */
CvlFileStatus cvl_source_decode(const char *src, size_t len, bool python,
								char **text, size_t *textlen,
								char encoding[CVL_ENCODING_NAME_MAX],
								int64_t *replaced);

typedef struct CvlSnippetData
{
	const char *kind;			/* static: "function", "method", "class" ... */
	char	   *symbol;			/* bare name */
	char	   *qualified_name; /* with enclosing class/impl/namespace/module */
	char	   *signature;		/* declaration head, whitespace collapsed */
	char	   *doc;			/* docstring / doc comment, markers removed */
	int			start_line;		/* 1-based, inclusive */
	int			end_line;
	char	   *code;
	char	   *embed_text;		/* exactly what gets embedded */
} CvlSnippetData;

typedef CvlSnippetData *CvlSnippet;

typedef struct CvlFileData
{
	char	   *path;			/* relative to the repository root */
	CvlLanguage language;
	int64_t		bytes;			/* from the walk's stat, then the read */
	CvlFileStatus status;
	bool		known;			/* present in the database before the run */
	bool		has_error;		/* the syntax tree has ERROR nodes */
	int64_t		replaced;		/* invalid UTF-8 sequences made U+FFFD */
	char		encoding[CVL_ENCODING_NAME_MAX];	/* what was decoded */
	char		sha256[65];
	CvlSnippetData *snippets;
	int			nsnippets;
	int			snippets_cap;
	double		t_read;			/* CPU seconds spent in each phase */
	double		t_parse;
	double		t_extract;
} CvlFileData;

typedef CvlFileData *CvlFile;

void		cvl_file_clear_snippets(CvlFile file);
CvlSnippet	cvl_file_add_snippet(CvlFile file);

/* ---------- extract.c ---------- */

/* what goes into embed_text (--embed-fields), in this order */
#define CVL_EMBED_PATH				(1u << 0)	/* the file path */
#define CVL_EMBED_KIND				(1u << 1)	/* "function", "class" ... */
#define CVL_EMBED_NAME				(1u << 2)	/* the qualified name */
#define CVL_EMBED_SIGNATURE			(1u << 3)
#define CVL_EMBED_DOC				(1u << 4)	/* at most CVL_EMBED_DOC_MAX_BYTES */
#define CVL_EMBED_BODY				(1u << 5)	/* the code */
/*
 * Default: name, signature, doc, body. bench/quality measured path and kind
 * lines making vector search worse (MRR@10 -0.027 on 500 queries, 95% CI
 * -0.050..-0.003, docs stripped there); doc cannot be measured by a
 * benchmark whose queries are the docs, and stays.
 */
#define CVL_EMBED_DEFAULT_FIELDS	(CVL_EMBED_NAME | CVL_EMBED_SIGNATURE | CVL_EMBED_DOC | CVL_EMBED_BODY)

/*
 * How identifiers appear in embed_text (--embed-words).  The encoder is a
 * lower-casing WordPiece model for prose: parseConfigFile becomes one
 * "parseconfigfile" split into whatever pieces its vocabulary has, "parse
 * config file" three known words.  The split follows codevec_code's text
 * search parser (src/tsparser.c).  Default name+all: bench/quality measured
 * vector MRR@10 +0.045 over none on its sub-corpus (95% CI +0.021..+0.070;
 * name +0.037, all +0.034, bare +0.009: dropping punctuation loses Rust).
 */
typedef enum CvlEmbedWords
{
	CVL_EMBED_WORDS_NONE = 0,	/* the text as in the source */
	CVL_EMBED_WORDS_NAME,		/* a first line: the qualified name as words */
	CVL_EMBED_WORDS_ALL,		/* every identifier as words, punctuation kept */
	CVL_EMBED_WORDS_NAME_ALL,	/* name's words line, then the name as is, the
								 * rest as ALL */
	CVL_EMBED_WORDS_BARE		/* every identifier as words, punctuation dropped */
} CvlEmbedWords;

#define CVL_EMBED_DEFAULT_WORDS		CVL_EMBED_WORDS_NAME_ALL

/* extraction settings, the same for every file of a run */
typedef struct CvlExtractOptions
{
	bool		strip_docs;		/* --strip-docs: no doc, docstrings cut from code */
	unsigned	embed_fields;	/* CVL_EMBED_* bits */
	size_t		embed_max_bytes;	/* embed_text cap (default CVL_EMBED_TEXT_MAX_BYTES) */
	CvlEmbedWords embed_words;	/* --embed-words */
} CvlExtractOptions;

void		cvl_extract_configure(const CvlExtractOptions *options);
int			cvl_snippets_extract(CvlFile file, TSTree *tree,
								 const char *src, size_t len);

/* ---------- embedtext.c ---------- */

void		cvl_embed_text_configure(const CvlExtractOptions *options);
int			cvl_embed_fields_parse(const char *list, unsigned *fields);
int			cvl_embed_words_parse(const char *name, CvlEmbedWords *words);
void		cvl_buf_append_words(CvlBuf buf, const char *s, size_t n, bool punct,
								 size_t limit);
char	   *cvl_embed_text_build(const char *path, const CvlSnippetData *s);

/* ---------- walk.c ---------- */

typedef enum CvlWalkSkip
{
	CVL_WALK_IGNORED = 0,		/* .gitignore / .git/info/exclude */
	CVL_WALK_EXCLUDED,			/* --exclude, or not matching --include */
	CVL_WALK_LANGUAGE,			/* no grammar for the file name */
	CVL_WALK_SYMLINK,			/* symlinks are never followed */
	CVL_WALK_SPECIAL,			/* sockets, devices, fifos */
	CVL_WALK_UNREADABLE_DIR,	/* a directory that could not be listed */
	CVL_WALK_SKIP_COUNT
} CvlWalkSkip;

const char *cvl_walk_skip_name(CvlWalkSkip skip);

typedef struct CvlWalkOptions
{
	char	  **include;		/* fnmatch globs on the relative path */
	int			ninclude;
	char	  **exclude;
	int			nexclude;
} CvlWalkOptions;

typedef struct CvlWalkerData *CvlWalker;

CvlWalker	cvl_walker_new(const char *root, const CvlWalkOptions *options,
						   char *err, size_t errlen);
int			cvl_walker_run(CvlWalker walker);
CvlFileData *cvl_walker_files(CvlWalker walker, size_t *nfiles);
const int64_t *cvl_walker_skips(CvlWalker walker);
bool		cvl_walker_uses_git(CvlWalker walker);
void		cvl_walker_delete(CvlWalker walker);

/* ---------- pool.c ---------- */

typedef struct CvlPoolOptions
{
	const char *root;			/* absolute root, prefixed to file paths */
	int			nthreads;
	int64_t		max_file_bytes;
	CvlMap		known;			/* path -> stored sha256, or NULL */
} CvlPoolOptions;

/* called on the calling thread, in file order, once per file */
typedef int (*CvlPoolEmitFn) (CvlFile file, void *arg);

int			cvl_pool_run(const CvlPoolOptions *options, CvlFileData *files,
						 size_t nfiles, CvlPoolEmitFn emit, void *arg);

/* ---------- db.c ---------- */

typedef struct CvlDbStats
{
	int64_t		snippets_added;		/* for files new to the repository */
	int64_t		snippets_updated;	/* for files whose content changed */
	int64_t		snippets_removed;	/* old versions and vanished files */
	int64_t		files_removed;
	int64_t		snippets_embedded;
	int64_t		snippets_kept;		/* embedding kept: embed_text unchanged */
	int64_t		batches;
	double		t_rows;			/* building COPY data */
	double		t_copy;			/* writer waiting on the server, in all: */
	double		t_stage;		/* - COPY into the staging tables */
	double		t_replace;		/* - delete old snippets, upsert code.files */
	double		t_insert;		/* - insert snippets (tsvector, indexes) */
	double		t_commit;		/* - COMMIT */
	double		t_embed;		/* writers: embed() while storing; else the catch-up pass */
	double		t_embed_inline;	/* in all: the writers' embed() calls */
	double		t_bm25;			/* building the BM25 postings */
} CvlDbStats;

/* how a run embeds, from cvl_db_embed_plan() */
typedef struct CvlEmbedPlan
{
	bool		available;		/* embed(text[]) exists, code.snippets has emb */
	bool		inline_rows;	/* rows are stored with their embeddings */
	bool		gpu;			/* the GPU service is ready, codevec.device not cpu */
	int			batch;			/* snippets per embed() call */
	int			connections;	/* writer connections */
	char		device[32];		/* "gpu service", "cpu" or "none" */
	char		probe_error[256];	/* why not inline, when the probe failed */
} CvlEmbedPlan;

typedef struct CvlDbData *CvlDb;

CvlDb		cvl_db_new(const char *conninfo, int dims, int batch_files,
					   int connections, char *err, size_t errlen);
int			cvl_db_schema_ensure(CvlDb db);
int			cvl_db_repo_open(CvlDb db, const char *name, const char *root,
							 CvlMap known);
int			cvl_db_file_add(CvlDb db, CvlFile file);
int			cvl_db_flush(CvlDb db);
typedef void (*CvlDbRejectFn) (CvlFile file, int nsnippets, const char *message,
							   void *arg);
void		cvl_db_drain_rejected(CvlDb db, CvlDbRejectFn fn, void *arg);
int			cvl_db_prune(CvlDb db, CvlFileData *files, size_t nfiles);
int			cvl_db_writers(CvlDb db);
int			cvl_db_embed_plan(CvlDb db, int batch, CvlEmbedPlan *plan);
int64_t		cvl_db_embed_fallbacks(CvlDb db, const char **message);
int			cvl_db_embed(CvlDb db, int batch, bool all_repos, bool *available);
int			cvl_db_bm25_refresh(CvlDb db, bool *rebuilt);

/* schema.c: the SQL text db.c runs to create or upgrade schema code */
extern const char *const cvl_schema_sql;
extern const char *const cvl_emb_missing_idx_sql;
extern const char *const cvl_snippet_tsv_sql;
extern const char *const cvl_snippet_tsv_c_sql;
extern const char *const cvl_search_sql;
extern const char *const cvl_bm25_sql;
const char *cvl_db_error(CvlDb db);
const CvlDbStats *cvl_db_stats(CvlDb db);
void		cvl_db_delete(CvlDb db);

/* shard.c: codevec-load --coordinator (a sharded codevec, shards/README.md) */
int			cvl_shard_route(const char *coordinator, const char *repo, int *shard,
							char **conninfo, char *err, size_t errlen);
int			cvl_shard_refresh(const char *coordinator, char *err, size_t errlen);
int			cvl_shard_list(const char *coordinator, int *n, int **shards,
						   char ***conninfos, char *err, size_t errlen);

#endif							/* CVL_H */
