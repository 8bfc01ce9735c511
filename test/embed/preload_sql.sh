#!/usr/bin/env bash
# test/embed/preload_sql.sh — codevec.preload_model: the postmaster loads
# embed()'s model when codevec is in shared_preload_libraries, and every
# backend inherits it (src/embed.c, CodevecEmbedPreload).
#
# The reference is the server the PG* environment names (test/run.sh's
# throwaway cluster, codevec not preloaded): each of its backends loads and
# quantizes the model itself.  This script starts a second cluster with
# shared_preload_libraries = codevec and checks, there:
#   - the postmaster logs that it preloaded the default model;
#   - embed(text) of 40 real-looking texts and embed(text[]) of 300 (the
#     int8 path's groups on several OpenMP threads, started in the forked
#     backend) equal the reference server's bit for bit, and so does
#     another model set in the session (all-MiniLM-L6-v2, loaded by the
#     backend as before), the default again after it, and fp32 (which
#     reads the preloaded fp32 weights);
#   - the backend did not load a copy: after embed() its private memory
#     (Private_Dirty, /proc/PID/smaps_rollup) is under 40 MB, where a
#     reference backend's is over 60 MB (the fp32 weights alone are 90 MB);
#   - codevec.preload_model = off preloads nothing (no LOG line), and a
#     model that cannot be loaded is logged and the server still starts,
#     embed() then raising the usual error (58P01) in the session.
# Prints TAP lines and "preload-sql: P passed, F failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
passed=0
failed=0
check() {	# check NAME GOT WANT
	if [ "$2" = "$3" ]; then
		echo "ok - $1"; passed=$((passed + 1))
	else
		echo "not ok - $1: got '$2', want '$3'"; failed=$((failed + 1))
	fi
}
db=codevec_preload_test
ref() { PGOPTIONS="-c codevec.device=cpu" psql -qAtX -d "$db" "$@" 2>&1; }

dir=$(mktemp -d /tmp/codevec-preload.XXXXXX)
chmod 755 "$dir"
port=5581
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
trap 'bash "$top/test/cluster.sh" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
pre() { PGHOST=/tmp PGPORT=$port PGUSER=postgres PGOPTIONS="-c codevec.device=cpu" psql -qAtX -d postgres "$@" 2>&1; }
restart() {	# restart the preloading cluster with these extra settings
	# (settings add lines to postgresql.conf: the last of a name wins)
	bash "$top/test/cluster.sh" stop "$dir" >/dev/null 2>&1
	[ -f "$dir/server.log" ] && : >"$dir/server.log"
	bash "$top/test/cluster.sh" start "$dir" "$port" shared_preload_libraries=codevec "$@" >/dev/null || return 1
}
serverlog() { cat "$dir/server.log" 2>/dev/null; }

# the texts: code-like strings of 4 to 200 tokens
texts="SELECT g AS id, 'def f' || g || '(x): ' || repeat('return x + ' || g || ' ', (g * 7) % 60) AS s
	FROM generate_series(1, 300) g"
single="SELECT md5(string_agg(embed(s)::text, '|' ORDER BY id)) FROM ($texts) t WHERE id <= 40"
batch="SELECT md5(string_agg(e::text, '|' ORDER BY o)) FROM unnest(embed(ARRAY(SELECT s FROM ($texts) t ORDER BY id))) WITH ORDINALITY AS u(e, o)"

psql -qX -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
ref -c "CREATE EXTENSION IF NOT EXISTS codevec" >/dev/null
want_single=$(ref -c "$single")
want_batch=$(ref -c "$batch")
want_other=$(ref -c "SET codevec.model = 'all-MiniLM-L6-v2'" -c "$single")
want_fp32=$(ref -c "SET codevec.cpu_precision = fp32" -c "$single")
# kB of Private_Dirty of the session's backend after one embed() (superuser: pg_read_file of /proc)
private_kb() {
	"$@" -c "SELECT embed('open a file') IS NOT NULL" -c "SELECT substring(pg_read_file(
		'/proc/' || pg_backend_pid() || '/smaps_rollup') FROM 'Private_Dirty: *([0-9]+) kB')" | tail -n 1
}
ref_kb=$(private_kb ref)

if ! restart; then
	echo "not ok - the preloading cluster did not start"; echo "preload-sql: 0 passed, 1 failed"; exit 1
fi
pre -c "CREATE EXTENSION IF NOT EXISTS codevec" >/dev/null
check "the postmaster logs the preloaded model" \
	"$(serverlog | grep -c 'codevec: model "default" preloaded for embed() on the CPU')" 1
check "codevec.preload_model is on by default" "$(pre -c "SHOW codevec.preload_model")" on
check "embed(text) of 40 texts: bit for bit the reference server's" "$(pre -c "$single")" "$want_single"
check "embed(text[]) of 300 texts (several threads): bit for bit the reference's" "$(pre -c "$batch")" "$want_batch"
check "another model set in the session: the reference's vectors" \
	"$(pre -c "SET codevec.model = 'all-MiniLM-L6-v2'" -c "$single")" "$want_other"
check "... and back to the default in the same session: the preloaded one, as the reference" \
	"$(pre -c "SET codevec.model = 'all-MiniLM-L6-v2'" -c "SELECT embed('x') IS NOT NULL" -c "RESET codevec.model" -c "$single" | tail -n 1)" \
	"$want_single"
check "fp32 in the session (the shared fp32 weights): the reference's fp32 vectors" \
	"$(pre -c "SET codevec.cpu_precision = fp32" -c "$single")" "$want_fp32"
pre_kb=$(private_kb pre)
check "a reference backend holds its own copy (Private_Dirty > 60 MB)" \
	"$([ "${ref_kb:-0}" -gt 61440 ] && echo yes || echo "no: ${ref_kb:-?} kB")" yes
check "a preloaded backend holds no copy (Private_Dirty < 40 MB)" \
	"$([ -n "$pre_kb" ] && [ "$pre_kb" -lt 40960 ] && echo yes || echo "no: ${pre_kb:-?} kB")" yes

echo "# Private_Dirty after one embed(): reference backend ${ref_kb:-?} kB, preloaded ${pre_kb:-?} kB"

restart codevec.preload_model=off
check "codevec.preload_model = off: nothing preloaded" "$(serverlog | grep -c 'preloaded for embed()')" 0
check "codevec.preload_model = off: embed() as the reference" "$(pre -c "$single")" "$want_single"

restart codevec.preload_model=on codevec.model=no_such_model
check "a model that cannot be preloaded is logged" \
	"$(serverlog | grep -c 'codevec: could not preload model "no_such_model"')" 1
check "... and embed() raises the usual error in the session (58P01)" \
	"$(pre -v VERBOSITY=sqlstate -c "SELECT embed('x')" | head -n 1)" "ERROR:  58P01"

psql -qX -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
echo "preload-sql: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
