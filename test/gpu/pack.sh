#!/usr/bin/env bash
# test/gpu/pack.sh — on the Debian development machine: build what
# test/gpu/run.sh needs on the CUDA host into .gpukit/ (git-ignored):
# the PostgreSQL kit, Debian's OpenBLAS/utf8proc/cJSON libraries, the
# extension built with CUDA (codevec.so and codevec_cuda_encoder.so), pgTAP,
# codevec-load with its libraries, and the vector generator. The model copy
# (.gpukit/minilm-f16, bench/encoder/run.sh pack) and the references of
# test/gpu/embed.sh (.gpukit/ref, test/gpu/make-ref.sh) are made apart.
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
# a fresh machine has no server headers until tools/install-deps.sh ran
# (make would stop at "postgres.h: No such file or directory")
inc=$(pg_config --includedir-server 2>/dev/null || true)
[ -f "$inc/postgres.h" ] || { echo "test/gpu/pack.sh: no PostgreSQL server headers (bash tools/install-deps.sh first)" >&2; exit 1; }
make -s -C "$top" -j"$(nproc)" CUDA=1 >/dev/null
w=$(mktemp -d)
cp "$top/codevec.so" "$top/codevec_cuda_encoder.so" "$top/src/codevec_session.so" "$top/codevec.control" "$top"/sql/codevec--*.sql "$w/"
# pgTAP (plain SQL) for the suites, and the loader with the Debian libraries
# an Ubuntu host lacks
cp /usr/share/postgresql/15/extension/pgtap.control /usr/share/postgresql/15/extension/pgtap--1*.sql "$w/" 2>/dev/null || true
mkdir -p "$w/loader/lib"
cp "$top/loaders/codevec-load" "$w/loader/"
for l in libtree-sitter.so.0 libgit2.so.1.5 libmbedtls.so.14 libmbedx509.so.1 libmbedcrypto.so.7 \
	libhttp_parser.so.2.9 libssh2.so.1; do
	cp -L "/lib/x86_64-linux-gnu/$l" "$w/loader/lib/"
done
strip "$w"/*.so "$w/loader/codevec-load" 2>/dev/null || true
tar cJf "$kit/ext.tar.xz" -C "$w" .
rm -rf "$w"
gcc -O2 -o "$kit/gen" "$top/bench/seqscan/gen.c"
ls -la "$kit"
