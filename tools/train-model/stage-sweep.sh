#!/usr/bin/env bash
# tools/train-model/stage-sweep.sh — everything a training sweep on the lent
# H200 needs, made here, in pieces that fit the calls (issue 27):
#
#   bash tools/train-model/stage-sweep.sh OUTDIR BASE PAIRS KIT [SO_PAIRS]
#
#   BASE      the float16 all-MiniLM-L6-v2 folder (stage.py's base/, 45 MB)
#   PAIRS     the package pairs (build-pairs.py pairs --comments; gz or xz)
#   KIT       the eval kit (bench/quality/ood/make-kit.py), with its staqc
#             group when StaQC was obtained
#   SO_PAIRS  optional: build-pairs.py staqc's pairs (style so)
#
# Steps: build-pairs.py merge PAIRS [SO_PAIRS] --exclude-ood
# $CODEVEC_OOD_CACHE (CoSQA's code base, StaQC's dev/test snippets and the
# hand-written repositories' code and every query of theirs left out of
# training; counts in OUTDIR/exclude-ood.json), xz; then pieces.sh split of
# BASE, the pairs and KIT into OUTDIR/pc/pNN, each small enough for one call
# beside the working tree (64 MiB in all, less the size of the tracked
# files, less 512 KiB of slack); prints the calls to make, in order.
# OUTDIR must be under an ignored path of the repository (.gpukit/).
set -euo pipefail
out=${1:?usage: stage-sweep.sh OUTDIR BASE PAIRS KIT [SO_PAIRS]}
base=$2 pairs=$3 kit=$4 so=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ood=${CODEVEC_OOD_CACHE:-/tmp/codevec-ood}
[ -f "$base/model.safetensors" ] || { echo "stage-sweep.sh: $base/model.safetensors missing" >&2; exit 2; }
[ -f "$kit" ] || { echo "stage-sweep.sh: $kit missing" >&2; exit 2; }
[ -f "$ood/cosqa.json" ] || { echo "stage-sweep.sh: $ood/cosqa.json missing (bench/quality/ood/fetch.py cosqa)" >&2; exit 2; }
mkdir -p "$out"
rel=$(realpath --relative-to="$root" "$out")
case $rel in ../*) echo "stage-sweep.sh: $out is not inside the repository" >&2; exit 2 ;; esac
git -C "$root" check-ignore -q "$rel" || { echo "stage-sweep.sh: $rel is not ignored by git" >&2; exit 2; }
mkdir -p "$out/work"
python3 "$here/build-pairs.py" merge "$pairs" ${so:+"$so"} --exclude-ood "$ood" \
	--out "$out/work/pairs.jsonl.gz" --stats "$out/exclude-ood.json"
gzip -dc "$out/work/pairs.jsonl.gz" | xz -9 -T2 > "$out/work/pairs.jsonl.xz"
rm "$out/work/pairs.jsonl.gz"
cp "$kit" "$out/work/kit.json.gz"
rm -rf "$out/work/all-MiniLM-L6-v2"
# named so: eval-models.py and choose.py take it for the baseline by its name
cp -r "$base" "$out/work/all-MiniLM-L6-v2"
# (a tracked file moved aside, e.g. models/*/model.safetensors for the
# calls that do not need it, is not sent and does not count)
tree=$(git -C "$root" ls-files -z | (cd "$root" && du --files0-from=- -cb 2>/dev/null || true) | tail -1 | cut -f1)
max=$((64 * 1024 * 1024 - tree - 512 * 1024))
[ "$max" -gt 1000000 ] || { echo "stage-sweep.sh: the tracked files ($tree bytes) leave no room to carry" >&2; exit 1; }
bash "$here/pieces.sh" split "$out/pc" "$max" "$out/work/all-MiniLM-L6-v2" "$out/work/pairs.jsonl.xz" \
	"$out/work/kit.json.gz" > "$out/pieces.txt"
(cd "$out/work" && sha256sum pairs.jsonl.xz kit.json.gz all-MiniLM-L6-v2/model.safetensors) > "$out/SHA256SUMS"
rm -rf "$out/work"
n=$(ls -d "$out"/pc/p* | wc -l)
echo "stage-sweep.sh: tracked files $tree bytes; $n pieces of at most $max bytes in $rel/pc"
cat "$out/SHA256SUMS"
echo "calls, in order, on one held machine (each carry is one path):"
for d in "$out"/pc/p*; do
	echo "  carry [\"$rel/pc/$(basename "$d")\"]  command: ls -la $rel/pc"
done
echo "  carry []  command: bash tools/train-model/pieces.sh join $rel/pc $rel/stage"
echo "then sweep.sh with BASE $rel/stage/all-MiniLM-L6-v2, PAIRS $rel/stage/pairs.jsonl.xz," \
	"--ood-kit $rel/stage/kit.json.gz (tools/train-model/README.md, 'The next sweep')"
