#!/usr/bin/env bash
# test/search/run.sh -- the search surface (issue 7): the codevec_code text
# search configuration, codevec-load's tsv and options (--strip-docs,
# --embed-fields, --embed-max-bytes, --embed-words), code.search() in its three modes and
# code.more_like_this(), each checked against an independent reference:
#   - tokens: tokens.py, a Python model of the parser, on real stdlib files;
#   - vector mode and more_like_this: a plain ORDER BY emb <=> q sequential
#     scan (and EXPLAIN shows the gpuivf index scan when seq scans are off);
#   - keyword mode: the plain SQL query README documents;
#   - hybrid: reciprocal rank fusion computed in Python from the two lists.
#
# Needs the PG* variables of a running PostgreSQL 15 server with codevec
# installed (and its default model, for embed()); makes a scratch database
# and drops it.  Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/search-test.XXXXXX")
chmod 755 "$TMP"
PASS=0
FAIL=0
N=0
DB=search_test_$$
MAINTDB=${PGDATABASE:-postgres}
cleanup() {
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS ${DB}_plain" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" -c "$1"; }
# the SQLSTATE of a statement's error (empty when it succeeds)
STATE() {
	psql -X -q -d "$DB" -v VERBOSITY=verbose -c "SET client_min_messages = warning" -c "$1" 2>&1 >/dev/null |
		sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}

if [ ! -x "$LOADER" ] || ! psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null 2>"$TMP/err"; then
	ok 1 "loader built and database reachable"; cat "$TMP/err"; finish
fi
export PGDATABASE=$DB		# for codevec-load
Q "CREATE EXTENSION codevec" >/dev/null
ok $? "codevec installs"
STOP=$(pg_config --sharedir)/tsearch_data/english.stop

# ------------------------------------------------------------ the parser
echo "# codevec_code against tokens.py on real code"
files=()
for f in json/decoder.py json/encoder.py json/scanner.py json/__init__.py textwrap.py shlex.py \
	glob.py fnmatch.py string.py base64.py; do
	[ -f "$PYLIB/$f" ] && LC_ALL=C grep -q -P '[^\x00-\x7F]' "$PYLIB/$f" || files+=("$PYLIB/$f")
done
python3 "$HERE/tokens.py" "$STOP" "${files[@]}" > "$TMP/py.tokens"
: > "$TMP/pg.tokens"
for f in "${files[@]}"; do
	printf '%s\t%s\n' "$f" "$(echo "SELECT array_to_string(tsvector_to_array(to_tsvector('codevec_code', :'t')), ' ')" |
		psql -X -A -t -q -d "$DB" -v t="$(cat "$f")")" >> "$TMP/pg.tokens"
done
diff "$TMP/py.tokens" "$TMP/pg.tokens" > "$TMP/tokens.diff"
ok $? "lexemes of ${#files[@]} stdlib files equal the Python model's ($(wc -w < "$TMP/pg.tokens") lexemes)"
head -5 "$TMP/tokens.diff" | cut -c1-300 | sed 's/^/#   /'
is "$(Q "SELECT array_to_string(tsvector_to_array(to_tsvector('codevec_code',
	'JSONDecoder.raw_decode(s, idx=_w(s, 0).end())')), ' ')")" \
	"0 _w decode decoder end idx json jsondecoder jsondecoder.raw_decode raw raw_decode w" \
	"a real call (checked by hand): path, identifiers and parts; 's' is an English stop word"
if [ "$(Q "SHOW lc_ctype")" = C.UTF-8 ]; then
	is "$(Q "SELECT array_to_string(tsvector_to_array(to_tsvector('codevec_code',
		'größeBerechnen ÜberKlasse emoji 🎉 party x' || chr(160) || 'y')), ' ')")" \
		"berechnen emoji größe größeberechnen klasse party x y über überklasse" \
		"C.UTF-8: non-ASCII camelCase splits, NBSP and emoji are blanks"
else
	ok 0 "non-ASCII camelCase # SKIP lc_ctype is not C.UTF-8"
fi
is "$(Q "SELECT string_agg(token, '' ORDER BY ord) FROM ts_parse('codevec_code_parser',
	'self.parseHTTPConfig(os.path, ptr->next_v2, std::vector<int>)') WITH ORDINALITY p(id, token, ord)
	WHERE id IN (1, 2, 3, 12)")" "self.parseHTTPConfig(os.path, ptr->next_v2, std::vector<int>)" \
	"the leaf tokens tile the input"

# ------------------------------------------------------------ a corpus
echo "# a small real corpus"
C=$TMP/corpus
mkdir -p "$C/json" "$C/tests" "$C/pkg" "$C/web" "$C/rs"
cp "$PYLIB"/json/*.py "$C/json/"
cp "$PYLIB/textwrap.py" "$PYLIB/shlex.py" "$C/pkg/"
printf 'import json\n\ndef test_roundtrip():\n    """Round-trip a document."""\n    assert json.loads(json.dumps([1])) == [1]\n' > "$C/tests/test_json.py"
printf 'def test_helper_dedent():\n    return 1\n' > "$C/pkg/helpers.py"
printf 'package web\n\nimport "testing"\n\nfunc TestServe(t *testing.T) {\n\tt.Log("ok")\n}\n' > "$C/web/serve_test.go"
printf 'package web\n\n// Serve answers one request.\nfunc Serve(path string) string {\n\treturn path\n}\n' > "$C/web/serve.go"
printf 'export function add(a: number, b: number): number {\n  return a + b;\n}\n' > "$C/web/add.spec.ts"
printf '/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn adds() {\n        assert_eq!(add(1, 2), 3);\n    }\n}\n' > "$C/rs/lib.rs"
# a clone of json's py_scanstring in another file, for more_like_this
python3 - "$C/json/decoder.py" > "$C/pkg/clone.py" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'^def py_scanstring\(.*?(?=^\S)', src, re.S | re.M)
print(m.group(0).replace('py_scanstring', 'scan_string_copy'))
EOF
"$LOADER" -q --no-embed --no-bm25 --repo corpus "$C"
is $? 0 "the corpus loads with --no-embed"
t0=$(date +%s)
"$LOADER" -q --embed-only --repo corpus
is $? 0 "--embed-only embeds it"
NSNIP=$(Q "SELECT count(*) FROM code.snippets")
# (on an empty table "no snippet lacks an embedding" would hold too)
is "$(Q "SELECT count(*) FILTER (WHERE emb IS NULL) || ' of ' || (count(*) > 0) FROM code.snippets")" "0 of true" \
	"every snippet has an embedding ($NSNIP snippets in $(( $(date +%s) - t0 )) s)"
is "$(Q "SELECT max(version) FROM code.schema_version")" 2 "schema version 2"
is "$(Q "SELECT count(*) FROM code.snippets
	WHERE tsv IS DISTINCT FROM code.snippet_tsv(qualified_name, signature, doc, code)")" 0 \
	"tsv = code.snippet_tsv(qualified_name, signature, doc, code) for every row"
is "$(Q "SELECT count(*) FROM code.snippets WHERE tsv IS DISTINCT FROM
	setweight(to_tsvector('codevec_code', qualified_name), 'A') ||
	setweight(to_tsvector('codevec_code', coalesce(signature, '')), 'B') ||
	setweight(to_tsvector('codevec_code', coalesce(doc, '')), 'C') ||
	setweight(to_tsvector('codevec_code', left(code, 16384)), 'D')")" 0 \
	"tsv is the weighted codevec_code vectors of name (A), signature (B), doc (C), body (D)"
is "$(Q "SELECT string_agg(symbol, ',' ORDER BY symbol) FROM code.snippets
	WHERE tsv @@ to_tsquery('codevec_code', 'scan:A & string:A')")" "scan_string_copy" \
	"tsv: snake_case parts of the name match (scan:A & string:A)"
is "$(Q "SELECT count(*) FROM code.snippets WHERE tsv @@ to_tsquery('codevec_code', 'jsondecoder')
	AND symbol = 'JSONDecoder'")" 1 "tsv: the whole CamelCase identifier matches"

QS=("decode a JSON document from a string" "wrap text to a given width" "split a shell command line into tokens"
	"escape a string for the shell" "JSONDecoder raw_decode")

# ------------------------------------------------------------ vector mode
echo "# vector mode = sequential scan"
seqscan() {		# seqscan QUERY K [WHERE]: ids by a plain sequential scan
	Q "SET enable_indexscan = off; SET enable_bitmapscan = off;
	   SELECT string_agg(id::text || ':' || d, ' ' ORDER BY n) FROM (
	     SELECT s.id, s.emb <=> embed(\$q\$$1\$q\$) AS d, row_number() OVER () AS n FROM (
	       SELECT s.* FROM code.snippets s JOIN code.files f ON f.id = s.file_id
	       WHERE s.emb IS NOT NULL ${3:-} ORDER BY s.emb <=> embed(\$q\$$1\$q\$) LIMIT $2) s) x" | tail -1
}
for q in "${QS[@]}"; do
	is "$(Q "SELECT string_agg(id::text || ':' || distance, ' ' ORDER BY vector_rank)
		FROM code.search(\$q\$$q\$q\$, k => 8, mode => 'vector')")" "$(seqscan "$q" 8)" \
		"vector '$q': same ids, order and distances as ORDER BY emb <=> embed(q)"
done
Q "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" >/dev/null
# Qidx SQL: SQL with seq scans and sorts off (on a corpus this small the
# planner would rather sort) and auto_explain on; rows to stdout, the plans
# of the statements code.search() runs to $TMP/idxplan
Qidx() {
	psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET codevec.device = cpu" -c "LOAD 'auto_explain'" \
		-c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_nested_statements = on" \
		-c "SET enable_seqscan = off" -c "SET enable_sort = off" -c "SET client_min_messages = log" \
		-c "$1" 2>"$TMP/idxplan"
}
for q in "${QS[@]:0:2}"; do
	is "$(Qidx "SELECT string_agg(id::text || ':' || distance, ' ' ORDER BY vector_rank)
		FROM code.search(\$q\$$q\$q\$, k => 8, mode => 'vector')")" "$(seqscan "$q" 8)" \
		"vector '$q' with a gpuivf index: still the sequential scan's answer"
	grep -q "Index Scan using snippets_emb_gpuivf on snippets s2" "$TMP/idxplan"
	ok $? "vector '$q' with a gpuivf index: that answer came from the index (auto_explain)"
done
# the plan inside code.search: auto_explain prints nested statements
psql -X -q -d "$DB" -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" \
	-c "SET auto_explain.log_nested_statements = on" -c "SET client_min_messages = log" \
	-c "SET codevec.device = cpu" -c "SET enable_seqscan = off" -c "SET enable_sort = off" \
	-c "SELECT count(*) FROM code.search('wrap text', k => 3, mode => 'vector', lang => 'python')" \
	-c "SET enable_sort = on" -c "SET enable_indexscan = off" \
	-c "SELECT count(*) FROM code.search('wrap text', k => 3, mode => 'keyword')" > "$TMP/plans" 2>&1
# (a corpus this small is cheaper to sort; the settings show what the plan
# can be, doc/search.md shows a real one)
grep -q "Index Scan using snippets_emb_gpuivf on snippets s2" "$TMP/plans"
ok $? "EXPLAIN: vector mode scans the gpuivf index (filters above it, LIMIT k)"
grep -q "Bitmap Index Scan on snippets_tsv_idx" "$TMP/plans"
ok $? "EXPLAIN: keyword mode scans the GIN index on tsv"
is "$(Q "SELECT string_agg(id::text, ' ' ORDER BY vector_rank) FROM code.search('parse a JSON number',
	k => 5, mode => 'vector', lang => 'python', path_like => 'json/%')")" \
	"$(seqscan 'parse a JSON number' 5 "AND f.language = 'python' AND f.path LIKE 'json/%'" | sed 's/:[^ ]*//g')" \
	"vector with lang and path_like = the filtered sequential scan"

# ------------------------------------------------------------ keyword mode
echo "# keyword mode = the documented SQL"
for q in "${QS[@]}"; do
	is "$(Q "SELECT string_agg(id::text || ':' || keyword_score, ' ' ORDER BY keyword_rank)
		FROM code.search(\$q\$$q\$q\$, k => 10, mode => 'keyword')")" \
	   "$(Q "SELECT string_agg(id::text || ':' || r, ' ' ORDER BY r DESC, id) FROM (
		SELECT s.id, ts_rank(s.tsv, code.keyword_query(\$q\$$q\$q\$)) AS r FROM code.snippets s
		WHERE s.tsv @@ code.keyword_query(\$q\$$q\$q\$)
		ORDER BY ts_rank(s.tsv, code.keyword_query(\$q\$$q\$q\$)) DESC, s.id LIMIT 10) x")" \
		"keyword '$q': the plain ts_rank query"
	is "$(Q "SELECT array_to_string(ARRAY(SELECT DISTINCT unnest(regexp_matches(
		code.keyword_query(\$q\$$q\$q\$)::text, '''([^'']*)''', 'g')) ORDER BY 1), ' ')")" \
	   "$(python3 "$HERE/tokens.py" "$STOP" --query "$q" | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
		"keyword_query('$q'): the Python model's lexemes"
done
is "$(Q "SELECT code.keyword_query('parseHTTPConfig')::text")" \
	"'config' | 'http' | 'parse' | 'parsehttpconfig'" "keyword_query ORs the whole identifier and its parts"
is "$(Q "SELECT code.keyword_query('the of and !!') IS NULL")" t "a query of stop words and punctuation: NULL tsquery"
is "$(Q "SELECT count(*) FROM code.search('the of and !!', mode => 'keyword')")" 0 "... and no keyword rows"

# ------------------------------------------------------------ hybrid
echo "# hybrid = reciprocal rank fusion computed here"
for q in "${QS[@]:0:3}"; do
	for params in "20 60 7 1" "5 0 10 1" "20 5 10 0.5" "10 5 10 0"; do
		read -r depth rrfk k kw <<<"$params"
		vl=$(seqscan "$q" "$depth" | sed 's/:[^ ]*//g')
		kl=$(Q "SELECT string_agg(id::text, ' ' ORDER BY r DESC, id) FROM (
			SELECT s.id, ts_rank(s.tsv, code.keyword_query(\$q\$$q\$q\$)) AS r FROM code.snippets s
			WHERE s.tsv @@ code.keyword_query(\$q\$$q\$q\$)
			ORDER BY 2 DESC, s.id LIMIT $depth) x")
		want=$(python3 - "$vl" "$kl" "$rrfk" "$k" "$kw" <<'EOF'
import sys
v, kw, rrf, k = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
w = float(sys.argv[5])
score, vr, kr = {}, {}, {}
for i, x in enumerate(v, 1):
    vr[x] = i
for i, x in enumerate(kw, 1):
    kr[x] = i
for x in set(v) | set(kw):
    score[x] = (1.0 / (rrf + vr[x]) if x in vr else 0.0) + (w / (rrf + kr[x]) if x in kr else 0.0)
top = sorted(score, key=lambda x: (-score[x], int(x)))[:k]
print(" ".join("%s:%s:%s:%.12f" % (x, vr.get(x, ""), kr.get(x, ""), score[x]) for x in top))
EOF
)
		got=$(Q "SELECT string_agg(format('%s:%s:%s:%s', id, vector_rank, keyword_rank, to_char(score, 'FM0.000000000000')), ' ')
			FROM code.search(\$q\$$q\$q\$, k => $k, depth => $depth, rrf_k => $rrfk, keyword_weight => $kw)")
		is "$got" "$want" "hybrid '$q' depth $depth rrf_k $rrfk keyword_weight $kw k $k: ids, ranks, scores"
	done
done
is "$(Q "SELECT string_agg(id || ':' || score, ' ' ORDER BY score DESC, id) FROM code.search('decode a JSON document', k => 10)")" \
	"$(Q "SELECT string_agg(id || ':' || score, ' ' ORDER BY score DESC, id) FROM code.search('decode a JSON document', k => 10, rrf_k => 2, keyword_weight => 0.5, depth => 100)")" \
	"hybrid's defaults are rrf_k 2, keyword_weight 0.5, depth 100"
is "$(Q "SELECT count(*) FROM code.search('decode a JSON document', k => 10)
	WHERE distance IS DISTINCT FROM (SELECT emb <=> embed('decode a JSON document') FROM code.snippets s WHERE s.id = search.id)")" 0 \
	"hybrid: distance is the cosine distance to embed(query) for every row"
is "$(Q "SELECT count(*) FROM code.search('decode a JSON document', k => 10)
	WHERE (keyword_rank IS NOT NULL AND keyword_score IS NULL) OR (vector_rank IS NULL AND keyword_rank IS NULL)")" 0 \
	"hybrid: every row comes from a list; ranked keyword rows have a keyword_score"
is "$(Q "SELECT count(*) FROM code.search('wrap text', k => 5)
	WHERE preview IS NULL OR length(preview) > 200 OR preview ~ E'\\n\\s*\\n'")" 0 \
	"preview: set, at most 200 characters, no blank lines"
is "$(Q "SELECT preview FROM code.search('scan_string_copy', k => 1, mode => 'keyword')")" \
	"$(grep -v '^\s*$' "$C/pkg/clone.py" | head -3 | sed 's/^[ \t]*//;s/[ \t]*$//')" "preview: the first three non-blank lines, trimmed"

# ------------------------------------------------------------ filters
echo "# filters"
for mode in vector keyword hybrid; do
	is "$(Q "SELECT count(*) FROM code.search('add two numbers', k => 50, mode => '$mode', lang => 'rust')
		WHERE language <> 'rust'")" 0 "$mode: lang keeps only that language"
	is "$(Q "SELECT count(*) > 0 AND bool_and(path LIKE 'json/%') FROM code.search('decode', k => 50, mode => '$mode', path_like => 'json/%')")" t \
		"$mode: path_like keeps only matching paths"
	is "$(Q "SELECT count(*) FROM code.search('test add roundtrip serve helper', k => 100, mode => '$mode', depth => 1000, exclude_tests => true)
		WHERE path IN ('tests/test_json.py', 'web/serve_test.go', 'web/add.spec.ts') OR qualified_name LIKE 'tests::%'
		OR symbol = 'test_helper_dedent'")" 0 "$mode: exclude_tests drops test files, Rust mod tests and test_* functions"
	is "$(Q "SELECT count(*) FROM code.search('serve add', k => 100, mode => '$mode', depth => 1000, exclude_tests => true)
		WHERE (path = 'web/serve.go' AND symbol = 'Serve') OR (path = 'rs/lib.rs' AND symbol = 'add')")" 2 \
		"$mode: exclude_tests keeps the code under test"
done
is "$(Q "SELECT string_agg(path || ':' || qualified_name, ' ' ORDER BY path) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
	WHERE code.is_test(f.path, s.qualified_name, s.code)")" \
	"pkg/helpers.py:pkg.helpers.test_helper_dedent rs/lib.rs:tests::adds tests/test_json.py:tests.test_json.test_roundtrip web/add.spec.ts:add web/serve_test.go:web.TestServe" \
	"code.is_test flags exactly the test snippets of the corpus"
is "$(Q "SELECT count(*) FROM code.search('decode', lang => 'cobol')")" 0 "an unknown language: no rows"

# ------------------------------------------------------------ more_like_this
echo "# more_like_this = sequential scan without self (and file)"
ID=$(Q "SELECT id FROM code.snippets WHERE symbol = 'py_scanstring'")
FID=$(Q "SELECT file_id FROM code.snippets WHERE id = $ID")
mlt_seq() {
	Q "SET enable_indexscan = off; SELECT string_agg(id::text || ':' || d, ' ' ORDER BY n) FROM (
	   SELECT id, d, row_number() OVER () AS n FROM (SELECT s.id, s.emb <=> (SELECT emb FROM code.snippets WHERE id = $ID) AS d
	   FROM code.snippets s WHERE s.emb IS NOT NULL AND s.id <> $ID $1
	   ORDER BY s.emb <=> (SELECT emb FROM code.snippets WHERE id = $ID) LIMIT 5) x) y" | tail -1
}
is "$(Q "SELECT string_agg(id::text || ':' || distance, ' ' ORDER BY vector_rank) FROM code.more_like_this($ID, 5)")" \
	"$(mlt_seq "AND s.file_id <> $FID")" "more_like_this: the sequential scan without its file"
is "$(Q "SELECT string_agg(id::text || ':' || distance, ' ' ORDER BY vector_rank) FROM code.more_like_this($ID, 5, exclude_same_file => false)")" \
	"$(mlt_seq "")" "more_like_this(exclude_same_file => false): the sequential scan without itself"
is "$(Q "SELECT symbol || ' ' || path FROM code.more_like_this($ID, 1)")" "scan_string_copy pkg/clone.py" \
	"more_like_this finds the clone in another file first"

# ------------------------------------------------------------ errors
echo "# errors"
is "$(STATE "SELECT * FROM code.search('x', mode => 'fuzzy')")" 22023 "unknown mode: 22023"
is "$(STATE "SELECT * FROM code.search('x', mode => NULL)")" 22023 "NULL mode: 22023"
is "$(STATE "SELECT * FROM code.search('x', k => 0)")" 22023 "k = 0: 22023"
is "$(STATE "SELECT * FROM code.search('x', k => 10001)")" 22023 "k > 10000: 22023"
is "$(STATE "SELECT * FROM code.search('x', depth => 0)")" 22023 "depth = 0: 22023"
is "$(STATE "SELECT * FROM code.search('x', rrf_k => -1)")" 22023 "rrf_k < 0: 22023"
is "$(STATE "SELECT * FROM code.search(NULL)")" 22023 "NULL query: 22023"
for w in -0.5 NULL "'NaN'" "'Infinity'"; do
	is "$(STATE "SELECT * FROM code.search('x', keyword_weight => $w)")" 22023 "keyword_weight $w: 22023"
done
psql -X -q -d "$DB" -c "SELECT * FROM code.search('x', mode => 'fuzzy')" 2>&1 | grep -q 'unknown mode "fuzzy"'
ok $? "the message names the bad mode"
is "$(STATE "SELECT * FROM code.more_like_this(-1)")" 22023 "more_like_this of an unknown id: 22023"
Q "UPDATE code.snippets SET emb = NULL WHERE symbol = 'Serve'" >/dev/null
is "$(STATE "SELECT * FROM code.more_like_this((SELECT id FROM code.snippets WHERE symbol = 'Serve'))")" 22023 \
	"more_like_this of a snippet without embedding: 22023"
is "$(Q "SELECT count(*) FROM code.search('serve a request', k => 100, mode => 'vector') WHERE symbol = 'Serve'")" 0 \
	"vector mode skips snippets without embedding"
is "$(Q "SELECT count(*) FROM code.search('serve', k => 100, mode => 'keyword') WHERE symbol = 'Serve'")" 1 \
	"... keyword mode still finds them"
is "$(Q "SELECT count(*) FROM code.search(repeat('decode ', 20000), k => 3, mode => 'keyword')")" 3 "a 140 kB query works"
is "$(Q "SELECT count(*) FROM code.search('', k => 3, mode => 'vector')")" 3 "an empty query works in vector mode"

# ------------------------------------------------------------ --strip-docs
echo "# --strip-docs"
S=$TMP/strip
mkdir -p "$S"
cp "$PYLIB/json/decoder.py" "$PYLIB/textwrap.py" "$S/"
printf 'class Box:\n    """A box holding UNIQUEWORDCLASS things."""\n\n    def open(self):\n        """Open the box, UNIQUEWORDMETHOD."""  \n        return 1\n\n    def one_liner(self): "UNIQUEWORDONELINE"; return 2\n\n// not python\n' > "$S/box.py"
"$LOADER" -q --jsonl "$S" > "$TMP/full.jsonl"
"$LOADER" -q --jsonl --strip-docs "$S" > "$TMP/strip.jsonl"
python3 - "$TMP/full.jsonl" "$TMP/strip.jsonl" > "$TMP/strip.check" <<'EOF'
import ast, json, sys
full = [json.loads(l) for l in open(sys.argv[1])]
strip = [json.loads(l) for l in open(sys.argv[2])]
assert len(full) == len(strip), "same snippets"
bad = []
ndoc = 0
for f, s in zip(full, strip):
    key = f["path"] + ":" + f["qualified_name"]
    if (f["start_line"], f["end_line"], f["qualified_name"]) != (s["start_line"], s["end_line"], s["qualified_name"]):
        bad.append(key + " lines/name changed")
    if s["doc"] is not None:
        bad.append(key + " doc kept")
    if f["doc"]:
        ndoc += 1
        first = f["doc"].split("\n")[0]
        if len(first) > 12 and (first in s["code"] or first in s["embed_text"]):
            bad.append(key + " docstring text still in code/embed_text: " + first)
    # every docstring of the snippet (and of what it contains) is gone
    try:
        tree = ast.parse(__import__("textwrap").dedent(s["code"]))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
                b = node.body[0]
                if isinstance(b, ast.Expr) and isinstance(getattr(b, "value", None), ast.Constant) \
                        and isinstance(b.value.value, str):
                    bad.append(key + " a docstring is left: " + b.value.value[:40])
    except SyntaxError:
        pass                    # a body left empty does not parse
    if s["code"].count("\n") > f["code"].count("\n"):
        bad.append(key + " code grew")
print("docs %d bad %d" % (ndoc, len(bad)))
for b in bad[:10]:
    print(b)
EOF
head -1 "$TMP/strip.check" | grep -q ' bad 0$'
ok $? "--jsonl --strip-docs: doc NULL, docstrings gone from code and embed_text, lines kept ($(head -1 "$TMP/strip.check"))"
sed -n '2,6p' "$TMP/strip.check" | sed 's/^/#   /'
python3 - "$TMP/strip.jsonl" <<'EOF'
import json, sys
s = {d["qualified_name"]: d for d in map(json.loads, open(sys.argv[1]))}
box, op, one = s["box.Box"], s["box.Box.open"], s["box.Box.one_liner"]
assert box["code"] == "class Box:\n\n    def open(self):\n        return 1\n\n    def one_liner(self): ; return 2", repr(box["code"])
assert op["code"] == "    def open(self):\n        return 1", repr(op["code"])
assert "UNIQUEWORD" not in one["code"], one["code"]
assert (box["start_line"], box["end_line"], op["start_line"], op["end_line"]) == (1, 8, 4, 6)
EOF
ok $? "--strip-docs: a class loses its own and its methods' docstrings, whole lines go, one-liners lose the string"
"$LOADER" -q --no-embed --no-bm25 --strip-docs --repo strip "$S"
is $? 0 "--strip-docs loads"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'strip' AND (s.doc IS NOT NULL OR s.code ~ 'UNIQUEWORD' OR s.embed_text ~ 'UNIQUEWORD')")" 0 \
	"database: no doc, no docstring in code or embed_text"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'strip' AND s.tsv @@ to_tsquery('codevec_code', 'uniquewordclass | uniquewordmethod | uniquewordoneline')")" 0 \
	"database: docstring words are not in tsv"
is "$(Q "SELECT count(*) FROM code.search('UNIQUEWORDMETHOD', mode => 'keyword', path_like => 'box.py')")" 0 \
	"keyword search cannot find a snippet by its stripped docstring"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'corpus' AND f.path = 'json/decoder.py' AND s.doc IS NOT NULL")" \
	"$(python3 -c "import json,sys; print(sum(1 for l in open('$TMP/full.jsonl') if json.loads(l)['path']=='decoder.py' and json.loads(l)['doc']))")" \
	"without --strip-docs the docs are there (same count as --jsonl)"

# ------------------------------------------------------------ embed_text options
echo "# --embed-fields, --embed-max-bytes, --embed-words"
"$LOADER" -q --jsonl --embed-fields=name,body --embed-max-bytes=200 --embed-words=none "$S/box.py" > "$TMP/ef.jsonl"
python3 - "$TMP/ef.jsonl" <<'EOF'
import json, sys
for d in map(json.loads, open(sys.argv[1])):
    t = d["embed_text"]
    assert len(t.encode()) <= 200, len(t.encode())
    assert t.startswith(d["qualified_name"] + "\n"), t
    assert not t.startswith("box.py"), t
    assert t[len(d["qualified_name"]) + 1:].startswith(d["code"].lstrip()[:20].lstrip()) or d["code"].strip()[:20] in t, t
EOF
ok $? "--embed-fields=name,body --embed-max-bytes=200: the name, then the code, at most 200 bytes"
"$LOADER" -q --jsonl --embed-fields=signature,path --embed-words=none "$S/box.py" | python3 -c "
import json, sys
for d in map(json.loads, sys.stdin):
    assert d['embed_text'] == d['path'] + ('\n' + d['signature'] if d['signature'] else ''), d['embed_text']"
ok $? "--embed-fields keeps the fixed order (path, then signature)"
"$LOADER" -q --jsonl "$S/box.py" > "$TMP/def.jsonl"
"$LOADER" -q --jsonl --embed-fields=name,signature,doc,body --embed-max-bytes=500 --embed-words=name+all "$S/box.py" > "$TMP/all.jsonl"
cmp -s "$TMP/def.jsonl" "$TMP/all.jsonl"
ok $? "the defaults are name, signature, doc, body, 500 bytes and --embed-words name+all"
"$LOADER" -q --jsonl --embed-fields=path,colour "$S" >/dev/null 2>&1; is $? 2 "an unknown --embed-fields name exits 2"
"$LOADER" -q --jsonl --embed-max-bytes=0 "$S" >/dev/null 2>&1; is $? 2 "--embed-max-bytes=0 exits 2"
"$LOADER" --help | grep -q -- '--strip-docs' && "$LOADER" --help | grep -q -- '--embed-fields=LIST' &&
	"$LOADER" --help | grep -q -- '--embed-max-bytes=N' && "$LOADER" --help | grep -q -- '--embed-words=MODE'
ok $? "--help documents the four options"

# ------------------------------------------------------------ upgrade from version 1
echo "# schema upgrade 1 -> 2"
Q "DROP FUNCTION code.search(text, integer, text, text, boolean, text, integer, integer, double precision);
   -- the signature of the loader before keyword_weight: a run must replace it, not add an overload
   CREATE FUNCTION code.search(query text, k integer DEFAULT 10, lang text DEFAULT NULL,
       path_like text DEFAULT NULL, exclude_tests boolean DEFAULT false, mode text DEFAULT 'hybrid',
       rrf_k integer DEFAULT 5, depth integer DEFAULT 100) RETURNS TABLE(id bigint)
       LANGUAGE sql AS 'SELECT 1::bigint';
   DROP FUNCTION code.more_like_this(bigint, integer, boolean);
   UPDATE code.snippets SET tsv = to_tsvector('simple', qualified_name);
   DELETE FROM code.schema_version; INSERT INTO code.schema_version (version) VALUES (1)" >/dev/null
"$LOADER" -q --no-embed --no-bm25 --repo corpus "$C"
is $? 0 "a loader run on a version-1 schema exits 0"
is "$(Q "SELECT max(version) FROM code.schema_version")" 2 "... records version 2"
is "$(Q "SELECT count(*) FROM code.snippets WHERE tsv IS DISTINCT FROM code.snippet_tsv(qualified_name, signature, doc, code)")" 0 \
	"... and recomputed every tsv (all repositories)"
is "$(Q "SELECT count(*) FROM code.search('decode', k => 3)")" 3 "... and re-created code.search"
is "$(Q "SELECT string_agg(oid::regprocedure::text, ',') FROM pg_proc WHERE proname = 'search' AND pronamespace = 'code'::regnamespace")" \
	"code.search(text,integer,text,text,boolean,text,integer,integer,double precision)" \
	"... replacing the 8-argument code.search of earlier loaders (one function, no overload)"

# ------------------------------------------------------------ without the extension
echo "# --dims 0 on a server database without codevec"
psql -X -q -d "$MAINTDB" -c "CREATE DATABASE ${DB}_plain" >/dev/null
PGDATABASE=${DB}_plain "$LOADER" -q --no-bm25 --dims 0 --repo plain "$S"
is $? 0 "--dims 0 loads into a database without the extension"
P() { psql -X -A -t -q -d "${DB}_plain" -c "$1"; }
is "$(P "SELECT max(version) FROM code.schema_version")" 1 "... stays at schema version 1"
is "$(P "SELECT count(*) FROM pg_proc WHERE proname = 'search' AND pronamespace = 'code'::regnamespace")" 0 \
	"... without code.search"
is "$(P "SELECT string_agg(DISTINCT symbol, ',') FROM code.snippets
	WHERE tsv @@ to_tsquery('simple', 'json & decoder') AND symbol ILIKE '%decoder'")" "JSONDecoder" \
	"... and the 'simple' tsv with identifiers split in the loader"

# ------------------------------------------------------------ BM25 (issue 21)
echo "# bm25.sh: BM25 keyword search, its own database"
bash "$HERE/bm25.sh" > "$TMP/bm25.out" 2>&1
sed '$d' "$TMP/bm25.out" | sed 's/^\(not \)\{0,1\}ok [0-9]* - /&bm25: /'
read -r bp _ bf _ < <(tail -1 "$TMP/bm25.out")
PASS=$((PASS + ${bp:-0})); FAIL=$((FAIL + ${bf:-1})); N=$((N + ${bp:-0} + ${bf:-1}))

# ------------------------------------------------------------ codevec_code_tsvector (issue 23)
echo "# codetsv.sh: codevec_code_tsvector() = the SQL tsvector, its own database"
bash "$HERE/codetsv.sh" > "$TMP/codetsv.out" 2>&1
sed '$d' "$TMP/codetsv.out" | sed 's/^\(not \)\{0,1\}ok [0-9]* - /&codetsv: /'
read -r cp _ cf _ < <(tail -1 "$TMP/codetsv.out")
PASS=$((PASS + ${cp:-0})); FAIL=$((FAIL + ${cf:-1})); N=$((N + ${cp:-0} + ${cf:-1}))

# ------------------------------------------------------------ codevec_search_check
echo "# searchcheck.sh: code.search's argument checks in C = the PL/pgSQL ones, its own databases"
bash "$HERE/searchcheck.sh" > "$TMP/searchcheck.out" 2>&1
sed '$d' "$TMP/searchcheck.out" | sed 's/^\(not \)\{0,1\}ok [0-9]* - /&searchcheck: /'
read -r sp _ sf _ < <(tail -1 "$TMP/searchcheck.out")
PASS=$((PASS + ${sp:-0})); FAIL=$((FAIL + ${sf:-1})); N=$((N + ${sp:-0} + ${sf:-1}))

finish
