#!/usr/bin/env bash
# test/gpu/gpuspeed.sh — issue 13's GPU checks and measurements in ONE call
# of at most 9 minutes on the CUDA host (as root), after test/gpu/pack.sh on
# the development machine (carry .gpukit/; no model needed):
#
#   bash test/gpu/gpuspeed.sh            (BUDGET=520 seconds by default)
#
# Parts, in order, each under its own time limit (a part that would not fit
# what is left of BUDGET is skipped and said so), each part's whole output
# in $OUT/<part>.log, its RESULT and summary lines here, its wall time on a
# RESULT,part line:
#   cuda       make -C test/cuda, then test_knn --quick (includes the batch
#              call's checks: nq 1..256 against separate calls, bit for bit),
#              in the background while the SQL suites run
#   run        test/gpu/run.sh 50000 (GPU = sequential scan, all opclasses)
#   knn        test/gpu/knn.sh 50000 50 (codevec_knn = per-query scans)
#   breakdown  bench/gpuivf/breakdown.sh 1000000, T=3 (stages at 1 and 16
#              clients, codevec_gpu_stages(), PyTorch's matmul + topk)
#   prewarm    test/gpu/prewarm.sh 1000000 (restart, prewarm, first query)
#   compare    bench/gpuivf/compare.sh random 1000000 (flat only: NOIVF=1,
#              T=4), then the same query at 64 clients
# Ends with the server's codevec_gpu_status() and codevec_gpu_stages(), its
# log (server.log), and "N passed, N failed" over the parts' own results.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/gpuspeed}
mkdir -p "$OUT"
BUDGET=${BUDGET:-520}
start=$(date +%s)
PART_LOGS=$OUT
source "$top/test/gpu/parts.sh"	# left, part

echo "# gpuspeed: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores, commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# the CUDA unit checks build and run beside the SQL suites (CPU compile, small GPU use)
export top OUT
setsid bash -c 't0=$(date +%s)
  { make -C "$top/test/cuda" -j4 && CODEVEC_CUDA_TUNE_FILE=/tmp/test-knn-tune "$top/test/cuda/build/test_knn" --quick; } >"$OUT/cuda.log" 2>&1
  echo "rc=$? wall_s=$(( $(date +%s) - t0 ))" >"$OUT/cuda.rc"' &
cuda_pid=$!

t0=$(date +%s)
set --
source "$top/test/gpu/setup.sh" >"$OUT/setup.log" 2>&1
echo "RESULT,part,setup,state=$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()"),wall_s=$(( $(date +%s) - t0 ))"

part run 200 bash "$top/test/gpu/run.sh" 50000
part knn 80 bash "$top/test/gpu/knn.sh" 50000 50

# the CUDA checks must be done before the timings
t0=$(date +%s)
while kill -0 "$cuda_pid" 2>/dev/null && [ "$(left)" -gt 310 ]; do sleep 1; done
if [ -f "$OUT/cuda.rc" ]; then
	grep -E '^(FAIL|RESULT|[0-9]+ checks|batch )' "$OUT/cuda.log" | head -40
	echo "RESULT,part,cuda,$(cat "$OUT/cuda.rc")"
	grep -q '^rc=0 ' "$OUT/cuda.rc" && parts_passed=$((parts_passed + 1)) || parts_failed=$((parts_failed + 1))
else
	kill -- -"$cuda_pid" 2>/dev/null	# its own session and process group (setsid)
	echo "RESULT,part,cuda,not finished (waited $(( $(date +%s) - t0 ))s more); tail:"; tail -5 "$OUT/cuda.log"
	parts_failed=$((parts_failed + 1))
fi

part breakdown 130 env T=3 bash "$top/bench/gpuivf/breakdown.sh" 1000000
part prewarm 90 bash "$top/test/gpu/prewarm.sh" 1000000
compare() {
	NOIVF=1 CHECKQ=5 CPU16= T=4 bash "$top/bench/gpuivf/compare.sh" random 1000000 || return $?
	printf '\\set q random(1, 1000)\nSELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = :q) LIMIT 10;\n' >/tmp/c64.sql
	psql -qX -c "DROP TABLE IF EXISTS stages64" -c "CREATE TABLE stages64 AS SELECT s.*, g.requests AS all_requests, g.batches AS all_batches FROM codevec_gpu_stages() s, codevec_gpu_status() g" >/dev/null
	out=$(PGOPTIONS="-c codevec.device=cuda" pgbench -n -M prepared -c 64 -j 16 -T 4 -f /tmp/c64.sql postgres 2>&1)
	echo "RESULT,codevec_flat_gpu,clients=64,qps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1),latency_avg_ms=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')"
	# inside the service at 64 clients: requests per launch, then each stage per timing / per request
	psql -qAtX -c "SELECT DISTINCT 'RESULT,stages64,mean_batch=' || round((g.requests - z.all_requests)::numeric / nullif(g.batches - z.all_batches, 0), 2) FROM codevec_gpu_status() g, stages64 z"
	psql -qAtX -c "SELECT 'RESULT,stages64,stage=' || s.stage || ',timings=' || (s.timings - z.timings) || ',per_timing_us=' || round(((s.total_us - z.total_us) / (s.timings - z.timings))::numeric, 1) || ',per_request_us=' || round(((s.total_us - z.total_us) / nullif(s.requests - z.requests, 0))::numeric, 1) FROM codevec_gpu_stages() s JOIN stages64 z USING (stage) WHERE s.timings > z.timings"
}
export -f compare
part compare 90 bash -c compare

psql -X -x -c "SELECT * FROM codevec_gpu_status()" >"$OUT/status.log" 2>&1
psql -X -c "SELECT * FROM codevec_gpu_stages()" >>"$OUT/status.log" 2>&1
cat "$OUT/status.log"
cp /tmp/pgdata/server.log "$OUT/server.log" 2>/dev/null
echo "RESULT,total,wall_s=$(( $(date +%s) - start ))"
echo "$parts_passed passed, $parts_failed failed"
[ "$parts_failed" -eq 0 ]
