#!/usr/bin/env bash
# test/meta/suite_result_test.sh — test/suite_result.sh (how test/run.sh
# counts a suite) fed with hand-written logs whose verdict is known: a
# crash after test 34 of 40, a missing result line, a non-zero exit with
# every line "ok", skips, a result line that disagrees with its TAP lines.
# Prints TAP lines; the caller (test/meta/run.sh) adds the result line.
set -uo pipefail
shopt -s lastpipe	# judge, at the end of a pipe, runs in this shell
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../suite_result.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0

# judge RC MODE WANT_P WANT_F WANT_S DESCRIPTION < LOG: one TAP line
judge() {
	local rc=$1 mode=$2 want="$3 $4 $5" what=$6 got
	cat >"$tmp/log"
	passed=0; failed=0; skipped=0; failures=(); skip_notes=()
	suite_result t "$rc" "$tmp/log" "$mode" >"$tmp/out" 2>&1
	got="$passed $failed $skipped"
	n=$((n + 1))
	if [ "$got" = "$want" ]; then
		echo "ok $n - $what"
	else
		echo "not ok $n - $what (got passed/failed/skipped $got, want $want)"
	fi
}

tap_lines() { for i in $(seq "$1" "$2"); do echo "ok $i - check $i"; done; }

{ tap_lines 1 40; echo "1..40"; } | judge 0 plan 40 0 0 "a full TAP run with its plan passes"
tap_lines 1 34 | judge 139 plan 34 1 0 "a C test cut off by a crash after test 34 (no plan, signal exit) fails"
{ echo "1..40"; tap_lines 1 34; } | judge 0 plan 34 1 0 "fewer TAP results than the plan (1..40, 34 lines) fails even with exit 0"
{ echo "1..2"; tap_lines 1 3; } | judge 0 plan 3 1 0 "more TAP results than the plan fails"
{ tap_lines 1 5; echo "1..5"; } | judge 1 plan 5 1 0 "a non-zero exit with every TAP line ok fails"
{ echo "t.sql .. "; echo "1..2"; tap_lines 1 2; echo "u.sql .. "; echo "1..3"; tap_lines 1 3; echo ok; } |
	judge 0 plan 5 0 0 "pg_prove's several plans are summed, its bare 'ok' lines are not results"
tap_lines 1 3 | judge 0 result 3 1 0 "a suite without its result line fails"
printf '' | judge 0 result 0 1 0 "an empty log fails"
{ tap_lines 1 3; echo "3 passed, 0 failed"; } | judge 0 result 3 0 0 "three ok lines and their result line pass"
{ tap_lines 1 3; echo "3 passed, 0 failed"; } | judge 2 result 3 1 0 "a non-zero exit after a clean result line fails"
{ tap_lines 1 3; echo "4 passed, 0 failed"; } | judge 0 result 3 1 0 "a result line that counts more than its TAP lines fails"
{ tap_lines 1 2; echo "not ok 3 - broken"; echo "2 passed, 1 failed"; } | judge 1 result 2 1 0 "a not ok line is one failure"
{ tap_lines 1 2; echo "ok 3 - gitignore # SKIP git not installed"; echo "ok 4 # skip no GPU"; echo "4 passed, 0 failed"; } |
	judge 0 result 2 0 2 "skips are counted apart from passes (result line counting them as passes)"
{ tap_lines 1 2; echo "ok 3 - x # SKIP why"; echo "2 passed, 0 failed, 1 skipped"; } |
	judge 0 result 2 0 1 "a result line with ', N skipped' agrees with its skip lines"
echo "5 passed, 0 failed" | judge 0 result 5 0 0 "a result line alone (no TAP lines) is taken as it is"
echo "0 passed, 0 failed" | judge 0 result 0 1 0 "a suite that ran nothing fails"
printf 'fuzzing...\nDone 1000 runs\n' | judge 0 exit 1 0 0 "exit mode: status 0 is one pass"
printf 'fuzzing...\ncrash-123\n' | judge 77 exit 0 1 0 "exit mode: a non-zero status is one failure"
{ echo "1..1"; echo "ok 1 - x # SKIP no reason given here"; } | judge 0 plan 0 0 1 "a run of skips only is not a failure"

# the reason of a skip is printed
{ echo "ok 1 - gitignore # SKIP git not installed"; echo "1 passed, 0 failed"; } >"$tmp/l"
passed=0; failed=0; skipped=0; failures=(); skip_notes=()
suite_result t 0 "$tmp/l" result >"$tmp/out" 2>&1
n=$((n + 1))
if grep -q 'skipped: SKIP git not installed' "$tmp/out" && [ "${skip_notes[0]:-}" = "t: SKIP git not installed" ]; then
	echo "ok $n - a skip's reason is printed and kept for the summary"
else
	echo "not ok $n - a skip's reason is printed and kept for the summary (printed: $(tr '\n' '|' <"$tmp/out"))"
fi
