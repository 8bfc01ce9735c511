#!/usr/bin/env bash
# test/cuda/run_encoder.sh — build and run the standalone GPU encoder test
# (cuda/encoder.cu vs the CPU reference src/encoder.c), no PostgreSQL.
#
#   bash test/cuda/run_encoder.sh build      # on a machine with nvcc (no GPU needed)
#   bash test/cuda/run_encoder.sh check      # on the GPU host: the full test
#   bash test/cuda/run_encoder.sh sanitize   # compute-sanitizer memcheck, 8 strings
#
# Build products go to test/cuda/build/ (git-ignored): cuda_encoder.o (the
# library object, built with exactly the extension's nvcc flags) and
# test_encoder. The CUDA runtime is linked statically, cuBLASLt dynamically
# (CUDA 13 ships no static cuBLASLt); OpenBLAS and utf8proc statically;
# cJSON dynamically (build/lib/ gets a copy of libcjson.so.1 so a GPU host
# without Debian's package can run the binary: LD_LIBRARY_PATH=build/lib).
#
# Model: CODEVEC_MODEL_DIR, else .gpukit/minilm-f16 (an F16 copy, made by
# bench/encoder/make_f16_model.py), else the installed all-MiniLM-L6-v2.
# Prints "encoder: N passed, N failed" last; exits non-zero on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$here/build"
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=${NVCC:-$CUDA_HOME/bin/nvcc}
NVFLAGS="-O3 -std=c++17 -Xcompiler -fPIC -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90"
fx="$root/test/embed/fixtures"

model=${CODEVEC_MODEL_DIR:-}
if [ -z "$model" ]; then
	if [ -d "$root/.gpukit/minilm-f16" ]; then
		model="$root/.gpukit/minilm-f16"
	else
		model=/usr/share/postgresql/15/extension/codevec_models/all-MiniLM-L6-v2
	fi
fi

cmd=${1:-check}
case "$cmd" in
build)
	mkdir -p "$build/lib"
	"$NVCC" $NVFLAGS ${NVEXTRA:-} -c "$root/cuda/encoder.cu" -o "$build/cuda_encoder.o"
	cc -O2 -g -Wall -std=gnu11 -I"$root/src" -I"$here/../c" -I"$CUDA_HOME/include" \
		-c "$here/test_encoder.c" -o "$build/test_encoder.o"
	for f in model tokenizer encoder; do
		cc -O2 -g -Wall -std=gnu11 -I"$root/src" -c "$root/src/$f.c" -o "$build/cpu_$f.o"
	done
	g++ -o "$build/test_encoder" "$build/test_encoder.o" "$build/cpu_model.o" \
		"$build/cpu_tokenizer.o" "$build/cpu_encoder.o" "$build/cuda_encoder.o" \
		-L"$CUDA_HOME/lib64" -Wl,-Bstatic -lopenblas -lutf8proc -Wl,-Bdynamic \
		-lcjson -lcublasLt -lcudart_static -lgfortran -lrt -ldl -lpthread -lm \
		-Wl,-rpath,"$CUDA_HOME/lib64"
	cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 "$build/lib/"
	ls -l "$build/test_encoder" "$build/cuda_encoder.o"
	;;
check)
	LD_LIBRARY_PATH="$build/lib:${LD_LIBRARY_PATH:-}" "$build/test_encoder" "$model" \
		"$fx/real-model-strings.jsonl" "$fx/tokenizer.jsonl" "${N_MORE:-1000}"
	;;
sanitize)
	LD_LIBRARY_PATH="$build/lib:${LD_LIBRARY_PATH:-}" compute-sanitizer --tool memcheck \
		--error-exitcode 9 "$build/test_encoder" "$model" "$fx/real-model-strings.jsonl" --quick
	;;
*)
	echo "usage: $0 build|check|sanitize" >&2
	exit 2
	;;
esac
