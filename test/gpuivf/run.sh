#!/usr/bin/env bash
# test/gpuivf/run.sh — gpuivf crash recovery: the index survives
# `pg_ctl stop -m immediate` and matches its table after WAL replay.
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

crash_and_restart() {
	local bindir=/usr/lib/postgresql/15/bin
	if [ "$(id -u)" = 0 ]; then
		su -s /bin/sh codevec -c "$bindir/pg_ctl -D $dir/data -m immediate -w stop" >/dev/null
	else
		"$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
	fi
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
# the same order as a sequential scan
full_scan_matches() {
	check "$1: $2 returns every row" "
	  SET enable_seqscan = off; SET enable_bitmapscan = off;
	  SELECT count(*) = (SELECT count(*) FROM t WHERE emb IS NOT NULL)
	     AND count(DISTINCT id) = count(*)
	  FROM (SELECT id FROM t ORDER BY emb $3 (SELECT emb FROM t WHERE id = 17)) s" t
}
exact_matches() {
	check "$1: flat index top-50 equals the sequential scan" "
	  SET enable_seqscan = on; SET enable_indexscan = off;
	  CREATE TEMP TABLE a AS SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17), ctid LIMIT 50;
	  SET enable_seqscan = off; SET enable_indexscan = on;
	  CREATE TEMP TABLE b AS SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 50;
	  SELECT (SELECT array_agg(id) FROM a) = (SELECT array_agg(id) FROM b)" t
}

full_scan_matches "after a crash right after the build" "flat (l2)" "<->"
full_scan_matches "after a crash right after the build" "IVF (cosine)" "<=>"
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
full_scan_matches "after inserts, deletes, VACUUM and a crash" "flat (l2)" "<->"
full_scan_matches "after inserts, deletes, VACUUM and a crash" "IVF (cosine)" "<=>"
exact_matches "after inserts, deletes, VACUUM and a crash"
check "deleted rows are gone from the index" "
  SET enable_seqscan = off;
  SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17)) s
  WHERE id % 7 = 0 AND id <= 26000" 0
check "VACUUM counted the live index tuples (26000 - 26000/7)" "
  SELECT reltuples::int FROM pg_class WHERE relname = 't_flat'" 22286

# the index is usable for new writes after recovery
check "inserts after recovery are found" "
  INSERT INTO t VALUES (30000, (SELECT emb FROM t WHERE id = 17));
  SET enable_seqscan = off;
  SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM t WHERE id = 17) LIMIT 2) s" "17,30000"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
