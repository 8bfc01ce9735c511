#!/usr/bin/env bash
# bench/soak/run.sh MINUTES — a mixed-load soak of one table with a flat and
# an IVF gpuivf index (issue 17).
#
#   bash bench/soak/run.sh 10                     CPU, 10 minutes
#   CODEVEC_DEVICE=cuda bash bench/soak/run.sh 10 the GPU service (see README)
#
# Its own cluster (test/cluster.sh: the PostgreSQL that PG_CONFIG names,
# codevec installed there). A table soak(id bigserial, emb codevec(DIMS))
# of ROWS random rows (default 20000 x 32) with a flat index (cosine) and
# an IVF index (l2, LISTS = 16 lists), then 16 pgbench clients (CLIENTS)
# for MINUTES minutes running, by weight: flat top-10 searches (30), IVF
# top-10 searches (30; gpuivf.probes 4), single inserts (15), 50-row
# inserts (5), 10-row range deletes (10) and 5-row vector updates (10);
# beside them a loop that runs VACUUM, REINDEX INDEX CONCURRENTLY of each
# index and VACUUM again, one after the other. With CODEVEC_DEVICE=cuda
# the cluster preloads codevec (the GPU service), codevec.device = auto
# (a scan falls back to the CPU while the service is down) and
# gpuivf.gpu_min_rows = 1, and the service is killed (SIGTERM; the
# postmaster starts it again) at a third and at two thirds of the run.
#
# Then, the load stopped: 20 queries through each index equal a sequential
# scan (flat: ORDER BY emb <=> q, ctid; IVF with probes = lists: emb <-> q,
# ctid), codevec_index_check() passes on both with index_tuples = heap_rows
# after a VACUUM (INDEX_CLEANUP on), no index is left invalid, no pgbench client aborted, and
# the server log has no ERROR, PANIC, or crash. TAP lines, figures as
# comments, "N passed, N failed" last; non-zero exit status on failure.
# KEEP=1 leaves the cluster folder (its path is printed) for a look.
set -u
MINUTES=${1:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROWS=${ROWS:-20000}; DIMS=${DIMS:-32}; LISTS=${LISTS:-16}; CLIENTS=${CLIENTS:-16}
DEVICE=${CODEVEC_DEVICE:-cpu}
TMP=$(mktemp -d /tmp/soak.XXXXXX); chmod 755 "$TMP"
PASS=0; FAIL=0; N=0
ok() { N=$((N + 1)); if [ "$1" -eq 0 ]; then PASS=$((PASS + 1)); echo "ok $N - $2"; else FAIL=$((FAIL + 1)); echo "not ok $N - $2"; fi; }
is() { if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; echo "#   got:  '$(echo "$1" | head -c 400)'"; echo "#   want: '$(echo "$2" | head -c 400)'"; fi; }
bgpids=""
cleanup() {
	for p in $bgpids; do kill "$p" 2>/dev/null; done
	bash "$ROOT/test/cluster.sh" stop "$TMP/c" immediate >/dev/null 2>&1
	# the server log, for a run whose output folder comes back (SERVER_LOG=FILE)
	[ -n "${SERVER_LOG:-}" ] && [ -f "$TMP/c/server.log" ] && cp "$TMP/c/server.log" "$SERVER_LOG"
	if [ "${KEEP:-0}" = 1 ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; exit $?; }
freeport() { local p=$1; while [ -e "/tmp/.s.PGSQL.$p" ]; do p=$((p + 1)); done; echo "$p"; }

bindir=$(bash "$ROOT/test/cluster.sh" bindir)
pgbench=$bindir/pgbench; [ -x "$pgbench" ] || pgbench=$(command -v pgbench)
[ -x "$pgbench" ] || { ok 1 "pgbench is installed"; finish; }
conf="max_connections=60"
if [ "$DEVICE" = cuda ]; then
	conf="$conf shared_preload_libraries=codevec"
fi
port=$(freeport 5681)
# shellcheck disable=SC2086
eval "$(bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port" $conf)" || { ok 1 "cluster starts"; finish; }
log=$TMP/c/server.log
psql -X -A -t -q -h /tmp -p "$port" -U postgres -d postgres -c "SELECT 1" >/dev/null 2>&1 || { ok 1 "cluster starts"; tail -5 "$log"; finish; }
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h /tmp -p "$port" -U postgres -d postgres -c "SET client_min_messages = warning" "$@"; }
echo "# soak: $MINUTES min, $CLIENTS clients, $ROWS x $DIMS rows, IVF $LISTS lists, device $DEVICE"
echo "# machine: $(nproc) cores, $(uname -r), $(psql -X -A -t -h /tmp -p "$port" -U postgres -d postgres -c 'SHOW server_version'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"

if [ "$DEVICE" = cuda ]; then dev=auto; else dev=cpu; fi
Q -c "CREATE EXTENSION codevec" \
	-c "ALTER DATABASE postgres SET codevec.device = $dev" \
	-c "ALTER DATABASE postgres SET gpuivf.probes = 4" \
	-c "ALTER DATABASE postgres SET enable_seqscan = off" \
	-c "ALTER DATABASE postgres SET enable_bitmapscan = off" >/dev/null
[ "$DEVICE" = cuda ] && Q -c "ALTER DATABASE postgres SET gpuivf.gpu_min_rows = 1" >/dev/null
Q -c "SELECT setseed(0.5)" \
	-c "CREATE TABLE soak (id bigserial PRIMARY KEY, emb codevec($DIMS))" \
	-c "INSERT INTO soak (emb) SELECT ARRAY(SELECT random() - 0.5 FROM generate_series(1, $DIMS) WHERE i > 0)::real[]::codevec FROM generate_series(1, $ROWS) i" \
	-c "CREATE TABLE soak_q AS SELECT i AS qid, ARRAY(SELECT random() - 0.5 FROM generate_series(1, $DIMS) WHERE i > 0)::real[]::codevec($DIMS) AS emb FROM generate_series(1, 200) i" \
	-c "CREATE INDEX soak_flat ON soak USING gpuivf (emb codevec_cosine_ops)" \
	-c "CREATE INDEX soak_ivf ON soak USING gpuivf (emb codevec_l2_ops) WITH (lists = $LISTS)" \
	-c "VACUUM ANALYZE soak" -c "ANALYZE soak_q" >/dev/null
ok $? "a table of $ROWS rows with a flat and an IVF ($LISTS lists) gpuivf index"
plan=$(Q -c "EXPLAIN (COSTS OFF) SELECT id FROM soak ORDER BY emb <=> (SELECT emb FROM soak_q WHERE qid = 1) LIMIT 10")
[[ "$plan" == *"Index Scan using soak_flat"* ]]; ok $? "searches by <=> scan the flat index"
plan=$(Q -c "EXPLAIN (COSTS OFF) SELECT id FROM soak ORDER BY emb <-> (SELECT emb FROM soak_q WHERE qid = 1) LIMIT 10")
[[ "$plan" == *"Index Scan using soak_ivf"* ]]; ok $? "searches by <-> scan the IVF index"

# the scripts
S=$TMP/scripts; mkdir -p "$S"
RV="ARRAY(SELECT random() - 0.5 FROM generate_series(1, $DIMS) WHERE g > 0)::real[]::codevec"
cat >"$S/search_flat.sql" <<SQL
\set q random(1, 200)
SELECT id FROM soak ORDER BY emb <=> (SELECT emb FROM soak_q WHERE qid = :q) LIMIT 10;
SQL
cat >"$S/search_ivf.sql" <<SQL
\set q random(1, 200)
SELECT id FROM soak ORDER BY emb <-> (SELECT emb FROM soak_q WHERE qid = :q) LIMIT 10;
SQL
cat >"$S/insert_one.sql" <<SQL
INSERT INTO soak (emb) SELECT $RV FROM generate_series(1, 1) g;
SQL
cat >"$S/insert_batch.sql" <<SQL
INSERT INTO soak (emb) SELECT $RV FROM generate_series(1, 50) g;
SQL
cat >"$S/delete.sql" <<SQL
\set id random(1, $((ROWS * 3)))
DELETE FROM soak WHERE id BETWEEN :id AND :id + 9;
SQL
cat >"$S/update.sql" <<SQL
\set id random(1, $((ROWS * 3)))
UPDATE soak SET emb = ARRAY(SELECT random() - 0.5 FROM generate_series(1, $DIMS) WHERE id > 0)::real[]::codevec WHERE id BETWEEN :id AND :id + 4;
SQL

secs=$((MINUTES * 60))
logstart=$(wc -l <"$log")
start=$(date +%s)
# background maintenance until the load ends
(
	while [ $(($(date +%s) - start)) -lt $((secs - 5)) ]; do
		for stmt in "VACUUM soak" "REINDEX INDEX CONCURRENTLY soak_flat" "VACUUM soak" "REINDEX INDEX CONCURRENTLY soak_ivf"; do
			[ $(($(date +%s) - start)) -lt $((secs - 5)) ] || break
			if psql -X -q -h /tmp -p "$port" -U postgres -d postgres -c "SET codevec.device = $dev" -c "$stmt" >>"$TMP/maint.log" 2>&1; then
				echo "ok $stmt" >>"$TMP/maint.done"
			else
				echo "failed $stmt" >>"$TMP/maint.done"
				sleep 1
			fi
		done
	done
) &
bgpids="$bgpids $!"
if [ "$DEVICE" = cuda ]; then
	(
		for frac in 1 2; do
			sleep $((secs * frac / 3 - (frac - 1) * secs / 3))
			pid=$(psql -X -A -t -h /tmp -p "$port" -U postgres -d postgres -c "SELECT pid FROM codevec_gpu_status()")
			if [ -n "$pid" ] && kill -TERM "$pid"; then echo "killed $pid at $(($(date +%s) - start)) s" >>"$TMP/kills"; fi
		done
	) &
	bgpids="$bgpids $!"
fi
"$pgbench" -n -h /tmp -p "$port" -U postgres -c "$CLIENTS" -j 4 -T "$secs" -P 30 \
	-f "$S/search_flat.sql@30" -f "$S/search_ivf.sql@30" -f "$S/insert_one.sql@15" \
	-f "$S/insert_batch.sql@5" -f "$S/delete.sql@10" -f "$S/update.sql@10" postgres >"$TMP/pgbench.out" 2>&1
rc=$?
wait
bgpids=""
ok $rc "pgbench: $CLIENTS clients for $MINUTES min, no client aborted (exit status $rc)"
sed -n 's/^\(number of transactions actually processed\|number of failed transactions\|tps = [0-9.]*\|latency average\).*/# &/p' "$TMP/pgbench.out" | sed 's/ (without initial connection time)//'
grep -E '^SQL script [0-9]+:|^ - [0-9]+ transactions|^ - latency average' "$TMP/pgbench.out" | sed 's/^/# /'
grep -q 'aborted' "$TMP/pgbench.out" && grep 'aborted\|ERROR' "$TMP/pgbench.out" | head -5 | sed 's/^/#   /'
cnt() { local n; n=$(grep -c "$1" "$2" 2>/dev/null); echo "${n:-0}"; }
mdone=$(cnt '^ok' "$TMP/maint.done"); mfail=$(cnt '^failed' "$TMP/maint.done"); mre=$(cnt 'REINDEX' "$TMP/maint.done")
echo "# maintenance: $mdone statements done, $mfail failed ($mre REINDEX CONCURRENTLY)"
is "$mfail" 0 "every VACUUM and REINDEX CONCURRENTLY of the background loop succeeded"
[ "$mre" -ge 1 ]; ok $? "the background loop ran REINDEX CONCURRENTLY at least once"
if [ "$DEVICE" = cuda ]; then
	is "$(cnt killed "$TMP/kills")" 2 "the GPU service was killed twice ($(tr '\n' ';' <"$TMP/kills" 2>/dev/null))"
	for _ in $(seq 1 60); do [ "$(Q -c "SELECT state FROM codevec_gpu_status()")" = ready ] && break; sleep 1; done
	is "$(Q -c "SELECT state FROM codevec_gpu_status()")" ready "the service is ready again after the kills"
	echo "# gpu: $(Q -c "SELECT 'generation ' || generation || ', requests ' || requests || ', fallbacks ' || fallbacks || ', device ' || coalesce(device, '-') FROM codevec_gpu_status()")"
	is "$(Q -c "SELECT requests > 0 FROM codevec_gpu_status()")" t "the restarted service served requests (searches on the GPU)"
fi

# exactness: index scans against sequential scans, 20 queries each
TOP="SELECT string_agg(qid || ':' || ids, ' ' ORDER BY qid) FROM (SELECT qid, (SELECT string_agg(id::text, ',' ORDER BY ord) FROM (SELECT id, row_number() OVER () AS ord FROM (SELECT id FROM soak ORDER BY emb %s q.emb%s LIMIT 10) x) y) AS ids FROM soak_q q WHERE qid <= 20) z"
IDX="SET enable_seqscan = off; SET enable_bitmapscan = off; SET gpuivf.probes = $LISTS;"
SEQ="SET enable_seqscan = on; SET enable_indexscan = off; SET enable_bitmapscan = off;"
fi_=$(Q -c "$IDX" -c "$(printf "$TOP" '<=>' '')"); fs=$(Q -c "$SEQ" -c "$(printf "$TOP" '<=>' ', ctid')")
[ -n "$fs" ]; ok $? "the sequential scans answer"
is "$fi_" "$fs" "flat index = sequential scan (20 queries, top 10, ties by ctid)"
ii=$(Q -c "$IDX" -c "$(printf "$TOP" '<->' '')"); is_=$(Q -c "$SEQ" -c "$(printf "$TOP" '<->' ', ctid')")
is "$ii" "$is_" "IVF index with probes = lists = sequential scan (20 queries)"

# index checks, before and after a VACUUM
for ix in soak_flat soak_ivf; do
	r=$(Q -c "SELECT index_tuples >= heap_rows AND heap_rows = (SELECT count(emb) FROM soak) FROM codevec_index_check('$ix')" 2>&1)
	is "$r" t "codevec_index_check($ix) passes; heap_rows = count(emb)"
done
# INDEX_CLEANUP on: a plain VACUUM (PostgreSQL 14+) skips the index pass
# when under 2 % of the heap's pages hold dead items ("index scan
# bypassed"), which leaves their index tuples for a later VACUUM; the
# check below wants every dead row gone from the indexes
Q -c "VACUUM (INDEX_CLEANUP on) soak" >/dev/null
for ix in soak_flat soak_ivf; do
	r=$(Q -c "SELECT index_tuples || ' ' || heap_rows FROM codevec_index_check('$ix')" 2>&1)
	n=$(Q -c "SELECT count(emb) FROM soak")
	is "$r" "$n $n" "after VACUUM: codevec_index_check($ix) passes with index_tuples = heap_rows = $n"
done
is "$(Q -c "SELECT count(*) FROM pg_index WHERE NOT indisvalid")" 0 "no index left invalid"
echo "# rows at the end: $(Q -c "SELECT count(*) FROM soak"), max id $(Q -c "SELECT max(id) FROM soak")"

# the server log: errors, crashes
tail -n +"$((logstart + 1))" "$log" >"$TMP/soak.log"
errs=$(grep -cE ' (ERROR|PANIC|FATAL): ' "$TMP/soak.log")
crashes=$(grep -cE 'terminated by signal|was terminated by exception|server process .* exited with exit code [^01]' "$TMP/soak.log")
grep -E ' (ERROR|PANIC|FATAL): ' "$TMP/soak.log" | sed 's/^[^]]*] //' | sort | uniq -c | sort -rn | head -5 | sed 's/^/#   /'
is "$errs" 0 "no ERROR, FATAL or PANIC in the server log during the soak"
is "$crashes" 0 "no server process crashed"
finish
