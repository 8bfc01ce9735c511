# test/suite_result.sh — how test/run.sh counts a suite, sourced by it and
# by its own test (test/meta/suite_result_test.sh). Uses and updates the
# caller's variables passed, failed, skipped, failures (array) and
# skip_notes (array).

# Record a suite's counts: record NAME PASSED FAILED [SKIPPED]
record() {
	local s=${4:-0}
	passed=$((passed + $2))
	failed=$((failed + $3))
	skipped=$((skipped + s))
	[ "$3" -eq 0 ] || failures+=("$1")
	echo "== $1: $2 passed, $3 failed, $s skipped"
}

# Judge one suite from its exit status and its log, the same way for every
# suite:   suite_result NAME RC LOG MODE
# MODE says what the log must hold besides TAP lines:
#   result  a last line "N passed, N failed" (optionally ", N skipped")
#   plan    a TAP plan "1..N" (several plans, as pg_prove prints, are summed)
#   exit    nothing: the exit status alone is the one result
# TAP lines are "ok N - ...", "ok - ..." and "not ok ..."; "ok ... # SKIP
# reason" is a skip, counted apart from the passes and its reason printed.
# Each of these is one more failure: a missing result line or plan; fewer
# (or more) TAP results than the plan; a result line whose counts disagree
# with the TAP lines it follows. "not ok" lines and a result line's
# failures count themselves; a non-zero exit status counts as one failure
# when nothing else did. So a C test that crashes after its 34th check
# (its plan is printed last) is 34 passed and 1 failed, never a clean run.
suite_result() {
	local name=$1 rc=$2 log=$3 mode=$4
	local tap='^[[:space:]]*(not )?ok( [0-9]+( |$)| - )'
	local notok='^[[:space:]]*not ok( [0-9]+( |$)| - )'
	local skip='^[[:space:]]*ok( [0-9]+)?( .*)?#[[:space:]]*[Ss][Kk][Ii][Pp]'
	local n_ok n_notok n_skip n_tap plan line rp rf rs p f s problems=()

	n_tap=$(grep -cE "$tap" "$log")
	n_notok=$(grep -cE "$notok" "$log")
	n_skip=$(grep -cE "$skip" "$log")
	n_ok=$((n_tap - n_notok - n_skip))
	p=$n_ok; f=$n_notok; s=$n_skip

	case $mode in
	exit)
		[ "$n_tap" -gt 0 ] || { if [ "$rc" -eq 0 ]; then p=1; fi; } ;;
	plan)
		plan=$(grep -E '^[[:space:]]*1\.\.[0-9]+' "$log" | sed -E 's/^[[:space:]]*1\.\.([0-9]+).*/\1/' |
			awk '{ n += $1; seen = 1 } END { if (seen) print n }')
		if [ -z "$plan" ]; then
			problems+=("no TAP plan (1..N): the run ended early")
		elif [ "$n_tap" -lt "$plan" ]; then
			problems+=("$n_tap TAP results, fewer than the plan 1..$plan")
		elif [ "$n_tap" -gt "$plan" ]; then
			problems+=("$n_tap TAP results, more than the plan 1..$plan")
		fi ;;
	result)
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
		if [ -z "$line" ]; then
			problems+=("no result line \"N passed, N failed\"")
		else
			rp=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
			rf=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
			rs=$(sed -nE 's/.*, ([0-9]+) skipped$/\1/p' <<<"$line"); rs=${rs:-0}
			if [ "$n_tap" -eq 0 ]; then
				# no TAP lines to count: the result line is all there is
				p=$rp; f=$rf; s=$rs
			elif [ $((rp + rf + rs)) -ne "$n_tap" ] || [ "$rf" -ne "$n_notok" ]; then
				problems+=("result line \"$line\" disagrees with the TAP lines ($n_ok ok, $n_notok not ok, $n_skip skipped)")
				[ "$rf" -le "$f" ] || f=$rf
			fi
		fi ;;
	esac
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		problems+=("no results at all")
	fi
	# a non-zero exit is a failure of its own unless one is counted already
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ ${#problems[@]} -eq 0 ]; then
		problems+=("exit status $rc")
	elif [ "$rc" -ne 0 ]; then
		echo "   $name: exit status $rc"
	fi
	if [ ${#problems[@]} -gt 0 ]; then
		f=$((f + 1))
		printf '   %s: %s\n' "$name" "${problems[@]}"
	fi
	if [ "$f" -gt 0 ]; then
		grep -E "$notok" "$log" | head -n 40
		tail -n 30 "$log"
	fi
	# a skip says why in the log: its reason after "# SKIP"
	if [ "$s" -gt 0 ]; then
		while IFS= read -r l; do
			skip_notes+=("$name: ${l#*# }")
			echo "   skipped: ${l#*# }"
		done < <(grep -E "$skip" "$log")
	fi
	record "$name" "$p" "$f" "$s"
}
