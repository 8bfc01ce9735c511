# test/gpu/parts.sh — sourced by the one-call GPU drivers (gpuspeed.sh,
# pipeline.sh): a budget of device seconds cut into parts, each under its
# own time limit. The caller sets BUDGET (seconds), start (date +%s) and
# PART_LOGS (the folder for the parts' logs) first.
#
#   left                      seconds left of BUDGET
#   part NAME LIMIT_S COMMAND...
#                             run COMMAND under timeout LIMIT_S with its whole
#                             output in $PART_LOGS/NAME.log, print its RESULT,
#                             TAP failure and summary lines and a
#                             RESULT,part,NAME,rc=,wall_s= line; a part that
#                             would not fit what is left is skipped and said
#                             so. Counts parts_passed / parts_failed.
parts_passed=${parts_passed:-0}; parts_failed=${parts_failed:-0}
left() { echo $(( BUDGET - ($(date +%s) - start) )); }

part() {
	local name=$1 limit=$2 t0 rc
	shift 2
	if [ "$(left)" -lt "$limit" ]; then
		echo "RESULT,part,$name,skipped,needs ${limit}s, $(left)s left"
		return
	fi
	t0=$(date +%s)
	timeout -k 5 "$limit" "$@" >"$PART_LOGS/$name.log" 2>&1
	rc=$?
	grep -E '^(RESULT|not ok|[0-9]+ passed, [0-9]+ failed|[0-9]+ checks)|^\| ' "$PART_LOGS/$name.log"
	echo "RESULT,part,$name,rc=$rc,wall_s=$(( $(date +%s) - t0 ))$([ "$rc" = 124 ] && echo ",timed out")"
	if [ "$rc" = 0 ]; then parts_passed=$((parts_passed + 1)); else parts_failed=$((parts_failed + 1)); fi
}
