#!/usr/bin/env bash
# bench/ci/run.sh — how long CI's two runs of the whole suite take:
# test/run.sh on Debian's PostgreSQL 15, then on 18 (CODEVEC_PG=18, which
# adds test/pgupgrade). Prints one line per run: version, wall seconds,
# the suite's "N passed, N failed" line. Extra environment (CUDA=0,
# PG_CONFIG=...) applies to the 15 run; see results.md.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
echo "# commit $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%FT%TZ)"
for pg in 15 18; do
	log=$(mktemp /tmp/codevec-ci-$pg.XXXXXX.log)
	start=$(date +%s)
	if [ "$pg" = 18 ]; then
		env -u PG_CONFIG CODEVEC_PG=18 bash test/run.sh >"$log" 2>&1
	else
		bash test/run.sh >"$log" 2>&1
	fi
	rc=$?
	echo "PostgreSQL $pg: $(( $(date +%s) - start )) s, $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1), exit $rc (log $log)"
done
