#!/usr/bin/env bash
# test/mutations/run.sh — a mutation check of the test suites: break the
# code on purpose and show that the suites notice.
#
#   bash test/mutations/run.sh [NAME ...]    NAME: a patch here, without .patch
#                                            (default: every NN-*.patch)
#
# Each NN-name.patch is one small mutant of src/ or loaders/ with two header
# lines, "# what: ..." and "# suites: ..." (the suites expected to fail:
# c, embed, regress, loader, search, gpuivf, gpuservice). For each mutant:
#   1. a copy of the committed tree (git archive HEAD) built once in $work/base
#      is copied to $work/m-NAME and the patch applied there (the checkout is
#      never touched);
#   2. the copy is rebuilt (make CUDA=0) and installed into a PRIVATE
#      PostgreSQL 15 root, $work/pgroot (a copy of Debian's server files,
#      relocated: its binaries find their lib and share folders next to
#      them), whose server runs a private cluster on $port: no mutant is ever
#      installed system-wide, so other users of the machine are unaffected;
#   3. the suites run against it and are judged by test/suite_result.sh,
#      the function test/run.sh uses: a mutant is "killed" when a suite
#      counts at least one failure.
# Before the mutants, the same suites run on the unmutated build (the
# baseline): they must all pass, or a "kill" would prove nothing. At the
# end the unmutated build is installed into the private root again.
# Prints a table (mutant, suites, result) and writes it to
# test/mutations/results.md with the machine, commit and command.
# Not part of test/run.sh (it takes many minutes); run by hand.
set -uo pipefail
shopt -s nullglob

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=${MUTATIONS_WORK:-/tmp/codevec-mutations}
port=${MUTATIONS_PORT:-5662}
results=${MUTATIONS_RESULTS:-$here/results.md}
. "$top/test/suite_result.sh"

if [ $# -gt 0 ]; then
	patches=()
	for n in "$@"; do patches+=("$here/$n.patch"); done
else
	patches=("$here"/[0-9][0-9]-*.patch)
fi
mkdir -p "$work"
logs=$work/logs
rm -rf "$logs"
mkdir -p "$logs"

# ---------------------------------------------------- the private root
root=$work/pgroot
bin=$root/usr/lib/postgresql/15/bin
if [ ! -x "$bin/postgres" ]; then
	echo "== private PostgreSQL root in $root"
	rm -rf "$root"
	mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
	cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/" &&
		cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/" &&
		ln -s /usr/include "$root/usr/include" || { echo "cannot copy the server files"; exit 1; }
	chmod 755 "$work" "$root"
fi
export PATH=$bin:$PATH
PGC=$bin/pg_config
[ "$("$PGC" --sharedir)" = "$root/usr/share/postgresql/15" ] || { echo "the private root is not relocated: $("$PGC" --sharedir)"; exit 1; }

# ---------------------------------------------------- the base tree
base=$work/base
commit=$(git -C "$top" rev-parse --short HEAD)
echo "== base tree: $commit (committed files only), built with make CUDA=0"
rm -rf "$base"
mkdir -p "$base"
git -C "$top" archive HEAD -- . ':!bench' | tar -x -C "$base"
# the loader's fetched grammars, so each copy need not fetch them again
[ -d "$top/loaders/build" ] && cp -a "$top/loaders/build" "$base/loaders/"
build() {	# build DIR LOG: make and install into the private root
	(cd "$1" && make CUDA=0 -j2 PG_CONFIG="$PGC" && make CUDA=0 PG_CONFIG="$PGC" install) >"$2" 2>&1
}
build "$base" "$logs/base-build.log" || { tail -20 "$logs/base-build.log"; exit 1; }

# ---------------------------------------------------- the private cluster
cluster=$work/cluster
bash "$top/test/cluster.sh" stop "$cluster" >/dev/null 2>&1
rm -rf "$cluster"
eval "$(bash "$top/test/cluster.sh" start "$cluster" "$port")" || exit 1
trap 'bash "$top/test/cluster.sh" stop "$cluster" >/dev/null 2>&1' EXIT
[ "$(psql -qAtX -c "SELECT current_setting('data_directory')")" = "$cluster/data" ] || { echo "not our cluster"; exit 1; }

# run_suite DIR SUITE LOG: run one suite of tree DIR; sets p f s (its counts)
run_suite() {
	local dir=$1 suite=$2 log=$3 rc mode=result
	case $suite in
	c)	make -s -C "$dir/test/c" check PG_CONFIG="$PGC" >"$log" 2>&1; rc=$?; mode=plan ;;
	regress)
		(cd "$dir" && rm -rf results regression.diffs regression.out &&
			make installcheck PG_CONFIG="$PGC") >"$log" 2>&1; rc=$?; mode=exit ;;
	embed | loader | search | gpuivf | gpuservice)
		PG_CONFIG=$PGC bash "$dir/test/$suite/run.sh" >"$log" 2>&1; rc=$? ;;
	*)	echo "unknown suite $suite" >"$log"; rc=2; mode=exit ;;
	esac
	passed=0; failed=0; skipped=0; failures=(); skip_notes=()
	suite_result "$suite" "$rc" "$log" "$mode" >"$log.verdict" 2>&1
	p=$passed; f=$failed; s=$skipped
}

# the suites each mutant names
declare -A want
for pf in "${patches[@]}"; do
	[ -f "$pf" ] || { echo "no such mutant: $pf"; exit 1; }
	for su in $(sed -n 's/^# suites: //p' "$pf"); do want[$su]=1; done
done

echo "== baseline: the unmutated build must pass every suite used"
baseline_ok=1
declare -A base_count
for su in "${!want[@]}"; do
	run_suite "$base" "$su" "$logs/base-$su.log"
	base_count[$su]="$p passed, $f failed, $s skipped"
	echo "   $su: ${base_count[$su]}"
	[ "$f" -eq 0 ] || baseline_ok=0
done
[ "$baseline_ok" = 1 ] || { echo "the baseline fails: fix that first (logs in $logs)"; exit 1; }

rows=()
killed=0
total=0
for pf in "${patches[@]}"; do
	name=$(basename "$pf" .patch)
	what=$(sed -n 's/^# what: //p' "$pf")
	suites=$(sed -n 's/^# suites: //p' "$pf")
	mdir=$work/m-$name
	total=$((total + 1))
	echo "== $name: $what"
	rm -rf "$mdir"
	cp -a "$base" "$mdir"
	if ! patch -p1 -s -d "$mdir" <"$pf" >"$logs/$name-patch.log" 2>&1; then
		rows+=("| $name | $what | $suites | the patch does not apply | **error** |")
		echo "   the patch does not apply"
		continue
	fi
	if ! build "$mdir" "$logs/$name-build.log"; then
		rows+=("| $name | $what | $suites | does not build | **error** |")
		echo "   the mutant does not build (see $logs/$name-build.log)"
		rm -rf "$mdir"
		continue
	fi
	verdict=survived
	detail=""
	for su in $suites; do
		run_suite "$mdir" "$su" "$logs/$name-$su.log"
		first=$(grep -m1 -E '^[[:space:]]*not ok|^test .*FAILED|^     [a-z_]+ +\.\.\. FAILED' "$logs/$name-$su.log" |
			sed -E 's/[[:space:]]+/ /g; s/\|/\//g' | cut -c1-110)
		detail+="$su: $p passed, $f failed${first:+ (first: $first)}; "
		[ "$f" -eq 0 ] || verdict=killed
		echo "   $su: $p passed, $f failed"
	done
	[ "$verdict" = killed ] && killed=$((killed + 1))
	rows+=("| $name | $what | $suites | ${detail%; } | **$verdict** |")
	echo "   => $verdict"
	rm -rf "$mdir"
done

echo "== restoring the unmutated build in the private root"
build "$base" "$logs/restore-build.log" || echo "   restore failed: see $logs/restore-build.log"

{
	echo "# Mutation check results"
	echo
	echo "Made by \`bash test/mutations/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit,"
	echo "on $(uname -n) ($(nproc) cores, $(uname -m), $(. /etc/os-release && echo "$PRETTY_NAME"),"
	echo "$(postgres --version | head -1), \`make CUDA=0\`, no GPU). Each mutant was built and installed"
	echo "into a private PostgreSQL root (never system-wide) and the named suites were run"
	echo "against it; a mutant is killed when a suite counts a failure."
	echo
	echo "Baseline (the unmutated build):"
	for su in "${!want[@]}"; do echo "- $su: ${base_count[$su]}"; done
	echo
	echo "| mutant | what it breaks | suites | result | verdict |"
	echo "|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "$killed of $total mutants killed."
} >"$results"
echo
cat "$results"
echo "logs: $logs"
[ "$killed" -eq "$total" ]
