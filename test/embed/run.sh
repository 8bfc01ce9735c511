#!/usr/bin/env bash
# test/embed/run.sh — C unit tests of the tokenizer, model loader and
# encoder (issue 4), linked directly against src/{tokenizer,model,encoder}.c,
# no server needed:
#   tokenizer   token ids identical to Hugging Face `tokenizers` on the
#               committed fixture (needs all-MiniLM-L6-v2's vocab.txt)
#   tiny-model  the committed tiny random BERTs vs transformers: every
#               layer's output, pooled output, bad model folders
#   real-model  all-MiniLM-L6-v2 vs sentence-transformers, cosine >= 0.99999
#   int8        codevec.cpu_precision = int8 (src/qlinear.c, oneDNN): its
#               quantizer, cosine to the fp32 references, batch = alone
#   int8-sql    (when a server is reachable, as test/run.sh provides)
#               embed(text) equals embed(text[]) at fp32 and at int8, and
#               the two precisions agree to cosine >= 0.99 (int8_sql.sh)
#   preload-sql (the same) a second cluster with shared_preload_libraries =
#               codevec: the postmaster preloads the model, backends share
#               it and embed() as the reference server's backends do, bit
#               for bit (preload_sql.sh)
# The fixtures' references are all-MiniLM-L6-v2's, so the real model is that
# one by name (`make model-base`, tools/fetch-model.sh), not the default
# (the shipped code-minilm-l6 has its own references: test/models); set
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
# not_ok WHAT: one failure that has no TAP line of its own
not_ok() {
	echo "not ok - $1"
	failed=$((failed + 1))
}
# run_test NAME OUT CMD...: run one test program, print all its output (every
# TAP line: test/run.sh checks that they agree with the result line) and add
# the counts of its last "NAME: P passed, F failed" line to the totals; a
# missing line, or a non-zero exit with no failure counted, is one failure
run_test() {
	local name=$1 out=$2 rc line p f
	shift 2
	"$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed\$" "$out" | tail -n 1)
	if [ -z "$line" ]; then
		not_ok "$name printed no result line (exit status $rc)"
		return
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.*, ([0-9]+) failed/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		not_ok "$name exited with status $rc after \"$line\""
	fi
}

lib="$src/tokenizer.c $src/model.c $src/encoder.c $src/qlinear.c"
flags="-O2 -g -Wall -Wno-psabi -std=gnu11 -I$src -I$here/../c"
libs="-lopenblas -lutf8proc -lcjson -lm -ldl"
for t in tokenizer tiny_model real_model int8; do
	if ! $CC $flags -o "$build/test_$t" "$here/test_$t.c" $lib $libs 2>"$build/test_$t.cc.log"; then
		cat "$build/test_$t.cc.log" >&2
		rm -f "$build/test_$t"
		not_ok "test_$t does not build"
	fi
done

if [ -x "$build/test_tokenizer" ]; then
	if [ -f "$model/vocab.txt" ]; then
		run_test tokenizer "$build/tokenizer.out" "$build/test_tokenizer" "$model/vocab.txt" "$fx/tokenizer.jsonl"
	else
		not_ok "tokenizer: no vocabulary at $model/vocab.txt (run \`make model\` first)"
	fi
fi
if [ -x "$build/test_tiny_model" ]; then
	run_test tiny-model "$build/tiny_model.out" "$build/test_tiny_model" "$fx"
fi
if [ -x "$build/test_real_model" ]; then
	run_test real-model "$build/real_model.out" "$build/test_real_model" "$model" \
		"$fx/real-model-strings.jsonl" "$fx/real-model-ref.bin"
fi
if [ -x "$build/test_int8" ]; then
	run_test int8 "$build/int8.out" "$build/test_int8" "$model" \
		"$fx/real-model-strings.jsonl" "$fx/real-model-ref.bin" "$fx/tiny-bert"
fi
if [ -n "${PGPORT:-}" ] && psql -qAtX -c "SELECT 1" >/dev/null 2>&1; then
	run_test int8-sql "$build/int8_sql.out" bash "$here/int8_sql.sh"
	run_test preload-sql "$build/preload_sql.out" bash "$here/preload_sql.sh"
else
	echo "# int8-sql: no server reachable (PGPORT unset); run under test/run.sh"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
