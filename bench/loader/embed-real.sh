#!/usr/bin/env bash
# bench/loader/embed-real.sh — issue 22's repro loaded whole WITH embeddings:
# huggingface_hub 1.33.0 (PyPI) through codevec-load with its defaults on a
# throwaway cluster, embed() on this machine's CPU (no GPU service). Prints
# the loader's summary and timings, then what the database holds: files,
# snippets, snippets without an embedding (0 wanted), and the exit status
# (0, or 1 with every skip explained).
#
#   bash bench/loader/embed-real.sh [PATH [REPO]]   (the extension, model and
#                                  loader installed; PATH: another real tree,
#                                  e.g. /usr/lib/python3.11, instead)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/cvl-embed-real.XXXXXX); chmod 755 "$work"
port=5641; while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
trap 'bash "$top/test/cluster.sh" stop "$work/c" >/dev/null 2>&1; rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
	tree=$1; repo=${2:-$(basename "$1")}
else
	(cd "$work" && python3 -m pip download -q --no-deps huggingface_hub==1.33.0 >/dev/null 2>&1 &&
		python3 -m zipfile -e huggingface_hub-1.33.0-py3-none-any.whl src >/dev/null) || { echo "download failed"; exit 1; }
	tree=$work/src/huggingface_hub; repo=hfh
fi
eval "$(bash "$top/test/cluster.sh" start "$work/c" "$port")"
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
loader=$(pg_config --bindir)/codevec-load
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(psql -qAtX -c 'SHOW server_version'); commit $(git -C "$top" rev-parse --short HEAD)"
t0=$(date +%s.%N)
"$loader" --no-progress --repo "$repo" "$tree" 2>&1 | grep -v '^$'
rc=${PIPESTATUS[0]}
t1=$(date +%s.%N)
echo "exit status: $rc; wall: $(echo "$t1 - $t0" | bc) s"
psql -qAtX -F ' | ' -c "SELECT 'files ' || (SELECT count(*) FROM code.files), 'snippets ' || count(*),
	'without embedding ' || count(*) FILTER (WHERE emb IS NULL), 'bm25 built ' || (SELECT built FROM code.bm25_params)
	FROM code.snippets"
