#!/usr/bin/env bash
# test/soak/run.sh — the CI soak: bench/soak/run.sh for SOAK_MINUTES (2) on
# the CPU: 16 pgbench clients of searches, inserts, deletes and vector
# updates on one table with a flat and an IVF gpuivf index, VACUUM and
# REINDEX CONCURRENTLY beside them, then exactness against sequential
# scans, codevec_index_check and the server log. Its output is TAP ending
# with "N passed, N failed"; the exit status is bench/soak/run.sh's.
HERE=$(cd "$(dirname "$0")" && pwd)
exec env CODEVEC_DEVICE=cpu bash "$HERE/../../bench/soak/run.sh" "${SOAK_MINUTES:-2}"
