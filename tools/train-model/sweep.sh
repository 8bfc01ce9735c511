#!/usr/bin/env bash
# tools/train-model/sweep.sh — several training mixtures at once on one lent
# GPU (the H200 runs a MiniLM-L6 fine-tune far below its capacity, so
# concurrent runs cost little more wall time than one):
#
#   bash tools/train-model/sweep.sh BASE PAIRS.jsonl.xz OUTROOT SECONDS \
#        NAME1 "train.py options" [NAME2 "options" ...]
#
# Each NAME trains from BASE (a float16 sentence-transformers folder) on the
# pairs with its own options, with --max-seconds SECONDS, into OUTROOT/NAME
# (a complete model folder with train-log.json); the logs go to
# $OUT/train-NAME.log.  The folders stay on the machine (OUTROOT under an
# ignored path such as .gpukit/ survives between back-to-back calls), so the
# next call can score them (bench/quality/ood/eval-models.py) and bring the
# chosen one back (tar in 15 MB pieces, as device.sh does).
#
# A NAME whose OUTROOT/NAME/train-log.json exists is kept, not trained
# again (train.py writes that file last, once the run has ended), so a call
# that ran out of time after training can be repeated to do what follows
# it; remove the folder to train that NAME again.
set -euo pipefail
base=${1:?usage: sweep.sh BASE PAIRS.jsonl.xz OUTROOT SECONDS NAME OPTIONS ...}
pairs=$2 outroot=$3 secs=$4
shift 4
out=${OUT:-/tmp/sweep-out}
mkdir -p "$out" "$outroot"
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/sweep.XXXXXX)
pids=()
names=()
while [ $# -ge 2 ]; do
	name=$1 opts=$2
	shift 2
	if [ -f "$outroot/$name/train-log.json" ]; then
		echo "sweep.sh: $name already trained ($outroot/$name/train-log.json), kept"
		continue
	fi
	# the pairs are unpacked once, for the first NAME that trains
	[ -f "$work/pairs.jsonl.gz" ] || xz -dc "$pairs" | gzip -1 > "$work/pairs.jsonl.gz"
	# shellcheck disable=SC2086  # the options are words for train.py
	python3 "$here/train.py" --base "$base" --pairs "$work/pairs.jsonl.gz" \
		--out "$outroot/$name" --dtype float16 --max-seconds "$secs" $opts \
		> "$out/train-$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
done
rc=0
for i in "${!pids[@]}"; do
	if wait "${pids[$i]}"; then
		echo "sweep.sh: ${names[$i]} done: $(grep -E '^chosen' "$out/train-${names[$i]}.log" | tail -1)"
	else
		echo "sweep.sh: ${names[$i]} failed (see train-${names[$i]}.log)"; rc=1
	fi
done
rm -rf "$work"
exit $rc
