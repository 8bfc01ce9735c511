#!/bin/sh
# Run the kernel benchmark and the PyTorch anchor in one go on the GPU host.
# Results go to ${OUT:-.}: bench.csv, torch.csv, bench.log.
set -e
here=$(dirname "$0")
out=${OUT:-.}
sizes=${SIZES:-100000,1000000,10000000}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/bench.log"
"$here/build/bench_knn" --sizes "$sizes" --nq 1,16,64 --k 10 --reps ${REPS:-50} --csv "$out/bench.csv" 2>&1 | tee -a "$out/bench.log"
PYTHONUNBUFFERED=1 python3 "$here/torch_anchor.py" --sizes "$sizes" --nq 1,16,64 --k 10 --reps ${REPS:-50} --csv "$out/torch.csv" 2>&1 | tee -a "$out/bench.log"
