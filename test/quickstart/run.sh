#!/usr/bin/env bash
# test/quickstart/run.sh -- the README's first command, tools/quickstart.sh,
# on the codevec that test/run.sh installed (CODEVEC_PREBUILT=1: no
# packages, build or model step), run four times on one cluster:
#   1. fresh: the cluster starts, preloads codevec and plpgsql (one
#      restart), the postmaster preloads the model, a small tree (Python's
#      json package, CVL_TEST_PYLIB) is loaded, embedded and searched;
#   2. again: nothing to change, so no restart;
#   3. with the installed codevec.so dated after the server's start (what a
#      second run's make install does): one restart;
#   4. with another library already preloaded (pg_stat_statements): kept,
#      codevec and plpgsql added as separate names (one quoted 'a, b'
#      string names a single library and the server does not start).
# The script and test/cluster.sh are copied into a scratch checkout, so the
# cluster (.codevec/ there) is the suite's own; stopped and removed at the
# end. PostgreSQL 15 only (test/run.sh adds it there). Ends with
# "N passed, N failed"; exit status 1 on failure.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=test/lib.sh
. "$top/test/lib.sh"
suite_cluster quickstart 5720
pylib=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
if [ ! -d "$pylib/json" ] || [ ! -x "$(pg_config --bindir)/codevec-load" ]; then
	echo "ok 1 # SKIP no $pylib/json or no installed codevec-load"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
mkdir -p "$dir/tools" "$dir/test" "$dir/corpus"
cp "$top/tools/quickstart.sh" "$dir/tools/"
cp "$top/test/cluster.sh" "$dir/test/"
cp -r "$pylib/json" "$dir/corpus/"
find "$dir/corpus" -name __pycache__ -prune -exec rm -rf {} +
so=$(pg_config --pkglibdir)/codevec.so
so_mtime=$(stat -c %Y "$so")
cleanup() {
	touch -d "@$so_mtime" "$so" 2>/dev/null
	bash "$top/test/cluster.sh" stop "$dir/.codevec" >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT

qs() {	# qs N: run the quick start, its output in $dir/run.N
	(cd "$dir" && env -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER CODEVEC_PREBUILT=1 CODEVEC_PORT="$port" \
		bash tools/quickstart.sh "$dir/corpus/json" json) >"$dir/run.$1" 2>&1
}
export PGHOST=/tmp PGPORT=$port PGUSER=postgres PGDATABASE=codevec
started() { psql -qAtX -c "SELECT pg_postmaster_start_time()" 2>&1; }

qs 1; rc=$?
if [ "$rc" = 0 ]; then tap_ok "a fresh quick start ends with status 0"
else tap_not_ok "a fresh quick start: status $rc: $(tail -5 "$dir/run.1" | tr '\n' '|')"; fi
if grep -q "^== preloading codevec and plpgsql in the server" "$dir/run.1"; then
	tap_ok "it preloads codevec and plpgsql (and says so)"
else tap_not_ok "no preload line in: $(grep '^==' "$dir/run.1" | tr '\n' '|')"; fi
check "shared_preload_libraries is codevec, plpgsql" "SHOW shared_preload_libraries" "codevec, plpgsql"
if grep -q 'model "default" preloaded for embed()' "$dir/.codevec/server.log"; then
	tap_ok "the postmaster preloaded the model"
else tap_not_ok "no model preload in the server log: $(grep -i codevec "$dir/.codevec/server.log" | tail -3 | tr '\n' '|')"; fi
check "the tree was loaded and embedded" \
	"SELECT count(*) > 20 AND count(*) = count(emb) FROM code.snippets" t
check "a hybrid search finds a decode method of json's JSONDecoder first" \
	"SELECT qualified_name IN ('decoder.JSONDecoder.decode', 'decoder.JSONDecoder.raw_decode')
	 FROM code.search('decode a JSON document from a string', k => 1)" t

t0=$(started)
qs 2; rc=$?
if [ "$rc" = 0 ] && ! grep -qE "^== (preloading|restarting)" "$dir/run.2" && [ "$(started)" = "$t0" ]; then
	tap_ok "a second run with nothing newer installed: status 0, no restart"
else tap_not_ok "second run: status $rc, $(grep '^==' "$dir/run.2" | tr '\n' '|'), started $t0 -> $(started)"; fi

touch -d "@$(( $(date +%s) + 5 ))" "$so"
qs 3; rc=$?
touch -d "@$so_mtime" "$so"
if [ "$rc" = 0 ] && grep -q "^== restarting the server: it preloads codevec, and .*codevec.so is newer" "$dir/run.3" &&
	[ "$(started)" != "$t0" ]; then
	tap_ok "a run after codevec.so was installed again restarts the preloading server"
else tap_not_ok "third run: status $rc, $(grep '^==' "$dir/run.3" | tr '\n' '|'), started $t0 -> $(started)"; fi

psql -qX -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
bash "$top/test/cluster.sh" stop "$dir/.codevec" >/dev/null 2>&1
bash "$top/test/cluster.sh" start "$dir/.codevec" "$port" >/dev/null 2>&1
check "(the cluster now preloads pg_stat_statements only)" "SHOW shared_preload_libraries" "pg_stat_statements"
qs 4; rc=$?
if [ "$rc" = 0 ]; then tap_ok "a run on a server that preloads another library ends with status 0"
else tap_not_ok "fourth run: status $rc: $(tail -5 "$dir/run.4" | tr '\n' '|')"; fi
check "... which keeps it and adds codevec and plpgsql as separate names" \
	"SELECT current_setting('shared_preload_libraries') || ' / ' ||
	        (SELECT count(*) FROM pg_extension WHERE extname = 'codevec')" "pg_stat_statements, codevec, plpgsql / 1"
grep -E "PANIC|terminated by signal|could not access file" "$dir/.codevec/server.log" | head -3
check "no PANIC, crash or missing library in the server log" \
	"SELECT $(grep -cE 'PANIC|terminated by signal|could not access file' "$dir/.codevec/server.log")" 0
tap_result
