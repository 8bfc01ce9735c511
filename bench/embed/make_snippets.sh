#!/usr/bin/env bash
# bench/embed/make_snippets.sh — the real snippets the int8 benchmark and
# fidelity check embed: codevec-load (installed) parses a real tree
# (default: Debian's Python 3.11 standard library, /usr/lib/python3.11) with
# its defaults but --no-embed into a throwaway cluster, and every snippet's
# embed_text (exactly what embed() would get, in id order) is written as
# one JSON string per line.
#
#   bash bench/embed/make_snippets.sh [OUT [TREE]]   (default OUT: bench/embed/build/snippets.jsonl)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$here/build/snippets.jsonl}
tree=${2:-/usr/lib/python3.11}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/cv-int8-snip.XXXXXX); chmod 755 "$work"
port=5651; while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
trap 'bash "$top/test/cluster.sh" stop "$work/c" >/dev/null 2>&1; rm -rf "$work"' EXIT
eval "$(bash "$top/test/cluster.sh" start "$work/c" "$port")"
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
"$(pg_config --bindir)/codevec-load" --no-progress --no-embed --repo "$(basename "$tree")" "$tree" >&2 || true
psql -qAtX -c "SELECT to_json(embed_text)::text FROM code.snippets WHERE embed_text IS NOT NULL ORDER BY id" >"$out"
echo "$(wc -l <"$out") snippets -> $out" >&2
