/*
 * pool.c -- parse files on all cores, hand results back in file order.
 *
 * Worker threads (one tree-sitter parser each; parsers are not shared)
 * take the next file index, read the file, hash it, compare the hash with
 * the stored one, decode it to UTF-8 (encoding.c: BOMs, declared
 * encodings, NUL bytes, U+FFFD for stray bytes), parse and extract its
 * snippets, and check that every text extracted is well-formed UTF-8
 * before it may leave the loader (CheckOutput()).  The calling thread emits results strictly in file order,
 * so output is deterministic and the database sees files in path order.
 *
 * Memory is bounded by a window: a worker may only start file i while
 * i < emitted + CVL_POOL_WINDOW, so at most CVL_POOL_WINDOW files (each at
 * most --max-file-bytes, plus its snippets) are in memory at once, however
 * far the parsers run ahead of the database.
 *
 * Workers never print or touch the database; everything they learn goes
 * into the CvlFileData they own until it is marked ready, including the
 * thread CPU time of each phase (CPU, not wall time: on a shared machine a
 * descheduled thread would otherwise inflate the phase it was in).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cvl.h"

/* a parse taking longer than this is abandoned (pathological input) */
#define CVL_PARSE_TIMEOUT_MICROS	(20 * 1000 * 1000)

typedef struct Pool
{
	const CvlPoolOptions *options;
	CvlFileData *files;
	size_t		nfiles;
	size_t		next;			/* next index a worker takes */
	size_t		emitted;		/* files [0, emitted) have been emitted */
	bool	   *ready;
	bool		stop;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* window moved, or stop */
	pthread_cond_t done;		/* some file became ready */
} Pool;

/*
 * Read a whole file into a malloc'd buffer.  Sets file->status on failure
 * and returns NULL; never reads more than max_bytes + 1.
 */
static char *
ReadFile(const Pool *pool, CvlFile file, size_t *len)
{
	CvlBufData	path;
	struct stat st;
	int			fd;
	char	   *buf;
	size_t		n = 0;
	int64_t		max = pool->options->max_file_bytes;

	cvl_buf_init(&path);
	cvl_buf_printf(&path, "%s/%s", pool->options->root, file->path);
	fd = open(path.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	cvl_buf_free(&path);
	if (fd < 0)
	{
		file->status = errno == ENOENT ? CVL_FILE_VANISHED : CVL_FILE_UNREADABLE;
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		file->status = CVL_FILE_UNREADABLE;
		return NULL;
	}
	file->bytes = (int64_t) st.st_size;
	if (st.st_size > max)
	{
		close(fd);
		file->status = CVL_FILE_TOO_LARGE;
		return NULL;
	}
	/* the file may grow while we read: read up to max + 1 and check */
	size_t		cap = (size_t) st.st_size + 1;

	buf = cvl_malloc(cap + 1);
	for (;;)
	{
		ssize_t		r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
		{
			close(fd);
			free(buf);
			file->status = CVL_FILE_UNREADABLE;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t) r;
		if (n == cap)
		{
			if ((int64_t) cap > max)
				break;
			cap = cap * 2 > (size_t) max + 1 ? (size_t) max + 1 : cap * 2;
			buf = cvl_realloc(buf, cap + 1);
		}
	}
	close(fd);
	buf[n] = '\0';
	file->bytes = (int64_t) n;
	if ((int64_t) n > max)
	{
		free(buf);
		file->status = CVL_FILE_TOO_LARGE;
		return NULL;
	}
	*len = n;
	return buf;
}

/* Is s NULL or well-formed UTF-8? */
static inline bool
TextOk(const char *s)
{
	return s == NULL || cvl_utf8_is_valid(s, strlen(s));
}

/*
 * The last check before a file's text leaves the loader: every field of
 * every snippet is well-formed UTF-8 (by construction it is: the text was
 * decoded, and every cut is on a character boundary).  A file that fails
 * is never sent; it is reported as invalid-output.
 */
static bool
CheckOutput(CvlFile file)
{
	for (int i = 0; i < file->nsnippets; i++)
	{
		CvlSnippet	s = &file->snippets[i];

		if (!TextOk(s->symbol) || !TextOk(s->qualified_name) ||
			!TextOk(s->signature) || !TextOk(s->doc) || !TextOk(s->code) ||
			!TextOk(s->embed_text))
			return false;
	}
	return true;
}

/* Read, hash, decode, parse, extract and check one file (in a worker). */
static void
ProcessFile(Pool *pool, TSParser *parser, CvlFile file)
{
	double		t0 = cvl_clock_thread();
	size_t		len = 0;
	char	   *raw;
	char	   *src;
	const char *stored;
	CvlFileStatus st;

	if (!cvl_utf8_is_valid(file->path, strlen(file->path)))
	{
		/* code.files.path is text: a name that is not UTF-8 cannot be stored */
		file->status = CVL_FILE_PATH_ENCODING;
		return;
	}
	raw = ReadFile(pool, file, &len);
	if (raw == NULL)
	{
		file->t_read = cvl_clock_thread() - t0;
		return;
	}
	st = cvl_source_decode(raw, len, strcmp(file->language->name, "python") == 0,
						   &src, &len, file->encoding, &file->replaced);
	if (st != CVL_FILE_PENDING)
	{
		file->status = st;
		free(raw);
		file->t_read = cvl_clock_thread() - t0;
		return;
	}
	/* the hash is of the bytes on disk, whatever their encoding */
	cvl_sha256_hex(raw, (size_t) file->bytes, file->sha256);
	if (src != raw)
		free(raw);
	stored = pool->options->known ? cvl_map_get(pool->options->known, file->path) : NULL;
	file->known = stored != NULL;
	file->t_read = cvl_clock_thread() - t0;
	if (stored && strcmp(stored, file->sha256) == 0)
	{
		file->status = CVL_FILE_UNCHANGED;
		free(src);
		return;
	}

	double		t1 = cvl_clock_thread();
	TSTree	   *tree;

	if (strcmp(file->language->name, "c") == 0 && cvl_header_looks_cpp(src, len))
	{
		size_t		n = strlen(file->path);

		if (n > 2 && strcmp(file->path + n - 2, ".h") == 0)
			file->language = cvl_language_named("cpp");
	}

	ts_parser_set_language(parser, file->language->grammar());
	tree = ts_parser_parse_string(parser, NULL, src, (uint32_t) len);
	file->t_parse = cvl_clock_thread() - t1;
	if (tree == NULL)
	{
		ts_parser_reset(parser);
		file->status = CVL_FILE_PARSE_FAILED;
		free(src);
		return;
	}
	double		t2 = cvl_clock_thread();

	file->has_error = ts_node_has_error(ts_tree_root_node(tree));
	cvl_snippets_extract(file, tree, src, len);
	ts_tree_delete(tree);
	free(src);
	if (CheckOutput(file))
		file->status = CVL_FILE_PARSED;
	else
	{
		cvl_file_clear_snippets(file);
		file->status = CVL_FILE_INVALID_OUTPUT;
	}
	file->t_extract = cvl_clock_thread() - t2;
}

/* Worker thread body: take files inside the window until none are left. */
static void *
WorkerMain(void *arg)
{
	Pool	   *pool = arg;
	TSParser   *parser = ts_parser_new();

	ts_parser_set_timeout_micros(parser, CVL_PARSE_TIMEOUT_MICROS);
	pthread_mutex_lock(&pool->lock);
	for (;;)
	{
		while (!pool->stop && pool->next < pool->nfiles &&
			   pool->next >= pool->emitted + CVL_POOL_WINDOW)
			pthread_cond_wait(&pool->work, &pool->lock);
		if (pool->stop || pool->next >= pool->nfiles)
			break;
		size_t		i = pool->next++;

		pthread_mutex_unlock(&pool->lock);
		ProcessFile(pool, parser, &pool->files[i]);
		pthread_mutex_lock(&pool->lock);
		pool->ready[i] = true;
		pthread_cond_broadcast(&pool->done);
	}
	pthread_mutex_unlock(&pool->lock);
	ts_parser_delete(parser);
	return NULL;
}

/*
 * Process files[0..nfiles) on options->nthreads workers and call emit for
 * each, in order, on this thread; a file's snippets are freed right after
 * its emit.  An emit returning < 0 stops the run: remaining files keep
 * status CVL_FILE_PENDING.  Returns 0, or the first negative emit result.
 */
int
cvl_pool_run(const CvlPoolOptions *options, CvlFileData *files,
			 size_t nfiles, CvlPoolEmitFn emit, void *arg)
{
	Pool		pool;
	int			nthreads = options->nthreads > 0 ? options->nthreads : 1;
	pthread_t  *threads = cvl_malloc(sizeof(pthread_t) * (size_t) nthreads);
	int			started = 0;
	int			rc = 0;

	memset(&pool, 0, sizeof(pool));
	pool.options = options;
	pool.files = files;
	pool.nfiles = nfiles;
	pool.ready = calloc(nfiles ? nfiles : 1, sizeof(bool));
	if (pool.ready == NULL)
		cvl_malloc((size_t) -1);
	pthread_mutex_init(&pool.lock, NULL);
	pthread_cond_init(&pool.work, NULL);
	pthread_cond_init(&pool.done, NULL);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&threads[started], NULL, WorkerMain, &pool) == 0)
			started++;
	if (started == 0)
	{
		fprintf(stderr, "codevec-load: cannot start worker threads\n");
		exit(CVL_EXIT_INTERNAL);
	}

	for (size_t i = 0; i < nfiles; i++)
	{
		pthread_mutex_lock(&pool.lock);
		while (!pool.ready[i])
			pthread_cond_wait(&pool.done, &pool.lock);
		pthread_mutex_unlock(&pool.lock);

		rc = emit(&files[i], arg);
		cvl_file_clear_snippets(&files[i]);

		pthread_mutex_lock(&pool.lock);
		pool.emitted = i + 1;
		if (rc < 0)
			pool.stop = true;
		pthread_cond_broadcast(&pool.work);
		pthread_mutex_unlock(&pool.lock);
		if (rc < 0)
			break;
	}
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	/* files a worker finished after a stop still hold snippets */
	for (size_t i = 0; i < nfiles; i++)
		cvl_file_clear_snippets(&files[i]);
	pthread_mutex_destroy(&pool.lock);
	pthread_cond_destroy(&pool.work);
	pthread_cond_destroy(&pool.done);
	free(pool.ready);
	free(threads);
	return rc < 0 ? rc : 0;
}
