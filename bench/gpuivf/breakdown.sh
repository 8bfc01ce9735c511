#!/usr/bin/env bash
# bench/gpuivf/breakdown.sh — where one exact GPU query's time goes (issue 13,
# item 1). On the CUDA host, as root, after test/gpu/pack.sh (kit as for
# test/gpu/run.sh):
#
#   bash bench/gpuivf/breakdown.sh [ROWS]        (default 1,000,000 random, 384 dims)
#
# Each stage is one statement run by pgbench -M prepared (T seconds, default
# 8) at 1 and 16 clients; a stage's cost is its latency minus the stage
# before it, so the table reads as a sum:
#   select1   SELECT 1: protocol, parse/bind/execute of a trivial plan
#   qvec      reading the query vector (SELECT emb FROM q WHERE qid = :q)
#   ping      codevec_gpu_ping(1): a backend's empty request through the
#             service's slots, latches and batching window (no GPU work)
#   tiny      the gpuivf scan on a 1,000-row table with the GPU: planner,
#             index scan start-up, posting, a kernel on 1,000 rows, the
#             answer, candidate rows fetched and re-ranked in the backend
#   full      the same on ROWS rows: the difference to tiny is the cost
#             that grows with the rows (kernel bytes)
# Inside the service, for the ping, tiny and full stages at 1 and 16
# clients: codevec_gpu_stages()'s deltas over the run (queue, attach, the
# k-NN group's gather, enqueue, H2D, kernels, candidate rows, D2H, wait,
# answer, detach, wake, whole batch: per timing and per request, in us;
# device stages from CUDA events), as RESULT,stages lines and a table.
# plus EXPLAIN ANALYZE's planning and execution time of the full query
# (mean of 50), the service's requests per launch in each stage (mean
# batch, from codevec_gpu_status() deltas), and PyTorch's q @ X.T + topk on
# the same GPU with the HBM floor (compare.sh torch).
# Output: RESULT,... lines (machine-readable) and a Markdown table.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-1000000}
T=${T:-8}
work=/tmp/breakdown; mkdir -p "$work"; chmod 755 "$work"
. "$top/bench/gpuivf/lib.sh"	# pctl, stages_snap
source "$top/test/gpu/setup.sh" max_worker_processes=32
echo "# breakdown: $n random rows x 384, GPU $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()"), $(nproc) cores, T=${T}s"

psql -qX -c "DROP TABLE IF EXISTS t, t1k, q" -c "CREATE TABLE t (id int, emb codevec(384))" \
	-c "CREATE TABLE q (qid int, emb codevec(384))" >/dev/null
"$top/.gpukit/gen" "$n" 384 42 >"$work/v.bin"
"$top/.gpukit/gen" 1000 384 7 >"$work/q.bin"
psql -qX -c "\\copy t FROM '$work/v.bin' WITH (FORMAT binary)" -c "\\copy q FROM '$work/q.bin' WITH (FORMAT binary)" >/dev/null
rm -f "$work/v.bin"
psql -qX -c "CREATE TABLE t1k AS SELECT * FROM t WHERE id <= 1000" -c "CREATE INDEX ON q (qid)" \
	-c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)" \
	-c "CREATE INDEX t1k_flat ON t1k USING gpuivf (emb codevec_cosine_ops)" \
	-c "VACUUM ANALYZE t" -c "VACUUM ANALYZE t1k" -c "VACUUM ANALYZE q" >/dev/null
for tb in t t1k; do	# load both copies on the device
	psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM $tb ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 1) LIMIT 10" >/dev/null
done

counters() { psql -qAtX -F ' ' -c "SELECT requests, batches FROM codevec_gpu_status()"; }
declare -A P50 QPS MB ST
# stages_delta NAME CLIENTS: codevec_gpu_stages() over a run (since stages_snap)
stages_delta() {
	local line
	while IFS='|' read -r st dev tm rq per_t per_r; do
		echo "RESULT,stages,$1,clients=$2,stage=$st,device=$dev,timings=$tm,requests=$rq,per_timing_us=$per_t,per_request_us=$per_r"
		ST[$1,$2,$st]="$per_t / $per_r"
	done < <(psql -qAtX -c "
		SELECT s.stage, s.on_device, s.timings - z.timings, s.requests - z.requests,
		       round(((s.total_us - z.total_us) / nullif(s.timings - z.timings, 0))::numeric, 1),
		       round(((s.total_us - z.total_us) / nullif(s.requests - z.requests, 0))::numeric, 1)
		FROM codevec_gpu_stages() s JOIN stages0 z USING (stage)
		WHERE s.timings > z.timings")
}
stage() {	# stage NAME SQL
	local name=$1 sql=$2 c out r0 b0 r1 b1 p50 p99 qps
	printf '\\set q random(1, 1000)\n%s\n' "$sql" >"$work/b.sql"
	for c in 1 16; do
		rm -f "$work"/pgb.*
		read -r r0 b0 <<<"$(counters)"
		stages_snap
		out=$(PGOPTIONS="-c codevec.device=cuda" pgbench -n -M prepared -c "$c" -j "$c" -T "$T" -f "$work/b.sql" -l --log-prefix="$work/pgb" postgres 2>&1)
		read -r r1 b1 <<<"$(counters)"
		case $name in ping|tiny|full) stages_delta "$name" "$c" ;; esac
		read -r p50 p99 <<<"$(pctl "$work"/pgb.*)"
		qps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1)
		local mb=-
		[ $((b1 - b0)) -gt 0 ] && mb=$(awk -v r=$((r1 - r0)) -v b=$((b1 - b0)) 'BEGIN {printf "%.2f", r / b}')
		P50[$name,$c]=$p50; QPS[$name,$c]=$qps; MB[$name,$c]=$mb
		echo "RESULT,$name,clients=$c,qps=$qps,p50_us=$p50,p99_us=$p99,service_requests=$((r1 - r0)),launches=$((b1 - b0)),mean_batch=$mb"
	done
}
QV="(SELECT emb FROM q WHERE qid = :q)"
stage select1 "SELECT 1;"
stage qvec "SELECT emb FROM q WHERE qid = :q;"
stage ping "SELECT codevec_gpu_ping(1);"
stage tiny "SELECT id FROM t1k ORDER BY emb <=> $QV LIMIT 10;"
stage full "SELECT id FROM t ORDER BY emb <=> $QV LIMIT 10;"

# planning vs execution inside the backend (EXPLAIN ANALYZE, 50 queries)
read -r plan exec <<<"$(psql -qAtX -c "SET codevec.device = cuda" -c "
DO \$\$
DECLARE l text; p float8 := 0; e float8 := 0; i int;
BEGIN
  FOR i IN 1..50 LOOP
    FOR l IN EXECUTE format('EXPLAIN (ANALYZE, SUMMARY) SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = %s) LIMIT 10', i) LOOP
      IF l LIKE 'Planning Time:%' THEN p := p + split_part(l, ' ', 3)::float8; END IF;
      IF l LIKE 'Execution Time:%' THEN e := e + split_part(l, ' ', 3)::float8; END IF;
    END LOOP;
  END LOOP;
  RAISE NOTICE '% %', round((p / 50 * 1000)::numeric), round((e / 50 * 1000)::numeric);
END \$\$" 2>&1 | sed -n 's/.*NOTICE: *//p')"
echo "RESULT,explain,planning_us=$plan,execution_us=$exec"
torch=$(bash "$top/bench/gpuivf/compare.sh" torch "$n" 2>&1 | grep '^RESULT')
echo "$torch"

d() { echo $(( ${P50[$1,$3]:-0} - ${P50[$2,$3]:-0} )); }
cat <<MD

| stage (what it adds) | 1 client p50 us | adds us | 16 clients QPS | 16 clients p50 us | mean batch (16) |
|---|---:|---:|---:|---:|---:|
| SELECT 1 (protocol, executor) | ${P50[select1,1]} | ${P50[select1,1]} | ${QPS[select1,16]} | ${P50[select1,16]} | - |
| + read the query vector | ${P50[qvec,1]} | $(d qvec select1 1) | ${QPS[qvec,16]} | ${P50[qvec,16]} | - |
| service round trip, empty (ping) | ${P50[ping,1]} | $(d ping select1 1) | ${QPS[ping,16]} | ${P50[ping,16]} | ${MB[ping,16]} |
| gpuivf scan, 1,000 rows (fixed cost of the GPU path) | ${P50[tiny,1]} | $(d tiny qvec 1) | ${QPS[tiny,16]} | ${P50[tiny,16]} | ${MB[tiny,16]} |
| gpuivf scan, $n rows | ${P50[full,1]} | $(d full tiny 1) | ${QPS[full,16]} | ${P50[full,16]} | ${MB[full,16]} |

EXPLAIN ANALYZE of the $n-row query (mean of 50): planning $plan us, execution $exec us.

Inside the service (codevec_gpu_stages() over each run): microseconds per timing / per request.
A timing is once per batch (queue: per request; knn ...: per k-NN call on one copy, which is
the whole batch when its requests share the copy). Device rows are CUDA event intervals.

| stage | ping, 1 | ping, 16 | 1,000 rows, 1 | 1,000 rows, 16 | $n rows, 1 | $n rows, 16 |
|---|---:|---:|---:|---:|---:|---:|
MD
for st in queue window attach "knn gather" "knn enqueue" "knn h2d" "knn kernels" "knn candidates" \
	"knn d2h" "knn wait" "knn fallback" "knn answer" knn run detach wake batch; do
	echo "| $st | ${ST[ping,1,$st]:--} | ${ST[ping,16,$st]:--} | ${ST[tiny,1,$st]:--} | ${ST[tiny,16,$st]:--} | ${ST[full,1,$st]:--} | ${ST[full,16,$st]:--} |"
done
