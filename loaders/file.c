/*
 * file.c -- the file object of codevec-load: a file's status names and its
 * snippets (CvlFileData, cvl.h "files and snippets").
 *
 * The walk (walk.c) makes the files, the parser pool (pool.c) fills them,
 * extraction (extract.c) appends their snippets, main.c names their
 * statuses.  Every one of them uses this file and it uses none of them
 * (test/layout checks that no two .c files depend on each other).
 */
#include <stdlib.h>
#include <string.h>

#include "cvl.h"

/* Name a file status (as printed in the summary and the JSONL skips). */
const char *
cvl_file_status_name(CvlFileStatus status)
{
	static const char *names[] = {
		"pending", "parsed", "unchanged", "too-large", "empty", "binary",
		"encoding", "path-not-utf8", "unreadable", "vanished", "parse-failed",
		"invalid-output", "rejected",
	};

	return status < CVL_FILE_STATUS_COUNT ? names[status] : "?";
}

/* Is this status a failure (as opposed to a policy skip)? */
bool
cvl_file_status_is_error(CvlFileStatus status)
{
	return status == CVL_FILE_UNREADABLE || status == CVL_FILE_PARSE_FAILED ||
		status == CVL_FILE_INVALID_OUTPUT || status == CVL_FILE_REJECTED;
}

/* Free a file's snippets. */
void
cvl_file_clear_snippets(CvlFile file)
{
	for (int i = 0; i < file->nsnippets; i++)
	{
		CvlSnippet	s = &file->snippets[i];

		free(s->symbol);
		free(s->qualified_name);
		free(s->signature);
		free(s->doc);
		free(s->code);
		free(s->embed_text);
	}
	free(file->snippets);
	file->snippets = NULL;
	file->nsnippets = 0;
	file->snippets_cap = 0;
}

/* Append a zeroed snippet to the file and return it. */
CvlSnippet
cvl_file_add_snippet(CvlFile file)
{
	if (file->nsnippets == file->snippets_cap)
	{
		file->snippets_cap = file->snippets_cap ? file->snippets_cap * 2 : 8;
		file->snippets = cvl_realloc(file->snippets,
									 file->snippets_cap * sizeof(CvlSnippetData));
	}
	CvlSnippet	s = &file->snippets[file->nsnippets++];

	memset(s, 0, sizeof(*s));
	return s;
}
