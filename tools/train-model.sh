#!/usr/bin/env bash
# tools/train-model.sh — make the code-search encoder "code-MiniLM-L6":
# all-MiniLM-L6-v2 fine-tuned on (doc sentence, code) pairs of ~400 Debian
# packages (tools/train-model/), installed beside the other models, so that
#     SET codevec.model = 'code-MiniLM-L6';
# embeds with it.  `make model-code` runs this.
#
# Usage: tools/train-model.sh [--pairs-only] [--no-install] [--stage DIR]
#   --stage DIR  build the pairs, then write what a lent GPU machine needs
#                into DIR (stage.py: the base model in float16, the pairs
#                as xz) instead of training here; on that machine
#                `bash tools/train-model/device.sh DIR [train.py options]`
#                trains and returns the model in 15 MB pieces
# Needs: the extension and codevec-load installed (make && make install),
#        python3 with venv, apt-get (Debian's packages), PyPI.
# Env:   PG_CONFIG, PYTHON (python3), DESTDIR,
#        CODEVEC_TRAIN_CACHE (packages, pairs, venv; default /tmp/codevec-train),
#        CODEVEC_QUALITY_CACHE (the benchmark set, excluded from training),
#        TORCH_INDEX (pip index for torch; default PyPI's, CUDA wheels on
#        Linux; https://download.pytorch.org/whl/cpu for a smaller CPU one),
#        TRAIN_ARGS (more train.py options, e.g. "--epochs 2"; the
#        mixture: --styles, --languages, --idfree, --hard-negatives),
#        PAIRS_ARGS (build-pairs.py pairs options; default --comments: the
#        comment-line pairs are built, train.py's --styles picks them),
#        STAQC (a copy of the StaQC repository: its training split's
#        titles are added as style staqc pairs; bench/quality/ood says how
#        to obtain it).
#
# Steps: the base model (make model), the benchmark set (bench/quality
# build-set.py: its functions and queries are excluded from training), the
# pairs (build-pairs.py pairs: downloads the pinned Debian binary and source
# packages of packages.tsv, about 1 GB), a venv
# with torch + transformers + safetensors (the versions the measured model
# was trained with), train.py (weights saved as F16, as measured), install.
# Time: pairs about 30 min on 2 cores once downloaded (the Linux kernel's
# source is most of it); training under 8 min on one H200 (device.sh),
# hours on a 2-core CPU.  Training on a GPU is not bit-for-bit deterministic: a re-run gives a
# model that scores within noise of the one measured in bench/quality, not
# the same bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
PYTHON=${PYTHON:-python3}
cache=${CODEVEC_TRAIN_CACHE:-/tmp/codevec-train}
export CODEVEC_TRAIN_CACHE=$cache
models="${DESTDIR:-}$("$PG_CONFIG" --sharedir)/extension/codevec_models"
name=code-MiniLM-L6
pairs_only=0 install=1 stage=
while [ $# -gt 0 ]; do
	case $1 in
	--pairs-only) pairs_only=1 ;;
	--no-install) install=0 ;;
	--stage) stage=${2:?--stage needs a folder}; shift ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "train-model: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$cache"

base="$models/all-MiniLM-L6-v2"
[ -f "$base/model.safetensors" ] || bash "$root/tools/fetch-model.sh" all-MiniLM-L6-v2
qcache=${CODEVEC_QUALITY_CACHE:-/tmp/codevec-quality}
# the benchmark corpus of every repo of the manifest (build-pairs checks)
corpus_ok() {
	local r
	for r in $(grep -v '^#' "$root/bench/quality/manifest.tsv" | cut -f1); do
		[ -d "$qcache/corpus/$r" ] || return 1
	done
}
corpus_ok || "$PYTHON" "$root/bench/quality/build-set.py" --out "$cache/queries-check.tsv.gz"
# shellcheck disable=SC2086
[ -f "$cache/pairs.jsonl.gz" ] ||
	"$PYTHON" "$here/train-model/build-pairs.py" pairs --out "$cache/pairs.jsonl.gz" \
		--stats "$cache/pairs-stats.json" ${PAIRS_ARGS---comments}
pairs=$cache/pairs.jsonl.gz
if [ -n "${STAQC:-}" ]; then
	"$PYTHON" "$here/train-model/build-pairs.py" staqc --staqc "$STAQC" --out "$cache/staqc.jsonl.gz"
	"$PYTHON" "$here/train-model/build-pairs.py" merge "$cache/pairs.jsonl.gz" \
		"$cache/staqc.jsonl.gz" --out "$cache/pairs-all.jsonl.gz"
	pairs=$cache/pairs-all.jsonl.gz
fi
[ "$pairs_only" = 1 ] && exit 0
if [ -n "$stage" ]; then
	"$PYTHON" "$here/train-model/stage.py" --base "$base" --pairs "$pairs" --out "$stage"
	echo "train-model: staged in $stage; on the GPU machine: bash tools/train-model/device.sh $stage [train.py options]"
	exit 0
fi

venv=$cache/venv
if ! "$venv/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null; then
	"$PYTHON" -m venv "$venv"
	"$venv/bin/pip" install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} 'torch==2.11.0'
	"$venv/bin/pip" install -q 'transformers==5.17.0' 'safetensors==0.8.0'
fi
out=$cache/$name
rm -rf "$out"
# shellcheck disable=SC2086
"$venv/bin/python" "$here/train-model/train.py" --base "$base" \
	--pairs "$pairs" --out "$out" --dtype float16 ${TRAIN_ARGS:-}
[ "$install" = 1 ] || { echo "train-model: model in $out"; exit 0; }
rm -rf "$models/$name"
mkdir -p "$models"
cp -r "$out" "$models/$name"
echo "train-model: installed $name in $models/$name (SET codevec.model = '$name')"
