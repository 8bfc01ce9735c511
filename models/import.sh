#!/usr/bin/env bash
# models/import.sh — put a trained model folder into the tree as the shipped
# model, or rewrite the sums of the one that is there:
#
#   bash models/import.sh FROM [NAME]   copy the model files of FROM (the
#                                       code-model/ folder that
#                                       tools/train-model/device.sh returns,
#                                       or any sentence-transformers folder
#                                       of the same architecture) into
#                                       models/NAME (default code-minilm-l6)
#                                       and write its SHA256SUMS
#   bash models/import.sh --sums [NAME] only rewrite models/NAME/SHA256SUMS
#
# Checks before anything is written: model.safetensors is float16 (F16
# tensors; integer buffers such as position_ids allowed), at most 50 MB
# (50,000,000 bytes: the project's rule for weights in the tree), and the
# folder has config.json, vocab.txt, modules.json and 1_Pooling/config.json.
# FROM's train-log.json and train.log, when present, are copied too (the
# model card's training log). SHA256SUMS lists the files
# tools/install-model.sh installs (weights, config, tokenizer, pooling);
# MODEL.md and the reference files are not in it. After an import, the
# references are stale until models/make-reference.py has been run on the
# new weights (test/models says so); with REF_PYTHON set (a python with
# torch and sentence-transformers) import.sh runs it itself.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
MAX_BYTES=50000000
FILES="config.json config_sentence_transformers.json modules.json sentence_bert_config.json
special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt 1_Pooling/config.json
model.safetensors"

write_sums() {	# write_sums DIR: SHA256SUMS of the FILES present in DIR
	local dir=$1 f
	(
		cd "$dir"
		for f in $FILES; do
			[ -f "$f" ] && sha256sum "$f"
		done
	) >"$dir/SHA256SUMS.tmp"
	mv "$dir/SHA256SUMS.tmp" "$dir/SHA256SUMS"
	echo "import: wrote $dir/SHA256SUMS ($(wc -l <"$dir/SHA256SUMS") files)"
}

if [ "${1:-}" = --sums ]; then
	dir=$here/${2:-code-minilm-l6}
	[ -f "$dir/model.safetensors" ] || { echo "import: $dir/model.safetensors is missing" >&2; exit 1; }
	write_sums "$dir"
	exit 0
fi
from=${1:?usage: models/import.sh FROM [NAME] | --sums [NAME]}
name=${2:-code-minilm-l6}
dest=$here/$name
for f in config.json vocab.txt modules.json 1_Pooling/config.json model.safetensors; do
	[ -f "$from/$f" ] || { echo "import: $from/$f is missing" >&2; exit 1; }
done
size=$(stat -L -c %s "$from/model.safetensors")
[ "$size" -le "$MAX_BYTES" ] || { echo "import: $from/model.safetensors is $size bytes, over the $MAX_BYTES the tree allows" >&2; exit 1; }
"$PYTHON" - "$from/model.safetensors" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
bad = sorted({v["dtype"] for k, v in h.items() if k != "__metadata__"} - {"F16", "I64", "I32"})
if bad:
    sys.exit("import: %s holds %s tensors; the shipped weights are F16" % (sys.argv[1], ", ".join(bad)))
PY
mkdir -p "$dest/1_Pooling"
for f in $FILES train-log.json train.log; do
	if [ -f "$from/$f" ]; then
		cp "$from/$f" "$dest/$f"
	fi
done
write_sums "$dest"
if [ -n "${REF_PYTHON:-}" ]; then
	"$REF_PYTHON" "$here/make-reference.py" "$dest"
	echo "import: $from -> $dest with its references; next: MODEL.md's TODO-LEAD, make model, test/models"
else
	echo "import: $from -> $dest; next: the references (models/README.md, \"Swapping in new weights\")"
fi
