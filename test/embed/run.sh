#!/usr/bin/env bash
# test/embed/run.sh — C unit tests of the tokenizer, model loader and
# encoder (issue 4), linked directly against src/{tokenizer,model,encoder}.c,
# no server needed:
#   tokenizer   token ids identical to Hugging Face `tokenizers` on the
#               committed fixture (needs the default model's vocab.txt)
#   tiny-model  the committed tiny random BERTs vs transformers: every
#               layer's output, pooled output, bad model folders
#   real-model  the default model vs sentence-transformers, cosine >= 0.99999
# The real model comes from `make model` (tools/fetch-model.sh); set
# CODEVEC_MODEL_DIR to use another folder of all-MiniLM-L6-v2.
# Prints "N passed, N failed" last; exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../src"
build="$here/build"
fx="$here/fixtures"
PG_CONFIG=${PG_CONFIG:-pg_config}
model=${CODEVEC_MODEL_DIR:-$("$PG_CONFIG" --sharedir)/extension/codevec_models/all-MiniLM-L6-v2}
CC=${CC:-cc}
mkdir -p "$build"

passed=0
failed=0
# add the counts of a "NAME: P passed, F failed" line to the totals
count() {
	local line
	line=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "run.sh: $2 printed no result line" >&2
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(echo "$line" | sed -E 's/.*, ([0-9]+) failed/\1/')))
}

lib="$src/tokenizer.c $src/model.c $src/encoder.c"
flags="-O2 -g -Wall -std=gnu11 -I$src"
libs="-lopenblas -lutf8proc -lcjson -lm"
for t in tokenizer tiny_model real_model; do
	if ! $CC $flags -o "$build/test_$t" "$here/test_$t.c" $lib $libs 2>"$build/test_$t.cc.log"; then
		cat "$build/test_$t.cc.log" >&2
		echo "run.sh: test_$t does not build" >&2
		failed=$((failed + 1))
	fi
done

if [ -x "$build/test_tokenizer" ]; then
	if [ -f "$model/vocab.txt" ]; then
		"$build/test_tokenizer" "$model/vocab.txt" "$fx/tokenizer.jsonl" >"$build/tokenizer.out" 2>&1
		grep -E '^not ok' "$build/tokenizer.out" | head -n 20
		tail -n 1 "$build/tokenizer.out"
		count "$build/tokenizer.out" tokenizer
	else
		echo "not ok - tokenizer: no vocabulary at $model/vocab.txt (run \`make model\` first)"
		failed=$((failed + 1))
	fi
fi
if [ -x "$build/test_tiny_model" ]; then
	"$build/test_tiny_model" "$fx" >"$build/tiny_model.out" 2>&1
	grep -E '^not ok|^  ' "$build/tiny_model.out" | head -n 20
	tail -n 1 "$build/tiny_model.out"
	count "$build/tiny_model.out" tiny-model
fi
if [ -x "$build/test_real_model" ]; then
	"$build/test_real_model" "$model" "$fx/real-model-strings.jsonl" "$fx/real-model-ref.bin" \
		>"$build/real_model.out" 2>&1
	grep -E '^not ok|^#' "$build/real_model.out" | head -n 20
	tail -n 1 "$build/real_model.out"
	count "$build/real_model.out" real-model
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
