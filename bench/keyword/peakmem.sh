#!/usr/bin/env bash
# bench/keyword/peakmem.sh -- a statement's peak backend memory.
#
#   PG*=... bash bench/keyword/peakmem.sh DATABASE "SQL"
#
# Runs SQL in a fresh session and samples its backend's /proc/PID/status
# every 0.5 s (the server must run on this machine): prints the peak
# RssAnon (private memory: what the statement's memory contexts take) and
# the last VmHWM (which also counts the shared buffers the backend touched),
# and the wall time.  bench/keyword/README.md's refresh numbers come from
#   bash bench/keyword/peakmem.sh linux "SELECT code.bm25_refresh()"
set -eu
db=$1; sql=$2
f=$(mktemp)
trap 'rm -f "$f"' EXIT
t0=$(date +%s.%N)
psql -X -At -d "$db" -c "SELECT pg_backend_pid()" -c "SELECT pg_sleep(0.5)" -c "$sql" -c "SELECT 'done'" > "$f" 2>&1 &
p=$!
while [ ! -s "$f" ]; do sleep 0.05; done
pid=$(head -1 "$f")
max=0; hwm=0
while ! grep -q '^done$' "$f"; do
	a=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
	[ -z "$a" ] && break
	h=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
	[ "$a" -gt "$max" ] && max=$a
	hwm=${h:-$hwm}
	sleep 0.5
done
wait "$p" || true
t1=$(date +%s.%N)
sed -n '3,$p' "$f" | grep -v '^done$' || true
printf 'peak RssAnon %d kB, VmHWM %d kB, wall %.1f s\n' "$max" "$hwm" "$(echo "$t1 - $t0" | bc)"
