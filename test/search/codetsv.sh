#!/usr/bin/env bash
# test/search/codetsv.sh -- codevec_code_tsvector() (src/codetsv.c, issue
# 23) gives exactly the tsvector of the SQL expression it replaces,
#   setweight(to_tsvector(cfg, name), 'A') || setweight(to_tsvector(cfg,
#   signature), 'B') || setweight(to_tsvector(cfg, doc), 'C') ||
#   setweight(to_tsvector(cfg, left(code, 16384)), 'D'),
# the reference being PostgreSQL's own to_tsvector, setweight and ||:
#   - every snippet of real corpora loaded by codevec-load (the Python
#     standard library; linux-source-6.1's kernel/ when it is unpacked, see
#     below): the stored tsv, the C function and the SQL expression agree
#     (tsvector equality and text form);
#   - hand-written texts for the edges: NULL (as the loader passes them,
#     coalesced) and empty fields, non-ASCII
#     letters and punctuation, tokens over 255 bytes, stop words, more
#     than 16,383 positions (LIMITPOS) and 256 occurrences (MAXNUMPOS),
#     two spellings of one lexeme (Foo, foo) in one field;
#   - other configurations: 'simple', 'english' (PostgreSQL's parser: the
#     generic path), a copy of codevec_code mapped to a dictionary with
#     ACCEPT = false (tokens not recognised take no position) and one with
#     two dictionaries per type (generic path);
#   - codevec-load defines code.snippet_tsv() with the C function.
# Needs the PG* variables of a running server with codevec installed; makes
# a scratch database and drops it.  CVL_TEST_LINUX names a linux source
# tree (default: the one test/corpora or bench/loader unpacked, if any).
# Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
PASS=0
FAIL=0
N=0
DB=codetsv_test_$$
MAINTDB=${PGDATABASE:-postgres}
cleanup() { psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1; }
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "$1"; }

LINUX=${CVL_TEST_LINUX:-}
if [ -z "$LINUX" ]; then
	for d in "${CVL_CORPORA_DIR:-/tmp/codevec-corpora}/linux-source-6.1" /tmp/cvl-bench/linux-source-6.1; do
		[ -d "$d/kernel" ] && { LINUX=$d; break; }
	done
fi

psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || { ok 1 "create database"; finish; }
Q "CREATE EXTENSION codevec" >/dev/null || { ok 1 "create extension"; finish; }

# the reference: the SQL expression, with PostgreSQL's own functions
REF="setweight(to_tsvector(%s, coalesce(%s, '')), 'A') || setweight(to_tsvector(%s, coalesce(%s, '')), 'B') ||
     setweight(to_tsvector(%s, coalesce(%s, '')), 'C') || setweight(to_tsvector(%s, left(coalesce(%s, ''), 16384)), 'D')"
ref() {		# ref CFG A B C D: the reference expression over four SQL expressions
	printf "$REF" "$1" "$2" "$1" "$3" "$1" "$4" "$1" "$5"
}
# count of rows of a table whose C value differs from the reference (tsvector
# equality or text form), and the row count: "differing/rows"
compare() {	# compare CFG TABLE [WHERE]
	Q "SELECT count(*) FILTER (WHERE c IS DISTINCT FROM r OR c::text IS DISTINCT FROM r::text) || '/' || count(*)
	   FROM (SELECT codevec_code_tsvector($1, coalesce(a, ''), coalesce(b, ''), coalesce(c, ''),
	                 left(coalesce(d, ''), 16384)) c, $(ref "$1" a b c d) r
	         FROM ${2} ${3:-}) x"
}

# ------------------------------------------------------------ real code
PGDATABASE=$DB "$LOADER" --no-progress --no-embed --no-bm25 --repo stdlib "$PYLIB" >/dev/null 2>&1
ok $? "codevec-load loads the Python standard library ($PYLIB)"
if [ -n "$LINUX" ]; then
	PGDATABASE=$DB "$LOADER" --no-progress --no-embed --no-bm25 --repo linux-kernel "$LINUX/kernel" >/dev/null 2>&1
	ok $? "codevec-load loads linux kernel/ ($LINUX)"
else
	echo "# no linux-source-6.1 tree unpacked (test/corpora or bench/loader does it): the Python corpus only"
fi
is "$(Q "SELECT prosrc ~ 'codevec_code_tsvector' FROM pg_proc WHERE oid = 'code.snippet_tsv(text, text, text, text)'::regprocedure")" \
	t "code.snippet_tsv() is codevec_code_tsvector()"
Q "CREATE VIEW s AS SELECT r.name, s.tsv, s.qualified_name a, s.signature b, s.doc c, s.code d
   FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id"
nstd=$(Q "SELECT count(*) FROM s WHERE name = 'stdlib'")
[ "$nstd" -gt 15000 ]; ok $? "the standard library gives more than 15,000 snippets ($nstd)"
is "$(compare "'codevec_code'" s "WHERE name = 'stdlib'")" "0/$nstd" \
	"every stdlib snippet: codevec_code_tsvector = the SQL expression (differing/rows)"
is "$(Q "SELECT count(*) FROM s WHERE name = 'stdlib' AND (tsv IS DISTINCT FROM $(ref "'codevec_code'" a b c d))")" 0 \
	"every stdlib snippet: the stored tsv = the SQL expression"
nna=$(Q "SELECT count(*) FROM s WHERE name = 'stdlib' AND d ~ '[^\\x01-\\x7f]'")
[ "$nna" -ge 5 ]; ok $? "... of them $nna with non-ASCII characters"
if [ -n "$LINUX" ]; then
	nk=$(Q "SELECT count(*) FROM s WHERE name = 'linux-kernel'")
	[ "$nk" -gt 10000 ]; ok $? "linux kernel/ gives more than 10,000 snippets ($nk)"
	is "$(compare "'codevec_code'" s "WHERE name = 'linux-kernel'")" "0/$nk" \
		"every kernel/ snippet: codevec_code_tsvector = the SQL expression"
	is "$(Q "SELECT count(*) FROM s WHERE name = 'linux-kernel' AND (tsv IS DISTINCT FROM $(ref "'codevec_code'" a b c d))")" 0 \
		"every kernel/ snippet: the stored tsv = the SQL expression"
fi

# ------------------------------------------------------------ edges
Q "CREATE TABLE edge (id serial, a text, b text, c text, d text)"
Q "INSERT INTO edge (a, b, c, d) VALUES
  (NULL, NULL, NULL, NULL), ('', '', '', ''), ('x', NULL, '', 'y'),
  ('parseHTTPConfig', 'def parseHTTPConfig(self, path: str) -> Config', 'Parse the HTTP config if it is there.', 'return self.parse_http_config(os.path.join(a, b))'),
  ('größeBerechnen', 'café → naïve', 'ÄÖÜ äöü ß İstanbul ΣΊΣΥΦΟΣ', 'x = \"日本語のテキスト\"; y = ＡＢＣ；z = emoji😀here'),
  ('Foo', 'foo FOO Foo', 'the the the', 'Foo foo FOO fOo'),
  (repeat('a', 300), repeat('b', 256) || ' ok', repeat('long_', 100), repeat('x', 5000) || ' tail'),
  (NULL, NULL, NULL, repeat('word ', 20000)),
  ('n', 's', 'd', repeat('same other ', 400)),
  ('a.b.c', 'std::vector<int>', 'node->next', 'src/foo/bar.c ../x/y __init__ _ __ 42 0x1F v2 getURLs IDs')"
is "$(compare "'codevec_code'" edge)" "0/10" "hand-written edges: codevec_code_tsvector = the SQL expression"
is "$(Q "SELECT codevec_code_tsvector('codevec_code', '', '', '', '')::text")" "" "empty texts: the empty tsvector"
is "$(Q "SELECT codevec_code_tsvector(NULL, 'a', 'b', 'c', 'd') IS NULL AND codevec_code_tsvector('codevec_code', 'a', NULL, 'c', 'd') IS NULL")" t "STRICT: NULL in, NULL out"
is "$(Q "SELECT length(codevec_code_tsvector('codevec_code', 'Foo', 'foo FOO Foo', '', 'Foo foo FOO'))")" 1 \
	"Foo, foo, FOO: one lexeme"
is "$(Q "SELECT codevec_code_tsvector('codevec_code', 'parseHTTPConfig', '', 'the config', '')::text")" \
	"'config':4A,6C 'http':3A 'parse':2A 'parsehttpconfig':1A" "parseHTTPConfig: whole and parts, positions across fields, stop word"

# ------------------------------------------------------------ other configurations
is "$(compare "'simple'" edge)" "0/10" "configuration simple (PostgreSQL's parser): equal"
is "$(compare "'english'" edge)" "0/10" "configuration english: equal"
is "$(compare "'english'" s "WHERE name = 'stdlib' AND a < 'c'")" \
	"0/$(Q "SELECT count(*) FROM s WHERE name = 'stdlib' AND a < 'c'")" "configuration english, stdlib snippets a..c: equal"
Q "CREATE TEXT SEARCH DICTIONARY picky (TEMPLATE = pg_catalog.simple, STOPWORDS = english, ACCEPT = false);
   CREATE TEXT SEARCH CONFIGURATION code_picky (COPY = codevec_code);
   ALTER TEXT SEARCH CONFIGURATION code_picky ALTER MAPPING FOR word, part, number, ident, path WITH picky;
   CREATE TEXT SEARCH CONFIGURATION code_two (COPY = codevec_code);
   ALTER TEXT SEARCH CONFIGURATION code_two ALTER MAPPING FOR word, part WITH picky, simple;
   CREATE TEXT SEARCH CONFIGURATION code_part (COPY = codevec_code);
   ALTER TEXT SEARCH CONFIGURATION code_part DROP MAPPING FOR ident, path"
is "$(compare "'code_picky'" edge)" "0/10" "codevec_code's parser, a simple dictionary with ACCEPT = false: equal"
is "$(Q "SELECT codevec_code_tsvector('code_picky', 'the x', '', '', '')::text")" "" \
	"... (only stop words recognised: no lexemes)"
is "$(compare "'code_two'" edge)" "0/10" "two dictionaries for word and part (the generic path): equal"
is "$(compare "'code_part'" edge)" "0/10" "ident and path unmapped (no positions for them): equal"
is "$(compare "'code_part'" s "WHERE name = 'stdlib' AND a < 'c'")" \
	"0/$(Q "SELECT count(*) FROM s WHERE name = 'stdlib' AND a < 'c'")" "... on stdlib snippets a..c: equal"
# the dictionary changed between two statements of one session
is "$(psql -X -A -t -q -d "$DB" -c "SELECT codevec_code_tsvector('code_picky', 'alpha the', '', '', '')" \
	-c "ALTER TEXT SEARCH DICTIONARY picky (ACCEPT = true)" \
	-c "SELECT codevec_code_tsvector('code_picky', 'alpha the', '', '', '')" | tr '\n' '|')" \
	"|'alpha':1A|" "a dictionary altered in the session: the next statement follows it"

finish
