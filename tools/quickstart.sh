#!/usr/bin/env bash
# tools/quickstart.sh — the README's first command.
#
#   bash tools/quickstart.sh [PATH [REPO]]
#
# Installs the dependencies (Debian 12, needs root or sudo), builds and
# installs the extension and codevec-load, downloads the default encoder
# (make model), creates a local PostgreSQL 15 cluster under .codevec/ in
# this checkout (left running; socket in /tmp, port 5488, database
# "codevec"), loads a real codebase with codevec-load (PATH; default: part
# of the Python 3.11 standard library that Debian installs), embeds every
# snippet with embed(), and answers a keyword query and a natural-language
# query over it. Idempotent: a second run rebuilds what changed, reuses the
# cluster and re-parses only files that changed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
port=${CODEVEC_PORT:-5488}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

echo "== installing dependencies (Debian packages)"
bash tools/install-deps.sh

echo "== building and installing codevec and codevec-load"
make -s -j"$(nproc)" >/dev/null
$sudo make -s install >/dev/null
echo "== downloading the default encoder (make model)"
$sudo make -s model >/dev/null

echo "== starting the local cluster in .codevec/ (port $port)"
eval "$(bash test/cluster.sh start "$top/.codevec" "$port")"
psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'codevec'" | grep -q 1 \
	|| psql -qX -d postgres -c "CREATE DATABASE codevec" >/dev/null
export PGDATABASE=codevec
PGOPTIONS="-c client_min_messages=warning" psql -qX -c "CREATE EXTENSION IF NOT EXISTS codevec" \
	-c "ALTER EXTENSION codevec UPDATE" >/dev/null

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
rc=0
"$loader" --repo "$repo" "${include[@]}" "$path" || rc=$?
[ "$rc" -le 1 ] || { echo "codevec-load failed with status $rc" >&2; exit "$rc"; }

echo
echo "== keyword search: 'parse header'"
psql -qX -v ON_ERROR_STOP=1 -v repo="$repo" <<'SQL'
SELECT f.path, s.qualified_name AS symbol, s.start_line AS line
FROM code.snippets s
JOIN code.files f ON f.id = s.file_id
JOIN code.repos r ON r.id = f.repo_id
WHERE r.name = :'repo' AND s.tsv @@ websearch_to_tsquery('simple', 'parse header')
ORDER BY ts_rank(s.tsv, websearch_to_tsquery('simple', 'parse header')) DESC, s.id
LIMIT 5;
SQL

q='split an email address into the display name and the address'
echo "== natural-language search: '$q'"
psql -qX -v ON_ERROR_STOP=1 -v repo="$repo" -v q="$q" <<'SQL'
SELECT f.path, s.qualified_name AS symbol, s.start_line AS line,
       round((s.emb <=> embed(:'q'))::numeric, 3) AS distance
FROM code.snippets s
JOIN code.files f ON f.id = s.file_id
JOIN code.repos r ON r.id = f.repo_id
WHERE r.name = :'repo' AND s.emb IS NOT NULL
ORDER BY s.emb <=> embed(:'q')
LIMIT 5;
SQL

cat <<EOF2

codevec is running. Connect with:
    psql -h /tmp -p $port -U postgres codevec
and search by meaning:
    SELECT f.path, s.qualified_name, s.start_line
    FROM code.snippets s JOIN code.files f ON f.id = s.file_id
    ORDER BY s.emb <=> embed('read a config file and fall back to defaults') LIMIT 10;
Stop / start the cluster:
    bash test/cluster.sh stop $top/.codevec
    bash test/cluster.sh start $top/.codevec $port
EOF2
