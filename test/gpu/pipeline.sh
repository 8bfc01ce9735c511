#!/usr/bin/env bash
# test/gpu/pipeline.sh — double buffering in the GPU service (issue 13,
# item 2): its checks and its measurement in ONE call of at most 9 minutes
# on the CUDA host (as root), after test/gpu/pack.sh and `make -C test/cuda`
# on the development machine (carry .gpukit and test/cuda/build; no model):
#
#   OUT=$OUT bash test/gpu/pipeline.sh       (BUDGET=520 seconds by default)
#
# Parts, each under its own time limit, logs in $OUT/logs, packed at the end
# into $OUT/pipeline.tar.xz (a device call brings back few files):
#   cuda       test_knn --batch (the batch call and its halves started and
#              finished in several orders, against separate calls, bit for
#              bit; fallbacks forced by near-duplicate rows), then
#              compute-sanitizer memcheck on test_knn --quick; in the
#              background while the SQL suites run
#   run        test/gpu/run.sh 50000 (GPU = sequential scan, all opclasses)
#   knn        test/gpu/knn.sh 50000 50 (codevec_knn = per-query scans)
#   pipeline   bench/gpuivf/pipeline.sh 1000000, T=5 (double buffering off
#              and on, 1/16/64 clients; exactness under load; PyTorch)
#   breakdown  bench/gpuivf/breakdown.sh 1000000, T=3 (double buffering on)
# Ends with codevec_gpu_status() / codevec_gpu_stages() and "N passed, N
# failed" over the parts.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/pipeline-out}
logs=$OUT/logs
mkdir -p "$logs"
BUDGET=${BUDGET:-520}
start=$(date +%s)
PART_LOGS=$logs
source "$top/test/gpu/parts.sh"	# left, part

echo "# pipeline: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores, commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# the CUDA checks beside the SQL suites (prebuilt here when carried)
export top logs
setsid bash -c 't0=$(date +%s)
  b="$top/test/cuda/build/test_knn"
  [ -x "$b" ] || make -C "$top/test/cuda" -j8 >"$logs/cuda-build.log" 2>&1
  { CODEVEC_CUDA_TUNE_FILE=/tmp/test-knn-tune "$b" --batch; } >"$logs/cuda.log" 2>&1
  rc=$?
  { CODEVEC_CUDA_NO_AUTOTUNE=1 compute-sanitizer --tool memcheck --error-exitcode 9 "$b" --quick; } >"$logs/memcheck.log" 2>&1
  echo "rc=$rc memcheck_rc=$? wall_s=$(( $(date +%s) - t0 ))" >"$logs/cuda.rc"' &
cuda_pid=$!

t0=$(date +%s)
set --
source "$top/test/gpu/setup.sh" >"$logs/setup.log" 2>&1
echo "RESULT,part,setup,state=$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()"),wall_s=$(( $(date +%s) - t0 ))"

part run 200 bash "$top/test/gpu/run.sh" 50000
part knn 80 bash "$top/test/gpu/knn.sh" 50000 50
part pipeline 200 env T=5 bash "$top/bench/gpuivf/pipeline.sh" 1000000

t0=$(date +%s)
while kill -0 "$cuda_pid" 2>/dev/null && [ "$(left)" -gt 140 ]; do sleep 1; done
if [ -f "$logs/cuda.rc" ]; then
	grep -E '^(FAIL|RESULT|[0-9]+ checks|batch |pipeline )' "$logs/cuda.log" | head -40
	grep -E 'ERROR SUMMARY|^RESULT' "$logs/memcheck.log" | head -5
	echo "RESULT,part,cuda,$(cat "$logs/cuda.rc")"
	grep -q '^rc=0 memcheck_rc=0 ' "$logs/cuda.rc" && parts_passed=$((parts_passed + 1)) || parts_failed=$((parts_failed + 1))
else
	kill -- -"$cuda_pid" 2>/dev/null
	echo "RESULT,part,cuda,not finished (waited $(( $(date +%s) - t0 ))s more); tail:"; tail -5 "$logs/cuda.log" "$logs/memcheck.log" 2>/dev/null
	parts_failed=$((parts_failed + 1))
fi

part breakdown 130 env T=3 bash "$top/bench/gpuivf/breakdown.sh" 1000000

psql -X -x -c "SELECT * FROM codevec_gpu_status()" >"$logs/status.log" 2>&1
psql -X -c "SELECT * FROM codevec_gpu_stages()" >>"$logs/status.log" 2>&1
cp /tmp/pgdata/server.log "$logs/server.log" 2>/dev/null
echo "RESULT,total,wall_s=$(( $(date +%s) - start ))"
echo "$parts_passed passed, $parts_failed failed"
tar -C "$OUT" -cJf "$OUT/pipeline.tar.xz" logs && rm -rf "$logs"
[ "$parts_failed" -eq 0 ]
