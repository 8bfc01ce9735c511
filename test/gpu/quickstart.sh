#!/usr/bin/env bash
# test/gpu/quickstart.sh — on the CUDA host (as root): tools/quickstart.sh as
# a new user meets it on a machine with an NVIDIA GPU, and a check that its
# searches ran on the GPU.
#
#   bash test/gpu/quickstart.sh [PATH [REPO]]
#
# The host has no package registry, so what install-deps.sh, make install
# and make model would have put in place comes from .gpukit/ (test/gpu/pack.sh;
# the model from .gpukit/minilm-f16, which may arrive in an earlier call):
# PostgreSQL 15, the libraries, the CUDA build of the extension and
# codevec-load. Nothing else is set by hand: no shared_preload_libraries, no
# codevec.device. Then tools/quickstart.sh runs with CODEVEC_PREBUILT=1 on
# its own cluster (.codevec/, port 5488) and must find the GPU, enable the
# service, embed on it and answer its three searches; a further vector
# search must be answered by the service (its request counter rises, no
# fallback). Prints TAP lines and "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
kit=$top/.gpukit
path=${1:-/usr/lib/python3.12}
repo=${2:-python-stdlib}
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"; }
notok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1"; }

# what the packages would install
root=/opt/pgkit
[ -x "$root/usr/lib/postgresql/15/bin/postgres" ] || { mkdir -p "$root" && tar xJf "$kit/pgkit.tar.xz" -C "$root"; }
echo "$root/usr/lib/x86_64-linux-gnu" >/etc/ld.so.conf.d/codevec-pgkit.conf
tar xJf "$kit/xlibs.tar.xz" -C /tmp && cp /tmp/xlibs/* /usr/local/lib/
if [ ! -e /usr/local/cuda/lib64/libcublasLt.so.13 ]; then
	lt=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib", "libcublasLt.so.13"))' 2>/dev/null || true)
	[ -n "$lt" ] && ln -sf "$lt" /usr/local/lib/libcublasLt.so.13
fi
ldconfig
export PATH=$root/usr/lib/postgresql/15/bin:$root/usr/bin:$PATH
export PG_CONFIG=$root/usr/lib/postgresql/15/bin/pg_config
mkdir -p /tmp/ext && tar xJf "$kit/ext.tar.xz" -C /tmp/ext
# install(1) unlinks what it replaces: a running server keeps its mapping
install -m 755 /tmp/ext/codevec.so /tmp/ext/codevec_cuda_encoder.so /tmp/ext/codevec_session.so "$(pg_config --pkglibdir)/"
cp /tmp/ext/codevec.control /tmp/ext/codevec--*.sql "$(pg_config --sharedir)/extension/"
cp /tmp/ext/loader/lib/* /usr/local/lib/ && ldconfig
cp /tmp/ext/loader/codevec-load "$(pg_config --bindir)/"
models=$(pg_config --sharedir)/extension/codevec_models
if [ ! -f "$models/all-MiniLM-L6-v2/model.safetensors" ]; then
	[ -f "$kit/minilm-f16/model.safetensors" ] || { echo "no model: carry .gpukit/minilm-f16"; exit 2; }
	mkdir -p "$models" && cp -r "$kit/minilm-f16" "$models/all-MiniLM-L6-v2" && chmod -R a+rX "$models"
	ln -sfn all-MiniLM-L6-v2 "$models/default"
fi
# the cluster's files belong to the server's user: a folder it can enter
chmod a+x "$top" "$(dirname "$top")" 2>/dev/null || true

s0=$(date +%s.%N)
CODEVEC_PREBUILT=1 bash "$top/tools/quickstart.sh" "$path" "$repo" 2>&1 | tee /tmp/quickstart.log
rc=${PIPESTATUS[0]}
echo "# quickstart: exit $rc in $(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
[ "$rc" = 0 ] && ok "tools/quickstart.sh exits 0" || notok "tools/quickstart.sh exits 0 (got $rc)"
grep -q '^== GPU: .*run on the GPU service' /tmp/quickstart.log && ok "the quickstart says the GPU service embeds and searches" \
	|| notok "the quickstart says the GPU service embeds and searches"
export PGHOST=/tmp PGPORT=5488 PGUSER=postgres PGDATABASE=codevec
pre=$(psql -qAtX -c "SHOW shared_preload_libraries")
[[ "$pre" == *codevec* ]] && ok "shared_preload_libraries set by the quickstart ($pre)" || notok "shared_preload_libraries set ($pre)"
dev=$(psql -qAtX -c "SHOW codevec.device")
[ "$dev" = auto ] && ok "codevec.device is the default (auto)" || notok "codevec.device is auto (got $dev)"
n=$(psql -qAtX -c "SELECT count(*) FILTER (WHERE emb IS NOT NULL) || ' ' || count(*) FROM code.snippets")
read -r ne nall <<<"$n"
[ "${ne:-0}" -gt 0 ] && [ "$ne" = "$nall" ] && ok "every snippet embedded ($ne of $nall)" || notok "every snippet embedded ($n)"
read -r r0 f0 <<<"$(psql -qAtX -F ' ' -c "SELECT requests, fallbacks FROM codevec_gpu_status()")"
psql -qAtX -c "SELECT count(*) FROM code.search('open a file and read it line by line', k => 10, mode => 'vector')" >/dev/null
read -r r1 f1 <<<"$(psql -qAtX -F ' ' -c "SELECT requests, fallbacks FROM codevec_gpu_status()")"
[ $((r1 - r0)) -ge 1 ] && [ "$f1" = "$f0" ] && ok "a vector code.search is answered by the GPU service (requests $r0 -> $r1, fallbacks $f0 -> $f1)" \
	|| notok "a vector code.search is answered by the GPU service (requests $r0 -> $r1, fallbacks $f0 -> $f1)"
# the login warm-up the quickstart sets on a GPU host: a new session that
# runs nothing but SHOW has searched on the GPU service while it logged in
spl=$(psql -qAtX -c "SHOW session_preload_libraries")
[ "$spl" = codevec_session ] && ok "session_preload_libraries = codevec_session on database codevec" \
	|| notok "session_preload_libraries = codevec_session on database codevec (got '$spl')"
read -r r0 f0 <<<"$(psql -qAtX -F ' ' -c "SELECT requests, fallbacks FROM codevec_gpu_status()")"
wr=$(psql -qAtX -c "SHOW codevec_session.warmup_result")
read -r r1 f1 <<<"$(psql -qAtX -F ' ' -c "SELECT requests, fallbacks FROM codevec_gpu_status()")"
[[ "$wr" =~ ^keyword\ [0-9.]+\ ms,\ hybrid\ [0-9.]+\ ms$ ]] && ok "a new session warmed up at login ($wr)" || notok "a new session warmed up at login ($wr)"
[ $((r1 - r0)) -ge 1 ] && [ "$f1" = "$f0" ] && ok "... on the GPU service (requests $r0 -> $r1, fallbacks $f0 -> $f1)" \
	|| notok "... on the GPU service (requests $r0 -> $r1, fallbacks $f0 -> $f1)"
psql -qX -c "SELECT device, state, requests, fallbacks FROM codevec_gpu_status()"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
