#!/usr/bin/env bash
# bench/keyword/subblocks-ab.sh -- the BM25 top-k with and without the
# sub-block directories (code.bm25_postings.subblocks), at two block sizes,
# two builds of codevec.so side by side on one loaded database (issue 21).
#
#   LIBDIR=... PGCTL=CMD DB=lx bash subblocks-ab.sh BEFORE.so AFTER.so [ROUNDS] [SHIFTS]
#
# DB is a database codevec-load has loaded (the Linux tree for the figures
# in README.md) with this tree's loader, so that code.bm25_refresh() writes
# the directories.  PGCTL runs pg_ctl for its server (pg_ctl -D DATA "$@",
# as the user that runs it); LIBDIR is that server's pkglibdir, a private
# installation's, never a shared one: codevec.so there is replaced by the
# build under test.  For each block_shift of SHIFTS (default "10 14"), each
# round (ROUNDS, default 2): AFTER.so rebuilds the postings at that shift
# (code.bm25_refresh(), VACUUM ANALYZE), then each build in turn, the
# server restarted with it:
#   - every question's top-k (k 10 and 100) through code.bm25_search, kept
#     in $OUT/topk-<build>-<shift>.tsv: every configuration must give the
#     same ids and scores (the block size does not change a score);
#   - codevec_bm25_blocks_topk alone, in the server, best of 5 per
#     question (k 10), p50 / mean / p90 over the odd (tune) and even
#     (held-out) questions;
#   - pgbench -M prepared, 1 client, 20 s each: code.search keyword mode
#     (k 10) and code.bm25_filtered(q, 100), hybrid's keyword list.
# BEFORE.so reads the directories' column as any other (it does not know
# it); the refreshes run under AFTER.so, whose extension SQL is installed.
# The questions: public.bench_questions (i, q), made here when absent from
# bench/quality's queries (every 48th, 100 of them, as latency.py takes
# them).  Results: $OUT/results.tsv (default OUT=/tmp/subblocks-ab).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
before=$1; after=$2; rounds=${3:-2}; shifts=${4:-10 14}
out=${OUT:-/tmp/subblocks-ab}
: "${LIBDIR:?LIBDIR: pkglibdir of the server}" "${PGCTL:?PGCTL: how to run pg_ctl for the server}" "${DB:?DB: the database}"
mkdir -p "$out"
P="psql -X -q -A -t -v ON_ERROR_STOP=1 -d $DB"

restart() {	# restart LIB
	$PGCTL stop -m fast >/dev/null 2>&1 || true
	install -m 755 "$1" "$LIBDIR/codevec.so"
	$PGCTL -w -l "${SERVER_LOG:-/tmp/subblocks-ab.server.log}" start >/dev/null
}

if [ "$($P -c "SELECT to_regclass('public.bench_questions') IS NULL")" = t ]; then
	python3 - "$here/../quality/queries.tsv.gz" > "$out/questions.tsv" <<'PY'
import gzip, sys
rows = [l.rstrip('\n').split('\t') for l in gzip.open(sys.argv[1], 'rt')][1:]
for i, r in enumerate(rows[::max(1, len(rows) // 100)][:100]):
    print('%d\t%s' % (i + 1, r[7].replace('\\', '\\\\')))
PY
	$P -c "CREATE TABLE public.bench_questions (i integer PRIMARY KEY, q text)"
	$P -c "\\copy public.bench_questions FROM '$out/questions.tsv'"
fi
cat > "$out/kw.sql" <<'EOF'
\set i random(1, 100)
SELECT s.id FROM public.bench_questions b, code.search(b.q, k => 10, mode => 'keyword') s WHERE b.i = :i;
EOF
cat > "$out/filt.sql" <<'EOF'
\set i random(1, 100)
SELECT s.id FROM public.bench_questions b, code.bm25_filtered(b.q, 100) s WHERE b.i = :i;
EOF

pgb() {	# pgb FILE -> "p50 p90 tps"
	rm -f "$out"/pgb.log*
	(cd "$out" && pgbench -n -M prepared -c 1 -j 1 -T "${SECONDS_EACH:-20}" -l --log-prefix=pgb.log -f "$1" "$DB" >/dev/null 2>&1)
	cat "$out"/pgb.log* | awk '{print $3}' | sort -n |
		awk '{a[NR]=$1} END {printf "%.3f\t%.3f\t%.0f", a[int(NR*0.5)]/1000, a[int(NR*0.9)]/1000, NR/'"${SECONDS_EACH:-20}"'}'
}

measure() {	# measure BUILD SHIFT ROUND
	local tag=$1 shift=$2 round=$3
	$P -c "SELECT count(*) FROM code.bm25_postings" >/dev/null	# the table in shared buffers / page cache
	$P -c "COPY (SELECT b.i, kk.k, x.id, x.score FROM public.bench_questions b CROSS JOIN (VALUES (10), (100)) kk(k),
	       code.bm25_search(b.q, kk.k) x ORDER BY 1, 2) TO STDOUT" > "$out/topk-$tag-$shift.tsv"
	local inserver
	inserver=$($P -c "CREATE TEMP TABLE qs AS SELECT b.i, (code.bm25_query(b.q)).* FROM public.bench_questions b" -c "
	  DO \$\$
	  DECLARE r record; t0 timestamptz; x bigint; sh int; best double precision;
	  BEGIN
	    SELECT block_shift INTO sh FROM code.bm25_params;
	    CREATE TEMP TABLE tm (i int, ms double precision);
	    FOR r IN SELECT * FROM qs WHERE terms IS NOT NULL ORDER BY i LOOP
	      best := 1e9;
	      FOR j IN 1..5 LOOP
	        t0 := clock_timestamp();
	        SELECT count(*) INTO x FROM codevec_bm25_blocks_topk(r.terms, r.idf, 10, 'code.bm25_postings_idx'::regclass, sh);
	        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
	      END LOOP;
	      INSERT INTO tm VALUES (r.i, best);
	    END LOOP;
	  END \$\$;" -c "SELECT string_agg(concat_ws(E'\t', round(p50::numeric, 3), round(mean::numeric, 3), round(p90::numeric, 3)), E'\t' ORDER BY half DESC)
	  FROM (SELECT i % 2 = 1 AS half, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, avg(ms) AS mean,
	        percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p90 FROM tm GROUP BY 1) x")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$shift" "$round" "$(cut -d' ' -f1 /proc/loadavg)" "$inserver" \
		"$(pgb "$out/kw.sql")" "$(pgb "$out/filt.sql")" >> "$out/results.tsv"
	tail -1 "$out/results.tsv"
}

[ -s "$out/results.tsv" ] || printf 'build\tshift\tround\tload\ttune_p50\ttune_mean\ttune_p90\theld_p50\theld_mean\theld_p90\tkw_p50\tkw_p90\tkw_qps\tfilt100_p50\tfilt100_p90\tfilt100_qps\n' > "$out/results.tsv"
for shift in $shifts; do
	for round in $(seq "$rounds"); do
		restart "$after"
		$P -c "BEGIN" -c "UPDATE code.bm25_params SET block_shift = $shift" -c "SELECT code.bm25_refresh()" -c "COMMIT" >/dev/null
		$P -c "VACUUM ANALYZE code.bm25_postings" >/dev/null
		echo "# block_shift $shift: $($P -c "SELECT count(*) || ' blocks, ' || count(subblocks) || ' directories (' ||
		      pg_size_pretty(sum(length(subblocks))) || '), table ' || pg_size_pretty(pg_total_relation_size('code.bm25_postings'))
		      FROM code.bm25_postings")" | tee -a "$out/sizes.txt"
		measure after "$shift" "$round"
		restart "$before"
		measure before "$shift" "$round"
	done
done
restart "$after"
# every configuration's top-k: the same ids and scores
for f in "$out"/topk-*.tsv; do
	if cmp -s "$f" "$out/topk-after-${shifts%% *}.tsv"; then echo "same top-k: $(basename "$f")"
	else echo "DIFFERENT top-k: $(basename "$f")"; fi
done | tee "$out/exact.txt"
