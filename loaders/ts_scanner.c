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
 * handle the two TypeScript-only tokens here:
 *
 *   8 _function_signature_automatic_semicolon: scanned as an automatic
 *     semicolon and reported under the TypeScript token;
 *   9 __error_recovery: never produced (the JavaScript scanner already
 *     refuses to scan while the parser is recovering from an error).
 */
#include <stdbool.h>
#include <string.h>

#include <tree_sitter/parser.h>

enum
{
	TS_AUTOMATIC_SEMICOLON = 0,
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
