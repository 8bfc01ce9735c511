#!/usr/bin/env bash
# bench/serve/cpu.sh -- where a search request's CPU goes (issue 16): the
# server (codevec-serve), the PostgreSQL backends it talks to, and the load
# generator, per request, for a 16-connection wrk run in keyword mode.
#
#   PG*=... PGDATA_DIR=/path/to/cluster/data bash bench/serve/cpu.sh [DATABASE]
#   # DUR=10 (s), POOL=4, THREADS=8, CONNS=16, MODE=keyword, Q="parse the message header"
#
# CPU time is read from /proc/PID/schedstat (nanoseconds on a CPU) before
# and after the run: codevec-serve's process, every child of the cluster's
# postmaster (the pool's backends and the server's own processes), and
# wrk's.  On a machine shared with other jobs wall-clock rates fall with the
# load; CPU per request does much less, so it says what the two cores could
# serve alone: 2 cores / (CPU ms per request) = requests per second.
# The server and PostgreSQL must run on this machine.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ROOT=$(cd "$HERE/../.." && pwd)
SERVE=${SERVE:-$ROOT/serve/codevec-serve}
DB=${1:-${PGDATABASE:-bench_serve}}
DUR=${DUR:-10}
POOL=${POOL:-4}
THREADS=${THREADS:-8}
CONNS=${CONNS:-16}
MODE=${MODE:-keyword}
Q=${Q:-parse the message header}
: "${PGDATA_DIR:?set PGDATA_DIR to the data directory of the cluster}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/serve-cpu.XXXXXX")
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

export PGDATABASE=$DB
serve_start
url="http://127.0.0.1:$PORT/api/search?q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote_plus(sys.argv[1]))' "$Q")&mode=$MODE&k=10"
# open every pooled connection and let the plan cache settle
wrk -t2 -c"$CONNS" -d2s "$url" > /dev/null 2>&1

pm=$(head -1 "$PGDATA_DIR/postmaster.pid")
# CPU ns of processes (all their threads)
ns() { local t=0 p f; for p in "$@"; do for f in /proc/"$p"/task/*/schedstat; do [ -r "$f" ] && t=$((t + $(cut -d' ' -f1 "$f"))); done; done; echo $t; }
backends() { pgrep -P "$pm" | tr '\n' ' '; }
b=$(backends)
s0=$(ns "$SPID"); p0=$(ns $b); t0=$(date +%s.%N)
wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$url" > "$TMP/wrk" 2>&1
t1=$(date +%s.%N)
s1=$(ns "$SPID"); p1=$(ns $b)
reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$TMP/wrk")
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$TMP/wrk")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$TMP/wrk")
python3 - "$reqs" "$rps" "$s0" "$s1" "$p0" "$p1" "$t0" "$t1" "${non2xx:-0}" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys
reqs, rps, s0, s1, p0, p1, t0, t1, bad, load = sys.argv[1:]
reqs = int(reqs); wall = float(t1) - float(t0)
serve = (int(s1) - int(s0)) / 1e6 / reqs
pg = (int(p1) - int(p0)) / 1e6 / reqs
print("requests %d in %.1f s: %.0f req/s (%s non-2xx), load average %s" % (reqs, wall, float(rps), bad, load))
print("CPU per request: codevec-serve %.3f ms, PostgreSQL backends %.3f ms, both %.3f ms"
      % (serve, pg, serve + pg))
print("2 cores / (serve + backends) = %.0f req/s with the load generator's CPU left out" % (2000 / (serve + pg)))
PY
