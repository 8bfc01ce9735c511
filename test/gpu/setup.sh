# test/gpu/setup.sh — sourced by the GPU test and benchmark scripts on the
# CUDA host (no package registry; see ../shared/gpu-host/README.md), as root:
#
#   top=/path/to/repo; source "$top/test/gpu/setup.sh" [postgres settings...]
#   (top defaults to the repository this file is in)
#
# Installs what test/gpu/pack.sh put in .gpukit/ — Debian's OpenBLAS,
# utf8proc, cJSON (xlibs.tar.xz), the extension built with CUDA
# (ext.tar.xz: codevec.so, codevec_cuda_encoder.so, codevec_session.so, SQL, control, pgTAP),
# the default model (minilm-f16: all-MiniLM-L6-v2 with its weights stored
# as F16, to fit a 64 MiB transfer; without it, the tree's shipped
# models/code-minilm-l6 when it travelled) — starts PostgreSQL 15 from pgkit.tar.xz
# with shared_preload_libraries = codevec, plpgsql (doc/gpu.md's advice)
# plus the given settings, creates
# the extension in database postgres and waits for the GPU service.
# Defines gpu_server_stop and (from test/lib.sh) check DESCRIPTION SQL EXPECTED (TAP lines;
# counters passed and failed) and tap_result (the "N passed, N failed"
# line; its status).
# top: the caller's, else the repository this file is in (a caller that
# forgot it used to get kit=/.gpukit and a setup that failed quietly)
top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
kit=$top/.gpukit
[ -f "$kit/pgkit.tar.xz" ] || { echo "test/gpu/setup.sh: no $kit/pgkit.tar.xz (bash test/gpu/pack.sh here, carry .gpukit)" >&2; return 1; }
passed=${passed:-0}; failed=${failed:-0}
# where start-postgres.sh unpacks the kit (pg_config, psql, pgbench), also
# for a second script on a server an earlier call started
export PATH=/opt/pgkit/usr/lib/postgresql/15/bin:/opt/pgkit/usr/bin:$PATH

# check, tap_ok, tap_not_ok, tap_result: the suites' own (test/lib.sh)
source "$top/test/lib.sh"
# gpu_counters: "REQUESTS FALLBACKS" of codevec_gpu_status() (requests the
# service served; requests any backend answered on the CPU instead)
gpu_counters() {
	psql -qAtX -F ' ' -c "SELECT requests, fallbacks FROM codevec_gpu_status()"
}
# gpu_answered DESCRIPTION "REQ0 FB0" MIN: a TAP line saying that the GPU
# answered what was just compared: the service's request counter rose by
# at least MIN since gpu_counters printed "REQ0 FB0", and no request fell
# back to the CPU. (Under codevec.device = cuda a GPU failure is an ERROR;
# this also catches a path that never asked the GPU at all.)
gpu_answered() {
	local r0 f0 r1 f1
	read -r r0 f0 <<<"$2"
	read -r r1 f1 <<<"$(gpu_counters)"
	if [ -n "$r1" ] && [ $((r1 - r0)) -ge "$3" ] && [ "$f1" = "$f0" ]; then
		passed=$((passed + 1)); echo "ok $((passed + failed)) - $1: the GPU answered ($((r1 - r0)) requests >= $3, 0 fallbacks)"
	else
		failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1: the GPU did not answer (requests +$((${r1:-0} - r0)), want >= $3; fallbacks $f0 -> ${f1:-?})"
	fi
}

# kit_postgres_start [SETTINGS...]: start the kit's server on /tmp/pgdata and
# take its environment (PATH, LD_LIBRARY_PATH, PG*); non-zero when the start
# failed (an eval of start-postgres.sh's empty output would succeed and hide it)
kit_postgres_start() {
	local env
	env=$(bash "$kit/start-postgres.sh" "$kit/pgkit.tar.xz" /tmp/pgdata "$@") || return 1
	eval "$env"
}

# gpu_server_stop: stop the kit's server (a later source of this file
# starts it again, e.g. after another codevec.so was installed)
gpu_server_stop() {
	su pg -c "LD_LIBRARY_PATH=/opt/pgkit/usr/lib/x86_64-linux-gnu /opt/pgkit/usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgdata -m fast -w stop" >/dev/null 2>&1
}

if [ ! -e /tmp/.codevec-gpu-setup ]; then
	# a failed start stops here, before the marker
	kit_postgres_start || return 1
	tar xJf "$kit/xlibs.tar.xz" -C /tmp && cp /tmp/xlibs/* /usr/local/lib/
	# cuBLASLt for codevec_cuda_encoder.so: the toolkit's, else PyTorch's wheel
	if [ ! -e /usr/local/cuda/lib64/libcublasLt.so.13 ]; then
		lt=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib", "libcublasLt.so.13"))' 2>/dev/null || true)
		[ -n "$lt" ] && ln -sf "$lt" /usr/local/lib/libcublasLt.so.13
	fi
	ldconfig
	mkdir -p /tmp/ext && tar xJf "$kit/ext.tar.xz" -C /tmp/ext
	# install(1) unlinks what it replaces: a running server keeps its mapping
	install -m 755 /tmp/ext/codevec.so /tmp/ext/codevec_cuda_encoder.so "$(pg_config --pkglibdir)/"
	# the login warm-up (src/codevec_session.c), where the kit has it
	[ -f /tmp/ext/codevec_session.so ] && install -m 755 /tmp/ext/codevec_session.so "$(pg_config --pkglibdir)/"
	cp /tmp/ext/codevec.control /tmp/ext/codevec--*.sql /tmp/ext/pgtap* "$(pg_config --sharedir)/extension/"
	if [ -d /tmp/ext/loader ]; then
		cp /tmp/ext/loader/lib/* /usr/local/lib/ && ldconfig
		cp /tmp/ext/loader/codevec-load "$(pg_config --bindir)/"
	fi
	gpu_server_stop || true
	touch /tmp/.codevec-gpu-setup
fi
# the default model, whenever a call brought it (it may come in a later call)
models=$(pg_config --sharedir)/extension/codevec_models
if [ -f "$kit/minilm-f16/model.safetensors" ] && [ ! -f "$models/all-MiniLM-L6-v2/model.safetensors" ]; then
	mkdir -p "$models" && cp -r "$kit/minilm-f16" "$models/all-MiniLM-L6-v2" && chmod -R a+rX "$models"
	ln -sfn all-MiniLM-L6-v2 "$models/default"
elif [ ! -e "$models/default" ] && [ -f "$top/models/code-minilm-l6/model.safetensors" ]; then
	# no base model in the kit: the shipped default (F16 already), as make model installs it
	mkdir -p "$models" && cp -r "$top/models/code-minilm-l6" "$models/code-minilm-l6" && chmod -R a+rX "$models"
	ln -sfn code-minilm-l6 "$models/default"
fi
kit_postgres_start shared_preload_libraries=codevec,plpgsql \
	shared_buffers=8GB max_parallel_workers_per_gather=0 jit=off max_connections=200 "$@" || return 1
export PGDATABASE=postgres
psql -qX -c "CREATE EXTENSION IF NOT EXISTS codevec" >/dev/null
for _ in $(seq 1 100); do
	[ "$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()")" = ready ] && break; sleep 0.1
done
