#!/usr/bin/env bash
# test/session/run.sh — codevec_session, the login warm-up (issue 21, item 3;
# src/codevec_session.c).
#
# A scratch database with a loaded corpus (embeddings, BM25 postings, a
# gpuivf index) and session_preload_libraries = 'codevec_session' set on
# it (ALTER DATABASE). Checks, each in fresh sessions:
#   - the warm-up ran its default modes (SHOW codevec_session.warmup_result);
#   - before the session's first statement its relation cache already holds
#     the indexes code.search reads (pg_backend_memory_contexts' "index
#     info" contexts), and a session with the warm-up off holds none;
#   - code.search answers the same ids and scores in warmed and unwarmed
#     sessions, in every mode;
#   - codevec_session.warmup picks the modes; a bad value is refused
#     (22023), and a bad value at login leaves the default;
#   - nothing keeps anyone from logging in: a role without USAGE on schema
#     code, a model that is not installed, a lock held on code.snippets
#     (the login gives up after codevec_session.warmup_lock_timeout, 55P03),
#     a database without schema code (skipped), parallel workers.
# Needs the PG* variables of a running server with codevec and its default
# model installed (make install, make model). Ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
DB=session_test_$$
R=cv_nousage_$$
MAINTDB=${PGDATABASE:-postgres}
PASS=0; FAIL=0; N=0
locker=""
cleanup() {
	[ -n "$locker" ] && kill "$locker" 2>/dev/null
	psql -X -q -d "$MAINTDB" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()" \
		-c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $R" >/dev/null 2>&1
}
trap cleanup EXIT
source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
# Q SQL...: each SQL in one new session of $DB (PGOPTIONS as the caller sets it)
Q() { local a=(); for s in "$@"; do a+=(-c "$s"); done; psql -X -A -t -q -d "$DB" "${a[@]}" 2>&1; }
# OFF SQL...: the same with the warm-up off
OFF() { PGOPTIONS="${PGOPTIONS:-} -c codevec_session.warmup=" Q "$@"; }

psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null || { ok 1 "database reachable"; finish; }
psql -X -q -d "$DB" -c "CREATE EXTENSION codevec" -c "ALTER DATABASE $DB SET codevec.device = cpu" >/dev/null
PGDATABASE=$DB "$LOADER" --quiet --repo stdlib-json "$PYLIB/json" >/dev/null 2>&1
ok $? "codevec-load loads $PYLIB/json with embeddings"
psql -X -q -d "$DB" -c "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" \
	-c "VACUUM ANALYZE code.snippets" >/dev/null
is "$(Q "SELECT count(emb) > 10 AND bool_and(emb IS NOT NULL), (SELECT built FROM code.bm25_params) FROM code.snippets")" "t|t" \
	"the corpus is embedded and its BM25 postings are built"
psql -X -q -d "$DB" -c "ALTER DATABASE $DB SET session_preload_libraries = 'codevec_session'" >/dev/null

# ------------------------------------------------------------ the warm-up runs
like "$(Q "SHOW codevec_session.warmup_result")" '^keyword [0-9]*\.[0-9] ms, hybrid [0-9]*\.[0-9] ms$' \
	"a new session ran the default warm-up (keyword, hybrid)"
is "$(Q "SHOW codevec_session.warmup")" "keyword, hybrid" "codevec_session.warmup's default"
# the indexes code.search reads, in the relation cache before the first statement
IDX="'snippets_pkey', 'files_pkey', 'bm25_postings_idx', 'snippets_emb_gpuivf'"
CACHED="SELECT string_agg(DISTINCT ident, ',' ORDER BY ident) FROM pg_backend_memory_contexts WHERE name = 'index info' AND ident IN ($IDX)"
is "$(Q "$CACHED")" "bm25_postings_idx,files_pkey,snippets_emb_gpuivf,snippets_pkey" \
	"a warmed session's relation cache holds code.search's indexes before its first statement"
is "$(OFF "$CACHED")" "" "with codevec_session.warmup = '' it holds none of them"
like "$(OFF "SHOW codevec_session.warmup_result")" '^skipped: codevec_session.warmup is empty$' \
	"warmup_result says why nothing ran"

# ------------------------------------------------------------ same answers
for mode in keyword vector hybrid; do
	sql="SELECT string_agg(id || ':' || round(score::numeric, 6), ',' ORDER BY vector_rank NULLS LAST, keyword_rank NULLS LAST, id)
	     FROM code.search('parse a JSON document into Python objects', k => 8, mode => '$mode')"
	warm=$(Q "$sql"); cold=$(OFF "$sql")
	[ -n "$warm" ] && [ "${warm#*ERROR}" = "$warm" ]; ok $? "code.search $mode answers in a warmed session"
	is "$warm" "$cold" "code.search $mode: a warmed session's ids and scores are an unwarmed one's"
done

# ------------------------------------------------------------ the modes setting
like "$(PGOPTIONS="-c codevec_session.warmup=vector" Q "SHOW codevec_session.warmup_result")" '^vector [0-9]*\.[0-9] ms$' \
	"codevec_session.warmup = vector runs vector only"
like "$(PGOPTIONS="-c codevec_session.warmup=hybrid,keyword,vector" Q "SHOW codevec_session.warmup_result")" \
	'^hybrid [0-9.]* ms, keyword [0-9.]* ms, vector [0-9.]* ms$' "the modes run in the order given"
err=$(psql -X -q -d "$DB" -v VERBOSITY=verbose -c "SET codevec_session.warmup = 'fast'" 2>&1)
like "$err" '22023' "SET codevec_session.warmup = 'fast' is refused with 22023"
like "$err" '"fast" is not a mode of code.search' "... saying which word is not a mode"
out=$(PGOPTIONS="-c codevec_session.warmup=fast" Q "SHOW codevec_session.warmup" "SHOW codevec_session.warmup_result")
like "$out" '^keyword, hybrid$' "a bad value at login leaves the default and the login goes on"
like "$(Q "SET codevec_session.warmup_result = 'x'" 2>&1)" 'cannot be changed' "warmup_result is read-only"

# ------------------------------------------------------------ nothing keeps anyone out
psql -X -q -d "$DB" -c "CREATE ROLE $R LOGIN" -c "REVOKE ALL ON SCHEMA code FROM PUBLIC" >/dev/null
out=$(psql -X -A -t -q -d "$DB" -U "$R" -c "SHOW codevec_session.warmup_result" -c "SELECT 'logged in'" 2>&1)
like "$out" '^keyword failed: permission denied for schema code (42501), hybrid failed: permission denied for schema code (42501)$' \
	"a role without USAGE on schema code: each mode's error is reported"
like "$out" '^logged in$' "... and the role logs in and runs statements"
out=$(PGOPTIONS="-c codevec.model=no_such_model" Q "SHOW codevec_session.warmup_result")
like "$out" '^keyword [0-9.]* ms, hybrid failed: could not load codevec model "no_such_model".*(58P01)$' \
	"a model that is not installed fails hybrid only; keyword still warms"
psql -X -q -d "$DB" -c "BEGIN" -c "LOCK TABLE code.snippets IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 100); do
	[ "$(psql -X -A -t -q -d "$DB" -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'snippets' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
	sleep 0.1
done
out=$(PGOPTIONS="-c codevec_session.warmup_lock_timeout=200" timeout 20 psql -X -A -t -q -d "$DB" -c "SHOW codevec_session.warmup_result" -c "SELECT 'logged in'" 2>&1)
ok $? "a login while code.snippets is locked returns (20 s bound, the lock is held 60 s)"
like "$out" '^keyword failed: canceling statement due to lock timeout (55P03), hybrid failed: canceling statement due to lock timeout (55P03)$' \
	"... each mode gave up on the lock (55P03)"
like "$out" '^logged in$' "... and the session runs statements"
psql -X -q -d "$DB" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DB' AND query LIKE 'SELECT pg_sleep(60)%'" >/dev/null
wait "$locker" 2>/dev/null; locker=""
like "$(Q "SHOW codevec_session.warmup_result")" '^keyword [0-9.]* ms, hybrid [0-9.]* ms$' "after the lock is gone the warm-up runs again"
like "$(PGOPTIONS="-c session_preload_libraries=codevec_session" psql -X -A -t -q -d "$MAINTDB" -c "SHOW codevec_session.warmup_result" 2>&1)" \
	'^skipped: no schema code in this database$' "a database without schema code: nothing runs, the login goes on"
# parallel workers load the leader's libraries again; they must not warm up
pset=force_parallel_mode
[ "$(psql -X -A -t -q -d "$DB" -c "SHOW server_version_num")" -ge 160000 ] && pset=debug_parallel_query
out=$(Q "SET $pset = on" "SET parallel_setup_cost = 0" "SET min_parallel_table_scan_size = 0" \
	"SELECT count(*) FROM code.snippets WHERE emb IS NOT NULL" "EXPLAIN (COSTS OFF) SELECT count(*) FROM code.snippets WHERE emb IS NOT NULL")
like "$out" 'Gather' "a parallel plan runs in a warmed session"
is "$(printf '%s\n' "$out" | head -1)" "$(OFF "SELECT count(*) FROM code.snippets WHERE emb IS NOT NULL")" "... and answers what a serial plan answers"
finish
