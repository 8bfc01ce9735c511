# test/tap.sh — the TAP helpers of the suites that count their checks in
# N, PASS and FAIL (and SKIP): sourced after ROOT is set, bash. Each check
# prints "ok N - DESCRIPTION" or "not ok N - DESCRIPTION" and diagnostic
# lines that start with "#". (test/lib.sh has the other suites' helpers.)
#
#   ok STATUS DESCRIPTION [FILE]    ok when STATUS is 0; when not, FILE's
#                                   last 20 lines as diagnostics
#   is GOT WANT DESCRIPTION         ok when GOT is WANT; when not, both
#                                   (their first 3000 bytes)
#   like GOT PATTERN DESCRIPTION    ok when GOT matches the grep PATTERN
#   skip DESCRIPTION REASON         a check not run here (counted in SKIP)
#   finish                          "N passed, N failed" and exit: 1 when
#                                   any check failed, else 0
#
# Each returns 0, whatever the check's outcome.

ok() {
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then
		PASS=$((PASS + 1)); echo "ok $N - $2"
	else
		FAIL=$((FAIL + 1)); echo "not ok $N - $2"
		if [ -n "${3:-}" ] && [ -f "$3" ]; then tail -n 20 "$3" | sed 's/^/#   /'; fi
	fi
	return 0
}

is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf "#   got:  '%s'\n" "$(printf '%s' "$1" | head -c 3000)"
		printf "#   want: '%s'\n" "$(printf '%s' "$2" | head -c 3000)"
	fi
	return 0
}

like() {
	if printf '%s\n' "$1" | grep -q -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf "#   got:  '%s'\n" "$(printf '%s' "$1" | head -c 3000)"
		printf '#   want: /%s/\n' "$2"
	fi
	return 0
}

skip() {
	N=$((N + 1)); SKIP=$((SKIP + 1)); echo "ok $N - $1 # SKIP $2"
	return 0
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
	exit $?
}
