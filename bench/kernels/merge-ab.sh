# The k-NN merge (phase 2) in one launch (CODEVEC_KNN_MERGE=1) against two
# (the segments of KnnMerge, cuda/knn.cu), alternated, on a GPU host:
# test_knn --quick first (exactness of the build), then bench_knn at 785,000
# rows (the Linux tree's size; k 128 is what hybrid code.search's vector list
# asks for) and 1,000,000 rows (issue 13's size), fp16, cosine.
#   make -C test/cuda build/test_knn && make -C bench/kernels   (here or there)
#   OUT=/tmp/out bash bench/kernels/merge-ab.sh
set -u
cd "$(dirname "$0")/../.."
mkdir -p "${OUT:=/tmp/merge-ab}"
export CODEVEC_CUDA_TUNE_FILE=/tmp/tune.txt
tk=test/cuda/build/test_knn; bk=bench/kernels/build/bench_knn
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
s=$(date +%s); timeout 150 $tk --quick > $OUT/test_knn_quick.log 2>&1; echo "test_knn --quick rc=$? $(( $(date +%s) - s )) s"
grep -E "checks|FAIL|RESULT" $OUT/test_knn_quick.log | tail -4
run() { CODEVEC_KNN_MERGE=$1 timeout 30 $bk --sizes $2 --nq $3 --k $4 --reps 20 --precs fp16 2>&1 | grep -E "^[0-9]+ +fp16" | sed "s/^/merge=$1 k=$4 /"; }
for r in 1 2; do for m in 1 2; do
  run $m 785000 1,4,8,16 128; run $m 785000 4,16 10; run $m 1000000 1,16,64 10
done; done | tee $OUT/bench.txt
