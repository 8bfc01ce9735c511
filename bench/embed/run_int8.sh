#!/usr/bin/env bash
# bench/embed/run_int8.sh — issue 20: codevec's CPU encoder in fp32 (before
# and after this change) and int8, against ONNX Runtime fp32 and int8
# (dynamic quantization, per channel), same model, texts, batches, threads.
#
#   bash bench/embed/run_int8.sh [STEP ...]     (default: all steps)
#
# Steps:
#   venv      bench/embed/.venv: torch, transformers, safetensors, onnx,
#             onnxruntime, tokenizers (pinned, PyPI)
#   snippets  build/snippets.jsonl: the embed_text of every snippet of
#             Debian's Python 3.11 standard library (make_snippets.sh)
#   export    build/onnx/model-{fp32,int8}.onnx (bench_ort.py export)
#   speed     every row at THREADS (default "1 2") on the first N (default
#             600) snippets, ROUNDS times (default 2, rows interleaved; the
#             round with the most snippets per CPU-second is kept, all are
#             listed) -> results/int8-<row>-t<threads>.json; ROWS (default
#             all: "codevec-fp32-before codevec-fp32 codevec-int8
#             codevec-int8-sorted ort-fp32 ort-int8 ort-int8-sorted") picks
#             rows; BASE=<commit> adds codevec-int8-base and
#             codevec-int8-base-sorted: bench_int8 on that commit's encoder
#             and qlinear (an earlier int8 in the same run, rows interleaved)
#   fidelity  int8 vs fp32 cosine on the first NFID (10000) snippets
#             -> results/int8-fidelity.json; ONNX Runtime int8 vs our fp32 on
#             the first NFID_ORT (2000) -> results/int8-fidelity-ort.json
#   mrr       MRR@10 of int8 vs fp32 on a subset of bench/quality's public
#             benchmark (SET: offline-eval.py export's file, needed the first
#             time, then build/mrr is reused; MRR_PER_LANG
#             queries per language, default 100, over MRR_CORPUS snippets,
#             default 3000, targets included) -> results/int8-mrr.json
#   table     print the markdown table of results/int8-*.json
#
# Needs: make model (MODEL_DIR), codevec-load and the extension installed
# (snippets step), libdnnl-dev, libopenblas-dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
MODEL_DIR=${MODEL_DIR:-$(pg_config --sharedir)/extension/codevec_models/all-MiniLM-L6-v2}
THREADS=${THREADS:-1 2}
ROWS=${ROWS:-codevec-fp32-before codevec-fp32 codevec-int8 codevec-int8-sorted ort-fp32 ort-int8 ort-int8-sorted}
BASE=${BASE:-}					# a commit whose int8 encoder is run as codevec-int8-base
N=${N:-600}
ROUNDS=${ROUNDS:-2}
NFID=${NFID:-10000}
NFID_ORT=${NFID_ORT:-2000}		# ONNX Runtime int8's own fidelity, on fewer (it is slow here)
BEFORE=${BEFORE:-0428dbd}		# the commit whose encoder is "fp32 before"
b=$here/build
out=$here/results
py=$here/.venv/bin/python
mkdir -p "$b" "$out"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(venv snippets export speed fidelity table)

build() {
	cc -O2 -g -Wall -Wno-psabi -std=gnu11 -I"$root/src" -o "$b/bench_int8" "$here/bench_int8.c" \
		"$root/src/tokenizer.c" "$root/src/model.c" "$root/src/encoder.c" "$root/src/qlinear.c" \
		-lopenblas -lutf8proc -lcjson -lm -ldl
	mkdir -p "$b/before"
	for f in tokenizer.c tokenizer.h model.c model.h encoder.c encoder.h; do
		git -C "$root" show "$BEFORE:src/$f" >"$b/before/$f"
	done
	cc -O2 -g -Wall -std=gnu11 -DCV_NO_INT8 -I"$b/before" -o "$b/bench_fp32_before" "$here/bench_int8.c" \
		"$b/before/tokenizer.c" "$b/before/model.c" "$b/before/encoder.c" -lopenblas -lutf8proc -lcjson -lm
	if [ -n "$BASE" ]; then
		rm -rf "$b/base" && mkdir -p "$b/base"
		for f in tokenizer.c tokenizer.h model.c model.h encoder.c encoder.h qlinear.c qlinear.h; do
			git -C "$root" show "$BASE:src/$f" >"$b/base/$f"
		done
		cc -O2 -g -Wall -Wno-psabi -std=gnu11 -I"$b/base" -o "$b/bench_int8_base" "$here/bench_int8.c" \
			"$b/base/tokenizer.c" "$b/base/model.c" "$b/base/encoder.c" "$b/base/qlinear.c" \
			-lopenblas -lutf8proc -lcjson -lm -ldl
	fi
}

# want ROW: whether ROWS (or BASE, for the base rows) asks for row ROW
want() {
	case $1 in
	codevec-int8-base*) [ -n "$BASE" ] ;;
	*) [[ " $ROWS " == *" $1 "* ]] ;;
	esac
}

for step in "${steps[@]}"; do
	case $step in
	venv)
		[ -x "$py" ] || python3 -m venv "$here/.venv"
		"$here/.venv/bin/pip" install -q 'torch==2.11.0' 'transformers==5.17.0' 'safetensors==0.8.0' \
			'onnx==1.23.2' 'onnxruntime==1.32.0' 'onnxscript==0.7.2' 'numpy==2.4.6' ;;
	snippets)
		bash "$here/make_snippets.sh" "$b/snippets.jsonl" ;;
	export)
		"$py" "$here/bench_ort.py" export "$MODEL_DIR" "$b/onnx" ;;
	speed)
		build
		# every row ROUNDS times, the rows interleaved; each row keeps its
		# round with the most snippets per CPU-second and lists all of them
		# (other jobs share the machine: load moves between rows)
		rm -rf "$b/rounds" && mkdir -p "$b/rounds"
		for r in $(seq 1 "$ROUNDS"); do
			for t in $THREADS; do
				echo "round $r threads $t" >&2
				! want codevec-fp32-before ||
					"$b/bench_fp32_before" "$MODEL_DIR" "$t" fp32 "$b/snippets.jsonl" "$N" >"$b/rounds/codevec-fp32-before-t$t.$r"
				! want codevec-fp32 ||
					"$b/bench_int8" "$MODEL_DIR" "$t" fp32 "$b/snippets.jsonl" "$N" >"$b/rounds/codevec-fp32-t$t.$r"
				! want codevec-int8 ||
					"$b/bench_int8" "$MODEL_DIR" "$t" int8 "$b/snippets.jsonl" "$N" >"$b/rounds/codevec-int8-t$t.$r"
				! want codevec-int8-sorted ||
					SORT=1 "$b/bench_int8" "$MODEL_DIR" "$t" int8 "$b/snippets.jsonl" "$N" >"$b/rounds/codevec-int8-sorted-t$t.$r"
				! want codevec-int8-base ||
					IMPL=codevec-int8-base "$b/bench_int8_base" "$MODEL_DIR" "$t" int8 "$b/snippets.jsonl" "$N" \
						>"$b/rounds/codevec-int8-base-t$t.$r"
				! want codevec-int8-base ||
					IMPL=codevec-int8-base-sorted SORT=1 "$b/bench_int8_base" "$MODEL_DIR" "$t" int8 "$b/snippets.jsonl" "$N" \
						>"$b/rounds/codevec-int8-base-sorted-t$t.$r"
				for p in fp32 int8; do
					! want ort-$p ||
						"$py" "$here/bench_ort.py" run "$MODEL_DIR" "$b/onnx/model-$p.onnx" "$t" "$b/snippets.jsonl" "$N" \
							2>/dev/null >"$b/rounds/ort-$p-t$t.$r"
				done
				! want ort-int8-sorted ||
					SORT=1 "$py" "$here/bench_ort.py" run "$MODEL_DIR" "$b/onnx/model-int8.onnx" "$t" "$b/snippets.jsonl" "$N" \
						2>/dev/null >"$b/rounds/ort-int8-sorted-t$t.$r"
			done
		done
		python3 - "$b/rounds" "$out" <<'PY'
import glob, json, os, sys
rounds, out = sys.argv[1:]
names = sorted({os.path.basename(f).rsplit(".", 1)[0] for f in glob.glob(os.path.join(rounds, "*.*"))})
for name in names:
    runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(rounds, name + ".*"))) if os.path.getsize(f) > 0]
    best = max(runs, key=lambda r: r["snippets_per_cpu_s"])
    best["rounds_snippets_per_cpu_s"] = [round(r["snippets_per_cpu_s"], 1) for r in runs]
    best["rounds_snippets_per_s"] = [round(r["snippets_per_s"], 1) for r in runs]
    best["rounds_loadavg_end"] = [round(r["loadavg_end"], 1) for r in runs]
    json.dump(best, open(os.path.join(out, "int8-" + name + ".json"), "w"))
PY
		;;
	fidelity)
		build
		"$b/bench_int8" "$MODEL_DIR" 2 fp32 "$b/snippets.jsonl" "$NFID" "$b/fid-fp32.f32" 20 >/dev/null
		"$b/bench_int8" "$MODEL_DIR" 2 int8 "$b/snippets.jsonl" "$NFID" "$b/fid-int8.f32" 20 >/dev/null
		"$py" "$here/quality.py" cosine "$b/fid-fp32.f32" "$b/fid-int8.f32" >"$out/int8-fidelity.json"
		"$py" "$here/bench_ort.py" run "$MODEL_DIR" "$b/onnx/model-int8.onnx" 2 "$b/snippets.jsonl" "$NFID_ORT" \
			"$b/fid-ort-int8.f32" 20 2>/dev/null >/dev/null
		head -c $((NFID_ORT * 384 * 4)) "$b/fid-fp32.f32" >"$b/fid-fp32-head.f32"
		"$py" "$here/quality.py" cosine "$b/fid-fp32-head.f32" "$b/fid-ort-int8.f32" >"$out/int8-fidelity-ort.json"
		cat "$out/int8-fidelity.json" "$out/int8-fidelity-ort.json" ;;
	mrr)
		build
		# SET makes the subset; without it the one made before (build/mrr) is reused
		if [ -n "${SET:-}" ] || [ ! -s "$b/mrr/corpus.jsonl" ]; then
			"$py" "$here/quality.py" subset "${SET:?SET=offline-eval.py export file}" "$b/mrr" "${MRR_PER_LANG:-100}" "${MRR_CORPUS:-3000}"
		fi
		for p in fp32 int8; do
			"$b/bench_int8" "$MODEL_DIR" 2 $p "$b/mrr/corpus.jsonl" 100000 "$b/mrr/corpus-$p.f32" 20 >/dev/null
			"$b/bench_int8" "$MODEL_DIR" 2 $p "$b/mrr/queries.jsonl" 100000 "$b/mrr/queries-$p.f32" 20 >/dev/null
			"$py" "$here/quality.py" mrr "$b/mrr" "$b/mrr/corpus-$p.f32" "$b/mrr/queries-$p.f32" >"$b/mrr/mrr-$p.json"
		done
		"$py" - "$b/mrr" "$out/int8-mrr.json" <<'PY'
import json, sys, random
d, out = sys.argv[1], sys.argv[2]
a, b = (json.load(open(f"{d}/mrr-{p}.json")) for p in ("fp32", "int8"))
diff = [y - x for x, y in zip(a["rr"], b["rr"])]
rng = random.Random(1)
boot = sorted(sum(rng.choice(diff) for _ in diff) / len(diff) for _ in range(2000))
res = {"queries": a["queries"], "corpus": a["corpus"], "fp32": a["mrr@10"], "int8": b["mrr@10"],
       "int8_minus_fp32": b["mrr@10"] - a["mrr@10"], "ci95": [boot[50], boot[1949]],
       "per_language": {k: {"fp32": a["per_language"][k], "int8": b["per_language"][k]} for k in a["per_language"]}}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PY
		;;
	table)
		{
			echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
			echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
			echo "commit: $(git -C "$root" rev-parse --short HEAD) (+ working tree); before: $BEFORE"
			echo "openblas: $(dpkg-query -W -f '${Version}' libopenblas0-pthread), onednn: $(dpkg-query -W -f '${Version}' libdnnl2)"
			echo "python: $("$py" -c 'import onnxruntime, torch; print("onnxruntime", onnxruntime.__version__, "torch", torch.__version__)')"
		} >"$out/int8-machine.txt"
		cat "$out/int8-machine.txt"
		"$py" - "$out" <<'PY'
import glob, json, os, sys
rows = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(sys.argv[1], "int8-*-t*.json"))) if os.path.getsize(f) > 0]
print("| row | threads | query p50 ms | query p99 ms | bulk snippets/s (wall) | snippets per CPU-second | each round (per CPU-s) | each round (wall) | tokens/s | load avg after |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["threads"], r["impl"])):
    print(f"| {r['impl'] + (' (' + r['int8_isa'] + ')' if r.get('int8_isa', '-') not in ('-', None) else '')} | {r['threads']} | "
          f"{r['query_p50_ms']:.2f} | {r['query_p99_ms']:.2f} | {r['snippets_per_s']:.1f} | "
          f"{r.get('snippets_per_cpu_s', float('nan')):.1f} | {' / '.join(str(x) for x in r.get('rounds_snippets_per_cpu_s', []))} | "
          f"{' / '.join(str(x) for x in r.get('rounds_snippets_per_s', []))} | "
          f"{r['tokens_per_s']:.0f} | {r.get('loadavg_end', float('nan')):.1f} |")
PY
		;;
	*) echo "unknown step $step" >&2; exit 2 ;;
	esac
done
