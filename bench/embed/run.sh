#!/usr/bin/env bash
# bench/embed/run.sh — codevec's CPU encoder vs sentence-transformers on
# PyTorch (CPU), same model, same inputs, same thread counts, same run.
#
#   bash bench/embed/run.sh [THREADS ...]        (default: 1 2)
#
# Needs: the model installed by `make model` (or MODEL_DIR), a Python with
#   torch, sentence-transformers and tokenizers (BENCH_PYTHON, default
#   python3), and for the SQL row `make install` plus test/cluster.sh
#   (skipped with NO_SQL=1).  Writes bench/embed/results/*.json and prints
#   the markdown table that README.md records.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
MODEL_DIR=${MODEL_DIR:-$("$PG_CONFIG" --sharedir)/extension/codevec_models/all-MiniLM-L6-v2}
PY=${BENCH_PYTHON:-python3}
threads=("${@:-1 2}")
[ $# -gt 0 ] || threads=(1 2)
out="$here/results"
build="$here/build"
mkdir -p "$out" "$build"

cc -O2 -std=gnu11 -I"$root/src" -o "$build/bench_encoder" "$here/bench_encoder.c" \
	"$root/src/tokenizer.c" "$root/src/model.c" "$root/src/encoder.c" \
	-lopenblas -lutf8proc -lcjson -lm
inputs="$build/inputs.json"
"$PY" "$here/make_inputs.py" "$MODEL_DIR" "$inputs" 64
chmod a+r "$inputs"

for t in "${threads[@]}"; do
	echo "threads=$t: codevec C" >&2
	"$build/bench_encoder" "$MODEL_DIR" "$t" "$inputs" 200 >"$out/codevec-c-t$t.json"
	if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
		# this environment pins OpenBLAS's kernels; also time its own choice
		echo "threads=$t: codevec C, OPENBLAS_CORETYPE unset" >&2
		env -u OPENBLAS_CORETYPE "$build/bench_encoder" "$MODEL_DIR" "$t" "$inputs" 200 \
			>"$out/codevec-c-autodetect-t$t.json"
	fi
	echo "threads=$t: sentence-transformers" >&2
	"$PY" "$here/bench_st.py" "$MODEL_DIR" "$t" "$inputs" 200 2>/dev/null >"$out/st-t$t.json"
done

if [ "${NO_SQL:-0}" != 1 ]; then
	echo "SQL: embed() in one backend (OpenBLAS default threads = cores)" >&2
	cp "$inputs" /tmp/codevec-bench-inputs.json && chmod a+r /tmp/codevec-bench-inputs.json
	eval "$(bash "$root/test/cluster.sh" start /tmp/codevec-bench 5496)"
	createdb embedbench 2>/dev/null || true
	psql -X -q -d embedbench -v inputs=/tmp/codevec-bench-inputs.json -f "$here/bench_sql.sql" \
		| tail -n 1 >"$out/codevec-sql.json"
	bash "$root/test/cluster.sh" stop /tmp/codevec-bench
fi

{
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
	echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none) (+ working tree)"
	echo "OPENBLAS_CORETYPE in the environment: ${OPENBLAS_CORETYPE:-unset}"
	echo "openblas: $(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null), postgres: $("$PG_CONFIG" --version)"
	echo "python: $("$PY" -c 'import torch, sentence_transformers, transformers; print("torch", torch.__version__, "sentence-transformers", sentence_transformers.__version__, "transformers", transformers.__version__)' 2>/dev/null)"
} >"$out/machine.txt"
"$PY" "$here/table.py" "$out"
