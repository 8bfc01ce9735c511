#!/usr/bin/env bash
# bench/keyword/parallel.sh -- code.bm25_refresh() with 0, 1, 2 ... parallel
# workers (max_parallel_maintenance_workers) on a loaded database, and
# whether every run gives the same postings (issue 21, item 1).
#
#   DB=linux bash bench/keyword/parallel.sh [WORKERS...]      (default: 0 2 1)
#
# For each WORKERS in turn: the refresh, timed (wall, and the load average
# before and after), with auto_explain's row counts of its statements
# (Workers Launched, the plan shapes) in $LOG/refresh-WORKERS.log; then its
# code.bm25_terms and code.bm25_postings compared with the first run's,
# row for row (EXCEPT ALL both ways: terms, df, block bytes, max_impact).
# The first run's tables are kept as public.bm25_ref_terms /
# public.bm25_ref_postings (dropped at the end).  Prints one line per run
# and appends them to $OUT (default parallel-results.txt in this folder).
# Needs the PG* variables of the server; takes minutes per run on Linux.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export PGDATABASE=${DB:-linux}
OUT=${OUT:-$HERE/parallel-results.txt}
LOG=${LOG:-$(mktemp -d /tmp/bm25-parallel.XXXXXX)}
mkdir -p "$LOG"
[ $# -gt 0 ] || set -- 0 2 1
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

first=
for w in "$@"; do
	la0=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s.%N)
	psql -X -q -v ON_ERROR_STOP=1 -c "SET max_parallel_maintenance_workers = $w" -c "LOAD 'auto_explain'" \
		-c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_nested_statements = on" \
		-c "SET auto_explain.log_analyze = on" -c "SET auto_explain.log_timing = off" \
		-c "SET auto_explain.log_level = warning" -c "SELECT code.bm25_refresh()" > "$LOG/refresh-$w.log" 2>&1
	t1=$(date +%s.%N)
	la1=$(cut -d' ' -f1-3 /proc/loadavg)
	Q "VACUUM (ANALYZE) code.bm25_postings"
	t2=$(date +%s.%N)
	launched=$({ grep -o "Workers Launched: [0-9]*" "$LOG/refresh-$w.log" || true; } | sort | uniq -c | tr -s ' ' | paste -sd, -)
	blocks=$(Q "SELECT count(*) FROM code.bm25_postings")
	if [ -z "$first" ]; then
		first=$w
		Q "DROP TABLE IF EXISTS public.bm25_ref_terms, public.bm25_ref_postings"
		Q "CREATE TABLE public.bm25_ref_terms AS SELECT * FROM code.bm25_terms"
		Q "CREATE TABLE public.bm25_ref_postings AS SELECT * FROM code.bm25_postings"
		diff="(the reference)"
	else
		diff=$(Q "SELECT (SELECT count(*) FROM ((TABLE public.bm25_ref_terms EXCEPT ALL TABLE code.bm25_terms)
		           UNION ALL (TABLE code.bm25_terms EXCEPT ALL TABLE public.bm25_ref_terms)) x) || ' terms, ' ||
		          (SELECT count(*) FROM ((TABLE public.bm25_ref_postings EXCEPT ALL TABLE code.bm25_postings)
		           UNION ALL (TABLE code.bm25_postings EXCEPT ALL TABLE public.bm25_ref_postings)) x) ||
		          ' blocks differ from workers $first'")
	fi
	line=$(printf '%s workers=%s refresh=%.1fs vacuum=%.1fs load_before=[%s] load_after=[%s] blocks=%s launched=[%s] %s' \
		"$(date -u +%FT%TZ)" "$w" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$la0" "$la1" "$blocks" \
		"${launched:-none}" "$diff")
	echo "$line"
	echo "$line" >> "$OUT"
done
Q "DROP TABLE IF EXISTS public.bm25_ref_terms, public.bm25_ref_postings"
echo "plans: $LOG"
