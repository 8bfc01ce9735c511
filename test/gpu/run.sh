#!/usr/bin/env bash
# test/gpu/run.sh — the GPU test target (not CI): runs on a CUDA host with
# no package registry (see ../shared/gpu-host/README.md), as root.
#
# Needs, carried in .gpukit/ (git-ignored; make them with test/gpu/pack.sh on
# the Debian development machine):
#   pgkit.tar.xz, start-postgres.sh  PostgreSQL 15 (shared/gpu-host/pack-postgres.sh)
#   xlibs.tar.xz                     Debian's OpenBLAS, utf8proc, cJSON, gfortran
#   ext.tar.xz                       codevec.so built here (CUDA), its SQL and control
#   gen                              bench/seqscan/gen.c, built here
#
#   bash test/gpu/run.sh [ROWS]      (default 200000)
#
# Starts a server with shared_preload_libraries = codevec, then checks:
# the GPU service is ready on the device; the GPU path of a flat gpuivf
# index returns exactly what a sequential scan returns (rows and order, all
# three opclasses, k from 1 to past the GPU's largest batch, with filters,
# after inserts and deletes); codevec.device = cuda vs cpu agree; and it
# prints latencies. Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-200000}
out=${OUT:-/tmp}
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
source "$top/test/lib-knn.sh"	# prefetched
psql -X -x -c "SELECT * FROM codevec_gpu_status()"
check "the GPU service is ready on a CUDA device" "SELECT state = 'ready' AND device IS NOT NULL FROM codevec_gpu_status()" t
echo "ping round trip (us): $(psql -qAtX -c "SELECT round(codevec_gpu_ping(2000)::numeric, 1)")"

# data: random vectors (bench/seqscan/gen.c) and duplicates for ties
"$kit/gen" "$rows" 384 42 >/tmp/vec.bin
"$kit/gen" 50 384 7 >/tmp/q.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS t, q;
CREATE TABLE t (id int, emb codevec(384));
CREATE TABLE q (qid int, emb codevec(384));
\copy t FROM '/tmp/vec.bin' WITH (FORMAT binary)
\copy q FROM '/tmp/q.bin' WITH (FORMAT binary)
INSERT INTO t SELECT id + $rows, emb FROM t WHERE id <= 100;       -- exact duplicates: ties
INSERT INTO q SELECT 1000 + id, emb FROM t WHERE id <= 5;           -- queries equal to rows
VACUUM ANALYZE t; VACUUM ANALYZE q;
SQL
psql -qX -c "CREATE INDEX t_l2 ON t USING gpuivf (emb codevec_l2_ops)" \
	-c "CREATE INDEX t_ip ON t USING gpuivf (emb codevec_ip_ops)" \
	-c "CREATE INDEX t_cos ON t USING gpuivf (emb codevec_cosine_ops)"

# same(op, k, filter): queries whose GPU answer differs from the seq scan's
# (the seq scan breaks ties by ctid, as the index does; the index side has
# no second sort key, which would keep the planner from using the index)
same() {
	# one snapshot for both scans (REPEATABLE READ): sessions inserting at
	# the same time must not change the answer between them
	psql -qAtX <<SQL
SET codevec.device = cuda;
BEGIN ISOLATION LEVEL REPEATABLE READ;
DO \$\$
DECLARE r record; seqids int[]; gpuids int[]; bad int := 0;
BEGIN
	FOR r IN SELECT * FROM q LOOP
		SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on;
		SELECT array_agg(id) INTO seqids FROM (SELECT id FROM t WHERE $3 ORDER BY emb $1 r.emb, ctid LIMIT $2) s;
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off;
		SELECT array_agg(id) INTO gpuids FROM (SELECT id FROM t WHERE $3 ORDER BY emb $1 r.emb LIMIT $2) s;
		IF seqids IS DISTINCT FROM gpuids THEN bad := bad + 1; END IF;
	END LOOP;
	RAISE NOTICE 'mismatches=%', bad;
END \$\$;
COMMIT;
SQL
}
ks=${KS:-1 10 100 1000 1500}
nqueries=$(psql -qAtX -c "SELECT count(*) FROM q")
for op in '<->' '<#>' '<=>'; do
	for k in $ks; do
		c0=$(gpu_counters)
		res=$(same "$op" "$k" true 2>&1 | grep -o 'mismatches=[0-9]*')
		[ "$res" = "mismatches=0" ] && { passed=$((passed+1)); echo "ok $((passed+failed)) - GPU $op k=$k equals the sequential scan ($nqueries queries)"; } \
			|| { failed=$((failed+1)); echo "not ok $((passed+failed)) - GPU $op k=$k: $res"; }
		gpu_answered "GPU $op k=$k" "$c0" "$nqueries"
	done
	c0=$(gpu_counters)
	res=$(same "$op" 10 "id % 7 = 3" 2>&1 | grep -o 'mismatches=[0-9]*')
	[ "$res" = "mismatches=0" ] && { passed=$((passed+1)); echo "ok $((passed+failed)) - GPU $op with a filter equals the sequential scan"; } \
		|| { failed=$((failed+1)); echo "not ok $((passed+failed)) - GPU $op filter: $res"; }
	gpu_answered "GPU $op with a filter" "$c0" "$nqueries"
done
psql -X -c "SELECT indexes_loaded, memory_used_mb, requests, batches, latency_p50_us, latency_p99_us FROM codevec_gpu_status()"
check "the index copies are on the device" "SELECT indexes_loaded >= 3 FROM codevec_gpu_status()" t
check "EXPLAIN uses the index" "SET codevec.device = cuda; EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q LIMIT 1) LIMIT 10" "  ->  Index Scan using t_l2 on t"

# concurrency: 8 sessions at once, so the service batches their requests
for c in 1 2 3 4 5 6 7 8; do same '<=>' 10 true >"/tmp/conc$c.out" 2>&1 & done
wait
if [ "$(cat /tmp/conc*.out | grep -c 'mismatches=0')" = 8 ]; then
	passed=$((passed + 1)); echo "ok $((passed + failed)) - 8 concurrent sessions (batched GPU requests) equal the sequential scan"
else
	failed=$((failed + 1)); echo "not ok $((passed + failed)) - concurrent sessions: $(cat /tmp/conc*.out | grep -o 'mismatches=[0-9]*' | tr '\n' ' ')"
fi
psql -X -c "SELECT requests, batches, mean_batch, max_batch FROM codevec_gpu_status()"

# a scan's request posted ahead (codevec_gpu_prefetch, what hybrid
# code.search does before its keyword list): the scan waits for it instead
# of sending one, and answers as the sequential scan does
res=$(prefetched t q 100)
if grep -q "mismatches=0 posted=$nqueries" <<<"$res"; then
	passed=$((passed+1)); echo "ok $((passed+failed)) - prefetched scans (k 100) equal the sequential scan ($nqueries queries)"
else failed=$((failed+1)); echo "not ok $((passed+failed)) - prefetched scans: $(grep -oE 'mismatches=[0-9]* posted=[0-9]*|ERROR.*' <<<"$res" | head -2 | tr '\n' ' ')"; fi
line=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 2) LIMIT 10) s" \
	-c "SELECT codevec_gpu_prefetch('t', (SELECT emb FROM q WHERE qid = 3), 100);
	    EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 3) LIMIT 100" | grep '^gpuivf: t_cos')
echo "# $line"
check "EXPLAIN ANALYZE: the scan took the prefetched request (one GPU request)" \
	"SELECT '$line' LIKE '%on GPU%GPU requests 1,%prefetched 1%'" t

# writes: the copy follows inserts and deletes
psql -qX -c "INSERT INTO t SELECT 900000 + qid, emb FROM q WHERE qid < 1000" -c "DELETE FROM t WHERE id % 11 = 0" -c "VACUUM t" >/dev/null
res=$(same '<->' 10 true 2>&1 | grep -o 'mismatches=[0-9]*')
[ "$res" = "mismatches=0" ] && { passed=$((passed+1)); echo "ok $((passed+failed)) - after inserts, deletes and VACUUM the GPU answer equals the sequential scan"; } \
	|| { failed=$((failed+1)); echo "not ok $((passed+failed)) - after writes: $res"; }

# inserts without VACUUM: the copy's delta tier takes the new rows (APPEND)
# instead of a reload; queries equal to the new rows must find them first
psql -qX -c "INSERT INTO t SELECT 800000 + qid, emb FROM q" >/dev/null
res=$(same '<->' 10 true 2>&1 | grep -o 'mismatches=[0-9]*')
[ "$res" = "mismatches=0" ] && { passed=$((passed+1)); echo "ok $((passed+failed)) - after inserts (delta tier) the GPU answer equals the sequential scan"; } \
	|| { failed=$((failed+1)); echo "not ok $((passed+failed)) - after inserts (delta tier): $res"; }
line=$(psql -qAtX -c "SET codevec.device = cuda" -c "INSERT INTO t SELECT 810000 + qid, emb FROM q WHERE qid < 20" \
	-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 3) LIMIT 10" | grep '^gpuivf: t_l2')
echo "# $line"
check "EXPLAIN ANALYZE shows the rows went to the delta tier, not a reload" "SELECT '$line' LIKE '%on GPU%delta appends 1%' AND '$line' NOT LIKE '%uploads%'" t
for c in 1 2 3 4 5 6 7 8; do
	psql -qX -c "INSERT INTO t SELECT 820000 + $c * 100 + qid, emb FROM q WHERE qid % 8 = $c - 1" >/dev/null
	same '<=>' 10 true >"/tmp/dconc$c.out" 2>&1 &
done
wait
if [ "$(cat /tmp/dconc*.out | grep -c 'mismatches=0')" = 8 ]; then
	passed=$((passed + 1)); echo "ok $((passed + failed)) - 8 sessions inserting and searching at once (concurrent appends) equal the sequential scan"
else
	failed=$((failed + 1)); echo "not ok $((passed + failed)) - concurrent appends: $(cat /tmp/dconc*.out | grep -o 'mismatches=[0-9]*' | tr '\n' ' ')"
fi
# more rows than the delta tier holds (max(4096, rows / 8)): folded by a reload
psql -qX -c "INSERT INTO t SELECT 1000000 + id, emb FROM t WHERE id <= 30000" >/dev/null
res=$(same '<#>' 100 true 2>&1 | grep -o 'mismatches=[0-9]*')
[ "$res" = "mismatches=0" ] && { passed=$((passed+1)); echo "ok $((passed+failed)) - after more inserts than the delta holds (folded) the GPU answer equals the sequential scan"; } \
	|| { failed=$((failed+1)); echo "not ok $((passed+failed)) - after a fold: $res"; }
echo "# codevec_gpu_autotune(384) on this GPU:"
psql -qAtX -c "SELECT codevec_gpu_autotune(384)" | sed 's/^/#   /'

# latency: prepared k=10 queries through SQL, on BENCH_ROWS rows
brows=${BENCH_ROWS:-1000000}
"$kit/gen" "$brows" 384 43 >/tmp/vb.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS tb;
CREATE TABLE tb (id int, emb codevec(384));
\copy tb FROM '/tmp/vb.bin' WITH (FORMAT binary)
VACUUM ANALYZE tb;
SQL
rm -f /tmp/vb.bin
s0=$(date +%s%N)
psql -qX -c "CREATE INDEX tb_l2 ON tb USING gpuivf (emb codevec_l2_ops)"
echo "flat index build, $brows rows: $(( ($(date +%s%N) - s0) / 1000000 )) ms"
m0=$(psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()")
s0=$(date +%s%N)
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM tb ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 10" >/dev/null
echo "first (cold) query, uploads the index: $(( ($(date +%s%N) - s0) / 1000000 )) ms"
m1=$(psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()")
echo "GPU memory for the $brows-row index copy: $((m1 - m0)) MB"
cat >/tmp/knn.sql <<SQL
\set q random(1, 50)
SELECT id FROM tb ORDER BY emb <-> (SELECT emb FROM q WHERE qid = :q) LIMIT 10;
SQL
for dev in cuda cpu; do
	for c in 1 16; do
		PGOPTIONS="-c codevec.device=$dev" pgbench -n -M prepared -c $c -j $c -T 6 -f /tmp/knn.sql postgres 2>/dev/null \
			| grep -E "latency average|^tps" | tr '\n' ' ' | sed "s/^/device=$dev clients=$c: /"; echo
	done
done
PGOPTIONS="-c codevec.device=cuda" pgbench -n -M prepared -c 1 -T 6 -f /tmp/knn.sql -l --log-prefix=/tmp/pgb postgres >/dev/null 2>&1
cat /tmp/pgb.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "device=cuda 1 client latency us: p50 %d p99 %d (n=%d)\n", a[int(NR*0.5)], a[int(NR*0.99)], NR}'
psql -X -x -c "SELECT * FROM codevec_gpu_status()"
grep -E "ERROR|FATAL|PANIC|terminated|gpu service" /tmp/pgdata/server.log | tail -20
cp /tmp/pgdata/server.log "$out/" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
