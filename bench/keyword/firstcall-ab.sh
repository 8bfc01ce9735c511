#!/usr/bin/env bash
# bench/keyword/firstcall-ab.sh -- a session's first call and a backend's
# start, two builds of codevec.so side by side, each without and with
# shared_preload_libraries (issue 21, item 3).
#
#   LIBDIR=... PGCTL=CMD bash firstcall-ab.sh BEFORE.so AFTER.so [ROUNDS] [SESSIONS]
#
# The server the PG* variables name is restarted once per configuration by
# PGCTL, a command that runs pg_ctl for it with the arguments it is given
# (pg_ctl -D DATA "$@", as the user that runs the server) with codevec.so replaced by the build under test
# (LIBDIR: the server's pkglibdir, a private installation's, never a shared
# one), in this order, ROUNDS times (default 2), so that the machine's load
# hits every configuration alike:
#   before              BEFORE.so, nothing preloaded
#   before-preload      BEFORE.so, shared_preload_libraries = 'codevec, plpgsql'
#   after               AFTER.so, nothing preloaded
#   after-preload       AFTER.so, the same preload (the model preloaded too)
#   after-preload-off   AFTER.so, the same preload, codevec.preload_model = off
# and firstcall.py runs its three modes, --parts and --connect in each
# (SESSIONS fresh sessions, default 20), appending JSON lines with a
# "config" key to OUT (default results-firstcall.jsonl), the load average
# before each run as a {"config": ..., "loadavg": ...} line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
before=$1; after=$2; rounds=${3:-2}; sessions=${4:-20}
out=${OUT:-$here/results-firstcall.jsonl}
py=${PY:-$here/../quality/.venv/bin/python}
: "${LIBDIR:?LIBDIR: pkglibdir of the server}" "${PGCTL:?PGCTL: how to run pg_ctl for the server}"

run() {	# run TAG LIB SETTINGS...
	local tag=$1 lib=$2; shift 2
	$PGCTL stop -m fast >/dev/null 2>&1 || true
	install -m 755 "$lib" "$LIBDIR/codevec.so"
	local opts="" kv
	for kv in "$@"; do opts="$opts -c $kv"; done
	$PGCTL -w -l "${SERVER_LOG:-/tmp/firstcall-ab.server.log}" -o "$opts" start >/dev/null
	echo "{\"config\": \"$tag\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"time\": \"$(date -u +%H:%M:%S)\"}" >>"$out"
	(cd "$here" && "$py" firstcall.py --sessions "$sessions" --parts --connect --tag "$tag") >>"$out"
}
for _ in $(seq "$rounds"); do
	run before "$before"
	run before-preload "$before" "shared_preload_libraries=codevec,plpgsql"
	run after "$after"
	run after-preload "$after" "shared_preload_libraries=codevec,plpgsql"
	run after-preload-off "$after" "shared_preload_libraries=codevec,plpgsql" "codevec.preload_model=off"
done
echo "appended to $out"
