/*
 * extract.c -- syntax tree -> snippets.
 *
 * One pre-order walk of the tree with a TSTreeCursor (no recursion, so deep
 * trees from generated or minified code cannot overflow a worker's stack).
 * Each named node is classified by ClassifyNode(), which knows the real
 * node type names of each grammar (function_definition, class_definition,
 * method_declaration, impl_item, type_spec, ...).  A definition becomes a
 * snippet; some also open a scope (class, struct, impl, trait, namespace,
 * module, function) that qualifies the names of the definitions inside it.
 * Scopes are kept on a small stack tagged with the tree depth that pushed
 * them and popped when the walk leaves that depth.
 *
 * For each snippet:
 *   outer node  the definition widened over wrappers that belong to it
 *               (Python decorators, C++ template <...>, JS/TS export, the
 *               `const f = () => ...` declaration); gives lines and code
 *   signature   the definition's text up to its body, whitespace collapsed
 *   doc         Python: the docstring (cleaned like inspect.cleandoc);
 *               others: the run of comments right before the outer node
 *               with no blank line between (Rust: only /// and /-star-star docs),
 *               comment markers removed
 * Files with syntax errors still yield every definition tree-sitter could
 * place; the walk descends into ERROR nodes too.
 *
 * --strip-docs (cvl_extract_configure): doc is NULL, and every doc the walk
 * found -- Python docstrings (the statement, with its whole lines when it
 * has them to itself) and the comment blocks that document a definition --
 * is cut out of the code of the snippets that contain it, after the walk
 * (a class is emitted before its methods' docs are seen).  Lines keep the
 * numbers of the file, so start_line/end_line still locate the snippet.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cvl.h"

#define SCOPE_MAX		64
#define SIGNATURE_MAX	400

typedef struct Scope
{
	char	   *name;
	uint32_t	depth;			/* tree depth of the node that pushed it */
	bool		is_type;		/* functions inside it are methods */
} Scope;

/* a byte range of the file: a snippet's code, or a doc to strip */
typedef struct Span
{
	uint32_t	start;
	uint32_t	end;
} Span;

typedef struct Extractor
{
	CvlFile		file;
	const char *src;
	size_t		len;
	const char *lang;			/* language name */
	const char *sep;			/* qualified name separator */
	char	   *prefix;			/* module / package, or NULL */
	Scope		scopes[SCOPE_MAX];
	int			nscopes;
	Span	   *code_spans;		/* per snippet (--strip-docs only) */
	int			ncode_spans;
	Span	   *docs;			/* docs to cut from code (--strip-docs) */
	int			ndocs;
	int			docs_cap;
} Extractor;

/* the run's settings (set once by main before any worker starts; the
 * embed_* ones are embedtext.c's) */
static CvlExtractOptions Options = {
	.strip_docs = false,
};

/*
 * Set the extraction options for the whole run.  Call before any file is
 * extracted: the workers read them without locks.
 */
void
cvl_extract_configure(const CvlExtractOptions *options)
{
	Options = *options;
	cvl_embed_text_configure(options);
}

/* Remember a doc's byte range to cut from the code that contains it. */
static void
AddDocSpan(Extractor *x, uint32_t start, uint32_t end)
{
	if (x->ndocs == x->docs_cap)
	{
		x->docs_cap = x->docs_cap ? x->docs_cap * 2 : 16;
		x->docs = cvl_realloc(x->docs, x->docs_cap * sizeof(Span));
	}
	x->docs[x->ndocs].start = start;
	x->docs[x->ndocs].end = end;
	x->ndocs++;
}

/*
 * Add the doc at [start, end): widened to its whole lines when nothing
 * else is on them (indentation before, the newline after), so no blank
 * line is left behind.
 */
static void
AddDoc(Extractor *x, uint32_t start, uint32_t end)
{
	uint32_t	ls = start,
				le = end;

	while (ls > 0 && (x->src[ls - 1] == ' ' || x->src[ls - 1] == '\t'))
		ls--;
	while (le < x->len && (x->src[le] == ' ' || x->src[le] == '\t' || x->src[le] == '\r'))
		le++;
	if ((ls == 0 || x->src[ls - 1] == '\n') && (le == x->len || x->src[le] == '\n'))
		AddDocSpan(x, ls, le < x->len ? le + 1 : le);
	else
		AddDocSpan(x, start, end);
}

/* what ClassifyNode() found */
typedef struct Definition
{
	const char *kind;			/* NULL: not a snippet */
	char	   *symbol;			/* owned */
	char	   *qualified;		/* owned, optional: overrides scope joining */
	TSNode		outer;			/* lines, code, doc anchor */
	TSNode		first;			/* where lines and code start (Rust #[...]) */
	TSNode		sig_start;		/* signature: from here ... */
	TSNode		body;			/* ... to the start of this (may be null) */
	char	   *scope_name;		/* owned: push this scope (may be NULL) */
	bool		scope_is_type;
	bool		python_doc;		/* docstring from body */
	bool		skip_body;		/* nothing worth a snippet inside */
} Definition;

/* Is n a (non-null) node of this type? */
static inline bool
TypeIs(TSNode n, const char *type)
{
	return !ts_node_is_null(n) && strcmp(ts_node_type(n), type) == 0;
}

/* Return n's child in field `name` (a null node if none). */
static inline TSNode
Field(TSNode n, const char *name)
{
	return ts_node_child_by_field_name(n, name, (uint32_t) strlen(name));
}

/* Copy a node's source text. */
static char *
NodeText(Extractor *x, TSNode n)
{
	uint32_t	s = ts_node_start_byte(n);
	uint32_t	e = ts_node_end_byte(n);

	if (e > x->len)
		e = (uint32_t) x->len;
	if (s > e)
		s = e;
	return cvl_strndup(x->src + s, e - s);
}

/* Copy a node's text with all whitespace removed (for `Foo :: bar`). */
static char *
NodeTextCompact(Extractor *x, TSNode n)
{
	char	   *t = NodeText(x, n);
	char	   *w = t;

	for (char *r = t; *r; r++)
		if (!isspace((unsigned char) *r))
			*w++ = *r;
	*w = '\0';
	return t;
}

/* Copy a node's text with each whitespace run made one space. */
static char *
NodeTextCollapsed(Extractor *x, TSNode n)
{
	char	   *t = NodeText(x, n);
	char	   *w = t;
	bool		space = false;

	for (char *r = t; *r; r++)
	{
		if (isspace((unsigned char) *r))
			space = w > t;
		else
		{
			if (space)
				*w++ = ' ';
			space = false;
			*w++ = *r;
		}
	}
	*w = '\0';
	return t;
}

static bool
IsWordChar(char c)
{
	return isalnum((unsigned char) c) || c == '_' || (unsigned char) c >= 0x80;
}

/*
 * C++: the text of a qualified name node (qualified_identifier, or a
 * class's name) as a qualified name.  An unknown macro before a definition
 * makes tree-sitter glue what precedes the name into one
 * qualified_identifier: `SPDLOG_INLINE std::shared_ptr<logger>
 * logger::clone()` has the "name" `std::shared_ptr<logger> logger::clone`,
 * `void SPDLOG_INLINE sink<M>::set_color()` has `SPDLOG_INLINE
 * sink<M>::set_color`.  A qualified name has no blank between its parts, so
 * the name starts after the last whitespace outside <...>, (...) and [...]
 * that is not next to a `::` (`Foo :: bar` stays whole) and comes before
 * any `operator` (`Foo::operator bool`).  Whitespace is then dropped except
 * one blank between two word characters (`operator bool`, `<unsigned
 * long>`).  A conversion operator's name ends before its parameter list
 * (tree-sitter's operator_cast holds it).
 */
static TSNode QualifiedLast(TSNode n);

static char *
CxxQualifiedText(Extractor *x, TSNode n)
{
	TSNode		last = QualifiedLast(n);
	TSNode		params = TypeIs(last, "operator_cast") ? Field(last, "declarator") : (TSNode) {0};
	char	   *t;
	const char *start;
	int			depth = 0;
	char	   *w;
	bool		space = false;

	t = NodeText(x, n);
	if (!ts_node_is_null(params) && ts_node_start_byte(params) > ts_node_start_byte(n) &&
		ts_node_start_byte(params) - ts_node_start_byte(n) < strlen(t))
		t[ts_node_start_byte(params) - ts_node_start_byte(n)] = '\0';
	start = t;
	for (const char *p = t; *p; p++)
	{
		if (*p == '<' || *p == '(' || *p == '[')
			depth++;
		else if ((*p == '>' || *p == ')' || *p == ']') && depth > 0)
			depth--;
		else if (depth == 0 && strncmp(p, "operator", 8) == 0 &&
				 (p == t || !IsWordChar(p[-1])) && !IsWordChar(p[8]))
			break;
		else if (depth == 0 && isspace((unsigned char) *p))
		{
			const char *before = p;
			const char *after = p;

			while (before > t && isspace((unsigned char) before[-1]))
				before--;
			while (isspace((unsigned char) *after))
				after++;
			if (before > t && before[-1] != ':' && *after != ':' && *after != '\0')
				start = after;
			p = after - 1;
		}
	}
	/* compact in place, from start */
	w = t;
	for (const char *r = start; *r; r++)
	{
		if (isspace((unsigned char) *r))
			space = true;
		else
		{
			if (space && w > t && IsWordChar(w[-1]) && IsWordChar(*r))
				*w++ = ' ';
			space = false;
			*w++ = *r;
		}
	}
	*w = '\0';
	return t;
}

/* Return the text of child field `name`, or NULL. */
static char *
FieldText(Extractor *x, TSNode n, const char *name)
{
	TSNode		f = Field(n, name);

	return ts_node_is_null(f) ? NULL : NodeText(x, f);
}

/* Is the innermost scope a type (so a function in it is a method)? */
static bool
InType(Extractor *x)
{
	return x->nscopes > 0 && x->scopes[x->nscopes - 1].is_type;
}

/* Widen a definition node over wrappers that belong to it. */
static TSNode
OuterNode(TSNode n)
{
	for (;;)
	{
		TSNode		p = ts_node_parent(n);

		if (TypeIs(p, "decorated_definition") ||
			TypeIs(p, "template_declaration") ||
			TypeIs(p, "export_statement"))
			n = p;
		else
			return n;
	}
}

/* Follow a C/C++ declarator chain down to the declared name node. */
static TSNode
DeclaratorName(TSNode d)
{
	for (int guard = 0; guard < 32 && !ts_node_is_null(d); guard++)
	{
		const char *t = ts_node_type(d);

		if (strcmp(t, "identifier") == 0 || strcmp(t, "field_identifier") == 0 ||
			strcmp(t, "type_identifier") == 0 ||
			strcmp(t, "qualified_identifier") == 0 ||
			strcmp(t, "destructor_name") == 0 ||
			strcmp(t, "operator_name") == 0 ||
			strcmp(t, "template_function") == 0)
			return d;
		TSNode		next = Field(d, "declarator");

		if (ts_node_is_null(next))
			next = ts_node_named_child(d, 0);
		d = next;
	}
	TSNode		null = {0};

	return null;
}

/* Does a C/C++ declarator chain hold a parameter list (function_declarator)? */
static bool
HasFunctionDeclarator(TSNode d)
{
	for (int guard = 0; guard < 32 && !ts_node_is_null(d); guard++)
	{
		if (TypeIs(d, "function_declarator"))
			return true;
		TSNode		next = Field(d, "declarator");

		if (ts_node_is_null(next))
			return false;
		d = next;
	}
	return false;
}

/* Return the last component of a C++ qualified name node. */
static TSNode
QualifiedLast(TSNode n)
{
	while (TypeIs(n, "qualified_identifier"))
	{
		TSNode		name = Field(n, "name");

		if (ts_node_is_null(name))
			break;
		n = name;
	}
	return n;
}

/* Python: the string node that is the docstring of a body block, or null. */
static TSNode
PythonDocstring(TSNode body)
{
	TSNode		null = {0};
	TSNode		first;

	if (ts_node_is_null(body))
		return null;
	for (uint32_t i = 0; i < ts_node_named_child_count(body); i++)
	{
		first = ts_node_named_child(body, i);
		if (TypeIs(first, "comment"))
			continue;
		if (!TypeIs(first, "expression_statement"))
			return null;
		TSNode		s = ts_node_named_child(first, 0);

		if (TypeIs(s, "string") || TypeIs(s, "concatenated_string"))
			return s;
		return null;
	}
	return null;
}

/* Strip blank leading/trailing lines and trailing spaces; NULL if empty. */
static char *
FinishDoc(CvlBuf b)
{
	/* trailing whitespace on each line */
	char	   *s = b->data ? b->data : "";
	CvlBufData	out;
	const char *line = s;

	cvl_buf_init(&out);
	while (*line)
	{
		const char *nl = strchr(line, '\n');
		size_t		n = nl ? (size_t) (nl - line) : strlen(line);

		while (n > 0 && isspace((unsigned char) line[n - 1]))
			n--;
		cvl_buf_append(&out, line, n);
		cvl_buf_putc(&out, '\n');
		line = nl ? nl + 1 : line + strlen(line);
	}
	cvl_buf_free(b);
	/* blank lines at both ends */
	char	   *t = out.data ? out.data : "";
	size_t		n = out.len;

	while (n > 0 && t[n - 1] == '\n')
		n--;
	size_t		st = 0;

	while (st < n && t[st] == '\n')
		st++;
	char	   *r = n > st ? cvl_strndup(t + st, n - st) : NULL;

	cvl_buf_free(&out);
	return r;
}

/* Clean a Python string literal into docstring text (like cleandoc). */
static char *
PythonDocText(Extractor *x, TSNode s)
{
	char	   *raw = NodeText(x, s);
	char	   *p = raw;
	size_t		n;
	CvlBufData	b;

	/* string prefix (r, u, b, f ...) and quotes */
	while (*p && isalpha((unsigned char) *p))
		p++;
	n = strlen(p);
	/*
	 * The quotes; the closing ones only when they are there (a string left
	 * open by a syntax error ends anywhere, maybe inside a character).
	 */
	size_t		nq = 0;

	if (n >= 3 && (strncmp(p, "\"\"\"", 3) == 0 || strncmp(p, "'''", 3) == 0))
		nq = 3;
	else if (n >= 1 && (p[0] == '"' || p[0] == '\''))
		nq = 1;
	if (nq)
	{
		char		quote[3] = {p[0], p[0], p[0]};

		p += nq;
		n -= nq;
		if (n >= nq && memcmp(p + n - nq, quote, nq) == 0)
			n -= nq;
	}
	/* common indentation of lines after the first */
	int			indent = -1;
	const char *q = memchr(p, '\n', n);

	while (q && q < p + n)
	{
		const char *l = q + 1;
		int			k = 0;

		while (l + k < p + n && (l[k] == ' ' || l[k] == '\t'))
			k++;
		if (l + k < p + n && l[k] != '\n' && (indent < 0 || k < indent))
			indent = k;
		q = memchr(l, '\n', (size_t) (p + n - l));
	}
	cvl_buf_init(&b);
	const char *l = p;
	bool		first = true;

	while (l < p + n)
	{
		const char *e = memchr(l, '\n', (size_t) (p + n - l));
		size_t		ln = e ? (size_t) (e - l) : (size_t) (p + n - l);

		if (first)
		{
			while (ln > 0 && isspace((unsigned char) *l))
				l++, ln--;
		}
		else
		{
			int			k = 0;

			while (k < indent && (size_t) k < ln && (l[k] == ' ' || l[k] == '\t'))
				k++;
			l += k;
			ln -= (size_t) k;
		}
		cvl_buf_append(&b, l, ln);
		cvl_buf_putc(&b, '\n');
		first = false;
		if (!e)
			break;
		l = e + 1;
	}
	free(raw);
	return FinishDoc(&b);
}

/* Is only whitespace before byte offset off on its line? */
static bool
StartsLine(Extractor *x, uint32_t off)
{
	while (off > 0 && x->src[off - 1] != '\n')
	{
		if (!isspace((unsigned char) x->src[off - 1]))
			return false;
		off--;
	}
	return true;
}

/* Append a comment's text without its markers. */
static void
AppendCommentText(CvlBuf b, const char *c)
{
	size_t		n = strlen(c);

	while (n > 0 && isspace((unsigned char) c[n - 1]))
		n--;
	if (n >= 2 && c[0] == '/' && c[1] == '*')
	{
		size_t		st = 2;

		while (st < n && (c[st] == '*' || c[st] == '!'))
			st++;
		if (n >= 4 && c[n - 2] == '*' && c[n - 1] == '/')
			n -= 2;
		while (n > st && c[n - 1] == '*')
			n--;
		const char *l = c + st;
		const char *end = c + n;
		bool		first = true;

		while (l <= end)
		{
			const char *e = memchr(l, '\n', (size_t) (end - l));
			const char *le = e ? e : end;

			if (!first)
			{
				while (l < le && (*l == ' ' || *l == '\t'))
					l++;
				if (l < le && *l == '*')
				{
					l++;
					if (l < le && *l == ' ')
						l++;
				}
			}
			else
				while (l < le && (*l == ' ' || *l == '\t'))
					l++;
			cvl_buf_append(b, l, (size_t) (le - l));
			cvl_buf_putc(b, '\n');
			first = false;
			if (!e)
				break;
			l = e + 1;
		}
		return;
	}
	size_t		st = 0;

	if (n >= 2 && c[0] == '/' && c[1] == '/')
	{
		st = 2;
		if (st < n && (c[st] == '/' || c[st] == '!'))
			st++;
	}
	else if (n >= 1 && c[0] == '#')
		st = 1;
	if (st < n && c[st] == ' ')
		st++;
	cvl_buf_append(b, c + st, n - st);
	cvl_buf_putc(b, '\n');
}

/* Is this comment a Rust doc comment: three slashes or slash-star-star? */
static bool
IsRustDoc(const char *c)
{
	return (strncmp(c, "///", 3) == 0 && c[3] != '/') ||
		(strncmp(c, "/**", 3) == 0 && c[3] != '*' && c[3] != '/');
}

/* The comment block right before `outer` (no blank line), cleaned. */
static char *
PrecedingComments(Extractor *x, TSNode outer)
{
	TSNode		comments[256];
	int			n = 0;
	uint32_t	next_row = ts_node_start_point(outer).row;
	TSNode		p = ts_node_prev_named_sibling(outer);
	bool		rust = strcmp(x->lang, "rust") == 0;

	while (!ts_node_is_null(p) && n < 256)
	{
		const char *t = ts_node_type(p);

		if (rust && (strcmp(t, "attribute_item") == 0))
		{
			next_row = ts_node_start_point(p).row;
			p = ts_node_prev_named_sibling(p);
			continue;
		}
		if (strstr(t, "comment") == NULL)
			break;
		if (ts_node_end_point(p).row + 1 < next_row)
			break;				/* blank line between */
		if (!StartsLine(x, ts_node_start_byte(p)))
			break;				/* trailing comment of earlier code */
		if (rust)
		{
			char	   *c = NodeText(x, p);
			bool		doc = IsRustDoc(c);

			free(c);
			if (!doc)
				break;
		}
		comments[n++] = p;
		next_row = ts_node_start_point(p).row;
		p = ts_node_prev_named_sibling(p);
	}
	if (n == 0)
		return NULL;
	if (Options.strip_docs)
		AddDoc(x, ts_node_start_byte(comments[n - 1]), ts_node_end_byte(comments[0]));
	CvlBufData	b;

	cvl_buf_init(&b);
	for (int i = n - 1; i >= 0; i--)
	{
		char	   *c = NodeText(x, comments[i]);

		AppendCommentText(&b, c);
		free(c);
	}
	return FinishDoc(&b);
}

/* Build a signature: text from `start` up to `body`, whitespace collapsed. */
static char *
Signature(Extractor *x, TSNode start, TSNode body)
{
	uint32_t	s = ts_node_start_byte(start);
	uint32_t	e;
	CvlBufData	b;

	if (!ts_node_is_null(body) && ts_node_start_byte(body) > s)
		e = ts_node_start_byte(body);
	else
	{
		/* no body field: stop at the first '{' or ';' outside brackets */
		int			depth = 0;

		e = ts_node_end_byte(start);
		for (uint32_t i = s; i < ts_node_end_byte(start); i++)
		{
			char		c = x->src[i];

			if (c == '(' || c == '[' || c == '<')
				depth++;
			else if ((c == ')' || c == ']' || c == '>') && depth > 0)
				depth--;
			else if ((c == '{' || c == ';' || c == '=') && depth == 0)
			{
				e = i;
				break;
			}
		}
	}
	cvl_buf_init(&b);
	bool		space = false;

	/*
	 * Collect a few bytes past the cap, so that the character straddling
	 * it is whole, then cut on a character boundary (src is UTF-8).
	 */
	for (uint32_t i = s; i < e && b.len < SIGNATURE_MAX + 4; i++)
	{
		unsigned char c = (unsigned char) x->src[i];

		if (isspace(c))
			space = b.len > 0;
		else
		{
			if (space)
				cvl_buf_putc(&b, ' ');
			space = false;
			cvl_buf_putc(&b, (char) c);
		}
	}
	if (b.len > SIGNATURE_MAX)
	{
		b.len = cvl_utf8_cut(b.data, b.len, SIGNATURE_MAX);
		b.data[b.len] = '\0';
	}
	/* trailing ':' (Python), '{', '=>' are not part of the signature */
	while (b.len > 0 && (b.data[b.len - 1] == ':' || b.data[b.len - 1] == '{' ||
						 b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	if (b.len >= 2 && strcmp(b.data + b.len - 2, "=>") == 0)
	{
		b.len -= 2;
		while (b.len > 0 && b.data[b.len - 1] == ' ')
			b.len--;
		b.data[b.len] = '\0';
	}
	if (b.len == 0)
	{
		cvl_buf_free(&b);
		return NULL;
	}
	return cvl_buf_steal(&b);
}

/* Go: the receiver's type name of a method_declaration. */
static char *
GoReceiverType(Extractor *x, TSNode method)
{
	TSNode		recv = Field(method, "receiver");

	for (uint32_t i = 0; !ts_node_is_null(recv) && i < ts_node_named_child_count(recv); i++)
	{
		TSNode		param = ts_node_named_child(recv, i);
		TSNode		type = Field(param, "type");

		while (TypeIs(type, "pointer_type") || TypeIs(type, "parenthesized_type"))
			type = ts_node_named_child(type, 0);
		if (TypeIs(type, "generic_type"))
			type = Field(type, "type");
		if (!ts_node_is_null(type))
			return NodeText(x, type);
	}
	return NULL;
}

/* Kind of a C/C++ specifier node with a body, or NULL. */
static const char *
SpecifierKind(TSNode n)
{
	if (TypeIs(n, "struct_specifier"))
		return "struct";
	if (TypeIs(n, "union_specifier"))
		return "union";
	if (TypeIs(n, "enum_specifier"))
		return "enum";
	if (TypeIs(n, "class_specifier"))
		return "class";
	return NULL;
}

/* C/C++: classify one node. */
static void
ClassifyC(Extractor *x, TSNode n, const char *t, Definition *d)
{
	if (strcmp(t, "function_definition") == 0)
	{
		TSNode		decl = Field(n, "declarator");
		TSNode		name = DeclaratorName(decl);
		TSNode		spec = Field(n, "type");

		/*
		 * `class FMT_API ostream final : private base {...}`: a macro
		 * between `class` and the name makes tree-sitter read a function
		 * definition whose type is `class FMT_API` and whose declarator
		 * (no parameter list anywhere) is the rest.  It is the class
		 * named by the word right after `class FMT_API`.
		 */
		if (SpecifierKind(spec) && ts_node_is_null(Field(spec, "body")) &&
			!ts_node_is_null(decl) && !HasFunctionDeclarator(decl))
		{
			size_t		at = ts_node_end_byte(spec);
			size_t		len = 0;

			while (at < x->len && isspace((unsigned char) x->src[at]))
				at++;
			while (at + len < x->len && IsWordChar(x->src[at + len]))
				len++;
			if (len > 0)
			{
				d->kind = SpecifierKind(spec);
				d->symbol = cvl_strndup(x->src + at, len);
				d->body = Field(n, "body");
				d->skip_body = true;
				d->scope_name = cvl_strdup(d->symbol);
				d->scope_is_type = true;
			}
			return;
		}

		/*
		 * `u32 __init_attr name(void) {...}`: an unknown macro before the
		 * name makes tree-sitter read the name as the return type and
		 * `(void)` as a parenthesized declarator.  The "type" is the name.
		 */
		if (ts_node_is_null(name) || TypeIs(decl, "parenthesized_declarator"))
		{
			TSNode		type = Field(n, "type");

			if (!TypeIs(type, "type_identifier"))
				return;
			name = type;
		}
		d->kind = InType(x) || TypeIs(name, "qualified_identifier") ? "method" : "function";
		if (TypeIs(name, "qualified_identifier"))
		{
			d->symbol = CxxQualifiedText(x, QualifiedLast(name));
			d->qualified = CxxQualifiedText(x, name);
		}
		else
			d->symbol = CxxQualifiedText(x, name);
		d->body = Field(n, "body");
		/* C/C++ function bodies hold no definitions worth a snippet (local
		 * structs and lambdas stay part of their function's code); not
		 * walking them halves the extraction time on C code */
		d->skip_body = true;
		return;
	}
	if (strcmp(t, "namespace_definition") == 0)
	{
		d->scope_name = FieldText(x, n, "name");
		return;
	}
	const char *sk = SpecifierKind(n);

	if (sk)
	{
		TSNode		body = Field(n, "body");
		TSNode		parent = ts_node_parent(n);

		if (ts_node_is_null(body))
			return;
		d->kind = sk;
		d->body = body;
		d->symbol = FieldText(x, n, "name");
		if (TypeIs(parent, "type_definition"))
		{
			/* typedef struct [tag] { ... } Name; -- the typedef is the unit */
			d->outer = parent;
			d->sig_start = parent;
			if (d->symbol == NULL)
			{
				TSNode		dn = DeclaratorName(Field(parent, "declarator"));

				if (!ts_node_is_null(dn))
					d->symbol = NodeText(x, dn);
			}
		}
		if (d->symbol == NULL)
		{
			d->kind = NULL;		/* anonymous: part of its parent's code */
			return;
		}
		if (strchr(d->symbol, ':'))
		{
			char	   *q = CxxQualifiedText(x, Field(n, "name"));

			d->qualified = q;
			free(d->symbol);
			d->symbol = CxxQualifiedText(x, QualifiedLast(Field(n, "name")));
		}
		if (strcmp(sk, "enum") != 0)
		{
			d->scope_name = cvl_strdup(d->symbol);
			d->scope_is_type = true;
		}
		return;
	}
	if (strcmp(t, "type_definition") == 0)
	{
		TSNode		type = Field(n, "type");

		if (SpecifierKind(type) && !ts_node_is_null(Field(type, "body")))
			return;				/* handled by the specifier */
		TSNode		dn = DeclaratorName(Field(n, "declarator"));

		if (ts_node_is_null(dn))
			return;
		d->kind = "type";
		d->symbol = NodeText(x, dn);
		return;
	}
	if (strcmp(t, "alias_declaration") == 0)
	{
		d->kind = "type";
		d->symbol = FieldText(x, n, "name");
		if (d->symbol == NULL)
			d->kind = NULL;
	}
}

/* Python: classify one node. */
static void
ClassifyPython(Extractor *x, TSNode n, const char *t, Definition *d)
{
	bool		fn = strcmp(t, "function_definition") == 0;

	if (!fn && strcmp(t, "class_definition") != 0)
		return;
	d->symbol = FieldText(x, n, "name");
	if (d->symbol == NULL)
		return;
	d->kind = fn ? (InType(x) ? "method" : "function") : "class";
	d->body = Field(n, "body");
	d->python_doc = true;
	d->scope_name = cvl_strdup(d->symbol);
	d->scope_is_type = !fn;
}

/* Go: classify one node. */
static void
ClassifyGo(Extractor *x, TSNode n, const char *t, Definition *d)
{
	if (strcmp(t, "package_clause") == 0)
	{
		TSNode		id = ts_node_named_child(n, 0);

		if (!ts_node_is_null(id) && x->prefix == NULL)
			x->prefix = NodeText(x, id);
		return;
	}
	if (strcmp(t, "function_declaration") == 0)
	{
		d->kind = "function";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		return;
	}
	if (strcmp(t, "method_declaration") == 0)
	{
		char	   *recv = GoReceiverType(x, n);

		d->kind = "method";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		if (recv && d->symbol)
		{
			CvlBufData	q;

			cvl_buf_init(&q);
			cvl_buf_printf(&q, "%s.%s", recv, d->symbol);
			d->qualified = cvl_buf_steal(&q);
		}
		free(recv);
		return;
	}
	if (strcmp(t, "type_spec") == 0 || strcmp(t, "type_alias") == 0)
	{
		TSNode		type = Field(n, "type");
		TSNode		decl = ts_node_parent(n);

		d->symbol = FieldText(x, n, "name");
		d->kind = TypeIs(type, "struct_type") ? "struct" :
			TypeIs(type, "interface_type") ? "interface" : "type";
		/* `type X struct {...}`: one spec, the declaration is the unit */
		if (TypeIs(decl, "type_declaration") && ts_node_named_child_count(decl) == 1)
		{
			d->outer = decl;
			d->sig_start = decl;
		}
	}
}

/* Rust: classify one node. */
static void
ClassifyRust(Extractor *x, TSNode n, const char *t, Definition *d)
{
	if (strcmp(t, "function_item") == 0)
	{
		d->kind = InType(x) ? "method" : "function";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		d->scope_name = d->symbol ? cvl_strdup(d->symbol) : NULL;
		return;
	}
	if (strcmp(t, "impl_item") == 0)
	{
		TSNode		type = Field(n, "type");

		if (ts_node_is_null(type))
			return;
		d->kind = "impl";
		/* the bare type name: Foo<T> -> Foo */
		TSNode		base = TypeIs(type, "generic_type") ? Field(type, "type") : type;

		d->symbol = NodeTextCollapsed(x, ts_node_is_null(base) ? type : base);
		d->body = Field(n, "body");
		d->scope_name = cvl_strdup(d->symbol);
		d->scope_is_type = true;
		return;
	}
	if (strcmp(t, "mod_item") == 0)
	{
		if (!ts_node_is_null(Field(n, "body")))
			d->scope_name = FieldText(x, n, "name");
		return;
	}
	static const struct
	{
		const char *type;
		const char *kind;
		bool		scope;
	}			items[] = {
		{"struct_item", "struct", false},
		{"enum_item", "enum", false},
		{"union_item", "union", false},
		{"trait_item", "trait", true},
		{"type_item", "type", false},
	};

	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		if (strcmp(t, items[i].type) == 0)
		{
			d->kind = items[i].kind;
			d->symbol = FieldText(x, n, "name");
			d->body = Field(n, "body");
			if (items[i].scope && d->symbol)
			{
				d->scope_name = cvl_strdup(d->symbol);
				d->scope_is_type = true;
			}
			return;
		}
}

/* Java: classify one node. */
static void
ClassifyJava(Extractor *x, TSNode n, const char *t, Definition *d)
{
	static const struct
	{
		const char *type;
		const char *kind;
	}			types[] = {
		{"class_declaration", "class"},
		{"interface_declaration", "interface"},
		{"enum_declaration", "enum"},
		{"record_declaration", "record"},
		{"annotation_type_declaration", "annotation"},
	};

	if (strcmp(t, "package_declaration") == 0)
	{
		TSNode		id = ts_node_named_child(n, 0);

		if (!ts_node_is_null(id) && x->prefix == NULL)
			x->prefix = NodeTextCompact(x, id);
		return;
	}
	if (strcmp(t, "method_declaration") == 0 ||
		strcmp(t, "constructor_declaration") == 0)
	{
		d->kind = t[0] == 'm' ? "method" : "constructor";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		return;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(t, types[i].type) == 0)
		{
			d->kind = types[i].kind;
			d->symbol = FieldText(x, n, "name");
			d->body = Field(n, "body");
			if (d->symbol)
			{
				d->scope_name = cvl_strdup(d->symbol);
				d->scope_is_type = true;
			}
			return;
		}
}

/* JavaScript / TypeScript / TSX: classify one node. */
static void
ClassifyJs(Extractor *x, TSNode n, const char *t, Definition *d)
{
	if (strcmp(t, "function_declaration") == 0 ||
		strcmp(t, "generator_function_declaration") == 0)
	{
		d->kind = "function";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		d->scope_name = d->symbol ? cvl_strdup(d->symbol) : NULL;
		return;
	}
	if (strcmp(t, "class_declaration") == 0 ||
		strcmp(t, "abstract_class_declaration") == 0 ||
		strcmp(t, "interface_declaration") == 0 ||
		strcmp(t, "enum_declaration") == 0)
	{
		d->kind = t[0] == 'i' ? "interface" : t[0] == 'e' ? "enum" : "class";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		if (d->symbol && t[0] != 'e')
		{
			d->scope_name = cvl_strdup(d->symbol);
			d->scope_is_type = true;
		}
		return;
	}
	if (strcmp(t, "method_definition") == 0)
	{
		d->kind = "method";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(n, "body");
		return;
	}
	if (strcmp(t, "field_definition") == 0 || strcmp(t, "public_field_definition") == 0)
	{
		/* class fields holding functions: handle = (e) => {...} */
		TSNode		value = Field(n, "value");
		TSNode		name = Field(n, t[0] == 'f' ? "property" : "name");

		if (ts_node_is_null(name) ||
			!(TypeIs(value, "arrow_function") || TypeIs(value, "function_expression") ||
			  TypeIs(value, "function")))
			return;
		d->kind = "method";
		d->symbol = NodeText(x, name);
		d->body = Field(value, "body");
		return;
	}
	if (strcmp(t, "type_alias_declaration") == 0)
	{
		d->kind = "type";
		d->symbol = FieldText(x, n, "name");
		return;
	}
	if (strcmp(t, "internal_module") == 0 || strcmp(t, "module") == 0)
	{
		d->scope_name = FieldText(x, n, "name");
		return;
	}
	if (strcmp(t, "variable_declarator") == 0)
	{
		/* const name = (...) => {...} / function (...) {...} */
		TSNode		value = Field(n, "value");
		TSNode		decl = ts_node_parent(n);

		if (!(TypeIs(value, "arrow_function") || TypeIs(value, "function_expression") ||
			  TypeIs(value, "function") || TypeIs(value, "generator_function")))
			return;
		if (!TypeIs(Field(n, "name"), "identifier"))
			return;
		d->kind = "function";
		d->symbol = FieldText(x, n, "name");
		d->body = Field(value, "body");
		if ((TypeIs(decl, "lexical_declaration") || TypeIs(decl, "variable_declaration")) &&
			ts_node_named_child_count(decl) == 1)
		{
			d->outer = OuterNode(decl);
			d->sig_start = decl;
		}
		d->scope_name = cvl_strdup(d->symbol);
	}
}

/* Join prefix, scopes and symbol with the language's separator. */
static char *
QualifiedName(Extractor *x, const char *symbol)
{
	CvlBufData	b;

	cvl_buf_init(&b);
	if (x->prefix)
	{
		cvl_buf_puts(&b, x->prefix);
		cvl_buf_puts(&b, x->sep);
	}
	for (int i = 0; i < x->nscopes; i++)
	{
		cvl_buf_puts(&b, x->scopes[i].name);
		cvl_buf_puts(&b, x->sep);
	}
	cvl_buf_puts(&b, symbol);
	return cvl_buf_steal(&b);
}

/* Python: module path from the file path (pkg/mod.py -> pkg.mod). */
static char *
PythonModule(const char *path)
{
	char	   *m = cvl_strdup(path);
	char	   *dot = strrchr(m, '.');
	char	   *slash = strrchr(m, '/');

	if (dot && (!slash || dot > slash))
		*dot = '\0';
	for (char *p = m; *p; p++)
		if (*p == '/')
			*p = '.';
	size_t		n = strlen(m);

	if (n >= 9 && strcmp(m + n - 9, ".__init__") == 0)
		m[n - 9] = '\0';
	else if (strcmp(m, "__init__") == 0)
		m[0] = '\0';
	if (m[0] == '\0')
	{
		free(m);
		return NULL;
	}
	return m;
}

/* Turn a Definition into a snippet of x->file. */
static void
EmitSnippet(Extractor *x, Definition *d)
{
	CvlSnippet	s = cvl_file_add_snippet(x->file);
	TSNode		outer = d->outer;
	uint32_t	sb = ts_node_start_byte(d->first);
	uint32_t	eb = ts_node_end_byte(outer);

	s->kind = d->kind;
	s->symbol = d->symbol;
	d->symbol = NULL;
	if (d->qualified)
	{
		char	   *q = QualifiedName(x, d->qualified);

		s->qualified_name = q;
	}
	else
		s->qualified_name = QualifiedName(x, s->symbol);
	s->signature = Signature(x, d->sig_start, d->body);
	if (s->signature && strstr(s->signature, s->symbol) == NULL)
	{
		/* typedef struct { ... } name_t: say the name */
		CvlBufData	b;

		size_t		siglen = strlen(s->signature);
		size_t		symlen = strlen(s->symbol);

		/* still at most SIGNATURE_MAX bytes, the name kept whole if it fits */
		if (siglen + 1 + symlen > SIGNATURE_MAX && symlen < SIGNATURE_MAX)
			siglen = cvl_utf8_cut(s->signature, siglen, SIGNATURE_MAX - 1 - symlen);
		cvl_buf_init(&b);
		cvl_buf_append(&b, s->signature, siglen);
		cvl_buf_putc(&b, ' ');
		cvl_buf_puts(&b, s->symbol);
		if (b.len > SIGNATURE_MAX)
		{
			b.len = cvl_utf8_cut(b.data, b.len, SIGNATURE_MAX);
			b.data[b.len] = '\0';
		}
		free(s->signature);
		s->signature = cvl_buf_steal(&b);
	}
	if (d->python_doc)
	{
		TSNode		ds = PythonDocstring(d->body);

		s->doc = ts_node_is_null(ds) ? NULL : PythonDocText(x, ds);
		if (!ts_node_is_null(ds) && Options.strip_docs)
		{
			TSNode		stmt = ts_node_parent(ds);	/* expression_statement */

			AddDoc(x, ts_node_start_byte(stmt), ts_node_end_byte(stmt));
		}
	}
	else
		s->doc = PrecedingComments(x, outer);
	if (Options.strip_docs)
	{
		free(s->doc);
		s->doc = NULL;
	}
	s->start_line = (int) ts_node_start_point(d->first).row + 1;
	s->end_line = (int) ts_node_end_point(outer).row + 1;
	/* a node ending at column 0 ends on the previous line (trailing \n) */
	if (ts_node_end_point(outer).column == 0 && s->end_line > s->start_line)
		s->end_line--;
	if (eb > x->len)
		eb = (uint32_t) x->len;
	/* code starts at its line's beginning so that indentation is kept */
	while (sb > 0 && (x->src[sb - 1] == ' ' || x->src[sb - 1] == '\t'))
		sb--;
	s->code = cvl_strndup(x->src + sb, eb - sb);
	s->embed_text = cvl_embed_text_build(x->file->path, s);
	if (Options.strip_docs)
	{
		x->code_spans = cvl_realloc(x->code_spans,
									(size_t) x->file->nsnippets * sizeof(Span));
		x->code_spans[x->file->nsnippets - 1].start = sb;
		x->code_spans[x->file->nsnippets - 1].end = eb;
		x->ncode_spans = x->file->nsnippets;
	}
}

/* qsort order of doc spans: by start */
static int
CompareSpans(const void *a, const void *b)
{
	const Span *x = a;
	const Span *y = b;

	return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/*
 * --strip-docs, after the walk: rebuild the code (and embed_text) of every
 * snippet that contains a doc, leaving the docs out.
 */
static void
StripDocs(Extractor *x)
{
	if (x->ndocs == 0)
		return;
	qsort(x->docs, x->ndocs, sizeof(Span), CompareSpans);
	for (int i = 0; i < x->ncode_spans && i < x->file->nsnippets; i++)
	{
		CvlSnippet	s = &x->file->snippets[i];
		Span		c = x->code_spans[i];
		uint32_t	at = c.start;
		bool		cut = false;
		CvlBufData	b;

		cvl_buf_init(&b);
		for (int j = 0; j < x->ndocs; j++)
		{
			Span		d = x->docs[j];

			if (d.start < at || d.end > c.end || d.start >= d.end)
				continue;		/* outside, or overlapping one already cut */
			cvl_buf_append(&b, x->src + at, d.start - at);
			at = d.end;
			cut = true;
		}
		if (!cut)
		{
			cvl_buf_free(&b);
			continue;
		}
		cvl_buf_append(&b, x->src + at, c.end - at);
		free(s->code);
		s->code = b.data ? cvl_buf_steal(&b) : cvl_strdup("");
		free(s->embed_text);
		s->embed_text = cvl_embed_text_build(x->file->path, s);
	}
}

/* Classify one named node by the file's language. */
static void
ClassifyNode(Extractor *x, TSNode n, Definition *d)
{
	const char *t = ts_node_type(n);

	memset(d, 0, sizeof(*d));
	d->outer = n;
	d->sig_start = n;
	switch (x->lang[0])
	{
		case 'c':				/* c, cpp */
			ClassifyC(x, n, t, d);
			break;
		case 'p':
			ClassifyPython(x, n, t, d);
			break;
		case 'g':
			ClassifyGo(x, n, t, d);
			break;
		case 'r':
			ClassifyRust(x, n, t, d);
			break;
		case 'j':
			if (x->lang[1] == 'a' && x->lang[2] == 'v' && x->lang[3] == 'a' && x->lang[4] == '\0')
				ClassifyJava(x, n, t, d);
			else
				ClassifyJs(x, n, t, d);
			break;
		case 't':				/* typescript, tsx */
			ClassifyJs(x, n, t, d);
			break;
	}
	if (d->kind && (d->symbol == NULL || d->symbol[0] == '\0'))
		d->kind = NULL;
	if (d->kind && d->outer.id == n.id)
		d->outer = OuterNode(n);
	d->first = d->outer;
	if (d->kind && x->lang[0] == 'r')
	{
		/* Rust attributes (#[derive], #[test]) belong to the item, like
		 * Python decorators: start at the first one right above it */
		TSNode		p = ts_node_prev_named_sibling(d->first);

		while (TypeIs(p, "attribute_item") &&
			   ts_node_end_point(p).row + 1 >= ts_node_start_point(d->first).row)
		{
			d->first = p;
			p = ts_node_prev_named_sibling(p);
		}
	}
}

/*
 * Extract the snippets of one parsed file into file->snippets, in source
 * order (a class before its methods).  Returns the number extracted.
 */
int
cvl_snippets_extract(CvlFile file, TSTree *tree, const char *src, size_t len)
{
	Extractor	x;
	TSTreeCursor cur;
	uint32_t	depth = 0;

	memset(&x, 0, sizeof(x));
	x.file = file;
	x.src = src;
	x.len = len;
	x.lang = file->language->name;
	x.sep = file->language->separator;
	if (strcmp(x.lang, "python") == 0)
		x.prefix = PythonModule(file->path);

	cur = ts_tree_cursor_new(ts_tree_root_node(tree));
	for (;;)
	{
		TSNode		n = ts_tree_cursor_current_node(&cur);
		bool		skip = false;

		/* leave the scopes of nodes we are no longer inside */
		while (x.nscopes > 0 && x.scopes[x.nscopes - 1].depth >= depth)
			free(x.scopes[--x.nscopes].name);

		if (ts_node_is_named(n) && ts_node_child_count(n) > 0)
		{
			Definition	d;

			ClassifyNode(&x, n, &d);
			if (d.kind)
				EmitSnippet(&x, &d);
			if (d.scope_name && x.nscopes < SCOPE_MAX)
			{
				x.scopes[x.nscopes].name = d.scope_name;
				x.scopes[x.nscopes].depth = depth;
				x.scopes[x.nscopes].is_type = d.scope_is_type;
				x.nscopes++;
				d.scope_name = NULL;
			}
			free(d.scope_name);
			free(d.symbol);
			free(d.qualified);
			skip = d.skip_body;
		}
		if (!skip && ts_node_child_count(n) > 0 && ts_tree_cursor_goto_first_child(&cur))
		{
			depth++;
			continue;
		}
		while (!ts_tree_cursor_goto_next_sibling(&cur))
		{
			if (!ts_tree_cursor_goto_parent(&cur))
				goto done;
			depth--;
		}
	}
done:
	ts_tree_cursor_delete(&cur);
	while (x.nscopes > 0)
		free(x.scopes[--x.nscopes].name);
	if (Options.strip_docs)
		StripDocs(&x);
	free(x.code_spans);
	free(x.docs);
	free(x.prefix);
	return file->nsnippets;
}
