#!/usr/bin/env bash
# test/replica/run.sh — a streaming standby answers like its primary
# (issue 17, item 3).
#
# gpuivf writes its pages through generic WAL (GenericXLog), so a physical
# standby must rebuild every index page the primary wrote. This suite starts
# its own primary (test/cluster.sh, the PostgreSQL that PG_CONFIG names), a
# table with a flat and an IVF gpuivf index, and a standby made with
# pg_basebackup -R streaming from it. Five rounds of inserts, deletes,
# updates of vectors and VACUUM on the primary; after each the standby waits
# for replay and must return the primary's rows, in the primary's order, for
# 10 queries on each index (index scans forced), and its flat index must
# equal its own sequential scan. Then the standby is promoted and must take
# writes that its indexes find. Ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d /tmp/replica-test.XXXXXX); chmod 755 "$TMP"
PASS=0; FAIL=0; N=0
source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
cleanup() {
	bash "$ROOT/test/cluster.sh" stop "$TMP/standby" immediate >/dev/null 2>&1
	bash "$ROOT/test/cluster.sh" stop "$TMP/primary" immediate >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
freeport() { local p=$1; while [ -e "/tmp/.s.PGSQL.$p" ]; do p=$((p + 1)); done; echo "$p"; }

pp=$(freeport 5661)
eval "$(bash "$ROOT/test/cluster.sh" start "$TMP/primary" "$pp" wal_level=replica max_wal_senders=4 hot_standby=on)" \
	|| { ok 1 "primary starts"; finish; }
P() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h /tmp -p "$pp" -U postgres -d postgres -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" "$@"; }
P -c "CREATE EXTENSION codevec" >/dev/null
# 16-dimensional vectors from a seeded generator, a few exact duplicates
# (ties) among them
P -c "SELECT setseed(0.42)" -c "CREATE TABLE items (id bigint PRIMARY KEY, emb codevec(16))" \
	-c "INSERT INTO items SELECT i, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 16) WHERE i > 0)::real[]::codevec FROM generate_series(1, 3000) i" \
	-c "INSERT INTO items SELECT id + 100000, emb FROM items WHERE id % 97 = 0" \
	-c "CREATE TABLE items_ivf AS SELECT * FROM items" \
	-c "CREATE INDEX items_flat ON items USING gpuivf (emb codevec_cosine_ops)" \
	-c "CREATE INDEX items_ivf_idx ON items_ivf USING gpuivf (emb codevec_l2_ops) WITH (lists = 20)" \
	-c "CREATE TABLE queries AS SELECT i AS qid, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 16) WHERE i > 0)::real[]::codevec(16) AS emb FROM generate_series(1, 10) i" \
	-c "VACUUM ANALYZE items" -c "VACUUM ANALYZE items_ivf" -c "CHECKPOINT" >/dev/null
ok $? "primary: a table with a flat and an IVF gpuivf index"

sp=$(freeport $((pp + 1)))
mkdir -p "$TMP/standby"
if [ "$(id -u)" = 0 ]; then chown codevec "$TMP/standby"; run_as() { su -s /bin/sh codevec -c "$(printf '%q ' "$@")"; }; else run_as() { "$@"; }; fi
bindir=$(bash "$ROOT/test/cluster.sh" bindir)
run_as "$bindir/pg_basebackup" -h /tmp -p "$pp" -U postgres -D "$TMP/standby/data" -R -X stream -c fast >"$TMP/basebackup.log" 2>&1
ok $? "pg_basebackup -R of the primary"
bash "$ROOT/test/cluster.sh" start "$TMP/standby" "$sp" "port=$sp" >/dev/null || { ok 1 "standby starts"; cat "$TMP/standby/server.log" | tail -20; finish; }
S() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h /tmp -p "$sp" -U postgres -d postgres -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" "$@"; }
is "$(S -c "SELECT pg_is_in_recovery()")" t "the standby is in recovery"
for _ in $(seq 1 100); do [ "$(P -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break; sleep 0.1; done
is "$(P -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" 1 "the standby streams from the primary"

catch_up() {	# wait until the standby replayed what the primary has written
	local lsn; lsn=$(P -c "SELECT pg_current_wal_lsn()")
	for _ in $(seq 1 300); do
		[ "$(S -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
		sleep 0.1
	done
	return 1
}
# the top 10 of each query, one line per query: "qid:id,id,..." (the
# sequential scans break ties by ctid, as the index does)
TOP="SELECT string_agg(qid || ':' || ids, ' ' ORDER BY qid) FROM (SELECT qid, (SELECT string_agg(id::text, ',' ORDER BY ord) FROM (SELECT id, row_number() OVER () AS ord FROM (SELECT id FROM %s ORDER BY emb %s q.emb%s LIMIT 10) x) y) AS ids FROM queries q) z"
IDX="SET enable_seqscan = off; SET enable_bitmapscan = off; SET gpuivf.probes = 4;"
SEQ="SET enable_indexscan = off; SET enable_bitmapscan = off;"
compare() {	# compare ROUND
	local r=$1 pf sf ss pi si
	catch_up; ok $? "round $r: the standby replays the primary's WAL"
	pf=$(P -c "$IDX" -c "$(printf "$TOP" items '<=>' '')"); sf=$(S -c "$IDX" -c "$(printf "$TOP" items '<=>' '')")
	ss=$(S -c "$SEQ" -c "$(printf "$TOP" items '<=>' ', ctid')")
	is "$sf" "$pf" "round $r: flat index on the standby = on the primary (10 queries)"
	is "$sf" "$ss" "round $r: flat index on the standby = its sequential scan"
	pi=$(P -c "$IDX" -c "$(printf "$TOP" items_ivf '<->' '')"); si=$(S -c "$IDX" -c "$(printf "$TOP" items_ivf '<->' '')")
	is "$si" "$pi" "round $r: IVF index (4 probes) on the standby = on the primary"
	is "$(S -c "SELECT count(*) FROM items")" "$(P -c "SELECT count(*) FROM items")" "round $r: same row count"
}
compare 0
plan=$(S -c "$IDX" -c "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM queries WHERE qid = 1) LIMIT 10")
[[ "$plan" == *"Index Scan using items_flat"* ]]; ok $? "the standby's query plan scans the gpuivf index"
for r in 1 2 3 4 5; do
	P -c "SELECT setseed(0.$r)" \
		-c "INSERT INTO items SELECT i, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 16) WHERE i > 0)::real[]::codevec FROM generate_series($r * 10000, $r * 10000 + 399) i" \
		-c "INSERT INTO items_ivf SELECT * FROM items WHERE id BETWEEN $r * 10000 AND $r * 10000 + 399" \
		-c "DELETE FROM items WHERE id % 7 = $r AND id < 3000" -c "DELETE FROM items_ivf WHERE id % 7 = $r AND id < 3000" \
		-c "UPDATE items SET emb = (SELECT emb FROM queries WHERE qid = $r) WHERE id = $((r * 11))" \
		-c "UPDATE items_ivf SET emb = (SELECT emb FROM queries WHERE qid = $r) WHERE id = $((r * 11))" >/dev/null
	[ $((r % 2)) = 1 ] && P -c "VACUUM items" -c "VACUUM items_ivf" >/dev/null
	compare "$r"
done

run_as "$bindir/pg_ctl" -D "$TMP/standby/data" -w promote >/dev/null 2>&1
ok $? "the standby is promoted"
for _ in $(seq 1 100); do [ "$(S -c "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.1; done
is "$(S -c "SELECT pg_is_in_recovery()")" f "the promoted server is out of recovery"
S -c "INSERT INTO items VALUES (999999, (SELECT emb FROM queries WHERE qid = 10))" >/dev/null
ok $? "the promoted server takes an insert"
is "$(S -c "$IDX" -c "SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM queries WHERE qid = 10), id LIMIT 1")" 999999 \
	"its flat index finds the new row first"
is "$(S -c "$IDX" -c "$(printf "$TOP" items '<=>' '')")" "$(S -c "$SEQ" -c "$(printf "$TOP" items '<=>' ', ctid')")" \
	"after promotion: flat index = sequential scan"
S -c "VACUUM items" -c "REINDEX INDEX items_ivf_idx" >/dev/null
ok $? "VACUUM and REINDEX on the promoted server"
finish
