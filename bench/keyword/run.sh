#!/usr/bin/env bash
# bench/keyword/run.sh -- keyword top-k latency on a large real corpus
# (issue 21): today's ts_rank list, RUM's index-ordered rank, and BM25
# (code.bm25_search: exact top-k by block-max pruning over doc-ordered
# posting blocks; code.search keyword mode on it) and the same BM25 by
# Fagin's combined algorithm over impact-ordered lists (codevec_bm25_topk,
# what code.bm25_search ran before), 1 client p50/p95 and pgbench -M
# prepared.
#
#   bash bench/keyword/run.sh [STEP...]     steps: load rum refresh fagin latency pgbench
#
# The corpus is the Linux kernel as bench/loader loads it (Debian's
# linux-source-6.1, --no-embed, 785k snippets) in database $DB (default
# linux) of the server the PG* variables name; the tree is unpacked into
# $TREE (default /tmp/bm25/linux-source-6.1).  Needs the codevec extension
# with BM25 (0.2.0 with src/bm25.c) and postgresql-15-rum for the rum step,
# and bench/quality/.venv (psycopg) for latency.py.  Results are appended
# to $OUT (default results.jsonl in this folder).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PGDATABASE=${DB:-linux}
TREE=${TREE:-/tmp/bm25/linux-source-6.1}
OUT=${OUT:-$HERE/results.jsonl}
PY=$ROOT/bench/quality/.venv/bin/python
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
NQ=${NQ:-100}

step_load() {
	[ -d "$TREE" ] || { mkdir -p "$(dirname "$TREE")"; tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$(dirname "$TREE")"; }
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE"
	/usr/bin/time -f 'load: %e s, %M KB' "$LOADER" --no-progress --no-embed --repo linux "$TREE" >/dev/null
	psql -X -q -c "ANALYZE code.snippets"
}
step_rum() {
	psql -X -c "CREATE EXTENSION IF NOT EXISTS rum" -c '\timing on' \
		-c "CREATE INDEX IF NOT EXISTS snippets_tsv_rum ON code.snippets USING rum (tsv rum_tsvector_ops)" \
		-c "SELECT pg_size_pretty(pg_relation_size('code.snippets_tsv_rum')) AS rum_index"
}
step_refresh() {
	psql -X -c '\timing on' -c "SET maintenance_work_mem = '1GB'" -c "SELECT code.bm25_refresh()" \
		-c "VACUUM (ANALYZE) code.bm25_postings" \
		-c "SELECT pg_size_pretty(pg_relation_size('code.bm25_postings')) AS postings,
		           pg_size_pretty(pg_total_relation_size('code.bm25_postings')) AS with_toast_and_index,
		           (SELECT count(*) FROM code.bm25_postings) AS blocks,
		           (SELECT count(*) FROM code.bm25_terms) AS terms, p.* FROM code.bm25_params p"
}
step_fagin() {
	# the postings again, one row per posting in impact order, for
	# codevec_bm25_topk (Fagin's combined algorithm) to be measured on
	psql -X -c '\timing on' -c "SET maintenance_work_mem = '1GB'" \
		-c "DROP TABLE IF EXISTS public.impact_postings" \
		-c "CREATE TABLE public.impact_postings AS SELECT bp.term, x.impact, x.id
		    FROM code.bm25_postings bp, code.bm25_params p, codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x" \
		-c "CREATE INDEX impact_postings_idx ON public.impact_postings (term, impact DESC, id)" \
		-c "VACUUM ANALYZE public.impact_postings" \
		-c "CREATE OR REPLACE FUNCTION public.bm25_fagin(query text, k integer) RETURNS TABLE(id bigint, score double precision)
		    LANGUAGE plpgsql STABLE AS \$f\$
		    DECLARE p code.bm25_params; q record;
		    BEGIN
		      SELECT * INTO p FROM code.bm25_params;
		      q := code.bm25_query(query);
		      IF q.terms IS NULL THEN RETURN; END IF;
		      RETURN QUERY SELECT x.id, x.score FROM codevec_bm25_topk(q.terms, q.lexemes, q.idf, k, p.weights, p.k1, p.b,
		        p.avgdl, 'public.impact_postings_idx'::regclass, 'code.snippets_pkey'::regclass, 'tsv') x;
		    END \$f\$"
}
step_latency() {
	local m k
	for m in ${METHODS:-tsrank rum fagin bm25 search}; do
		for k in 10 100; do
			"$PY" "$HERE/latency.py" "$m" --queries "$NQ" --k "$k" --json "$OUT"
		done
	done
}
step_pgbench() {
	# the same questions, one at random per transaction
	"$PY" - <<'PY' > /tmp/bm25-bench-questions.csv
import csv, gzip, os, sys
rows = [l.rstrip('\n').split('\t') for l in gzip.open(os.path.join(os.environ.get('ROOT', '.'), 'bench/quality/queries.tsv.gz'), 'rt')][1:]
w = csv.writer(sys.stdout)
for i, r in enumerate(rows[::24][:100], 1):
    w.writerow([i, r[7]])
PY
	psql -X -q -c "DROP TABLE IF EXISTS public.bench_questions" -c "CREATE TABLE public.bench_questions (i integer PRIMARY KEY, q text)" \
		-c "\\copy public.bench_questions FROM '/tmp/bm25-bench-questions.csv' WITH (FORMAT csv)"
	printf '\\set i random(1, 100)\nSELECT s.id FROM public.bench_questions b, code.search(b.q, k => 10, mode => %s) s WHERE b.i = :i;\n' "'keyword'" > /tmp/bm25-bench.sql
	for c in 1 2; do
		pgbench -n -M prepared -c "$c" -j "$c" -T "${SECS:-30}" -f /tmp/bm25-bench.sql | grep -E 'latency average|tps'
	done
}
export ROOT
for s in "${@:-load rum refresh fagin latency pgbench}"; do
	for t in $s; do echo "== $t" >&2; "step_$t"; done
done
