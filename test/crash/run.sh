#!/usr/bin/env bash
# test/crash/run.sh — crashes (pg_ctl stop -m immediate) during CREATE INDEX
# and during a codevec-load run (issue 17, item 5).
#
# Its own cluster (test/cluster.sh, the PostgreSQL that PG_CONFIG names;
# codevec and codevec-load installed). A table of 60,000 x 32 random
# vectors with a flat gpuivf index and a marker table.
#   1. CREATE INDEX ... WITH (lists = 256) (k-means on 60k rows: seconds)
#      is running when the server is killed: after recovery the index does
#      not exist (the build's transaction never committed), the flat index
#      passes codevec_index_check, and the marker rows committed before the
#      kill are all there.
#   2. CREATE INDEX CONCURRENTLY killed in its build: an invalid index
#      (indisvalid = false) is left; the planner does not use it (EXPLAIN
#      with seqscans off names another plan; results equal a sequential
#      scan), codevec_index_check refuses it (0A000), and REINDEX INDEX
#      CONCURRENTLY makes it valid and sound.
#   3. codevec-load of /usr/include/postgresql (800+ headers, 10 files a transaction,
#      one writer) killed once another session has seen files committed
#      (the loader paused with SIGSTOP just before, on a server whose WAL
#      writer runs every 10 s, so nothing but the commit itself can have
#      written a visible commit's WAL):
#      every file the other session saw committed (path and sha256, listed
#      just before the kill) is there after recovery, every file that
#      survived is whole (its hash and snippet count are a reference
#      load's), the loader's next run exits 0, and the database then holds
#      exactly the files and snippets (path, sha256, snippet count per file)
#      of a load into a fresh database that never crashed.  (A loader that
#      commits with synchronous_commit = off, as codevec-load did before
#      December 2026, fails the first of these: its last batches were
#      visible before they were on disk.)
# Ends with "N passed, N failed, N skipped".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d /tmp/crash-test.XXXXXX); chmod 755 "$TMP"
PASS=0; FAIL=0; SKIP=0; N=0
source "$ROOT/test/tap.sh"	# ok, is, like, skip
bg=""
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null
	[ -n "${lpid:-}" ] && kill -CONT "$lpid" 2>/dev/null && kill "$lpid" 2>/dev/null
	bash "$ROOT/test/cluster.sh" stop "$TMP/c" immediate >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
finish() { echo "$PASS passed, $FAIL failed, $SKIP skipped"; [ "$FAIL" -eq 0 ]; exit $?; }
freeport() { local p=$1; while [ -e "/tmp/.s.PGSQL.$p" ]; do p=$((p + 1)); done; echo "$p"; }

port=$(freeport 5691)
# A WAL writer that writes late (every 10 s, never early for volume) keeps
# an asynchronous commit visible to other sessions long before its WAL
# record is written: a loader that committed with synchronous_commit = off
# loses its last batches in a kill every time, not only when this shared
# machine happens to delay the WAL writer. A synchronous commit writes its
# own record (fsync stays off here: an immediate stop kills processes, the
# written WAL is in the kernel's cache and survives).
eval "$(bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port" wal_writer_delay=10s wal_writer_flush_after=1GB)"
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h /tmp -p "$port" -U postgres -d "${DB:-postgres}" -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" "$@"; }
Q -c "SELECT 1" >/dev/null || { ok 1 "cluster starts"; finish; }
crash() {	# stop -m immediate, start again (WAL replay)
	bash "$ROOT/test/cluster.sh" stop "$TMP/c" immediate >/dev/null 2>&1
	bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port" >/dev/null
	for _ in $(seq 1 100); do Q -c "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.2; done
	return 1
}
# wait until a statement matching $1 is active in another session (10 s at most)
wait_active() {
	for _ in $(seq 1 100); do
		[ "$(Q -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '$1%'")" -ge 1 ] && return 0
		sleep 0.1
	done
	return 1
}

Q -c "CREATE EXTENSION codevec" -c "SELECT setseed(0.3)" \
	-c "CREATE TABLE t (id int PRIMARY KEY, emb codevec(32))" \
	-c "INSERT INTO t SELECT i, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 32) WHERE i > 0)::real[]::codevec FROM generate_series(1, 60000) i" \
	-c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)" \
	-c "CREATE TABLE marker (n int)" -c "INSERT INTO marker SELECT generate_series(1, 1000)" \
	-c "CREATE TABLE q AS SELECT id AS qid, emb FROM t WHERE id <= 10" >/dev/null
ok $? "a table of 60,000 vectors with a flat index, a marker table"

# 1. CREATE INDEX killed: in its build when we catch it there, else in the
#    same transaction before COMMIT (the pg_sleep after it)
psql -X -q -h /tmp -p "$port" -U postgres -d postgres -c "SET codevec.device = cpu" -c "SET application_name = crash_ci" \
	-c "BEGIN" -c "CREATE INDEX t_ivf ON t USING gpuivf (emb codevec_l2_ops) WITH (lists = 256)" \
	-c "SELECT pg_sleep(60)" -c "COMMIT" >"$TMP/ci.log" 2>&1 &
bg=$!
Q -c "INSERT INTO marker SELECT generate_series(1001, 1500)" >/dev/null   # committed meanwhile
phase=""
for _ in $(seq 1 300); do
	phase=$(Q -c "SELECT p.phase FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'crash_ci'")
	[ -n "$phase" ] && break
	[ "$(Q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crash_ci' AND query LIKE 'SELECT pg_sleep%'")" = 1 ] && { phase="built, not committed"; break; }
	sleep 0.05
done
[ -n "$phase" ]; ok $? "CREATE INDEX ... WITH (lists = 256) caught running (phase: ${phase:-none})"
crash; ok $? "the server is killed during CREATE INDEX and recovers"
wait "$bg" 2>/dev/null; bg=""
is "$(Q -c "SELECT count(*) FROM pg_class WHERE relname = 't_ivf'")" 0 "the interrupted index does not exist after recovery"
is "$(Q -c "SELECT count(*) FROM marker")" 1500 "every marker row committed before the kill is there (1,500)"
is "$(Q -c "SELECT index_tuples || ' ' || heap_rows FROM codevec_index_check('t_flat')")" "60000 60000" \
	"the flat index built before the kill passes codevec_index_check"

# 2. CREATE INDEX CONCURRENTLY killed after its build, while it waits for
#    an older snapshot (a REPEATABLE READ transaction begun before it)
psql -X -q -h /tmp -p "$port" -U postgres -d postgres -c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
	-c "SELECT count(*) FROM marker" -c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null 2>&1 &
old=$!
sleep 0.5
psql -X -q -h /tmp -p "$port" -U postgres -d postgres -c "SET codevec.device = cpu" -c "SET application_name = crash_cic" \
	-c "CREATE INDEX CONCURRENTLY t_cic ON t USING gpuivf (emb codevec_l2_ops) WITH (lists = 256)" >"$TMP/cic.log" 2>&1 &
bg=$!
phase=""
for _ in $(seq 1 600); do
	phase=$(Q -c "SELECT p.phase FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'crash_cic'")
	[ "$phase" = "waiting for old snapshots" ] && break
	sleep 0.1
done
is "$phase" "waiting for old snapshots" "CREATE INDEX CONCURRENTLY built t_cic and waits for an older snapshot"
crash; ok $? "the server is killed during CREATE INDEX CONCURRENTLY and recovers"
wait "$bg" "$old" 2>/dev/null; bg=""
is "$(Q -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_cic'::regclass")" f "an invalid index t_cic is left"
plan=$(Q -c "SET enable_seqscan = off" -c "EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 10")
[[ "$plan" != *t_cic* ]]; ok $? "the planner does not use the invalid index (seqscans off: $(echo "$plan" | grep -o 'Index Scan using [a-z_]* on t\|Seq Scan on t$' | head -1))"
TOP="SELECT string_agg(ids, ' ' ORDER BY qid) FROM (SELECT qid, (SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY emb <-> q.emb, id LIMIT 10) x) AS ids FROM q) z"
is "$(Q -c "SET enable_seqscan = off" -c "$TOP")" "$(Q -c "SET enable_indexscan = off" -c "$TOP")" \
	"queries by <-> with seqscans off return what a sequential scan returns"
is "$(Q -c "SELECT codevec_index_check('t_cic')" 2>&1 | grep -o 'cannot check index "t_cic"')" 'cannot check index "t_cic"' \
	"codevec_index_check refuses the invalid index"
Q -c "REINDEX INDEX CONCURRENTLY t_cic" >/dev/null
is "$(Q -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_cic'::regclass")" t "REINDEX INDEX CONCURRENTLY makes it valid"
is "$(Q -c "SELECT lists || ' ' || index_tuples || ' ' || heap_rows FROM codevec_index_check('t_cic')")" "256 60000 60000" \
	"the rebuilt index passes codevec_index_check"
plan=$(Q -c "SET enable_seqscan = off" -c "EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 10")
[[ "$plan" == *"Index Scan using t_cic"* ]]; ok $? "and the planner uses it now"

# 3. codevec-load killed
loader=$ROOT/loaders/codevec-load; [ -x "$loader" ] || loader=$(command -v codevec-load)
src=/usr/include/postgresql
Q -c "CREATE DATABASE cv_crash" -c "CREATE DATABASE cv_ref" >/dev/null
for d in cv_crash cv_ref; do DB=$d Q -c "CREATE EXTENSION codevec" >/dev/null; done
LOAD() { PGHOST=/tmp PGPORT=$port PGUSER=postgres nice -n 5 "$loader" -d "$1" --repo inc --no-embed --no-bm25 --batch-files=10 --connections=1 -j 1 "$src"; }
LOAD cv_crash >"$TMP/load1.log" 2>&1 &
bg=$!
seen=0
for _ in $(seq 1 600); do
	seen=$(DB=cv_crash Q -c "SELECT count(*) FROM code.files" 2>/dev/null || echo 0)
	[ "${seen:-0}" -ge 150 ] && break
	sleep 0.1
done
# The loader is paused (SIGSTOP) first: the WAL of whatever it would do
# next cannot carry its last commit to disk before the kill. Then what
# another session sees committed is listed, and the server killed.
lpid=""
for st in /proc/[0-9]*/stat; do		# the loader: the background job's child (nice execs it)
	read -r p _ _ pp _ <"$st" 2>/dev/null && [ "$pp" = "$bg" ] && lpid=$p
done
[ -n "$lpid" ] && kill -STOP "$lpid"
DB=cv_crash Q -c "SELECT path || ':' || sha256 FROM code.files ORDER BY 1" 2>/dev/null | LC_ALL=C sort >"$TMP/seen.txt"
seen=$(wc -l <"$TMP/seen.txt")
[ "${seen:-0}" -ge 150 ] && [ -n "$lpid" ]; ok $? "the loader has committed files ($seen seen by another session) and is paused (pid ${lpid:-?}) when the server is killed"
crash; ok $? "the server is killed during codevec-load and recovers"
[ -n "$lpid" ] && kill -CONT "$lpid"
wait "$bg"; rc1=$?; bg=""
[ "$rc1" -ne 0 ]; ok $? "the interrupted loader run fails (exit status $rc1)"
after=$(DB=cv_crash Q -c "SELECT count(*) FROM code.files")
# what a reader saw committed is never lost: the loader's commits are on
# disk before they are visible (loaders/session.c, "Durability")
DB=cv_crash Q -c "SELECT path || ':' || sha256 FROM code.files" | LC_ALL=C sort >"$TMP/after.txt"
lost=$(LC_ALL=C comm -23 "$TMP/seen.txt" "$TMP/after.txt" | wc -l)
is "$lost" 0 "no committed file is lost: each of the $seen files another session saw before the kill is there after recovery with its hash ($after files in all)"
[ "$lost" -eq 0 ] || LC_ALL=C comm -23 "$TMP/seen.txt" "$TMP/after.txt" | head -3 | sed 's/^/#   lost: /'
# what survived is whole: every file's snippets as the reference load makes them
LOAD cv_ref >"$TMP/load3.log" 2>&1; rc3=$?
is "$rc3" 0 "a load of the same tree into a fresh database (the reference) finishes"
PER="SELECT f.path || ':' || f.sha256 || ':' || count(s.id) FROM code.files f LEFT JOIN code.snippets s ON s.file_id = f.id GROUP BY f.id ORDER BY 1"
DB=cv_ref Q -c "$PER" >"$TMP/ref.txt"; DB=cv_crash Q -c "$PER" >"$TMP/survived.txt"
is "$(comm -23 "$TMP/survived.txt" "$TMP/ref.txt" | wc -l) $(wc -l <"$TMP/survived.txt")" "0 $after" \
	"no torn file: each of the $after files that survived has the reference's hash and snippet count"
LOAD cv_crash >"$TMP/load2.log" 2>&1; rc2=$?
is "$rc2" 0 "the loader's next run finishes (exit status 0)"
[ "$rc2" -eq 0 ] || tail -5 "$TMP/load2.log" | sed 's/^/#   /'
FP="SELECT count(*) || ' files, ' || sum(n) || ' snippets, ' || md5(string_agg(path || ':' || sha256 || ':' || n, ',' ORDER BY path)) FROM (SELECT f.path, f.sha256, count(s.id) AS n FROM code.files f LEFT JOIN code.snippets s ON s.file_id = f.id GROUP BY f.id) x"
ref=$(DB=cv_ref Q -c "$FP")
is "$(DB=cv_crash Q -c "$FP")" "$ref" "after the crash and a second run: the same files, hashes and snippets as the reference ($ref)"
is "$(DB=cv_crash Q -c "SELECT count(*) FROM code.snippets s WHERE NOT EXISTS (SELECT 1 FROM code.files f WHERE f.id = s.file_id)")" 0 \
	"no snippet without its file"
is "$(grep -c 'terminated by signal\|PANIC' "$TMP/c/server.log")" 0 "no backend crashed on its own (only the kills)"
finish
