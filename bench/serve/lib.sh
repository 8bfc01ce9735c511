# bench/serve/lib.sh — sourced by run.sh and cpu.sh.
# shellcheck shell=bash disable=SC2034  # SPID and PORT are for the caller
#
# serve_start: start $SERVE (codevec-serve) on a free port with --pool $POOL
# and --threads $THREADS, its output in $TMP/serve.log; sets SPID (its pid,
# for the caller's cleanup) and PORT (empty if it did not say where it
# listens within 5 s).
serve_start() {
	"$SERVE" --port 0 --quiet --pool "$POOL" --threads "$THREADS" > "$TMP/serve.log" 2>&1 &
	SPID=$!
	PORT=
	for _ in $(seq 50); do
		PORT=$(sed -n 's|^codevec-serve: listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$TMP/serve.log")
		[ -n "$PORT" ] && break
		sleep 0.1
	done
}
