#!/usr/bin/env bash
# test/gpu/int8scan.sh — the int8 first pass of cuda/knn.cu (cuda/knn_i8.h)
# on a CUDA host, no PostgreSQL needed: builds test/cuda/build/test_knn and
# bench/kernels/build/bench_knn from the tree (make skips what is up to
# date), then
#   1. test/c/i8bound_test: the bound on the CPU (random and adversarial rows);
#   2. test_knn with CODEVEC_KNN_INT8=1 (int8 codes on every fp16 index, every
#      call through the int8 pass, the int8 variants on every case: same ids,
#      bit-identical distances as the canonical CPU scan);
#   3. compute-sanitizer memcheck on test_knn --quick with int8 forced;
#   4. bench_knn fp16 vs int8 at 1M and 10M rows x 384, cosine, k 10,
#      nq 1, 2, 16 (the tuner's configurations, from step 2's tune file);
#   5. test_knn with the routing left to the autotuner (int8 where measured
#      faster for single queries).
# Each step has a time limit, cut so that the whole script ends within
# 490 s (later steps keep a reserve; the auto run gets what is left). Everything goes into ONE
# file, $OUT/int8.tar.xz (logs, the bench CSV, the tune file), plus a short
# $OUT/summary.txt: per step its exit status and result lines.
#
#   OUT=/some/dir bash test/gpu/int8scan.sh
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/int8scan-out}
work=$(mktemp -d /tmp/int8scan.XXXXXX)
mkdir -p "$out"
export PATH=/usr/local/cuda/bin:$PATH
export CODEVEC_CUDA_TUNE_FILE=$work/tune.txt
t0=$(date +%s)
sum=$work/summary.txt

note() { echo "$*" | tee -a "$sum"; }
# lim CAP RESERVE: CAP seconds, or fewer so that RESERVE seconds remain before 490
lim() {
	local left=$(( 490 - ($(date +%s) - t0) - $2 ))
	[ $left -lt $1 ] && echo $(( left > 10 ? left : 10 )) || echo $1
}
# step NAME LIMIT CMD...: run with a time limit, log to $work/NAME.log
step() {
	local name=$1 limit=$2 rc s
	shift 2
	s=$(date +%s)
	timeout -k 5 "$limit" "$@" >"$work/$name.log" 2>&1
	rc=$?
	note "== $name: exit $rc in $(( $(date +%s) - s )) s$([ $rc = 124 ] && echo ' (TIME LIMIT)')"
	return $rc
}
finish() {
	note "total $(( $(date +%s) - t0 )) s"
	cp "$sum" "$out/summary.txt"
	# xz through tar, or through Python's lzma where tar has no xz
	tar -C "$work" -cJf "$out/int8.tar.xz" . 2>/dev/null ||
		tar -C "$work" -cf - . | python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.compress(sys.stdin.buffer.read()))' >"$out/int8.tar.xz"
	rm -rf "$work"
}
trap finish EXIT

{
	echo "commit $(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)"
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
	nvcc --version 2>&1 | tail -1
} | tee -a "$sum"

# build (skips what is up to date: binaries carried from a build of this tree)
step build "$(lim 150 300)" bash -c "make -C '$top/test/cuda' build/test_knn && make -C '$top/bench/kernels' &&
	gcc -O2 -Wall -ffp-contract=off -I'$top/cuda' -o '$work/i8bound_test' '$top/test/c/i8bound_test.c' -lm" ||
	exit 1
tk=$top/test/cuda/build/test_knn
bk=$top/bench/kernels/build/bench_knn

step i8bound "$(lim 30 290)" "$work/i8bound_test"
grep -E "^i8bound|^RESULT" "$work/i8bound.log" | tee -a "$sum"

step test_knn_forced "$(lim 170 230)" env CODEVEC_KNN_INT8=1 "$tk" --seed 20261204
grep -E "^int8 first pass|^ok-ish .*int8|checks, .* failures|^RESULT|^FAIL" "$work/test_knn_forced.log" | head -40 | tee -a "$sum"

san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
step memcheck "$(lim 60 170)" env CODEVEC_KNN_INT8=1 CODEVEC_CUDA_NO_AUTOTUNE=1 "$san" --tool memcheck --error-exitcode 9 "$tk" --quick --seed 7
grep -E "ERROR SUMMARY|^RESULT|^int8 first pass" "$work/memcheck.log" | tee -a "$sum"

# the tuner's choice for 384 dims comes from step 2's tune file; bench it again if absent
skip=()
grep -q " 384 " "$work/tune.txt" 2>/dev/null && skip=(BENCH_SKIP_TUNE=1)
step bench "$(lim 110 60)" env "${skip[@]}" "$bk" --sizes 1000000,10000000 --dim 384 --nq 1,2,16 --k 10 \
	--reps 20 --precs fp16,int8 --csv "$work/bench.csv"
grep -E "^(1000000|10000000) " "$work/bench.log" | tee -a "$sum"

step test_knn_auto "$(lim 300 5)" "$tk" --seed 20261205
grep -E "^int8    1|storage precision|^int8 first pass|checks, .* failures|^RESULT|^FAIL" "$work/test_knn_auto.log" | head -20 | tee -a "$sum"
