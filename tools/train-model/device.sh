#!/usr/bin/env bash
# tools/train-model/device.sh — one training run on a lent GPU machine (the
# H200), from the repository root there, with what stage.py made here:
#
#   bash tools/train-model/device.sh STAGE [train.py options...]
#
# STAGE (a folder the call carries, e.g. .train) holds base/ (the float16
# base model) and pairs.jsonl.xz.  The script checks torch sees a GPU,
# unpacks the pairs, runs train.py (the options given are passed on; a
# --max-seconds of 420 is added unless one is given, so that the whole
# run, mining included, ends within 8 minutes), and writes under $OUT:
#   train.log                 the run's output (also in the tar)
#   model.tar.part-00..NN     the model folder (float16 safetensors,
#                             tokenizer, config, pooling) and train-log.json,
#                             as one tar split in 15 MB pieces
#   SHA256SUMS                of the pieces and of the whole tar
# Re-assembly here, in the folder the pieces came back to:
#   sha256sum -c SHA256SUMS --ignore-missing && cat model.tar.part-* | tar -x
# gives code-model/ (the model folder) with train-log.json in it.
#
# Base and pairs may come in two calls (one call carries at most 64 MiB,
# the repository included): the first carries STAGE/base only and runs
# `bash tools/train-model/device.sh STAGE --check`; the second, on the same
# machine while it is still held, carries STAGE/pairs.jsonl.xz only.
set -euo pipefail

stage=${1:?usage: device.sh STAGE [train.py options...]}
shift
out=${OUT:-/tmp/train-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# keep NVLink multicast off (the lent machines' rule)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

python3 -c 'import torch, transformers, safetensors
print("torch", torch.__version__, "transformers", transformers.__version__,
      "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'
[ -f "$stage/base/model.safetensors" ] || { echo "device.sh: $stage/base/model.safetensors missing" >&2; exit 2; }
if [ "${1:-}" = --check ]; then
	ls -la "$stage" "$stage/base"
	exit 0
fi
[ -f "$stage/pairs.jsonl.xz" ] || { echo "device.sh: $stage/pairs.jsonl.xz missing" >&2; exit 2; }

work=$(mktemp -d /tmp/train.XXXXXX)
xz -dc "$stage/pairs.jsonl.xz" | gzip -1 > "$work/pairs.jsonl.gz"
args=("$@")
case " $* " in *" --max-seconds "*) ;; *) args+=(--max-seconds 420) ;; esac
t0=$(date +%s)
set +e
python3 tools/train-model/train.py --base "$stage/base" --pairs "$work/pairs.jsonl.gz" \
	--out "$work/code-model" --dtype float16 "${args[@]}" 2>&1 | tee "$out/train.log"
rc=${PIPESTATUS[0]}
set -e
echo "device.sh: train.py exit $rc after $(( $(date +%s) - t0 )) s" | tee -a "$out/train.log"
[ "$rc" -eq 0 ] || exit "$rc"
cp "$out/train.log" "$work/code-model/train.log"
tar -C "$work" -cf "$work/model.tar" code-model
split -b 15000000 -d -a 2 "$work/model.tar" "$out/model.tar.part-"
(cd "$out" && sha256sum model.tar.part-* > SHA256SUMS &&
	echo "$(sha256sum < "$work/model.tar" | cut -d' ' -f1)  model.tar" >> SHA256SUMS)
ls -la "$out"
rm -rf "$work"
