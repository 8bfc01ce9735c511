#!/usr/bin/env bash
# bench/gpuivf/pgvector.sh — gpuivf on pgvector's own columns (codevec_pgvector),
# same run, same machine: one `vector(384)` column of real code embeddings
# with pgvector's HNSW index and with a gpuivf index (vector_cosine_ops),
# beside gpuivf on the `codevec` column the vectors came from, and a
# `halfvec(384)` copy with gpuivf halfvec_cosine_ops. Runs on the CUDA host
# as root, on the server of test/gpu/setup.sh (PostgreSQL 15 kit).
#
#   bash bench/gpuivf/pgvector.sh N         # N real code chunks (870000 for the
#                                           # issue's run; compare.sh's data)
#   REUSE=1 bash bench/gpuivf/pgvector.sh N # keep tables t, q, gt of an earlier
#                                           # compare.sh / pgvector.sh run
#   HALFVEC=0 ...                           # skip the halfvec column
#
# Needs: .gpukit/ from test/gpu/pack.sh built from a tree with
# codevec_pgvector (codevec.so with src/vecelem.h), and pgvector on the
# server (.gpukit/pgvector.tar.xz, unpacked as compare.sh does: vector.so,
# vector.control, vector--*.sql; pgvector >= 0.7 for halfvec). The
# companion's control file and script are installed from this checkout.
#
# Data and the exact answer come from compare.sh (`real N`, with its own
# benchmarks off): t (id, emb codevec(384)), 1,000 queries q, gt = the
# exact top 10 per query. Then tv (id, emb vector(384)) and th (halfvec)
# are filled from t through codevec_pgvector's casts. For each index:
# build time, size, first (cold) query, exactness against pgvector's
# sequential scan (20 queries: ids in order, ties by ctid), recall@10
# against gt (200 queries), and pgbench -M prepared, 10 s, 1 and 16
# clients (QPS, p50, p99). Metric cosine, k = 10. RESULT lines are the
# figures.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:?rows}
work=/tmp/compare; mkdir -p "$work"; chmod 755 "$work"
T=${T:-10}
. "$top/bench/gpuivf/lib.sh"	# ms, mem, pctl, bench, install_pgvector_kit

# data, the exact answer (gt) and the codevec flat index t_flat: compare.sh
if [ "${REUSE:-0}" != 1 ]; then
	FLATBENCH=0 IVF=0 PGV=0 bash "$top/bench/gpuivf/compare.sh" real "$n" || exit 1
fi
source "$top/test/gpu/setup.sh" max_parallel_maintenance_workers=15 maintenance_work_mem=16GB max_worker_processes=32
install_pgvector_kit
cp "$top/pgvector/codevec_pgvector.control" "$top"/pgvector/codevec_pgvector--*.sql "$(pg_config --sharedir)/extension/"
psql -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS codevec_pgvector CASCADE" >/dev/null || {
	echo "codevec_pgvector cannot be created here (pgvector missing or older than 0.7?)"; exit 1; }
echo "# pgvector columns, $(psql -qAtX -c "SELECT count(*) FROM t") rows, GPU $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()"), $(nproc) cores, pgvector $(psql -qAtX -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'"), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"

# recall TABLE QTABLE SETTINGS: recall@10 of the plan in use against gt, 200 queries
recall() {
	psql -qAtX -c "$3" -c "SELECT round(avg((SELECT count(*) FROM unnest(g.ids) i WHERE i = ANY(ARRAY(SELECT id FROM $1 ORDER BY emb <=> x.emb LIMIT 10))))::numeric / 10, 4) FROM gt g JOIN $2 x USING (qid) WHERE qid <= 200"
}
# exact TABLE QTABLE SETTINGS: queries (of 20) whose index answer differs
# from pgvector's sequential scan ORDER BY emb <=> q, ctid
exact() {
	psql -qAtX -c "$3" -c "CREATE TEMP TABLE ia AS SELECT qid, ARRAY(SELECT id FROM $1 ORDER BY emb <=> x.emb LIMIT 10) AS ids FROM $2 x WHERE qid <= 20" \
		-c "SET enable_indexscan = off" -c "SET enable_bitmapscan = off" \
		-c "SELECT count(*) FROM ia JOIN $2 x USING (qid) WHERE ia.ids IS DISTINCT FROM ARRAY(SELECT id FROM $1 ORDER BY emb <=> x.emb, ctid LIMIT 10)"
}
# uses TABLE QTABLE INDEX: whether the planner's plan for the benchmark query uses INDEX
uses() {
	psql -qAtX -c "EXPLAIN (COSTS OFF) SELECT id FROM $1 ORDER BY emb <=> (SELECT emb FROM $2 WHERE qid = 1) LIMIT 10" | grep -c "Index Scan using $3 "
}

# --- the codevec column (the baseline, this run) -------------------------------
QC="SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = :q) LIMIT 10;"
bench codevec_column_gpuivf_gpu "-c codevec.device=cuda" "$QC" 1 16

# --- the vector column: gpuivf, then HNSW beside it ---------------------------
s0=$(date +%s%N)
psql -qX -c "DROP TABLE IF EXISTS tv, qv, th, qh" \
	-c "CREATE TABLE tv (id int, emb vector(384))" -c "CREATE TABLE qv (qid int, emb vector(384))" \
	-c "INSERT INTO tv SELECT id, emb FROM t" -c "INSERT INTO qv SELECT qid, emb FROM q" \
	-c "VACUUM ANALYZE tv" -c "VACUUM ANALYZE qv" >/dev/null
echo "RESULT,data,vector,copied_from_codevec_ms=$(ms "$s0"),same_bytes=$(psql -qAtX -c "SELECT count(*) = (SELECT count(*) FROM t) FROM t JOIN tv USING (id) WHERE vector_send(tv.emb) = codevec_send(t.emb)")"
QV="SELECT id FROM tv ORDER BY emb <=> (SELECT emb FROM qv WHERE qid = :q) LIMIT 10;"

s0=$(date +%s%N); psql -qX -c "CREATE INDEX tv_gpuivf ON tv USING gpuivf (emb vector_cosine_ops)"
echo "RESULT,vector,gpuivf,build_ms=$(ms "$s0"),index_mb=$(psql -qAtX -c "SELECT pg_relation_size('tv_gpuivf') >> 20")"
m0=$(mem); s0=$(date +%s%N)
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM tv ORDER BY emb <=> (SELECT emb FROM qv WHERE qid = 1) LIMIT 10" >/dev/null
echo "RESULT,vector,gpuivf,cold_query_ms=$(ms "$s0"),gpu_mb=$(( $(mem) - m0 ))"
read -r r0 f0 <<<"$(gpu_counters)"
echo "RESULT,vector,gpuivf,exact_vs_pgvector_seqscan_mismatches=$(exact tv qv "SET codevec.device = cuda")/20,recall10=$(recall tv qv "SET codevec.device = cuda")"
read -r r1 f1 <<<"$(gpu_counters)"
echo "RESULT,vector,gpuivf,gpu_requests=$((r1 - r0)),gpu_fallbacks=$((f1 - f0)),plan_uses_it=$(uses tv qv tv_gpuivf)"
bench vector_column_gpuivf_gpu "-c codevec.device=cuda" "$QV" 1 16

s0=$(date +%s%N)
psql -qX -c "SET maintenance_work_mem = '16GB'" -c "SET max_parallel_maintenance_workers = 7" -c "CREATE INDEX tv_hnsw ON tv USING hnsw (emb vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
echo "RESULT,vector,hnsw,build_ms=$(ms "$s0"),index_mb=$(psql -qAtX -c "SELECT pg_relation_size('tv_hnsw') >> 20")"
echo "RESULT,vector,both_indexes,planner_picks_gpuivf=$(uses tv qv tv_gpuivf),planner_picks_hnsw=$(uses tv qv tv_hnsw)"
psql -qX -c "DROP INDEX tv_gpuivf" >/dev/null
chosen=""
for ef in 40 100 200 400 800 1000; do
	r=$(recall tv qv "SET hnsw.ef_search = $ef")
	echo "RESULT,vector,hnsw,ef_search=$ef,recall10=$r"
	[ -z "$chosen" ] && awk -v r="$r" 'BEGIN {exit !(r >= 0.99)}' && chosen=$ef
	[ -n "$chosen" ] && break
done
[ -z "$chosen" ] && chosen=1000
bench "vector_column_hnsw_ef$chosen" "-c hnsw.ef_search=$chosen" "$QV" 1 16
[ "$chosen" != 40 ] && bench "vector_column_hnsw_ef40" "-c hnsw.ef_search=40" "$QV" 1 16

# --- the halfvec column: gpuivf on binary16 rows as stored ----------------------
if [ "${HALFVEC:-1}" = 1 ]; then
	psql -qX -c "CREATE TABLE th (id int, emb halfvec(384))" -c "CREATE TABLE qh (qid int, emb halfvec(384))" \
		-c "INSERT INTO th SELECT id, emb FROM t" -c "INSERT INTO qh SELECT qid, emb FROM q" \
		-c "VACUUM ANALYZE th" -c "VACUUM ANALYZE qh" >/dev/null
	QH="SELECT id FROM th ORDER BY emb <=> (SELECT emb FROM qh WHERE qid = :q) LIMIT 10;"
	s0=$(date +%s%N); psql -qX -c "CREATE INDEX th_gpuivf ON th USING gpuivf (emb halfvec_cosine_ops)"
	echo "RESULT,halfvec,gpuivf,build_ms=$(ms "$s0"),index_mb=$(psql -qAtX -c "SELECT pg_relation_size('th_gpuivf') >> 20")"
	m0=$(mem); s0=$(date +%s%N)
	psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM th ORDER BY emb <=> (SELECT emb FROM qh WHERE qid = 1) LIMIT 10" >/dev/null
	echo "RESULT,halfvec,gpuivf,cold_query_ms=$(ms "$s0"),gpu_mb=$(( $(mem) - m0 ))"
	read -r r0 f0 <<<"$(gpu_counters)"
	# recall against the float32 answer: what rounding the rows to binary16 costs
	echo "RESULT,halfvec,gpuivf,exact_vs_pgvector_seqscan_mismatches=$(exact th qh "SET codevec.device = cuda")/20,recall10_vs_float32=$(recall th qh "SET codevec.device = cuda")"
	read -r r1 f1 <<<"$(gpu_counters)"
	echo "RESULT,halfvec,gpuivf,gpu_requests=$((r1 - r0)),gpu_fallbacks=$((f1 - f0))"
	bench halfvec_column_gpuivf_gpu "-c codevec.device=cuda" "$QH" 1 16
fi
psql -X -c "SELECT indexes_loaded, memory_used_mb, requests, fallbacks FROM codevec_gpu_status()"
