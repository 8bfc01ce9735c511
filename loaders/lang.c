/*
 * lang.c -- the languages codevec-load knows, chosen by file name.
 *
 * Grammars are the tree-sitter parsers compiled from the PyPI sdists pinned
 * in grammars.tsv; their TSLanguage objects are immutable and shared by all
 * worker threads.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cvl.h"

const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_java(void);

static const CvlLanguageData Languages[] = {
	{"c", tree_sitter_c, "."},
	{"cpp", tree_sitter_cpp, "::"},
	{"python", tree_sitter_python, "."},
	{"javascript", tree_sitter_javascript, "."},
	{"typescript", tree_sitter_typescript, "."},
	{"tsx", tree_sitter_tsx, "."},
	{"go", tree_sitter_go, "."},
	{"rust", tree_sitter_rust, "::"},
	{"java", tree_sitter_java, "."},
};

/* file name suffix -> index into Languages (case-sensitive: .C is C++) */
static const struct
{
	const char *suffix;
	int			language;
}			Suffixes[] = {
	{".c", 0}, {".h", 0},
	{".cc", 1}, {".cpp", 1}, {".cxx", 1}, {".c++", 1}, {".C", 1},
	{".hh", 1}, {".hpp", 1}, {".hxx", 1}, {".h++", 1}, {".ipp", 1},
	{".py", 2}, {".pyi", 2},
	{".js", 3}, {".mjs", 3}, {".cjs", 3}, {".jsx", 3},
	{".ts", 4}, {".mts", 4}, {".cts", 4},
	{".tsx", 5},
	{".go", 6},
	{".rs", 7},
	{".java", 8},
};

/* Return the language for a file name by its suffix, or NULL. */
CvlLanguage
cvl_language_for_path(const char *path)
{
	const char *base = strrchr(path, '/');
	const char *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		return NULL;
	for (size_t i = 0; i < sizeof(Suffixes) / sizeof(Suffixes[0]); i++)
		if (strcmp(dot, Suffixes[i].suffix) == 0)
			return &Languages[Suffixes[i].language];
	return NULL;
}

/* Check that every grammar's ABI is one the linked runtime can load. */
bool
cvl_languages_check(char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(Languages) / sizeof(Languages[0]); i++)
	{
		uint32_t	v = ts_language_version(Languages[i].grammar());

		if (v < TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION ||
			v > TREE_SITTER_LANGUAGE_VERSION)
		{
			snprintf(err, errlen,
					 "grammar \"%s\" has ABI version %u; the tree-sitter "
					 "runtime loads %d to %d",
					 Languages[i].name, v,
					 TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION,
					 TREE_SITTER_LANGUAGE_VERSION);
			return false;
		}
	}
	return true;
}
