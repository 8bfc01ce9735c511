#!/usr/bin/env bash
# test/gpu/multigpu.sh — several devices in one GPU service (issue 19;
# src/gpuservice.c, src/gpucopies.c, src/gpuspread.c) on the CUDA host, as
# root, with .gpukit/ as test/gpu/run.sh needs it. One GPU is enough: it is
# listed twice (codevec.gpu_devices = '0,0': two logical devices, each with
# its own index copies, on one GPU), which runs the split, the merge and the
# replicas as two GPUs would, though not their speed (bench/gpuivf/multigpu.sh).
#
#   bash test/gpu/multigpu.sh [ROWS]      (default 200000; about 3 minutes)
#
# 1. Split: codevec.gpu_split_rows = ROWS / 3 forces every copy into three
#    row ranges (parts 0 and 2 on device 0, part 1 on device 1). Index scans
#    (flat: the three opclasses, k = 1, 10, 100, 1000; IVF with every list
#    probed: l2 and cosine, k = 10 and 100) return exactly what a sequential
#    scan returns, rows and order, with exact duplicates in different ranges
#    (ties broken by ctid across ranges); codevec_knn (20 queries, k = 10
#    and 100) equals per-query sequential scans, distances bit for bit;
#    after INSERTs (the delta tier, on device 0) and after DELETE + VACUUM
#    (masked rows) too; codevec_gpu_devices() shows the ranges and requests
#    on both devices.
# 2. Replication: codevec.gpu_replicate_rate = 1 and no split: a copy
#    queried for 2 s gets a replica on device 1; single queries (round
#    robin), codevec_knn (queries shared out) and 8 concurrent clients
#    (batches shared out) equal sequential scans; both devices served.
# 3. One device listed ('0', split forced): today's behaviour, one row, the
#    copy whole (no split with one device), results equal.
# Also, when the kit has the model: embed() on two devices equals the CPU's
# and the model is held on one of them.
# Stops the server at the end (the next script starts it with its own
# settings). Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-200000}
out=${OUT:-/tmp}
lib=/opt/pgkit/usr/lib/x86_64-linux-gnu
bin=/opt/pgkit/usr/lib/postgresql/15/bin
pgstop() { su pg -c "LD_LIBRARY_PATH=$lib $bin/pg_ctl -D /tmp/pgdata -m fast -w stop" >/dev/null 2>&1; }
# start SETTINGS...: the server of test/gpu/setup.sh with these settings
start() { pgstop; set -- "$@"; source "$top/test/gpu/setup.sh"; }

# prewarm off: only the copies this script queries are loaded (the counts
# below), not those of the scripts that ran before
split=$(( (rows + 100 + 2) / 3 ))
start "codevec.gpu_devices='0,0'" "codevec.gpu_split_rows=$split" codevec.gpu_replicate_rate=0 \
	codevec.gpu_prewarm=off
check "the GPU service is ready" "SELECT state FROM codevec_gpu_status()" ready
check "two logical devices on GPU 0" \
	"SELECT string_agg(device || ':' || ordinal, ' ' ORDER BY device) FROM codevec_gpu_devices()" "0:0 1:0"

# data: random rows, exact duplicates of the first 100 at the end (the last
# range: ties across ranges), queries of which 5 equal rows
"$kit/gen" "$rows" 384 42 >/tmp/mg-vec.bin
"$kit/gen" 20 384 7 >/tmp/mg-q.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL || { echo "not ok - data"; tap_result; exit 1; }
DROP TABLE IF EXISTS mt, mq, mexp, mres;
CREATE TABLE mt (id int, emb codevec(384));
CREATE TABLE mq (qid int, emb codevec(384));
\copy mt FROM '/tmp/mg-vec.bin' WITH (FORMAT binary)
\copy mq FROM '/tmp/mg-q.bin' WITH (FORMAT binary)
INSERT INTO mt SELECT id + $rows, emb FROM mt WHERE id <= 100;
UPDATE mq SET emb = (SELECT emb FROM mt WHERE mt.id = mq.qid) WHERE qid <= 5;
VACUUM ANALYZE mt; VACUUM ANALYZE mq;
CREATE INDEX mt_l2 ON mt USING gpuivf (emb codevec_l2_ops);
CREATE INDEX mt_ip ON mt USING gpuivf (emb codevec_ip_ops);
CREATE INDEX mt_cos ON mt USING gpuivf (emb codevec_cosine_ops);
CREATE INDEX mt_ivf_l2 ON mt USING gpuivf (emb codevec_l2_ops) WITH (lists = 40);
CREATE INDEX mt_ivf_cos ON mt USING gpuivf (emb codevec_cosine_ops) WITH (lists = 40);
SQL
rm -f /tmp/mg-vec.bin /tmp/mg-q.bin

# only / same / knn: the exactness checks (test/lib-knn.sh), every list probed
PROBES=40
source "$top/test/lib-knn.sh"

# ---- the encoder on one of the devices (when the kit brought the model)
if [ -f "$(pg_config --sharedir)/extension/codevec_models/default/model.safetensors" ]; then
	check "two devices: embed() on the GPU service equals the CPU encoder (cosine distance < 0.001)" \
		"SET codevec.device = cuda; CREATE TEMP TABLE eg AS SELECT embed('parse the config file and fall back to defaults') e;
		 SET codevec.device = cpu; SELECT (SELECT e FROM eg) <=> embed('parse the config file and fall back to defaults') < 0.001" t
	check "two devices: the model is held on exactly one of them" \
		"SELECT sum(models) || ' ' || count(*) FILTER (WHERE models > 0) FROM codevec_gpu_devices()" "1 1"
else
	echo "# skipped: embed() on two devices (no model in the kit: bench/encoder/run.sh pack makes .gpukit/minilm-f16)"
fi

# ---- 1. split: three ranges on two logical devices
c0=$(gpu_counters)
for pair in 'mt_l2 <->' 'mt_ip <#>' 'mt_cos <=>'; do
	set -- $pair
	for k in 1 10 100 1000; do same "$1" "$2" "$k" "split: "; done
done
for pair in 'mt_ivf_l2 <->' 'mt_ivf_cos <=>'; do
	set -- $pair
	for k in 10 100; do same "$1" "$2" "$k" "split IVF: "; done
done
gpu_answered "split: the index scans" "$c0" 100
knn mt_l2 '<->' 10 "split: "
knn mt_cos '<=>' 100 "split: "
knn mt_ivf_l2 '<->' 10 "split IVF (probes = lists): "
check "split: 5 copies of 3 ranges each, no whole copy, at least 5 ranges on each device" \
	"SELECT sum(ranges) || ' ' || sum(copies) || ' ' || bool_and(ranges >= 5) FROM codevec_gpu_devices()" "15 0 true"
check "split: both devices ran requests and hold memory" \
	"SELECT bool_and(requests > 0 AND held_mb > 0) FROM codevec_gpu_devices()" t
check "split: the status row counts 5 copies" "SELECT indexes_loaded FROM codevec_gpu_status()" 5

# inserts: the delta tier of a split copy (device 0), with new ties
psql -qX -c "INSERT INTO mt SELECT id + 2 * $rows, emb FROM mt WHERE id BETWEEN 101 AND 300" >/dev/null
same mt_l2 '<->' 10 "split + delta: "
same mt_l2 '<->' 1000 "split + delta: "
knn mt_l2 '<->' 100 "split + delta: "
# deletes and VACUUM: masked rows in a split copy
psql -qX -c "DELETE FROM mt WHERE id % 5 = 0" -c "VACUUM mt" >/dev/null
same mt_l2 '<->' 100 "split + masked: "
same mt_cos '<=>' 10 "split + masked: "
knn mt_cos '<=>' 10 "split + masked: "
same mt_ivf_cos '<=>' 10 "split IVF + masked: "

# ---- 2. replication: no split, every copy hot at 1 request a second (the
# IVF indexes dropped: the cosine queries below must use mt_cos)
psql -qX -c "DROP INDEX mt_ivf_l2, mt_ivf_cos" >/dev/null
start "codevec.gpu_devices='0,0'" codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=1 \
	codevec.gpu_prewarm=off
same mt_cos '<=>' 10 "whole: "
check "no split: each copy whole on one device" \
	"SELECT sum(copies) || ' ' || sum(ranges) FROM codevec_gpu_devices()" "1 0"
# 2 s of queries on mt_cos: the rate is measured each second
psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" -c "DO \$\$
	DECLARE t0 timestamptz := clock_timestamp(); x int;
	BEGIN
		WHILE clock_timestamp() - t0 < interval '2.5 s' LOOP
			SELECT id INTO x FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 3) LIMIT 1;
		END LOOP;
	END \$\$" >/dev/null
check "replication: the hot copy has a replica on the other device" \
	"SELECT string_agg(device || ':' || copies || '/' || replicas, ' ' ORDER BY device) FROM codevec_gpu_devices()" "0:1/0 1:0/1"
read -r a0 b0 <<<"$(psql -qAtX -c "SELECT string_agg(requests::text, ' ' ORDER BY device) FROM codevec_gpu_devices()")"
same mt_cos '<=>' 10 "replicated: "
same mt_cos '<=>' 1000 "replicated: "
knn mt_cos '<=>' 10 "replicated (queries shared): "
knn mt_cos '<=>' 100 "replicated (queries shared): "
# 8 concurrent clients: batches of one copy shared among the replicas
psql -qX -c "DROP TABLE IF EXISTS mexp, mres" \
	-c "CREATE TABLE mres (client int, qid int, ids int[])" \
	-c "SET codevec.device = cpu" -c "SET enable_indexscan = off" \
	-c "CREATE TABLE mexp AS SELECT qid, (SELECT array_agg(id) FROM (SELECT id FROM mt ORDER BY emb <=> mq.emb, ctid LIMIT 10) s) ids FROM mq" >/dev/null
clients 10 "$out/mg-client"
wait
check "8 concurrent clients on a replicated copy: 1,600 answers, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "1600 0"
read -r a1 b1 <<<"$(psql -qAtX -c "SELECT string_agg(requests::text, ' ' ORDER BY device) FROM codevec_gpu_devices()")"
check "replication: both devices served requests meanwhile ($a0 -> $a1, $b0 -> $b1)" \
	"SELECT $(( ${a1:-0} > ${a0:-0} && ${b1:-0} > ${b0:-0} ))" 1
psql -X -c "SELECT * FROM codevec_gpu_devices()"

# ---- 3. one device listed: as before codevec.gpu_devices existed
start "codevec.gpu_devices='0'" "codevec.gpu_split_rows=1000" codevec.gpu_replicate_rate=1 \
	codevec.gpu_prewarm=off
check "one device listed: one row" "SELECT count(*) || ' ' || min(ordinal) FROM codevec_gpu_devices()" "1 0"
same mt_l2 '<->' 100 "one device: "
knn mt_ip '<#>' 10 "one device: "
check "one device: the copies whole (no split, no replica with one device)" \
	"SELECT copies || ' ' || ranges || ' ' || replicas FROM codevec_gpu_devices()" "2 0 0"

grep -E "ERROR|FATAL|PANIC|terminated" /tmp/pgdata/server.log | tail -10
cp /tmp/pgdata/server.log "$out/multigpu-server.log" 2>/dev/null
pgstop
tap_result
