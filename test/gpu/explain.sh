#!/usr/bin/env bash
# test/gpu/explain.sh — on the CUDA host (see test/gpu/run.sh for the kit):
# EXPLAIN says where gpuivf scans run, the routing threshold is measured,
# and an index over codevec.gpu_memory_limit is scanned on the CPU.
#
#   bash test/gpu/explain.sh [ROWS]      (default 200000)
#
# Checks: EXPLAIN and EXPLAIN ANALYZE put a ROWS-row flat index on the GPU
# (codevec.device = auto, the measured threshold), a 5,000-row one on the
# CPU under gpuivf.gpu_min_rows = 10000, and a 100-row one on the CPU under
# the measured break-even; JSON format; the memory cap: predicted from
# reltuples (EXPLAIN says CPU and why; auto: one WARNING and the right
# rows; cuda: 53200) and found at upload time (reltuples too low: the scan
# falls back, EXPLAIN ANALYZE says so, the next plan knows). Prints
# codevec_gpu_routing() and, to judge the break-even, mean latencies of
# k = 10 queries on the CPU and the GPU at sizes around it.
# Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-200000}
out=${OUT:-/tmp}
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
check "the GPU service is ready on a CUDA device" "SELECT state = 'ready' FROM codevec_gpu_status()" t

"$kit/gen" "$rows" 384 42 >/tmp/vec.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS eb, es, et, eq;
CREATE TABLE eb (id int, emb codevec(384));
\copy eb FROM '/tmp/vec.bin' WITH (FORMAT binary)
CREATE TABLE es AS SELECT * FROM eb WHERE id <= 5000;
CREATE TABLE et AS SELECT * FROM eb WHERE id <= 100;
CREATE TABLE eq AS SELECT id AS qid, emb FROM eb WHERE id % 997 = 1 LIMIT 50;
VACUUM ANALYZE eb; VACUUM ANALYZE es; VACUUM ANALYZE et; VACUUM ANALYZE eq;
CREATE INDEX eb_l2 ON eb USING gpuivf (emb codevec_l2_ops);
CREATE INDEX es_l2 ON es USING gpuivf (emb codevec_l2_ops);
CREATE INDEX et_l2 ON et USING gpuivf (emb codevec_l2_ops);
SQL
rm -f /tmp/vec.bin
# explain TABLE OPTIONS [SETTINGS...]: the EXPLAIN output of a k = 10 query
explain() {
	local t=$1 opts=$2; shift 2
	psql -qAtX -c "SET enable_seqscan = off" "${@/#/-c}" \
		-c "EXPLAIN $opts SELECT id FROM $t ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10" 2>&1
}
n_of() { grep -c -- "$1"; }

psql -X -x -c "SELECT * FROM codevec_gpu_routing('eb_l2')"
check "auto: EXPLAIN puts the $rows-row flat index on the GPU" \
	"SELECT $(explain eb "(COSTS OFF)" | n_of "^gpuivf: eb_l2 on GPU (.*, $rows rows)$")" 1
got=$(explain eb "(ANALYZE, COSTS OFF, TIMING OFF)")
echo "$got" | grep '^gpuivf:'
check "auto: EXPLAIN ANALYZE says the scan ran on the GPU (requests, candidates, rows)" \
	"SELECT $(echo "$got" | n_of "^gpuivf: eb_l2 on GPU (.*, $rows rows; scans 1, GPU requests [1-9][0-9]*, candidates [1-9][0-9]*, rows from the GPU 10, rows 10")" 1
check "auto: the GPU scan costs less than the CPU scan in the plan" \
	"SELECT $(explain eb "" | grep -o 'using eb_l2 on eb  (cost=[0-9]*\.[0-9]*' | grep -o '[0-9]*\.[0-9]*$') < $(explain eb "" "SET codevec.device = cpu" | grep -o 'using eb_l2 on eb  (cost=[0-9]*\.[0-9]*' | grep -o '[0-9]*\.[0-9]*$')" t
check "JSON: a gpuivf group with Device GPU" \
	"SELECT $(explain eb "(FORMAT JSON, COSTS OFF)" | n_of '"Device": "GPU"')" 1
check "gpuivf.gpu_min_rows = 10000: EXPLAIN ANALYZE puts the 5,000-row index on the CPU" \
	"SELECT $(explain es "(ANALYZE, COSTS OFF, TIMING OFF)" "SET gpuivf.gpu_min_rows = 10000" | n_of '^gpuivf: es_l2 on CPU (reltuples 5000 < gpuivf.gpu_min_rows 10000; scans 1, rows 10)$')" 1
be=$(psql -qAtX -c "SELECT break_even_rows FROM codevec_gpu_routing('et_l2')")
echo "measured break-even at 384 dims: $be rows"
if [ -n "$be" ] && [ "$be" -gt 100 ]; then
	check "measured threshold: the 100-row index stays on the CPU" \
		"SELECT $(explain et "(ANALYZE, COSTS OFF, TIMING OFF)" | n_of '^gpuivf: et_l2 on CPU (reltuples 100 < [0-9]*, the measured break-even (gpuivf.gpu_min_rows = 0); scans 1, rows 10)$')" 1
else
	failed=$((failed + 1)); echo "not ok $((passed + failed)) - measured break-even '$be' is not above 100 rows"
fi
s5=$(psql -qAtX -c "SELECT CASE WHEN 5000 >= min_rows THEN 'GPU' ELSE 'CPU' END FROM codevec_gpu_routing('es_l2')")
check "measured threshold: the 5,000-row index goes where the model says ($s5)" \
	"SELECT $(explain es "(ANALYZE, COSTS OFF, TIMING OFF)" | n_of "^gpuivf: es_l2 on $s5 (")" 1

# where the break-even really is: mean latency of 200 k = 10 queries per size
echo "size  cpu_us  gpu_us  auto"
for n in 100 250 500 1000 2000 5000 20000; do
	psql -qX -c "DROP TABLE IF EXISTS ez" -c "CREATE TABLE ez AS SELECT * FROM eb WHERE id <= $n" \
		-c "CREATE INDEX ez_l2 ON ez USING gpuivf (emb codevec_l2_ops)" -c "VACUUM ANALYZE ez" >/dev/null
	lat() {
		psql -qAtX 2>&1 <<SQL | tail -1
SET enable_seqscan = off;
SET codevec.device = $1;
DO \$\$ DECLARE t0 timestamptz; r record; x int;
BEGIN
	FOR r IN SELECT emb FROM eq LIMIT 20 LOOP
		SELECT id INTO x FROM ez ORDER BY emb <-> r.emb LIMIT 10;
	END LOOP;
	t0 := clock_timestamp();
	FOR r IN SELECT emb FROM eq, generate_series(1, 4) LOOP
		SELECT id INTO x FROM ez ORDER BY emb <-> r.emb LIMIT 10;
	END LOOP;
	RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / 200);
END \$\$;
SQL
	}
	printf '%-5s %-7s %-7s %s\n' "$n" "$(lat cpu | grep -o '[0-9]*$')" "$(lat cuda | grep -o '[0-9]*$')" \
		"$(explain ez "(COSTS OFF)" | grep -o 'on [CG]PU' | head -1)"
done

# the memory cap, predicted from reltuples: CPU, and EXPLAIN says why
psql -qX -c "ALTER SYSTEM SET codevec.gpu_memory_limit = '100MB'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
check "cap: EXPLAIN says the index copy does not fit and the scan runs on the CPU" \
	"SELECT $(explain eb "(COSTS OFF)" | n_of '^gpuivf: eb_l2 on CPU (index copy needs [0-9]* MB, codevec.gpu_memory_limit 100 MB)$')" 1
check "cap, auto: one WARNING, then the CPU scan's rows equal the sequential scan's" \
	"SELECT $(psql -qAtX -c "SET enable_seqscan = off" -c "CREATE TEMP TABLE a AS SELECT id FROM eb ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10" \
		-c "CREATE TEMP TABLE a2 AS SELECT id FROM eb ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10" \
		-c "SET enable_seqscan = on" -c "SET enable_indexscan = off" \
		-c "SELECT (SELECT array_agg(id) FROM a) = array_agg(id) FROM (SELECT id FROM eb ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1), ctid LIMIT 10) s" 2>&1 \
		| tr '\n' ' ' | grep -c 'WARNING:  codevec: using the CPU: index copy needs [0-9]* MB, codevec.gpu_memory_limit 100 MB .*t $')" 1
check "cap, cuda: the scan is an error 53200" \
	"DO \$\$ BEGIN SET LOCAL codevec.device = cuda; SET LOCAL enable_seqscan = off;
	 PERFORM id FROM eb ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10;
	 EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'sqlstate %', SQLSTATE; END \$\$" "NOTICE:  sqlstate 53200"

# the cap found at upload time: reltuples says 1,000 rows, the index has more
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP TABLE IF EXISTS eu;
CREATE TABLE eu (id int, emb codevec(384)) WITH (autovacuum_enabled = off);
INSERT INTO eu SELECT * FROM eb WHERE id <= 1000;
CREATE INDEX eu_l2 ON eu USING gpuivf (emb codevec_l2_ops);
INSERT INTO eu SELECT * FROM eb WHERE id > 1000;
SQL
got=$(explain eu "(ANALYZE, COSTS OFF, TIMING OFF)" "SET gpuivf.gpu_min_rows = 1" "SET client_min_messages = warning")
echo "$got" | grep -E '^gpuivf:|WARNING'
check "cap at upload: the scan falls back to the CPU and EXPLAIN ANALYZE says why" \
	"SELECT $(echo "$got" | n_of '^gpuivf: eu_l2 on CPU (.*fell back to the CPU: index "eu_l2": index copy needs [0-9]* MB, codevec.gpu_memory_limit 100 MB; scans 1, GPU requests 1, candidates 0, rows from the GPU 0, rows 10, CPU fallbacks 1, uploads 1)$')" 1
check "cap at upload: the next plan of the session knows (EXPLAIN in the same session)" \
	"SET gpuivf.gpu_min_rows = 1; SET enable_seqscan = off; SET client_min_messages = error;
	 SELECT count(*) FROM (SELECT id FROM eu ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10) s;
	 EXPLAIN (COSTS OFF) SELECT id FROM eu ORDER BY emb <-> (SELECT emb FROM eq LIMIT 1) LIMIT 10" \
	"gpuivf: eu_l2 on CPU (index copy needs $(( (rows * 384 * 6 + rows * 8) >> 20 )) MB, codevec.gpu_memory_limit 100 MB)"
psql -qX -c "ALTER SYSTEM RESET codevec.gpu_memory_limit" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
check "no cap: the $rows-row index is on the GPU again" \
	"SELECT $(explain eb "(COSTS OFF)" | n_of "^gpuivf: eb_l2 on GPU (")" 1

psql -X -x -c "SELECT * FROM codevec_gpu_routing('eb_l2')"
psql -X -c "SELECT indexes_loaded, memory_used_mb, requests FROM codevec_gpu_status()"
grep -E "ERROR|FATAL|PANIC|terminated" /tmp/pgdata/server.log | tail -10
cp /tmp/pgdata/server.log "$out/explain-server.log" 2>/dev/null
tap_result
