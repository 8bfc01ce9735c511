#!/usr/bin/env bash
# tools/quickstart.sh — the README's first command.
#
#   bash tools/quickstart.sh [PATH [REPO]]
#
# Installs the dependencies (Debian 12, needs root or sudo), builds and
# installs the extension and codevec-load, installs the default encoder
# (make model: models/code-minilm-l6, offline), creates a local PostgreSQL 15 cluster under .codevec/ in
# this checkout (left running; socket in /tmp, port 5488, database
# "codevec"; codevec and plpgsql preloaded by the server; with the GPU
# service when a CUDA build sees an NVIDIA GPU, else set to the CPU), loads a real codebase with codevec-load (PATH; default: part
# of the Python 3.11 standard library that Debian installs), embeds every
# snippet with embed(), indexes the embeddings (gpuivf), and answers a
# keyword, a natural-language and a hybrid query with code.search().
# Idempotent: a second run rebuilds what changed, reuses the cluster and
# re-parses only files that changed.
#
# CODEVEC_PREBUILT=1: the extension, codevec-load and a model are installed
# already (from packages, or test/gpu/quickstart.sh's kit on a host without
# a package registry): skip the dependencies, the build and make model.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
port=${CODEVEC_PORT:-5488}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

if [ -z "${CODEVEC_PREBUILT:-}" ]; then
	echo "== installing dependencies (Debian packages)"
	bash tools/install-deps.sh

	echo "== building and installing codevec and codevec-load"
	make -s -j"$(nproc)" >/dev/null
	$sudo make -s install >/dev/null
	echo "== installing the default encoder (make model: models/code-minilm-l6, sha256-checked)"
	$sudo make -s model >/dev/null
else
	echo "== CODEVEC_PREBUILT: using the installed codevec ($(pg_config --pkglibdir)/codevec.so) and codevec-load"
fi

echo "== starting the local cluster in .codevec/ (port $port)"
eval "$(bash test/cluster.sh start "$top/.codevec" "$port")"
psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'codevec'" | grep 1 >/dev/null \
	|| psql -qX -d postgres -c "CREATE DATABASE codevec" >/dev/null
export PGDATABASE=codevec
# a database made by a development build of 0.1.0 from before the code text
# search configuration (same version number, so ALTER EXTENSION cannot add
# it): start it again
if psql -qAtX -c "SELECT 1 FROM pg_extension WHERE extname = 'codevec'" | grep 1 >/dev/null &&
	! psql -qAtX -c "SELECT 1 FROM pg_ts_parser WHERE prsname = 'codevec_code_parser'" | grep 1 >/dev/null; then
	echo "== the codevec database predates codevec_code_parser: recreating it"
	psql -qX -d postgres -c "DROP DATABASE codevec" -c "CREATE DATABASE codevec" >/dev/null
fi
PGOPTIONS="-c client_min_messages=warning" psql -qX -c "CREATE EXTENSION IF NOT EXISTS codevec" \
	-c "ALTER EXTENSION codevec UPDATE" >/dev/null

# The postmaster preloads codevec and plpgsql (a restart, once): it loads
# embed()'s model at start and every session shares it, so a session's
# first embed() costs about 1 ms of CPU instead of 140 ms and its first
# keyword search does not load two libraries (bench/keyword/README.md, a
# session's first call); a CUDA build also starts the GPU service, which
# without a GPU waits idle.
# (a list setting: ALTER SYSTEM takes one quoted string per library; a
# single 'a, b' would name one library called "a, b" and the server would
# not start)
preload=$(psql -qAtX -c "SHOW shared_preload_libraries")
libs=()
while read -r lib; do
	[ -n "$lib" ] && libs+=("$lib")
done < <(tr ',' '\n' <<<"$preload" | sed 's/^ *//; s/ *$//; s/^"\(.*\)"$/\1/')
added=0
for lib in codevec plpgsql; do
	printf '%s\n' "${libs[@]}" | grep -x "$lib" >/dev/null || { libs+=("$lib"); added=1; }
done
# a server that preloads them runs the library and the model it started
# with: one installed since (a second run) needs a restart
started=$(psql -qAtX -c "SELECT extract(epoch FROM pg_postmaster_start_time())::bigint")
newer=$(find -L "$(pg_config --pkglibdir)/codevec.so" "$(pg_config --sharedir)/extension/codevec_models" \
	-newermt "@$started" -print -quit 2>/dev/null || true)
if [ "$added" = 1 ] || [ -n "$newer" ]; then
	if [ "$added" = 1 ]; then
		echo "== preloading codevec and plpgsql in the server (shared_preload_libraries = '$(printf '%s, ' "${libs[@]}" | sed 's/, $//')', restart)"
		psql -qX -c "ALTER SYSTEM SET shared_preload_libraries = $(printf "'%s', " "${libs[@]//\'/\'\'}" | sed 's/, $//')" >/dev/null
	else
		echo "== restarting the server: it preloads codevec, and $newer is newer"
	fi
	bash test/cluster.sh stop "$top/.codevec"
	eval "$(bash test/cluster.sh start "$top/.codevec" "$port")"
	export PGDATABASE=codevec
fi

# The GPU when there is one: a CUDA build that sees a device embeds and
# searches on the GPU service; otherwise the database is set to the CPU,
# said here once instead of a WARNING in every session.
read -r cuda_compiled cuda_devices gpu_name <<<"$(psql -qAtX -F ' ' -c \
	"SELECT cuda_compiled, cuda_devices, coalesce(gpu_name, '') FROM codevec_build_info()")"
if [ "$cuda_compiled" = t ] && [ "${cuda_devices:-0}" -gt 0 ]; then
	psql -qX -c "ALTER DATABASE codevec RESET codevec.device" >/dev/null
	state=
	for _ in $(seq 1 120); do
		state=$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()")
		[ "$state" = ready ] || [ "$state" = "no device" ] && break
		sleep 0.5
	done
	if [ "$state" = ready ]; then
		echo "== GPU: $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()"): embed() and search run on the GPU service"
		# the login warm-up (src/codevec_session.c): a session's first
		# code.search then costs what its later ones cost; each login runs
		# one keyword and one hybrid search, whose embedding the GPU service
		# does in ~0.3 ms (on the CPU encoder ~10 ms: not set there)
		psql -qX -c "ALTER DATABASE codevec SET session_preload_libraries = 'codevec_session'" >/dev/null
		echo "== sessions of database codevec warm up at login (session_preload_libraries = 'codevec_session')"
	else
		echo "== GPU service not ready ($state: $(psql -qAtX -c "SELECT coalesce(message, '') FROM codevec_gpu_status()")): the CPU embeds and searches"
		psql -qX -c "ALTER DATABASE codevec SET codevec.device = cpu" >/dev/null
	fi
else
	if [ "$cuda_compiled" = t ]; then
		echo "== no NVIDIA GPU visible: embed() and search run on the CPU (codevec.device = cpu for database codevec)"
	else
		echo "== built without CUDA (no nvcc): embed() and search run on the CPU"
	fi
	psql -qX -c "ALTER DATABASE codevec SET codevec.device = cpu" >/dev/null
fi

# What to load: the user's tree, or six packages of the Python standard
# library (about 1,700 functions and classes: a minute or two to embed on
# two cores; pass /usr/lib/python3.11 for all 17,000).
if [ $# -ge 1 ]; then
	path=$1
	repo=${2:-$(basename "$(cd "$path" && pwd)")}
	include=()
else
	path=/usr/lib/python3.11
	repo=python3.11-stdlib
	include=(--include 'json/*' --include 'email/*' --include 'http/*' --include 'urllib/*'
		--include 'logging/*' --include 'concurrent/*')
fi
echo "== loading $path as repository \"$repo\" (parse, COPY, embed)"
loader=$(pg_config --bindir)/codevec-load
errs=$(mktemp)
trap 'rm -f "$errs"' EXIT
rc=0
"$loader" --repo "$repo" "${include[@]}" "$path" 2> >(tee "$errs" >&2) || rc=$?
# let tee finish writing (bash sets $! for a process substitution only
# from 5.1 on, and set -u stops on an unset one)
[ -n "${!:-}" ] && { wait "$!" 2>/dev/null || true; }
if [ "$rc" -eq 3 ] && grep -q "holds embeddings of another model" "$errs"; then
	# this checkout's own database, embedded by an earlier default model
	# (make model changed it): codevec-load never mixes two models'
	# vectors, so every snippet is embedded again with the current one
	echo "== the stored embeddings are another model's: re-embedding every snippet"
	psql -qX -c "UPDATE code.snippets SET emb = NULL" >/dev/null
	rc=0
	"$loader" --repo "$repo" "${include[@]}" "$path" || rc=$?
fi
[ "$rc" -le 1 ] || { echo "codevec-load failed with status $rc" >&2; exit "$rc"; }

echo "== indexing the embeddings (gpuivf, exact)"
PGOPTIONS="-c client_min_messages=warning" psql -qX -v ON_ERROR_STOP=1 \
	-c "CREATE INDEX IF NOT EXISTS snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" \
	-c "ANALYZE code.snippets"

# code.search(query, k, lang, path_like, exclude_tests, mode, rrf_k, depth)
search() {	# search MODE QUERY
	echo
	echo "== $1 search: '$2'"
	PGOPTIONS="-c client_min_messages=warning" \
	psql -qX -v ON_ERROR_STOP=1 -v q="$2" -v mode="$1" <<'SQL'
SELECT path, qualified_name, start_line AS line, round(score::numeric, 4) AS score,
       vector_rank AS v, keyword_rank AS kw
FROM code.search(:'q', k => 5, mode => :'mode');
SQL
}
search keyword 'parse header'
search vector 'split an email address into the display name and the address'
search hybrid 'retry the request when the server closes the connection'

cat <<EOF2

codevec is running. Connect with:
    psql -h /tmp -p $port -U postgres codevec
and search (hybrid: by meaning and by keywords; mode => 'vector' or 'keyword'):
    SELECT path, qualified_name, start_line, preview
    FROM code.search('read a config file and fall back to defaults', k => 10);
Stop / start the cluster:
    bash test/cluster.sh stop $top/.codevec
    bash test/cluster.sh start $top/.codevec $port
EOF2
