#!/usr/bin/env bash
# test/gpuivf/run.sh — gpuivf crash recovery: the index survives
# `pg_ctl stop -m immediate` and matches its table after WAL replay; then
# codevec_knn's visibility against a concurrent, uncommitted writer, and
# its memory when called once per row.
#
# Runs its own cluster (it kills it): needs codevec installed.
# Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/codevec-gpuivf-crash.XXXXXX)
chmod 755 "$dir"
port=5491
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
passed=0; failed=0
trap 'bash "$top/test/cluster.sh" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT

# check DESCRIPTION SQL EXPECTED: one value from SQL must equal EXPECTED
check() {
	local got
	got=$(psql -qAtX -v ON_ERROR_STOP=1 -c "$2" 2>&1)
	if [ "$got" = "$3" ]; then
		passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"
	else
		failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1 (got '$got', want '$3')"
	fi
}

# plan_uses DESCRIPTION SETTINGS QUERY NODE: EXPLAIN of QUERY under SETTINGS
# must show NODE (e.g. "Index Scan using t_flat on t"): results called an
# index scan's must come from one, not from a plan that fell back
plan_uses() {
	local plan
	plan=$(psql -qAtX -v ON_ERROR_STOP=1 -c "$2" -c "EXPLAIN (COSTS OFF) $3" 2>&1)
	if grep -qF -- "$4" <<<"$plan"; then
		passed=$((passed + 1)); echo "ok $((passed + failed)) - $1: the plan shows $4"
	else
		failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1: the plan lacks $4"
		printf '%s\n' "$plan" | sed 's/^/#   /'
	fi
}

crash_and_restart() {
	bash "$top/test/cluster.sh" stop "$dir" immediate
	eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")"
}

eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")" || exit 1
export PGDATABASE=postgres

psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION codevec;
CREATE TABLE t (id int PRIMARY KEY, emb codevec(32));
INSERT INTO t SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 32) WHERE i > 0)
FROM generate_series(1, 20000) i;
CHECKPOINT;
-- built after the checkpoint: only the build's WAL can bring these back
CREATE INDEX t_flat ON t USING gpuivf (emb codevec_l2_ops);
CREATE INDEX t_ivf ON t USING gpuivf (emb codevec_cosine_ops) WITH (lists = 8);
SQL
crash_and_restart

# full index scans must return every row of the table, and the flat index
# the same order as a sequential scan: full_scan_matches PHASE LABEL OP INDEX
full_scan_matches() {
	plan_uses "$1: $2 full scan" "SET enable_seqscan = off; SET enable_bitmapscan = off" \
		"SELECT id FROM t ORDER BY emb $3 (SELECT emb FROM t WHERE id = 17)" "Index Scan using $4 on t"
	check "$1: $2 returns every row" "
	  SET enable_seqscan = off; SET enable_bitmapscan = off;
	  SELECT count(*) = (SELECT count(*) FROM t WHERE emb IS NOT NULL)
	     AND count(DISTINCT id) = count(*)
	  FROM (SELECT id FROM t ORDER BY emb $3 (SELECT emb FROM t WHERE id = 17)) s" t
}
exact_matches() {
	plan_uses "$1: reference" "SET enable_seqscan = on; SET enable_indexscan = off" \
		"SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17), ctid LIMIT 50" "Seq Scan on t"
	plan_uses "$1: flat index top-50" "SET enable_seqscan = off; SET enable_indexscan = on" \
		"SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 50" "Index Scan using t_flat on t"
	check "$1: flat index top-50 equals the sequential scan" "
	  SET enable_seqscan = on; SET enable_indexscan = off;
	  CREATE TEMP TABLE a AS SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17), ctid LIMIT 50;
	  SET enable_seqscan = off; SET enable_indexscan = on;
	  CREATE TEMP TABLE b AS SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 50;
	  SELECT (SELECT array_agg(id) FROM a) = (SELECT array_agg(id) FROM b)" t
}

full_scan_matches "after a crash right after the build" "flat (l2)" "<->" t_flat
full_scan_matches "after a crash right after the build" "IVF (cosine)" "<=>" t_ivf
exact_matches "after a crash right after the build"

# inserts that extend pages, deletes + VACUUM: all GenericXLog, then crash
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CHECKPOINT;
INSERT INTO t SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 32) WHERE i > 0)
FROM generate_series(20001, 26000) i;
DELETE FROM t WHERE id % 7 = 0;
VACUUM t;
INSERT INTO t SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 32) WHERE i > 0)
FROM generate_series(26001, 27000) i;
INSERT INTO t VALUES (27001, NULL);
SQL
crash_and_restart
full_scan_matches "after inserts, deletes, VACUUM and a crash" "flat (l2)" "<->" t_flat
full_scan_matches "after inserts, deletes, VACUUM and a crash" "IVF (cosine)" "<=>" t_ivf
exact_matches "after inserts, deletes, VACUUM and a crash"
check "deleted rows are gone from the index" "
  SET enable_seqscan = off;
  SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17)) s
  WHERE id % 7 = 0 AND id <= 26000" 0
check "VACUUM counted the live index tuples (26000 - 26000/7)" "
  SELECT reltuples::int FROM pg_class WHERE relname = 't_flat'" 22286

# the index is usable for new writes after recovery
plan_uses "inserts after recovery" "SET enable_seqscan = off" \
	"SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 2" "Index Scan using t_flat on t"
check "inserts after recovery are found" "
  INSERT INTO t VALUES (30000, (SELECT emb FROM t WHERE id = 17));
  SET enable_seqscan = off;
  SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 2) s" "17,30000"

# (INDEX_CLEANUP ON: PostgreSQL skips index vacuuming for a few dead rows)
# VACUUM only marks removed tuples LP_DEAD on a chain's last page (offsets
# stay: a GPU copy's delta tier resumes reading there); once later inserts
# have moved the chain's end, the next VACUUM compacts that page. Scans,
# counts and crash recovery must not see the dead tuples at any point.
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DELETE FROM t WHERE id BETWEEN 26500 AND 27000;
VACUUM (INDEX_CLEANUP ON) t;
INSERT INTO t SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 32) WHERE i > 0)
FROM generate_series(31001, 34000) i;
DELETE FROM t WHERE id BETWEEN 33990 AND 34000;
VACUUM (INDEX_CLEANUP ON) t;
SQL
full_scan_matches "after VACUUMs that mark last pages dead, then compact them" "flat (l2)" "<->" t_flat
full_scan_matches "after VACUUMs that mark last pages dead, then compact them" "IVF (cosine)" "<=>" t_ivf
exact_matches "after VACUUMs that mark last pages dead, then compact them"
check "VACUUM counts no dead tuple as live" "
  SELECT reltuples::int = (SELECT count(*) FROM t WHERE emb IS NOT NULL) FROM pg_class WHERE relname = 't_flat'" t
crash_and_restart
exact_matches "and after a crash"
check "removed rows stay gone after the crash" "
  SET enable_seqscan = off;
  SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17)) s
  WHERE id BETWEEN 26500 AND 27000 OR id BETWEEN 33990 AND 34000" 0

# codevec_knn (batch k-NN, src/gpuivfknn.c): rows inserted by a transaction
# still open in another session are not returned (the heap fetch checks
# them against the caller's snapshot), and the answer equals per-query
# sequential scans meanwhile; once committed they are returned
knn_ids() {
	echo "SELECT string_agg(t.id::text, ',' ORDER BY r.rank)
	  FROM codevec_knn('t_flat', ARRAY[(SELECT emb FROM t WHERE id = 17)], 5) r
	  JOIN t ON t.ctid = r.heap_tid WHERE r.distance = 0"
}
knn_vs_seqscan="
  SET enable_indexscan = off; SET enable_bitmapscan = off;
  WITH q AS (SELECT row_number() OVER (ORDER BY id) AS n, emb FROM t WHERE id % 1000 = 17),
  e AS (SELECT q.n, s.rank, s.ctid, s.d FROM q CROSS JOIN LATERAL (
          SELECT ctid, emb <-> q.emb AS d, row_number() OVER (ORDER BY emb <-> q.emb, ctid) AS rank
          FROM t WHERE emb IS NOT NULL ORDER BY emb <-> q.emb, ctid LIMIT 10) s),
  g AS (SELECT * FROM codevec_knn('t_flat', (SELECT array_agg(emb ORDER BY n) FROM q), 10))
  SELECT count(*) FILTER (WHERE e.n IS NULL OR g.query IS NULL OR e.ctid <> g.heap_tid
                          OR float8send(e.d) <> float8send(g.distance))
  FROM e FULL JOIN g ON e.n = g.query AND e.rank = g.rank"
check "codevec_knn: the nearest rows before the writer" "$(knn_ids)" "17,30000"
PGAPPNAME=codevec_knn_writer psql -qX -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL' &
BEGIN;
INSERT INTO t SELECT 40000 + i, (SELECT emb FROM t WHERE id = 17) FROM generate_series(1, 3) i;
INSERT INTO t SELECT 40100 + id, emb FROM t WHERE id % 1000 = 17;
SELECT pg_sleep(60);
COMMIT;
SQL
writer=$!
for _ in $(seq 1 100); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'codevec_knn_writer' AND query LIKE '%pg_sleep%'")" = 1 ] && break
	sleep 0.1
done
check "codevec_knn: the writer's transaction is open, its rows inserted" \
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'codevec_knn_writer' AND query LIKE '%pg_sleep%'" 1
check "codevec_knn: rows of an uncommitted transaction are not returned" "$(knn_ids)" "17,30000"
check "codevec_knn: equals per-query sequential scans while a writer is open" "$knn_vs_seqscan" 0
# end the writer's sleep: its transaction aborts, its rows stay invisible
psql -qAtX -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'codevec_knn_writer'" >/dev/null
wait "$writer" 2>/dev/null
check "codevec_knn: rows of a rolled-back transaction are not returned" "$(knn_ids)" "17,30000"
psql -qX -c "INSERT INTO t SELECT 40000 + i, (SELECT emb FROM t WHERE id = 17) FROM generate_series(1, 3) i" >/dev/null
check "codevec_knn: committed rows are returned, in ctid order among ties" "$(knn_ids)" "17,30000,40001,40002,40003"
check "codevec_knn: equals per-query sequential scans after the aborted writer" "$knn_vs_seqscan" 0

# codevec_knn called once per row of a statement (CROSS JOIN LATERAL) on
# the CPU path leaves nothing in the statement's memory: 20,000 calls
# against 200, the backend's memory contexts summed
# (pg_backend_memory_contexts) inside the same statement, after the calls.
# InitMaterializedSRF(fcinfo, 0) left ~820 bytes a call there (its catalog
# lookup, as in the BM25 functions: src/srf.h): 16 MB here.
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE small (id int, emb codevec(8));
INSERT INTO small SELECT i, ARRAY[i % 7, i % 5, i % 3, 1, 0, 0, 0, i]::real[]::codevec FROM generate_series(1, 100) i;
CREATE INDEX small_flat ON small USING gpuivf (emb codevec_l2_ops);
CREATE TABLE mem_rows AS SELECT g FROM generate_series(1, 20000) g;
SQL
knn_mem() {		# knn_mem N -> "rows|bytes": rows of N calls, the contexts' bytes after them
	psql -qAtX -v ON_ERROR_STOP=1 -c "SET codevec.device = cpu" -c "
	  WITH x AS MATERIALIZED (SELECT count(*) AS c FROM mem_rows m
	    CROSS JOIN LATERAL codevec_knn('small_flat', ARRAY[ARRAY[m.g % 7, 1, 0, 0, 0, 0, 0, 0]::real[]::codevec], 3) r
	    WHERE m.g <= $1)
	  SELECT (SELECT c FROM x), (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)" 2>&1
}
m200=$(knn_mem 200); m20k=$(knn_mem 20000)
check "codevec_knn: 200 and 20,000 calls in one statement return 3 rows each" "SELECT '${m200%%|*} ${m20k%%|*}'" "600 60000"
growth=""
[[ "$m200" =~ ^[0-9]+\|[0-9]+$ && "$m20k" =~ ^[0-9]+\|[0-9]+$ ]] && growth=$(( ${m20k#*|} - ${m200#*|} ))
check "codevec_knn: 20,000 calls in one statement hold less than 1 MB more than 200 (${growth:-?} bytes)" \
	"SELECT ${growth:-NULL} < 1048576" t

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
