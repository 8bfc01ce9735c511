/*
 * ts_scanner.c -- external scanner for the TypeScript and TSX grammars.
 *
 * The tree-sitter-typescript sdist on PyPI ships typescript/src/scanner.c
 * and tsx/src/scanner.c, but both only #include "../../common/scanner.h",
 * which the sdist does not contain.  The first eight external tokens of the
 * TypeScript grammars are, in the same order, the eight external tokens of
 * tree-sitter-javascript (automatic semicolon, template chars, ternary
 * qmark, html comment, "||", escape sequence, regex pattern, jsx text), so
 * we reuse the JavaScript sdist's scanner (compiled a second time with its
 * entry points renamed to cvl_js_external_scanner_*, see the Makefile) and
 * handle what TypeScript scans differently here:
 *
 *   2 ternary qmark: TypeScript's `?` before `:`, `)` or `,` (whitespace
 *     allowed between) is an optional parameter or property (`x?: T`,
 *     `(x?)`, `f(a?, b)`), never the `?` of a conditional expression; the
 *     JavaScript scanner takes it for one, and the parse of everything
 *     after it turned into error recovery (a function's `if` and `for`
 *     statements came out as methods named "if" and "for"). The token the
 *     JavaScript scanner found is refused when one of the three follows;
 *     tree-sitter-typescript's own scanner makes the same test;
 *
 *   0 automatic semicolon: none before a line that starts with `|` or `&`
 *     (a union or intersection type continued) or `;` (the real one),
 *     also when a comment ends the line before (`| A // note` newline
 *     `| B`), where the JavaScript scanner inserts one;
 *
 *   8 _function_signature_automatic_semicolon: scanned as an automatic
 *     semicolon and reported under the TypeScript token;
 *   9 __error_recovery: never produced (the JavaScript scanner already
 *     refuses to scan while the parser is recovering from an error).
 */
#include <stdbool.h>
#include <string.h>
#include <wctype.h>

#include <tree_sitter/parser.h>

enum
{
	TS_AUTOMATIC_SEMICOLON = 0,
	TS_TERNARY_QMARK = 2,
	TS_JS_TOKEN_COUNT = 8,
	TS_FUNCTION_SIGNATURE_AUTOMATIC_SEMICOLON = 8,
	TS_ERROR_RECOVERY = 9,
};

bool		cvl_js_external_scanner_scan(void *payload, TSLexer *lexer,
										 const bool *valid_symbols);

/* Scan one TypeScript external token by delegating to the JS scanner. */
static bool
ScanTypeScript(TSLexer *lexer, const bool *valid_symbols)
{
	bool		valid[TS_JS_TOKEN_COUNT];
	bool		signature_semicolon;

	memcpy(valid, valid_symbols, sizeof(valid));
	signature_semicolon = valid_symbols[TS_FUNCTION_SIGNATURE_AUTOMATIC_SEMICOLON]
		&& !valid_symbols[TS_AUTOMATIC_SEMICOLON];
	if (signature_semicolon)
		valid[TS_AUTOMATIC_SEMICOLON] = true;
	if (!cvl_js_external_scanner_scan(NULL, lexer, valid))
		return false;
	if (signature_semicolon && lexer->result_symbol == TS_AUTOMATIC_SEMICOLON)
		lexer->result_symbol = TS_FUNCTION_SIGNATURE_AUTOMATIC_SEMICOLON;
	if ((lexer->result_symbol == TS_AUTOMATIC_SEMICOLON ||
		 lexer->result_symbol == TS_FUNCTION_SIGNATURE_AUTOMATIC_SEMICOLON) &&
		(lexer->lookahead == '|' || lexer->lookahead == '&' || lexer->lookahead == ';'))
		return false;
	if (lexer->result_symbol == TS_TERNARY_QMARK)
	{
		/*
		 * The token ends after the `?` (mark_end); look past it: an
		 * optional parameter or property is no conditional expression.
		 */
		while (iswspace(lexer->lookahead))
			lexer->advance(lexer, false);
		if (lexer->lookahead == ':' || lexer->lookahead == ')' || lexer->lookahead == ',')
			return false;
	}
	return true;
}

/* The scanner is stateless: create/destroy/serialize are trivial. */
void *tree_sitter_typescript_external_scanner_create(void) { return NULL; }
void tree_sitter_typescript_external_scanner_destroy(void *p) { (void) p; }
unsigned tree_sitter_typescript_external_scanner_serialize(void *p, char *b) { (void) p; (void) b; return 0; }
void tree_sitter_typescript_external_scanner_deserialize(void *p, const char *b, unsigned n) { (void) p; (void) b; (void) n; }

/* Scan one external token for the TypeScript grammar. */
bool
tree_sitter_typescript_external_scanner_scan(void *p, TSLexer *lexer,
											 const bool *valid_symbols)
{
	(void) p;
	return ScanTypeScript(lexer, valid_symbols);
}

void *tree_sitter_tsx_external_scanner_create(void) { return NULL; }
void tree_sitter_tsx_external_scanner_destroy(void *p) { (void) p; }
unsigned tree_sitter_tsx_external_scanner_serialize(void *p, char *b) { (void) p; (void) b; return 0; }
void tree_sitter_tsx_external_scanner_deserialize(void *p, const char *b, unsigned n) { (void) p; (void) b; (void) n; }

/* Scan one external token for the TSX grammar. */
bool
tree_sitter_tsx_external_scanner_scan(void *p, TSLexer *lexer,
									  const bool *valid_symbols)
{
	(void) p;
	return ScanTypeScript(lexer, valid_symbols);
}
