#!/usr/bin/env bash
# tools/train-model.sh — make the code-search encoder "code-MiniLM-L6":
# all-MiniLM-L6-v2 fine-tuned on (doc sentence, code) pairs of ~400 Debian
# packages (tools/train-model/), installed beside the other models, so that
#     SET codevec.model = 'code-MiniLM-L6';
# embeds with it.  `make model-code` runs this.
#
# Usage: tools/train-model.sh [--pairs-only] [--no-install]
# Needs: the extension and codevec-load installed (make && make install),
#        python3 with venv, apt-get (Debian's packages), PyPI.
# Env:   PG_CONFIG, PYTHON (python3), DESTDIR,
#        CODEVEC_TRAIN_CACHE (packages, pairs, venv; default /tmp/codevec-train),
#        CODEVEC_QUALITY_CACHE (the benchmark set, excluded from training),
#        TORCH_INDEX (pip index for torch; default PyPI's, CUDA wheels on
#        Linux; https://download.pytorch.org/whl/cpu for a smaller CPU one),
#        TRAIN_ARGS (more train.py options, e.g. "--epochs 2").
#
# Steps: the base model (make model), the benchmark set (bench/quality
# build-set.py: its functions and queries are excluded from training), the
# pairs (build-pairs.py pairs: downloads 403 pinned .debs, ~220 MB), a venv
# with torch + transformers + safetensors (the versions the measured model
# was trained with), train.py (weights saved as F16, as measured), install.
# Time: pairs ~3-5 min; training ~2.5 min on one H200, hours on a 2-core
# CPU.  Training on a GPU is not bit-for-bit deterministic: a re-run gives a
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
pairs_only=0 install=1
for a in "$@"; do
	case $a in
	--pairs-only) pairs_only=1 ;;
	--no-install) install=0 ;;
	-h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "train-model: unknown option $a (see --help)" >&2; exit 2 ;;
	esac
done
mkdir -p "$cache"

base="$models/all-MiniLM-L6-v2"
[ -f "$base/model.safetensors" ] || bash "$root/tools/fetch-model.sh" all-MiniLM-L6-v2
qcache=${CODEVEC_QUALITY_CACHE:-/tmp/codevec-quality}
[ -d "$qcache/corpus" ] || "$PYTHON" "$root/bench/quality/build-set.py" --out "$cache/queries-check.tsv.gz"
[ -f "$cache/pairs.jsonl.gz" ] ||
	"$PYTHON" "$here/train-model/build-pairs.py" pairs --out "$cache/pairs.jsonl.gz" \
		--stats "$cache/pairs-stats.json"
[ "$pairs_only" = 1 ] && exit 0

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
	--pairs "$cache/pairs.jsonl.gz" --out "$out" --dtype float16 ${TRAIN_ARGS:-}
[ "$install" = 1 ] || { echo "train-model: model in $out"; exit 0; }
rm -rf "$models/$name"
mkdir -p "$models"
cp -r "$out" "$models/$name"
echo "train-model: installed $name in $models/$name (SET codevec.model = '$name')"
