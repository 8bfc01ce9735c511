# test/lib.sh — helpers shared by the suites that run their own cluster
# (sourced after `top` is set; bash). Each suite prints TAP-like lines and
# ends with "N passed, N failed".
#
#   suite_cluster NAME BASEPORT   dir (a fresh folder /tmp/codevec-NAME.*),
#                                 port (the first free from BASEPORT),
#                                 passed=0, failed=0
#   cluster_start SETTINGS...     start the suite's cluster (test/cluster.sh)
#                                 with these settings; PGDATABASE=postgres
#   cluster_stop                  stop it (quietly)
#   tap_ok MESSAGE / tap_not_ok MESSAGE
#                                 one TAP line, counted in passed / failed
#   check DESCRIPTION SQL WANT    ok when SQL's output (psql -qAtX, plus the
#                                 options in CHECK_PSQL) has WANT as a line
#   wait_state STATE              poll codevec_gpu_status() up to 20 s
#   tap_result                    the "N passed, N failed" line; its status
#                                 (test/gpu/setup.sh gives its scripts these
#                                 too)

suite_cluster() {
	dir=$(mktemp -d "/tmp/codevec-$1.XXXXXX")
	chmod 755 "$dir"
	port=$2
	while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
	passed=0; failed=0
}

cluster_start() {
	eval "$(bash "$top/test/cluster.sh" start "$dir" "$port" "$@")" || exit 1
	export PGDATABASE=postgres
}

cluster_stop() {
	bash "$top/test/cluster.sh" stop "$dir" >/dev/null 2>&1
}

tap_ok() {
	passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"
}

tap_not_ok() {
	failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1"
}

check() {
	local got
	# shellcheck disable=SC2086 # CHECK_PSQL is a list of options
	got=$(psql -qAtX ${CHECK_PSQL:-} -c "$2" 2>&1)
	if grep -qxF -- "$3" <<<"$got"; then
		tap_ok "$1"
	else
		tap_not_ok "$1 (got '$(echo "$got" | head -5 | tr '\n' '|')', want '$3')"
	fi
}

wait_state() {
	for _ in $(seq 1 200); do
		[ "$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()" 2>/dev/null)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

tap_result() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
