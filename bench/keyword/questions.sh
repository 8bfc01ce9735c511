#!/usr/bin/env bash
# bench/keyword/questions.sh -- (re)make public.bench_questions (i int, q
# text) in the database the libpq environment names: bench/quality's
# natural-language questions, every 24th, 100 of them (latency.py's), the
# questions bench/keyword/gpu.sh and search-ab.sh time.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
csv=$(mktemp /tmp/questions.XXXXXX.csv); chmod 644 "$csv"
python3 - "$top/bench/quality/queries.tsv.gz" > "$csv" <<'PY'
import csv, gzip, sys
rows = [l.rstrip('\n').split('\t') for l in gzip.open(sys.argv[1], 'rt')][1:]
w = csv.writer(sys.stdout)
for i, r in enumerate(rows[::24][:100], 1):
    w.writerow([i, r[7]])
PY
psql -qX -v ON_ERROR_STOP=1 -c "DROP TABLE IF EXISTS public.bench_questions" -c "CREATE TABLE public.bench_questions (i integer PRIMARY KEY, q text)" \
	-c "\\copy public.bench_questions FROM '$csv' WITH (FORMAT csv)" >/dev/null
rm -f "$csv"
