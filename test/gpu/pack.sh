#!/usr/bin/env bash
# test/gpu/pack.sh — on the Debian development machine: build what
# test/gpu/run.sh needs on the CUDA host into .gpukit/ (git-ignored):
# the PostgreSQL kit, Debian's OpenBLAS/utf8proc/cJSON libraries, the
# extension built with CUDA, and the vector generator.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
kit=$top/.gpukit
mkdir -p "$kit"
[ -s "$kit/pgkit.tar.xz" ] || bash "$top/../shared/gpu-host/pack-postgres.sh" "$kit/pgkit.tar.xz"
if [ ! -s "$kit/xlibs.tar.xz" ]; then
	w=$(mktemp -d)
	(cd "$w" && apt-get download libopenblas0-pthread libutf8proc2 libcjson1 libgfortran5 libquadmath0 >/dev/null)
	mkdir -p "$w/root" "$w/xlibs"
	for f in "$w"/*.deb; do dpkg -x "$f" "$w/root"; done
	l=$w/root/usr/lib/x86_64-linux-gnu
	cp -L "$l/libgfortran.so.5" "$l/libutf8proc.so.2" "$l/libquadmath.so.0" "$l/libcjson.so.1" \
		"$l/openblas-pthread/libopenblas.so.0" "$w/xlibs/"
	tar cJf "$kit/xlibs.tar.xz" -C "$w" xlibs
	rm -rf "$w"
fi
make -s -C "$top" -j"$(nproc)" CUDA=1 >/dev/null
w=$(mktemp -d)
cp "$top/codevec.so" "$top/codevec.control" "$top"/sql/codevec--*.sql "$w/"
tar cJf "$kit/ext.tar.xz" -C "$w" .
rm -rf "$w"
gcc -O2 -o "$kit/gen" "$top/bench/seqscan/gen.c"
ls -la "$kit"
