#!/usr/bin/env bash
# test/shards/run.sh -- a sharded codevec (issue 18; shards/README.md):
# three shard clusters and a coordinator cluster (test/cluster.sh, ports
# 5664-5667), twelve packages of the Python standard library loaded as
# repositories through tools/shards.sh (each into the shard its name
# hashes to), and checked against independent references:
#   - ingest: the coordinator's rows equal a plain codevec-load of the same
#     repositories into one database (content, not ids);
#   - queries: for 100 questions (docstring first sentences of the corpus)
#     in each of code.search's modes (vector, keyword, hybrid) and a plain
#     ORDER BY emb <=> embed(q) LIMIT 10, the coordinator's top 10 (ids,
#     ranks, scores, distances) equal one server's holding the same rows
#     (tools/shards.sh copy), each with an exact flat gpuivf index;
#   - EXPLAIN: each shard gets ORDER BY emb <=> $1 (the query embedded
#     once, on the coordinator); the filtered join goes to the shard whole;
#   - setup refuses a shard with another dimension (22000) or another model
#     (55000), leaving nothing attached; a shard that is down fails the
#     query with 08001 naming its server; an incremental reload works.
# Needs codevec installed (and its default model) and loaders/codevec-load
# built. Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
SHARDS="bash $ROOT/tools/shards.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/shards-test.XXXXXX")
chmod 755 "$TMP"
# coordinator, shard 0, 1, 2: the first four free ports from 5664 (5660-5669)
if [ -n "${SHARDS_TEST_PORTS:-}" ]; then
	read -r -a PORTS <<<"$SHARDS_TEST_PORTS"
else
	PORTS=()
	for p in 5664 5665 5666 5667 5668 5669 5660 5661 5662 5663; do
		[ -e "/tmp/.s.PGSQL.$p" ] || PORTS+=("$p")
	done
	PORTS=("${PORTS[@]:0:4}")
fi
REPOS=(json email http logging urllib html concurrent wsgiref xmlrpc dbm sqlite3 ctypes)
PASS=0
FAIL=0
N=0
cleanup() {
	for i in 0 1 2 3; do bash "$ROOT/test/cluster.sh" stop "$TMP/c$i" >/dev/null 2>&1; done
	rm -rf "$TMP"
}
trap cleanup EXIT

ok() {		# ok STATUS DESCRIPTION
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then PASS=$((PASS + 1)); echo "ok $N - $2"
	else FAIL=$((FAIL + 1)); echo "not ok $N - $2"; fi
}
is() {		# is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"
	else ok 1 "$3"; echo "#   got:  '$1'" | head -c 2000; echo; echo "#   want: '$2'" | head -c 2000; echo; fi
}
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; exit $?; }
conn() { echo "host=/tmp port=$1 user=postgres dbname=${2:-codevec}"; }
COORD=$(conn "${PORTS[0]}")
SINGLE=$(conn "${PORTS[0]}" single)
Q() {		# Q CONNINFO SQL: rows, unaligned
	PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
STATE() {	# STATE CONNINFO SQL: "SQLSTATE: message" of its error (empty when it succeeds)
	PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -q -d "$1" -v VERBOSITY=verbose \
		-c "$2" 2>&1 >/dev/null | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)/\1: \2/p' | head -1
}

# ------------------------------------------------------------ clusters
for i in 0 1 2 3; do
	if ! bash "$ROOT/test/cluster.sh" start "$TMP/c$i" "${PORTS[$i]}" shared_preload_libraries= >/dev/null 2>"$TMP/err" ||
		! psql -X -q -d "$(conn "${PORTS[$i]}" postgres)" -c "CREATE DATABASE codevec" 2>>"$TMP/err"; then
		ok 1 "cluster on port ${PORTS[$i]} starts"; cat "$TMP/err"; finish
	fi
done
[ -x "$LOADER" ] || { ok 1 "loaders/codevec-load is built"; finish; }
ok 0 "a coordinator and three shard clusters run (ports ${PORTS[*]})"

echo "# $(date +%T) setup"
for i in 0 1 2; do
	$SHARDS init "$(conn "${PORTS[$((i + 1))]}")" "$i" >"$TMP/init.log" 2>&1
	is "$?" 0 "tools/shards.sh init makes shard $i"
done
is "$(Q "$(conn "${PORTS[2]}")" "SELECT shard || ' ' || lo || ' ' || hi || ' ' || nextval('code.snippets_id_seq') FROM code.shard_info")" \
	"1 4294967297 8589934591 4294967297" "shard 1 numbers its rows from 2^32 + 1 (code.shard_info)"
Q "$(conn "${PORTS[2]}")" "SELECT code.shard_init(1)" >/dev/null	# takes back that nextval
is "$(STATE "$(conn "${PORTS[2]}")" "SELECT code.shard_init(2)")" \
	"55000: this database is shard 1, not 2" "a shard keeps its number (55000)"
$SHARDS setup "$COORD" "$(conn "${PORTS[1]}")" "$(conn "${PORTS[2]}")" "$(conn "${PORTS[3]}")" >"$TMP/setup.log" 2>&1
is "$?" 0 "tools/shards.sh setup attaches the three shards to the coordinator"
is "$(Q "$COORD" "SELECT string_agg(c.relname || ':' || pg_get_expr(c.relpartbound, c.oid), ' ' ORDER BY c.relname)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'code.snippets'::regclass")" \
	"snippets_0:FOR VALUES FROM ('1') TO ('4294967296') snippets_1:FOR VALUES FROM ('4294967297') TO ('8589934592') snippets_2:FOR VALUES FROM ('8589934593') TO ('12884901888')" \
	"code.snippets: one foreign partition a shard, by file_id range"
is "$(Q "$COORD" "SELECT string_agg(srvname || ':' || array_to_string(array(SELECT o FROM unnest(srvoptions) o
	WHERE o ~ '^(extensions|async_capable)='), ','), ' ' ORDER BY srvname) FROM pg_foreign_server")" \
	"codevec_shard_0:extensions=codevec,async_capable=true codevec_shard_1:extensions=codevec,async_capable=true codevec_shard_2:extensions=codevec,async_capable=true" \
	"each shard's server ships codevec's operators and scans asynchronously"

# refusals: another dimension, another model; nothing is left attached
BADP=${PORTS[1]}
psql -X -q -d "$(conn "$BADP" postgres)" -c "CREATE DATABASE bad_dims" -c "CREATE DATABASE bad_model" >/dev/null
Q "$(conn "$BADP" bad_dims)" "CREATE EXTENSION codevec" >/dev/null
"$LOADER" -q -d "$(conn "$BADP" bad_dims)" --dims 8 --embed-only
$SHARDS init "$(conn "$BADP" bad_dims)" 3 >/dev/null 2>&1
is "$(STATE "$COORD" "SELECT code.shard_add(3, '$(conn "$BADP" bad_dims)')")" \
	"22000: shard 3's code.snippets.emb has 8 dimensions, the coordinator's 384" \
	"a shard whose emb has another dimension is refused (22000)"
cp -r "$ROOT/test/embed/fixtures/tiny-bert" "$TMP/tiny-bert" && chmod -R a+rX "$TMP/tiny-bert"
psql -X -q -d "$(conn "$BADP" postgres)" -c "ALTER DATABASE bad_model SET codevec.model = '$TMP/tiny-bert'" >/dev/null
Q "$(conn "$BADP" bad_model)" "CREATE EXTENSION codevec" >/dev/null
$SHARDS init "$(conn "$BADP" bad_model)" 4 >/dev/null 2>&1
st=$(STATE "$COORD" "SELECT code.shard_add(4, '$(conn "$BADP" bad_model)')")
case "$st" in "55000: shard 4 embeds with model tiny-bert"*) ok 0 "a shard with another model is refused (55000)" ;;
	*) ok 1 "a shard with another model is refused (55000)"; echo "#   got: $st" ;; esac
is "$(STATE "$COORD" "SELECT code.shard_add(5, 'host=/tmp port=1 user=postgres')")" \
	"08001: could not connect to server \"codevec_shard_5\"" "an unreachable shard is refused naming its server (08001)"
is "$(Q "$COORD" "SELECT (SELECT count(*) FROM code_shards.shards) || ' ' || (SELECT count(*) FROM pg_foreign_server)
	|| ' ' || (SELECT count(*) FROM pg_inherits WHERE inhparent = 'code.snippets'::regclass)")" "3 3 3" \
	"refused shards leave no server, partition or row behind"
is "$(STATE "$COORD" "SELECT code.shard_add(1, '$(conn "${PORTS[2]}")')")" "42710: shard 1 is already attached" \
	"a shard number is attached once (42710)"
is "$(STATE "$COORD" "SELECT code.shard_add(6, 'host=/tmp port')")" "22023: malformed shard conninfo \"host=/tmp port\"" \
	"a malformed conninfo is refused (22023)"

# ------------------------------------------------------------ ingest
echo "# $(date +%T) loading ${#REPOS[@]} repositories, each into its shard (embedding on the CPU)"
t0=$(date +%s)
rc=0
for r in "${REPOS[@]}"; do
	$SHARDS load "$COORD" -q --repo "$r" "$PYLIB/$r" >>"$TMP/load.log" 2>&1 || { rc=$?; echo "# $r: rc $rc"; }
done
NSNIP=$(Q "$COORD" "SELECT count(*) FROM code.snippets")
is "$rc" 0 "tools/shards.sh load loads ${#REPOS[@]} repositories ($NSNIP snippets, $(( $(date +%s) - t0 )) s)"
tail -3 "$TMP/load.log" | sed 's/^/#   /'
is "$(Q "$COORD" "SELECT count(*) FROM code.repos r WHERE (r.id >> 32) <> code.shard_for(r.name, 3)")
$(Q "$COORD" "SELECT count(DISTINCT s.tableoid) FROM code.snippets s")" "0
3" "every repository is on the shard its name hashes to, and all three shards hold some"
is "$(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
	WHERE (s.id >> 32) <> (f.id >> 32) OR s.emb IS NULL")" 0 "a snippet is on its file's shard, and embedded"
psql -X -q -d "$(conn "${PORTS[0]}" postgres)" -c "CREATE DATABASE direct"
Q "$(conn "${PORTS[0]}" direct)" "CREATE EXTENSION codevec" >/dev/null
for r in "${REPOS[@]}"; do "$LOADER" -q -d "$(conn "${PORTS[0]}" direct)" --no-embed --no-bm25 --repo "$r" "$PYLIB/$r"; done
content="SELECT r.name, f.path, f.language, f.sha256, s.kind, s.qualified_name, s.start_line, s.end_line,
	md5(s.code), md5(s.embed_text), md5(s.tsv::text) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
	JOIN code.repos r ON r.id = f.repo_id ORDER BY 1, 2, 7, 6, 5, 8"
Q "$COORD" "$content" >"$TMP/coord.content"
Q "$(conn "${PORTS[0]}" direct)" "$content" >"$TMP/direct.content"
cmp -s "$TMP/coord.content" "$TMP/direct.content"
ok $? "the coordinator's $(wc -l <"$TMP/coord.content") snippets equal codevec-load's into one database (files, lines, code, embed_text, tsv)"

echo "# $(date +%T) one server"
psql -X -q -d "$(conn "${PORTS[0]}" postgres)" -c "CREATE DATABASE single"
$SHARDS copy "$COORD" "$SINGLE" >"$TMP/copy.log" 2>&1
is "$?" 0 "tools/shards.sh copy makes one server with the same rows"
for c in "$SINGLE" "$(conn "${PORTS[1]}")" "$(conn "${PORTS[2]}")" "$(conn "${PORTS[3]}")"; do
	Q "$c" "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops); ANALYZE code.snippets" >/dev/null
done
is "$(Q "$SINGLE" "SELECT count(*) || ' ' || sum(hashtext(id || qualified_name || emb::text)) FROM code.snippets")" \
	"$(Q "$COORD" "SELECT count(*) || ' ' || sum(hashtext(id || qualified_name || emb::text)) FROM code.snippets")" \
	"one server holds the coordinator's rows, ids and vectors"
is "$(Q "$SINGLE" "SELECT n || ' ' || avgdl FROM code.bm25_params")" "$(Q "$COORD" "SELECT n || ' ' || avgdl FROM code.bm25_params")" \
	"the coordinator's BM25 statistics are one server's (n, average length over every shard)"

# ------------------------------------------------------------ plans
# what each shard is sent (auto_explain shows the plans of the statements
# code.search runs inside)
Qplan() {
	PGOPTIONS="-c codevec.device=cpu" psql -X -A -t -q -d "$COORD" -c "LOAD 'auto_explain'" \
		-c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_nested_statements = on" \
		-c "SET auto_explain.log_verbose = on" -c "SET client_min_messages = log" -c "$1" 2>&1 >/dev/null
}
Qplan "SELECT count(*) FROM code.search('parse an email address', k => 10, mode => 'vector')" >"$TMP/plan.vector"
is "$(grep -c 'Remote SQL: SELECT .* ORDER BY (r[0-9]*.emb OPERATOR(public.<=>) \$1::public.codevec) ASC NULLS LAST$' "$TMP/plan.vector")" 3 \
	"vector: each of the three shards is sent ORDER BY emb <=> \$1 (EXPLAIN VERBOSE)"
grep -q 'Merge Append' "$TMP/plan.vector"
ok $? "vector: the coordinator merges the shards' orders (Merge Append)"
grep 'Remote SQL' "$TMP/plan.vector" | grep -q 'embed'
is "$?" 1 "vector: no shard is sent embed(): the query is embedded once, on the coordinator"
Qplan "SELECT count(*) FROM code.search('parse an email address', k => 10, mode => 'vector', lang => 'python')" >"$TMP/plan.lang"
is "$(grep -c "INNER JOIN code.files r[0-9]* ON (((r[0-9]*.file_id = r[0-9]*.id)) AND ((r[0-9]*.language = 'python')).* ORDER BY (r[0-9]*.emb OPERATOR" "$TMP/plan.lang")" 3 \
	"vector with lang: the snippets-files join and its filter go to each shard whole"

echo "# $(date +%T) 100 queries per mode"
Q "$SINGLE" "SELECT regexp_replace(split_part(doc, E'\n', 1), '[\t\\\\]', ' ', 'g') FROM code.snippets
	WHERE doc IS NOT NULL AND length(split_part(doc, E'\n', 1)) BETWEEN 20 AND 200
	ORDER BY md5(qualified_name || start_line) LIMIT 100" | nl -ba -w1 -s$'\t' >"$TMP/queries.tsv"
is "$(wc -l <"$TMP/queries.tsv")" 100 "100 questions: first lines of the corpus's docstrings"
# one statement a question, as a client sends it (constants: code.search
# is inlined and planned with them)
script() {	# script MODE: the statements, one per question, from $TMP/queries.tsv
	PGOPTIONS="-c client_min_messages=warning" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$SINGLE" \
		-c "CREATE TEMP TABLE q (n integer, t text)" -c "\\copy q FROM '$TMP/queries.tsv'" -c "SELECT CASE '$1'
		WHEN 'plain' THEN format('SELECT %s, x.o, x.id, x.d FROM (SELECT embed(%L) AS v OFFSET 0) e,
			LATERAL (SELECT s.id, s.d, row_number() OVER () AS o FROM (SELECT id, emb <=> e.v AS d
			FROM code.snippets ORDER BY emb <=> e.v LIMIT 10) s) x;', n, t)
		ELSE format('SELECT %s, s.ordinality, s.id, s.repo, s.path, s.qualified_name, s.start_line, s.score,
			s.vector_rank, s.keyword_rank, s.distance, s.keyword_score
			FROM code.search(%L, k => 10, mode => %L) WITH ORDINALITY s;', n, t, '$1') END FROM q ORDER BY n"
}
results() {	# results CONNINFO FILE: every question's rows
	PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -f "$2"
}
for mode in vector keyword hybrid plain; do
	script "$mode" >"$TMP/$mode.sql"
	t0=$(date +%s%N)
	results "$COORD" "$TMP/$mode.sql" >"$TMP/coord.$mode" 2>&1
	t1=$(date +%s%N)
	results "$SINGLE" "$TMP/$mode.sql" >"$TMP/single.$mode" 2>&1
	t2=$(date +%s%N)
	same=0; full=0
	for n in $(seq 1 100); do
		a=$(grep -P "^$n\|" "$TMP/coord.$mode"); b=$(grep -P "^$n\|" "$TMP/single.$mode")
		[ -n "$a" ] && [ "$a" = "$b" ] && same=$((same + 1))
		[ "$(grep -cP "^$n\|" <<<"$b")" = 10 ] && full=$((full + 1))
	done
	is "$same" 100 "$mode: the coordinator's top 10 equal one server's for 100 of 100 questions (ids, order, scores; $full with 10 rows; coordinator $(( (t1 - t0) / 1000000 )) ms, one server $(( (t2 - t1) / 1000000 )) ms)"
	[ "$same" = 100 ] || diff "$TMP/coord.$mode" "$TMP/single.$mode" | head -10 | sed 's/^/#   /'
	[ "$full" -ge 90 ] ; ok $? "$mode: the answers are not empty ($full of 100 questions with 10 rows)"
done
filtered="SELECT count(*) || ': ' || string_agg(id || ' ' || score, ' ' ORDER BY score DESC, id) FROM code.search(
	'parse an email address', k => 5, mode => 'hybrid', lang => 'python', path_like => '%util%', exclude_tests => true)"
got=$(Q "$COORD" "$filtered")
is "$got" "$(Q "$SINGLE" "$filtered")" "hybrid with lang, path_like and exclude_tests: the same rows as one server (${got%%:*} rows)"
[ "${got%%:*}" = 5 ]; ok $? "hybrid with filters: 5 rows"

echo "# $(date +%T) incremental reload"
mkdir -p "$TMP/repo" && cp -r "$PYLIB/json" "$TMP/repo/json" && chmod -R a+rX "$TMP/repo"
$SHARDS load "$COORD" -q --repo json "$TMP/repo/json" >"$TMP/reload.log" 2>&1
is "$?" 0 "reloading json from another copy: nothing changed"
printf '\n\ndef frobnicate_quaternion_widget(x):\n    """Frobnicate a quaternion widget."""\n    return x\n' >>"$TMP/repo/json/tool.py"
rm "$TMP/repo/json/scanner.py"
$SHARDS load "$COORD" -q --repo json "$TMP/repo/json" >>"$TMP/reload.log" 2>&1
is "$?" 0 "reloading json after an edit and a deletion"
is "$(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'json'")" \
	"$("$LOADER" --jsonl -q "$TMP/repo/json" | wc -l)" "the coordinator sees json's snippets as they are now"
is "$(Q "$COORD" "SELECT qualified_name FROM code.search('frobnicate quaternion widget', k => 1, mode => 'keyword')")
$(Q "$COORD" "SELECT qualified_name FROM code.search('frobnicate quaternion widget', k => 1, mode => 'vector')")" \
	"tool.frobnicate_quaternion_widget
tool.frobnicate_quaternion_widget" "the new function is found by keyword and by vector on the coordinator"
is "$(Q "$COORD" "SELECT count(*) FROM code.files WHERE path = 'scanner.py' AND repo_id = (SELECT id FROM code.repos WHERE name = 'json')")" 0 \
	"the deleted file is gone"

# ------------------------------------------------------------ a shard down
bash "$ROOT/test/cluster.sh" stop "$TMP/c3" >/dev/null
st=$(STATE "$COORD" "SELECT count(*) FROM code.search('parse an email address', mode => 'vector')")
is "$st" "08001: could not connect to server \"codevec_shard_2\"" "shard 2 down: code.search fails naming it (08001), no partial answer"
is "$(STATE "$COORD" "SELECT count(*) FROM code.search('parse an email address', mode => 'keyword')")" \
	"08001: could not connect to server \"codevec_shard_2\"" "shard 2 down: keyword mode fails the same way"
bash "$ROOT/test/cluster.sh" start "$TMP/c3" "${PORTS[3]}" >/dev/null
is "$(Q "$COORD" "SELECT count(*) FROM code.search('parse an email address', mode => 'vector')")" 10 \
	"shard 2 back: the coordinator answers again"

finish
