#!/usr/bin/env bash
# bench/shards/mlt.sh -- code.more_like_this, this checkout's (ties by id,
# rows by id = ANY) against an earlier commit's (a join on id), on one
# server and on a coordinator of three shards, on this machine's CPU.
#
#   bash bench/shards/mlt.sh [REV]     # REV default 4f049bf (before the change)
#   # ROUNDS=5, CALLS_ONE=200, CALLS_SHARDS=20 (calls per round, over 20
#   # snippets), PORTS="5684 5685 5686 5687"
#
# Starts four throwaway clusters (test/cluster.sh, under
# /tmp/codevec-bench-mlt, stopped at the end): the first holds the one
# server "one" and the coordinator "c3", the others the three shards. The
# corpus: six packages of Python 3.11's standard library, embedded once
# into "one"; the shards are loaded with --no-embed through tools/shards.sh
# load and take the vectors from "one" by embed_text (as bench/shards/run.sh
# does), so both layouts hold the same rows and vectors; each has an exact
# flat gpuivf index and its BM25 postings. REV's loaders/schema.c is
# compiled with a two-line main that prints cvl_search_sql, and its
# CREATE FUNCTION code.more_like_this is run under the name
# code.more_like_this_before. Then, alternating the two, ROUNDS times: the
# backend's CPU time per call (/proc/self/schedstat via pg_read_file,
# before and after a plpgsql loop of PERFORM * FROM code.more_like_this(id,
# 10) over 20 snippet ids) and the wall time per call (clock_timestamp).
# On the coordinator the backend's CPU is the coordinator's only (the
# shards' work is in the wall time). Needs superuser and a server on this
# machine. Prints one line per (layout, function).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
REV=${1:-4f049bf}
ROUNDS=${ROUNDS:-5}
CALLS_ONE=${CALLS_ONE:-200}
CALLS_SHARDS=${CALLS_SHARDS:-20}
read -r -a PORTS <<<"${PORTS:-5684 5685 5686 5687}"
export LOADER=${LOADER:-$top/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
REPOS=(json email http logging urllib html)
base=/tmp/codevec-bench-mlt
conn() { echo "host=/tmp port=$1 user=postgres dbname=$2"; }
Q() { PGOPTIONS="-c client_min_messages=warning -c codevec.device=cpu" psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
cleanup() { for i in 0 1 2 3; do bash test/cluster.sh stop "$base/c$i" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

rm -rf "$base"
mkdir -p "$base"
for i in 0 1 2 3; do
	bash test/cluster.sh start "$base/c$i" "${PORTS[$i]}" shared_preload_libraries= >/dev/null
done
ONE=$(conn "${PORTS[0]}" one)
C3=$(conn "${PORTS[0]}" c3)
psql -X -q -d "$(conn "${PORTS[0]}" postgres)" -c "CREATE DATABASE one" -c "CREATE DATABASE c3"
Q "$ONE" "CREATE EXTENSION codevec"
echo "# loading and embedding the corpus into one server"
for r in "${REPOS[@]}"; do "$LOADER" -q -d "$ONE" --repo "$r" "$PYLIB/$r"; done
Q "$ONE" "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops); ANALYZE code.snippets"
Q "$ONE" "COPY (SELECT DISTINCT ON (embed_text) embed_text, emb FROM code.snippets ORDER BY embed_text) TO STDOUT" >"$base/vectors.copy"
echo "# three shards"
shards=()
for i in 0 1 2; do
	s=$(conn "${PORTS[$((i + 1))]}" b3)
	psql -X -q -d "$(conn "${PORTS[$((i + 1))]}" postgres)" -c "CREATE DATABASE b3"
	bash tools/shards.sh init "$s" "$i" >/dev/null
	shards+=("$s")
done
bash tools/shards.sh setup "$C3" "${shards[@]}" >/dev/null
for r in "${REPOS[@]}"; do bash tools/shards.sh load "$C3" -q --no-embed --no-bm25 --repo "$r" "$PYLIB/$r"; done
for s in "${shards[@]}"; do
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$s" \
		-c "CREATE TEMP TABLE v (embed_text text, emb codevec(384))" -c "\\copy v FROM '$base/vectors.copy'" \
		-c "UPDATE code.snippets s SET emb = v.emb FROM v WHERE v.embed_text = s.embed_text" \
		-c "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops)" -c "ANALYZE code.snippets"
done
bash tools/shards.sh refresh "$C3"
[ "$(Q "$C3" "SELECT count(*) FILTER (WHERE emb IS NOT NULL) FROM code.snippets")" = \
  "$(Q "$ONE" "SELECT count(*) FROM code.snippets")" ] || { echo "c3: not every row has its vector" >&2; exit 1; }

# REV's code.more_like_this as code.more_like_this_before
git show "$REV:loaders/schema.c" >"$base/schema.c"
git show "$REV:loaders/cvl.h" >"$base/cvl.h"
printf '#include <stdio.h>\nextern const char *const cvl_search_sql;\nint main(void) { fputs(cvl_search_sql, stdout); return 0; }\n' >"$base/p.c"
cc -I"$base" -I"$(pg_config --includedir)" -o "$base/p" "$base/p.c" "$base/schema.c"
for db in "$ONE" "$C3"; do
	ext=$(Q "$db" "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'codevec'")
	"$base/p" | sed -n '/^CREATE OR REPLACE FUNCTION code.more_like_this(/,/^\$f\$;$/p' |
		sed "s/@EXT@/$ext/g; s/FUNCTION code.more_like_this(/FUNCTION code.more_like_this_before(/" >"$base/before.sql"
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$base/before.sql"
	Q "$db" "CREATE TABLE bench_ids AS SELECT id FROM code.snippets ORDER BY md5(id::text) LIMIT 20"
done
# both functions give the same ids (ties apart) before anything is timed
for db in "$ONE" "$C3"; do
	d=$(Q "$db" "SELECT count(*) FROM bench_ids b, LATERAL (SELECT array_agg(id ORDER BY id) a FROM code.more_like_this(b.id, 10)) x,
		LATERAL (SELECT array_agg(id ORDER BY id) a FROM code.more_like_this_before(b.id, 10)) y WHERE x.a <> y.a")
	echo "# $db: $d of 20 answers differ between the two (ties at the 10th place only)"
done

cpu() {		# cpu CONNINFO FUNCTION CALLS: backend CPU and wall microseconds per call
	Q "$1" "DO \$\$ DECLARE t0 bigint; t1 bigint; w0 timestamptz; w1 timestamptz; ids bigint[]; n integer := 0; BEGIN
		ids := ARRAY(SELECT id FROM bench_ids);
		PERFORM * FROM code.$2(ids[1], 10);
		t0 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint; w0 := clock_timestamp();
		WHILE n < $3 LOOP PERFORM * FROM code.$2(ids[1 + n % 20], 10); n := n + 1; END LOOP;
		t1 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint; w1 := clock_timestamp();
		RAISE WARNING 'us % %', round((t1 - t0) / $3 / 1000.0, 1),
			round(extract(epoch FROM w1 - w0) * 1e6 / $3, 1);
	END \$\$" 2>&1 | sed -n 's/^WARNING:  us //p'
}
echo "# $(date -u +%FT%TZ) $(Q "$ONE" "SELECT count(*) FROM code.snippets") snippets; this checkout $(git rev-parse --short HEAD) against $REV; load $(cut -d' ' -f1-3 /proc/loadavg)"
for db in one c3; do
	calls=$CALLS_ONE
	[ "$db" = one ] || calls=$CALLS_SHARDS
	for r in $(seq 1 "$ROUNDS"); do
		for f in more_like_this more_like_this_before; do
			echo "$db $f $(cpu "$(conn "${PORTS[0]}" $db)" "$f" "$calls")"
		done
	done
done | awk '{ k = $1 " " $2; c[k] = c[k] " " $3; w[k] = w[k] " " $4; sc[k] += $3; sw[k] += $4; n[k]++; if (!(k in seen)) { seen[k] = 1; o[++m] = k } }
	END { printf "%-6s %-22s %s\n", "layout", "function", "backend CPU us per call (rounds) / mean; wall us per call (rounds) / mean"
	      for (i = 1; i <= m; i++) { split(o[i], a, " "); printf "%-6s %-22s%s / %.1f;%s / %.1f\n", a[1], a[2], c[o[i]], sc[o[i]] / n[o[i]], w[o[i]], sw[o[i]] / n[o[i]] } }'
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
