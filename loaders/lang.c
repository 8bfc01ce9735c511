/*
 * lang.c -- the languages codevec-load knows, chosen by file name.
 *
 * Grammars are the tree-sitter parsers compiled from the PyPI sdists pinned
 * in grammars.tsv; their TSLanguage objects are immutable and shared by all
 * worker threads.  A .h file is C unless its text looks like C++
 * (cvl_header_looks_cpp(), applied by the parser threads).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

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

/* Return the language called name ("cpp", ...), or NULL. */
CvlLanguage
cvl_language_named(const char *name)
{
	for (size_t i = 0; i < sizeof(Languages) / sizeof(Languages[0]); i++)
		if (strcmp(Languages[i].name, name) == 0)
			return &Languages[i];
	return NULL;
}

/* Does line [p, end) start (after blanks) with word (a whole word)? */
static bool
LineStartsWith(const char *p, const char *end, const char *word)
{
	size_t		n = strlen(word);

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if ((size_t) (end - p) < n || strncmp(p, word, n) != 0)
		return false;
	p += n;
	/* a word ending in a space, ':' or '<' needs no boundary check */
	if (!(isalnum((unsigned char) word[n - 1]) || word[n - 1] == '_'))
		return true;
	return p == end || !(isalnum((unsigned char) *p) || *p == '_');
}

/*
 * Does a .h file look like C++?  .h is C by name, but C++ projects use it
 * too; a line starting with namespace, template, class (with a body or a
 * base on that line) or an access specifier says C++.
 */
bool
cvl_header_looks_cpp(const char *src, size_t len)
{
	const char *p = src;
	const char *end = src + len;

	while (p < end)
	{
		const char *nl = memchr(p, '\n', (size_t) (end - p));
		const char *le = nl ? nl : end;

		if (LineStartsWith(p, le, "namespace ") || LineStartsWith(p, le, "template<") ||
			LineStartsWith(p, le, "template <") ||
			LineStartsWith(p, le, "public:") || LineStartsWith(p, le, "private:") ||
			LineStartsWith(p, le, "protected:"))
			return true;
		/* `class Name {` or `class Name : Base`, not a bitfield `class:5;` */
		if (LineStartsWith(p, le, "class ") &&
			(memchr(p, '{', (size_t) (le - p)) || memchr(p, ':', (size_t) (le - p))))
			return true;
		p = le + 1;
	}
	return false;
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
