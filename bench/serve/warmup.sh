#!/usr/bin/env bash
# bench/serve/warmup.sh -- what codevec-serve's first requests cost with the
# pool's warm-up at start (the default) and without it (--no-warm-up).
#
#   PG*=... bash bench/serve/warmup.sh [DATABASE]     # ROUNDS=10, MODES="hybrid vector keyword"
#
# Each round starts the server twice, once each way (the order alternates),
# with --pool 1 so every request uses the one connection; waits until the
# warm-up logged its end (or 2 s without it), then sends, for each mode, three
# requests with different questions one after the other (curl's total time,
# the first mode's first request being the connection's first search).
# Prints per setting and mode the medians of the first and of the later
# requests, and RESULT lines.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SERVE=${SERVE:-$ROOT/serve/codevec-serve}
DB=${1:-${PGDATABASE:-bench_serve}}
ROUNDS=${ROUNDS:-10}
MODES=${MODES:-hybrid vector keyword}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
questions=("read+a+file+line+by+line" "parse+a+date+string" "sort+a+list+of+records" "send+an+email+message")
one() {	# one SETTING ROUND: a server, the requests, the times in $TMP/SETTING
	local setting=$1 r=$2 port pid i=0
	local args=(-d "$DB" --port 0 --pool 1 --quiet)
	[ "$setting" = cold ] && args+=(--no-warm-up)
	"$SERVE" "${args[@]}" > "$TMP/log" 2>&1 & pid=$!
	for _ in $(seq 200); do grep -q "^codevec-serve: listening" "$TMP/log" && break; sleep 0.05; done
	port=$(sed -n 's|^codevec-serve: listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$TMP/log")
	if [ "$setting" = warm ]; then
		for _ in $(seq 400); do grep -q "warm-up: .* opened" "$TMP/log" && break; sleep 0.05; done
	else sleep 2; fi
	for m in $MODES; do
		for n in 1 2 3; do
			q=${questions[$(( (r + i) % ${#questions[@]} ))]}; i=$((i + 1))
			t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/api/search?q=$q&mode=$m&k=10")
			echo "$m $n $t" >> "$TMP/$setting"
		done
	done
	kill -TERM "$pid"; wait "$pid" || true
}
for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then one warm "$r"; one cold "$r"; else one cold "$r"; one warm "$r"; fi
done
python3 - "$TMP" "$ROUNDS" $MODES <<'PY'
import statistics, sys
tmp, rounds, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
print("| setting | mode | first request p50 ms | later requests p50 ms | first - later |")
print("|---|---|---:|---:|---:|")
for setting in ("warm", "cold"):
    rows = [l.split() for l in open(f"{tmp}/{setting}")]
    for m in modes:
        first = [float(t) * 1e3 for mm, n, t in rows if mm == m and n == "1"]
        later = [float(t) * 1e3 for mm, n, t in rows if mm == m and n != "1"]
        f, l = statistics.median(first), statistics.median(later)
        name = "warm-up (default)" if setting == "warm" else "--no-warm-up"
        print(f"| {name} | {m} | {f:.2f} | {l:.2f} | {f - l:+.2f} |")
        print(f"RESULT,{setting},{m},rounds={rounds},first_ms={f:.3f},later_ms={l:.3f}", file=sys.stderr)
PY
