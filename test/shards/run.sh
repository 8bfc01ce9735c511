#!/usr/bin/env bash
# test/shards/run.sh -- a sharded codevec (issue 18; shards/README.md):
# three shard clusters and a coordinator cluster (test/cluster.sh, ports
# 5664-5667), twelve packages of the Python standard library loaded as
# repositories through tools/shards.sh load (codevec-load --coordinator:
# each into the shard its name hashes to), plus two copies of json under
# names that hash to the other shards (exactly tied distances and BM25
# scores across shards), and checked against independent references:
#   - ingest: the coordinator's rows equal a plain codevec-load of the same
#     repositories into one database (content, not ids);
#   - queries: for 100 questions (docstring first sentences of the corpus)
#     in each of code.search's modes (vector, keyword, hybrid) and a plain
#     ORDER BY emb <=> embed(q), id LIMIT 10, the coordinator's top 10 (ids,
#     ranks, scores, distances) equal one server's holding the same rows
#     (tools/shards.sh copy; its heap put out of id order, so ties broken
#     by heap position would show), each with an exact flat gpuivf index;
#     the same for json's docstrings, whose answers are full of ties;
#   - EXPLAIN: each shard gets ORDER BY emb <=> $1 (the query embedded
#     once, on the coordinator; ties at the k-th row are kept, WITH TIES,
#     and ordered by id); the filtered join goes to the shard whole;
#     the final lookups send each shard one snippets-files join by
#     id = ANY($n), and each answer row's repository one shard by id;
#   - setup refuses a shard with another dimension (22000) or another model
#     (55000), leaving nothing attached; a shard that is down fails every
#     mode with 08001 naming its server, and a load's refresh too;
#   - code.more_like_this: for 30 snippets (json's with ties across
#     shards) the coordinator's 10 nearest equal one server's, and its
#     remote SQL looks the rows up by id = ANY, no shard a whole table;
#   - re-embedding: emb NULLed on two shards, codevec-load -d COORDINATOR
#     --embed-only refuses naming the command, --coordinator --embed-only
#     embeds on each shard: every vector equals one server's bit for bit
#     (to cosine distance < 1e-6 where int8 is unavailable: fp32 bits
#     depend on the batch)
#     and vector search on the coordinator equals one server's again;
#   - codevec-load --coordinator: usage errors, a database that is not a
#     coordinator; an incremental reload changes only the edited file's
#     rows, and the coordinator then still answers as one server does.
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

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
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
# json twice more, under names whose shards are the two others: the same
# snippets on every shard, with json's vectors copied (not embedded again:
# bit-identical), so distances and BM25 scores tie exactly across shards
read -r -a COPIES <<<"$(Q "$COORD" "SELECT string_agg(n, ' ' ORDER BY s) FROM (
	SELECT DISTINCT ON (code.shard_for(n, 3)) n, code.shard_for(n, 3) AS s
	FROM (SELECT 'json_copy_' || g AS n, g FROM generate_series(1, 100) g) x
	WHERE code.shard_for(n, 3) <> code.shard_for('json', 3) ORDER BY code.shard_for(n, 3), g) y")"
for c in "${COPIES[@]}"; do
	$SHARDS load "$COORD" -q --no-embed --repo "$c" "$PYLIB/json" >>"$TMP/load.log" 2>&1 || { rc=$?; echo "# $c: rc $rc"; }
done
Q "$COORD" "COPY (SELECT DISTINCT ON (s.embed_text) s.embed_text, s.emb FROM code.snippets s
	JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'json' ORDER BY s.embed_text) TO STDOUT" >"$TMP/json.vectors"
for i in 1 2 3; do
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$(conn "${PORTS[$i]}")" \
		-c "CREATE TEMP TABLE v (embed_text text, emb codevec)" -c "\\copy v FROM '$TMP/json.vectors'" \
		-c "UPDATE code.snippets s SET emb = v.emb FROM v WHERE s.emb IS NULL AND v.embed_text = s.embed_text" >/dev/null
done
NSNIP=$(Q "$COORD" "SELECT count(*) FROM code.snippets")
is "$rc" 0 "tools/shards.sh load (codevec-load --coordinator) loads ${#REPOS[@]} repositories and ${#COPIES[@]} copies of json (${COPIES[*]}) ($NSNIP snippets, $(( $(date +%s) - t0 )) s)"
tail -3 "$TMP/load.log" | sed 's/^/#   /'
is "$(Q "$COORD" "SELECT string_agg(DISTINCT (r.id >> 32)::text, ' ') FROM code.repos r WHERE r.name ~ '^json(_copy_[0-9]+)?$'")
$(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	JOIN (code.snippets s0 JOIN code.files f0 ON f0.id = s0.file_id JOIN code.repos r0 ON r0.id = f0.repo_id AND r0.name = 'json')
	ON f0.path = f.path AND s0.start_line = s.start_line AND s0.qualified_name = s.qualified_name
	WHERE r.name ~ '^json_copy_' AND s.emb::text = s0.emb::text AND s.tsv = s0.tsv")" "0 1 2
$(( 2 * $(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'json'") ))" \
	"json and its copies are on shards 0, 1 and 2, every copied snippet with json's vector and tsv"
is "$(Q "$COORD" "SELECT count(*) FROM code.repos r WHERE (r.id >> 32) <> code.shard_for(r.name, 3)")
$(Q "$COORD" "SELECT count(DISTINCT s.tableoid) FROM code.snippets s")" "0
3" "every repository is on the shard its name hashes to, and all three shards hold some"
is "$(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
	WHERE (s.id >> 32) <> (f.id >> 32) OR s.emb IS NULL")" 0 "a snippet is on its file's shard, and embedded"
psql -X -q -d "$(conn "${PORTS[0]}" postgres)" -c "CREATE DATABASE direct"
Q "$(conn "${PORTS[0]}" direct)" "CREATE EXTENSION codevec" >/dev/null
for r in "${REPOS[@]}"; do "$LOADER" -q -d "$(conn "${PORTS[0]}" direct)" --no-embed --no-bm25 --repo "$r" "$PYLIB/$r"; done
for c in "${COPIES[@]}"; do "$LOADER" -q -d "$(conn "${PORTS[0]}" direct)" --no-embed --no-bm25 --repo "$c" "$PYLIB/json"; done
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
# the copy writes rows in id order; put its heap out of that order, so
# that ties broken by heap position (an index scan's) are not ties by id
scramble() {	# scramble CONNINFO
	Q "$1" "CREATE INDEX scramble ON code.snippets (md5(id::text)); CLUSTER code.snippets USING scramble;
		DROP INDEX code.scramble; ANALYZE code.snippets" >/dev/null
	Q "$1" "SELECT count(*) FILTER (WHERE id < p) > count(*) / 4 FROM (SELECT id, lag(id) OVER (ORDER BY ctid) AS p FROM code.snippets) x"
}
is "$(scramble "$SINGLE")" t "one server's heap is out of id order (CLUSTER by md5(id))"
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
# the final lookups: the k ids' snippet and file rows, one query a shard
# (id = ANY, the join sent whole), the repository names one shard each by
# id; never a shard's whole table
for m in vector keyword hybrid; do
	Qplan "SELECT string_agg(repo || ':' || path || ':' || preview, ',') FROM code.search('parse an email address', k => 10, mode => '$m')" >"$TMP/plan.$m"
	is "$(grep -cE 'Remote SQL: SELECT .* FROM \(code\.snippets r[0-9]+ INNER JOIN code\.files r[0-9]+ ON \(\(\(r[0-9]+\.file_id = r[0-9]+\.id\)\) AND \(\(r[0-9]+\.id = ANY \(\$[0-9]+::bigint\[\]\)\)\)\)\)$' "$TMP/plan.$m") $(grep -cE 'Remote SQL: SELECT name FROM code\.repos WHERE \(\(id = \$[0-9]+::bigint\)\)$' "$TMP/plan.$m") $(grep -cE 'Remote SQL: SELECT [^()]* FROM code\.(snippets|files|repos)$' "$TMP/plan.$m")" "3 3 0" \
		"$m: the final lookups send each shard one snippets-files join by id = ANY(\$n) and a repository lookup by id, no shard a whole table"
done
# keyword with filters: code.bm25_filtered checks its candidates by id = ANY too
Qplan "SELECT string_agg(repo || ':' || path, ',') FROM code.search('parse an email address', k => 5, mode => 'keyword',
	lang => 'python', path_like => '%util%', exclude_tests => true)" >"$TMP/plan.filtered"
any=$(grep -cE 'Remote SQL: SELECT .* FROM \(code\.snippets r[0-9]+ INNER JOIN code\.files r[0-9]+ ON .*\(\(r[0-9]+\.id = ANY \(\$[0-9]+::bigint\[\]\)\)\)\)\)$' "$TMP/plan.filtered")
whole=$(grep -cE 'Remote SQL: SELECT .* FROM (\(code\.snippets r[0-9]+ INNER JOIN code\.files r[0-9]+ ON \(\(\(r[0-9]+\.file_id = r[0-9]+\.id\)\)\)\)|code\.(snippets|files|repos))$' "$TMP/plan.filtered")
[ "$any" -ge 6 ] && [ $((any % 3)) = 0 ] && [ "$whole" = 0 ]
ok $? "keyword with lang, path_like, exclude_tests: the filters' candidates and the answer looked up by id = ANY, one query a shard each time ($any), no shard a whole table ($whole)"

echo "# $(date +%T) 100 queries per mode"
Q "$SINGLE" "SELECT regexp_replace(split_part(doc, E'\n', 1), '[\t\\\\]', ' ', 'g') FROM code.snippets
	WHERE doc IS NOT NULL AND length(split_part(doc, E'\n', 1)) BETWEEN 20 AND 200
	ORDER BY md5(qualified_name || start_line) LIMIT 100" | nl -ba -w1 -s$'\t' >"$TMP/queries.tsv"
is "$(wc -l <"$TMP/queries.tsv")" 100 "100 questions: first lines of the corpus's docstrings"
# one statement a question, as a client sends it (constants: code.search
# is inlined and planned with them)
script() {	# script MODE QUESTIONS: the statements, one per question of the file QUESTIONS
	PGOPTIONS="-c client_min_messages=warning" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$SINGLE" \
		-c "CREATE TEMP TABLE q (n integer, t text)" -c "\\copy q FROM '$2'" -c "SELECT CASE '$1'
		WHEN 'plain' THEN format('SELECT %s, x.o, x.id, x.d FROM (SELECT embed(%L) AS v OFFSET 0) e,
			LATERAL (SELECT s.id, s.d, row_number() OVER () AS o FROM (SELECT id, emb <=> e.v AS d
			FROM code.snippets ORDER BY emb <=> e.v, id LIMIT 10) s) x;', n, t)
		ELSE format('SELECT %s, s.ordinality, s.id, s.repo, s.path, s.qualified_name, s.start_line, s.score,
			s.vector_rank, s.keyword_rank, s.distance, s.keyword_score
			FROM code.search(%L, k => 10, mode => %L) WITH ORDINALITY s;', n, t, '$1') END FROM q ORDER BY n"
}
results() {	# results CONNINFO FILE: every question's rows
	PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -f "$2"
}
compare() {	# compare LABEL QUESTIONS ONE_SERVER: the coordinator against ONE_SERVER, every mode
	local mode nq n a b same full t0 t1 t2
	nq=$(wc -l <"$2")
	for mode in vector keyword hybrid plain; do
		script "$mode" "$2" >"$TMP/$mode.sql"
		t0=$(date +%s%N)
		results "$COORD" "$TMP/$mode.sql" >"$TMP/coord.$mode" 2>&1
		t1=$(date +%s%N)
		results "$3" "$TMP/$mode.sql" >"$TMP/single.$mode" 2>&1
		t2=$(date +%s%N)
		same=0; full=0
		for n in $(seq 1 "$nq"); do
			a=$(grep -P "^$n\|" "$TMP/coord.$mode"); b=$(grep -P "^$n\|" "$TMP/single.$mode")
			[ -n "$a" ] && [ "$a" = "$b" ] && same=$((same + 1))
			[ "$(grep -cP "^$n\|" <<<"$b")" = 10 ] && full=$((full + 1))
		done
		is "$same" "$nq" "$1, $mode: the coordinator's top 10 equal one server's for $same of $nq questions (ids, order, scores; $full with 10 rows; coordinator $(( (t1 - t0) / 1000000 )) ms, one server $(( (t2 - t1) / 1000000 )) ms)"
		[ "$same" = "$nq" ] || diff "$TMP/coord.$mode" "$TMP/single.$mode" | head -10 | sed 's/^/#   /'
		[ "$full" -ge $((nq * 9 / 10)) ]; ok $? "$1, $mode: the answers are not empty ($full of $nq questions with 10 rows)"
	done
}
ties() {	# ties COLUMN FILE: questions whose top 10 holds equal values of COLUMN from two shards
	awk -F'|' -v c="$1" '{ k = $1 SUBSEP $c; s = int($3 / 4294967296); if ((k in sh) && sh[k] != s) t[$1] = 1; sh[k] = s }
		END { print length(t) }' "$2"
}
compare "100 questions" "$TMP/queries.tsv" "$SINGLE"
filtered="SELECT count(*) || ': ' || string_agg(id || ' ' || score, ' ' ORDER BY score DESC, id) FROM code.search(
	'parse an email address', k => 5, mode => 'hybrid', lang => 'python', path_like => '%util%', exclude_tests => true)"
got=$(Q "$COORD" "$filtered")
is "$got" "$(Q "$SINGLE" "$filtered")" "hybrid with lang, path_like and exclude_tests: the same rows as one server (${got%%:*} rows)"
[ "${got%%:*}" = 5 ]; ok $? "hybrid with filters: 5 rows"

echo "# $(date +%T) ties: json's docstrings, json on every shard"
Q "$SINGLE" "SELECT DISTINCT regexp_replace(split_part(s.doc, E'\n', 1), '[\t\\\\]', ' ', 'g') FROM code.snippets s
	JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'json' AND s.doc IS NOT NULL AND length(split_part(s.doc, E'\n', 1)) BETWEEN 10 AND 200
	ORDER BY 1 LIMIT 30" | nl -ba -w1 -s$'\t' >"$TMP/ties.tsv"
NT=$(wc -l <"$TMP/ties.tsv")
[ "$NT" -ge 15 ]; ok $? "$NT questions from json's docstrings"
compare "json ties" "$TMP/ties.tsv" "$SINGLE"
script vector "$TMP/ties.tsv" >"$TMP/vector.sql"; results "$COORD" "$TMP/vector.sql" >"$TMP/coord.vector"
script keyword "$TMP/ties.tsv" >"$TMP/keyword.sql"; results "$COORD" "$TMP/keyword.sql" >"$TMP/coord.keyword"
tv=$(ties 11 "$TMP/coord.vector"); tk=$(ties 12 "$TMP/coord.keyword")
[ "$tv" -ge $((NT / 2)) ] && [ "$tk" -ge $((NT / 2)) ]
ok $? "json ties: the answers hold exactly tied rows from two shards (vector: $tv, keyword: $tk of $NT questions)"

echo "# $(date +%T) more_like_this"
# 20 snippets at random and json's first 10 (whose copies on the two other
# shards tie at distance 0), half of them with their own file's rows
mlt="SELECT q.id, x.id, x.repo, x.path, x.qualified_name, x.start_line, x.vector_rank, x.distance, x.score
	FROM ((SELECT id FROM code.snippets ORDER BY md5(id::text) LIMIT 20) UNION
	(SELECT s.id FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	 WHERE r.name = 'json' ORDER BY s.id LIMIT 10)) q, LATERAL code.more_like_this(q.id, 10, q.id % 2 = 0) x
	ORDER BY q.id, x.vector_rank"
Q "$COORD" "$mlt" >"$TMP/coord.mlt" 2>&1
Q "$SINGLE" "$mlt" >"$TMP/single.mlt" 2>&1
cmp -s "$TMP/coord.mlt" "$TMP/single.mlt"
ok $? "more_like_this: the coordinator's 10 nearest of 30 snippets equal one server's (ids, repos, paths, ranks, distances; $(wc -l <"$TMP/coord.mlt") rows)"
cmp -s "$TMP/coord.mlt" "$TMP/single.mlt" || diff "$TMP/coord.mlt" "$TMP/single.mlt" | head -10 | sed 's/^/#   /'
is "$(wc -l <"$TMP/coord.mlt") $(awk -F'|' '{ k = $1 SUBSEP $8; s = int($2 / 4294967296); if ((k in sh) && sh[k] != s) t[$1] = 1; sh[k] = s }
	END { print (length(t) >= 5) }' "$TMP/coord.mlt")" "300 1" "more_like_this: 10 rows each, ties at equal distance from two shards in at least 5 answers"
mid=$(Q "$COORD" "SELECT s.id FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
	WHERE r.name = 'email' ORDER BY s.id LIMIT 1")
Qplan "SELECT string_agg(repo || ':' || path || ':' || preview, ',') FROM code.more_like_this($mid, 10)" >"$TMP/plan.mlt"
knn="Remote SQL: SELECT id, emb FROM code\.snippets WHERE .* ORDER BY \(emb OPERATOR\(public\.<=>\) '\[[-0-9.e,]+\]"
got="$(grep -cE 'Remote SQL: SELECT .* FROM \(code\.snippets r[0-9]+ INNER JOIN code\.files r[0-9]+ ON \(\(\(r[0-9]+\.file_id = r[0-9]+\.id\)\) AND \(\(r[0-9]+\.id = ANY \(\$[0-9]+::bigint\[\]\)\)\)\)\)$' "$TMP/plan.mlt") $(grep -cE 'Remote SQL: SELECT name FROM code\.repos WHERE \(\(id = \$[0-9]+::bigint\)\)$' "$TMP/plan.mlt") $(grep -cE 'Remote SQL: SELECT [^()]* FROM code\.(snippets|files|repos)$' "$TMP/plan.mlt") $(grep -cE "$knn" "$TMP/plan.mlt")"
is "$got" "3 3 0 3" \
	"more_like_this: each shard is sent ORDER BY emb <=> the snippet's vector (a constant), then one snippets-files join by id = ANY(\$n) and a repository lookup by id, no shard a whole table"
[ "$got" = "3 3 0 3" ] || grep 'Remote SQL' "$TMP/plan.mlt" | sed -E 's/^ *(.{150}).*(.{150})$/\1 ... \2/; s/^/#   /'

echo "# $(date +%T) re-embedding a sharded codevec"
# the model docs' recipe (UPDATE ... SET emb = NULL, then --embed-only),
# sharded: 40 snippets of shard 0 and 40 of shard 2 lose their vectors
is "$(STATE "$COORD" "UPDATE code.snippets SET emb = NULL WHERE id = $mid")" \
	"0A000: cannot collect transition tuples from child foreign tables" \
	"UPDATE of emb through the coordinator is refused (0A000: the BM25 triggers' transition tables): the UPDATE goes to the shards"
for i in 1 3; do
	Q "$(conn "${PORTS[$i]}")" "UPDATE code.snippets SET emb = NULL WHERE id IN (SELECT id FROM code.snippets ORDER BY md5(id::text) LIMIT 40)" >/dev/null
done
is "$(Q "$COORD" "SELECT string_agg(sh || ':' || n, ' ' ORDER BY sh) FROM (SELECT id >> 32 AS sh, count(*) AS n FROM code.snippets WHERE emb IS NULL GROUP BY 1) x")" \
	"0:40 2:40" "80 snippets without embedding, on shards 0 and 2"
"$LOADER" -q -d "$COORD" --embed-only 2>"$TMP/err"
is "$?:$(cat "$TMP/err")" "3:codevec-load: this database is a sharded codevec's coordinator, whose snippets without embedding are on its shards; embed them there: codevec-load --coordinator CONNINFO --embed-only [--repo NAME] (shards/README.md)" \
	"codevec-load -d COORDINATOR --embed-only: a clear error naming the command (3), nothing written"
"$LOADER" --coordinator "$COORD" --embed-only 2>"$TMP/err"
is "$?:$(grep -o 'shard [0-9]: [0-9]* snippets embedded' "$TMP/err" | tr '\n' ',')" \
	"0:shard 0: 40 snippets embedded,shard 1: 0 snippets embedded,shard 2: 40 snippets embedded," \
	"codevec-load --coordinator COORDINATOR --embed-only embeds each shard's missing vectors on that shard"
PGOPTIONS="-c client_min_messages=warning" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$SINGLE" \
	-c "\\copy (SELECT id, emb FROM code.snippets) TO '$TMP/single.vectors'"
# Bit for bit needs the int8 encoder (oneDNN; its rows do not depend on the
# batch). Where this CPU lacks the integer dot-product instructions the
# server embeds at fp32 with OpenBLAS, whose kernels depend on the row
# count: the 80 re-embedded in batches of 40 then differ in the last bits
# from the load's batches, so the vectors are compared to cosine distance
# < 1e-6 and the two search comparisons (exact ties by id) are skipped.
blas=$(Q "$SINGLE" "SELECT blas FROM codevec_model_info()")
if echo "$blas" | grep -q 'int8 via oneDNN'; then
	same="s.emb::text = v.emb::text"; how="bit for bit"
else
	same="cosine_distance(s.emb, v.emb) < 1e-6"; how="to cosine distance < 1e-6 (fp32: $blas)"
fi
is "$(PGOPTIONS="-c client_min_messages=warning" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$COORD" \
	-c "CREATE TEMP TABLE v (id bigint, emb codevec)" -c "\\copy v FROM '$TMP/single.vectors'" \
	-c "SELECT count(*) || ' ' || count(*) FILTER (WHERE $same) FROM code.snippets s JOIN v ON v.id = s.id")" \
	"$NSNIP $NSNIP" "after re-embedding, every vector on the coordinator equals one server's $how ($NSNIP snippets, the 80 re-embedded among them)"
head -20 "$TMP/queries.tsv" >"$TMP/reembed.tsv"
for mode in vector plain; do
	if [ "$how" != "bit for bit" ]; then
		ok 0 "after re-embedding, $mode search on the coordinator equals one server's # SKIP int8 unavailable here, the re-embedded vectors differ in their last bits ($blas)"
		continue
	fi
	script "$mode" "$TMP/reembed.tsv" >"$TMP/reembed.$mode.sql"
	results "$COORD" "$TMP/reembed.$mode.sql" >"$TMP/coord.re.$mode" 2>&1
	results "$SINGLE" "$TMP/reembed.$mode.sql" >"$TMP/single.re.$mode" 2>&1
	cmp -s "$TMP/coord.re.$mode" "$TMP/single.re.$mode"
	ok $? "after re-embedding, $mode search on the coordinator equals one server's for 20 questions ($(wc -l <"$TMP/coord.re.$mode") rows)"
done
"$LOADER" --help | grep -q -- '--embed-only \[--repo NAME\] --coordinator CONNINFO'
ok $? "codevec-load --help documents --coordinator --embed-only"
"$LOADER" -q --coordinator "$SINGLE" --embed-only 2>"$TMP/err"
is "$?:$(cat "$TMP/err")" "3:codevec-load: the --coordinator database is not a sharded codevec coordinator (no code_shards.shards; tools/shards.sh setup makes one)" \
	"--coordinator --embed-only naming a database that is not a coordinator: a clear error (3)"

echo "# $(date +%T) codevec-load --coordinator"
"$LOADER" --help | grep -q -- '--coordinator=CONNINFO'
ok $? "codevec-load --help documents --coordinator"
"$LOADER" -q --coordinator "$COORD" -d "$SINGLE" "$PYLIB/json" 2>"$TMP/err"
is "$?" 2 "--coordinator with -d: usage error (2)"
"$LOADER" -q --coordinator "$COORD" "$PYLIB/json" "$PYLIB/html" 2>"$TMP/err"
is "$?" 2 "--coordinator with two PATHs: usage error (2)"
"$LOADER" -q --coordinator "$SINGLE" --repo json "$PYLIB/json" 2>"$TMP/err"
is "$?:$(cat "$TMP/err")" "3:codevec-load: the --coordinator database is not a sharded codevec coordinator (no code_shards.shards or code.shard_for(); tools/shards.sh setup makes one)" \
	"--coordinator naming a database that is not a coordinator: a clear error (3), nothing loaded"

echo "# $(date +%T) incremental reload"
mkdir -p "$TMP/repo" && cp -r "$PYLIB/json" "$TMP/repo/json" && chmod -R a+rX "$TMP/repo"
snap() {	# json's snippets on the coordinator: id, file, name, code and vector digests
	Q "$COORD" "SELECT s.id, f.path, s.qualified_name, s.start_line, md5(s.code), md5(s.emb::text) FROM code.snippets s
		JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'json' ORDER BY s.id"
}
reload() { "$LOADER" --coordinator "$COORD" --repo json "$TMP/repo/json" >>"$TMP/reload.log" 2>&1; }
snap >"$TMP/json.0"
reload
is "$?" 0 "codevec-load --coordinator reloads json from another copy"
grep -q "repository \"json\" goes to shard $(Q "$COORD" "SELECT code.shard_for('json', 3)")" "$TMP/reload.log"
ok $? "... into the shard its name hashes to (it says which)"
snap >"$TMP/json.1"
cmp -s "$TMP/json.0" "$TMP/json.1"; ok $? "... and nothing changed (ids, code, vectors)"
touch "$TMP/repo/json/tool.py"
reload; snap >"$TMP/json.2"
cmp -s "$TMP/json.0" "$TMP/json.2"; ok $? "touching a file and reloading changes nothing"
printf '\n\ndef frobnicate_quaternion_widget(x):\n    """Frobnicate a quaternion widget."""\n    return x\n' >>"$TMP/repo/json/tool.py"
rm "$TMP/repo/json/scanner.py"
reload
is "$?" 0 "reloading json after an edit (tool.py) and a deletion (scanner.py)"
snap >"$TMP/json.3"
is "$(grep -v '|tool.py|' "$TMP/json.3")" "$(grep -v '|tool.py|' "$TMP/json.0" | grep -v '|scanner.py|')" \
	"only the edited file's snippets changed: every other file's rows keep their ids, code and vectors"
is "$(grep -c '|tool.py|' "$TMP/json.3") $(grep -c '|scanner.py|' "$TMP/json.3")" "$(( $(grep -c '|tool.py|' "$TMP/json.0") + 1 )) 0" \
	"tool.py has one snippet more, scanner.py none"
is "$(Q "$COORD" "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'json'")" \
	"$("$LOADER" --jsonl -q "$TMP/repo/json" | wc -l)" "the coordinator sees json's snippets as they are now"
is "$(Q "$COORD" "SELECT qualified_name FROM code.search('frobnicate quaternion widget', k => 1, mode => 'keyword')")
$(Q "$COORD" "SELECT qualified_name FROM code.search('frobnicate quaternion widget', k => 1, mode => 'vector')")" \
	"tool.frobnicate_quaternion_widget
tool.frobnicate_quaternion_widget" "the new function is found by keyword and by vector on the coordinator"
is "$(Q "$COORD" "SELECT count(*) FROM code.files WHERE path = 'scanner.py' AND repo_id = (SELECT id FROM code.repos WHERE name = 'json')")" 0 \
	"the deleted file is gone"
# the reloaded layout against one server holding its rows (a fresh copy)
SINGLE2=$(conn "${PORTS[0]}" single2)
psql -X -q -d "$(conn "${PORTS[0]}" postgres)" -c "CREATE DATABASE single2"
$SHARDS copy "$COORD" "$SINGLE2" >"$TMP/copy2.log" 2>&1
is "$?:$(scramble "$SINGLE2")" "0:t" "tools/shards.sh copy after the reload (heap out of id order)"
Q "$SINGLE2" "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops); ANALYZE code.snippets" >/dev/null
printf '%s\tfrobnicate quaternion widget\n' "$((NT + 1))" | cat "$TMP/ties.tsv" - >"$TMP/reload.tsv"
compare "after the reload" "$TMP/reload.tsv" "$SINGLE2"

# ------------------------------------------------------------ a shard down
bash "$ROOT/test/cluster.sh" stop "$TMP/c3" >/dev/null
for m in vector keyword hybrid; do
	is "$(STATE "$COORD" "SELECT count(*) FROM code.search('parse an email address', mode => '$m')")" \
		"08001: could not connect to server \"codevec_shard_2\"" "shard 2 down: code.search, $m mode, fails naming it (08001), no partial answer"
done
is "$(STATE "$COORD" "SELECT count(*) FROM (SELECT id FROM code.snippets ORDER BY emb <=> embed('parse an email address'), id LIMIT 10) x")" \
	"08001: could not connect to server \"codevec_shard_2\"" "shard 2 down: a plain ORDER BY emb <=> embed(q) LIMIT 10 fails the same way"
names="ARRAY['$(echo "${REPOS[@]}" | sed "s/ /', '/g")']"
up=$(Q "$COORD" "SELECT n FROM unnest($names) n WHERE code.shard_for(n, 3) <> 2 LIMIT 1")
down=$(Q "$COORD" "SELECT n FROM unnest($names) n WHERE code.shard_for(n, 3) = 2 LIMIT 1")
"$LOADER" -q --coordinator "$COORD" --repo "$down" "$PYLIB/$down" 2>"$TMP/err"
rc=$?
grep -q "^codevec-load: shard 2: cannot connect to the database" "$TMP/err"
is "$rc:$?" "3:0" "shard 2 down: loading $down, which belongs there, fails naming the shard (3)"
"$LOADER" -q --coordinator "$COORD" --repo "$up" "$PYLIB/$up" 2>"$TMP/err"
rc=$?
grep -q '^codevec-load: code.shard_refresh() on the coordinator failed (08001): could not connect to server "codevec_shard_2"' "$TMP/err"
is "$rc:$?" "3:0" "shard 2 down: loading $up into its live shard works, the coordinator's refresh fails naming shard 2 (3)"
bash "$ROOT/test/cluster.sh" start "$TMP/c3" "${PORTS[3]}" >/dev/null
is "$(Q "$COORD" "SELECT count(*) FROM code.search('parse an email address', mode => 'vector')")" 10 \
	"shard 2 back: the coordinator answers again"
$SHARDS refresh "$COORD"
is "$?" 0 "shard 2 back: tools/shards.sh refresh brings the coordinator up to date"

finish
