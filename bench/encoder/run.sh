#!/usr/bin/env bash
# bench/encoder/run.sh — the GPU encoder's test and benchmark, built on a
# machine with nvcc and run on the GPU host in one go.
#
#   bash bench/encoder/run.sh pack     # here: F16 model copy, build, pack into .gpukit/
#   bash bench/encoder/run.sh device   # on the GPU host (repo root): test, memcheck,
#                                      # bench_encoder, bench_torch; logs to $OUT
#   MODEL=models/code-minilm-l6 bash bench/encoder/run.sh device   # another F16 model
#
# `pack` fills .gpukit/ (git-ignored): minilm-f16/ (all-MiniLM-L6-v2 with its
# weights converted to F16 by make_f16_model.py, 44 MB), bin/*.xz (the test
# and bench programs, stripped and xz-compressed: the static OpenBLAS makes
# test_encoder 26 MB, 1.7 MB compressed) and lib/libcjson.so.1. The GPU host
# needs the NVIDIA driver, libcublasLt.so.13 (CUDA 13) and, for
# bench_torch.py, torch + sentence-transformers.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
kit="$root/.gpukit"
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
src_model=${CODEVEC_MODEL_DIR:-/usr/share/postgresql/15/extension/codevec_models/all-MiniLM-L6-v2}

case "${1:-}" in
pack)
	mkdir -p "$kit/bin" "$kit/lib"
	[ -f "$kit/minilm-f16/model.safetensors" ] ||
		python3 "$root/bench/encoder/make_f16_model.py" "$src_model" "$kit/minilm-f16"
	bash "$root/test/cuda/run_encoder.sh" build
	b="$root/test/cuda/build"
	cc -O2 -g -Wall -std=gnu11 -I"$root/src" -c "$root/bench/encoder/bench_encoder.c" -o "$b/bench_encoder.o"
	g++ -o "$b/bench_encoder" "$b/bench_encoder.o" "$b/cpu_model.o" "$b/cpu_tokenizer.o" \
		"$b/cuda_encoder.o" -L"$CUDA_HOME/lib64" -Wl,-Bstatic -lutf8proc -Wl,-Bdynamic \
		-lcjson -lcublasLt -lcudart_static -lrt -ldl -lpthread -lm -Wl,-rpath,"$CUDA_HOME/lib64"
	for p in test_encoder bench_encoder; do
		strip -o "$kit/bin/$p" "$b/$p"
		xz -f -T2 "$kit/bin/$p"
	done
	cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 "$kit/lib/"
	du -sh "$kit"
	;;
device)
	out=${OUT:-/tmp/encoder-out}
	mkdir -p "$out" /tmp/cvbin
	for p in test_encoder bench_encoder; do
		xz -dc "$kit/bin/$p.xz" >/tmp/cvbin/$p
		chmod +x /tmp/cvbin/$p
	done
	lt=$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null ||
		python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib", "libcublasLt.so.13"))')
	export LD_LIBRARY_PATH="$kit/lib:$(dirname "$lt"):${LD_LIBRARY_PATH:-}"
	fx="$root/test/embed/fixtures"
	# the F16 copy when pack made it, else MODEL (e.g. the shipped
	# models/code-minilm-l6, F16 already, or the GPU host's installed copy)
	m=${MODEL:-$kit/minilm-f16}
	nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$out/gpu.txt"
	echo "== test_encoder"
	/tmp/cvbin/test_encoder "$m" "$fx/real-model-strings.jsonl" "$fx/tokenizer.jsonl" 1000 2>&1 |
		tee "$out/test_encoder.log" | grep -v '^ok ' || true
	echo "== compute-sanitizer memcheck (8 strings)"
	compute-sanitizer --tool memcheck --error-exitcode 9 /tmp/cvbin/test_encoder "$m" \
		"$fx/real-model-strings.jsonl" --quick >"$out/memcheck.log" 2>&1; echo "memcheck exit $?"
	tail -n 3 "$out/memcheck.log"
	if [ "${SKIP_BENCH:-0}" = 1 ]; then exit 0; fi
	echo "== bench_encoder"
	/tmp/cvbin/bench_encoder "$m" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench_encoder.log" | grep -v '^RESULT' || true
	echo "== bench_torch"
	PYTHONUNBUFFERED=1 python3 "$root/bench/encoder/bench_torch.py" "$m" ${BENCH_ARGS:-} 2>&1 |
		grep -v Warning | tee "$out/bench_torch.log" | grep -v '^RESULT' || true
	;;
*)
	echo "usage: $0 pack|device" >&2
	exit 2
	;;
esac
