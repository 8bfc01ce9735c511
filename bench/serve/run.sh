#!/usr/bin/env bash
# bench/serve/run.sh -- codevec-serve's overhead and throughput (issue 16).
#
#   PG*=... bash bench/serve/run.sh [DATABASE]
#
# The database must hold loaded, embedded code (see README.md for the
# corpus of the committed numbers).  For each mode (keyword, vector):
#   1. code.search's own time: pgbench, 1 client, the same query over and
#      over (prepared: -M prepared), per-transaction latencies -> p50/p99;
#   2. the API round trip: wrk, 1 connection, GET /api/search with the same
#      query -> p50/p99; and overhead.py: per request, the client's round
#      trip minus the server's db_ms (the statement's round trip), which a
#      busy machine shifts less than the difference of two runs' p50s;
#   3. throughput: wrk, 16 connections on 2 threads, requests/s and p50,
#      next to pgbench's own 16-client rate of the same statement (the
#      database's ceiling on this machine);
# "nomatch" is keyword mode for a word no snippet has: code.search costs
# next to nothing, so its rate is the server's own ceiling; then the
# server's peak memory (VmHWM).  Prints a Markdown table.
# Needs wrk, pgbench and a built serve/codevec-serve.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ROOT=$(cd "$HERE/../.." && pwd)
SERVE=${SERVE:-$ROOT/serve/codevec-serve}
DB=${1:-${PGDATABASE:-bench_serve}}
DUR=${DUR:-10}
POOL=${POOL:-4}
THREADS=${THREADS:-8}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/serve-bench.XXXXXX")
declare -A Q=([keyword]="parse the message header" [vector]="parse an email message header into a dictionary"
	[nomatch]="zzyzx")
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

export PGDATABASE=$DB
serve_start
BASE=http://127.0.0.1:$PORT

# p50 and p99 (ms) of pgbench's per-transaction log (column 3: latency in us)
pct() { sort -n | awk '{a[NR] = $1} END {printf "%.2f %.2f\n", a[int(NR * 0.5) + 1] / 1000, a[int(NR * 0.99) + 1] / 1000}'; }
# ms from wrk's "50%  1.23ms" style lines
wrk_ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } printf "%.2f", v }'; }
urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote_plus(sys.argv[1]))' "$1"; }

snippets=$(psql -XAtq -c "SELECT count(*) FROM code.snippets")
echo "| mode | code.search p50 / p99 (pgbench, 1 client) | API p50 / p99 (wrk, 1 conn) | round trip − db_ms p50 / p99 (same request) | API req/s, 16 conns (p50) | pgbench tx/s, 16 clients |"
echo "|---|---|---|---|---|---|"
for run in ${MODES:-keyword vector nomatch}; do
	q=${Q[$run]}
	mode=$run
	[ "$run" = nomatch ] && mode=keyword
	printf '\\set x 1\nSELECT * FROM code.search(query => %s, k => 10, mode => %s);\n' \
		"'$q'" "'$mode'" > "$TMP/$run.sql"
	curl -s "$BASE/api/search?q=$(urlq "$q")&mode=$mode&k=10" > "$TMP/warm.json"	# warm the pool
	(cd "$TMP" && pgbench -n -M prepared -f "$run.sql" -c 1 -T "$DUR" -l --log-prefix="log_$run" >/dev/null 2>&1)
	read -r sp50 sp99 < <(cat "$TMP"/log_"$run".* | awk '{print $3}' | pct)
	rate16=$(pgbench -n -M prepared -f "$TMP/$run.sql" -c 16 -j 2 -T "$DUR" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p')
	url="$BASE/api/search?q=$(urlq "$q")&mode=$mode&k=10"
	wrk -t1 -c1 -d"${DUR}s" --latency "$url" > "$TMP/wrk1" 2>&1
	ap50=$(wrk_ms 50% < "$TMP/wrk1")
	ap99=$(wrk_ms 99% < "$TMP/wrk1")
	read -r _ _ op50 op99 < <(python3 "$HERE/overhead.py" "$BASE" "$mode" "$q" "${N:-300}")
	wrk -t2 -c16 -d"${DUR}s" --latency "$url" > "$TMP/wrk16" 2>&1
	rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$TMP/wrk16")
	p50_16=$(wrk_ms 50% < "$TMP/wrk16")
	non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$TMP/wrk16")
	printf '| %s | %s / %s ms | %s / %s ms | %s / %s ms | %.0f (%s ms)%s | %.0f |\n' "$run" "$sp50" "$sp99" "$ap50" "$ap99" \
		"$op50" "$op99" "$rps" "$p50_16" \
		"${non2xx:+, $non2xx non-2xx}" "$rate16"
done
echo
echo "server peak memory: $(awk '/^VmHWM/ {printf "%.1f MB", $2 / 1024}' /proc/$SPID/status) (VmHWM), $snippets snippets, pool $POOL, threads $THREADS, ${DUR} s per run"
