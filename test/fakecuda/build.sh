#!/usr/bin/env bash
# test/fakecuda/build.sh DIR — build codevec.so with CODEVEC_USE_CUDA but
# test/fakecuda/fakecuda.c in place of the CUDA objects (a host stand-in for
# cuda/'s C interface: no GPU, no nvcc), in a copy of the tree at DIR (so
# the checkout's own objects are untouched). Prints nothing on success.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:?usage: build.sh DIR}
rm -rf "$dir" && mkdir -p "$dir"
# the tracked and new files (a checkout), or the tree less built objects
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$dir" || true
else
	(cd "$top" && tar cf - --exclude='*.o' --exclude='*.so' --exclude='*.d' --exclude='./loaders/build' .) | tar xf - -C "$dir"
fi
cd "$dir"
objs=$(make -s --no-print-directory CUDA=0 -f Makefile -f - print-objs <<<'print-objs: ; @echo $(OBJS)')
ver=$(sed -n "s/^default_version = '\(.*\)'/\1/p" codevec.control)
make -s CUDA=0 -j2 OBJS="$objs test/fakecuda/fakecuda.o" codevec.so "sql/codevec--$ver.sql" \
	PG_CPPFLAGS="-I./src -I./cuda -DCODEVEC_USE_CUDA -MMD -MP" \
	SHLIB_LINK="-lutf8proc -lcjson -lm -ldl -lpthread" >build.log 2>&1 || { tail -30 build.log; exit 1; }
[ "$(nm --defined-only codevec.so | grep -c ' [tT] codevec_cuda_knn_batch$')" = 1 ] || { echo "fakecuda: not linked in" >&2; exit 1; }
