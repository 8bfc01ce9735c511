#!/bin/bash
# bench/quality/ood/gpu-run.sh — the GPU step of the out-of-distribution
# evaluation: score model folders on every benchmark of an eval kit and
# write the results and the report under $OUT (default ./ood-out).
#
#   bash bench/quality/ood/gpu-run.sh KIT.json.gz BASELINE_FOLDER [FOLDER...]
#
# Needs python3 with torch, transformers, safetensors, tokenizers and numpy
# (what the H200 host has); no PostgreSQL, no network. Steps:
#   1. selfcheck: 200 kit texts embedded by torch and by the numpy
#      reference (eval-models.py's BERT forward pass), min cosine printed;
#   2. verify (when the first folder is all-MiniLM-L6-v2, the model the
#      kit's small verify database was embedded with): how many queries get
#      code.search's own vector and hybrid top 10 (recorded by make-kit.py);
#   3. every folder on every benchmark: results-ood.json, report-ood.md,
#      and choose.py's decision in choose.md / choose.json.
# A few minutes on one H200 for two models (~95,000 texts each). Folders
# that do not fit one run's carry can run separately and be merged here:
#   eval-models.py KIT --merge a/results-ood.json b/results-ood.json --out all.json
#   choose.py all.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kit=$1; shift
[ $# -ge 1 ] || { sed -n '2,20p' "$0"; exit 2; }
out=${OUT:-./ood-out}
mkdir -p "$out"
py=${PYTHON:-python3}
"$py" -c 'import torch, transformers, safetensors, tokenizers, numpy; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
echo "== selfcheck (torch vs numpy reference)"
"$py" "$here/eval-models.py" "$kit" "$1" --selfcheck 200 --only verify 2>&1 | tee "$out/selfcheck.txt"
case $(basename "$1") in
*all-MiniLM-L6-v2*)
	echo "== verify against code.search (first folder: the model the verify database was embedded with)"
	"$py" "$here/eval-models.py" "$kit" "$1" --verify --out "$out/verify.json" 2>&1 | grep 'same vector' | tee "$out/verify.txt" ;;
*)	echo "== verify skipped: the first folder is not all-MiniLM-L6-v2" ;;
esac
echo "== all benchmarks"
time "$py" "$here/eval-models.py" "$kit" "$@" --out "$out/results-ood.json" > "$out/report-ood.md"
cat "$out/report-ood.md"
"$py" "$here/choose.py" "$out/results-ood.json" --json "$out/choose.json" | tee "$out/choose.md"
