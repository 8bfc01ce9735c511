#!/usr/bin/env bash
# bench/loader/embed-cpu.sh -- issue 23's CPU measurement with embeddings:
# loads a small real tree (default: json, email, http, logging and urllib of
# the Python standard library, 1,589 snippets) with embed() on this
# machine's CPU, alternating a base loader and the new one, each into a
# fresh database, and prints per run: wall, load average, the loader's
# "time:" lines, the embedded count.
#
#   BASE=/tmp/cvl-base/codevec-load bash bench/loader/embed-cpu.sh [ROUNDS [PATH...]]
#
# The server: the one the PG* variables name (the codevec extension and a
# model installed).  NEW defaults to this checkout's loaders/codevec-load;
# NEW_OPTS adds options to the new loader's runs (e.g. --connections 1).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
new=${NEW:-$top/loaders/codevec-load}
base=${BASE:-}
rounds=${1:-2}
shift $(( $# > 0 ? 1 : 0 ))
if [ $# -eq 0 ]; then
	set -- /usr/lib/python3.11/json /usr/lib/python3.11/email /usr/lib/python3.11/http \
		/usr/lib/python3.11/logging /usr/lib/python3.11/urllib
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(psql -qAtX -d postgres -c 'SHOW server_version'); commit $(git -C "$top" rev-parse --short HEAD)"
echo "tree: $*"
one() {		# one LABEL LOADER [OPTS...]
	local label=$1 loader=$2 t0 t1 la
	shift 2
	psql -qX -d postgres -c "DROP DATABASE IF EXISTS cvl_embed_cpu" -c "CREATE DATABASE cvl_embed_cpu" 2>/dev/null
	la=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s.%N)
	# one repository per path, as codevec-load names them
	"$loader" -d cvl_embed_cpu --no-progress "$@" "${paths[@]}" 2> /tmp/cvl-embed-cpu.log
	t1=$(date +%s.%N)
	echo "### $label: wall $(echo "$t1 - $t0" | bc) s, load average $la"
	grep -E 'time:|embedded|embed:' /tmp/cvl-embed-cpu.log | sed 's/^/    /'
	echo "    database: $(psql -qAtX -d cvl_embed_cpu -c "SELECT count(emb) || ' of ' || count(*) || ' embedded' FROM code.snippets")"
}
paths=("$@")
for r in $(seq 1 "$rounds"); do
	[ -n "$base" ] && one "base $r" "$base"
	# shellcheck disable=SC2086
	one "new $r" "$new" ${NEW_OPTS:-}
done
psql -qX -d postgres -c "DROP DATABASE IF EXISTS cvl_embed_cpu" 2>/dev/null
