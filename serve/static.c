/*
 * static.c -- the search page's files, read once at start into memory.
 *
 * A fixed table maps each URL to one file: the page (index.html, app.js,
 * style.css from the static directory) and Debian's highlight.js
 * (libjs-highlight.js).  Nothing else is ever served, so no URL (with
 * "..", encoded or not) can name another file.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

typedef struct StaticEntry
{
	const char *url;
	int			dir;			/* 0: static_dir, 1: hljs_dir */
	const char *file;
	const char *content_type;
	ServeStaticFileData loaded;
} StaticEntry;

static StaticEntry Files[] = {
	{"/", 0, "index.html", "text/html; charset=utf-8", {0}},
	{"/index.html", 0, "index.html", "text/html; charset=utf-8", {0}},
	{"/app.js", 0, "app.js", "text/javascript; charset=utf-8", {0}},
	{"/style.css", 0, "style.css", "text/css; charset=utf-8", {0}},
	{"/hljs/highlight.min.js", 1, "highlight.min.js", "text/javascript; charset=utf-8", {0}},
	{"/hljs/github.css", 1, "styles/github.css", "text/css; charset=utf-8", {0}},
};

/* Reads a whole file; NULL when it cannot. */
static char *
ReadAll(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	long		n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(buf = malloc(n + 1)) && fread(buf, 1, n, f) == (size_t) n)
		*size = n;
	else
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/*
 * Loads every file of the table.  A missing page file is an error (-1);
 * a missing highlight.js only a warning (the page then shows plain code).
 */
int
serve_static_load(ServeConfig config)
{
	for (size_t i = 0; i < sizeof(Files) / sizeof(Files[0]); i++)
	{
		char		path[4096];
		StaticEntry *e = &Files[i];
		char	   *data;
		size_t		size = 0;

		snprintf(path, sizeof(path), "%s/%s", e->dir ? config->hljs_dir : config->static_dir, e->file);
		data = ReadAll(path, &size);
		if (!data)
		{
			if (e->dir == 0)
			{
				fprintf(stderr, "codevec-serve: cannot read %s (see --static-dir)\n", path);
				return -1;
			}
			fprintf(stderr, "codevec-serve: warning: cannot read %s: code is shown without highlighting\n", path);
			continue;
		}
		e->loaded.data = data;
		e->loaded.size = size;
		e->loaded.content_type = e->content_type;
	}
	return 0;
}

/* The file for url (the path without query string), or NULL. */
const ServeStaticFileData *
serve_static_find(const char *url)
{
	for (size_t i = 0; i < sizeof(Files) / sizeof(Files[0]); i++)
		if (strcmp(Files[i].url, url) == 0 && Files[i].loaded.data)
			return &Files[i].loaded;
	return NULL;
}

/* Frees the loaded files. */
void
serve_static_free(void)
{
	for (size_t i = 0; i < sizeof(Files) / sizeof(Files[0]); i++)
	{
		free((char *) Files[i].loaded.data);
		Files[i].loaded.data = NULL;
	}
}
