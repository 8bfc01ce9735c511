#!/usr/bin/env bash
# test/gpu/prewarm.sh — no cold start (issue 13, item 5; src/gpuprewarm.c),
# on the CUDA host as root after test/gpu/pack.sh (kit as for run.sh):
#
#   bash test/gpu/prewarm.sh [ROWS]        (default 1,000,000 random x 384)
#
# Builds a flat gpuivf index of ROWS rows, queries it on the GPU (the copy
# loads: the cold first query, timed), checks that the service lists the
# copy for prewarm, restarts the server with a missing index added to the
# list, waits for the prewarm (polling the server log's prewarm lines;
# restart_to_loaded_ms counts from the stop's end, server start included), then times
# the first query of a new session (target: 1 s or less) and checks that
# it equals a sequential scan, that the missing index was skipped with a
# LOG line, and that codevec.gpu_prewarm = off loads nothing. Prints
# RESULT lines (prewarm seconds, first query ms) and ends with
# "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-1000000}
set --
source "$top/test/gpu/setup.sh"
log=/tmp/pgdata/server.log
lib=/opt/pgkit/usr/lib/x86_64-linux-gnu
bin=/opt/pgkit/usr/lib/postgresql/15/bin
ms() { date +%s%3N; }
pgstop() { su pg -c "LD_LIBRARY_PATH=$lib $bin/pg_ctl -D /tmp/pgdata -m fast -w stop" >/dev/null; }
pgstart() { source "$top/test/gpu/setup.sh"; }	# same settings as setup.sh's first start

"$kit/gen" "$rows" 384 42 >/tmp/pw.bin
"$kit/gen" 20 384 7 >/tmp/pwq.bin
t0=$(ms)
psql -qX -v ON_ERROR_STOP=1 <<SQL || { echo "not ok - data"; echo "0 passed, 1 failed"; exit 1; }
DROP TABLE IF EXISTS pw, pwq;
CREATE TABLE pw (id int, emb codevec(384));
CREATE TABLE pwq (qid int, emb codevec(384));
\copy pw FROM '/tmp/pw.bin' WITH (FORMAT binary)
\copy pwq FROM '/tmp/pwq.bin' WITH (FORMAT binary)
CREATE INDEX pw_flat ON pw USING gpuivf (emb codevec_cosine_ops);
VACUUM ANALYZE pw;
SQL
rm -f /tmp/pw.bin
echo "# $rows rows loaded and indexed in $(( ($(ms) - t0) / 1000 )) s"
Q="SELECT string_agg(id::text, ',' ORDER BY ord) FROM (SELECT id, row_number() OVER () AS ord FROM (SELECT id FROM pw ORDER BY emb <=> (SELECT emb FROM pwq WHERE qid = 3) LIMIT 10) s) s"
t0=$(ms)
psql -qAtX -c "SET codevec.device = cuda" -c "$Q" >/dev/null
cold=$(( $(ms) - t0 ))
echo "RESULT,prewarm,rows=$rows,cold_first_query_ms=$cold"
oid=$(psql -qAtX -c "SELECT 'pw_flat'::regclass::oid")
db=$(psql -qAtX -c "SELECT oid FROM pg_database WHERE datname = current_database()")
for _ in $(seq 1 50); do		# the service writes the list when idle
	[ "$(psql -qAtX -c "SELECT count(*) FROM codevec_gpu_prewarm_list() WHERE index = $oid")" = 1 ] && break
	sleep 0.1
done
check "the loaded copy is in the prewarm list" \
	"SELECT count(*) FROM codevec_gpu_prewarm_list() WHERE database = $db AND index = $oid" 1
want=$(psql -qAtX -c "SET codevec.device = cpu" -c "SET enable_indexscan = off" -c "SET enable_bitmapscan = off" -c "$Q")

# restart (the service writes the list at shutdown: pw_flat, used last, first),
# with an index that no longer exists added last
pgstop
printf '%s 4000000000\n' "$db" >>/tmp/pgdata/pg_codevec_prewarm
lines0=$(wc -l <"$log")
t0=$(ms)
pgstart
# copies of earlier suites' tables may be listed too: pw_flat, the most
# recently used, loads first; wait for its line (up to 120 s)
for _ in $(seq 1 1200); do
	tail -n +"$lines0" "$log" | grep -q 'codevec gpu prewarm: loaded index "pw_flat"' && break
	sleep 0.05
done
pw=$(( $(ms) - t0 ))
check "prewarm loaded the copy after the restart" \
	"SELECT $(tail -n +"$lines0" "$log" | grep -c 'codevec gpu prewarm: loaded index "pw_flat"') = 1 AND indexes_loaded >= 1 FROM codevec_gpu_status()" t
t0=$(ms)
got=$(psql -qAtX -c "SET codevec.device = cuda" -c "$Q")
first=$(( $(ms) - t0 ))
inner=$(psql -qAtX -c "SET codevec.device = cuda" -c "EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM pw ORDER BY emb <=> (SELECT emb FROM pwq WHERE qid = 4) LIMIT 10" | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p')
for _ in $(seq 1 600); do tail -n +"$lines0" "$log" | grep -q "codevec gpu prewarm: database" && break; sleep 0.1; done
tail -n +"$lines0" "$log" | grep "codevec gpu prewarm" | sed 's/^/# /'
echo "RESULT,prewarm,rows=$rows,restart_to_loaded_ms=$pw,first_query_ms=$first,next_query_execution_ms=$inner,cold_first_query_ms=$cold"
check "the first query after the restart equals a sequential scan" "SELECT '$got' = '$want' AND '$want' <> ''" t
check "the first query after the restart took 1 s or less (${first} ms, psql start included)" "SELECT $first <= 1000" t
check "a missing index in the list is skipped with a LOG line" \
	"SELECT $(tail -n +"$lines0" "$log" | grep -c 'index 4000000000 of database .* no longer exists: skipped') >= 1" t
check "the prewarmed index is still first in the list" \
	"SELECT index FROM codevec_gpu_prewarm_list() WHERE ordinal = 1" "$oid"

# codevec.gpu_prewarm = off: a restart loads nothing
psql -qX -c "ALTER SYSTEM SET codevec.gpu_prewarm = off" >/dev/null
pgstop; pgstart
sleep 3
check "codevec.gpu_prewarm = off: nothing loaded after a restart" "SELECT indexes_loaded FROM codevec_gpu_status()" 0
psql -qX -c "ALTER SYSTEM RESET codevec.gpu_prewarm" -c "SELECT pg_reload_conf()" >/dev/null
tap_result
