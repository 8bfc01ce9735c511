/*
 * walk.c -- find the files to load under a root.
 *
 * A depth-first walk with an explicit stack of directories.  Symlinks are
 * never followed (so no loops, and nothing outside the root is read);
 * `.git`, `.hg` and `.svn` are skipped; when the root lies inside a git work tree, libgit2's
 * git_ignore_path_is_ignored() applies .gitignore files at every level,
 * .git/info/exclude and core.excludesFile, exactly as git does.  An ignored
 * or --exclude'd directory is pruned whole.  Files are kept when their name
 * maps to a language, they pass --include/--exclude, and are regular files.
 * The result is sorted by path so that output order is deterministic.
 *
 * Globs use fnmatch(3) without FNM_PATHNAME and are tried against both the
 * path relative to the root and the base name: `*.py`, `tests/x*`,
 * `vendor` all do what one expects.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <git2.h>

#include "cvl.h"

struct CvlWalkerData
{
	char	   *root;			/* absolute, no trailing slash */
	const CvlWalkOptions *options;
	git_repository *repo;		/* NULL: not inside a git work tree */
	char	   *git_prefix;		/* root relative to the work tree, "" or "a/b/" */
	char	   *single;			/* root was a file: its base name */
	CvlFileData *files;
	size_t		nfiles;
	size_t		cap;
	int64_t		skips[CVL_WALK_SKIP_COUNT];
};

/* Name one walk skip reason (as printed in the summary). */
const char *
cvl_walk_skip_name(CvlWalkSkip skip)
{
	static const char *names[] = {
		"gitignored", "excluded", "no-grammar", "symlink", "special",
		"unreadable-dir",
	};

	return skip < CVL_WALK_SKIP_COUNT ? names[skip] : "?";
}

/*
 * Create a walker for root (a directory or a single file).  Returns NULL
 * and a message in err when root cannot be resolved.
 */
CvlWalker
cvl_walker_new(const char *root, const CvlWalkOptions *options,
			   char *err, size_t errlen)
{
	char		abs[PATH_MAX];
	struct stat st;
	CvlWalker	w;

	if (realpath(root, abs) == NULL || stat(abs, &st) != 0)
	{
		snprintf(err, errlen, "cannot open \"%s\": %s", root, strerror(errno));
		return NULL;
	}
	w = cvl_malloc(sizeof(*w));
	memset(w, 0, sizeof(*w));
	w->options = options;
	if (S_ISREG(st.st_mode))
	{
		char	   *slash = strrchr(abs, '/');

		w->single = cvl_strdup(slash + 1);
		*slash = '\0';
		if (abs[0] == '\0')
			strcpy(abs, "/");
	}
	else if (!S_ISDIR(st.st_mode))
	{
		snprintf(err, errlen, "\"%s\" is neither a directory nor a file", root);
		free(w);
		return NULL;
	}
	w->root = cvl_strdup(abs);

	if (git_repository_open_ext(&w->repo, abs, 0, NULL) == 0)
	{
		const char *wd = git_repository_workdir(w->repo);
		size_t		wdlen = wd ? strlen(wd) : 0;	/* ends with '/' */
		size_t		len = strlen(abs);

		if (wd && len + 1 >= wdlen && strncmp(abs, wd, wdlen - 1) == 0)
		{
			CvlBufData	p;

			cvl_buf_init(&p);
			if (len + 1 > wdlen)
			{
				cvl_buf_puts(&p, abs + wdlen);
				cvl_buf_putc(&p, '/');
			}
			w->git_prefix = cvl_buf_steal(&p);
		}
		else
		{
			git_repository_free(w->repo);	/* bare, or root outside it */
			w->repo = NULL;
		}
	}
	return w;
}

/* Does path (relative) or its base name match any of the globs? */
static bool
MatchesAny(char **globs, int n, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (int i = 0; i < n; i++)
		if (fnmatch(globs[i], rel, 0) == 0 || fnmatch(globs[i], base, 0) == 0)
			return true;
	return false;
}

/* Is rel (relative to the root) ignored by git? */
static bool
GitIgnored(CvlWalker w, const char *rel, bool is_dir)
{
	int			ignored = 0;
	CvlBufData	p;

	if (w->repo == NULL)
		return false;
	cvl_buf_init(&p);
	cvl_buf_puts(&p, w->git_prefix);
	cvl_buf_puts(&p, rel);
	if (is_dir)
		cvl_buf_putc(&p, '/');
	if (git_ignore_path_is_ignored(&ignored, w->repo, p.data) != 0)
		ignored = 0;
	cvl_buf_free(&p);
	return ignored == 1;
}

/* Consider one regular file: language, globs, git ignore. */
static void
ConsiderFile(CvlWalker w, const char *rel, const struct stat *st)
{
	const CvlWalkOptions *o = w->options;
	CvlLanguage lang;

	if (o->nexclude && MatchesAny(o->exclude, o->nexclude, rel))
	{
		w->skips[CVL_WALK_EXCLUDED]++;
		return;
	}
	if (o->ninclude && !MatchesAny(o->include, o->ninclude, rel))
	{
		w->skips[CVL_WALK_EXCLUDED]++;
		return;
	}
	lang = cvl_language_for_path(rel);
	if (lang == NULL)
	{
		w->skips[CVL_WALK_LANGUAGE]++;
		return;
	}
	if (GitIgnored(w, rel, false))
	{
		w->skips[CVL_WALK_IGNORED]++;
		return;
	}
	if (w->nfiles == w->cap)
	{
		w->cap = w->cap ? w->cap * 2 : 1024;
		w->files = cvl_realloc(w->files, w->cap * sizeof(CvlFileData));
	}
	CvlFileData *f = &w->files[w->nfiles++];

	memset(f, 0, sizeof(*f));
	f->path = cvl_strdup(rel);
	f->language = lang;
	f->bytes = (int64_t) st->st_size;
}

/* Order files by path (byte order, like the C locale). */
static int
ComparePaths(const void *a, const void *b)
{
	return strcmp(((const CvlFileData *) a)->path, ((const CvlFileData *) b)->path);
}

/*
 * Walk the tree and collect the files to load.  Returns 0, or -1 when the
 * root itself cannot be listed (other unreadable directories are counted).
 */
int
cvl_walker_run(CvlWalker w)
{
	char	  **stack;
	size_t		nstack = 0,
				capstack = 64;
	int			rc = 0;

	if (w->single)
	{
		struct stat st;
		CvlBufData	p;

		cvl_buf_init(&p);
		cvl_buf_printf(&p, "%s/%s", w->root, w->single);
		if (lstat(p.data, &st) == 0 && S_ISREG(st.st_mode))
			ConsiderFile(w, w->single, &st);
		cvl_buf_free(&p);
		return 0;
	}

	stack = cvl_malloc(capstack * sizeof(char *));
	stack[nstack++] = cvl_strdup("");
	while (nstack > 0)
	{
		char	   *rel = stack[--nstack];
		CvlBufData	dirpath;
		DIR		   *dir;
		struct dirent *de;

		cvl_buf_init(&dirpath);
		cvl_buf_puts(&dirpath, w->root);
		if (rel[0])
		{
			cvl_buf_putc(&dirpath, '/');
			cvl_buf_puts(&dirpath, rel);
		}
		dir = opendir(dirpath.data);
		if (dir == NULL)
		{
			if (rel[0] == '\0')
				rc = -1;
			w->skips[CVL_WALK_UNREADABLE_DIR]++;
			cvl_buf_free(&dirpath);
			free(rel);
			continue;
		}
		while ((de = readdir(dir)) != NULL)
		{
			const char *name = de->d_name;
			struct stat st;
			CvlBufData	child,
						full;

			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
				strcmp(name, ".git") == 0 || strcmp(name, ".hg") == 0 ||
				strcmp(name, ".svn") == 0)
				continue;		/* version control metadata */
			cvl_buf_init(&child);
			if (rel[0])
				cvl_buf_printf(&child, "%s/", rel);
			cvl_buf_puts(&child, name);
			cvl_buf_init(&full);
			cvl_buf_printf(&full, "%s/%s", dirpath.data, name);
			if (lstat(full.data, &st) != 0)
				;				/* vanished since readdir: nothing to load */
			else if (S_ISLNK(st.st_mode))
				w->skips[CVL_WALK_SYMLINK]++;
			else if (S_ISDIR(st.st_mode))
			{
				const CvlWalkOptions *o = w->options;

				if (o->nexclude && MatchesAny(o->exclude, o->nexclude, child.data))
					w->skips[CVL_WALK_EXCLUDED]++;
				else if (GitIgnored(w, child.data, true))
					w->skips[CVL_WALK_IGNORED]++;
				else
				{
					if (nstack == capstack)
					{
						capstack *= 2;
						stack = cvl_realloc(stack, capstack * sizeof(char *));
					}
					stack[nstack++] = cvl_buf_steal(&child);
				}
			}
			else if (S_ISREG(st.st_mode))
				ConsiderFile(w, child.data, &st);
			else
				w->skips[CVL_WALK_SPECIAL]++;
			cvl_buf_free(&child);
			cvl_buf_free(&full);
		}
		closedir(dir);
		cvl_buf_free(&dirpath);
		free(rel);
	}
	free(stack);
	if (w->nfiles > 1)
		qsort(w->files, w->nfiles, sizeof(CvlFileData), ComparePaths);
	return rc;
}

/* Return the collected files (owned by the walker) and their count. */
CvlFileData *
cvl_walker_files(CvlWalker w, size_t *nfiles)
{
	*nfiles = w->nfiles;
	return w->files;
}

/* Return the skip counters, indexed by CvlWalkSkip. */
const int64_t *
cvl_walker_skips(CvlWalker w)
{
	return w->skips;
}

/* Does the walker apply git ignore rules (root inside a work tree)? */
bool
cvl_walker_uses_git(CvlWalker w)
{
	return w->repo != NULL;
}

/* Free the walker and its file list. */
void
cvl_walker_delete(CvlWalker w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nfiles; i++)
	{
		cvl_file_clear_snippets(&w->files[i]);
		free(w->files[i].path);
	}
	free(w->files);
	if (w->repo)
		git_repository_free(w->repo);
	free(w->git_prefix);
	free(w->single);
	free(w->root);
	free(w);
}
