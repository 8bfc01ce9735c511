#!/usr/bin/env bash
# tools/quickstart.sh — the README's first command.
#
#   bash tools/quickstart.sh
#
# Installs the dependencies (Debian 12, needs root or sudo), builds and
# installs the extension, creates a local PostgreSQL 15 cluster under
# .codevec/ in this checkout (left running; socket in /tmp, port 5488,
# database "codevec"), and runs an exact vector search there.
# Idempotent: a second run rebuilds what changed and reuses the cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
port=${CODEVEC_PORT:-5488}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

echo "== installing dependencies (Debian packages)"
bash tools/install-deps.sh

echo "== building and installing codevec"
make -s -j"$(nproc)" >/dev/null
$sudo make -s install >/dev/null

echo "== starting the local cluster in .codevec/ (port $port)"
eval "$(bash test/cluster.sh start "$top/.codevec" "$port")"
psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'codevec'" | grep -q 1 \
	|| psql -qX -d postgres -c "CREATE DATABASE codevec" >/dev/null
export PGDATABASE=codevec
PGOPTIONS="-c client_min_messages=warning" psql -qX -c "CREATE EXTENSION IF NOT EXISTS codevec" -c "ALTER EXTENSION codevec UPDATE" >/dev/null

echo "== exact vector search over a small table"
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
-- 10,000 deterministic pseudo-random 384-dimension vectors (md5-derived)
CREATE TABLE IF NOT EXISTS demo_items (id int PRIMARY KEY, emb codevec(384));
INSERT INTO demo_items
SELECT i, (SELECT array_agg(('x' || substr(md5(i || ':' || j), 1, 8))::bit(32)::int / 2147483648.0)::real[]
           FROM generate_series(1, 384) j)::codevec(384)
FROM generate_series(1, 10000) i
ON CONFLICT (id) DO NOTHING;
ANALYZE demo_items;
\echo
\echo 'SELECT id, emb <=> q AS cosine_distance FROM demo_items ORDER BY emb <=> q LIMIT 5  -- q = item 42'
SELECT d.id, round((d.emb <=> q.emb)::numeric, 6) AS cosine_distance
FROM demo_items d, (SELECT emb FROM demo_items WHERE id = 42) q
ORDER BY d.emb <=> q.emb
LIMIT 5;
SQL

cat <<EOF2

codevec is running. Connect with:
    psql -h /tmp -p $port -U postgres codevec
Stop / start the cluster:
    bash test/cluster.sh stop $top/.codevec
    bash test/cluster.sh start $top/.codevec $port
EOF2
