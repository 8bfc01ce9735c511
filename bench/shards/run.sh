#!/usr/bin/env bash
# bench/shards/run.sh -- a sharded codevec at 1, 2 and 3 shards against one
# server, on the CPU of this machine, the same data everywhere (issue 18).
#
#   bash bench/shards/run.sh [SECONDS]      # default 10 s per measurement
#
# Starts four throwaway clusters (test/cluster.sh, ports 5660-5663, under
# /tmp/codevec-bench-shards; stopped at the end): one holds the one-server
# database "one" and the coordinators c1, c2, c3; the others the shards.
# The corpus is twelve packages of Python 3.11's standard library (the
# test/shards corpus, 2,197 snippets), loaded once into "one" with
# embeddings; the shard layouts are loaded with --no-embed through
# tools/shards.sh load and take the vectors from "one" by embed_text (what
# was embedded), so every layout holds the same rows and vectors. Each
# database has an exact flat gpuivf index and its BM25 postings.
#
# Measured with pgbench -M prepared, one question a transaction (a random
# one of 100 docstring first lines read from "one"; the lookup of its text
# is a second, cheap statement of the transaction), 1 and 2 clients,
# codevec.device = cpu:
#   topk     SELECT id FROM code.snippets ORDER BY emb <=> $1 LIMIT 10 with
#            the question's vector precomputed (the fan-out and merge alone)
#   vector, keyword, hybrid   SELECT * FROM code.search(q, k => 10,
#            mode => ...): every column, as a client asks (preview needs
#            the code, so the final lookups are measured too); it embeds
#            the question (the installed default model, on the CPU) in
#            vector and hybrid
# Prints one line per (layout, mode, clients) and writes them to
# bench/shards/results-DATE.tsv: QPS, p50 and p99 in ms (pgbench's
# per-transaction log). Also prints what each shard sends back per
# question (postgres_fdw rows in text format).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${1:-10}
export LOADER=${LOADER:-$top/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
REPOS=(json email http logging urllib html concurrent wsgiref xmlrpc dbm sqlite3 ctypes)
base=/tmp/codevec-bench-shards
PORTS=(5660 5661 5662 5663)
out=$top/bench/shards/results-$(date -u +%Y-%m-%d).tsv
conn() { echo "host=/tmp port=$1 user=postgres dbname=$2"; }
Q() { PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
cleanup() { for i in 0 1 2 3; do bash test/cluster.sh stop "$base/c$i" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

rm -rf "$base"
for i in 0 1 2 3; do
	bash test/cluster.sh start "$base/c$i" "${PORTS[$i]}" shared_preload_libraries= >/dev/null
done
ONE=$(conn 5660 one)
psql -X -q -d "$(conn 5660 postgres)" -c "CREATE DATABASE one" -c "CREATE DATABASE c1" -c "CREATE DATABASE c2" -c "CREATE DATABASE c3"
Q "$ONE" "CREATE EXTENSION codevec"
echo "# loading and embedding the corpus into one server"
for r in "${REPOS[@]}"; do "$LOADER" -q -d "$ONE" --repo "$r" "$PYLIB/$r"; done
Q "$ONE" "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops); ANALYZE code.snippets"
Q "$ONE" "COPY (SELECT DISTINCT ON (embed_text) embed_text, emb FROM code.snippets ORDER BY embed_text) TO STDOUT" >"$base/vectors.copy"
Q "$ONE" "COPY (SELECT regexp_replace(split_part(doc, E'\n', 1), '[\t\\\\]', ' ', 'g') FROM code.snippets
	WHERE doc IS NOT NULL AND length(split_part(doc, E'\n', 1)) BETWEEN 20 AND 200
	ORDER BY md5(qualified_name || start_line) LIMIT 100) TO STDOUT" | nl -ba -w1 -s$'\t' >"$base/questions.tsv"

for n in 1 2 3; do
	echo "# $n shard(s)"
	shards=()
	for ((i = 0; i < n; i++)); do
		s=$(conn "${PORTS[$((i + 1))]}" "b$n")
		psql -X -q -d "$(conn "${PORTS[$((i + 1))]}" postgres)" -c "CREATE DATABASE b$n"
		bash tools/shards.sh init "$s" "$i"
		shards+=("$s")
	done
	bash tools/shards.sh setup "$(conn 5660 "c$n")" "${shards[@]}"
	for r in "${REPOS[@]}"; do bash tools/shards.sh load "$(conn 5660 "c$n")" -q --no-embed --repo "$r" "$PYLIB/$r"; done
	for s in "${shards[@]}"; do
		PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$s" \
			-c "CREATE TEMP TABLE v (embed_text text, emb codevec(384))" -c "\\copy v FROM '$base/vectors.copy'" \
			-c "UPDATE code.snippets s SET emb = v.emb FROM v WHERE v.embed_text = s.embed_text" \
			-c "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops)" -c "ANALYZE code.snippets"
	done
	bash tools/shards.sh refresh "$(conn 5660 "c$n")"
	[ "$(Q "$(conn 5660 "c$n")" "SELECT count(*) FILTER (WHERE emb IS NOT NULL) FROM code.snippets")" = \
	  "$(Q "$ONE" "SELECT count(*) FROM code.snippets")" ] || { echo "c$n: not every row has its vector" >&2; exit 1; }
done

# the questions and their vectors in every database that is queried
for db in one c1 c2 c3; do
	PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -q -v ON_ERROR_STOP=1 -d "$(conn 5660 $db)" \
		-c "CREATE TABLE bench_q (n integer PRIMARY KEY, t text, v codevec(384))" \
		-c "\\copy bench_q (n, t) FROM '$base/questions.tsv'" -c "UPDATE bench_q SET v = embed(t)"
done

# what one question costs on the wire: postgres_fdw fetches id and emb in
# text format, fetch_size (100) rows at a time from each shard
Q "$ONE" "SELECT 'bytes of one fetched row (id, emb as text): ' || round(avg(length(id::text) + length(emb::text) + 10)) FROM code.snippets"

printf 'layout\tmode\tclients\tqps\tp50_ms\tp99_ms\n' | tee "$out"
for db in one c1 c2 c3; do
	for mode in topk vector keyword hybrid; do
		# the question (or its vector) as a bind parameter, as an application
		# sends it: a sub-select as code.search's argument would keep the
		# function from being inlined (and so from being planned with it)
		case $mode in
		topk) sql="SELECT v FROM bench_q WHERE n = :n \\gset
SELECT id FROM code.snippets ORDER BY emb <=> :v::codevec LIMIT 10;" ;;
		*) sql="SELECT t FROM bench_q WHERE n = :n \\gset
SELECT * FROM code.search(:t, k => 10, mode => '$mode');" ;;
		esac
		printf '\\set n random(1, 100)\n%s\n' "$sql" >"$base/q.sql"
		for c in 1 2; do
			rm -f "$base"/pgbench_log.*
			(cd "$base" && PGOPTIONS="-c codevec.device=cpu" pgbench -n -M prepared -c "$c" -j "$c" -T "$secs" -l \
				-f "$base/q.sql" -d "$(conn 5660 $db)" >"$base/pgbench.out" 2>&1) || { cat "$base/pgbench.out"; exit 1; }
			qps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$base/pgbench.out" | head -1)
			read -r p50 p99 < <(cat "$base"/pgbench_log.* | awk '{print $3}' | sort -n |
				awk '{a[NR] = $1} END {printf "%.2f %.2f\n", a[int(NR * 0.5 + 0.5)] / 1000, a[int(NR * 0.99 + 0.5)] / 1000}')
			printf '%s\t%s\t%s\t%.1f\t%s\t%s\n' "$db" "$mode" "$c" "$qps" "$p50" "$p99" | tee -a "$out"
		done
	done
done
