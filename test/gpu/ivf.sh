#!/usr/bin/env bash
# test/gpu/ivf.sh — GPU test target (not CI): IVF gpuivf indexes (lists > 1)
# answered by the GPU service, on a CUDA host, as root, on the server of
# test/gpu/setup.sh (kit as for test/gpu/run.sh).
#
#   bash test/gpu/ivf.sh [ROWS] [LISTS]      (default 200000 rows, 400 lists)
#
# The GPU scans the first gpuivf.probes lists (the rows of those lists only,
# cuda/knn.h codevec_cuda_knn_ranges) and the CPU goes on with later lists,
# so with the same probes codevec.device = cuda must return exactly what
# codevec.device = cpu returns: same rows, same order. Checks that for the
# three opclasses, k from 1 to past the GPU's largest batch, LIMITs larger
# than the probed lists hold (the scan goes on with the next lists), a WHERE
# filter, 8 concurrent sessions, inserts (the copy loads again) and deletes
# + VACUUM; with probes = lists both must equal a sequential scan. Prints
# recall@10 by probes and latencies. Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-200000}
lists=${2:-400}
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
check "the GPU service is ready on a CUDA device" "SELECT state = 'ready' AND device IS NOT NULL FROM codevec_gpu_status()" t

"$kit/gen" "$rows" 384 42 >/tmp/ivec.bin
"$kit/gen" 50 384 7 >/tmp/iq.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS ti, qi;
CREATE TABLE ti (id int, emb codevec(384));
CREATE TABLE qi (qid int, emb codevec(384));
\copy ti FROM '/tmp/ivec.bin' WITH (FORMAT binary)
\copy qi FROM '/tmp/iq.bin' WITH (FORMAT binary)
INSERT INTO ti SELECT id + $rows, emb FROM ti WHERE id <= 100;      -- exact duplicates: ties
INSERT INTO qi SELECT 1000 + id, emb FROM ti WHERE id <= 5;          -- queries equal to rows
VACUUM ANALYZE ti; VACUUM ANALYZE qi;
SQL
rm -f /tmp/ivec.bin
reqs() { psql -qAtX -c "SELECT requests FROM codevec_gpu_status()"; }
for op in l2 ip cosine; do
	r0=$(reqs); s0=$(date +%s%N)
	psql -qX -c "SET maintenance_work_mem = '1GB'" -c "CREATE INDEX ti_$op ON ti USING gpuivf (emb codevec_${op}_ops) WITH (lists = $lists)"
	echo "# IVF build on the GPU service ($op, $rows rows, $lists lists): $(( ($(date +%s%N) - s0) / 1000000 )) ms, $(( $(reqs) - r0 )) requests"
done
r0=$(reqs); s0=$(date +%s%N)
psql -qX -c "SET maintenance_work_mem = '1GB'" -c "SET codevec.device = cpu" -c "CREATE INDEX ti_cpu ON ti USING gpuivf (emb codevec_cosine_ops) WITH (lists = $lists)"
echo "# IVF build on the CPU (cosine): $(( ($(date +%s%N) - s0) / 1000000 )) ms, $(( $(reqs) - r0 )) requests"
check "the IVF builds trained and assigned on the GPU service (requests seen)" \
	"SELECT requests > 0 FROM codevec_gpu_status()" t
# every row must sit in the list of its nearest centroid (the scan's own
# order): with probes = 1 a query equal to a row finds a row at distance 0
for op in '<->' '<=>'; do
	check "GPU-assigned rows: probes = 1 finds each of 300 rows itself ($op)" \
		"SET gpuivf.probes = 1; SET codevec.device = cpu;
		 SELECT count(*) FROM (SELECT emb FROM ti WHERE id % 667 = 1) r
		 WHERE (SELECT emb $op r.emb FROM ti ORDER BY emb $op r.emb LIMIT 1) <> 0" 0
done
psql -qX -c "DROP INDEX ti_cpu" >/dev/null

# same(op, k, probes, filter): queries whose GPU index scan differs from the
# CPU index scan with the same probes (and, when probes = lists, from the
# sequential scan too)
same() {
	psql -qAtX <<SQL
SET gpuivf.probes = $3;
DO \$\$
DECLARE r record; cpuids int[]; gpuids int[]; seqids int[]; bad int := 0;
BEGIN
	SET LOCAL enable_seqscan = off;
	FOR r IN SELECT * FROM qi LOOP
		SET LOCAL codevec.device = cpu;
		SELECT array_agg(id) INTO cpuids FROM (SELECT id FROM ti WHERE $4 ORDER BY emb $1 r.emb LIMIT $2) s;
		SET LOCAL codevec.device = cuda;
		SELECT array_agg(id) INTO gpuids FROM (SELECT id FROM ti WHERE $4 ORDER BY emb $1 r.emb LIMIT $2) s;
		IF cpuids IS DISTINCT FROM gpuids THEN bad := bad + 1; END IF;
		IF $3 >= $lists THEN
			SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on;
			SELECT array_agg(id) INTO seqids FROM (SELECT id FROM ti WHERE $4 ORDER BY emb $1 r.emb, ctid LIMIT $2) s;
			SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off;
			IF seqids IS DISTINCT FROM gpuids THEN bad := bad + 1; END IF;
		END IF;
	END LOOP;
	RAISE NOTICE 'mismatches=%', bad;
END \$\$;
SQL
}
expect0() {	# expect0 DESCRIPTION op k probes filter
	local res
	res=$(same "$2" "$3" "$4" "$5" 2>&1 | grep -o 'mismatches=[0-9]*')
	if [ "$res" = "mismatches=0" ]; then
		passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"
	else
		failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1: ${res:-$(same "$2" "$3" "$4" "$5" 2>&1 | tail -3)}"
	fi
}
per=$((rows / lists))
for op in '<->' '<#>' '<=>'; do
	for k in 1 10 100; do
		expect0 "IVF $op k=$k probes=8: GPU equals the CPU scan (55 queries)" "$op" "$k" 8 true
	done
	expect0 "IVF $op k=$((per * 2)) probes=1: past the probed list, the scan goes on with the next lists" "$op" $((per * 2)) 1 true
	expect0 "IVF $op k=1500 probes=8: past the GPU's largest batch" "$op" 1500 8 true
	expect0 "IVF $op with a filter (id % 7 = 3), k=10 probes=8" "$op" 10 8 "id % 7 = 3"
done
expect0 "IVF <=> probes=lists: GPU equals the sequential scan" '<=>' 10 "$lists" true
expect0 "IVF <-> probes=lists, k=100: GPU equals the sequential scan" '<->' 100 "$lists" true

line=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET gpuivf.probes = 8" \
	-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM ti ORDER BY emb <=> (SELECT emb FROM qi WHERE qid = 3) LIMIT 10" | grep '^gpuivf: ti_cosine')
echo "# $line"
check "EXPLAIN ANALYZE: the IVF scan ran on the GPU" "SELECT '$line' LIKE '%on GPU%'" t
line=$(psql -qAtX -c "SET gpuivf.probes = 8" \
	-c "EXPLAIN (COSTS OFF) SELECT id FROM ti ORDER BY emb <=> (SELECT emb FROM qi WHERE qid = 3) LIMIT 10" | grep '^gpuivf: ti_cosine')
echo "# auto: $line"

for c in 1 2 3 4 5 6 7 8; do same '<=>' 10 8 true >"/tmp/iconc$c.out" 2>&1 & done
wait
if [ "$(cat /tmp/iconc*.out | grep -c 'mismatches=0')" = 8 ]; then
	passed=$((passed + 1)); echo "ok $((passed + failed)) - 8 concurrent sessions: GPU IVF scans equal the CPU's"
else
	failed=$((failed + 1)); echo "not ok $((passed + failed)) - concurrent: $(cat /tmp/iconc*.out | grep -o 'mismatches=[0-9]*' | tr '\n' ' ')"
fi

# inserts: the copy is loaded again (IVF copies have no delta tier)
psql -qX -c "INSERT INTO ti SELECT 900000 + qid, emb FROM qi" >/dev/null
line=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET gpuivf.probes = 8" \
	-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM ti ORDER BY emb <-> (SELECT emb FROM qi WHERE qid = 3) LIMIT 10" | grep '^gpuivf: ti_l2')
echo "# $line"
check "after an insert the IVF copy is loaded again" "SELECT '$line' LIKE '%on GPU%upload%'" t
expect0 "after inserts: GPU equals the CPU scan, new rows found" '<->' 10 8 true
check "a query equal to an inserted row finds it first" \
	"SET codevec.device = cuda; SET gpuivf.probes = 1; SELECT id FROM ti ORDER BY emb <-> (SELECT emb FROM qi WHERE qid = 7) LIMIT 1" 900007
psql -qX -c "DELETE FROM ti WHERE id % 11 = 0" -c "VACUUM ti" >/dev/null
expect0 "after deletes and VACUUM: GPU equals the CPU scan" '<=>' 10 8 true
expect0 "after deletes and VACUUM, probes=lists: GPU equals the sequential scan" '<#>' 10 "$lists" true

# recall@10 by probes against the exact answer (sequential scan), and latency
echo "# recall@10 (cosine, 55 queries) by probes, GPU IVF scan vs sequential scan:"
psql -qX -c "SET enable_indexscan = off" \
	-c "CREATE TABLE iexact AS SELECT qid, ARRAY(SELECT id FROM ti ORDER BY emb <=> qi.emb, ctid LIMIT 10) ids FROM qi" >/dev/null
for p in 1 4 16 64; do
	r=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET gpuivf.probes = $p" \
		-c "SELECT round(avg((SELECT count(*) FROM unnest(x.ids) i WHERE i = ANY (ARRAY(SELECT id FROM ti ORDER BY emb <=> qi.emb LIMIT 10))))::numeric / 10, 3) FROM iexact x JOIN qi USING (qid)")
	echo "#   probes $p: $r"
done
psql -qX -c "DROP TABLE iexact" >/dev/null
cat >/tmp/ivf.sql <<SQL
\set q random(1, 50)
SELECT id FROM ti ORDER BY emb <=> (SELECT emb FROM qi WHERE qid = :q) LIMIT 10;
SQL
for dev in cuda cpu; do
	for c in 1 16; do
		PGOPTIONS="-c codevec.device=$dev -c gpuivf.probes=16" pgbench -n -M prepared -c $c -j $c -T 4 -f /tmp/ivf.sql postgres 2>/dev/null \
			| grep -E "latency average|^tps" | tr '\n' ' ' | sed "s/^/# IVF probes 16, device=$dev, $c clients: /"; echo
	done
done
psql -X -c "SELECT requests, batches, round(mean_batch::numeric, 1) AS mean_batch, max_batch FROM codevec_gpu_status()"
grep -E "ERROR|FATAL|PANIC|terminated" /tmp/pgdata/server.log | grep -v "canceling" | tail -10
tap_result
